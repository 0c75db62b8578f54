"""Property tests of ``Tensor.__getitem__`` / ``__setitem__`` against NumPy (and PyTorch).

Random combinations of ints, slices (negative bounds, positive steps), None, Ellipsis, integer
arrays and bool masks on small shapes. NumPy is the reference wherever its semantics equal
PyTorch's (integers never mixed with index arrays); PyTorch itself is the reference for the
rest, where it applies integer indices before the advanced ones.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import genesis

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def _item(draw, shape, d, remaining, state):
    """One index item for the dims starting at ``d``: (item, number of dims it consumes)."""
    size = shape[d]
    kinds = ["slice", "none"]
    if size > 0:
        kinds += ["int", "array"]
    if not state["mask"]:
        kinds.append("mask")
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None, 0
    if kind == "int":
        return draw(st.integers(-size, size - 1)), 1
    if kind == "slice":
        bound = st.none() | st.integers(-size - 2, size + 2)
        return slice(draw(bound), draw(bound), draw(st.none() | st.integers(1, 3))), 1
    if kind == "array":
        length = draw(st.sampled_from([1, state["length"]]))
        if state["unique"]:
            values = draw(st.permutations(range(size)))[:1 if length > size else length]
            values = [v - size if draw(st.booleans()) else v for v in values]
        else:
            values = draw(st.lists(st.integers(-size, size - 1), min_size=length,
                                   max_size=length))
        return np.array(values, dtype=np.int64), 1
    state["mask"] = True
    k = draw(st.integers(1, min(2, remaining)))
    bits = draw(st.lists(st.booleans(), min_size=int(np.prod(shape[d:d + k])),
                         max_size=int(np.prod(shape[d:d + k]))))
    return np.array(bits, dtype=bool).reshape(shape[d:d + k]), k


@st.composite
def indexed_shapes(draw, ints_with_arrays=True, unique=False):
    """(shape, index tuple); with a mask present the other index arrays have length 1."""
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
    state = {"mask": False, "length": draw(st.integers(1, 3)), "unique": unique}
    use_ellipsis = draw(st.booleans())
    a = draw(st.integers(0, len(shape)))
    b = draw(st.integers(a, len(shape))) if use_ellipsis else a
    parts = []
    for lo, hi in ((0, a), (b, len(shape))):
        part, d = [], lo
        while d < hi:
            item, used = draw(_item(shape, d, hi - d, state))
            part.append(item)
            d += used
        parts.append(part)
    index = parts[0] + ([Ellipsis] if use_ellipsis else []) + parts[1]
    arrays = [i for i in index if isinstance(i, np.ndarray)]
    if any(x.dtype == bool for x in arrays):
        index = [i[:1] if isinstance(i, np.ndarray) and i.dtype != bool else i for i in index]
    if arrays and not ints_with_arrays:
        index = [slice(i, i + 1 if i != -1 else None) if isinstance(i, int) else i
                 for i in index]
    return shape, tuple(index)


def _to_genesis_index(index):
    return tuple(genesis.tensor(i) if isinstance(i, np.ndarray) else i for i in index)


def _torch_reading(shape, index):
    """The index with ``...`` spelled out as full slices: PyTorch's reading, in which an
    ellipsis covering no dimension does not separate advanced indices (NumPy's does)."""
    at = next((k for k, i in enumerate(index) if i is Ellipsis), None)
    if at is None:
        return index
    consumed = sum(i.ndim if isinstance(i, np.ndarray) and i.dtype == bool else 0 if i is None
                   else 1 for i in index if i is not Ellipsis)
    return index[:at] + (slice(None),) * (len(shape) - consumed) + index[at + 1:]


def _reference_grad(shape, index, w):
    """Gradient of sum(w * x[index]): every addressed element accumulates its weights."""
    positions = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)[index]
    flat = np.bincount(np.asarray(positions).reshape(-1), weights=np.asarray(w).reshape(-1),
                       minlength=int(np.prod(shape)))
    return flat.reshape(shape)


def _sum_to(a, shape):
    """Sum a broadcast result back to ``shape`` (the gradient of a broadcast)."""
    a = np.asarray(a)
    lead = a.ndim - len(shape)
    if lead < 0:
        return a.reshape((1,) * -lead + a.shape)
    a = a.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


@SETTINGS
@given(indexed_shapes(ints_with_arrays=False), st.integers(0, 2 ** 32 - 1))
def test_getitem_matches_numpy_with_gradient(case, seed):
    shape, index = case
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(shape)
    want = data[_torch_reading(shape, index)]
    x = genesis.tensor(data, requires_grad=True)
    y = x[_to_genesis_index(index)]
    assert tuple(y.shape) == np.shape(want)
    np.testing.assert_array_equal(y.detach().numpy(), want)
    w = rng.standard_normal(np.shape(want))
    y.backward(genesis.tensor(w))
    np.testing.assert_allclose(x.grad.numpy(), _reference_grad(shape, _torch_reading(shape, index), w),
                               atol=1e-12)


@SETTINGS
@given(indexed_shapes(ints_with_arrays=False), st.integers(0, 2 ** 32 - 1), st.data())
def test_setitem_matches_numpy(case, seed, data):
    shape, index = case
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(shape)
    ref_index = _torch_reading(shape, index)
    target = np.shape(base[ref_index])
    vshape = tuple(s if data.draw(st.booleans()) else 1 for s in target)
    vshape = vshape[data.draw(st.integers(0, len(vshape))):]
    value = rng.standard_normal(vshape)
    want = base.copy()
    want[ref_index] = value
    x = genesis.tensor(base)
    version = x._version[0]
    x[_to_genesis_index(index)] = genesis.tensor(value)
    np.testing.assert_array_equal(x.numpy(), want)
    assert x._version[0] == version + 1
    leaf = genesis.tensor(base, requires_grad=True)
    v = genesis.tensor(value, requires_grad=True)
    y = leaf.clone()
    y[_to_genesis_index(index)] = v
    np.testing.assert_array_equal(y.detach().numpy(), want)
    w = rng.standard_normal(shape)
    y.backward(genesis.tensor(w))
    gx = w.copy()
    gx[ref_index] = 0
    np.testing.assert_allclose(leaf.grad.numpy(), gx)
    np.testing.assert_allclose(v.grad.numpy(), _sum_to(w[ref_index], vshape), atol=1e-12)


@SETTINGS
@given(indexed_shapes(ints_with_arrays=True, unique=True), st.integers(0, 2 ** 32 - 1))
@example(((0, 1), (None, np.zeros(0, bool), Ellipsis, np.array([0]))), 0)
def test_getitem_setitem_match_torch(case, seed):
    torch = pytest.importorskip("torch")
    shape, index = case
    rng = np.random.default_rng(seed)
    data = rng.standard_normal(shape)
    t_index = tuple(torch.from_numpy(i) if isinstance(i, np.ndarray) else i for i in index)
    xt = torch.tensor(data, requires_grad=True)
    yt = xt[t_index]
    x = genesis.tensor(data, requires_grad=True)
    y = x[_to_genesis_index(index)]
    assert tuple(y.shape) == tuple(yt.shape)
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    w = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(w))
    y.backward(genesis.tensor(w))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), atol=1e-12)

    value = rng.standard_normal(tuple(yt.shape))
    vt = torch.tensor(value, requires_grad=True)
    v = genesis.tensor(value, requires_grad=True)
    zt = xt.detach().clone()
    zt[t_index] = vt
    z = x.detach().clone()
    z[_to_genesis_index(index)] = v
    np.testing.assert_array_equal(z.detach().numpy(), zt.detach().numpy())
    wz = rng.standard_normal(shape)
    zt.backward(torch.from_numpy(wz))
    z.backward(genesis.tensor(wz))
    np.testing.assert_allclose(v.grad.numpy(), vt.grad.numpy(), atol=1e-12)


# --------------------------------------------------------------------------- in-place semantics
def test_setitem_is_in_place_and_views_see_it():
    x = genesis.zeros(3, 4)
    row = x[1]
    ident = id(x)
    x[1, 2] = 5.0
    x[genesis.tensor([0, 2]), 0] = genesis.tensor([1.0, 2.0])
    assert id(x) == ident
    assert row.tolist() == [0.0, 0.0, 5.0, 0.0]
    assert x[:, 0].tolist() == [1.0, 0.0, 2.0]
    assert row._version is x._version and x._version[0] == 2
    row[0] = -1.0
    assert x[1, 0].item() == -1.0


def test_setitem_gradient_flows_into_value_and_base():
    w = genesis.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a = genesis.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], requires_grad=True)
    out = a * 1.0
    out[0] = w * 3.0
    assert out.grad_fn is not None
    out.backward(genesis.ones(2, 3))
    assert w.grad.tolist() == [3.0, 3.0, 3.0]
    assert a.grad.tolist() == [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]


def test_setitem_leaf_requiring_grad_raises():
    x = genesis.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        x[0] = 1.0
    with genesis.no_grad():
        x[0] = 1.0
    assert x.tolist() == [1.0, 0.0, 0.0]


def test_setitem_detects_modified_saved_tensor():
    w = genesis.ones(3, requires_grad=True)
    x = genesis.ones(3)
    y = w * x
    x[0] = 2.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_basic_index_is_a_view_advanced_is_a_copy():
    x = genesis.tensor(np.arange(12).reshape(3, 4))
    v = x[1:, ::2]
    c = x[genesis.tensor([1, 2])]
    x[2, 0] = 100
    assert v[1, 0].item() == 100
    assert c[1, 0].item() == 8


@pytest.mark.parametrize("index,error,match", [
    ((5,), IndexError, r"getitem: index 5 is out of bounds for dimension 0 with size 3"),
    ((slice(None), -5), IndexError, r"index -5 is out of bounds for dimension 1 with size 4"),
    ((slice(None, None, -1),), ValueError, "step must be greater than zero"),
    ((slice(None, None, 0),), ValueError, "step must be greater than zero"),
    ((1.5,), IndexError, "only integers, slices"),
    ((0, 0, 0, 0), IndexError, "too many indices for tensor of dimension 3"),
    ((Ellipsis, 0, Ellipsis), IndexError, "single ellipsis"),
    (([0, 3],), IndexError, "index 3 is out of bounds for dimension 0 with size 3"),
    ((np.array([True, False]),), IndexError, "shape of the mask"),
    (([0, 1], slice(None), [0, 1, 2]), IndexError, "could not be broadcast"),
])
def test_getitem_errors(index, error, match):
    x = genesis.zeros(3, 4, 5)
    with pytest.raises(error, match=match):
        x[index]


def test_float_index_tensor_rejected():
    with pytest.raises(IndexError, match="must be long, int, byte or bool"):
        genesis.zeros(3)[genesis.tensor([1.0])]


def test_setitem_shape_mismatch_names_op():
    x = genesis.zeros(3, 4)
    with pytest.raises(RuntimeError, match="setitem: shape mismatch"):
        x[0] = genesis.ones(3)


@pytest.mark.parametrize("call,error,match", [
    (lambda x, i: genesis.gather(x, 1, i), RuntimeError,
     "gather: index 4 is out of bounds for dimension 1 with size 4"),
    (lambda x, i: genesis.gather(x, 1, genesis.tensor([1, 2])), RuntimeError,
     "same number of dimensions"),
    (lambda x, i: genesis.gather(x, 1, i.float()), RuntimeError, "integer dtype"),
    (lambda x, i: genesis.index_select(x, 0, genesis.tensor([-1])), RuntimeError,
     "index_select: index -1 is out of bounds"),
    (lambda x, i: genesis.index_select(x, 0, i), IndexError, "supposed to be a vector"),
    (lambda x, i: genesis.scatter(x, 1, i, genesis.ones(3, 1).float()), RuntimeError,
     "same dtype"),
    (lambda x, i: genesis.topk(x, 5), RuntimeError, "k out of range"),
    (lambda x, i: genesis.one_hot(genesis.tensor([0, 3]), 3), RuntimeError,
     "smaller than num_classes"),
    (lambda x, i: genesis.bincount(genesis.tensor([0, -1])), RuntimeError, "non-negative"),
    (lambda x, i: genesis.tril(genesis.ones(3)), RuntimeError, "at least 2 dimensions"),
    (lambda x, i: genesis.masked_select(x, genesis.ones(3, 4)), RuntimeError, "bool"),
])
def test_indexing_op_errors(call, error, match):
    x = genesis.zeros(3, 4, dtype=genesis.float64)
    i = genesis.tensor([[0], [4], [1]])
    with pytest.raises(error, match=match):
        call(x, i)


def test_scatter_multiply_requires_no_grad():
    x = genesis.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="reduce='multiply'"):
        genesis.scatter(x, 1, genesis.tensor([[0], [1]]), 2.0, reduce="multiply")


def test_topk_and_sort_return_named_fields():
    x = genesis.tensor([[3.0, 1.0, 2.0]])
    top = x.topk(2)
    assert top.values.tolist() == [[3.0, 2.0]] and top.indices.tolist() == [[0, 2]]
    assert top.indices.dtype is genesis.int64 and not top.indices.requires_grad
    values, indices = x.sort(descending=True)
    assert values.tolist() == [[3.0, 2.0, 1.0]] and indices.tolist() == [[0, 2, 1]]
