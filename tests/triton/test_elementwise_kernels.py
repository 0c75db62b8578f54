"""Triton SwiGLU, rotary embedding and fused AdamW against genesis's composite ops."""
import ml_dtypes
import numpy as np
import pytest

import genesis
from genesis.nn import functional as F
from tests.triton.conftest import host

from genesis.backends.triton import adamw, rope, swiglu  # noqa: E402  (after TRITON_INTERPRET)

DTYPES = [(np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)]


def _f32(a):
    return host(a).astype(np.float32)


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_swiglu_matches_silu_and_mul(xp, dtype, tol):
    rng = np.random.default_rng(0)
    gate, up, g = (rng.standard_normal((5, 300)).astype(dtype) for _ in range(3))
    gt, ut = genesis.tensor(gate, requires_grad=True), genesis.tensor(up, requires_grad=True)
    ref = F.silu_and_mul(gt, ut)
    ref.backward(genesis.tensor(g))
    out = swiglu.forward(xp, xp.asarray(gate), xp.asarray(up))
    dgate, dup = swiglu.backward(xp, xp.asarray(g), xp.asarray(gate), xp.asarray(up))
    np.testing.assert_allclose(_f32(out), ref.detach().float().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(_f32(dgate), gt.grad.float().numpy(), rtol=tol, atol=tol * 2)
    np.testing.assert_allclose(_f32(dup), ut.grad.float().numpy(), rtol=tol, atol=tol * 2)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("table_batch", [1, 2])
def test_rope_matches_rotary_embedding(xp, dtype, tol, table_batch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 16)).astype(dtype)
    angles = rng.uniform(0, 6, (table_batch, 1, 7, 8))
    angles = np.concatenate([angles, angles], -1)
    cos, sin = np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    xt = genesis.tensor(x, requires_grad=True)
    ref = genesis.rotary_embedding(xt, genesis.tensor(cos), genesis.tensor(sin))
    ref.backward(genesis.tensor(g))
    out = rope.forward(xp, xp.asarray(x), xp.asarray(cos), xp.asarray(sin))
    gx = rope.backward(xp, xp.asarray(g), xp.asarray(cos), xp.asarray(sin))
    np.testing.assert_allclose(_f32(out), ref.detach().float().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(_f32(gx), xt.grad.float().numpy(), rtol=tol, atol=tol * 2)


def test_fused_adamw_matches_optimizer(xp):
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal(3000).astype(np.float32)
    param = genesis.nn.Parameter(genesis.tensor(p0))
    opt = genesis.optim.AdamW([param], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    p, m, v = xp.asarray(p0.copy()), xp.zeros(3000, np.float32), xp.zeros(3000, np.float32)
    for step in range(1, 4):
        g = rng.standard_normal(3000).astype(np.float32)
        param.grad = genesis.tensor(g)
        opt.step()
        adamw.step(p, xp.asarray(g), m, v, step, 1e-2, 0.9, 0.95, 1e-8, 0.1)
    np.testing.assert_allclose(host(p), param.detach().numpy(), rtol=1e-6, atol=1e-6)
    state = opt.state[param]
    np.testing.assert_allclose(host(m), state["exp_avg"].numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(host(v), state["exp_avg_sq"].numpy(), rtol=1e-6, atol=1e-8)
