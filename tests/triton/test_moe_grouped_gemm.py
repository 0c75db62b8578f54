"""Triton grouped expert matmuls against per-expert NumPy matmuls."""
import ml_dtypes
import numpy as np
import pytest

from tests.triton.conftest import host

from genesis.backends.triton import moe_grouped_gemm as gg  # noqa: E402  (after TRITON_INTERPRET)


def _segments():
    counts = np.array([5, 0, 70, 1, 0, 33])  # an empty expert, one longer than a tile
    return counts, np.concatenate([[0], np.cumsum(counts)])


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (ml_dtypes.bfloat16, 3e-2)])
def test_grouped_matmul_both_layouts(xp, dtype, tol):
    rng = np.random.default_rng(0)
    counts, bounds = _segments()
    a = rng.standard_normal((bounds[-1], 40)).astype(dtype)
    w = rng.standard_normal((len(counts), 24, 40)).astype(dtype)
    want = np.concatenate([a[bounds[e]:bounds[e + 1]].astype(np.float32)
                           @ w[e].astype(np.float32).T for e in range(len(counts))])
    got = gg.grouped_matmul(xp, xp.asarray(a), xp.asarray(w), bounds)
    np.testing.assert_allclose(host(got).astype(np.float32), want, rtol=tol, atol=tol * 5)
    wt = np.ascontiguousarray(np.swapaxes(w, 1, 2))  # [E, K, N]
    got = gg.grouped_matmul(xp, xp.asarray(a), xp.asarray(wt), bounds, transpose=False)
    np.testing.assert_allclose(host(got).astype(np.float32), want, rtol=tol, atol=tol * 5)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (ml_dtypes.bfloat16, 3e-2)])
def test_grouped_weight_gradient(xp, dtype, tol):
    rng = np.random.default_rng(1)
    counts, bounds = _segments()
    a = rng.standard_normal((bounds[-1], 24)).astype(dtype)
    b = rng.standard_normal((bounds[-1], 40)).astype(dtype)
    got = gg.grouped_matmul_tn(xp, xp.asarray(a), xp.asarray(b), bounds, len(counts), dtype)
    for e in range(len(counts)):
        s, t = bounds[e], bounds[e + 1]
        want = a[s:t].astype(np.float32).T @ b[s:t].astype(np.float32)
        np.testing.assert_allclose(host(got[e]).astype(np.float32), want, rtol=tol,
                                   atol=tol * 10)
