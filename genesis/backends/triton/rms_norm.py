"""RMSNorm forward and backward: one program per block of rows, float32 statistics.

Matches ``genesis.ops.nn.RMSNorm``: ``xhat = x * rstd`` is rounded to x's dtype before the
weight multiplies it (as HF's Llama/Mixtral norms), and the weight gradient uses that rounded
``xhat``. The weight gradient is reduced per program and summed over programs afterwards.
"""
import triton
import triton.language as tl

from . import arg, next_power_of_2

_ROWS_PER_PROGRAM = 16


@triton.jit
def _forward(x_ptr, w_ptr, y_ptr, rstd_ptr, n_rows, n_cols, eps, HAS_W: tl.constexpr,
             ROWS: tl.constexpr, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    cmask = cols < n_cols
    if HAS_W:
        w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    for i in range(ROWS):
        row = tl.program_id(0) * ROWS + i
        if row < n_rows:
            x = tl.load(x_ptr + row * n_cols + cols, mask=cmask, other=0.0).to(tl.float32)
            rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
            tl.store(rstd_ptr + row, rstd)
            xhat = (x * rstd).to(x_ptr.dtype.element_ty).to(tl.float32)
            if HAS_W:
                xhat = xhat * w
            tl.store(y_ptr + row * n_cols + cols, xhat.to(y_ptr.dtype.element_ty), mask=cmask)


@triton.jit
def _backward(g_ptr, x_ptr, w_ptr, rstd_ptr, gx_ptr, gw_part_ptr, n_rows, n_cols,
              HAS_W: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    cmask = cols < n_cols
    if HAS_W:
        w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    gw_acc = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(ROWS):
        row = tl.program_id(0) * ROWS + i
        if row < n_rows:
            x = tl.load(x_ptr + row * n_cols + cols, mask=cmask, other=0.0).to(tl.float32)
            g = tl.load(g_ptr + row * n_cols + cols, mask=cmask, other=0.0).to(tl.float32)
            rstd = tl.load(rstd_ptr + row)
            xhat = x * rstd
            if HAS_W:
                rounded = xhat.to(x_ptr.dtype.element_ty).to(tl.float32)
                gw_acc += g * rounded
                g = g * w
            dot = tl.sum(g * xhat, axis=0) / n_cols
            gx = rstd * (g - xhat * dot)
            tl.store(gx_ptr + row * n_cols + cols, gx.to(gx_ptr.dtype.element_ty), mask=cmask)
    if HAS_W:
        tl.store(gw_part_ptr + tl.program_id(0) * n_cols + cols, gw_acc, mask=cmask)


def _grid(n_rows):
    return (triton.cdiv(n_rows, _ROWS_PER_PROGRAM),)


def forward(xp, x, weight, eps):
    """``(y, rstd)`` for ``x [rows, n]`` contiguous and ``weight [n]`` or None."""
    n_rows, n_cols = x.shape
    out_dtype = x.dtype if weight is None else xp.result_type(x.dtype, weight.dtype)
    y = xp.empty((n_rows, n_cols), dtype=out_dtype)
    rstd = xp.empty((n_rows,), dtype=xp.float32)
    _forward[_grid(n_rows)](arg(x), arg(weight if weight is not None else x), arg(y), arg(rstd),
                            n_rows, n_cols, float(eps), HAS_W=weight is not None,
                            ROWS=_ROWS_PER_PROGRAM, BLOCK=next_power_of_2(n_cols))
    return y, rstd


def backward(xp, g, x, weight, rstd):
    """``(grad_x, grad_weight)`` (grad_weight None without a weight)."""
    n_rows, n_cols = x.shape
    gx = xp.empty_like(x)
    grid = _grid(n_rows)
    parts = xp.empty((grid[0], n_cols), dtype=xp.float32) if weight is not None else rstd
    _backward[grid](arg(xp.ascontiguousarray(g)), arg(x), arg(weight if weight is not None else x),
                    arg(rstd), arg(gx), arg(parts), n_rows, n_cols, HAS_W=weight is not None,
                    ROWS=_ROWS_PER_PROGRAM, BLOCK=next_power_of_2(n_cols))
    gw = parts.sum(axis=0).astype(weight.dtype) if weight is not None else None
    return gx, gw
