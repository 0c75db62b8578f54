"""Rotary position embedding as one fused op (HF half-split pairing) with analytic backward."""
from ..autograd import Function, unbroadcast
from ..backends import triton as _triton

__all__ = ["rotary_embedding"]


def _rotate_half(xp, x):
    half = x.shape[-1] // 2
    return xp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def _rotate_half_transposed(xp, y):
    half = y.shape[-1] // 2
    return xp.concatenate([y[..., half:], -y[..., :half]], axis=-1)


class RotaryEmbedding(Function):
    @staticmethod
    def forward(ctx, x, cos, sin):
        xp = ctx.xp
        ctx.save_for_backward(x, cos, sin)
        ctx.fused = x.ndim == 4 and cos.ndim == 4 and cos.dtype == x.dtype and all(
            c in (1, n) for c, n in zip(cos.shape[:2], x.shape[:2])) and \
            cos.shape[2:] == x.shape[2:] and _triton.enabled(xp, x)
        if ctx.fused:
            return _triton.kernels("rope").forward(xp, x, cos, sin)
        return (x * cos + _rotate_half(xp, x) * sin).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, cos, sin = ctx.saved_tensors
        nx, ncos, nsin = ctx.needs_input_grad
        if ctx.fused and nx and not (ncos or nsin):
            return _triton.kernels("rope").backward(xp, g, cos, sin), None, None
        gx = (g * cos + _rotate_half_transposed(xp, g * sin)).astype(x.dtype, copy=False) \
            if nx else None
        gcos = unbroadcast(g * x, cos.shape) if ncos else None
        gsin = unbroadcast(g * _rotate_half(xp, x), sin.shape) if nsin else None
        return gx, gcos, gsin


def rotary_embedding(x, cos, sin):
    """``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = cat(-x2, x1)`` on the last dim."""
    if x.shape[-1] % 2:
        raise ValueError(f"rotary_embedding: the last dimension must be even, got shape "
                         f"{tuple(x.shape)}")
    if cos.shape != sin.shape or cos.shape[-1] != x.shape[-1]:
        raise ValueError(f"rotary_embedding: cos {tuple(cos.shape)} and sin {tuple(sin.shape)} "
                         f"must have the same shape ending in x's last dim {x.shape[-1]}")
    return RotaryEmbedding.apply(x, cos, sin)
