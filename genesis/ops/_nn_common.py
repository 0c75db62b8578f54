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
    return x.astype(opmath_dtype(x.dtype), copy=False)


def softmax(xp, x, axis):
    """Stable softmax of an array (max subtracted before the exp), in opmath precision."""
    x = opmath(x)
    if x.size == 0:
        return x.copy()
    return parallel.blocks(lambda out, xb: _softmax_into(xp, out, xb, axis), xp.empty_like(x), x,
                           axis=axis)


def _softmax_into(xp, out, x, axis):
    xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)


def softmax_backward(xp, y, g, axis):
    """Gradient of a softmax output ``y`` along ``axis``: ``y * (g - sum(g * y))``, in opmath."""
    y, g = opmath(y), opmath(g)
    return parallel.blocks(lambda out, yb, gb: _softmax_grad_into(xp, out, yb, gb, axis),
                           xp.empty(g.shape, y.dtype), y, g, axis=axis)


def _softmax_grad_into(xp, out, y, g, axis):
    xp.multiply(g, y, out=out)
    xp.subtract(g, out.sum(axis=axis, keepdims=True), out=out)
    out *= y


def log_softmax(xp, x, axis):
    """Stable ``log(softmax(x))`` of an array via log-sum-exp, in opmath precision."""
    x = opmath(x)
    if x.size == 0:
        return x.copy()
    return parallel.blocks(lambda out, xb: _log_softmax_into(xp, out, xb, axis),
                           xp.empty_like(x), x, axis=axis)


def _log_softmax_into(xp, out, x, axis):
    xp.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    out -= xp.log(xp.exp(out).sum(axis=axis, keepdims=True))
