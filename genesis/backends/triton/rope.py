"""Rotary embedding (HF half-split pairing) forward and input backward.

``x [B, H, S, D]`` contiguous; ``cos``/``sin`` broadcast to it from ``[B or 1, H or 1, S, D]``
(the strides of their broadcast dims are 0). One program rotates one (b, h, s) row.
"""
import triton
import triton.language as tl

from . import arg, next_power_of_2


@triton.jit
def _rotate(x_ptr, cos_ptr, sin_ptr, out_ptr, H, S, D, half, csb, csh, css, SIGN: tl.constexpr,
            BLOCK: tl.constexpr):
    row = tl.program_id(0)
    s = row % S
    h = (row // S) % H
    b = row // (S * H)
    cols = tl.arange(0, BLOCK)
    mask = cols < half
    base = x_ptr + row * D
    cbase = b * csb + h * csh + s * css
    x1 = tl.load(base + cols, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(base + half + cols, mask=mask, other=0.0).to(tl.float32)
    c1 = tl.load(cos_ptr + cbase + cols, mask=mask, other=0.0).to(tl.float32)
    c2 = tl.load(cos_ptr + cbase + half + cols, mask=mask, other=0.0).to(tl.float32)
    s1 = tl.load(sin_ptr + cbase + cols, mask=mask, other=0.0).to(tl.float32)
    s2 = tl.load(sin_ptr + cbase + half + cols, mask=mask, other=0.0).to(tl.float32)
    # forward (SIGN=1): [x1 c1 - x2 s1, x2 c2 + x1 s2]
    # backward (SIGN=-1), the transpose: [g1 c1 + g2 s2, g2 c2 - g1 s1]
    if SIGN > 0:
        y1 = x1 * c1 - x2 * s1
        y2 = x2 * c2 + x1 * s2
    else:
        y1 = x1 * c1 + x2 * s2
        y2 = x2 * c2 - x1 * s1
    out = out_ptr + row * D
    tl.store(out + cols, y1.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(out + half + cols, y2.to(out_ptr.dtype.element_ty), mask=mask)


def _table_strides(table, shape):
    """Element strides of a contiguous cos/sin table broadcast to ``shape`` (0 on size-1 dims)."""
    table_shape = (1,) * (len(shape) - table.ndim) + tuple(table.shape)
    strides, step = [], 1
    for n in reversed(table_shape):
        strides.append(step if n != 1 else 0)
        step *= n
    return strides[::-1]


def _launch(xp, x, cos, sin, sign):
    b, h, s, d = x.shape
    cos, sin = xp.ascontiguousarray(cos), xp.ascontiguousarray(sin)
    csb, csh, css, _ = _table_strides(cos, x.shape)
    out = xp.empty_like(x)
    _rotate[(b * h * s,)](arg(xp.ascontiguousarray(x)), arg(cos), arg(sin), arg(out), h, s, d,
                          d // 2, csb, csh, css, SIGN=sign, BLOCK=next_power_of_2(d // 2))
    return out


def forward(xp, x, cos, sin):
    """``x * cos + rotate_half(x) * sin`` for ``x [B, H, S, D]``."""
    return _launch(xp, x, cos, sin, 1)


def backward(xp, g, cos, sin):
    """The gradient with respect to ``x`` of ``forward``."""
    return _launch(xp, g, cos, sin, -1)
