"""genesis.save / genesis.load: nested state in one safetensors file, never pickle.

Tensors are stored under flattened dotted keys (``model.layers.0.weight``); everything else
(dicts with str/int keys, lists, tuples, numbers, strings, bools, None) is kept as JSON in the
safetensors metadata, together with a CRC32 of the tensor bytes so corruption is detected.
Writes go through ``genesis._atomic.atomic_write`` (temporary file, fsync, rename), so a crash
mid-save leaves the previous file intact; the file is streamed, never copied whole in memory.
"""
import json
import math
import os
import zlib

import ml_dtypes
import numpy as np
import safetensors

from ._atomic import atomic_write
from .device import as_device
from .tensor import Tensor, _move

__all__ = ["save", "load", "write_safetensors"]

_FORMAT = "genesis.save/1"
_DTYPE_CODES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32",
                np.dtype(np.float16): "F16", np.dtype(ml_dtypes.bfloat16): "BF16",
                np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
                np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}
_CODE_DTYPES = {code: dt for dt, code in _DTYPE_CODES.items()}
_CHUNK = 1 << 24


# --------------------------------------------------------------------------- encoding
class _Encoder:
    """Turn a nested object into a JSON tree plus a flat dict of host arrays."""

    def __init__(self):
        self.arrays = {}
        self.keys_by_id = {}

    def encode(self, obj, path):
        """The JSON node for ``obj`` found at dotted ``path``; tensors go to ``self.arrays``."""
        if isinstance(obj, Tensor):
            return self._tensor(obj, path)
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, (int, np.integer)):
            return int(obj)
        if isinstance(obj, (float, np.floating)):
            value = float(obj)
            return value if math.isfinite(value) else {"t": "float", "v": repr(value)}
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(f"genesis.save: dict keys must be str or int, got "
                                    f"{type(k).__name__} key {k!r} at {path or '<root>'}")
                items.append([k, self.encode(v, _join(path, k))])
            return {"t": "dict", "items": items}
        if isinstance(obj, (list, tuple)):
            tag = "list" if isinstance(obj, list) else "tuple"
            return {"t": tag, "items": [self.encode(v, _join(path, i)) for i, v in enumerate(obj)]}
        raise TypeError(f"genesis.save: cannot save a {type(obj).__name__} at "
                        f"{path or '<root>'}; only tensors, dicts, lists, tuples, numbers, "
                        "strings, bools and None are supported (no pickle)")

    def _tensor(self, t, path):
        node = {"t": "tensor"}
        key = self.keys_by_id.get(id(t))
        if key is None:
            key = path or "tensor"
            n = 1
            while key in self.arrays:
                key = f"{path or 'tensor'}#{n}"
                n += 1
            arr = t._array if isinstance(t._array, np.ndarray) else t._array.get()
            self.arrays[key] = _contiguous(arr)
            self.keys_by_id[id(t)] = key
        node["key"] = key
        from .nn.parameter import Parameter
        if isinstance(t, Parameter):
            node["parameter"] = True
        if t.requires_grad:
            node["requires_grad"] = True
        return node


def _contiguous(arr):
    """A C-contiguous array with the same shape (``np.ascontiguousarray`` makes 0-d 1-d)."""
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _join(path, key):
    return f"{path}.{key}" if path else str(key)


def _crc(tree_json, arrays):
    """CRC32 over the JSON tree and every tensor's key, dtype, shape and bytes."""
    crc = zlib.crc32(tree_json.encode())
    for key in sorted(arrays):
        arr = _contiguous(arrays[key])
        crc = zlib.crc32(f"{key}|{arr.dtype.str}|{arr.shape}".encode(), crc)
        crc = zlib.crc32(arr.reshape(-1).view(np.uint8), crc)
    return crc


def _encode(obj):
    """(host arrays by key, safetensors metadata) of ``obj``: the structure goes in metadata."""
    enc = _Encoder()
    tree = json.dumps(enc.encode(obj, ""), separators=(",", ":"))
    for key, arr in enc.arrays.items():
        if arr.dtype not in _DTYPE_CODES:
            raise TypeError(f"genesis.save: tensor {key!r} has unsupported dtype {arr.dtype}")
    return enc.arrays, {"format": _FORMAT, "tree": tree, "crc32": str(_crc(tree, enc.arrays))}


def write_safetensors(f, arrays, metadata=None):
    """Stream ``{name: numpy array}`` to the binary file ``f`` in the safetensors format.

    Tensors are laid out like the reference writer (larger dtypes first, then by name, header
    padded to 8 bytes) and written straight from their memory, without a copy of the file.
    """
    order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    header = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for key in order:
        arr = arrays[key]
        code = _DTYPE_CODES.get(arr.dtype.newbyteorder("="))
        if code is None:
            raise TypeError(f"write_safetensors: tensor {key!r} has unsupported dtype "
                            f"{arr.dtype}")
        header[key] = {"dtype": code, "shape": list(arr.shape),
                       "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    _write_chunks(f, len(text).to_bytes(8, "little") + text)
    for key in order:
        arr = _contiguous(arrays[key]).astype(arrays[key].dtype.newbyteorder("<"), copy=False)
        _write_chunks(f, arr.reshape(-1).view(np.uint8))


def _write_chunks(f, data):
    """Write the bytes-like ``data`` to ``f`` in chunks."""
    view = memoryview(data).cast("B")
    for start in range(0, len(view), _CHUNK):
        f.write(view[start:start + _CHUNK])


def save(obj, f):
    """Save tensors and nested metadata to ``f`` (a path or a binary file object); a path is
    written atomically and durably (temporary file, fsync, rename)."""
    arrays, metadata = _encode(obj)
    if hasattr(f, "write"):
        write_safetensors(f, arrays, metadata)
        return
    atomic_write(f, lambda out: write_safetensors(out, arrays, metadata))


# --------------------------------------------------------------------------- decoding
def load(f, map_location=None, pickle_module=None, *, weights_only=True):
    """Load what ``save`` wrote (or any safetensors file, as a flat dict of tensors).

    Always weights-only: genesis files are safetensors and nothing is ever unpickled, so
    ``weights_only=True`` (or None) is accepted and ``weights_only=False`` or a
    ``pickle_module`` raise. ``map_location`` is a device or device string. Raises
    RuntimeError naming the file and the problem for truncated, corrupted or
    non-safetensors input.
    """
    if weights_only is False or pickle_module is not None:
        what = "weights_only=False" if weights_only is False else "a pickle_module"
        raise ValueError(f"genesis.load: {what} asks for unpickling, which genesis never does "
                         "(its files are safetensors: tensors only, no code); call "
                         "genesis.load(f) or pass weights_only=True")
    if isinstance(map_location, dict) or callable(map_location):
        raise TypeError(f"genesis.load: map_location must be a device or a device string such "
                        f"as 'cpu' or 'cuda:0', got {type(map_location).__name__} (genesis files "
                        "do not record a device, so mappings and functions do not apply)")
    name = getattr(f, "name", None) if hasattr(f, "read") else os.fspath(f)
    if hasattr(f, "read"):
        data = f.read()
    else:
        with open(name, "rb") as fh:
            data = fh.read()
    device = as_device(map_location) if map_location is not None else None
    return _deserialize(data, name or "<file object>", device)


def _fail(name, what):
    raise RuntimeError(f"genesis.load: {name} {what}") from None


def _deserialize(data, name, device):
    if len(data) < 8:
        _fail(name, f"is not a safetensors file: only {len(data)} bytes (a header needs 8+)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        _fail(name, f"is truncated or not a safetensors file: the header claims {header_len} "
                    f"bytes but the file holds {len(data)}")
    try:
        header = json.loads(bytes(data[8:8 + header_len]))
        views = safetensors.deserialize(data)
    except Exception as exc:  # noqa: BLE001 - the parser raises several types
        _fail(name, f"is corrupted or not a safetensors file ({type(exc).__name__}: {exc})")
    metadata = header.get("__metadata__") or {}
    arrays = {}
    for key, view in views:
        dt = _CODE_DTYPES.get(view["dtype"].upper())
        if dt is None:
            _fail(name, f"holds tensor {key!r} of unsupported dtype {view['dtype']}")
        arrays[key] = np.frombuffer(view["data"], dtype=dt).reshape(view["shape"])
    if not any(k in metadata for k in ("format", "tree", "crc32")):
        return {key: _to_tensor(arr, device) for key, arr in arrays.items()}
    try:
        if metadata["format"] != _FORMAT:
            raise ValueError(f"unknown format tag {metadata['format']!r}, expected {_FORMAT!r}")
        expected = int(metadata["crc32"])
        tree = metadata["tree"]
    except (KeyError, ValueError) as exc:
        _fail(name, f"has a corrupted genesis header ({type(exc).__name__}: {exc})")
    if _crc(tree, arrays) != expected:
        _fail(name, "is corrupted: its tensors or structure do not match the CRC32 checksum")
    try:
        return _Decoder(arrays, device).decode(json.loads(tree))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        _fail(name, f"has a corrupted genesis structure ({type(exc).__name__}: {exc})")


def _to_tensor(arr, device):
    t = Tensor._make(arr)
    if device is not None and device.type != "cpu":
        t = Tensor._make(_move(arr, device), device=device)
    return t


class _Decoder:
    """Rebuild the nested object from the JSON tree and the loaded arrays."""

    def __init__(self, arrays, device):
        self.arrays = arrays
        self.device = device
        self.tensors = {}

    def decode(self, node):
        """The Python object for a JSON ``node``."""
        if not isinstance(node, dict):
            if isinstance(node, list):
                raise ValueError("bare JSON list in tree")
            return node
        tag = node["t"]
        if tag == "dict":
            return {k: self.decode(v) for k, v in node["items"]}
        if tag == "list":
            return [self.decode(v) for v in node["items"]]
        if tag == "tuple":
            return tuple(self.decode(v) for v in node["items"])
        if tag == "float":
            return float(node["v"])
        if tag == "tensor":
            return self._tensor(node)
        raise ValueError(f"unknown node type {tag!r}")

    def _tensor(self, node):
        key = node["key"]
        t = self.tensors.get(key)
        if t is not None:
            return t
        t = _to_tensor(self.arrays[key], self.device)
        if node.get("parameter"):
            from .nn.parameter import Parameter
            t = Parameter(t, requires_grad=bool(node.get("requires_grad")))
        elif node.get("requires_grad"):
            t.requires_grad_(True)
        self.tensors[key] = t
        return t

