"""GGUF loading: every listed tensor type to the gguf dequantiser's values; logits, tokenizer
and chat template equal to transformers loading the same file with ``gguf_file=``."""
import os

import numpy as np
import pytest

pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

import genesis  # noqa: E402
from genesis.models.transformers import MoEForCausalLM  # noqa: E402
from genesis.models.transformers.tokenization import AutoTokenizer  # noqa: E402

from .gguf_files import QUANT_TYPES, write_llama_gguf  # noqa: E402

CONFIG = dict(vocab_size=267, hidden_size=256, intermediate_size=256, num_hidden_layers=1,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
              rms_norm_eps=1e-5, rope_theta=10000.0)


def _llama_state(config, seed=0):
    """A random HF Llama state dict (NumPy), shapes as transformers names them."""
    rng = np.random.default_rng(seed)
    d, inter, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    head = d // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head
    shapes = {"model.embed_tokens.weight": (v, d), "model.norm.weight": (d,),
              "lm_head.weight": (v, d)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (d,),
                       p + "post_attention_layernorm.weight": (d,),
                       p + "self_attn.q_proj.weight": (d, d),
                       p + "self_attn.k_proj.weight": (kv, d),
                       p + "self_attn.v_proj.weight": (kv, d),
                       p + "self_attn.o_proj.weight": (d, d),
                       p + "mlp.gate_proj.weight": (inter, d), p + "mlp.up_proj.weight": (inter, d),
                       p + "mlp.down_proj.weight": (d, inter)})
    return {k: (rng.standard_normal(s) * (0.02 if len(s) == 2 else 1.0) + (len(s) == 1))
            .astype(np.float32) for k, s in shapes.items()}


@pytest.mark.parametrize("qtype", QUANT_TYPES)
def test_each_tensor_type_loads_to_the_gguf_dequantised_values(tmp_path, qtype, monkeypatch):
    # small chunks: every weight is dequantised in several pieces of rows
    monkeypatch.setattr("genesis.models.transformers.gguf._CHUNK_ELEMENTS", 5000)
    path = str(tmp_path / f"tiny-{qtype}.gguf")
    held = write_llama_gguf(path, _llama_state(CONFIG), CONFIG, qtype)
    model = MoEForCausalLM.from_pretrained(path)
    state = model.state_dict()
    assert set(state) == set(held)
    for name, values in held.items():
        np.testing.assert_array_equal(state[name].numpy(), values, err_msg=name)


def test_quantised_weights_stay_near_the_originals_and_q_k_are_unpermuted(tmp_path):
    # Q8_0 is quantised from real values: every weight (Q/K in HF row order) is close to them
    state = _llama_state(CONFIG)
    path = str(tmp_path / "q8.gguf")
    write_llama_gguf(path, state, CONFIG, "Q8_0")
    loaded = MoEForCausalLM.from_pretrained(path).state_dict()
    for name, values in state.items():
        np.testing.assert_allclose(loaded[name].numpy(), values, atol=2e-3, err_msg=name)


def test_bfloat16_dtype(tmp_path):
    path = str(tmp_path / "bf.gguf")
    held = write_llama_gguf(path, _llama_state(CONFIG), CONFIG, "Q4_0")
    model = MoEForCausalLM.from_pretrained(path, dtype=genesis.bfloat16)
    weight = model.state_dict()["model.layers.0.mlp.up_proj.weight"]
    assert weight.dtype == genesis.bfloat16
    np.testing.assert_allclose(weight.float().numpy(), held["model.layers.0.mlp.up_proj.weight"],
                               rtol=1e-2, atol=1e-6)


def test_config_comes_from_the_metadata(tmp_path):
    path = str(tmp_path / "c.gguf")
    write_llama_gguf(path, _llama_state(CONFIG), CONFIG, "F32")
    config = MoEForCausalLM.from_pretrained(path).config
    assert config.model_type == "llama"
    for key, value in CONFIG.items():
        assert getattr(config, key) == pytest.approx(value), key
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (0, 2, 0)
    assert config.tie_word_embeddings is False


def test_unknown_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(ValueError, match="cannot read .* as a GGUF file"):
        MoEForCausalLM.from_pretrained(str(bad))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = dict(CONFIG, hidden_size=64, intermediate_size=96, num_hidden_layers=2)
    torch.manual_seed(0)
    ref = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config,
                                                                 tie_word_embeddings=False))
    directory = tmp_path_factory.mktemp("gguf")
    path = str(directory / "tiny.gguf")
    write_llama_gguf(path, {k: v.numpy() for k, v in ref.state_dict().items()}, config, "Q8_0")
    return directory, path


def test_logits_match_transformers_gguf_loader(tiny_llama):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    directory, path = tiny_llama
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=os.path.basename(path), dtype=torch.float32).eval()
    ids = np.array([[5, 9, 100, 200, 266, 3, 7, 40]])
    ours = MoEForCausalLM.from_pretrained(path)(genesis.tensor(ids), return_dict=True)
    with torch.no_grad():
        want = ref(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ours.logits.detach().numpy(), want, atol=2e-5, rtol=1e-4)


def test_tokenizer_and_chat_template_match_transformers(tiny_llama):
    transformers = pytest.importorskip("transformers")
    directory, path = tiny_llama
    ref = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=os.path.basename(path))
    tok = AutoTokenizer.from_pretrained(path)
    for text in ["hello world", " hello  world!\n", "<|im_start|>hi<|im_end|>", "héllo wörld"]:
        assert tok.encode(text) == ref.encode(text), text
        assert tok.decode(tok.encode(text)) == ref.decode(ref.encode(text))
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (ref.bos_token, ref.eos_token,
                                                             ref.pad_token)
    chat = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "world"},
            {"role": "user", "content": "hi"}]
    for gen in (False, True):
        assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen) == \
            ref.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)
        assert tok.apply_chat_template(chat, add_generation_prompt=gen)["input_ids"] == \
            ref.apply_chat_template(chat, add_generation_prompt=gen)["input_ids"]


def test_qwen2_logits_match_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = dict(CONFIG, hidden_size=64, intermediate_size=96, num_hidden_layers=2)
    torch.manual_seed(1)
    ref = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**config,
                                                                 tie_word_embeddings=False))
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    assert any(k.endswith("q_proj.bias") for k in state)
    path = str(tmp_path / "qwen2.gguf")
    write_llama_gguf(path, state, config, "Q8_0", arch="qwen2")
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file="qwen2.gguf", dtype=torch.float32).eval()
    ours = MoEForCausalLM.from_pretrained(path)
    assert ours.config.model_type == "qwen2"
    ids = np.array([[5, 9, 100, 200, 266, 3]])
    with torch.no_grad():
        want = ref(torch.tensor(ids)).logits.numpy()
    got = ours(genesis.tensor(ids), return_dict=True).logits.detach().numpy()
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("qtype", ["F32", "Q8_0"])
def test_mixtral_experts_stacked_in_gguf_load_into_their_slots(tmp_path, qtype, monkeypatch):
    monkeypatch.setattr("genesis.models.transformers.gguf._CHUNK_ELEMENTS", 5000)
    from genesis.models.transformers import MoEConfig
    from genesis.models.transformers.checkpoint import genesis_to_hf_state_dict
    config = dict(CONFIG, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                  num_local_experts=4, num_experts_per_tok=2)
    genesis.manual_seed(0)
    model = MoEForCausalLM(MoEConfig.from_dict(dict(config, model_type="mixtral",
                                                    tie_word_embeddings=False)))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    hf = genesis_to_hf_state_dict(state, "mixtral", "per_expert")
    assert "model.layers.0.block_sparse_moe.experts.3.w2.weight" in hf
    path = str(tmp_path / "moe.gguf")
    held = write_llama_gguf(path, hf, config, qtype)
    loaded = MoEForCausalLM.from_pretrained(path)
    assert loaded.config.model_type == "mixtral" and loaded.config.num_local_experts == 4
    got = loaded.state_dict()
    inter = config["intermediate_size"]
    for layer in range(2):
        gate_up = got[f"model.layers.{layer}.mlp.experts.gate_up_proj"].numpy()
        np.testing.assert_array_equal(gate_up[:, :inter], held[f"blk.{layer}.ffn_gate_exps.weight"])
        np.testing.assert_array_equal(gate_up[:, inter:], held[f"blk.{layer}.ffn_up_exps.weight"])
        np.testing.assert_array_equal(got[f"model.layers.{layer}.mlp.experts.down_proj"].numpy(),
                                      held[f"blk.{layer}.ffn_down_exps.weight"])
    ids = genesis.tensor(np.array([[5, 9, 100, 200, 266, 3]]))
    want = model(ids, return_dict=True).logits.detach().numpy()
    out = loaded(ids, return_dict=True).logits.detach().numpy()
    np.testing.assert_allclose(out, want, atol=1e-5 if qtype == "F32" else 2e-2)


def test_sentencepiece_tokenizer_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    gguf = pytest.importorskip("gguf")
    pieces = ["\u2581", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "\u2581h", "\u2581w",
              "hell", "\u2581hell", "\u2581hello", "or", "\u2581wor", "\u2581world"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(len(pieces))]
    w = gguf.GGUFWriter(str(tmp_path / "sp.gguf"), "llama")
    w.add_block_count(1)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ref = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file="sp.gguf")
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "sp.gguf"))
    for text in ["hello world", "hello  wörld", " hello", "hell"]:
        assert tok.encode(text) == ref.encode(text), text
        assert tok.decode(tok.encode(text), skip_special_tokens=True) == \
            ref.decode(ref.encode(text), skip_special_tokens=True), text
