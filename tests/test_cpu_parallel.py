"""Chunked CPU execution: large ops split over threads give NumPy's (and PyTorch's) results."""
import numpy as np
import pytest

import genesis
import genesis.nn.functional as F
from genesis.backends import parallel


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads, and thresholds low enough that the test arrays are split."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 1 << 15)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_ROWS", 1 << 15)
    before = parallel.num_threads()
    parallel.set_num_threads(2)
    yield
    parallel.set_num_threads(before)


def _big(seed, shape=(700, 513), dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_ufuncs_are_bit_identical_to_numpy(two_threads, dtype):
    a, b = _big(0, dtype=dtype), _big(1, dtype=dtype)
    assert a.size >= 2 * parallel.MIN_PARALLEL
    row = _big(2, (1, 513), dtype)
    for f, args in [(np.add, (a, b)), (np.multiply, (a, row)), (np.subtract, (a, dtype(0.5))),
                    (np.divide, (a[:, :7].T.copy(), 3.0)), (np.exp, (a,)), (np.add, (a.T, b.T))]:
        out = parallel.ufunc(np, f, *args)
        np.testing.assert_array_equal(out, f(*args))
        assert out.dtype == f(*args).dtype
    np.testing.assert_array_equal(parallel.copy(a.T), a.T.copy())
    assert parallel.copy(a.T).flags.c_contiguous


def test_parallel_for_covers_the_range_once_and_propagates_errors(two_threads):
    seen = np.zeros(10 * parallel.MIN_PARALLEL, np.int64)

    def mark(s, e):
        seen[s:e] += 1

    parallel.parallel_for(seen.size, mark)
    assert (seen == 1).all()

    def fail(s, e):
        raise KeyError("block failed")

    with pytest.raises(KeyError, match="block failed"):
        parallel.parallel_for(seen.size, fail)


def test_large_sum_is_close_to_float64_reference(two_threads):
    a = _big(3)
    ref = a.astype(np.float64).sum()
    assert abs(float(parallel.sum_all(a)) - ref) <= 1e-6 * np.abs(a).sum()
    assert parallel.sum_all(a).dtype == np.float32


def test_set_num_threads_rejects_non_positive():
    with pytest.raises(ValueError, match="set_num_threads"):
        parallel.set_num_threads(0)


def test_large_ops_forward_backward_match_torch(two_threads):
    torch = pytest.importorskip("torch")
    a, b = _big(4, dtype=np.float64), _big(5, dtype=np.float64)
    ga, gb = genesis.tensor(a, requires_grad=True), genesis.tensor(b, requires_grad=True)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    gy = (F.softmax(ga * gb + ga, dim=-1).exp() * gb).sum()
    ty = (torch.softmax(ta * tb + ta, dim=-1).exp() * tb).sum()
    gy.backward()
    ty.backward()
    np.testing.assert_allclose(gy.item(), ty.item(), rtol=1e-12)
    np.testing.assert_allclose(ga.grad.numpy(), ta.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb.grad.numpy(), tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_blocks_equal_one_block(two_threads, fn):
    x = genesis.tensor(_big(6), requires_grad=True)
    g = _big(7)
    y = fn(x, dim=-1)
    y.backward(genesis.tensor(g))
    parallel.set_num_threads(1)
    x1 = genesis.tensor(x.detach().numpy(), requires_grad=True)
    y1 = fn(x1, dim=-1)
    y1.backward(genesis.tensor(g))
    np.testing.assert_array_equal(y.detach().numpy(), y1.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), x1.grad.numpy())


def test_blocks_follow_the_callers_floating_point_error_state(two_threads):
    import warnings
    a = _big(8)
    zeros = np.zeros_like(a)
    with np.errstate(divide="raise", invalid="raise"):
        with pytest.raises(FloatingPointError):
            parallel.ufunc(np, np.divide, a, zeros)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(divide="ignore", invalid="ignore"):
            out = parallel.ufunc(np, np.divide, a, zeros)
    assert np.isinf(out).sum() == a.size - (a == 0).sum()


def test_concurrent_callers_and_nested_calls_get_correct_results(two_threads):
    import threading
    a, b = _big(9), _big(10)
    expected = np.exp(a) * b
    results = [None] * 4

    def work(i):
        results[i] = parallel.ufunc(np, np.multiply, parallel.ufunc(np, np.exp, a), b)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)
    nested = np.zeros(a.shape[0])

    def outer(s, e):
        for i in range(s, e):
            nested[i] = parallel.sum_all(np.broadcast_to(a[i], (300, a.shape[1])))

    parallel.parallel_for(a.shape[0], outer, grain=1)
    exact = a.sum(axis=1, dtype=np.float64) * 300
    # float32 summation error is bounded relative to the sum of magnitudes (rows can cancel)
    bound = 1e-5 * 300 * np.abs(a).sum(axis=1, dtype=np.float64)
    assert np.all(np.abs(nested - exact) <= bound)
