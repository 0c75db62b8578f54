"""Array-level helpers shared by the nn and loss op families."""
import numpy as np

from ..backends import parallel
from ..tensor import Tensor


def check_float(op, x, name="input"):
    """TypeError naming ``op`` unless ``x`` is a floating-point Tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{op}: expected a floating point {name}, got {x.dtype}")


def opmath_dtype(dt):
    """The dtype reductions run in: float32 for half types (as PyTorch's opmath), else ``dt``."""
    return np.dtype(np.float32) if dt.itemsize < 4 else dt


def opmath(x):
    """``x`` in its opmath dtype (no copy for float32/float64)."""
    return x if x.dtype.itemsize >= 4 else x.astype(np.float32)


def _row_sum(xp, a, axis):
    """``a.sum(axis, keepdims=True)``; the last axis of a NumPy array takes the fast row sum."""
    if xp is np and axis == a.ndim - 1:
        return parallel.row_sum(a)
    return a.sum(axis=axis, keepdims=True)


def mean_over(xp, a, axes):
    """``a.mean(axis=axes, keepdims=True)``; one trailing axis goes through the fast row sum."""
    if len(axes) == 1 and axes[0] == a.ndim - 1:
        return _row_sum(xp, a, axes[0]) / a.shape[-1]
    return a.mean(axis=axes, keepdims=True)


def _run(fn, out, *arrays, axis):
    """``fn(out, *arrays)`` inline for small NumPy arrays, else over ``parallel.blocks``."""
    if type(out) is np.ndarray and out.size < parallel.MIN_PARALLEL_ROWS:
        fn(out, *arrays)
        return out
    return parallel.blocks(fn, out, *arrays, axis=axis)


def softmax(xp, x, axis):
    """Stable softmax of an array (max subtracted before the exp), in opmath precision."""
    x = opmath(x)
    if x.size == 0:
        return x.copy()
    out = xp.empty_like(x)
    if type(x) is np.ndarray and x.size < parallel.MIN_PARALLEL_ROWS:
        _softmax_into(xp, out, x, axis)      # small arrays: five NumPy calls, nothing else
        return out
    return parallel.blocks(lambda o, xb: _softmax_into(xp, o, xb, axis), out, x, axis=axis)


def _softmax_into(xp, out, x, axis):
    xp.subtract(x, xp.maximum.reduce(x, axis=axis, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= _row_sum(xp, out, axis)


def softmax_backward(xp, y, g, axis):
    """Gradient of a softmax output ``y`` along ``axis``: ``y * (g - sum(g * y))``, in opmath."""
    y, g = opmath(y), opmath(g)
    return _run(lambda out, yb, gb: _softmax_grad_into(xp, out, yb, gb, axis),
                xp.empty(g.shape, y.dtype), y, g, axis=axis)


def _softmax_grad_into(xp, out, y, g, axis):
    xp.multiply(g, y, out=out)
    xp.subtract(g, _row_sum(xp, out, axis), out=out)
    out *= y


def log_softmax(xp, x, axis):
    """Stable ``log(softmax(x))`` of an array via log-sum-exp, in opmath precision."""
    x = opmath(x)
    if x.size == 0:
        return x.copy()
    return _run(lambda out, xb: _log_softmax_into(xp, out, xb, axis), xp.empty_like(x), x,
                axis=axis)


def log_softmax_backward(xp, y, g, axis):
    """Gradient of a log-softmax output ``y`` along ``axis``: ``g - exp(y) sum(g)``, in opmath."""
    y, g = opmath(y), opmath(g)
    return _run(lambda out, yb, gb: _log_softmax_grad_into(xp, out, yb, gb, axis),
                xp.empty(g.shape, y.dtype), y, g, axis=axis)


def _log_softmax_grad_into(xp, out, y, g, axis):
    xp.exp(y, out=out)
    out *= _row_sum(xp, g, axis)
    xp.subtract(g, out, out=out)


_CHUNK = 1 << 18   # elements per row chunk whose exp lives in one reused, L2-sized buffer


def _log_softmax_into(xp, out, x, axis):
    """``out = x - max - log(sum(exp(x - max)))``; along the last axis of a NumPy array the
    ``exp`` goes through one L2-sized buffer reused chunk by chunk instead of a full-size
    temporary (a fresh 16 MB one costs ~0.3 ms of page faults: 8 % of a 512x8000 call)."""
    xp.subtract(x, xp.maximum.reduce(x, axis=axis, keepdims=True), out=out)
    if xp is not np or axis != out.ndim - 1 or out.ndim < 2 or out.size <= _CHUNK:
        out -= xp.log(_row_sum(xp, xp.exp(out), axis))
    else:
        rows = out.reshape(-1, out.shape[-1])
        step = max(1, _CHUNK // rows.shape[1])
        buf = np.empty((min(step, rows.shape[0]), rows.shape[1]), out.dtype)
        lse = np.empty((rows.shape[0], 1), out.dtype)
        for s in range(0, rows.shape[0], step):
            e = min(s + step, rows.shape[0])
            lse[s:e] = _row_sum(xp, np.exp(rows[s:e], out=buf[:e - s]), 1)
        np.log(lse, out=lse)
        out -= lse.reshape(out.shape[:-1] + (1,))
