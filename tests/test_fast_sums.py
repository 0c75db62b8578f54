"""The fast float sums behind sum(), softmax and log_softmax: accurate, position-independent,
and the chunked log-softmax equal to the one-pass one."""
import numpy as np
import pytest

import genesis
import genesis.nn.functional as F
from genesis.backends import parallel
from genesis.ops import _nn_common

EPS32 = np.finfo(np.float32).eps


def _rows(kind, n, c, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, c)) if kind == "rand" else rng.standard_normal((n, c))
    return (np.exp(x - 3) if kind == "exp" else x).astype(np.float32)


@pytest.mark.parametrize("c", [5000, 512, 2049, 8000, 33001])
@pytest.mark.parametrize("kind", ["randn", "rand", "exp"])
def test_row_sum_error_is_a_few_eps_of_the_magnitudes(kind, c):
    x = _rows(kind, max(4, 400_000 // c), c)
    got = parallel.row_sum(x)
    assert got.shape == (x.shape[0], 1) and got.dtype == np.float32
    exact = x.astype(np.float64).sum(axis=1, keepdims=True)
    mag = np.abs(x.astype(np.float64)).sum(axis=1, keepdims=True)
    assert np.all(np.abs(got - exact) <= 3 * EPS32 * mag)


def test_row_sum_of_a_row_does_not_depend_on_where_it_lies():
    x = _rows("randn", 64, 3001)
    whole = parallel.row_sum(x)
    for s, e in ((0, 3), (5, 6), (7, 64), (13, 40)):
        np.testing.assert_array_equal(parallel.row_sum(x[s:e]), whole[s:e])
    shifted = np.empty(x.size + 1, np.float32)[1:].reshape(x.shape)   # other alignment
    shifted[...] = x
    np.testing.assert_array_equal(parallel.row_sum(shifted), whole)


def test_row_sum_keeps_leading_dims_and_falls_back_for_other_layouts():
    x = _rows("randn", 60, 700).reshape(3, 20, 700)
    np.testing.assert_allclose(parallel.row_sum(x), x.sum(axis=-1, keepdims=True),
                               rtol=1e-5, atol=1e-4)
    t = x.transpose(1, 0, 2)                                   # not C-contiguous
    np.testing.assert_array_equal(parallel.row_sum(t), t.sum(axis=-1, keepdims=True))
    h = x.astype(np.float16)
    np.testing.assert_array_equal(parallel.row_sum(h), h.sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("n", [4096, 262144, 262144 + 77, 1 << 21])
@pytest.mark.parametrize("kind", ["randn", "exp"])
def test_sum_all_is_as_accurate_as_numpy_pairwise(kind, n):
    x = _rows(kind, 1, n, seed=n).reshape(-1)
    exact = x.astype(np.float64).sum()
    mag = np.abs(x.astype(np.float64)).sum()
    got = parallel.sum_all(x)
    assert got.dtype == np.float32
    assert abs(float(got) - exact) <= 2 * EPS32 * mag
    assert genesis.tensor(x).sum().item() == float(got)


def test_sum_all_honours_an_explicit_accumulation_dtype():
    x = _rows("randn", 64, 128)
    assert parallel.sum_all(x, dtype=np.float64).dtype == np.float64
    assert parallel.sum_all(x, dtype=np.float64) == x.sum(dtype=np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_log_softmax_equals_the_one_pass_formula(dtype, monkeypatch):
    x = _rows("randn", 300, 1500, seed=3).astype(dtype) * 4
    got = _nn_common.log_softmax(np, x, 1)                  # 450k elements: chunked
    monkeypatch.setattr(_nn_common, "_CHUNK", x.size)       # one chunk: the plain path
    np.testing.assert_array_equal(_nn_common.log_softmax(np, x, 1), got)
    xd = x.astype(np.float64)
    z = xd - xd.max(axis=1, keepdims=True)
    ref = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got, ref, rtol=0, atol=8 * np.finfo(dtype).eps * np.abs(ref).max())


def test_large_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    x = _rows("randn", 256, 3000, seed=4) * 3
    t = np.random.default_rng(5).integers(0, 3000, 256)
    g = genesis.tensor(x, requires_grad=True)
    loss = F.cross_entropy(g, genesis.tensor(t))
    loss.backward()
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(t))
    tl.backward()
    np.testing.assert_allclose(loss.item(), tl.item(), rtol=1e-6)
    np.testing.assert_allclose(g.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-9)
