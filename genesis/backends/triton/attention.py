"""Causal flash attention with grouped-query heads: forward and backward without an L x L matrix.

``q [B, Hq, L, D]``, ``k``/``v [B, Hkv, L, D]`` (contiguous, ``Hq = n_rep * Hkv``). Forward keeps
a running max and sum per query row and stores the row's log-sum-exp; backward recomputes the
probabilities from it: one kernel accumulates dK/dV per key block, one accumulates dQ per query
block (no atomics). dK/dV are computed per query head in float32 and summed over each group.
Probabilities are rounded to the value dtype before multiplying V, as the composite op does.
"""
import triton
import triton.language as tl

from . import arg, interpreting, next_power_of_2
from .. import cuda as _cuda

_BM, _BN = 64, 64


@triton.jit
def _forward(q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, Hq, Hkv, L, D, scale,
             PRECISION: tl.constexpr, UPCAST: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
             BD: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    kvh = (bh // Hq) * Hkv + (bh % Hq) // (Hq // Hkv)
    q_base, kv_off = q_ptr + bh * L * D, kvh * L * D
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_d = tl.arange(0, BD)
    dmask = offs_d < D
    q = tl.load(q_base + offs_m[:, None] * D + offs_d[None, :],
                mask=(offs_m[:, None] < L) & dmask[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
    m_i = tl.full([BM], float("-inf"), tl.float32)
    l_i = tl.zeros([BM], dtype=tl.float32)
    acc = tl.zeros([BM, BD], dtype=tl.float32)
    hi = tl.minimum((pid_m + 1) * BM, L)
    for start_n in range(0, hi, BN):
        offs_n = start_n + tl.arange(0, BN)
        kt = tl.load(k_ptr + kv_off + offs_n[None, :] * D + offs_d[:, None],
                     mask=(offs_n[None, :] < L) & dmask[:, None], other=0.0)
        v = tl.load(v_ptr + kv_off + offs_n[:, None] * D + offs_d[None, :],
                    mask=(offs_n[:, None] < L) & dmask[None, :], other=0.0)
        if UPCAST:
            kt, v = kt.to(tl.float32), v.to(tl.float32)
        s = tl.dot(q, kt, input_precision=PRECISION) * scale
        keep = (offs_m[:, None] >= offs_n[None, :]) & (offs_n[None, :] < L)
        s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        p = p.to(v_ptr.dtype.element_ty)
        if UPCAST:
            p = p.to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision=PRECISION)
        m_i = m_new
    o = acc / l_i[:, None]
    rmask = offs_m < L
    tl.store(o_ptr + bh * L * D + offs_m[:, None] * D + offs_d[None, :],
             o.to(o_ptr.dtype.element_ty), mask=rmask[:, None] & dmask[None, :])
    tl.store(lse_ptr + bh * L + offs_m, m_i + tl.log(l_i), mask=rmask)


@triton.jit
def _probs(q, kt, lse, offs_m, offs_n, L, scale, PRECISION: tl.constexpr):
    """Recomputed causal probabilities of a (query block, key block) pair."""
    s = tl.dot(q, kt, input_precision=PRECISION) * scale
    keep = (offs_m[:, None] >= offs_n[None, :]) & (offs_n[None, :] < L) & (offs_m[:, None] < L)
    return tl.where(keep, tl.exp(s - lse[:, None]), 0.0)


@triton.jit
def _backward_dkdv(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr, Hq, Hkv, L,
                   D, scale, PRECISION: tl.constexpr, UPCAST: tl.constexpr, BM: tl.constexpr,
                   BN: tl.constexpr, BD: tl.constexpr):
    pid_n = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    kv_off = ((bh // Hq) * Hkv + (bh % Hq) // (Hq // Hkv)) * L * D
    offs_n = pid_n * BN + tl.arange(0, BN)
    offs_d = tl.arange(0, BD)
    dmask = offs_d < D
    nmask = (offs_n[:, None] < L) & dmask[None, :]
    k = tl.load(k_ptr + kv_off + offs_n[:, None] * D + offs_d[None, :], mask=nmask, other=0.0)
    v = tl.load(v_ptr + kv_off + offs_n[:, None] * D + offs_d[None, :], mask=nmask, other=0.0)
    if UPCAST:
        k, v = k.to(tl.float32), v.to(tl.float32)
    dk = tl.zeros([BN, BD], dtype=tl.float32)
    dv = tl.zeros([BN, BD], dtype=tl.float32)
    for start_m in range(pid_n * BN, L, BM):
        offs_m = start_m + tl.arange(0, BM)
        mmask = (offs_m[:, None] < L) & dmask[None, :]
        q = tl.load(q_ptr + bh * L * D + offs_m[:, None] * D + offs_d[None, :], mask=mmask,
                    other=0.0)
        do = tl.load(do_ptr + bh * L * D + offs_m[:, None] * D + offs_d[None, :], mask=mmask,
                     other=0.0)
        if UPCAST:
            q, do = q.to(tl.float32), do.to(tl.float32)
        lse = tl.load(lse_ptr + bh * L + offs_m, mask=offs_m < L, other=0.0)
        delta = tl.load(delta_ptr + bh * L + offs_m, mask=offs_m < L, other=0.0)
        p = _probs(q, tl.trans(k), lse, offs_m, offs_n, L, scale, PRECISION)
        p_low = p.to(v_ptr.dtype.element_ty)
        if UPCAST:
            p_low = p_low.to(tl.float32)
        dv += tl.dot(tl.trans(p_low), do, input_precision=PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = (p * (dp - delta[:, None])).to(q_ptr.dtype.element_ty)
        if UPCAST:
            ds = ds.to(tl.float32)
        dk += tl.dot(tl.trans(ds), q, input_precision=PRECISION)
    out = bh * L * D + offs_n[:, None] * D + offs_d[None, :]
    tl.store(dk_ptr + out, dk * scale, mask=nmask)
    tl.store(dv_ptr + out, dv, mask=nmask)


@triton.jit
def _backward_dq(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr, Hq, Hkv, L, D, scale,
                 PRECISION: tl.constexpr, UPCAST: tl.constexpr, BM: tl.constexpr,
                 BN: tl.constexpr, BD: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    kv_off = ((bh // Hq) * Hkv + (bh % Hq) // (Hq // Hkv)) * L * D
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_d = tl.arange(0, BD)
    dmask = offs_d < D
    mmask = (offs_m[:, None] < L) & dmask[None, :]
    q = tl.load(q_ptr + bh * L * D + offs_m[:, None] * D + offs_d[None, :], mask=mmask, other=0.0)
    do = tl.load(do_ptr + bh * L * D + offs_m[:, None] * D + offs_d[None, :], mask=mmask,
                 other=0.0)
    if UPCAST:
        q, do = q.to(tl.float32), do.to(tl.float32)
    lse = tl.load(lse_ptr + bh * L + offs_m, mask=offs_m < L, other=0.0)
    delta = tl.load(delta_ptr + bh * L + offs_m, mask=offs_m < L, other=0.0)
    dq = tl.zeros([BM, BD], dtype=tl.float32)
    hi = tl.minimum((pid_m + 1) * BM, L)
    for start_n in range(0, hi, BN):
        offs_n = start_n + tl.arange(0, BN)
        nmask = (offs_n[:, None] < L) & dmask[None, :]
        k = tl.load(k_ptr + kv_off + offs_n[:, None] * D + offs_d[None, :], mask=nmask, other=0.0)
        v = tl.load(v_ptr + kv_off + offs_n[:, None] * D + offs_d[None, :], mask=nmask, other=0.0)
        if UPCAST:
            k, v = k.to(tl.float32), v.to(tl.float32)
        p = _probs(q, tl.trans(k), lse, offs_m, offs_n, L, scale, PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = (p * (dp - delta[:, None])).to(q_ptr.dtype.element_ty)
        if UPCAST:
            ds = ds.to(tl.float32)
        dq += tl.dot(ds, k, input_precision=PRECISION)
    tl.store(dq_ptr + bh * L * D + offs_m[:, None] * D + offs_d[None, :],
             (dq * scale).to(dq_ptr.dtype.element_ty), mask=mmask)


def _meta(q, k):
    b, hq, length, d = q.shape
    # two pipeline stages keep float32 tiles of head_dim 128 within shared memory
    return b, hq, k.shape[1], length, d, dict(
        PRECISION="tf32" if _cuda.matmul.allow_tf32 else "ieee", UPCAST=interpreting(), BM=_BM,
        BN=_BN, BD=max(16, next_power_of_2(d)), num_warps=4, num_stages=2)


def forward(xp, q, k, v, scale):
    """``(out, lse)`` of causal attention; ``lse [B, Hq, L]`` float32 for the backward."""
    q, k, v = (xp.ascontiguousarray(t) for t in (q, k, v))
    b, hq, hkv, length, d, meta = _meta(q, k)
    out = xp.empty_like(q)
    lse = xp.empty((b, hq, length), dtype=xp.float32)
    _forward[(triton.cdiv(length, _BM), b * hq)](arg(q), arg(k), arg(v), arg(out), arg(lse), hq,
                                                 hkv, length, d, float(scale), **meta)
    return out, lse


def backward(xp, g, q, k, v, out, lse, scale):
    """``(grad_q, grad_k, grad_v)``; the key/value gradients are summed over each head group."""
    q, k, v, g = (xp.ascontiguousarray(t) for t in (q, k, v, g))
    b, hq, hkv, length, d, meta = _meta(q, k)
    delta = (g.astype(xp.float32) * out.astype(xp.float32)).sum(axis=-1)
    dk = xp.empty((b, hq, length, d), dtype=xp.float32)
    dv = xp.empty((b, hq, length, d), dtype=xp.float32)
    dq = xp.empty_like(q)
    common = (hq, hkv, length, d, float(scale))
    _backward_dkdv[(triton.cdiv(length, _BN), b * hq)](
        arg(q), arg(k), arg(v), arg(g), arg(lse), arg(delta), arg(dk), arg(dv), *common, **meta)
    _backward_dq[(triton.cdiv(length, _BM), b * hq)](
        arg(q), arg(k), arg(v), arg(g), arg(lse), arg(delta), arg(dq), *common, **meta)
    n_rep = hq // hkv
    fold = (b, hkv, n_rep, length, d)
    return (dq, dk.reshape(fold).sum(axis=2).astype(k.dtype),
            dv.reshape(fold).sum(axis=2).astype(v.dtype))
