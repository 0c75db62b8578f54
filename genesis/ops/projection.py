"""Several linear projections of one input as one GEMM (fused QKV, fused gate/up).

``merged_linear(x, [w1, w2, ...], [b1, b2, ...])`` is ``cat([linear(x, w1, b1), ...], -1)``
computed as one matmul against the row-concatenated weights, with one analytic backward that
hands each weight and bias its own gradient. The weights stay separate tensors (their names,
state dicts and optimizers are unchanged); ``pack_rows`` can place them as consecutive row
blocks of one array so that the concatenation costs no copy while they remain those views.
"""
from ..amp.autocast_mode import autocast_op
from ..autograd import Function
from ..backends import xp_for
from ..tensor import Tensor
from ._nn_common import check_float as _check_float, opmath
from .linalg import _matmul

__all__ = ["merged_linear"]


class PackedRows:
    """An array whose consecutive row blocks are the arrays ``views`` (numpy/cupy views of it):
    their row concatenation for free, as long as the tensors still hold these very views."""

    __slots__ = ("array", "views")

    def __init__(self, array, views):
        self.array = array
        self.views = views

    def concat(self, xp, arrays):
        """``xp.concatenate(arrays)``: this array itself when ``arrays`` are its views."""
        views = self.views
        if len(arrays) == len(views) and all(a is v for a, v in zip(arrays, views)):
            return self.array
        return xp.concatenate(arrays)


def pack_rows(tensors):
    """Move the values of ``tensors`` (same dtype, device and trailing shape) into one array and
    rebind each tensor to a view of its row block; returns the ``PackedRows``.

    Only for tensors whose memory nobody else holds yet (just built or just converted): a
    tensor's storage changes identity here, as it does in ``Module.to``."""
    xp = xp_for(tensors[0].device)
    array = xp.concatenate([t._array for t in tensors])
    views, start = [], 0
    for t in tensors:
        view = array[start:start + t.shape[0]]
        start += t.shape[0]
        t._array = view
        views.append(view)
    return PackedRows(array, tuple(views))


def _concat(xp, arrays, packed):
    return packed.concat(xp, arrays) if packed is not None else xp.concatenate(arrays)


class MergedLinear(Function):
    """``x @ cat(weights).T + cat(biases)`` with each weight's gradient split back out."""

    @staticmethod
    def forward(ctx, x, n_weights, weight_rows, bias_rows, *params):
        xp = ctx.xp
        weights, biases = params[:n_weights], params[n_weights:]
        w = _concat(xp, weights, weight_rows)
        y = _matmul(xp, x.reshape(-1, x.shape[-1]), w.T)
        if biases:
            y += _concat(xp, biases, bias_rows)
        ctx.save_for_backward(x, w, *weights)
        ctx.sizes = [wi.shape[0] for wi in weights]
        ctx.has_bias = bool(biases)
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, w = ctx.saved_tensors[:2]
        needs = ctx.needs_input_grad
        n = len(ctx.sizes)
        g2 = g.reshape(-1, w.shape[0])
        gx = _matmul(xp, g2, w).reshape(x.shape) if needs[0] else None
        bounds = [0]
        for size in ctx.sizes:
            bounds.append(bounds[-1] + size)
        gws = [None] * n
        if any(needs[4:4 + n]):
            gw = _matmul(xp, g2.T, x.reshape(-1, x.shape[-1]))
            gws = [gw[a:b] if need else None
                   for a, b, need in zip(bounds, bounds[1:], needs[4:4 + n])]
        gbs = []
        if ctx.has_bias:
            gbs = [None] * n
            if any(needs[4 + n:]):
                gb = opmath(g2).sum(axis=0).astype(g.dtype, copy=False)
                gbs = [gb[a:b] if need else None
                       for a, b, need in zip(bounds, bounds[1:], needs[4 + n:])]
        return (gx, None, None, None, *gws, *gbs)


@autocast_op
def merged_linear(input, weights, biases=None, weight_rows=None, bias_rows=None):
    """``cat([linear(input, w, b) for w, b in zip(weights, biases)], dim=-1)`` as one GEMM.

    ``weight_rows``/``bias_rows``: ``PackedRows`` from ``pack_rows`` holding the weights'
    (biases') concatenation; used only while the tensors still hold its views, otherwise the
    arrays are concatenated for this call."""
    _check_float("merged_linear", input)
    weights = tuple(weights)
    biases = () if biases is None else tuple(biases)
    dtype = input.dtype
    in_features = input._array.shape[-1] if input.ndim else None
    ok = bool(weights) and (not biases or len(biases) == len(weights))
    for w in weights:
        ok = ok and isinstance(w, Tensor) and w.dtype is dtype and w.ndim == 2 \
            and w._array.shape[1] == in_features
    for b, w in zip(biases, weights):
        ok = ok and isinstance(b, Tensor) and b.dtype is dtype \
            and b._array.shape == w._array.shape[:1]
    if not ok:
        _explain(input, weights, biases)
    return MergedLinear.apply(input, len(weights), weight_rows, bias_rows, *weights, *biases)


def _explain(input, weights, biases):
    """Raise the error that names what is wrong with ``merged_linear``'s arguments."""
    op = "merged_linear"
    if not weights:
        raise ValueError(f"{op}: expected at least one weight, got none")
    for i, w in enumerate(weights):
        _check_float(op, w, f"weights[{i}]")
        if w.ndim != 2 or input.ndim == 0 or w.shape[1] != input.shape[-1]:
            raise RuntimeError(f"{op}: input of shape {tuple(input.shape)} and weights[{i}] of "
                               f"shape {tuple(w.shape)} are incompatible (expected "
                               "(out_features, in_features) with in_features = input.shape[-1])")
        if w.dtype is not input.dtype:
            raise RuntimeError(f"{op}: expected input and weights[{i}] to have the same dtype, "
                               f"but got {input.dtype} and {w.dtype}")
    if biases and len(biases) != len(weights):
        raise ValueError(f"{op}: got {len(biases)} biases for {len(weights)} weights")
    for i, (b, w) in enumerate(zip(biases, weights)):
        _check_float(op, b, f"biases[{i}]")
        if tuple(b.shape) != (w.shape[0],) or b.dtype is not input.dtype:
            raise RuntimeError(f"{op}: biases[{i}] of shape {tuple(b.shape)} and dtype "
                               f"{b.dtype} does not match out_features {w.shape[0]} and dtype "
                               f"{input.dtype}")
