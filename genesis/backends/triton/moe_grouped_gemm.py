"""Grouped matmuls over expert-sorted tokens: every expert in one launch, forward and backward.

Rows ``a[bounds[e]:bounds[e+1]]`` belong to expert ``e``. ``grouped_matmul`` computes
``c[r] = a[r] @ W[e]^T`` (or ``@ W[e]``) for all rows with one launch over a host-built tile
schedule (one tile per ``BLOCK_M`` rows of each non-empty expert); ``grouped_matmul_tn``
computes the weight gradient ``c[e] = a[seg_e]^T @ b[seg_e]`` for all experts in one launch.
Float32 operands use full-precision dot products unless
``genesis.backends.cuda.matmul.allow_tf32`` is set.
"""
import numpy as np
import triton
import triton.language as tl

from . import arg, interpreting
from .. import cuda as _cuda

_BM, _BN, _BK = 64, 64, 32


@triton.jit
def _grouped_mm(a_ptr, b_ptr, c_ptr, tile_expert_ptr, tile_row_ptr, bounds_ptr, N, K,
                sbe, sbn, sbk, PRECISION: tl.constexpr, UPCAST: tl.constexpr, BM: tl.constexpr,
                BN: tl.constexpr, BK: tl.constexpr):
    tile = tl.program_id(0)
    e = tl.load(tile_expert_ptr + tile).to(tl.int64)
    row0 = tl.load(tile_row_ptr + tile).to(tl.int64)
    row_end = tl.load(bounds_ptr + e + 1).to(tl.int64)
    rows = row0 + tl.arange(0, BM)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros([BM, BN], dtype=tl.float32)
    for k0 in range(0, K, BK):
        ks = k0 + tl.arange(0, BK)
        a = tl.load(a_ptr + rows[:, None] * K + ks[None, :],
                    mask=(rows[:, None] < row_end) & (ks[None, :] < K), other=0.0)
        b = tl.load(b_ptr + e * sbe + cols[None, :] * sbn + ks[:, None] * sbk,
                    mask=(ks[:, None] < K) & (cols[None, :] < N), other=0.0)
        if UPCAST:
            a, b = a.to(tl.float32), b.to(tl.float32)
        acc += tl.dot(a, b, input_precision=PRECISION)
    tl.store(c_ptr + rows[:, None] * N + cols[None, :], acc.to(c_ptr.dtype.element_ty),
             mask=(rows[:, None] < row_end) & (cols[None, :] < N))


@triton.jit
def _grouped_mm_tn(a_ptr, b_ptr, c_ptr, bounds_ptr, N, K, PRECISION: tl.constexpr,
                   UPCAST: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    e = tl.program_id(0).to(tl.int64)
    ns = tl.program_id(1) * BN + tl.arange(0, BN)
    ks = tl.program_id(2) * BK + tl.arange(0, BK)
    r0 = tl.load(bounds_ptr + e).to(tl.int64)
    r1 = tl.load(bounds_ptr + e + 1).to(tl.int64)
    acc = tl.zeros([BN, BK], dtype=tl.float32)
    for r in range(r0, r1, BM):
        rows = r + tl.arange(0, BM)
        a = tl.load(a_ptr + rows[None, :] * N + ns[:, None],
                    mask=(rows[None, :] < r1) & (ns[:, None] < N), other=0.0)
        b = tl.load(b_ptr + rows[:, None] * K + ks[None, :],
                    mask=(rows[:, None] < r1) & (ks[None, :] < K), other=0.0)
        if UPCAST:
            a, b = a.to(tl.float32), b.to(tl.float32)
        acc += tl.dot(a, b, input_precision=PRECISION)
    tl.store(c_ptr + e * N * K + ns[:, None] * K + ks[None, :], acc.to(c_ptr.dtype.element_ty),
             mask=(ns[:, None] < N) & (ks[None, :] < K))


def _precision():
    return "tf32" if _cuda.matmul.allow_tf32 else "ieee"


def _schedule(xp, bounds):
    """Per tile: its expert and first row (host-built from the host ``bounds``)."""
    bounds = np.asarray(bounds, dtype=np.int64)
    experts, rows = [], []
    for e in np.nonzero(np.diff(bounds))[0]:
        starts = np.arange(bounds[e], bounds[e + 1], _BM)
        experts.append(np.full(starts.shape, e))
        rows.append(starts)
    experts = np.concatenate(experts) if experts else np.zeros(0, np.int64)
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return xp.asarray(experts.astype(np.int64)), xp.asarray(rows.astype(np.int64))


def grouped_matmul(xp, a, weight, bounds, transpose=True):
    """``c[r] = a[r] @ weight[e]^T`` (``transpose``) or ``a[r] @ weight[e]`` for rows of expert e.

    ``a [R, K]`` expert-sorted, ``weight [E, N, K]`` (or ``[E, K, N]``), ``bounds`` host ints.
    """
    a = xp.ascontiguousarray(a)
    rows, k = a.shape
    item = weight.itemsize
    sbe, s1, s2 = (s // item for s in weight.strides)
    n, sbn, sbk = (weight.shape[1], s1, s2) if transpose else (weight.shape[2], s2, s1)
    c = xp.empty((rows, n), dtype=a.dtype)
    tile_expert, tile_row = _schedule(xp, bounds)
    if tile_expert.size:
        grid = (tile_expert.size, triton.cdiv(n, _BN))
        _grouped_mm[grid](arg(a), arg(weight), arg(c), arg(tile_expert), arg(tile_row),
                          arg(xp.asarray(np.asarray(bounds, dtype=np.int64))), n, k, sbe, sbn,
                          sbk, PRECISION=_precision(), UPCAST=interpreting(), BM=_BM, BN=_BN,
                          BK=_BK)
    return c


def grouped_matmul_tn(xp, a, b, bounds, num_experts, dtype):
    """``c[e] = a[seg_e]^T @ b[seg_e]`` for every expert (zeros for experts without rows)."""
    a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
    n, k = a.shape[1], b.shape[1]
    c = xp.empty((num_experts, n, k), dtype=dtype)
    grid = (num_experts, triton.cdiv(n, _BN), triton.cdiv(k, _BK))
    _grouped_mm_tn[grid](arg(a), arg(b), arg(c), arg(xp.asarray(np.asarray(bounds, np.int64))),
                         n, k, PRECISION=_precision(), UPCAST=interpreting(), BM=_BM, BN=_BN,
                         BK=_BK)
    return c
