"""Triton causal flash attention (GQA) against genesis's scaled_dot_product_attention."""
import ml_dtypes
import numpy as np
import pytest

import genesis
from genesis.nn import functional as F
from tests.triton.conftest import host

from genesis.backends.triton import attention  # noqa: E402  (after TRITON_INTERPRET)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (ml_dtypes.bfloat16, 3e-2)])
@pytest.mark.parametrize("heads,kv_heads,length,dim", [(4, 2, 70, 16), (2, 2, 33, 24)])
def test_flash_attention_matches_sdpa(xp, dtype, tol, heads, kv_heads, length, dim):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, heads, length, dim)).astype(dtype)
    k = rng.standard_normal((2, kv_heads, length, dim)).astype(dtype)
    v = rng.standard_normal((2, kv_heads, length, dim)).astype(dtype)
    g = rng.standard_normal(q.shape).astype(dtype)
    qt, kt, vt = (genesis.tensor(a, requires_grad=True) for a in (q, k, v))
    ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=True)
    ref.backward(genesis.tensor(g))
    scale = 1 / np.sqrt(dim)
    out, lse = attention.forward(xp, xp.asarray(q), xp.asarray(k), xp.asarray(v), scale)
    dq, dk, dv = attention.backward(xp, xp.asarray(g), xp.asarray(q), xp.asarray(k),
                                    xp.asarray(v), out, lse, scale)
    for got, want in ((out, ref.detach()), (dq, qt.grad), (dk, kt.grad), (dv, vt.grad)):
        assert host(got).dtype == np.dtype(dtype)
        np.testing.assert_allclose(host(got).astype(np.float32), want.float().numpy(), rtol=tol,
                                   atol=tol * 2)
