"""HF-format checkpoints without torch: round trips, layouts, sharding, dtype and bad inputs."""
import json
import os

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import genesis
from genesis.models.transformers import MoEConfig, MoEForCausalLM
from genesis.models.transformers.checkpoint import (
    WEIGHTS_INDEX_NAME, WEIGHTS_NAME, genesis_to_hf_state_dict, hf_to_genesis_state_dict,
    parse_size, split_state_dict_into_shards)

BASE = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            moe_intermediate_size=24)

CONFIGS = {
    "genesis_moe": dict(num_local_experts=4, num_experts_per_tok=2),
    "mixtral": dict(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2),
    "qwen2_moe": dict(model_type="qwen2_moe", num_local_experts=4, num_experts_per_tok=2,
                      num_shared_experts=1, shared_expert_intermediate_size=40,
                      shared_expert_gate=True, norm_topk_prob=False, attention_bias=True),
    "deepseek": dict(model_type="deepseek", num_local_experts=4, num_experts_per_tok=2,
                     num_shared_experts=2, first_moe_layer=1, norm_topk_prob=False),
    "llama": dict(model_type="llama", num_local_experts=0, tie_word_embeddings=True),
}


def build(kind, seed=0, **extra):
    """A tiny random model of one layout."""
    genesis.manual_seed(seed)
    model = MoEForCausalLM(MoEConfig(**{**BASE, **CONFIGS[kind], **extra}))
    model.eval()
    return model


def logits_of(model, ids):
    with genesis.no_grad():
        return model(ids).numpy()


def params(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


IDS = genesis.tensor(np.random.default_rng(0).integers(0, 61, (2, 7)))


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_round_trip_reproduces_logits_exactly(tmp_path, kind):
    model = build(kind)
    model.save_pretrained(tmp_path)
    loaded = MoEForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.model_type == model.config.model_type
    assert not loaded.training
    np.testing.assert_array_equal(logits_of(loaded, IDS), logits_of(model, IDS))
    for name, value in params(model).items():
        np.testing.assert_array_equal(params(loaded)[name], value, err_msg=name)


def test_hub_key_layouts(tmp_path):
    expected = {
        "mixtral": ["model.layers.0.block_sparse_moe.gate.weight",
                    "model.layers.0.block_sparse_moe.experts.3.w1.weight",
                    "model.layers.0.block_sparse_moe.experts.3.w3.weight",
                    "model.layers.0.block_sparse_moe.experts.3.w2.weight"],
        "qwen2_moe": ["model.layers.1.mlp.experts.0.gate_proj.weight",
                      "model.layers.1.mlp.shared_expert.up_proj.weight",
                      "model.layers.1.mlp.shared_expert_gate.weight",
                      "model.layers.0.self_attn.q_proj.bias"],
        "deepseek": ["model.layers.0.mlp.gate_proj.weight",
                     "model.layers.1.mlp.experts.2.down_proj.weight",
                     "model.layers.1.mlp.shared_experts.down_proj.weight"],
        "genesis_moe": ["model.layers.0.mlp.experts.gate_up_proj",
                        "model.layers.0.mlp.experts.down_proj", "lm_head.weight"],
        "llama": ["model.layers.1.mlp.down_proj.weight", "model.norm.weight"],
    }
    for kind, keys in expected.items():
        model = build(kind)
        model.save_pretrained(tmp_path / kind)
        saved = load_file(tmp_path / kind / WEIGHTS_NAME)
        for key in keys:
            assert key in saved, (kind, key, sorted(saved)[:8])
        assert not any("inv_freq" in k for k in saved)
        assert (tmp_path / kind / "config.json").is_file()
    saved = load_file(tmp_path / "mixtral" / WEIGHTS_NAME)
    model = build("mixtral")
    gate_up = model.state_dict()["model.layers.0.mlp.experts.gate_up_proj"].numpy()
    np.testing.assert_array_equal(saved["model.layers.0.block_sparse_moe.experts.1.w1.weight"],
                                  gate_up[1, :24])
    np.testing.assert_array_equal(saved["model.layers.0.block_sparse_moe.experts.1.w3.weight"],
                                  gate_up[1, 24:])


def test_tied_embeddings_saved_once(tmp_path):
    model = build("llama")
    assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(tmp_path)
    assert "lm_head.weight" not in load_file(tmp_path / WEIGHTS_NAME)
    loaded = MoEForCausalLM.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    np.testing.assert_array_equal(logits_of(loaded, IDS), logits_of(model, IDS))


def test_tied_checkpoint_that_still_lists_lm_head_loads(tmp_path):
    model = build("llama")
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / WEIGHTS_NAME)
    state["lm_head.weight"] = state["model.embed_tokens.weight"]
    save_file(state, tmp_path / WEIGHTS_NAME)
    (tmp_path / "genesis_manifest.json").unlink()   # rewritten by another tool: unverified
    loaded = MoEForCausalLM.from_pretrained(tmp_path)
    np.testing.assert_array_equal(logits_of(loaded, IDS), logits_of(model, IDS))


@pytest.mark.parametrize("kind", ["mixtral", "qwen2_moe"])
def test_per_expert_and_fused_layouts_load_identically(tmp_path, kind):
    model = build(kind)
    model.save_pretrained(tmp_path / "fused", expert_layout="fused")
    model.save_pretrained(tmp_path / "per", expert_layout="per_expert")
    fused_keys = set(load_file(tmp_path / "fused" / WEIGHTS_NAME))
    assert "model.layers.0.mlp.experts.gate_up_proj" in fused_keys
    assert not any(".experts.0." in k for k in fused_keys)
    a = MoEForCausalLM.from_pretrained(tmp_path / "fused")
    b = MoEForCausalLM.from_pretrained(tmp_path / "per")
    for name, value in params(a).items():
        np.testing.assert_array_equal(params(b)[name], value, err_msg=name)
    np.testing.assert_array_equal(logits_of(a, IDS), logits_of(b, IDS))


def test_sharded_save_round_trip_and_index(tmp_path):
    model = build("mixtral")
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".safetensors"))
    n = len(files)
    assert n > 2 and WEIGHTS_NAME not in files
    assert files == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    index = json.loads((tmp_path / WEIGHTS_INDEX_NAME).read_text())
    stored, total = {}, 0
    for f in files:
        with safe_open(str(tmp_path / f), framework="np") as h:
            assert h.metadata() == {"format": "pt"}
            for key in h.keys():
                stored[key] = f
                total += h.get_tensor(key).nbytes
    assert index["weight_map"] == stored
    assert index["metadata"]["total_size"] == total
    sizes = [sum(load_file(tmp_path / f)[k].nbytes for k in load_file(tmp_path / f))
             for f in files]
    big = max(v.nbytes for v in load_file(tmp_path / files[0]).values())
    assert all(s <= 20_000 or s == big for s in sizes)
    loaded = MoEForCausalLM.from_pretrained(tmp_path)
    np.testing.assert_array_equal(logits_of(loaded, IDS), logits_of(model, IDS))
    model.save_pretrained(tmp_path)
    left = sorted(f for f in os.listdir(tmp_path) if "safetensors" in f)
    assert left == [WEIGHTS_NAME]
    assert not any(f.startswith(".tmp") for f in os.listdir(tmp_path))


def test_split_follows_hf_greedy_rule():
    arrays = {"a": np.zeros(10), "b": np.zeros(10), "big": np.zeros(30), "c": np.zeros(10),
              "d": np.zeros(1)}
    shards = split_state_dict_into_shards(arrays, 160)
    assert [list(s) for s in shards] == [["big"], ["a", "b"], ["c", "d"]]
    assert [list(s) for s in split_state_dict_into_shards(arrays, "1GB")] == [list(arrays)]
    assert parse_size("5GB") == 5 * 10**9 and parse_size("2GiB") == 2 * 2**30
    assert parse_size("500MB") == 500 * 10**6 and parse_size(7) == 7
    with pytest.raises(ValueError, match="max_shard_size"):
        parse_size("lots")
    with pytest.raises(ValueError, match="max_shard_size"):
        parse_size(0)


def test_dtype_option_and_bfloat16_files(tmp_path):
    model = build("mixtral")
    bf16 = MoEForCausalLM.from_pretrained(_saved(model, tmp_path / "f32"), dtype=genesis.bfloat16)
    assert {p.dtype for p in bf16.parameters()} == {genesis.bfloat16}
    bf16.save_pretrained(tmp_path / "bf16")
    with safe_open(str(tmp_path / "bf16" / WEIGHTS_NAME), framework="np") as h:
        key = "model.layers.0.block_sparse_moe.experts.0.w1.weight"
        assert str(h.get_slice(key).get_dtype()) == "BF16"
    auto = MoEForCausalLM.from_pretrained(tmp_path / "bf16", dtype="auto")
    assert {p.dtype for p in auto.parameters()} == {genesis.bfloat16}
    default = MoEForCausalLM.from_pretrained(tmp_path / "bf16")
    assert {p.dtype for p in default.parameters()} == {genesis.float32}
    expected = model.state_dict()["model.norm.weight"].numpy().astype(genesis.bfloat16.np)
    np.testing.assert_array_equal(default.state_dict()["model.norm.weight"].numpy(),
                                  expected.astype(np.float32))
    with pytest.raises(TypeError, match="floating"):
        MoEForCausalLM.from_pretrained(tmp_path / "bf16", dtype=genesis.int64)


def test_config_overrides(tmp_path):
    model = build("mixtral")
    loaded = MoEForCausalLM.from_pretrained(_saved(model, tmp_path), router_aux_loss_coef=0.5,
                                            check_memory=False)
    assert loaded.config.router_aux_loss_coef == 0.5
    assert not hasattr(loaded.config, "check_memory")


def test_hf_key_variants_are_accepted(tmp_path):
    model = build("qwen2_moe")
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / WEIGHTS_NAME)
    base = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}
    base["layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(4, np.float32)
    save_file(base, tmp_path / WEIGHTS_NAME)
    (tmp_path / "genesis_manifest.json").unlink()   # rewritten by another tool: unverified
    loaded = MoEForCausalLM.from_pretrained(tmp_path)
    np.testing.assert_array_equal(logits_of(loaded, IDS), logits_of(model, IDS))


def _saved(model, path):
    """A checkpoint as the hub ships it: HF files only, no genesis checksum manifest (the bad
    inputs below are edited afterwards and exercise the loader's own checks)."""
    model.save_pretrained(path)
    (path / "genesis_manifest.json").unlink()
    return path


def _rewrite(path, edit):
    state = dict(load_file(path / WEIGHTS_NAME))
    edit(state)
    save_file(state, path / WEIGHTS_NAME)


class TestBadInputs:
    def test_missing_directory(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="no checkpoint"):
            MoEForCausalLM.from_pretrained(tmp_path / "nope")

    def test_directory_without_weights(self, tmp_path):
        build("mixtral").config.save_pretrained(tmp_path)
        with pytest.raises(FileNotFoundError, match="model.safetensors"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_missing_config(self, tmp_path):
        _saved(build("mixtral"), tmp_path)
        os.remove(tmp_path / "config.json")
        with pytest.raises(FileNotFoundError, match="config.json"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_corrupt_file(self, tmp_path):
        _saved(build("mixtral"), tmp_path)
        (tmp_path / WEIGHTS_NAME).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
        with pytest.raises(RuntimeError, match="corrupt or truncated"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_truncated_file(self, tmp_path):
        _saved(build("mixtral"), tmp_path)
        data = (tmp_path / WEIGHTS_NAME).read_bytes()
        (tmp_path / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
        with pytest.raises(RuntimeError, match=WEIGHTS_NAME):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_missing_tensor_is_named(self, tmp_path):
        _saved(build("mixtral"), tmp_path)
        _rewrite(tmp_path, lambda s: s.pop("model.layers.1.self_attn.k_proj.weight"))
        with pytest.raises(ValueError, match=r"missing tensors \['model.layers.1.self_attn.k_proj"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_unexpected_tensor_is_named(self, tmp_path):
        _saved(build("mixtral"), tmp_path)
        _rewrite(tmp_path, lambda s: s.update({"model.extra.weight": np.zeros(3, np.float32)}))
        with pytest.raises(ValueError, match=r"unexpected tensors \['model.extra.weight'\]"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_wrong_shape_is_named(self, tmp_path):
        _saved(build("mixtral"), tmp_path)
        _rewrite(tmp_path, lambda s: s.update(
            {"model.norm.weight": np.ones(31, np.float32)}))
        with pytest.raises(ValueError, match=r"model.norm.weight: checkpoint \(31,\) vs model "
                                             r"\(32,\)"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_missing_expert(self, tmp_path):
        _saved(build("mixtral"), tmp_path)
        _rewrite(tmp_path, lambda s: s.pop("model.layers.0.block_sparse_moe.experts.1.w3.weight"))
        with pytest.raises(ValueError, match=r"missing tensors \['model.layers.0.mlp.experts."
                                             r"gate_up_proj is missing the up weights of "
                                             r"experts \[1\]'\]"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_wrong_expert_count(self, tmp_path):
        model = build("mixtral")
        _saved(model, tmp_path)
        model3 = build("mixtral", num_local_experts=3)
        model3.config.save_pretrained(tmp_path)
        with pytest.raises(ValueError, match=r"experts.3.w1.weight: expert 3, but the model's "
                                             r"model.layers.0.mlp.experts.gate_up_proj has "
                                             r"shape \(3, 48, 32\)"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_wrong_expert_count_fused_layout(self, tmp_path):
        build("genesis_moe").save_pretrained(tmp_path)
        build("genesis_moe", num_local_experts=3).config.save_pretrained(tmp_path)
        with pytest.raises(ValueError, match=r"gate_up_proj: checkpoint \(4, 48, 32\) vs model "
                                             r"\(3, 48, 32\)"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_index_with_missing_shard(self, tmp_path):
        build("mixtral").save_pretrained(tmp_path, max_shard_size="20KB")
        os.remove(tmp_path / "genesis_manifest.json")
        os.remove(tmp_path / "model-00002-of-{:05d}.safetensors".format(
            len([f for f in os.listdir(tmp_path) if f.startswith("model-")])))
        with pytest.raises(FileNotFoundError, match="do not exist"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_bad_index(self, tmp_path):
        build("mixtral").save_pretrained(tmp_path, max_shard_size="20KB")
        os.remove(tmp_path / "genesis_manifest.json")
        (tmp_path / WEIGHTS_INDEX_NAME).write_text("[1, 2]")
        with pytest.raises(ValueError, match="not a valid safetensors index"):
            MoEForCausalLM.from_pretrained(tmp_path)

    def test_save_options(self, tmp_path):
        model = build("mixtral")
        with pytest.raises(ValueError, match="safetensors only"):
            model.save_pretrained(tmp_path, safe_serialization=False)
        with pytest.raises(ValueError, match="expert_layout"):
            model.save_pretrained(tmp_path, expert_layout="columns")
        (tmp_path / "file").write_text("x")
        with pytest.raises(ValueError, match="is a file"):
            model.save_pretrained(tmp_path / "file")


def test_state_dict_conversion_is_invertible():
    rng = np.random.default_rng(0)
    state = {"model.layers.0.mlp.gate.weight": rng.standard_normal((3, 4)),
             "model.layers.0.mlp.experts.gate_up_proj": rng.standard_normal((3, 6, 4)),
             "model.layers.0.mlp.experts.down_proj": rng.standard_normal((3, 4, 3)),
             "model.layers.0.mlp.shared_experts.up_proj.weight": rng.standard_normal((2, 4))}
    for model_type in ("mixtral", "qwen2_moe", "deepseek", "genesis_moe"):
        for layout in ("fused", "per_expert"):
            back = hf_to_genesis_state_dict(genesis_to_hf_state_dict(state, model_type, layout))
            assert set(back) == set(state)
            for key, value in state.items():
                np.testing.assert_array_equal(back[key], value)


def test_loading_peak_memory_is_the_model_plus_one_tensor(tmp_path):
    """Peak RSS growth of a fresh process loading ~50 MB of float32 weights stays near the
    model's size (a memory-mapped read kept the whole file resident too: about twice)."""
    import subprocess
    import sys
    from genesis.models.transformers import MoEConfig, MoEForCausalLM
    config = MoEConfig.from_dict(dict(model_type="llama", vocab_size=8192, hidden_size=256,
                                      intermediate_size=512, num_hidden_layers=8,
                                      num_attention_heads=4, tie_word_embeddings=False))
    MoEForCausalLM(config).save_pretrained(tmp_path)
    child = (
        "import sys\n"
        "from genesis.models.transformers import MoEForCausalLM\n"
        "def status(field):  # VmHWM: this process's peak RSS (ru_maxrss inherits the parent's)\n"
        "    line = next(l for l in open('/proc/self/status') if l.startswith(field + ':'))\n"
        "    return int(line.split()[1]) * 1024\n"
        "base = status('VmRSS')\n"
        "m = MoEForCausalLM.from_pretrained(sys.argv[1])\n"
        "peak = status('VmHWM')\n"
        "print(peak - base, sum(p.numel() * p.element_size() for p in m.parameters()))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", child, str(tmp_path)], capture_output=True,
                         text=True, check=True, env=dict(os.environ, PYTHONPATH=root))
    grown, model_bytes = map(int, out.stdout.split())
    largest = 8192 * 256 * 4
    assert grown < model_bytes + largest + 8 * 2 ** 20, (grown, model_bytes)
