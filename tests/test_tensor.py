"""Tensor creation, dtypes and promotion, attributes, conversion, repr and randomness."""
import itertools

import numpy as np
import pytest

import genesis

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
          "float64"]


def test_creation_functions_shapes_and_dtypes():
    assert genesis.zeros(2, 3).shape == (2, 3)
    assert genesis.zeros((2, 3)).dtype is genesis.float32
    assert genesis.ones(4, dtype=genesis.int64).tolist() == [1, 1, 1, 1]
    assert genesis.full((2,), 7).dtype is genesis.int64
    assert genesis.full((2,), 7.5).dtype is genesis.float32
    assert genesis.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert genesis.arange(0, 1, 0.25).dtype is genesis.float32
    assert genesis.arange(1, 10, 3).tolist() == [1, 4, 7]
    np.testing.assert_allclose(genesis.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    assert genesis.eye(3).numpy().trace() == 3
    x = genesis.randn(3, 4, dtype=genesis.float64)
    assert genesis.zeros_like(x).dtype is genesis.float64
    assert genesis.ones_like(x).shape == (3, 4)
    assert genesis.full_like(x, 2.0).numpy().sum() == 24
    assert genesis.empty(2, 2).shape == (2, 2)
    assert genesis.tensor([[1, 2], [3, 4]]).dtype is genesis.int64
    assert genesis.tensor([1.0, 2]).dtype is genesis.float32
    assert genesis.tensor([True, False]).dtype is genesis.bool
    assert genesis.tensor(3.5).ndim == 0


def test_from_numpy_shares_memory_and_tensor_copies():
    a = np.arange(4.0)
    t = genesis.from_numpy(a)
    a[0] = 10
    assert t[0].item() == 10
    c = genesis.tensor(a)
    a[1] = 20
    assert c[1].item() == 1.0
    assert genesis.as_tensor(t) is t


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="ragged"):
        genesis.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="unsupported"):
        genesis.tensor(np.array([1 + 2j]))
    with pytest.raises(RuntimeError, match="negative dimension"):
        genesis.zeros(-1)
    with pytest.raises(TypeError, match="unknown dtype"):
        genesis.zeros(2, dtype="float8")


def test_attributes_and_conversions():
    x = genesis.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size(-1) == 3
    assert x.dim() == 2 and x.ndim == 2 and x.numel() == 6
    assert x.device == genesis.device("cpu") and str(x.device) == "cpu"
    assert x.is_leaf and x.grad is None and x.grad_fn is None
    assert x.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert genesis.tensor([2.5]).item() == 2.5
    assert x.double().dtype is genesis.float64
    assert x.half().dtype is genesis.float16
    assert x.bfloat16().dtype is genesis.bfloat16
    assert x.long().dtype is genesis.int64 and x.int().dtype is genesis.int32
    assert x.bool().dtype is genesis.bool
    assert x.to(genesis.float64).dtype is genesis.float64
    assert x.to("cpu") is x
    assert x.clone().numpy() is not x.numpy()
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        x.item()
    with pytest.raises(IndexError, match="dimension out of range"):
        x.size(2)


def test_bfloat16_roundtrip_and_item():
    x = genesis.tensor([1.5, -2.25], dtype=genesis.bfloat16)
    assert x.tolist() == [1.5, -2.25]
    assert x.float().dtype is genesis.float32
    assert (x * 2).dtype is genesis.bfloat16


def test_repr_matches_pytorch_style():
    assert repr(genesis.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert repr(genesis.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(genesis.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(genesis.tensor([1, 2], dtype=genesis.int32)) == \
        "tensor([1, 2], dtype=genesis.int32)"
    assert repr(genesis.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    y = genesis.tensor([1.0], requires_grad=True) * 2
    assert repr(y) == "tensor([2.], grad_fn=<MulBackward>)"


def _example(name, ndim):
    dt = getattr(genesis, name)
    return genesis.ones(*([2] * ndim), dtype=dt)


def test_promotion_matches_pytorch_table():
    torch = pytest.importorskip("torch")
    tmap = {n: getattr(torch, n) for n in DTYPES}
    for a, b in itertools.product(DTYPES, DTYPES):
        for da, db in ((1, 1), (1, 0), (0, 1)):
            got = genesis.result_type(_example(a, da), _example(b, db))
            want = torch.result_type(torch.ones([2] * da, dtype=tmap[a]),
                                     torch.ones([2] * db, dtype=tmap[b]))
            assert got.name == str(want).replace("torch.", ""), (a, da, b, db)
    for a in DTYPES:
        for scalar in (True, 2, 2.5):
            got = genesis.result_type(_example(a, 1), scalar)
            want = torch.result_type(torch.ones(2, dtype=tmap[a]), scalar)
            assert got.name == str(want).replace("torch.", ""), (a, scalar)


def test_arithmetic_result_dtypes_follow_promotion():
    i = genesis.tensor([1, 2])
    assert (i + 1).dtype is genesis.int64
    assert (i + 1.5).dtype is genesis.float32
    assert (i / 2).dtype is genesis.float32
    h = genesis.tensor([1.0], dtype=genesis.float16)
    assert (h + genesis.tensor(1.0, dtype=genesis.float64)).dtype is genesis.float16
    assert (h + genesis.tensor([1.0], dtype=genesis.float64)).dtype is genesis.float64
    assert (genesis.tensor([True]) + 1).dtype is genesis.int64


def test_manual_seed_makes_draws_reproducible():
    genesis.manual_seed(123)
    a = (genesis.rand(5), genesis.randn(5), genesis.randint(0, 10, (5,)), genesis.randperm(5),
         genesis.multinomial(genesis.tensor([0.1, 0.2, 0.7]), 4, replacement=True))
    genesis.manual_seed(123)
    b = (genesis.rand(5), genesis.randn(5), genesis.randint(0, 10, (5,)), genesis.randperm(5),
         genesis.multinomial(genesis.tensor([0.1, 0.2, 0.7]), 4, replacement=True))
    for x, y in zip(a, b):
        assert x.tolist() == y.tolist()
    state = genesis.get_rng_state()
    c = genesis.randn(3)
    genesis.set_rng_state(state)
    assert genesis.randn(3).tolist() == c.tolist()


def test_random_distributions_are_sane():
    genesis.manual_seed(0)
    x = genesis.randn(20000, dtype=genesis.float64).numpy()
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05
    u = genesis.rand(20000).numpy()
    assert u.min() >= 0 and u.max() < 1
    r = genesis.randint(3, 7, (1000,)).numpy()
    assert r.min() == 3 and r.max() == 6
    assert sorted(genesis.randperm(10).tolist()) == list(range(10))
    m = genesis.multinomial(genesis.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]), 2)
    assert m[0, 0].item() == 1 and sorted(m[1].tolist()) == [0, 2]
    counts = np.bincount(genesis.multinomial(genesis.tensor([0.2, 0.8]), 5000,
                                             replacement=True).numpy(), minlength=2)
    assert abs(counts[1] / 5000 - 0.8) < 0.03
    with pytest.raises(RuntimeError, match="without replacement"):
        genesis.multinomial(genesis.tensor([0.5, 0.5]), 3)
    t = genesis.zeros(1000)
    t.normal_(2.0, 0.5)
    assert abs(t.numpy().mean() - 2.0) < 0.1
    t.uniform_(-1, 1)
    assert t.numpy().min() >= -1 and t.numpy().max() < 1


def test_python_protocol():
    x = genesis.tensor([1.0, 2.0, 3.0])
    assert len(x) == 3
    assert [v.item() for v in x] == [1.0, 2.0, 3.0]
    assert float(genesis.tensor(2.5)) == 2.5 and int(genesis.tensor(3)) == 3
    assert bool(genesis.tensor([1]))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(x)
    assert np.asarray(x).tolist() == [1.0, 2.0, 3.0]
    out = np.float64(2.0) * x
    assert isinstance(out, genesis.Tensor)
    assert {x: 1}[x] == 1


def test_deepcopy_copies_leaves_and_refuses_graph_nodes():
    import copy
    x = genesis.tensor([1.0, 2.0], requires_grad=True)
    y = copy.deepcopy(x)
    assert y.requires_grad and y.tolist() == [1.0, 2.0]
    y._array[0] = 5.0
    assert x.tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(x * 2)


def test_float32_erf_is_accurate_and_float64_is_exact():
    import math
    xs = np.linspace(-6, 6, 4001)
    ref = np.array([math.erf(v) for v in xs])
    np.testing.assert_allclose(genesis.erf(genesis.tensor(xs, dtype=genesis.float64)).numpy(),
                               ref, atol=1e-14)
    np.testing.assert_allclose(genesis.erf(genesis.tensor(xs)).numpy(), ref, atol=3e-7)
