"""Cross-entropy over the vocabulary fused with its softmax: no probability tensor is stored.

Forward streams each row of logits once (online max and sum of exponentials) and keeps only the
row's log-sum-exp; backward recomputes ``softmax = exp(z - lse)`` chunk by chunk and writes
``(softmax - onehot(target)) * grad_row`` straight into the logits gradient.
"""
import triton
import triton.language as tl

from . import arg

_BLOCK = 1024


@triton.jit
def _forward(z_ptr, t_ptr, loss_ptr, lse_ptr, n_cols, ignore_index, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = z_ptr + row * n_cols
    m = tl.full([BLOCK], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        z = tl.load(base + cols, mask=cols < n_cols, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, z)
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # lanes that saw only padding
        s = s * tl.exp(m - shift) + tl.exp(z - shift)
        m = m_new
    m_row = tl.max(m, axis=0)
    lse = m_row + tl.log(tl.sum(s * tl.exp(m - m_row), axis=0))
    t = tl.load(t_ptr + row)
    valid = t != ignore_index
    z_t = tl.load(base + tl.where(valid, t, 0)).to(tl.float32)
    tl.store(lse_ptr + row, lse)
    tl.store(loss_ptr + row, tl.where(valid, lse - z_t, 0.0))


@triton.jit
def _backward(z_ptr, t_ptr, lse_ptr, g_ptr, dz_ptr, n_cols, ignore_index, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    t = tl.load(t_ptr + row)
    g = tl.where(t != ignore_index, tl.load(g_ptr + row), 0.0)
    lse = tl.load(lse_ptr + row)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < n_cols
        z = tl.load(z_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
        d = (tl.exp(z - lse) - tl.where(cols == t, 1.0, 0.0)) * g
        tl.store(dz_ptr + row * n_cols + cols, d.to(dz_ptr.dtype.element_ty), mask=mask)


def forward(xp, logits, target, ignore_index):
    """Per-row losses (0 where ``target == ignore_index``) and log-sum-exps, both float32."""
    n_rows, n_cols = logits.shape
    loss = xp.empty((n_rows,), dtype=xp.float32)
    lse = xp.empty((n_rows,), dtype=xp.float32)
    _forward[(n_rows,)](arg(xp.ascontiguousarray(logits)), arg(target.astype(xp.int64)), arg(loss),
                        arg(lse), n_cols, int(ignore_index), BLOCK=_BLOCK)
    return loss, lse


def backward(xp, logits, target, lse, grad_rows, ignore_index):
    """Gradient of ``sum_i grad_rows[i] * loss_i`` with respect to the logits."""
    n_rows, n_cols = logits.shape
    dz = xp.empty((n_rows, n_cols), dtype=logits.dtype)
    _backward[(n_rows,)](arg(xp.ascontiguousarray(logits)), arg(target.astype(xp.int64)), arg(lse),
                         arg(grad_rows.astype(xp.float32)), arg(dz), n_cols, int(ignore_index),
                         BLOCK=_BLOCK)
    return dz
