"""Tiny llama.cpp GGUF files written with the ``gguf`` package's own writer (test helper)."""
import numpy as np

gguf = None

QUANT_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K")
# offsets of the float16 scale fields in one block of the K-quants (random bytes elsewhere)
_K_SCALES = {"Q4_K": (0, 2), "Q6_K": (208,)}

CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
                 "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def _gguf():
    global gguf
    if gguf is None:
        import gguf as module
        gguf = module
    return gguf


def llama_cpp_permute(w, n_head):
    """llama.cpp's ``convert_hf_to_gguf.py`` permutation of Llama's Q/K rows."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def encode_tensor(values, qtype, rng):
    """(raw bytes array to write, float32 values those bytes mean) for ``values`` in ``qtype``.

    The K-quants cannot be quantised by the gguf package, so their blocks are random bytes
    with sane float16 scales; every other type is quantised from ``values``."""
    g = _gguf()
    q = g.GGMLQuantizationType[qtype]
    if qtype == "F32":
        raw = values.astype(np.float32)
    elif qtype == "F16":
        raw = values.astype(np.float16)
    elif qtype in _K_SCALES:
        block, size = g.GGML_QUANT_SIZES[q]
        rows, cols = values.shape
        raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
        for offset in _K_SCALES[qtype]:
            scale = rng.uniform(0.001, 0.01, size=(rows, cols // block)).astype(np.float16)
            raw[..., offset:offset + 2] = scale.view(np.uint8).reshape(rows, cols // block, 2)
        raw = raw.reshape(rows, -1)
    else:
        raw = g.quants.quantize(values.astype(np.float32), q)
    meaning = g.quants.dequantize(raw, q)
    return raw, np.asarray(meaning, dtype=np.float32).reshape(values.shape), q


def _tokens():
    """A byte-level BPE vocabulary: GPT-2's 256-character alphabet, a few merges, 3 controls."""
    from genesis.models.transformers.gguf import _bytes_to_unicode
    alphabet = list(_bytes_to_unicode().values())
    merges = ["h e", "l l", "he ll", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d"]
    merged = [m.replace(" ", "") for m in merges]
    controls = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = controls + alphabet + merged
    types = [3] * len(controls) + [1] * (len(tokens) - len(controls))
    return tokens, types, merges


_TOP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight"}
_LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
          "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
          "mlp.down_proj": "ffn_down", "block_sparse_moe.gate": "ffn_gate_inp"}
_EXPERT = {"w1": "ffn_gate_exps", "w3": "ffn_up_exps", "w2": "ffn_down_exps"}


def _gguf_tensors(hf_state):
    """``{gguf name: (hf names, array)}``: Mixtral's per-expert w1/w3/w2 stacked into
    ``ffn_{gate,up,down}_exps [E, ...]`` as llama.cpp stores them."""
    out, experts = {}, {}
    for name, value in hf_state.items():
        value = np.asarray(value, dtype=np.float32)
        if name in _TOP:
            out[_TOP[name]] = ([name], value)
            continue
        parts = name.split(".")
        if ".experts." in name:  # model.layers.L.block_sparse_moe.experts.E.wX.weight
            key = f"blk.{parts[2]}.{_EXPERT[parts[6]]}.weight"
            experts.setdefault(key, {})[int(parts[5])] = (name, value)
            continue
        out[f"blk.{parts[2]}.{_LAYER['.'.join(parts[3:-1])]}.{parts[-1]}"] = ([name], value)
    for key, by_expert in experts.items():
        order = [by_expert[e] for e in sorted(by_expert)]
        out[key] = ([n for n, _ in order], np.stack([v for _, v in order]))
    return out


def write_llama_gguf(path, hf_state, config, qtype="F32", seed=0, with_tokenizer=True,
                     arch="llama"):
    """Write a Llama/Mixtral (``arch="llama"``) or Qwen2 model (HF state dict of float arrays)
    to ``path``; weights in ``qtype``, norms and biases in F32. Returns ``{gguf name: float32
    values the file holds, in HF row order}`` keyed by HF name (GGUF name for stacked experts)."""
    g = _gguf()
    rng = np.random.default_rng(seed)
    w = g.GGUFWriter(path, arch)
    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config["num_key_value_heads"])
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_rope_freq_base(config["rope_theta"])
    if arch == "llama":
        w.add_rope_dimension_count(config["hidden_size"] // config["num_attention_heads"])
    w.add_vocab_size(config["vocab_size"])
    if config.get("num_local_experts"):
        w.add_expert_count(config["num_local_experts"])
        w.add_expert_used_count(config["num_experts_per_tok"])
    if with_tokenizer:
        tokens, types, merges = _tokens()
        assert len(tokens) == config["vocab_size"], (len(tokens), config["vocab_size"])
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(0)
        w.add_eos_token_id(2)
        w.add_pad_token_id(0)
        w.add_add_bos_token(False)
        w.add_chat_template(CHAT_TEMPLATE)
    held = {}
    for gname, (names, stored) in _gguf_tensors(hf_state).items():
        key = names[0] if len(names) == 1 else gname
        heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]
                 }.get(gname.split(".")[-2]) if arch == "llama" and gname.endswith("weight") \
            else None
        if heads:
            stored = llama_cpp_permute(stored, heads)
        if stored.ndim == 1 or (gname.endswith("ffn_gate_inp.weight") and qtype != "F32"):
            w.add_tensor(gname, stored)
            held[key] = _unpermute_reference(stored, heads) if heads else stored
            continue
        raw, meaning, q = encode_tensor(stored, qtype, rng)
        if qtype in ("F32", "F16"):
            w.add_tensor(gname, raw)
        else:
            w.add_tensor(gname, raw, raw_shape=raw.shape, raw_dtype=q)
        held[key] = _unpermute_reference(meaning, heads) if heads else meaning
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return held


def _unpermute_reference(w, n_head):
    """The inverse of ``llama_cpp_permute``, found by permuting row indices."""
    order = llama_cpp_permute(np.arange(w.shape[0]), n_head)
    out = np.empty_like(w)
    out[order] = w
    return out
