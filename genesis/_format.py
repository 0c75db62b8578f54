"""PyTorch-style ``repr`` of tensors."""
import numpy as np

from . import dtypes

_DEFAULT_SHOWN = (dtypes.int64, dtypes.bool_)


def _float_formatter(arr):
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return lambda v: _special(v) or f"{v:.4f}"
    amax = np.abs(finite).max()
    amin_nz = np.abs(finite[finite != 0]).min() if (finite != 0).any() else 0.0
    if np.all(finite == np.round(finite)) and amax < 1e8:
        return lambda v: _special(v) or f"{v:.0f}."
    if amax >= 1e8 or (amin_nz and amin_nz < 1e-4) or (amin_nz and amax / amin_nz > 1e3):
        return lambda v: _special(v) or f"{v:.4e}"
    return lambda v: _special(v) or f"{v:.4f}"


def _special(v):
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return None


def format_tensor(t):
    """``tensor([...], dtype=..., requires_grad=True)`` as PyTorch prints it."""
    arr = t._numpy_view()
    if t.dtype is dtypes.bfloat16 or t.dtype is dtypes.float16:
        arr = arr.astype(np.float32)
    if t.dtype.is_floating_point:
        base = _float_formatter(arr.astype(np.float64))
        kind = "float_kind"
    elif t.dtype is dtypes.bool_:
        base, kind = (lambda v: "True" if v else "False"), "bool"
    else:
        base, kind = str, "int"
    shown = arr if arr.size <= 1000 else np.concatenate([arr.reshape(-1)[:3], arr.reshape(-1)[-3:]])
    width = max((len(base(v)) for v in shown.reshape(-1)), default=0)
    fmt = {kind: lambda v: base(v).rjust(width)}
    body = np.array2string(arr, separator=", ", formatter=fmt, prefix="tensor(",
                           threshold=1000, edgeitems=3, max_line_width=80)
    extras = []
    if t.device.type != "cpu":
        extras.append(f"device='{t.device}'")
    if t.dtype is not dtypes.get_default_dtype() and t.dtype not in _DEFAULT_SHOWN:
        extras.append(f"dtype={t.dtype!r}")
    if arr.size == 0 and arr.shape != (0,):
        extras.insert(0, f"size={tuple(arr.shape)}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
