"""llama.cpp GGUF files: config, weights (dequantised) and tokenizer from one ``.gguf`` file.

Reading goes through the ``gguf`` package (the optional ``gguf`` extra): its reader maps the
file, its dequantiser turns every supported tensor type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_*,
the K-quants, ...) into float32, and genesis casts each tensor into the model's dtype as it is
copied, one tensor at a time. Architectures: ``llama`` (dense, and Mixtral-style experts when
the file has ``expert_count``) and ``qwen2``. llama.cpp stores Llama's Q/K projections with the
rotary halves interleaved; they are permuted back exactly as transformers' GGUF loader does.
"""
import os

import numpy as np

__all__ = ["load_gguf_model", "load_gguf_tokenizer", "gguf_config_dict", "read_gguf_metadata"]

_CONFIG_KEYS = {  # GGUF "<arch>.<key>" -> HF config field
    "context_length": "max_position_embeddings",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "embedding_length": "hidden_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "rope.freq_base": "rope_theta",
    "vocab_size": "vocab_size",
    "expert_count": "num_local_experts",
    "expert_used_count": "num_experts_per_tok",
}
_TOKEN_IDS = {"bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id",
              "unknown_token_id": "unk_token_id", "padding_token_id": "pad_token_id"}
_ARCHITECTURES = ("llama", "qwen2")
_LAYER_NAMES = {  # GGUF block tensor -> HF name inside model.layers.N
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "ffn_gate_inp": "mlp.gate",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm",
              "output": "lm_head"}
_EXPERT_PARTS = {"ffn_gate_exps": "gate", "ffn_up_exps": "up", "ffn_down_exps": "down"}


def _reader(path):
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ImportError("loading .gguf files needs the 'gguf' package: pip install "
                          "'genesis[gguf]'") from None
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no GGUF file at {path!r}")
    try:
        return GGUFReader(path)
    except Exception as exc:
        raise ValueError(f"cannot read {path} as a GGUF file: {exc}") from None


def read_gguf_metadata(reader):
    """``{key: value}`` of a GGUF reader's metadata (strings, numbers and lists)."""
    return {key: field.contents() for key, field in reader.fields.items()
            if not key.startswith("GGUF.")}


def gguf_config_dict(metadata, tensor_names):
    """The HF ``config.json`` dict that a GGUF file's metadata describes."""
    arch = metadata.get("general.architecture")
    if arch not in _ARCHITECTURES:
        raise ValueError(f"GGUF architecture {arch!r} is not supported; supported: "
                         f"{list(_ARCHITECTURES)}")
    experts = metadata.get(f"{arch}.expert_count") or 0
    config = {"model_type": "mixtral" if experts else arch}
    for key, name in _CONFIG_KEYS.items():
        if f"{arch}.{key}" in metadata:
            config[name] = metadata[f"{arch}.{key}"]
    if "vocab_size" not in config and "tokenizer.ggml.tokens" in metadata:
        config["vocab_size"] = len(metadata["tokenizer.ggml.tokens"])
    heads = config.get("num_attention_heads")
    rope_dim = metadata.get(f"{arch}.rope.dimension_count")
    if arch == "llama" and rope_dim is not None and heads:
        config["head_dim"] = rope_dim
    for key, name in _TOKEN_IDS.items():
        if f"tokenizer.ggml.{key}" in metadata:
            config[name] = int(metadata[f"tokenizer.ggml.{key}"])
    config["tie_word_embeddings"] = "output.weight" not in tensor_names
    if arch == "qwen2":
        config["use_sliding_window"] = False
    return config


def _hf_name(gguf_name):
    """``(HF tensor name, expert part or None)`` of a GGUF tensor name, or None if unknown."""
    stem, _, suffix = gguf_name.rpartition(".")
    if stem in _TOP_NAMES:
        return f"{_TOP_NAMES[stem]}.{suffix}", None
    parts = stem.split(".")
    if len(parts) != 3 or parts[0] != "blk":
        return None
    prefix = f"model.layers.{parts[1]}"
    if parts[2] in _EXPERT_PARTS:
        part = _EXPERT_PARTS[parts[2]]
        stacked = "down_proj" if part == "down" else "gate_up_proj"
        return f"{prefix}.mlp.experts.{stacked}", part
    if parts[2] in _LAYER_NAMES:
        return f"{prefix}.{_LAYER_NAMES[parts[2]]}.{suffix}", None
    return None


def _unpermute(weights, n_head):
    """Undo llama.cpp's Q/K row permutation (``convert_hf_to_gguf.py``'s ``permute``)."""
    dim = weights.shape[0] // n_head // 2
    w = weights.reshape(n_head, dim, 2, *weights.shape[1:])
    return w.swapaxes(2, 1).reshape(weights.shape)


_CHUNK_ELEMENTS = 1 << 22  # dequantise at most this many values at a time (16 MiB of float32)


def _dequantize(tensor, data=None):
    """Values of ``data`` (default: the whole tensor; else leading rows of it) as float32 in
    HF's (row-major, outermost-first) shape."""
    from gguf import GGMLQuantizationType, quants
    data = tensor.data if data is None else data
    try:
        values = quants.dequantize(data, tensor.tensor_type)
    except NotImplementedError:
        raise ValueError(f"GGUF tensor {tensor.name}: type "
                         f"{GGMLQuantizationType(tensor.tensor_type).name} cannot be "
                         f"dequantised by the installed gguf package") from None
    shape = tuple(int(n) for n in reversed(tensor.shape))
    return np.asarray(values, dtype=np.float32).reshape((len(data),) + shape[1:])


def _copy_tensor(param, index, tensor, config):
    """Dequantise ``tensor`` into ``param[index]``: Llama's Q/K whole (to un-permute their
    rows), everything else in chunks of outer rows, so loading holds one chunk, not a tensor."""
    from . import checkpoint
    heads = None
    if config["model_type"] in ("llama", "mixtral"):
        if ".attn_q." in tensor.name:
            heads = config["num_attention_heads"]
        elif ".attn_k." in tensor.name:
            heads = config.get("num_key_value_heads", config["num_attention_heads"])
    if heads is not None or tensor.data.ndim == 1:
        values = _dequantize(tensor)
        checkpoint.write_tensor(param, index, _unpermute(values, heads) if heads else values)
        return
    rows = len(tensor.data)
    step = max(1, _CHUNK_ELEMENTS * rows // max(1, int(tensor.n_elements)))
    rest = () if index is Ellipsis else index[1:]
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        checkpoint.write_tensor(param, (slice(start, stop),) + rest,
                                _dequantize(tensor, tensor.data[start:stop]))


def load_gguf_model(cls, path, dtype=None, check_memory=True, **overrides):
    """``cls`` built from a GGUF file's metadata, weights dequantised into ``dtype``."""
    from ... import dtypes
    from ...nn import init
    from . import checkpoint
    from .configuration_moe import MoEConfig
    reader = _reader(path)
    metadata = read_gguf_metadata(reader)
    config_dict = gguf_config_dict(metadata, {t.name for t in reader.tensors})
    config_dict.update(overrides)
    config = MoEConfig.from_dict(config_dict)
    target = checkpoint.model_dtype(dtype, config)
    tensors, headers, targets, unknown = {}, {}, {}, []
    for tensor in reader.tensors:
        mapped = _hf_name(tensor.name)
        if mapped is None:
            unknown.append(tensor.name)
            continue
        name, part = mapped
        tensors[tensor.name] = tensor
        headers[tensor.name] = (path, tuple(int(n) for n in reversed(tensor.shape)))
        # a stacked expert tensor fills its part (gate/up/down) of every expert at once
        targets[tensor.name] = (name, None if part is None else checkpoint.ALL_EXPERTS, part)
    if unknown:
        raise ValueError(f"from_pretrained: {path} has GGUF tensors genesis cannot place: "
                         f"{unknown[:20]}")
    with dtypes.default_dtype(target), init.skip_init():
        model = cls(config, check_memory=check_memory)
    plan = checkpoint.load_plan(model, headers, path, targets=targets)
    expected = model.state_dict(keep_vars=True)
    for key, (name, index) in plan.items():
        _copy_tensor(expected[name], index, tensors[key], config_dict)
    model.eval()
    return model


# ----------------------------------------------------------------------------- tokenizer

_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_PRE_TOKENIZER_SPLITS = {"llama3": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT,
                         "llama-bpe": _LLAMA3_SPLIT, "smaug-bpe": _LLAMA3_SPLIT,
                         "qwen2": _QWEN2_SPLIT, "deepseek-r1-qwen": _QWEN2_SPLIT}
_CONTROL, _USER_DEFINED = 3, 4


def _bytes_to_unicode():
    """GPT-2's byte -> printable character table (the alphabet of byte-level BPE vocabularies)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _byte_level_bpe(tokens, merges, pre):
    """GPT-2-style byte-level BPE (``tokenizer.ggml.model == "gpt2"``), as transformers builds
    it: GPT2's pre-tokenizer, or the split regex the file's ``pre`` names."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    spelling = _bytes_to_unicode()
    alphabet = set(spelling.values())
    vocab = {tok if set(tok) <= alphabet else "".join(spelling[b] for b in tok.encode("utf-8")): i
             for i, tok in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges]))
    split = _PRE_TOKENIZER_SPLITS.get(pre)
    if split is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    return tok, alphabet


def _sentencepiece_bpe(tokens, scores, merges):
    """Llama's sentencepiece BPE (``tokenizer.ggml.model == "llama"``): merges from the file or,
    as transformers does, rebuilt from the vocabulary ordered by score."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if merges:
        pairs = [tuple(m.split(" ")) for m in merges]
    else:
        by_score = dict(zip(tokens, scores))
        found = []
        for merged, score in by_score.items():
            local = [(merged[:i], merged[i:], score) for i in range(1, len(merged))
                     if merged[:i] in vocab and merged[i:] in vocab]
            found.extend(sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]])))
        found.sort(key=lambda v: (v[2], len(v[0]), len(v[1])), reverse=True)
        pairs = [(a, b) for a, b, _ in found]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first",
                                                 split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(content=" ", left=1)])
    return tok, None


def load_gguf_tokenizer(path, **kwargs):
    """The tokenizer a GGUF file describes (byte-level or sentencepiece BPE), with its special
    tokens and chat template."""
    from tokenizers import AddedToken, processors
    from .tokenization import PreTrainedTokenizerFast
    metadata = read_gguf_metadata(_reader(path))
    kind = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise ValueError(f"{path} holds no tokenizer (no tokenizer.ggml.tokens)")
    merges = metadata.get("tokenizer.ggml.merges") or []
    if kind == "gpt2":
        tok, alphabet = _byte_level_bpe(tokens, merges, metadata.get("tokenizer.ggml.pre"))
    elif kind == "llama":
        tok, alphabet = _sentencepiece_bpe(tokens, metadata.get("tokenizer.ggml.scores"), merges)
    else:
        raise ValueError(f"{path}: GGUF tokenizer model {kind!r} is not supported (supported: "
                         f"'gpt2', 'llama')")
    types = metadata.get("tokenizer.ggml.token_type") or []
    control = [AddedToken(t, normalized=False, special=True)
               for t, kind_ in zip(tokens, types)
               if kind_ == _CONTROL and (alphabet is None or set(t) <= alphabet)]
    tok.add_special_tokens(control)
    user = [AddedToken(t, normalized=False, special=False)
            for t, kind_ in zip(tokens, types) if kind_ == _USER_DEFINED]
    tok.add_tokens(user)
    special = {name: tokens[int(metadata[f"tokenizer.ggml.{key}"])]
               for key, name in (("bos_token_id", "bos_token"), ("eos_token_id", "eos_token"),
                                 ("unknown_token_id", "unk_token"),
                                 ("padding_token_id", "pad_token"))
               if f"tokenizer.ggml.{key}" in metadata}
    add_bos = metadata.get("tokenizer.ggml.add_bos_token", kind == "llama")
    if add_bos and "bos_token" in special:
        bos = special["bos_token"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
            special_tokens=[(bos, tokens.index(bos))])
    options = {"chat_template": metadata.get("tokenizer.chat_template"), **special, **kwargs}
    return PreTrainedTokenizerFast(tokenizer_object=tok, **options)
