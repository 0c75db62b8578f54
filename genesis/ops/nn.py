"""Neural-network ops, each one fused Function with an analytic backward.

softmax, norms, attention, embedding and activations are single graph nodes: fewer nodes and
saved arrays than their compositions, and exactly where GPU kernels plug in. The losses live
in ``loss.py`` and are re-exported here as part of the nn family.
"""
import math

import numpy as np

from .. import dtypes
from ..backends import scatter as _scatter
from ..backends import triton as _triton
from ..amp.autocast_mode import autocast_op
from .._broadcast import broadcast_shapes, check_broadcast_to
from ..autograd import Function, unbroadcast
from ..random import device_rng
from ..tensor import Tensor, _wrap_dim
from ._activations import act_and_grad as _act_and_grad, gelu as _gelu, gelu_grad as _gelu_grad, \
    sigmoid as _sigmoid, silu as _silu, silu_grad as _silu_grad
from .elementwise import to_dtype
from .linalg import _matmul
from ._nn_common import (check_float as _check_float, log_softmax as _log_softmax,
                         log_softmax_backward as _log_softmax_backward,
                         mean_over as _mean_over, opmath,
                         opmath_dtype, softmax as _softmax,
                         softmax_backward as _softmax_backward)
from .loss import binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss, nll_loss

__all__ = ["softmax", "log_softmax", "cross_entropy", "nll_loss", "silu", "gelu", "leaky_relu",
           "softplus", "silu_and_mul", "rms_norm", "layer_norm", "embedding",
           "scaled_dot_product_attention", "dropout", "linear", "mse_loss", "l1_loss",
           "binary_cross_entropy_with_logits", "pad", "normalize"]

# Ops that are also Tensor methods (x.name(...) is name(x, ...)); bound onto Tensor by ops/_methods.py.
TENSOR_METHODS = """
softmax log_softmax
"""


def _axes(op, x, dim):
    return None if x.ndim == 0 else _wrap_dim(dim, x.ndim, op)


# --------------------------------------------------------------------------- softmax family
class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        y = _softmax(ctx.xp, x, axis).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return _softmax_backward(ctx.xp, y, g, ctx.axis).astype(g.dtype, copy=False), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        y = _log_softmax(ctx.xp, x, axis).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return _log_softmax_backward(ctx.xp, y, g, ctx.axis).astype(g.dtype, copy=False), None


def _softmax_input(op, input, dtype):
    if dtype is not None:
        input = to_dtype(input, dtype)
    _check_float(op, input)
    return input


@autocast_op
def softmax(input, dim, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim``, computed stably (max subtracted)."""
    input = _softmax_input("softmax", input, dtype)
    return Softmax.apply(input, _axes("softmax", input, dim))


@autocast_op
def log_softmax(input, dim, dtype=None):
    """``log(softmax(x))`` along ``dim`` via the log-sum-exp trick."""
    input = _softmax_input("log_softmax", input, dtype)
    return LogSoftmax.apply(input, _axes("log_softmax", input, dim))


# --------------------------------------------------------------------------- activations
class Silu(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _silu(ctx.xp, x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        d = _silu_grad(ctx.xp, x)
        d *= g
        return d


class SiluAndMul(Function):
    """``silu(gate) * up``: the SwiGLU expert activation in one node."""

    @staticmethod
    def forward(ctx, gate, up):
        xp = ctx.xp
        ctx.save_for_backward(gate, up)
        ctx.fused = gate.shape == up.shape and gate.dtype == up.dtype and \
            _triton.enabled(xp, gate)
        if ctx.fused:
            return _triton.kernels("swiglu").forward(xp, xp.ascontiguousarray(gate),
                                                     xp.ascontiguousarray(up))
        act = _silu(xp, gate)
        if act.shape != up.shape:
            return act * up
        act *= up
        return act

    @staticmethod
    def backward(ctx, g):
        gate, up = ctx.saved_tensors
        if ctx.fused:
            xp = ctx.xp
            return _triton.kernels("swiglu").backward(xp, g, xp.ascontiguousarray(gate),
                                                      xp.ascontiguousarray(up))
        act, dact = _act_and_grad(ctx.xp, "silu", gate, True)
        ng, nu = ctx.needs_input_grad
        return (unbroadcast(g * up * dact, gate.shape) if ng else None,
                unbroadcast(g * act, up.shape) if nu else None)


class Gelu(Function):
    @staticmethod
    def forward(ctx, x, approximate):
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        return _gelu(ctx.xp, x, approximate).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        d = _gelu_grad(ctx.xp, x, ctx.approximate)
        return (g * d).astype(g.dtype, copy=False), None


def _leaky_select(xp, a, pos, slope):
    """``a`` where ``pos``, else ``a * slope`` (PyTorch's leaky_relu select, NaN and signed
    zeros included) as a multiply by ``[slope, 1][pos]``: a select with a data-dependent mask
    mispredicts branches on NumPy, a table lookup does not."""
    out = xp.empty(a.shape, a.dtype)
    xp.take(xp.asarray([slope, 1], dtype=a.dtype), xp.asarray(pos).view(xp.uint8), out=out)
    with np.errstate(invalid="ignore"):    # slope 0 times -inf is NaN, silently as in PyTorch
        out *= a
    return out


class LeakyRelu(Function):
    @staticmethod
    def forward(ctx, x, slope):
        pos = x > 0
        ctx.save_for_backward(pos)
        ctx.slope = slope
        return _leaky_select(ctx.xp, x, pos, slope)

    @staticmethod
    def backward(ctx, g):
        (pos,) = ctx.saved_tensors
        return _leaky_select(ctx.xp, g, pos, ctx.slope), None


class Softplus(Function):
    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = ctx.xp
        z = x * beta
        ctx.save_for_backward(x)
        ctx.params = (beta, threshold)
        soft = (xp.log1p(xp.exp(-xp.abs(z))) + xp.maximum(z, 0)) / beta
        return xp.where(z > threshold, x, soft).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        beta, threshold = ctx.params
        z = x * beta
        return ctx.xp.where(z > threshold, g, g * _sigmoid(ctx.xp, z)), None, None


def silu(input):
    """``x * sigmoid(x)`` (swish)."""
    _check_float("silu", input)
    return Silu.apply(input)


def silu_and_mul(gate, up):
    """``silu(gate) * up`` fused (SwiGLU); ``gate`` and ``up`` broadcast."""
    _check_float("silu_and_mul", gate, "gate")
    _check_float("silu_and_mul", up, "up")
    if gate.dtype is not up.dtype:
        raise TypeError(f"silu_and_mul: gate and up must have the same dtype, got {gate.dtype} "
                        f"and {up.dtype}")
    broadcast_shapes("silu_and_mul", gate.shape, up.shape)
    return SiluAndMul.apply(gate, up)


def gelu(input, approximate="none"):
    """Gaussian error linear unit; ``approximate='tanh'`` uses the tanh formula."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    _check_float("gelu", input)
    return Gelu.apply(input, approximate)


def leaky_relu(input, negative_slope=0.01):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    _check_float("leaky_relu", input)
    return LeakyRelu.apply(input, float(negative_slope))


@autocast_op
def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""
    _check_float("softplus", input)
    return Softplus.apply(input, float(beta), float(threshold))


# --------------------------------------------------------------------------- normalization
def _norm_axes(op, input, normalized_shape, **params):
    """Trailing axes covered by ``normalized_shape``; checks the affine parameters' shapes."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(int(s) for s in normalized_shape)
    if not shape or len(shape) > input.ndim \
            or tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ValueError(f"{op}: normalized_shape {shape} does not match the trailing dimensions "
                         f"of input of shape {tuple(input.shape)}")
    for name, p in params.items():
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"{op}: {name} of shape {tuple(p.shape)} does not match "
                             f"normalized_shape {shape}")
    return tuple(range(input.ndim - len(shape), input.ndim))


class RMSNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, axes, eps):
        xp = ctx.xp
        ctx.fused = len(axes) == 1 and _triton.enabled(xp, x, weight)
        if ctx.fused:
            y, rstd = _triton.kernels("rms_norm").forward(
                xp, xp.ascontiguousarray(x).reshape(-1, x.shape[-1]), weight, eps)
            ctx.save_for_backward(x, weight, rstd)
            return y.reshape(x.shape)
        xf = x.astype(opmath_dtype(x.dtype), copy=False)
        rstd = 1 / xp.sqrt(_mean_over(xp, xf * xf, axes) + eps)
        ctx.save_for_backward(x, weight, rstd)
        ctx.axes = axes
        y = (xf * rstd).astype(x.dtype, copy=False)
        return y if weight is None else y * weight

    @staticmethod
    def backward(ctx, g):
        x, weight, rstd = ctx.saved_tensors
        if ctx.fused:
            gx, gw = _triton.kernels("rms_norm").backward(
                ctx.xp, g.reshape(-1, x.shape[-1]), ctx.xp.ascontiguousarray(x).reshape(
                    -1, x.shape[-1]), weight, rstd)
            return gx.reshape(x.shape), gw if ctx.needs_input_grad[1] else None, None, None
        axes = ctx.axes
        cd = rstd.dtype
        xhat = x.astype(cd, copy=False) * rstd
        gf = g.astype(cd, copy=False)
        gw = None
        if weight is not None:
            if ctx.needs_input_grad[1]:
                lead = tuple(range(x.ndim - len(axes)))
                rounded = xhat.astype(x.dtype, copy=False).astype(cd, copy=False)
                gw = (gf * rounded).sum(axis=lead)
                gw = gw.astype(weight.dtype, copy=False)
            gf = gf * weight.astype(cd, copy=False)
        gx = None
        if ctx.needs_input_grad[0]:
            gx = rstd * (gf - xhat * _mean_over(ctx.xp, gf * xhat, axes))
            gx = gx.astype(x.dtype, copy=False)
        return gx, gw, None, None


class LayerNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, axes, eps):
        xp = ctx.xp
        xf = x.astype(opmath_dtype(x.dtype), copy=False)
        mean = _mean_over(xp, xf, axes)
        centered = xf - mean
        rstd = 1 / xp.sqrt(_mean_over(xp, centered * centered, axes) + eps)
        y = centered * rstd
        if weight is not None:
            y = y * weight
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.meta = (axes, None if bias is None else bias.dtype)
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, rstd = ctx.saved_tensors
        axes, bias_dtype = ctx.meta
        cd = rstd.dtype
        xhat = (x.astype(cd, copy=False) - mean) * rstd
        gf = g.astype(cd, copy=False)
        lead = tuple(range(x.ndim - len(axes)))
        nx, nw, nb = ctx.needs_input_grad[:3]
        gw = (gf * xhat).sum(axis=lead).astype(weight.dtype) if weight is not None and nw else None
        gb = gf.sum(axis=lead).astype(bias_dtype) if bias_dtype is not None and nb else None
        gx = None
        if nx:
            gh = gf if weight is None else gf * weight.astype(cd, copy=False)
            gx = rstd * (gh - _mean_over(ctx.xp, gh, axes)
                         - xhat * _mean_over(ctx.xp, gh * xhat, axes))
            gx = gx.astype(x.dtype, copy=False)
        return gx, gw, gb, None, None


@autocast_op
def rms_norm(input, normalized_shape, weight=None, eps=None):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the trailing ``normalized_shape`` dims."""
    _check_float("rms_norm", input)
    axes = _norm_axes("rms_norm", input, normalized_shape, weight=weight)
    if eps is None:
        eps = float(np.finfo(opmath_dtype(input.dtype.np)).eps)
    return RMSNorm.apply(input, weight, axes, float(eps))


@autocast_op
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the trailing dims."""
    _check_float("layer_norm", input)
    axes = _norm_axes("layer_norm", input, normalized_shape, weight=weight, bias=bias)
    return LayerNorm.apply(input, weight, bias, axes, float(eps))


class Normalize(Function):
    @staticmethod
    def forward(ctx, x, p, axis, eps):
        xp = ctx.xp
        xf = opmath(x)
        n = (xp.abs(xf) ** p).sum(axis=axis, keepdims=True) ** (1.0 / p)
        ctx.save_for_backward(x, n)
        ctx.params = (p, axis, eps)
        return (xf / xp.maximum(n, eps)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, n = ctx.saved_tensors
        p, axis, eps = ctx.params
        xf, gf = opmath(x), opmath(g)
        denom = xp.maximum(n, eps)
        above = n > eps
        safe_n = xp.where(above, n, 1)
        dn = xp.sign(xf) * xp.abs(xf) ** (p - 1) / safe_n ** (p - 1)
        proj = (gf * xf).sum(axis=axis, keepdims=True) / (denom * denom)
        gx = gf / denom - xp.where(above, proj, 0) * dn
        return gx.astype(g.dtype, copy=False), None, None, None


@autocast_op
def normalize(input, p=2.0, dim=1, eps=1e-12):
    """``x / max(||x||_p, eps)`` along ``dim``."""
    _check_float("normalize", input)
    if not 0 < p < math.inf:
        raise ValueError(f"normalize: p must be a positive finite number, got {p}")
    return Normalize.apply(input, float(p), _axes("normalize", input, dim), float(eps))


# --------------------------------------------------------------------------- embedding, linear
class Embedding(Function):
    @staticmethod
    def forward(ctx, indices, weight, padding_idx):
        ctx.save_for_backward(indices)
        ctx.meta = (weight.shape, weight.dtype, padding_idx)
        return weight[indices]

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (indices,) = ctx.saved_tensors
        shape, dt, padding_idx = ctx.meta
        flat = indices.reshape(-1)
        rows = g.reshape(flat.shape[0], shape[1])
        if padding_idx is not None:
            rows = xp.where((flat != padding_idx)[:, None], rows, 0)
        gw = xp.zeros((shape[0], rows.shape[1]), dtype=dt)
        _scatter.scatter_add(xp, gw, flat, rows)
        return None, gw.reshape(shape), None


def embedding(input, weight, padding_idx=None):
    """Rows of ``weight`` at integer ``input``; the ``padding_idx`` row gets no gradient."""
    if not isinstance(input, Tensor) or input.dtype.is_floating_point \
            or input.dtype is dtypes.bool_:
        raise TypeError(f"embedding: expected an integer index tensor, got "
                        f"{getattr(input, 'dtype', type(input).__name__)}")
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        raise ValueError(f"embedding: weight must be a 2-D tensor, got shape "
                         f"{tuple(getattr(weight, 'shape', ()))}")
    n = weight.shape[0]
    if input.numel():
        lo, hi = int(input._array.min()), int(input._array.max())
        if lo < 0 or hi >= n:
            raise IndexError(f"embedding: index {lo if lo < 0 else hi} is out of range for an "
                             f"embedding with {n} rows")
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx must be within [{-n}, {n}), got "
                             f"{padding_idx}")
        padding_idx = int(padding_idx) % n
    return Embedding.apply(input, weight, padding_idx)


class Linear(Function):
    """``x @ W^T + b`` with the batch dims folded into one 2-D matmul."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        y = _matmul(ctx.xp, x.reshape(-1, x.shape[-1]), weight.T)
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, weight = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad
        g2 = g.reshape(-1, weight.shape[0])
        gx = _matmul(xp, g2, weight).reshape(x.shape) if nx else None
        gw = _matmul(xp, g2.T, x.reshape(-1, x.shape[-1])) if nw else None
        gb = opmath(g2).sum(axis=0).astype(g.dtype, copy=False) if ctx.has_bias and nb else None
        return gx, gw, gb


@autocast_op
def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` for ``weight`` of shape ``(out_features, in_features)``."""
    _check_float("linear", input)
    _check_float("linear", weight, "weight")
    if weight.ndim != 2 or input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"linear: input of shape {tuple(input.shape)} and weight of shape "
                           f"{tuple(weight.shape)} are incompatible (expected weight "
                           "(out_features, in_features) with in_features = input.shape[-1])")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise RuntimeError(f"linear: bias of shape {tuple(bias.shape)} does not match "
                           f"out_features {weight.shape[0]}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype is not input.dtype:
            raise RuntimeError(f"linear: expected input and {name} to have the same dtype, but "
                               f"got {input.dtype} and {t.dtype}")
    return Linear.apply(input, weight, bias)


# --------------------------------------------------------------------------- attention, dropout
def _keep_mask(ctx, shape, p):
    """Bernoulli(1 - p) keep mask drawn on the op's device by that device's generator."""
    return device_rng(ctx.device).random(shape) >= p


def _apply_keep(xp, a, keep, p):
    """``a * keep * scale`` with PyTorch's CPU dropout scale ``1 / (1 - p)`` in ``a``'s opmath
    dtype (0 at p=1): dropped NaN or inf stay NaN as in PyTorch; no data-dependent branch."""
    if keep is None:
        return a
    ct = opmath_dtype(a.dtype).type
    scale = a.dtype.type(0 if p == 1 else ct(1) / ct(1.0 - p))
    out = xp.empty(a.shape, a.dtype)
    with np.errstate(invalid="ignore"):    # a dropped inf becomes NaN, silently as in PyTorch
        xp.multiply(a, keep, out=out)
        out *= scale
    return out


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, p):
        keep = _keep_mask(ctx, x.shape, p)
        ctx.save_for_backward(keep)
        ctx.p = p
        return _apply_keep(ctx.xp, x, keep, p)

    @staticmethod
    def backward(ctx, g):
        (keep,) = ctx.saved_tensors
        return _apply_keep(ctx.xp, g, keep, ctx.p), None


def _check_p(op, p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input, p=0.5, training=True):
    """Zero elements with probability ``p`` and scale the rest by ``1 / (1 - p)`` (training)."""
    _check_p("dropout", p)
    if not training or p == 0:
        return input
    return Dropout.apply(input, float(p))


class ScaledDotProductAttention(Function):
    """softmax(q k^T * scale + mask) v, saving the probabilities for the backward.

    Grouped-query attention never repeats keys and values: the query heads sharing a key/value
    head are one extra batch axis (``[..., H_kv, n_rep, L, E]`` against ``[..., H_kv, 1, S,
    E]``), so one decoding query is a matvec over the cache per key/value head."""

    @staticmethod
    def forward(ctx, q, k, v, mask, is_causal, scale, dropout_p, n_rep):
        xp = ctx.xp
        ctx.fused = (is_causal and mask is None and dropout_p == 0 and q.ndim == 4
                     and k.shape == v.shape and k.ndim == 4 and q.shape[0] == k.shape[0]
                     and q.shape[1] == k.shape[1] * n_rep and q.shape[2:] == k.shape[2:]
                     and _triton.enabled(xp, q, k, v))
        if ctx.fused:
            out, lse = _triton.kernels("attention").forward(xp, q, k, v, scale)
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.meta = scale
            return out
        qg, kg, vg = _grouped(xp, q, n_rep), _kv_grouped(xp, k, n_rep), _kv_grouped(xp, v, n_rep)
        if is_causal and mask is None and dropout_p == 0 and q.shape[-2] >= 2 * CAUSAL_BLOCK \
                and not any(ctx.needs_input_grad):
            return _ungrouped(_causal_blocks(xp, qg, kg, vg, scale, q.dtype), n_rep)
        s = _probs(xp, qg, kg, None if mask is None else _grouped(xp, mask, n_rep), is_causal,
                   scale)
        keep = _keep_mask(ctx, s.shape, dropout_p) if dropout_p > 0 else None
        used = _apply_keep(xp, s, keep, dropout_p)
        ctx.save_for_backward(q, k, v, s, keep)
        ctx.meta = (mask.shape if mask is not None and mask.dtype != bool else None, scale,
                    dropout_p, n_rep)
        out = _matmul(xp, used.astype(q.dtype, copy=False), vg)
        return out.reshape(out.shape[:-4] + (-1,) + out.shape[-2:]) if n_rep > 1 else out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        if ctx.fused:
            q, k, v, out, lse = ctx.saved_tensors
            gq, gk, gv = _triton.kernels("attention").backward(xp, g, q, k, v, out, lse, ctx.meta)
            return gq, gk, gv, None, None, None, None, None
        q, k, v, probs, keep = ctx.saved_tensors
        mask_shape, scale, dropout_p, n_rep = ctx.meta
        qg, kg, vg = _grouped(xp, q, n_rep), _kv_grouped(xp, k, n_rep), _kv_grouped(xp, v, n_rep)
        gg = _grouped(xp, g, n_rep)
        nq, nk, nv, nm = ctx.needs_input_grad[:4]
        used = _apply_keep(xp, probs, keep, dropout_p).astype(q.dtype, copy=False)
        gv = _matmul(xp, xp.swapaxes(used, -1, -2), gg) if nv else None
        gp = _apply_keep(xp, opmath(_matmul(xp, gg, xp.swapaxes(vg, -1, -2))), keep, dropout_p)
        gs = probs * (gp - (gp * probs).sum(axis=-1, keepdims=True))
        gs = gs.astype(q.dtype, copy=False)
        gm = unbroadcast(_ungrouped(gs, n_rep), mask_shape) if nm and mask_shape is not None \
            else None
        gs = gs * scale
        gq = unbroadcast(_ungrouped(_matmul(xp, gs, kg), n_rep), q.shape) if nq else None
        gk = _matmul(xp, xp.swapaxes(gs, -1, -2), qg) if nk else None
        return (gq, _fold_heads(gk, k.shape, n_rep), _fold_heads(gv, v.shape, n_rep), gm,
                None, None, None, None)


CAUSAL_BLOCK = 64  # query rows per block of causal attention without autograd


def _probs(xp, q, k, mask, is_causal, scale, row0=0):
    """Attention probabilities (opmath dtype) of the query rows ``row0, row0 + 1, ...``;
    causal: row ``i`` sees the keys ``j <= i``."""
    s = opmath(_matmul(xp, q, xp.swapaxes(k, -1, -2)))
    s *= scale
    if mask is not None:
        if mask.dtype == bool:
            s = xp.where(mask, s, -math.inf)
        else:
            s += mask
    if is_causal:
        rows, keys = s.shape[-2:]
        start = min(row0 + 1, keys)  # the first key some row of this block must not see
        hidden = ~xp.tri(rows, keys - start, k=row0 - start, dtype=bool)
        xp.copyto(s[..., start:], -math.inf, where=hidden)
    _softmax_rows_(xp, s)
    return s


def _causal_blocks(xp, q, k, v, scale, dtype):
    """Causal attention when no gradient is needed: the query rows in blocks, each reading only
    the keys it can see (about half the scores of the full matrix, none of them kept)."""
    rows, keys = q.shape[-2], k.shape[-2]
    out = None
    for r0 in range(0, rows, CAUSAL_BLOCK):
        r1 = min(r0 + CAUSAL_BLOCK, rows)
        end = min(r1, keys)
        probs = _probs(xp, q[..., r0:r1, :], k[..., :end, :], None, True, scale, r0)
        block = _matmul(xp, probs.astype(dtype, copy=False), v[..., :end, :])
        if out is None:
            out = xp.empty(block.shape[:-2] + (rows, block.shape[-1]), dtype=block.dtype)
        out[..., r0:r1, :] = block
    return out


def _grouped(xp, x, n_rep):
    """``[..., H, L, X]`` as ``[..., H / n_rep, n_rep, L, X]`` (a view); a size-1 or absent head
    axis gains a size-1 group axis (it broadcasts)."""
    if n_rep == 1 or x.ndim < 3:
        return x
    if x.shape[-3] == 1:
        return x[..., None, :, :]
    return x.reshape(x.shape[:-3] + (x.shape[-3] // n_rep, n_rep) + x.shape[-2:])


def _kv_grouped(xp, x, n_rep):
    """Keys or values ``[..., H_kv, S, X]`` as ``[..., H_kv, 1, S, X]`` (grouped queries)."""
    return x[..., None, :, :] if n_rep > 1 else x


def _ungrouped(x, n_rep):
    """Undo ``_grouped``'s split of the head axis (``[..., H_kv, n_rep, L, X]`` -> ``[..., H,
    L, X]``)."""
    return x.reshape(x.shape[:-4] + (-1,) + x.shape[-2:]) if n_rep > 1 else x


def _softmax_rows_(xp, s):
    """Softmax over the last axis in place; rows that are all ``-inf`` become zeros (their max
    is raised to the lowest finite value, their zero total to the smallest positive one)."""
    info = np.finfo(s.dtype)
    m = s.max(axis=-1, keepdims=True) if s.size else s[..., :1]
    xp.maximum(m, info.min, out=m)
    s -= m
    xp.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)
    xp.maximum(total, info.tiny, out=total)
    s /= total


def _fold_heads(g, shape, n_rep):
    """Sum the gradient of the grouped query heads back onto the shared key/value heads."""
    if g is None:
        return None
    if n_rep > 1:
        g = g.sum(axis=-3)
    return unbroadcast(g, shape)


@autocast_op
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """Attention ``softmax(q k^T / sqrt(E) + mask) v`` over leading batch dims, like PyTorch."""
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        _check_float(op, t, name)
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} must have at least 2 dimensions, got shape "
                             f"{tuple(t.shape)}")
    qs, ks, vs = tuple(query.shape), tuple(key.shape), tuple(value.shape)
    if qs[-1] != ks[-1] or ks[-2] != vs[-2] or ks[:-2] != vs[:-2]:
        raise ValueError(f"{op}: incompatible shapes query {qs}, key {ks}, value {vs}; expected "
                         "(..., L, E), (..., S, E), (..., S, Ev)")
    if query.dtype is not key.dtype or query.dtype is not value.dtype:
        raise TypeError(f"{op}: query, key and value must have the same dtype, got "
                        f"{query.dtype}, {key.dtype}, {value.dtype}")
    _check_p(op, dropout_p)
    n_rep = 1
    if enable_gqa and query.ndim >= 3 and key.ndim >= 3 and qs[-3] != ks[-3]:
        if qs[-3] % ks[-3]:
            raise ValueError(f"{op}: with enable_gqa the number of query heads ({qs[-3]}) must "
                             f"be a multiple of the key/value heads ({ks[-3]})")
        n_rep = qs[-3] // ks[-3]
    k_batch = ks[:-3] + ((ks[-3] * n_rep,) if key.ndim >= 3 else ())
    batch = qs[:-2]
    if batch != k_batch:
        batch = broadcast_shapes(op, batch, k_batch, what=f"batch dimensions of query {qs} and "
                                 f"key {ks} (grouped-query attention needs enable_gqa=True)")
    mask = attn_mask
    if mask is not None:
        if is_causal:
            raise RuntimeError(f"{op}: an explicit attn_mask should not be set when "
                               "is_causal=True")
        if not isinstance(mask, Tensor):
            raise TypeError(f"{op}: attn_mask must be a Tensor, got {type(mask).__name__}")
        check_broadcast_to(op, mask.shape, batch + (qs[-2], ks[-2]), "attn_mask",
                           "the attention scores")
        if mask.dtype is not dtypes.bool_:
            if not mask.dtype.is_floating_point:
                raise TypeError(f"{op}: attn_mask must be bool or floating, got {mask.dtype}")
            mask = to_dtype(mask, query.dtype)
    scale = 1.0 / math.sqrt(qs[-1]) if scale is None else float(scale)
    return ScaledDotProductAttention.apply(query, key, value, mask, bool(is_causal), scale,
                                           float(dropout_p), n_rep)



# --------------------------------------------------------------------------- padding
class ConstantPad(Function):
    @staticmethod
    def forward(ctx, x, pads, value):
        xp = ctx.xp
        crop = tuple(slice(max(-b, 0), n - max(-a, 0)) for (b, a), n in zip(pads, x.shape))
        ctx.pads = pads
        return xp.pad(x[crop], [(max(b, 0), max(a, 0)) for b, a in pads],
                      constant_values=value)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        pads = ctx.pads
        inner = tuple(slice(max(b, 0), n - max(a, 0)) for (b, a), n in zip(pads, g.shape))
        return xp.pad(g[inner], [(max(-b, 0), max(-a, 0)) for b, a in pads]), None, None


class IndexPad(Function):
    """Padding by gathering source positions per dimension (reflect/replicate/circular)."""

    @staticmethod
    def forward(ctx, x, index_maps):
        xp = ctx.xp
        ctx.meta = (x.shape, index_maps)
        for axis, idx in index_maps:
            x = xp.take(x, xp.asarray(idx), axis=axis)
        return x

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        shape, index_maps = ctx.meta
        sizes = list(g.shape)
        for axis, idx in reversed(index_maps):
            sizes[axis] = shape[axis]
            out = xp.zeros([sizes[axis]] + sizes[:axis] + sizes[axis + 1:], dtype=g.dtype)
            _scatter.scatter_add(xp, out, xp.asarray(idx), xp.moveaxis(g, axis, 0))
            g = xp.moveaxis(out, 0, axis)
        return g, None


def _source_index(mode, n, before, after):
    """For ``mode``, the source position of each padded output position along one axis."""
    pos = np.arange(-before, n + after)
    if mode == "replicate":
        return np.clip(pos, 0, n - 1)
    if mode == "circular":
        return np.mod(pos, n)
    period = 2 * (n - 1)
    r = np.mod(pos, period) if period else np.zeros_like(pos)
    return np.where(r < n, r, period - r)


def pad(input, pad, mode="constant", value=None):
    """Pad the last ``len(pad) // 2`` dims; ``pad = (last_before, last_after, ...)``."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: padding length must be even and at most 2 * ndim "
                         f"({2 * input.ndim}) for input of shape {tuple(input.shape)}, got {pad}")
    pairs = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        pairs[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    for axis, ((b, a), n) in enumerate(zip(pairs, input.shape)):
        if n + b + a < 0:
            raise ValueError(f"pad: padding {(b, a)} on dimension {axis} of size {n} would give "
                             "a negative size")
    if mode == "constant":
        fill = 0 if value is None else value
        return ConstantPad.apply(input, tuple(pairs), input.dtype.np.type(fill))
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', "
                         f"got {mode!r}")
    if value:
        raise ValueError(f"pad: padding mode {mode!r} doesn't take in a value argument")
    maps = []
    for axis, ((b, a), n) in enumerate(zip(pairs, input.shape)):
        if b == 0 and a == 0:
            continue
        limit = n - 1 if mode == "reflect" else n if mode == "circular" else None
        if n == 0 or (limit is not None and max(b, a) > limit):
            raise ValueError(f"pad: {mode} padding {(b, a)} is too large for dimension {axis} "
                             f"of size {n}")
        maps.append((axis, tuple(_source_index(mode, n, b, a).tolist())))
    return IndexPad.apply(input, tuple(maps))
