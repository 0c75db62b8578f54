"""Reductions with PyTorch's ``dim`` / ``keepdim`` / ``dtype`` conventions.

``dim`` is None (every dimension), an int or a sequence of ints; negative dims wrap.
Integer and bool inputs sum to int64 as in PyTorch; 16-bit floats accumulate in float32.
"""
import collections
import numbers

import numpy as np

from .. import backends, dtypes
from ..backends import parallel
from ..amp.autocast_mode import autocast_op
from ..autograd import Function
from ..tensor import Tensor, _wrap_dim
from .elementwise import maximum, minimum, to_dtype
from .movement import _as_int, _dims

__all__ = ["sum", "mean", "prod", "var", "std", "max", "min", "amax", "amin", "argmax",
           "argmin", "logsumexp", "cumsum", "cumprod", "any", "all", "norm"]

# Ops that are also Tensor methods (x.name(...) is name(x, ...)); bound onto Tensor by ops/_methods.py.
TENSOR_METHODS = """
sum mean prod var std max min amax amin argmax argmin logsumexp cumsum cumprod any all norm
"""

max_result = collections.namedtuple("max", ("values", "indices"))
min_result = collections.namedtuple("min", ("values", "indices"))


# --------------------------------------------------------------------------- helpers
def _axes(dim, ndim, op):
    """``dim`` as a tuple of axes, or None to reduce everything (also for 0-d tensors)."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return None
    axes = _dims(dim, ndim, op)
    return None if ndim == 0 else axes


def _keep_shape(shape, axes):
    """The input ``shape`` with the reduced ``axes`` set to 1 (the keepdim output shape)."""
    return tuple(1 if axes is None or i in axes else n for i, n in enumerate(shape))


def _drop_shape(shape, axes):
    """The input ``shape`` without the reduced ``axes`` (the output shape)."""
    return tuple(n for i, n in enumerate(shape) if axes is not None and i not in axes)


def _grad_in(xp, g, shape, axes, keepdim):
    """Broadcast a reduction's output (gradient) back over the input shape (no copy)."""
    if not keepdim and axes is not None:
        g = g.reshape(_keep_shape(shape, axes))
    return xp.broadcast_to(g, shape)


def _count(shape, axes):
    """Number of elements folded into each output element."""
    n = 1
    for a in range(len(shape)) if axes is None else axes:
        n *= shape[a]
    return n


def _is_half(npd):
    """float16 or bfloat16."""
    return npd.itemsize == 2 and npd.kind not in "biu"


def _acc(npd):
    """Accumulation dtype: int64 for bool/integers, float32 for 16-bit floats, else None."""
    if npd.kind in "biu":
        return np.dtype(np.int64)
    return np.dtype(np.float32) if _is_half(npd) else None


def _upcast(x):
    """16-bit floats as float32 for accurate intermediate maths."""
    return x.astype(np.float32) if _is_half(x.dtype) else x


def _float_input(input, op, dtype=None):
    if dtype is not None:
        return to_dtype(input, dtype)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{op}: input dtype must be floating point, got {input.dtype}; cast "
                           "it or pass dtype=")
    return input


def _check_nonempty(input, axes, op):
    if axes is None:
        if input.numel() == 0:
            raise RuntimeError(f"{op}: expected reduction dim to be specified for an input with "
                               f"no elements (shape {tuple(input.shape)})")
        return
    for a in axes:
        if input.shape[a] == 0:
            raise IndexError(f"{op}: expected reduction dim {a} to have non-zero size (input "
                             f"shape {tuple(input.shape)})")


# --------------------------------------------------------------------------- sum / mean / prod
def _float_sum(x, axes, keepdim):
    """``x.sum(axis=axes, keepdims=keepdim)`` for a float32/float64 array, through the fast
    float sums of ``parallel`` for a whole-array sum or a sum over the last axis."""
    if axes is None and not keepdim:
        return parallel.sum_all(x)
    if axes is not None and len(axes) == 1 and axes[0] == x.ndim - 1 and x.ndim > 1:
        out = parallel.row_sum(x)
        return out if keepdim else out.reshape(x.shape[:-1])
    return x.sum(axis=axes, keepdims=keepdim)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.meta = (x.shape, axes, keepdim)
        acc = _acc(x.dtype)
        if acc is None:
            return _float_sum(x, axes, keepdim)
        out = x.sum(axis=axes, keepdims=keepdim, dtype=acc)
        return out if x.dtype.kind in "biu" else out.astype(x.dtype)

    @staticmethod
    def backward(ctx, g):
        return _grad_in(ctx.xp, g, *ctx.meta)


@autocast_op
def sum(input, dim=None, keepdim=False, *, dtype=None):
    """Sum over ``dim`` (all when None); bool/integer inputs give int64."""
    if dtype is not None:
        input = to_dtype(input, dtype)
    if dim is None:
        return Sum.apply(input, None, keepdim)
    return Sum.apply(input, _axes(dim, input.ndim, "sum"), keepdim)


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.meta = (x.shape, axes, keepdim)
        ctx.n = _count(x.shape, axes)
        acc = _acc(x.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (_float_sum(x, axes, keepdim) if acc is None else
                   x.sum(axis=axes, keepdims=keepdim, dtype=acc)) / ctx.n
        return out.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        return _grad_in(ctx.xp, g * (1.0 / ctx.n if ctx.n else 0.0), *ctx.meta)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """Arithmetic mean over ``dim``; floating inputs only unless ``dtype`` is given."""
    input = _float_input(input, "mean", dtype)
    return Mean.apply(input, _axes(dim, input.ndim, "mean"), keepdim)


class Prod(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.meta = (axes, keepdim)
        ctx.save_for_backward(x)
        acc = _acc(x.dtype)
        out = x.prod(axis=axes, keepdims=keepdim, dtype=acc)
        return out if acc is None or x.dtype.kind in "biu" else out.astype(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        xp = ctx.xp
        axes, keepdim = ctx.meta
        zero = x == 0
        zeros = zero.sum(axis=axes, keepdims=True)
        nonzero_prod = xp.where(zero, 1, x).prod(axis=axes, keepdims=True)
        # Product of the other elements: exact division when x != 0, the product of the
        # non-zero rest at the only zero, and 0 wherever another element is zero.
        others = nonzero_prod / xp.where(zero, 1, x)
        live = (zeros == 0) | (zero & (zeros == 1))
        gk = _grad_in(xp, g, x.shape, axes, keepdim)
        return xp.where(live, others * gk, 0).astype(g.dtype, copy=False)


@autocast_op
def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product over ``dim``; the gradient is exact when the input holds zeros."""
    if dtype is not None:
        input = to_dtype(input, dtype)
    return Prod.apply(input, _axes(dim, input.ndim, "prod"), keepdim)


# --------------------------------------------------------------------------- var / std
class VarStd(Function):
    @staticmethod
    def forward(ctx, x, axes, correction, keepdim, take_sqrt):
        xp = ctx.xp
        xa = _upcast(x)
        n = _count(x.shape, axes)
        denom = n - correction if n > correction else 0
        with np.errstate(invalid="ignore", divide="ignore"):
            centered = xa - xa.mean(axis=axes, keepdims=True) if n else xa
            out = (centered * centered).sum(axis=axes, keepdims=keepdim) / denom
            if take_sqrt:
                out = xp.sqrt(out)
        ctx.meta = (axes, keepdim, denom, take_sqrt)
        out = xp.asarray(out).astype(x.dtype, copy=False)
        ctx.save_for_backward(centered, out)
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        axes, keepdim, denom, take_sqrt = ctx.meta
        centered, out = ctx.saved_tensors
        gk = _grad_in(xp, g, centered.shape, axes, keepdim)
        with np.errstate(invalid="ignore", divide="ignore"):
            if take_sqrt:
                std = _grad_in(xp, _upcast(out), centered.shape, axes, keepdim)
                grad = xp.where(std == 0, 0, centered * gk / (denom * std))
            else:
                grad = 2 * centered * gk / denom
        return grad.astype(g.dtype, copy=False)


def _var_std(input, dim, unbiased, keepdim, correction, take_sqrt, op):
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise RuntimeError(f"{op}: pass either unbiased or correction, not both")
    if correction is None:
        correction = 1 if unbiased is None else int(bool(unbiased))
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{op}: only floating point dtypes are supported, got {input.dtype}")
    return VarStd.apply(input, _axes(dim, input.ndim, op), correction, keepdim, take_sqrt)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim`` with Bessel's ``correction`` (default 1; ``unbiased=False`` = 0)."""
    return _var_std(input, dim, unbiased, keepdim, correction, False, "var")


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation over ``dim``; the gradient is 0 where the deviation is 0."""
    return _var_std(input, dim, unbiased, keepdim, correction, True, "std")


# --------------------------------------------------------------------------- max / min
class Extreme(Function):
    """amax/amin over ``axes``: the gradient is split evenly among tied extremes."""

    @staticmethod
    def forward(ctx, x, axes, keepdim, is_max):
        out = x.max(axis=axes, keepdims=keepdim) if is_max else x.min(axis=axes, keepdims=keepdim)
        out = ctx.xp.asarray(out)
        ctx.meta = (axes, keepdim)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        xp = ctx.xp
        axes, keepdim = ctx.meta
        hit = x == _grad_in(xp, out, x.shape, axes, keepdim)
        count = xp.maximum(hit.sum(axis=axes, keepdims=True), 1)
        share = _grad_in(xp, g, x.shape, axes, keepdim) / count
        return xp.where(hit, share, 0).astype(g.dtype, copy=False)


class ExtremeDim(Function):
    """max/min along one axis with the index; the gradient goes to that index only."""

    @staticmethod
    def forward(ctx, x, axis, keepdim, is_max):
        xp = ctx.xp
        ctx.meta = (x.shape, axis, keepdim)
        if x.ndim == 0:
            return x.copy(), xp.zeros((), dtype=np.int64)
        idx = (xp.argmax if is_max else xp.argmin)(x, axis=axis).astype(np.int64)
        idx = idx.reshape(_keep_shape(x.shape, (axis,)))
        values = xp.take_along_axis(x, idx, axis)
        if not keepdim:
            idx, values = idx.squeeze(axis), values.squeeze(axis)
        ctx.save_for_backward(idx)
        ctx.mark_non_differentiable(idx)
        return values, idx

    @staticmethod
    def backward(ctx, g, _):
        xp = ctx.xp
        shape, axis, keepdim = ctx.meta
        if not shape:
            return g
        (idx,) = ctx.saved_tensors
        kept = _keep_shape(shape, (axis,))
        positions = xp.arange(shape[axis]).reshape((-1,) + (1,) * (len(shape) - axis - 1))
        hit = positions == idx.reshape(kept)
        return xp.where(hit, g.reshape(kept), 0).astype(g.dtype, copy=False)


def _max_min(input, dim, keepdim, other, is_max):
    op = "max" if is_max else "min"
    if isinstance(dim, Tensor) or other is not None:
        o = dim if isinstance(dim, Tensor) else other
        return maximum(input, o) if is_max else minimum(input, o)
    if dim is None:
        _check_nonempty(input, None, op)
        return Extreme.apply(input, None, False, is_max)
    axis = _wrap_dim(_as_int(dim, op), input.ndim, op)
    if input.ndim:
        _check_nonempty(input, (axis,), op)
    values, indices = ExtremeDim.apply(input, axis, keepdim, is_max)
    return (max_result if is_max else min_result)(values, indices)


def max(input, dim=None, keepdim=False, *, other=None):
    """Largest element; with ``dim`` a ``(values, indices)`` pair; with a tensor, ``maximum``."""
    return _max_min(input, dim, keepdim, other, True)


def min(input, dim=None, keepdim=False, *, other=None):
    """Smallest element; with ``dim`` a ``(values, indices)`` pair; with a tensor, ``minimum``."""
    return _max_min(input, dim, keepdim, other, False)


def _amax_amin(input, dim, keepdim, is_max):
    op = "amax" if is_max else "amin"
    axes = _axes(dim, input.ndim, op)
    _check_nonempty(input, axes, op)
    return Extreme.apply(input, axes, keepdim, is_max)


def amax(input, dim=(), keepdim=False):
    """Maximum over ``dim`` (all when empty); ties share the gradient evenly."""
    return _amax_amin(input, dim, keepdim, True)


def amin(input, dim=(), keepdim=False):
    """Minimum over ``dim`` (all when empty); ties share the gradient evenly."""
    return _amax_amin(input, dim, keepdim, False)


def _arg(input, dim, keepdim, is_max):
    op = "argmax" if is_max else "argmin"
    xp = backends.xp_for(input.device)
    xp_arg = xp.argmax if is_max else xp.argmin
    x = input._array
    if dim is None:
        _check_nonempty(input, None, op)
        idx = xp_arg(x.reshape(-1))
        if keepdim:
            idx = idx.reshape((1,) * x.ndim)
    else:
        axis = _wrap_dim(_as_int(dim, op), input.ndim, op)
        if x.ndim == 0:
            idx = xp.zeros((), dtype=np.int64)
        else:
            _check_nonempty(input, (axis,), op)
            idx = xp_arg(x, axis=axis)
            if keepdim:
                idx = idx.reshape(_keep_shape(x.shape, (axis,)))
    return Tensor._make(idx.astype(np.int64), device=input.device)


def argmax(input, dim=None, keepdim=False):
    """Index of the largest element (over the flattened tensor when ``dim`` is None)."""
    return _arg(input, dim, keepdim, True)


def argmin(input, dim=None, keepdim=False):
    """Index of the smallest element (over the flattened tensor when ``dim`` is None)."""
    return _arg(input, dim, keepdim, False)


# --------------------------------------------------------------------------- logsumexp
class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xp = ctx.xp
        xa = _upcast(x)
        if x.size:
            m = xa.max(axis=axes, keepdims=True)
            m = xp.where(xp.isfinite(m), m, 0)
        else:
            m = xp.zeros(_keep_shape(x.shape, axes), dtype=xa.dtype)
        with np.errstate(divide="ignore"):
            out = xp.log(xp.exp(xa - m).sum(axis=axes, keepdims=keepdim)) + (
                m if keepdim else m.reshape(_drop_shape(x.shape, axes)))
        out = xp.asarray(out).astype(x.dtype, copy=False)
        ctx.meta = (axes, keepdim)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        xp = ctx.xp
        axes, keepdim = ctx.meta
        gk = _grad_in(xp, g, x.shape, axes, keepdim)
        lse = _grad_in(xp, _upcast(out), x.shape, axes, keepdim)
        return (gk * xp.exp(_upcast(x) - lse)).astype(g.dtype, copy=False)


@autocast_op
def logsumexp(input, dim, keepdim=False):
    """``log(sum(exp(input)))`` over ``dim``, computed without overflow."""
    if not input.dtype.is_floating_point:
        input = to_dtype(input, dtypes.get_default_dtype())
    return LogSumExp.apply(input, _axes(dim, input.ndim, "logsumexp"), keepdim)


# --------------------------------------------------------------------------- cumulative
class CumSum(Function):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        acc = _acc(x.dtype)
        out = ctx.xp.cumsum(x, axis=axis, dtype=acc)
        return out if acc is None or x.dtype.kind in "biu" else out.astype(x.dtype)

    @staticmethod
    def backward(ctx, g):
        return _reverse_cumsum(ctx.xp, g, ctx.axis)


def _reverse_cumsum(xp, g, axis):
    """``out[i] = sum(g[i:])`` along ``axis``."""
    return xp.flip(xp.cumsum(xp.flip(g, axis), axis=axis), axis)


def _cum_axis(input, dim, op):
    axis = _wrap_dim(_as_int(dim, op), input.ndim, op)
    return axis, (input.reshape(1) if input.ndim == 0 else input)


@autocast_op
def cumsum(input, dim, *, dtype=None):
    """Running sum along ``dim``; bool/integer inputs give int64."""
    if dtype is not None:
        input = to_dtype(input, dtype)
    axis, x = _cum_axis(input, dim, "cumsum")
    out = CumSum.apply(x, axis)
    return out.reshape(()) if input.ndim == 0 else out


class CumProd(Function):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        acc = _acc(x.dtype)
        out = ctx.xp.cumprod(x, axis=axis, dtype=acc)
        out = out if acc is None or x.dtype.kind in "biu" else out.astype(x.dtype)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        # grad_i = sum_{k>=i} g_k prod_{j<=k, j!=i} x_j. Before a slice's first zero this is
        # revcumsum(g * out) / x_i; at the first zero, the same sum with that zero set to 1;
        # after it, 0.
        x, out = ctx.saved_tensors
        xp, axis = ctx.xp, ctx.axis
        zero = x == 0
        seen = xp.cumsum(zero, axis=axis)
        before = seen == 0
        grad = xp.where(before, _reverse_cumsum(xp, g * out, axis) / xp.where(before, x, 1), 0)
        first = zero & (seen == 1)
        if first.any():
            out_one = xp.cumprod(xp.where(first, 1, x), axis=axis)
            grad = grad + xp.where(first, _reverse_cumsum(xp, g * out_one, axis), 0)
        return grad.astype(g.dtype, copy=False)


@autocast_op
def cumprod(input, dim, *, dtype=None):
    """Running product along ``dim``; the gradient is exact when the input holds zeros."""
    if dtype is not None:
        input = to_dtype(input, dtype)
    axis, x = _cum_axis(input, dim, "cumprod")
    out = CumProd.apply(x, axis)
    return out.reshape(()) if input.ndim == 0 else out


# --------------------------------------------------------------------------- any / all
def _logical(input, dim, keepdim, is_any):
    op = "any" if is_any else "all"
    axes = _axes(dim, input.ndim, op)
    x = input._array
    out = x.any(axis=axes, keepdims=keepdim) if is_any else x.all(axis=axes, keepdims=keepdim)
    if x.dtype == np.uint8:
        out = out.astype(np.uint8)
    return Tensor._make(out, device=input.device)


def any(input, dim=None, keepdim=False):
    """True where any element over ``dim`` is nonzero (uint8 in, uint8 out, as PyTorch)."""
    return _logical(input, dim, keepdim, True)


def all(input, dim=None, keepdim=False):
    """True where every element over ``dim`` is nonzero (uint8 in, uint8 out, as PyTorch)."""
    return _logical(input, dim, keepdim, False)


# --------------------------------------------------------------------------- norms
class VectorNorm(Function):
    """``sum(|x|^p)^(1/p)`` over ``axes``, with p = 0, 1, 2, inf, -inf or any other number."""

    @staticmethod
    def forward(ctx, x, p, axes, keepdim):
        xp = ctx.xp
        xa = _upcast(x)
        a = xp.abs(xa)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if p == 2:
                out = xp.sqrt((xa * xa).sum(axis=axes, keepdims=keepdim))
            elif p == 1:
                out = a.sum(axis=axes, keepdims=keepdim)
            elif p == float("inf"):
                out = a.max(axis=axes, keepdims=keepdim)
            elif p == float("-inf"):
                out = a.min(axis=axes, keepdims=keepdim)
            elif p == 0:
                out = (a != 0).sum(axis=axes, keepdims=keepdim).astype(xa.dtype)
            else:
                out = (a ** p).sum(axis=axes, keepdims=keepdim) ** (1.0 / p)
        out = xp.asarray(out).astype(x.dtype, copy=False)
        ctx.meta = (p, axes, keepdim)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        xp = ctx.xp
        p, axes, keepdim = ctx.meta
        xa = _upcast(x)
        gk = _grad_in(xp, g, x.shape, axes, keepdim)
        norm = _grad_in(xp, _upcast(out), x.shape, axes, keepdim)
        a, sign = xp.abs(xa), xp.sign(xa)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if p == 0:
                grad = xp.zeros_like(xa)
            elif p == 1:
                grad = sign * gk
            elif p == 2:
                grad = xa * xp.where(norm == 0, 0, gk / norm)
            elif p in (float("inf"), float("-inf")):
                hit = a == norm
                count = xp.maximum(hit.sum(axis=axes, keepdims=True), 1)
                grad = xp.where(hit, sign * gk / count, 0)
            elif p < 1:
                grad = sign * xp.where(xa == 0, 0, a ** (p - 1)) * gk * norm ** (1 - p)
            else:
                scale = xp.where(norm == 0, 0, gk / norm ** (p - 1))
                grad = sign * a ** (p - 1) * scale
        return grad.astype(g.dtype, copy=False)


class NuclearNorm(Function):
    """Sum of singular values of the matrices spanning ``axes``; gradient ``U @ Vh``."""

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xp = ctx.xp
        m = xp.moveaxis(_upcast(x), axes, (-2, -1))
        u, s, vh = xp.linalg.svd(m, full_matrices=False)
        ctx.meta = (axes, keepdim, x.shape)
        ctx.uv = u @ vh
        out = s.sum(axis=-1)
        if keepdim:
            out = out.reshape(_keep_shape(x.shape, axes))
        return out.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        axes, keepdim, shape = ctx.meta
        if keepdim:
            g = g.reshape(_drop_shape(shape, axes))
        grad = g[..., None, None] * ctx.uv
        return xp.moveaxis(grad, (-2, -1), axes).astype(g.dtype, copy=False)


@autocast_op
def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector p-norm ('fro' = 2) over ``dim`` (all when None), or the nuclear norm ('nuc')."""
    if dtype is not None:
        input = to_dtype(input, dtype)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"norm: expected a floating point tensor as input, got {input.dtype}")
    if p == "nuc":
        if dim is None:
            dim = (0, 1) if input.ndim == 2 else None
        axes = _dims(dim, input.ndim, "norm") if dim is not None else ()
        if len(axes) != 2:
            raise RuntimeError(f"norm: p='nuc' needs a 2-D input or a 2-tuple dim, got dim={dim} "
                               f"for an input of shape {tuple(input.shape)}")
        return NuclearNorm.apply(input, axes, keepdim)
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, (str, bool)) or not isinstance(p, numbers.Real):
        raise ValueError(f"norm: p must be 'fro', 'nuc' or a number, got {p!r}")
    axes = _axes(dim, input.ndim, "norm")
    if p in (float("inf"), float("-inf")):
        _check_nonempty(input, axes, "norm")
    return VectorNorm.apply(input, float(p), axes, keepdim)
