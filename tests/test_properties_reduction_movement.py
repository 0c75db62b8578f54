"""Property tests: reductions agree with NumPy over random dims; movement ops round-trip."""
import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import genesis

SETTINGS = settings(max_examples=40, deadline=None)

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
finite = st.floats(-10, 10, allow_nan=False, width=64)


@st.composite
def array_and_dims(draw):
    """A float64 array and a random subset of its dims (as int, tuple or None) and keepdim."""
    x = draw(hnp.arrays(np.float64, draw(shapes), elements=finite))
    nd = x.ndim
    if nd == 0:
        dim = draw(st.sampled_from([None, 0, -1]))
    else:
        axes = draw(st.lists(st.integers(-nd, nd - 1), unique_by=lambda d: d % nd, max_size=nd))
        dim = draw(st.sampled_from([None, tuple(axes)] + ([axes[0]] if axes else [])))
    return x, dim, draw(st.booleans())


def _np_axis(x, dim):
    if dim is None or x.ndim == 0 or dim == ():
        return None
    return dim


@SETTINGS
@given(array_and_dims())
def test_sum_matches_numpy(case):
    x, dim, keepdim = case
    got = genesis.sum(genesis.tensor(x), dim=dim, keepdim=keepdim).numpy()
    want = np.sum(x, axis=_np_axis(x, dim), keepdims=keepdim)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(array_and_dims())
def test_sum_gradient_is_ones(case):
    x, dim, keepdim = case
    t = genesis.tensor(x, requires_grad=True)
    t.sum(dim=dim, keepdim=keepdim).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.ones_like(x))


@SETTINGS
@given(array_and_dims())
def test_integer_sum_matches_numpy_in_int64(case):
    x, dim, keepdim = case
    xi = x.astype(np.int32)
    got = genesis.tensor(xi).sum(dim=dim, keepdim=keepdim)
    assert got.dtype is genesis.int64
    np.testing.assert_array_equal(got.numpy(), np.sum(xi, axis=_np_axis(x, dim),
                                                      keepdims=keepdim, dtype=np.int64))


@SETTINGS
@given(array_and_dims())
def test_amax_and_logsumexp_match_numpy(case):
    x, dim, keepdim = case
    axis = _np_axis(x, dim)
    t = genesis.tensor(x)
    if x.size:
        np.testing.assert_array_equal(t.amax(dim=() if dim is None else dim, keepdim=keepdim)
                                      .numpy(), np.max(x, axis=axis, keepdims=keepdim))
    with np.errstate(divide="ignore"):
        want = np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdim))
    got = t.logsumexp(dim=() if dim is None else dim, keepdim=keepdim).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(hnp.arrays(np.float64, shapes, elements=finite), st.randoms(use_true_random=False))
def test_permute_round_trips(x, rnd):
    perm = list(range(x.ndim))
    rnd.shuffle(perm)
    inverse = list(np.argsort(perm))
    t = genesis.tensor(x, requires_grad=True)
    p = t.permute(perm)
    np.testing.assert_array_equal(p.detach().numpy(), np.transpose(x, perm))
    back = p.permute(inverse)
    np.testing.assert_array_equal(back.detach().numpy(), x)
    w = np.arange(x.size, dtype=np.float64).reshape(x.shape)
    (back * genesis.tensor(w)).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), w)


@SETTINGS
@given(hnp.arrays(np.float64, shapes, elements=finite), st.data())
def test_reshape_round_trips(x, data):
    n = x.size
    divisors = [d for d in range(1, n + 1) if n % d == 0] or [1]
    a = data.draw(st.sampled_from(divisors))
    target = (a, -1) if n else (0, data.draw(st.integers(1, 3)))
    t = genesis.tensor(x, requires_grad=True)
    r = t.reshape(target)
    np.testing.assert_array_equal(r.detach().numpy(), x.reshape(target))
    back = r.reshape(x.shape)
    np.testing.assert_array_equal(back.detach().numpy(), x)
    back.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.ones_like(x))


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
                  elements=finite), st.data())
def test_split_then_cat_round_trips(x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[dim]
    size = data.draw(st.integers(1, max(n, 1)))
    t = genesis.tensor(x)
    pieces = t.split(size, dim)
    assert sum(p.shape[dim] for p in pieces) == n
    np.testing.assert_array_equal(genesis.cat(list(pieces), dim).numpy(), x)
    if n:
        np.testing.assert_array_equal(genesis.stack(list(t.unbind(dim)), dim).numpy(), x)
