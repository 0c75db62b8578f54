"""Triton fused softmax + cross-entropy against genesis's cross_entropy."""
import ml_dtypes
import numpy as np
import pytest

import genesis
from genesis.nn import functional as F
from tests.triton.conftest import host

from genesis.backends.triton import softmax_xent  # noqa: E402  (after TRITON_INTERPRET)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)])
@pytest.mark.parametrize("vocab", [50, 2500])
def test_fused_cross_entropy_matches_composite(xp, dtype, tol, vocab):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((9, vocab)) * 3).astype(dtype)
    target = rng.integers(0, vocab, 9)
    target[[2, 5]] = -100
    zt = genesis.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(zt, genesis.tensor(target), ignore_index=-100)
    ref.backward()
    loss_rows, lse = softmax_xent.forward(xp, xp.asarray(logits), xp.asarray(target), -100)
    valid = target != -100
    mean = host(loss_rows).sum() / valid.sum()
    np.testing.assert_allclose(mean, float(ref.item()), rtol=tol)
    assert (host(loss_rows)[~valid] == 0).all()
    grad_rows = np.where(valid, 1.0 / valid.sum(), 0.0).astype(np.float32)
    dz = softmax_xent.backward(xp, xp.asarray(logits), xp.asarray(target), lse,
                               xp.asarray(grad_rows), -100)
    assert host(dz).dtype == logits.dtype
    np.testing.assert_allclose(host(dz).astype(np.float32), zt.grad.float().numpy(), rtol=tol,
                               atol=tol * 0.1)
