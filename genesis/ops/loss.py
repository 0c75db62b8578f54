"""Loss ops: cross entropy, NLL, regression and binary losses, each one fused Function.

Every loss takes PyTorch's arguments (``weight``, ``ignore_index``, ``reduction``, the
deprecated ``size_average``/``reduce``) and differentiates analytically in one node.
"""
import warnings

import numpy as np

from .. import dtypes
from ..amp.autocast_mode import autocast_op
from .._broadcast import broadcast_shapes, check_broadcast_to
from ..autograd import Function, is_grad_enabled, unbroadcast
from ..backends import parallel
from ..backends import triton as _triton
from ..tensor import Tensor
from ._nn_common import check_float as _check_float, log_softmax as _log_softmax, opmath
from ._activations import sigmoid as _sigmoid
from .elementwise import to_dtype

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits"]

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _legacy_reduction(op, size_average, reduce, reduction):
    """PyTorch's deprecated ``size_average``/``reduce`` flags folded into ``reduction``."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
    _check_reduction(op, reduction)
    return reduction


def _reduce(xp, loss, reduction, denom=None):
    """Apply ``reduction`` (accumulating in opmath); 'mean' divides by ``denom`` or the size."""
    if reduction == "none":
        return loss
    total = opmath(loss).sum()
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            total = total / (loss.size if denom is None else denom)
    return xp.asarray(total).astype(loss.dtype, copy=False)


def _expand_grad(xp, g, shape, reduction, denom=None):
    """Gradient of a reduction: ``g`` spread back over the unreduced loss of ``shape``."""
    if reduction == "none":
        return g
    if reduction == "mean":
        n = int(np.prod(shape)) if denom is None else denom
        with np.errstate(invalid="ignore", divide="ignore"):
            g = g / n
    return xp.broadcast_to(g, shape)


# --------------------------------------------------------------------------- classification
def _rows(xp, x):
    """``(N, C, d1, ...)`` -> ``(N * d1 * ..., C)`` rows (class axis last)."""
    if x.ndim == 2:
        return x
    if x.ndim == 1:
        return x[None]
    return xp.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _unrows(xp, rows, shape):
    """Inverse of ``_rows``."""
    if len(shape) <= 2:
        return rows.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return xp.ascontiguousarray(xp.moveaxis(rows.reshape(moved), -1, 1))


def _class_targets(xp, t, weight, ignore_index, n_classes, dtype, op):
    """Flat targets made safe for indexing, and each row's weight (0 where ignored)."""
    t = t.reshape(-1)
    valid = t != ignore_index
    bad = valid & ((t < 0) | (t >= n_classes))
    if bool(bad.any()):
        raise IndexError(f"{op}: target {int(t[bad][0])} is out of bounds for {n_classes} "
                         "classes")
    safe = xp.where(valid, t, 0)
    w_t = valid.astype(dtype) if weight is None else xp.where(valid, weight[safe], 0)
    return safe, valid, w_t.astype(dtype, copy=False)


def _scaled_exp(xp, logp, scale):
    """``exp(logp) * scale`` for a per-row ``scale`` of shape (rows, 1): one buffer, two passes,
    over the thread pool for large arrays."""
    def run(out, lb, sb):
        xp.exp(lb, out=out)
        out *= sb
    return parallel.blocks(run, xp.empty(logp.shape, logp.dtype), logp,
                           xp.broadcast_to(scale, (logp.shape[0], 1)))


class CrossEntropy(Function):
    """log_softmax + negative log-likelihood (+ label smoothing) over the class axis 1.

    Every case is ``loss_i = -sum_c A_ic log p_ic`` for a coefficient matrix ``A`` built from
    the targets, so the input gradient is ``p_i * sum_c A_ic - A_ic`` without a one-hot array.
    """

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction, smoothing, probs):
        xp = ctx.xp
        ctx.fused = (x.ndim == 2 and not probs and weight is None and not smoothing
                     and _triton.enabled(xp, x))
        if ctx.fused:
            loss, lse = _triton.kernels("softmax_xent").forward(xp, x, target, ignore_index)
            denom = (target != ignore_index).sum().astype(loss.dtype)
            ctx.save_for_backward(x, target, lse)
            ctx.meta = (ignore_index, reduction, denom)
            return _reduce(xp, loss, reduction, denom).astype(x.dtype, copy=False)
        rows = _rows(xp, x)
        n_classes = rows.shape[1]
        logp = _log_softmax(xp, rows, 1)
        w_row = 1 if weight is None else weight[None, :]
        if probs:
            coef = _rows(xp, target)
            if smoothing:
                coef = coef * (1 - smoothing) + smoothing / n_classes
            loss = -(coef * w_row * logp).sum(axis=1)
            denom = rows.shape[0]
        else:
            safe, valid, w_t = _class_targets(xp, target, weight, ignore_index, n_classes,
                                              logp.dtype, "cross_entropy")
            picked = xp.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
            loss = -(1 - smoothing) * w_t * picked
            if smoothing:
                loss = loss - (smoothing / n_classes) * xp.where(
                    valid, (logp * w_row).sum(axis=1), 0)
            denom = w_t.sum()
            ctx.targets = (safe, valid, w_t)
        ctx.save_for_backward(logp, weight, target if probs else None)
        ctx.x_dtype = x.dtype
        ctx.meta = (x.shape, target.shape, reduction, smoothing, probs, denom)
        loss = loss.reshape(x.shape[:1] + x.shape[2:] if x.ndim > 1 else ())
        return _reduce(xp, loss, reduction, denom).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        if ctx.fused:
            x, target, lse = ctx.saved_tensors
            ignore_index, reduction, denom = ctx.meta
            rows = _expand_grad(xp, opmath(g), (x.shape[0],), reduction, denom)
            gx = _triton.kernels("softmax_xent").backward(xp, x, target, lse, rows, ignore_index)
            return gx, None, None, None, None, None, None
        logp, weight, target = ctx.saved_tensors
        x_shape, t_shape, reduction, smoothing, probs, denom = ctx.meta
        n_rows, n_classes = logp.shape
        gl = _expand_grad(xp, g, (n_rows,), reduction, denom).reshape(n_rows, 1)
        w_row = 1 if weight is None else weight[None, :]
        gt = None
        if probs:
            p = xp.exp(logp)
            coef = _rows(xp, target)
            if smoothing:
                coef = coef * (1 - smoothing) + smoothing / n_classes
            coef = coef * w_row
            gx = gl * (p * coef.sum(axis=1, keepdims=True) - coef)
            if ctx.needs_input_grad[1]:
                gt = _unrows(xp, -(1 - smoothing) * gl * w_row * logp, t_shape)
        else:
            safe, valid, w_t = ctx.targets
            rowsum = (1 - smoothing) * w_t
            if smoothing:
                w_sum = n_classes if weight is None else weight.sum()
                rowsum = rowsum + (smoothing / n_classes) * w_sum * valid.astype(w_t.dtype)
            gx = _scaled_exp(xp, logp, gl * rowsum[:, None])
            if smoothing:
                gx = gx - (smoothing / n_classes) * (gl * valid[:, None]) * w_row
            idx = xp.arange(n_rows)
            gx[idx, safe] -= (1 - smoothing) * gl[:, 0] * w_t
        if gt is not None:
            gt = gt.astype(target.dtype, copy=False)
        return (_unrows(xp, gx.astype(ctx.x_dtype, copy=False), x_shape), gt,
                None, None, None, None, None)


class NllLoss(Function):
    """Negative log-likelihood of log-probabilities ``x`` (class axis 1) at class targets."""

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction):
        xp = ctx.xp
        rows = opmath(_rows(xp, x))
        safe, valid, w_t = _class_targets(xp, target, weight, ignore_index, rows.shape[1],
                                          rows.dtype, "nll_loss")
        loss = -w_t * xp.take_along_axis(rows, safe[:, None], axis=1)[:, 0]
        denom = w_t.sum()
        ctx.meta = (x.shape, safe, w_t, reduction, denom, x.dtype)
        return _reduce(xp, loss.reshape(target.shape), reduction, denom).astype(x.dtype,
                                                                               copy=False)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x_shape, safe, w_t, reduction, denom, dt = ctx.meta
        n_rows = safe.shape[0]
        gl = _expand_grad(xp, g, (n_rows,), reduction, denom).reshape(n_rows)
        n_classes = x_shape[1] if len(x_shape) > 1 else x_shape[0]
        gx = xp.zeros((n_rows, n_classes), dtype=dt)
        gx[xp.arange(n_rows), safe] = -gl * w_t
        return _unrows(xp, gx, x_shape), None, None, None, None


def _check_class_input(op, input, target, weight):
    """Validate shapes/dtypes of (input, target, weight); True when targets are probabilities."""
    _check_float(op, input)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: expected target to be a Tensor, got {type(target).__name__}")
    shape, t_shape = tuple(input.shape), tuple(target.shape)
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dimension (classes), got a 0-d tensor")
    n_classes = shape[0] if input.ndim == 1 else shape[1]
    if weight is not None:
        _check_float(op, weight, "weight")
        if tuple(weight.shape) != (n_classes,):
            raise ValueError(f"{op}: weight must have shape ({n_classes},) for input of shape "
                             f"{shape}, got {tuple(weight.shape)}")
        if weight.requires_grad and is_grad_enabled():
            raise RuntimeError(f"{op}: not differentiable with respect to weight; pass "
                               "weight.detach()")
    if target.dtype.is_floating_point:
        if t_shape != shape:
            raise ValueError(f"{op}: probability targets must have the input's shape {shape}, "
                             f"got {t_shape}")
        return True
    if target.dtype is dtypes.bool_:
        raise TypeError(f"{op}: expected integer class targets or floating probability "
                        "targets, got bool")
    want = () if input.ndim == 1 else shape[:1] + shape[2:]
    if t_shape != want:
        raise ValueError(f"{op}: expected target of shape {want} for input of shape {shape}, "
                         f"got {t_shape}")
    return False


@autocast_op
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross entropy of logits ``(N, C, ...)`` against class indices or class probabilities."""
    reduction = _legacy_reduction("cross_entropy", size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing}")
    probs = _check_class_input("cross_entropy", input, target, weight)
    if probs:
        target = to_dtype(target, input.dtype)
    if weight is not None:
        weight = to_dtype(weight, input.dtype)
    return CrossEntropy.apply(input, target, weight, int(ignore_index), reduction,
                              float(label_smoothing), probs)


@autocast_op
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities ``(N, C, ...)`` at class-index targets."""
    reduction = _legacy_reduction("nll_loss", size_average, reduce, reduction)
    if _check_class_input("nll_loss", input, target, weight):
        raise TypeError(f"nll_loss: expected integer class targets, got {target.dtype}")
    if weight is not None:
        weight = to_dtype(weight, input.dtype)
    return NllLoss.apply(input, target, weight, int(ignore_index), reduction)


# --------------------------------------------------------------------------- regression losses
class PointwiseLoss(Function):
    """Elementwise regression loss (squared or absolute error), optionally weighted."""

    @staticmethod
    def forward(ctx, x, t, weight, reduction, kind):
        xp = ctx.xp
        d = x - t
        err = d * d if kind == "mse" else xp.abs(d)
        loss = err if weight is None else err * weight
        denom = None if weight is None else opmath(weight).sum()
        out = _reduce(xp, loss, reduction, denom)
        ctx.save_for_backward(d, weight)
        ctx.meta = (x.shape, t.shape, reduction, kind, denom, out)
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        d, weight = ctx.saved_tensors
        x_shape, t_shape, reduction, kind, denom, out = ctx.meta
        ge = _expand_grad(xp, g, d.shape, reduction, denom)
        gw = None
        if weight is not None:
            if ctx.needs_input_grad[2]:
                err = d * d if kind == "mse" else xp.abs(d)
                # A weighted mean divides by weight.sum(), which depends on the weight too.
                gw = ge * (err - out) if reduction == "mean" else ge * err
            ge = ge * weight
        gd = ge * (2 * d if kind == "mse" else xp.sign(d))
        nx, nt = ctx.needs_input_grad[:2]
        return (unbroadcast(gd, x_shape) if nx else None,
                unbroadcast(-gd, t_shape) if nt else None, gw, None, None)


def _pointwise_loss(op, kind, input, target, size_average, reduce, reduction, weight):
    reduction = _legacy_reduction(op, size_average, reduce, reduction)
    _check_float(op, input)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: expected target to be a Tensor, got {type(target).__name__}")
    shape = broadcast_shapes(op, input.shape, target.shape, what=f"input of shape "
                             f"{tuple(input.shape)} and target of shape {tuple(target.shape)}")
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"{op}: using a target size {tuple(target.shape)} that is different to the "
                      f"input size {tuple(input.shape)}; this will likely lead to incorrect "
                      "results due to broadcasting", stacklevel=3)
    dt = dtypes.promote_types(input.dtype, target.dtype)
    if weight is not None:
        if tuple(weight.shape) != tuple(input.shape) or shape != tuple(input.shape):
            raise ValueError(f"{op}: weight of shape {tuple(weight.shape)} must match the input "
                             f"shape {tuple(input.shape)}")
        weight = to_dtype(weight, dt)
    return PointwiseLoss.apply(to_dtype(input, dt), to_dtype(target, dt), weight, reduction,
                               kind)


@autocast_op
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error (optionally weighted; 'mean' then divides by ``weight.sum()``)."""
    return _pointwise_loss("mse_loss", "mse", input, target, size_average, reduce, reduction,
                           weight)


@autocast_op
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error (optionally weighted; 'mean' then divides by ``weight.sum()``)."""
    return _pointwise_loss("l1_loss", "l1", input, target, size_average, reduce, reduction,
                           weight)


class BCEWithLogits(Function):
    """Binary cross entropy on logits: ``(1 - t) x + (1 + (pw - 1) t) softplus(-x)``, weighted."""

    @staticmethod
    def forward(ctx, x, t, weight, pos_weight, reduction):
        xp = ctx.xp
        sp = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
        lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        loss = (1 - t) * x + lw * sp
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, t, weight, pos_weight)
        ctx.reduction = reduction
        return _reduce(xp, loss, reduction)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, t, weight, pos_weight = ctx.saved_tensors
        nx, nt = ctx.needs_input_grad[:2]
        ge = _expand_grad(xp, g, x.shape, ctx.reduction)
        if weight is not None:
            ge = ge * weight
        lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        gx = ge * ((1 - t) - lw * _sigmoid(xp, -x)) if nx else None
        gt = None
        if nt:
            dt = -x
            if pos_weight is not None:
                dt = dt + (pos_weight - 1) * (xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0))
            gt = ge * dt
        return gx, gt, None, None, None


@autocast_op
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid + binary cross entropy in one numerically stable op."""
    op = "binary_cross_entropy_with_logits"
    reduction = _legacy_reduction(op, size_average, reduce, reduction)
    _check_float(op, input)
    _check_float(op, target, "target")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{op}: target size {tuple(target.shape)} must be the same as input "
                         f"size {tuple(input.shape)}")
    args = []
    for name, t in (("weight", weight), ("pos_weight", pos_weight)):
        if t is not None:
            check_broadcast_to(op, t.shape, input.shape, name, "the input")
            if t.requires_grad and is_grad_enabled():
                raise RuntimeError(f"{op}: not differentiable with respect to {name}; pass "
                                   f"{name}.detach()")
            t = to_dtype(t, input.dtype)
        args.append(t)
    return BCEWithLogits.apply(input, to_dtype(target, input.dtype), *args, reduction)
