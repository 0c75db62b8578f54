"""Triton RMSNorm against genesis's composite rms_norm (forward and backward)."""
import ml_dtypes
import numpy as np
import pytest

import genesis
from genesis.nn import functional as F
from tests.triton.conftest import host

from genesis.backends.triton import rms_norm as kernel  # noqa: E402  (after TRITON_INTERPRET)


def _reference(x, w, g, eps):
    xt = genesis.tensor(x, requires_grad=True)
    wt = None if w is None else genesis.tensor(w, requires_grad=True)
    y = F.rms_norm(xt, (x.shape[1],), wt, eps)
    y.backward(genesis.tensor(g.astype(y.dtype.np)))
    return y.detach().numpy(), xt.grad.numpy(), None if w is None else wt.grad.numpy()


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)])
@pytest.mark.parametrize("with_weight", [True, False])
def test_rms_norm_matches_composite(xp, dtype, tol, with_weight):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 48)).astype(dtype)
    w = rng.uniform(0.5, 1.5, 48).astype(dtype) if with_weight else None
    g = rng.standard_normal((37, 48)).astype(dtype)
    y_ref, gx_ref, gw_ref = _reference(x, w, g, 1e-6)
    y, rstd = kernel.forward(xp, xp.asarray(x), None if w is None else xp.asarray(w), 1e-6)
    gx, gw = kernel.backward(xp, xp.asarray(g), xp.asarray(x),
                             None if w is None else xp.asarray(w), rstd)
    assert host(y).dtype == y_ref.dtype and host(gx).dtype == x.dtype
    f32 = lambda a: host(a).astype(np.float32)  # noqa: E731
    np.testing.assert_allclose(f32(y), y_ref.astype(np.float32), rtol=tol, atol=tol)
    np.testing.assert_allclose(f32(gx), gx_ref.astype(np.float32), rtol=tol, atol=tol * 4)
    if with_weight:
        np.testing.assert_allclose(f32(gw), gw_ref.astype(np.float32), rtol=tol, atol=tol * 10)
