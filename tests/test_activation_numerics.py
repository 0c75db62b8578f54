"""Activations and dropout at the edges of the float range: values, NaN, inf and signed zeros
as PyTorch gives them, and no floating-point warnings."""
import warnings

import ml_dtypes
import numpy as np
import pytest

import genesis
import genesis.nn.functional as F
from genesis.ops._activations import act_and_grad, sigmoid, silu, silu_grad

torch = pytest.importorskip("torch")

_SPECIAL = [np.inf, -np.inf, np.nan, 0.0, -0.0, -88.7, -88.8, -89.0, -103.0, -104.0, -110.0,
            -708.0, -709.0, -710.0, -745.0, -746.0, 88.8, 710.0, 1e30, -1e30]


def _edges(dtype):
    return np.concatenate([np.linspace(-800, 800, 4001), _SPECIAL]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_matches_torch_over_the_whole_range_without_warnings(dtype):
    x = _edges(dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):   # silent even so
        warnings.simplefilter("error")
        got = sigmoid(np, x)
        op = genesis.sigmoid(genesis.tensor(x)).numpy()
    want = torch.sigmoid(torch.from_numpy(x)).numpy()
    assert got.dtype == dtype
    np.testing.assert_array_equal(op, got)
    # NaN where PyTorch has NaN, exact limits 0 and 1, within 2 ulp elsewhere (denormals too)
    np.testing.assert_allclose(got, want, rtol=2 * np.finfo(dtype).eps, atol=0)
    assert got[np.isneginf(x)].tolist() == [0.0] and got[np.isposinf(x)].tolist() == [1.0]


@pytest.mark.parametrize("dtype,tdtype", [(np.float16, "float16"),
                                          (ml_dtypes.bfloat16, "bfloat16")])
def test_half_sigmoid_is_float32_math_rounded_once_as_torch(dtype, tdtype):
    x = np.linspace(-30, 30, 2001).astype(dtype)   # float16 exp(-x) alone overflows below -11
    got = sigmoid(np, x)
    want = torch.sigmoid(torch.from_numpy(x.astype(np.float32)).to(getattr(torch, tdtype)))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got.astype(np.float32), want.float().numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silu_and_its_derivative_match_torch_at_the_edges(dtype):
    x = _edges(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    want = torch.nn.functional.silu(tx)
    want.backward(torch.ones_like(want))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        act, dact = act_and_grad(np, "silu", x, True)
        plain, plain_grad = silu(np, x), silu_grad(np, x)
    eps = np.finfo(dtype).eps
    for got in (act, plain):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=8 * eps,
                                   atol=4 * np.finfo(dtype).tiny)
    # silu' = s + x s (1 - s) is at most 1.1 and crosses 0 near -1.28: absolute error ~ eps
    for got in (dact, plain_grad):
        np.testing.assert_allclose(got, tx.grad.numpy(), rtol=8 * eps, atol=8 * eps)
    assert act_and_grad(np, "silu", x, False)[1] is None


def test_silu_op_gradient_at_the_edges_matches_torch():
    x = _edges(np.float64)
    g = genesis.tensor(x, requires_grad=True)
    F.silu(g).sum().backward()
    tx = torch.from_numpy(x.copy()).requires_grad_()
    torch.nn.functional.silu(tx).sum().backward()
    eps = np.finfo(np.float64).eps
    np.testing.assert_allclose(g.grad.numpy(), tx.grad.numpy(), rtol=8 * eps, atol=8 * eps)


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.0, -0.5, 2.0])
def test_leaky_relu_nan_inf_and_signed_zeros_equal_torch(slope):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -1.5, 1e-45, -1e-45] * 3,
                 np.float32)
    gx = genesis.tensor(x, requires_grad=True)
    y = F.leaky_relu(gx, slope)
    up = np.array([1.0, np.nan, np.inf, -2.0, 3.0, -np.inf, 0.5, 1.0, -0.0] * 3, np.float32)
    y.backward(genesis.tensor(up))
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = torch.nn.functional.leaky_relu(tx, slope)
    ty.backward(torch.from_numpy(up))
    for got, want in ((y.detach().numpy(), ty.detach().numpy()), (gx.grad.numpy(),
                                                                   tx.grad.numpy())):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_leaky_relu_of_a_0d_tensor():
    assert F.leaky_relu(genesis.tensor(-2.0), 0.25).item() == -0.5


def test_dropout_keeps_nan_and_turns_dropped_inf_into_nan_like_torch():
    x = np.tile(np.array([np.nan, np.inf, -np.inf, 2.0, -0.0], np.float32), 200)
    genesis.manual_seed(3)
    kept = F.dropout(genesis.ones(x.shape), 0.5).numpy() != 0     # the mask of seed 3
    genesis.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = F.dropout(genesis.tensor(x), 0.5).numpy()
    assert 0 < kept.sum() < kept.size
    # PyTorch on the CPU multiplies by a 0-or-scale noise: NaN stays NaN, inf * 0 is NaN
    with np.errstate(invalid="ignore"):
        want = x * np.where(kept, np.float32(2), np.float32(0))
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(want))
    t = torch.nn.functional.dropout(torch.from_numpy(x), 0.5).numpy()
    for col in range(5):        # the same NaN pattern per input value, whatever the mask
        assert np.isnan(t[col::5]).all() == np.isnan(out[col::5]).all()
        assert np.isnan(t[col::5]).any() == np.isnan(out[col::5]).any()


def test_dropout_p1_is_input_times_zero_like_torch():
    x = np.array([np.nan, np.inf, 3.0, -3.0], np.float32)
    out = F.dropout(genesis.tensor(x), 1.0).numpy()
    want = torch.nn.functional.dropout(torch.from_numpy(x), 1.0).numpy()
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(want))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_dropout_scale_is_torch_float32_scale(p):
    genesis.manual_seed(0)
    out = F.dropout(genesis.ones(1000), p).numpy()
    survivors = np.unique(out[out != 0])
    want = torch.ones(1).div_(1 - p).numpy()      # PyTorch's noise: 1 / (1 - p) in float32
    np.testing.assert_array_equal(survivors, want)


def test_float32_erf_matches_torch_with_signed_zero_inf_nan_and_no_warnings():
    x = np.concatenate([np.linspace(-6, 6, 20001), [0.0, -0.0, 0.4999999, 0.5, -0.5, 1e-30,
                                                    -1e-45, 10, -10, 1e30, -1e30, np.inf,
                                                    -np.inf, np.nan]]).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = genesis.erf(genesis.tensor(x)).numpy()
    want = torch.erf(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=2.5e-7)       # NaN where torch has NaN
    np.testing.assert_array_equal(np.signbit(got[x == 0]), np.signbit(x[x == 0]))
    assert got[np.isposinf(x)].tolist() == [1.0] and got[np.isneginf(x)].tolist() == [-1.0]
