"""HuggingFace checkpoints: ``config.json`` + safetensors (single file or sharded) in and out.

Reading accepts the hub layouts of Mixtral (``block_sparse_moe.experts.{e}.w1/w3/w2``),
Qwen2-MoE and DeepSeek-MoE (``mlp.experts.{e}.{gate,up,down}_proj``, Qwen's singular
``shared_expert``), HF v5 fused experts (``mlp.experts.gate_up_proj`` / ``down_proj``) and dense
Llama/Qwen2, and maps them onto genesis's parameter names, where experts are stacked
``gate_up_proj [E, 2I, d]`` (gate rows first) and ``down_proj [E, d, I]``.
Writing emits the per-expert hub layout of ``config.model_type`` (genesis's own
``genesis_moe`` type keeps the fused layout, which is also HF v5's), sharded like HF.
Files are read with ``safetensors.numpy``: no torch, no pickle. Persistent buffers are saved
with the parameters (``genesis_moe`` only: the Genesis router's centroids, load EMA, active
slots and step counter, so a loaded model routes and grows exactly as the saved one).
"""
import json
import os
import re

import numpy as np

from ... import backends, dtypes
from ..._atomic import atomic_write
from ...serialization import write_safetensors
from ...autograd import no_grad
from ...nn import init
from .manifest import read_manifest, verify_checkpoint, write_manifest

__all__ = ["load_pretrained", "load_plan", "write_tensor", "model_dtype", "save_pretrained",
           "load_hf_state_dict", "hf_to_genesis_state_dict",
           "genesis_to_hf_state_dict", "split_state_dict_into_shards", "parse_size",
           "CONFIG_NAME", "WEIGHTS_NAME", "WEIGHTS_INDEX_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
_SHARD_RE = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
_EXPERT_RE = re.compile(r"^(?P<prefix>.+\.experts)\.(?P<e>\d+)\."
                        r"(?P<proj>w1|w2|w3|gate_proj|up_proj|down_proj)\.weight$")
_PART = {"w1": "gate", "gate_proj": "gate", "w3": "up", "up_proj": "up", "w2": "down",
         "down_proj": "down"}
_HUB_NAMES = {"mixtral": ("w1", "w3", "w2")}
_DEFAULT_NAMES = ("gate_proj", "up_proj", "down_proj")
_IGNORED_RE = re.compile(r"(^|\.)rotary_emb\.inv_freq$")
ALL_EXPERTS = slice(None)  # a target "expert" meaning: the same part of every expert at once


# ----------------------------------------------------------------------------- sizes


def parse_size(size):
    """Bytes in ``size``: an int, or a string like "5GB" (10^9), "500MB", "2GiB" (2^30)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size <= 0:
            raise ValueError(f"max_shard_size must be positive, got {size}")
        return int(size)
    units = {"TIB": 2**40, "GIB": 2**30, "MIB": 2**20, "KIB": 2**10, "TB": 10**12, "GB": 10**9,
             "MB": 10**6, "KB": 10**3, "B": 1}
    text = str(size).strip().upper()
    for unit, factor in units.items():
        if text.endswith(unit):
            number = text[:-len(unit)].strip()
            try:
                value = float(number)
            except ValueError:
                break
            if value > 0:
                return int(value * factor)
            break
    raise ValueError(f"max_shard_size {size!r} is not a size; use an int (bytes) or a string "
                     f"like '5GB', '500MB' or '2GiB'")


# ----------------------------------------------------------------------------- reading


def _resolve_checkpoint(path):
    """(directory, [safetensors files]) for a checkpoint directory or a .safetensors file."""
    path = os.fspath(path)
    if os.path.isfile(path):
        if not path.endswith(".safetensors"):
            raise ValueError(f"from_pretrained: {path} is not a .safetensors file or a "
                             f"checkpoint directory")
        return os.path.dirname(path) or ".", [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"from_pretrained: no checkpoint directory or file at {path!r} "
                                f"(expected a directory with {CONFIG_NAME} and {WEIGHTS_NAME} "
                                f"or {WEIGHTS_INDEX_NAME}, or a preset name)")
    single = os.path.join(path, WEIGHTS_NAME)
    if os.path.isfile(single):
        return path, [single]
    index_file = os.path.join(path, WEIGHTS_INDEX_NAME)
    if os.path.isfile(index_file):
        try:
            with open(index_file, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"from_pretrained: {index_file} is not a valid safetensors index "
                             f"(expected {{'metadata': ..., 'weight_map': {{name: file}}}}): "
                             f"{exc}") from None
        missing = [s for s in shards if not os.path.isfile(os.path.join(path, s))]
        if missing:
            raise FileNotFoundError(f"from_pretrained: {index_file} lists shard files that do not "
                                    f"exist in {path}: {missing}")
        return path, [os.path.join(path, s) for s in shards]
    found = sorted(os.listdir(path))
    raise FileNotFoundError(f"from_pretrained: {path} has neither {WEIGHTS_NAME} nor "
                            f"{WEIGHTS_INDEX_NAME} (genesis loads safetensors only; found "
                            f"{found[:20]})")


def _read_headers(files):
    """``{key: (file, shape)}`` of every tensor in the files, from the headers only."""
    from safetensors import SafetensorError, safe_open
    headers = {}
    for file in files:
        try:
            with safe_open(file, framework="np") as f:
                for key in f.keys():
                    if key in headers:
                        raise ValueError(f"from_pretrained: tensor {key!r} appears in both "
                                         f"{headers[key][0]} and {file}")
                    headers[key] = (file, tuple(f.get_slice(key).get_shape()))
        except (SafetensorError, OSError) as exc:
            raise RuntimeError(f"from_pretrained: cannot read {file} as safetensors "
                               f"(corrupt or truncated file?): {exc}") from None
    return headers


def _is_bare(keys):
    """True for checkpoints of the bare decoder (no ``model.`` prefix)."""
    return bool(keys) and not any(k.startswith("model.") for k in keys)


def _target(key, bare):
    """``(genesis name, expert, part)`` a checkpoint key fills (expert/part None when the key
    is the whole tensor), or None for keys genesis ignores (rotary ``inv_freq``)."""
    if _IGNORED_RE.search(key):
        return None
    if bare and not key.startswith("lm_head."):
        key = "model." + key
    key = key.replace(".block_sparse_moe.", ".mlp.").replace(".mlp.shared_expert.",
                                                               ".mlp.shared_experts.")
    m = _EXPERT_RE.match(key)
    if m is None:
        return key, None, None
    part = _PART[m["proj"]]
    return m["prefix"] + (".down_proj" if part == "down" else ".gate_up_proj"), int(m["e"]), part


def _slot(stacked_shape, expert, part):
    """(index into the stacked ``[E, ...]`` tensor, shape of that slot) for one expert part;
    ``expert`` ALL_EXPERTS is that part of every expert (GGUF's stacked ``ffn_*_exps``)."""
    rows = stacked_shape[1]
    lead = (slice(None),) if expert is ALL_EXPERTS else (expert,)
    count = (stacked_shape[0],) if expert is ALL_EXPERTS else ()
    if part == "down":
        return lead, count + tuple(stacked_shape[1:])
    half = rows // 2
    rows_slice = slice(0, half) if part == "gate" else slice(half, rows)
    return lead + (rows_slice,), count + (half,) + tuple(stacked_shape[2:])


def _expert_gaps(name, stacked_shape, filled):
    """Messages for expert parts of a stacked tensor that no checkpoint key filled."""
    parts = ("down",) if name.endswith(".down_proj") else ("gate", "up")
    out = []
    for part in parts:
        lacking = sorted(set(range(stacked_shape[0])) - {e for e, p in filled if p == part})
        if lacking:
            out.append(f"{name} is missing the {part} weights of experts {lacking[:20]}")
    return out


def load_hf_state_dict(files):
    """All tensors of the given safetensors files as a ``{name: numpy array}`` dict."""
    from safetensors import safe_open
    _read_headers(files)
    state = {}
    for file in files:
        with safe_open(file, framework="np") as f:
            state.update((key, f.get_tensor(key)) for key in f.keys())
    return state


def hf_to_genesis_state_dict(state):
    """Rename hub keys to genesis names, stacking per-expert weights into fused tensors."""
    bare = _is_bare(state)
    out, experts = {}, {}
    for key, value in state.items():
        target = _target(key, bare)
        if target is None:
            continue
        name, expert, part = target
        if expert is None:
            out[name] = value
        else:
            experts.setdefault(name, []).append((expert, part, value))
    for name, entries in experts.items():
        count = 1 + max(e for e, _, _ in entries)
        sample = entries[0][2]
        rows = sample.shape[0] * (1 if name.endswith(".down_proj") else 2)
        shape = (count, rows) + tuple(sample.shape[1:])
        gaps = _expert_gaps(name, shape, {(e, p) for e, p, _ in entries})
        if gaps:
            raise ValueError("from_pretrained: " + "; ".join(gaps))
        stacked = np.empty(shape, dtype=sample.dtype)
        for expert, part, value in entries:
            index, want = _slot(shape, expert, part)
            if tuple(value.shape) != want:
                raise ValueError(f"from_pretrained: expert {expert} {part} weight of {name} has "
                                 f"shape {tuple(value.shape)}, expected {want}")
            stacked[index] = value
        out[name] = stacked
    return out


def model_dtype(dtype, config):
    """The genesis dtype to load into: None keeps genesis's default, "auto" the config's."""
    if dtype == "auto":
        dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        if dtype is None:
            return None
    if dtype is None:
        return None
    dt = dtypes.as_dtype(dtype)
    if not dt.is_floating_point:
        raise TypeError(f"from_pretrained: dtype must be a floating dtype, got {dt}")
    return dt


def load_pretrained(cls, path_or_dir, dtype=None, check_memory=True, **overrides):
    """Build ``cls(config)`` from a HF checkpoint directory and fill every parameter.

    ``dtype``: None (genesis default, float32), "auto" (the config's ``torch_dtype``) or a
    dtype/name such as ``genesis.bfloat16``. ``overrides`` replace config.json fields;
    ``check_memory=False`` skips the model's up-front memory check. A folder written by genesis
    is first checked against its checksum manifest (``CheckpointCorruptError`` names a damaged
    file).
    Every parameter must be present with the right shape; unknown tensors are an error.
    Tensors are copied one at a time straight into their parameter (per-expert tensors into
    their slot of the stacked expert weights), so loading needs no second copy of the model.
    """
    from .configuration_moe import MoEConfig
    if os.fspath(path_or_dir).endswith(".gguf"):
        from .gguf import load_gguf_model
        return load_gguf_model(cls, path_or_dir, dtype=dtype, check_memory=check_memory,
                               **overrides)
    _verify_model_files(path_or_dir)
    directory, files = _resolve_checkpoint(path_or_dir)
    if not os.path.isfile(os.path.join(directory, CONFIG_NAME)):
        raise FileNotFoundError(f"from_pretrained: {directory} has no {CONFIG_NAME}")
    config = MoEConfig.from_pretrained(directory, **overrides)
    target = model_dtype(dtype, config)
    headers = _read_headers(files)
    # Built directly in the target dtype without random initialisation: every parameter is
    # overwritten below, so peak memory is one copy of the model in the dtype it is loaded in.
    with dtypes.default_dtype(target), init.skip_init():
        model = cls(config, check_memory=check_memory)
    plan = load_plan(model, headers, path_or_dir)
    _copy_tensors(model, files, plan)
    model.eval()
    return model


def _is_model_file(name):
    return name in (CONFIG_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME) or bool(_SHARD_RE.match(name))


def _verify_model_files(path):
    """Check config and weights against the folder's checksum manifest, when it has one."""
    path = os.fspath(path)
    directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return
    listed = read_manifest(directory)
    if listed is None:
        return
    if os.path.isfile(path):
        names = {CONFIG_NAME, os.path.basename(path)}
    else:
        names = {n for n in set(os.listdir(directory)) | set(listed) if _is_model_file(n)}
    verify_checkpoint(directory, sorted(names))


def load_plan(model, headers, source, targets=None):
    """``{checkpoint key: (parameter name, index)}``, after checking names, shapes, coverage.

    ``headers``: ``{key: (file, shape)}``; ``targets``: ``{key: (name, expert, part)}`` (by
    default from the hub key names, see ``_target``)."""
    expected = model.state_dict(keep_vars=True)
    owners, aliases = {}, {}
    for name, tensor in expected.items():
        first = owners.setdefault(id(tensor), name)
        if first != name:
            aliases[name] = first
    if targets is None:
        bare = _is_bare(headers)
        targets = {k: t for k, t in ((k, _target(k, bare)) for k in headers) if t is not None}
    whole = {name for name, expert, _ in targets.values() if expert is None}
    plan, filled, unexpected, wrong = {}, {}, [], []
    for key, (name, expert, part) in targets.items():
        if name in aliases:
            if aliases[name] in whole:
                continue
            name = aliases[name]
        if name not in expected:
            unexpected.append(key)
            continue
        full = tuple(expected[name].shape)
        if expert is None:
            index, want = Ellipsis, full
        elif len(full) != 3 or (expert is not ALL_EXPERTS and expert >= full[0]):
            wrong.append(f"{key}: expert {expert}, but the model's {name} has shape {full}")
            continue
        else:
            index, want = _slot(full, expert, part)
        if headers[key][1] != want:
            wrong.append(f"{key}: checkpoint {headers[key][1]} vs model {want}")
            continue
        plan[key] = (name, index)
        experts = range(full[0]) if expert is ALL_EXPERTS else [expert]
        filled.setdefault(name, set()).update((e, part) for e in experts)
    missing = []
    for name in expected:
        if name in aliases or (None, None) in filled.get(name, ()):
            continue
        if name not in filled:
            missing.append(name)
        else:
            missing.extend(_expert_gaps(name, tuple(expected[name].shape), filled[name]))
    problems = [f"{what} {items[:20]}" + (" ..." if len(items) > 20 else "")
                for what, items in (("missing tensors", missing),
                                    ("unexpected tensors", sorted(unexpected))) if items]
    if wrong:
        problems.append("shape mismatches: " + "; ".join(wrong[:20]))
    if problems:
        raise ValueError(f"from_pretrained: checkpoint {os.fspath(source)!r} does not match the "
                         f"model built from its config: " + " | ".join(problems))
    return plan


_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
              "BF16": dtypes.bfloat16.np, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _tensor_offsets(file):
    """``{key: (numpy dtype, shape, start, end)}`` of a safetensors file (byte offsets into it);
    the header was validated by ``_read_headers``."""
    with open(file, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    out = {}
    for key, info in header.items():
        if info["dtype"] not in _ST_DTYPES:
            raise ValueError(f"from_pretrained: {file}: tensor {key!r} has dtype {info['dtype']}, "
                             f"which genesis does not load (supported: {sorted(_ST_DTYPES)})")
        begin, end = info["data_offsets"]
        out[key] = (np.dtype(_ST_DTYPES[info["dtype"]]), tuple(info["shape"]), 8 + length + begin,
                    8 + length + end)
    return out


def _read_exactly(f, view, file, key):
    """Fill ``view`` from ``f`` (one read returns at most ~2 GiB on Linux, so loop)."""
    done = 0
    while done < len(view):
        n = f.readinto(view[done:])
        if not n:
            raise RuntimeError(f"from_pretrained: {file} is truncated (tensor {key!r})")
        done += n


def _copy_tensors(model, files, plan):
    """Read each planned tensor once with plain file reads (no mmap, so the file's pages never
    count in this process's memory) and write it into its parameter slot, cast on the way: a
    whole float parameter of the file's dtype on the CPU is read straight into its memory."""
    expected = model.state_dict(keep_vars=True)
    with no_grad():
        for file in files:
            offsets = _tensor_offsets(file)
            with open(file, "rb", buffering=0) as f:
                for key, (dtype, shape, start, end) in sorted(offsets.items(),
                                                               key=lambda kv: kv[1][2]):
                    if key not in plan:
                        continue
                    name, index = plan[key]
                    tensor = expected[name]
                    array = tensor._array
                    direct = (index is Ellipsis and isinstance(array, np.ndarray)
                              and array.dtype == dtype and array.flags.c_contiguous)
                    out = array if direct else np.empty(shape, dtype=dtype)
                    f.seek(start)
                    _read_exactly(f, memoryview(out.reshape(-1).view(np.uint8)), file, key)
                    if not direct:
                        write_tensor(tensor, index, out)


def write_tensor(tensor, index, values):
    """Copy the array ``values`` into ``tensor[index]`` (cast to its dtype, on its device)."""
    xp = backends.xp_for(tensor.device)
    tensor._array[index] = xp.asarray(values).astype(tensor._array.dtype, copy=False)


# ----------------------------------------------------------------------------- writing


def genesis_to_hf_state_dict(state, model_type, expert_layout=None):
    """Rename genesis keys to the hub layout of ``model_type``.

    ``expert_layout`` "per_expert" splits fused experts into ``experts.{e}.*`` keys (the hub
    layout; Mixtral's w1/w3/w2 under ``block_sparse_moe``), "fused" keeps HF v5's stacked
    ``gate_up_proj``/``down_proj``. Default: fused for ``genesis_moe``, per-expert otherwise.
    """
    if expert_layout is None:
        expert_layout = "fused" if model_type == "genesis_moe" else "per_expert"
    if expert_layout not in ("fused", "per_expert"):
        raise ValueError(f"save_pretrained: expert_layout must be 'fused' or 'per_expert', got "
                         f"{expert_layout!r}")
    names = _HUB_NAMES.get(model_type, _DEFAULT_NAMES)
    moe_prefix = ".block_sparse_moe." if model_type == "mixtral" and \
        expert_layout == "per_expert" else ".mlp."
    out = {}
    for key, value in state.items():
        if key.endswith(".mlp.experts.down_proj"):
            continue
        if model_type == "qwen2_moe":
            key = key.replace(".mlp.shared_experts.", ".mlp.shared_expert.")
        if key.endswith(".mlp.gate.weight"):
            key = key.replace(".mlp.", moe_prefix)
        if not key.endswith(".mlp.experts.gate_up_proj"):
            out[key] = value
            continue
        base = key[:-len("experts.gate_up_proj")]
        down = state[base + "experts.down_proj"]
        if expert_layout == "fused":
            out[key], out[base + "experts.down_proj"] = value, down
            continue
        prefix = base.replace(".mlp.", moe_prefix) + "experts"
        inter = value.shape[1] // 2
        for e in range(value.shape[0]):
            out[f"{prefix}.{e}.{names[0]}.weight"] = value[e, :inter]
            out[f"{prefix}.{e}.{names[1]}.weight"] = value[e, inter:]
            out[f"{prefix}.{e}.{names[2]}.weight"] = down[e]
    return out


def split_state_dict_into_shards(state, max_shard_size):
    """HF's greedy split in key order: ``[{name: array}, ...]``; an oversized tensor goes alone."""
    limit = parse_size(max_shard_size)
    shards, current, current_size = [], {}, 0
    for key, value in state.items():
        size = int(value.nbytes)
        if size > limit:
            shards.append({key: value})
            continue
        if current and current_size + size > limit:
            shards.append(current)
            current, current_size = {}, 0
        current[key] = value
        current_size += size
    if current or not shards:
        shards.append(current)
    return shards


def _write_json(path, obj):
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _write_safetensors(path, tensors):
    arrays = {k: np.asarray(v, order="C") for k, v in tensors.items()}  # keeps 0-d tensors 0-d
    return atomic_write(path, lambda f: write_safetensors(f, arrays, {"format": "pt"}))


def _model_arrays(model):
    """The model's state dict as host arrays in registration order, tied tensors once."""
    out, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        arr = tensor._array
        out[name] = arr if isinstance(arr, np.ndarray) else arr.get()
    return out


def save_pretrained(model, save_directory, max_shard_size="5GB", safe_serialization=True,
                    expert_layout=None):
    """Write ``config.json`` and the weights in the hub layout of ``config.model_type``.

    One ``model.safetensors`` when everything fits in ``max_shard_size`` (decimal units: "5GB"
    = 5*10^9 bytes, as HF), else ``model-0000i-of-0000N.safetensors`` shards plus
    ``model.safetensors.index.json``. Every file is written atomically and durably; weight
    files of an earlier save that the new one does not use are removed afterwards; the
    checksum manifest (``genesis_manifest.json``) is written last. Returns ``{file name:
    FileDigest}`` of the files written (manifest excluded).
    """
    if not safe_serialization:
        raise ValueError("save_pretrained: genesis writes safetensors only (pickle-based "
                         "checkpoints can execute code when loaded); use "
                         "safe_serialization=True")
    if os.path.isfile(save_directory):
        raise ValueError(f"save_pretrained: {save_directory!r} is a file; expected a directory")
    os.makedirs(save_directory, exist_ok=True)
    config = model.config
    state = genesis_to_hf_state_dict(_model_arrays(model),
                                     getattr(config, "model_type", "genesis_moe"), expert_layout)
    shards = split_state_dict_into_shards(state, max_shard_size)
    floating = [p.dtype for p in model.parameters() if p.dtype.is_floating_point]
    if floating:
        config.dtype = floating[0].name
    digests = {CONFIG_NAME: config.save_pretrained(save_directory)}
    if len(shards) == 1:
        names = {WEIGHTS_NAME: shards[0]}
    else:
        names = {f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors": shard
                 for i, shard in enumerate(shards)}
    for filename, shard in names.items():
        digests[filename] = _write_safetensors(os.path.join(save_directory, filename), shard)
    if len(shards) > 1:
        index = {"metadata": {"total_parameters": int(sum(v.size for v in state.values())),
                              "total_size": int(sum(v.nbytes for v in state.values()))},
                 "weight_map": {k: f for f, shard in names.items() for k in shard}}
        digests[WEIGHTS_INDEX_NAME] = _write_json(os.path.join(save_directory,
                                                               WEIGHTS_INDEX_NAME), index)
    keep = set(names) | ({WEIGHTS_INDEX_NAME} if len(shards) > 1 else set())
    for filename in os.listdir(save_directory):
        stale = filename in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME) or _SHARD_RE.match(filename)
        if stale and filename not in keep:
            os.remove(os.path.join(save_directory, filename))
    write_manifest(save_directory, digests)
    return digests
