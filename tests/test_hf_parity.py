"""Parity with HuggingFace transformers: tiny random checkpoints give the same logits, loss and
greedy tokens in genesis, and checkpoints genesis writes load in transformers."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import genesis  # noqa: E402
from genesis.models.transformers import MoEForCausalLM  # noqa: E402

ATOL = 1e-5
COMMON = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              initializer_range=0.2, bos_token_id=1, eos_token_id=2)


def hf_model(kind, **extra):
    """A tiny random float32 HF model of ``kind`` (eager attention)."""
    torch.manual_seed(0)
    if kind == "mixtral":
        cfg = transformers.MixtralConfig(**COMMON, num_local_experts=4, num_experts_per_tok=2,
                                         rms_norm_eps=1e-5, **extra)
        cls = transformers.MixtralForCausalLM
    elif kind == "qwen2_moe":
        cfg = transformers.Qwen2MoeConfig(**COMMON, num_experts=4, num_experts_per_tok=2,
                                          moe_intermediate_size=24,
                                          shared_expert_intermediate_size=40,
                                          use_sliding_window=False, **extra)
        cls = transformers.Qwen2MoeForCausalLM
    elif kind == "llama":
        cfg = transformers.LlamaConfig(**COMMON, tie_word_embeddings=True, **extra)
        cls = transformers.LlamaForCausalLM
    else:
        cfg = transformers.Qwen2Config(**COMMON, use_sliding_window=False, **extra)
        cls = transformers.Qwen2ForCausalLM
    cfg._attn_implementation = "eager"
    model = cls(cfg).float().eval()
    return model


CASES = {
    "mixtral": dict(kind="mixtral"),
    "qwen2_moe_norm": dict(kind="qwen2_moe", norm_topk_prob=True),
    "qwen2_moe_no_norm_mixed": dict(kind="qwen2_moe", norm_topk_prob=False, mlp_only_layers=[1]),
    "llama_tied": dict(kind="llama"),
    "qwen2": dict(kind="qwen2"),
}


def batch():
    """Two prompts, the second left-padded by 3, and their labels (-100 at pads)."""
    rng = np.random.default_rng(1)
    ids = rng.integers(3, 97, (2, 9))
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    ids[1, :3] = 0
    labels = np.where(mask == 1, ids, -100)
    return ids, mask, labels


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request, tmp_path_factory):
    spec = dict(CASES[request.param])
    hf = hf_model(spec.pop("kind"), **spec)
    path = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(path, safe_serialization=True)
    return request.param, hf, MoEForCausalLM.from_pretrained(path)


def test_logits_match(pair):
    name, hf, ours = pair
    ids, mask, _ = batch()
    with torch.no_grad():
        ref = hf(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    with genesis.no_grad():
        got = ours(genesis.tensor(ids), attention_mask=genesis.tensor(mask)).numpy()
    keep = mask.astype(bool)
    diff = np.abs(got[keep] - ref[keep]).max()
    print(f"{name}: max |logit diff| = {diff:.2e}")
    assert diff < ATOL, f"{name}: max |logit diff| {diff}"


def test_loss_matches(pair):
    name, hf, ours = pair
    ids, mask, labels = batch()
    with torch.no_grad():
        ref = hf(torch.tensor(ids), attention_mask=torch.tensor(mask),
                 labels=torch.tensor(labels)).loss.item()
    with genesis.no_grad():
        loss, _ = ours(genesis.tensor(ids), attention_mask=genesis.tensor(mask),
                       labels=genesis.tensor(labels))
    assert abs(loss.item() - ref) < ATOL, (name, loss.item(), ref)


def test_greedy_generation_matches(pair):
    name, hf, ours = pair
    ids, mask, _ = batch()
    with torch.no_grad():
        ref = hf.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                          max_new_tokens=10, pad_token_id=0).numpy()
    got = ours.generate(genesis.tensor(ids), attention_mask=genesis.tensor(mask),
                        max_new_tokens=10, pad_token_id=0).numpy()
    np.testing.assert_array_equal(got, ref, err_msg=name)


@pytest.mark.parametrize("case", ["mixtral", "qwen2_moe_no_norm_mixed", "llama_tied"])
def test_genesis_checkpoint_loads_in_transformers(case, tmp_path):
    spec = dict(CASES[case])
    hf = hf_model(spec.pop("kind"), **spec)
    hf.save_pretrained(tmp_path / "hf")
    ours = MoEForCausalLM.from_pretrained(tmp_path / "hf")
    ours.save_pretrained(tmp_path / "genesis", max_shard_size="30KB")
    back = type(hf).from_pretrained(tmp_path / "genesis", attn_implementation="eager").float()
    back.eval()
    ids, mask, _ = batch()
    with torch.no_grad():
        ref = back(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    with genesis.no_grad():
        got = ours(genesis.tensor(ids), attention_mask=genesis.tensor(mask)).numpy()
    keep = mask.astype(bool)
    assert np.abs(got[keep] - ref[keep]).max() < ATOL
    for key, value in hf.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key].numpy(), value.numpy(), err_msg=key)


def test_sharded_hf_checkpoint_loads(tmp_path):
    hf = hf_model("mixtral")
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ours = MoEForCausalLM.from_pretrained(tmp_path)
    ids, mask, _ = batch()
    with torch.no_grad():
        ref = hf(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    with genesis.no_grad():
        got = ours(genesis.tensor(ids), attention_mask=genesis.tensor(mask)).numpy()
    keep = mask.astype(bool)
    assert np.abs(got[keep] - ref[keep]).max() < ATOL
