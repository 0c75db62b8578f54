"""Reductions and movement ops: dtypes, return types, views, errors (what OpInfos don't cover)."""
import warnings

import numpy as np
import pytest

import genesis


def _t(a, requires_grad=False):
    return genesis.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dt", [genesis.bool, genesis.uint8, genesis.int8, genesis.int32,
                                genesis.int64])
def test_integer_sum_prod_cumsum_give_int64(dt):
    x = genesis.ones(3, 2, dtype=dt)
    assert x.sum().dtype is genesis.int64
    assert x.sum(1).dtype is genesis.int64
    assert x.prod().dtype is genesis.int64
    assert x.cumsum(0).dtype is genesis.int64
    assert x.sum().item() == 6


@pytest.mark.parametrize("dt", [genesis.float16, genesis.bfloat16, genesis.float32])
def test_float_reductions_keep_dtype_and_accumulate_accurately(dt):
    x = genesis.full((4096,), 0.1, dtype=dt)
    for out in (x.sum(), x.mean(), x.std(), x.norm(), x.logsumexp(0), x.cumsum(0)):
        assert out.dtype is dt
    want = 4096 * float(genesis.tensor(0.1, dtype=dt).item())
    assert abs(x.sum().item() - want) <= 1e-2 * want


def test_dtype_keyword_casts_first():
    x = genesis.tensor([1, 2, 3])
    assert x.sum(dtype=genesis.float64).dtype is genesis.float64
    assert x.mean(dtype=genesis.float32).item() == pytest.approx(2.0)
    assert genesis.cumsum(x, 0, dtype=genesis.float32).dtype is genesis.float32


def test_mean_var_norm_reject_integer_input():
    x = genesis.tensor([1, 2, 3])
    for fn in (genesis.mean, genesis.var, genesis.std, genesis.norm):
        with pytest.raises(RuntimeError, match=fn.__name__):
            fn(x)


def test_mean_of_empty_is_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = genesis.zeros(0, 3).mean(0)
    assert tuple(out.shape) == (3,) and np.isnan(out.numpy()).all()


def test_any_all_dtypes():
    assert genesis.tensor([0, 2]).any().dtype is genesis.bool
    assert genesis.tensor([0, 2], dtype=genesis.uint8).all().dtype is genesis.uint8
    assert not genesis.tensor([0.0, 2.0]).all().item()


def test_cat_and_stack_promote_dtypes():
    a = genesis.ones(2, dtype=genesis.int32)
    b = genesis.ones(2, dtype=genesis.float32)
    assert genesis.cat([a, b]).dtype is genesis.float32
    assert genesis.stack([a, genesis.ones(2, dtype=genesis.int64)]).dtype is genesis.int64


# --------------------------------------------------------------------------- max / min
def test_max_with_dim_is_a_named_pair():
    x = _t([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    out = x.max(dim=1)
    values, indices = out
    assert out.values is values and out.indices is indices
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    assert indices.dtype is genesis.int64 and not indices.requires_grad
    low = genesis.min(x, 0, keepdim=True)
    assert tuple(low.values.shape) == (1, 3) and low.indices.tolist() == [[0, 1, 0]]


def test_max_binary_form_is_maximum():
    a, b = _t([1.0, 4.0]), _t([3.0, 2.0])
    assert genesis.max(a, b).tolist() == [3.0, 4.0]
    assert a.min(b).tolist() == [1.0, 2.0]


def test_max_gradient_goes_to_selected_index_and_full_max_splits_ties():
    x = _t([[2.0, 2.0, 1.0]], requires_grad=True)
    x.max(1).values.sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 0.0]]
    x.grad = None
    x.max().backward()
    assert x.grad.tolist() == [[0.5, 0.5, 0.0]]
    x.grad = None
    x.amin(1).sum().backward()
    assert x.grad.tolist() == [[0.0, 0.0, 1.0]]


def test_argmax_keepdim_shapes():
    x = genesis.randn(2, 3, 4)
    assert tuple(x.argmax().shape) == ()
    assert tuple(x.argmax(keepdim=True).shape) == (1, 1, 1)
    assert tuple(x.argmin(1, keepdim=True).shape) == (2, 1, 4)


def test_empty_reductions_raise():
    x = genesis.zeros(0, 3)
    with pytest.raises(RuntimeError, match="max"):
        x.max()
    with pytest.raises(IndexError, match="amax"):
        x.amax(0)
    with pytest.raises(IndexError, match="argmin"):
        x.argmin(0)
    assert tuple(x.amax(1).shape) == (0,)


# --------------------------------------------------------------------------- gradients
def test_prod_gradient_with_zeros():
    x = _t([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 4.0]], requires_grad=True)
    x.prod(1).sum().backward()
    assert x.grad.tolist() == [[0.0, 6.0, 0.0], [0.0, 0.0, 0.0], [8.0, 4.0, 2.0]]


def test_norm_and_std_gradients_are_zero_at_degenerate_points():
    x = genesis.zeros(3, dtype=genesis.float64, requires_grad=True)
    x.norm().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    y = genesis.ones(3, dtype=genesis.float64, requires_grad=True)
    y.std().backward()
    assert y.grad.tolist() == [0.0, 0.0, 0.0]


def test_var_correction_and_unbiased_forms():
    x = _t([1.0, 2.0, 4.0])
    ref = np.array([1.0, 2.0, 4.0])
    assert genesis.var(x).item() == pytest.approx(ref.var(ddof=1))
    assert genesis.var(x, False).item() == pytest.approx(ref.var())
    assert genesis.var(x, 0, unbiased=False).item() == pytest.approx(ref.var())
    assert x.std(correction=0).item() == pytest.approx(ref.std())
    with pytest.raises(RuntimeError, match="var"):
        genesis.var(x, unbiased=True, correction=1)


def test_logsumexp_is_stable():
    x = _t([1000.0, 1000.0, -1000.0])
    assert x.logsumexp(0).item() == pytest.approx(1000.0 + np.log(2.0))
    assert genesis.tensor([-np.inf, -np.inf]).logsumexp(0).item() == -np.inf


def test_split_backward_with_unused_outputs():
    x = genesis.randn(5, 2, dtype=genesis.float64, requires_grad=True)
    a, _, c = x.split(2)
    (a.sum() + 3 * c.sum()).backward()
    assert x.grad.tolist() == [[1.0, 1.0]] * 2 + [[0.0, 0.0]] * 2 + [[3.0, 3.0]]


# --------------------------------------------------------------------------- views
@pytest.mark.parametrize("make", [
    lambda x: x.view(6), lambda x: x.reshape(3, 2), lambda x: x.transpose(0, 1),
    lambda x: x.permute(1, 0), lambda x: x.t(), lambda x: x.unsqueeze(0),
    lambda x: x.unsqueeze(1).squeeze(1), lambda x: x.narrow(1, 1, 2), lambda x: x.flatten(),
    lambda x: x.unflatten(1, (3, 1)), lambda x: x.movedim(0, 1), lambda x: x.split(1)[1],
    lambda x: x.chunk(3, 1)[2], lambda x: x.unbind(1)[0]])
def test_views_share_storage_and_version(make):
    x = genesis.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    v = make(x)
    assert v._version is x._version and v._base is x
    before = x._version[0]
    v.add_(100.0)
    assert x._version[0] == before + 1
    assert (x.numpy() >= 100).sum() == v.numel()


@pytest.mark.parametrize("make", [lambda x: x.flip(0), lambda x: x.roll(1, 1),
                                  lambda x: x.repeat(1, 2), lambda x: genesis.cat([x, x]),
                                  lambda x: genesis.stack([x]), lambda x: x.repeat_interleave(2)])
def test_copying_ops_do_not_alias(make):
    x = genesis.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    out = make(x)
    out.add_(100.0)
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_expand_is_a_broadcast_view():
    x = genesis.tensor([[1.0], [2.0]])
    e = x.expand(3, -1, 4)
    assert tuple(e.shape) == (3, 2, 4) and e.stride() == (0, 1, 0)
    assert e._base is x


def test_in_place_on_saved_view_is_detected():
    x = genesis.randn(2, 3, requires_grad=True)
    y = x * 1.0
    v = y.t()
    z = (v * v).sum()
    with genesis.no_grad():
        v.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, exc, words", [
    (lambda x: x.view(5, 2), RuntimeError, ["view", "[5, 2]", "[3, 4]"]),
    (lambda x: x.reshape(-1, -1), RuntimeError, ["reshape", "one dimension"]),
    (lambda x: x.sum(2), IndexError, ["sum", "[-2, 1]", "2"]),
    (lambda x: x.sum((1, -1)), RuntimeError, ["sum", "more than once"]),
    (lambda x: x.permute(0), RuntimeError, ["permute", "(3, 4)"]),
    (lambda x: x.expand(3, 5), RuntimeError, ["expand", "[3, 5]", "[3, 4]"]),
    (lambda x: x.repeat(2), RuntimeError, ["repeat", "(3, 4)"]),
    (lambda x: x.narrow(1, 3, 2), RuntimeError, ["narrow", "exceeds"]),
    (lambda x: x.split([1, 1]), RuntimeError, ["split", "[1, 1]", "3"]),
    (lambda x: x.chunk(0), RuntimeError, ["chunk", "0"]),
    (lambda x: x.flatten(1, 0), RuntimeError, ["flatten", "start_dim"]),
    (lambda x: x.unflatten(1, (3, 2)), RuntimeError, ["unflatten", "[3, 2]", "4"]),
    (lambda x: x.unsqueeze(3), IndexError, ["unsqueeze", "[-3, 2]"]),
    (lambda x: x.roll((1, 2), 0), RuntimeError, ["roll", "align"]),
    (lambda x: x.movedim((0, 1), 0), RuntimeError, ["movedim"]),
    (lambda x: x.sum(1.5), TypeError, ["sum", "integer"]),
    (lambda x: genesis.cat([x, genesis.zeros(2, 3)], 1), RuntimeError, ["cat", "(2, 3)"]),
    (lambda x: genesis.cat([]), ValueError, ["cat", "non-empty"]),
    (lambda x: genesis.cat([x, genesis.tensor(1.0)]), RuntimeError, ["cat", "zero-dim"]),
    (lambda x: genesis.cat(x), TypeError, ["cat", "list"]),
    (lambda x: genesis.stack([x, x.t()]), RuntimeError, ["stack", "(3, 4)", "(4, 3)"]),
    (lambda x: x.t().t().unsqueeze(0).t(), RuntimeError, ["t", "(1, 3, 4)"]),
    (lambda x: x.norm(p="bad"), ValueError, ["norm", "'bad'"]),
])
def test_errors_name_the_op_and_values(call, exc, words):
    x = genesis.randn(3, 4)
    with pytest.raises(exc) as info:
        call(x)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_method_forms_accept_varargs_and_tuples():
    x = genesis.randn(2, 3, 4)
    assert tuple(x.view(4, 6).shape) == tuple(x.view((4, 6)).shape) == (4, 6)
    assert tuple(x.permute(2, 0, 1).shape) == tuple(x.permute([2, 0, 1]).shape) == (4, 2, 3)
    assert tuple(x[0].expand(5, 3, 4).shape) == tuple(x[0].expand((5, 3, 4)).shape)
    assert tuple(x.flip(0, 2).shape) == (2, 3, 4)
    assert tuple(x.squeeze().shape) == (2, 3, 4)
    assert tuple(x.moveaxis(0, -1).shape) == tuple(x.swapdims(0, 2).transpose(0, 1).shape)
    assert tuple(genesis.repeat_interleave(genesis.tensor([2, 0, 1])).shape) == (3,)
    assert genesis.repeat_interleave(genesis.tensor([2, 0, 1])).tolist() == [0, 0, 2]


@pytest.mark.parametrize("numel, shape", [(12, (-2, 6)), (12, (-3, -4)), (0, (-1, 0)),
                                          (12, (5, -1)), (12, (-1, -1)), (12, (3, 5))])
def test_reshape_refuses_the_shapes_torch_refuses(numel, shape):
    """NumPy reads any negative entry as "infer"; reshape and view follow PyTorch instead."""
    for op in ("reshape", "view"):
        x = genesis.zeros(numel)
        with pytest.raises(RuntimeError, match=op):
            getattr(x, op)(*shape)
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        torch.zeros(numel).reshape(*shape)


def test_reshape_infers_minus_one_and_aliases_when_it_can():
    x = genesis.arange(12.0)
    v = x.reshape(2, -1)
    assert tuple(v.shape) == (2, 6)
    v.add_(1.0)
    assert x.tolist() == [float(i + 1) for i in range(12)]
    assert x._version is v._version
    c = x.reshape(3, 4).t().reshape(-1)      # non-contiguous: a copy, as in PyTorch
    c.zero_()
    assert x.tolist() == [float(i + 1) for i in range(12)]
