"""Small public functions: *_like factories, bernoulli, scalar_tensor, dtype helpers, seeds."""
import numpy as np
import pytest

import genesis


@pytest.mark.parametrize("name", ["rand_like", "randn_like", "empty_like"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_like_factories_keep_shape_and_dtype(name, dtype):
    x = genesis.zeros(2, 3, dtype=getattr(genesis, dtype))
    y = getattr(genesis, name)(x)
    assert tuple(y.shape) == (2, 3) and y.dtype is x.dtype and not y.requires_grad
    assert getattr(genesis, name)(x, dtype=genesis.float16).dtype is genesis.float16
    assert getattr(genesis, name)(x, requires_grad=True).requires_grad


def test_rand_like_and_randn_like_draw_from_the_seeded_generator():
    x = genesis.zeros(1000, dtype=genesis.float64)
    genesis.manual_seed(3)
    u, n = genesis.rand_like(x).numpy(), genesis.randn_like(x).numpy()
    genesis.manual_seed(3)
    np.testing.assert_array_equal(genesis.rand_like(x).numpy(), u)
    np.testing.assert_array_equal(genesis.randn_like(x).numpy(), n)
    assert u.min() >= 0.0 and u.max() < 1.0 and 0.4 < u.mean() < 0.6
    assert abs(n.mean()) < 0.15 and 0.85 < n.std() < 1.15


def test_randint_like_range_and_dtype():
    x = genesis.zeros(500, dtype=genesis.float64)
    genesis.manual_seed(0)
    r = genesis.randint_like(x, 3)
    assert r.dtype is genesis.float64 and set(r.tolist()) == {0.0, 1.0, 2.0}
    r = genesis.randint_like(x, 5, 7, dtype=genesis.int64)
    assert r.dtype is genesis.int64 and set(r.tolist()) == {5, 6}


def test_bernoulli_extremes_and_rate():
    x = genesis.tensor([0.0, 1.0, 1.0, 0.0])
    out = genesis.bernoulli(x)
    assert out.dtype is genesis.float32 and out.tolist() == [0.0, 1.0, 1.0, 0.0]
    genesis.manual_seed(1)
    draws = genesis.bernoulli(genesis.full((20000,), 0.3)).numpy()
    assert set(np.unique(draws)) <= {0.0, 1.0} and abs(draws.mean() - 0.3) < 0.02
    assert genesis.bernoulli(genesis.zeros(5), p=1.0).tolist() == [1.0] * 5


def test_scalar_tensor_is_0d_default_float():
    t = genesis.scalar_tensor(3)
    assert t.shape == () and t.dtype is genesis.float32 and t.item() == 3.0
    assert genesis.scalar_tensor(2, dtype=genesis.int64).dtype is genesis.int64


def test_default_dtype_round_trip():
    assert genesis.get_default_dtype() is genesis.float32
    genesis.set_default_dtype(genesis.float64)
    try:
        assert genesis.get_default_dtype() is genesis.float64
        assert genesis.tensor([1.5]).dtype is genesis.float64
        assert genesis.zeros(2).dtype is genesis.float64
    finally:
        genesis.set_default_dtype(genesis.float32)
    assert genesis.tensor([1.5]).dtype is genesis.float32


PROMOTIONS = [("int32", "float16", "float16"), ("uint8", "int8", "int16"),
              ("bool_", "int32", "int32"), ("bfloat16", "float16", "float32"),
              ("int64", "float32", "float32"), ("float32", "float64", "float64")]


@pytest.mark.parametrize("a,b,want", PROMOTIONS)
def test_promote_types(a, b, want):
    assert genesis.promote_types(getattr(genesis.dtypes, a), getattr(genesis.dtypes, b)) \
        is getattr(genesis.dtypes, want)


@pytest.mark.parametrize("a,b,want", PROMOTIONS)
def test_promote_types_matches_torch(a, b, want):
    torch = pytest.importorskip("torch")
    tn = {"bool_": "bool"}.get
    got = torch.promote_types(getattr(torch, tn(a, a)), getattr(torch, tn(b, b)))
    assert str(got) == "torch." + tn(want, want)


def test_is_tensor():
    assert genesis.is_tensor(genesis.zeros(1)) and genesis.is_tensor(genesis.nn.Parameter(
        genesis.zeros(1)))
    assert not genesis.is_tensor(3) and not genesis.is_tensor(np.zeros(1))


def test_seed_and_initial_seed():
    genesis.manual_seed(1234)
    assert genesis.initial_seed() == 1234
    a = genesis.rand(3).tolist()
    s = genesis.seed()
    assert genesis.initial_seed() == s
    genesis.manual_seed(1234)
    assert genesis.rand(3).tolist() == a


def test_concatenate_is_cat():
    a, b = genesis.ones(2, 1), genesis.zeros(2, 2)
    assert genesis.concatenate([a, b], dim=1).tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    assert genesis.concatenate is genesis.cat


@pytest.mark.parametrize("make", [lambda lib, v: lib.tensor(v, dtype=lib.float64),
                                  lambda lib, v: lib.tensor(v[0], dtype=lib.float64),
                                  lambda lib, v: lib.as_tensor(v, dtype=lib.float64),
                                  lambda lib, v: lib.tensor([v], dtype=lib.float64)])
def test_python_floats_keep_float64_precision(make):
    values = [0.9000000033333331, 2.099999999, 0.1]
    got = np.asarray(make(genesis, values).tolist(), dtype=np.float64).ravel()
    np.testing.assert_array_equal(got, np.asarray(values).ravel()[:got.size])
    assert make(genesis, values).dtype is genesis.float64


def test_python_floats_round_once_to_float32():
    v = [0.9000000033333331, 1e-40]
    np.testing.assert_array_equal(genesis.tensor(v).numpy(), np.asarray(v, dtype=np.float32))
    np.testing.assert_array_equal(genesis.tensor(v, dtype=genesis.float16).numpy(),
                                  np.asarray(v, dtype=np.float16))
