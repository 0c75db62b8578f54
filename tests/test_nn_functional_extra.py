"""genesis.nn.functional beyond the OpInfo tables: dropout, float32 stability, dtypes, errors."""
import warnings

import numpy as np
import pytest

import genesis
import genesis.nn.functional as F
from tests.opinfo import OpInfo, Sample, gradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _t(arr, requires_grad=False):
    t = genesis.tensor(arr)
    return t.requires_grad_() if requires_grad else t


def _seeded(fn, seed=7):
    """``fn`` with the default generator reseeded before every call: a deterministic op."""
    def op(*args, **kwargs):
        genesis.manual_seed(seed)
        return fn(*args, **kwargs)
    return op


# --------------------------------------------------------------------------- dropout
def test_dropout_train_mode_statistics():
    genesis.manual_seed(0)
    p = 0.3
    x = genesis.ones(400, 250, requires_grad=True)
    y = F.dropout(x, p)
    out = y.detach().numpy()
    assert y.dtype is genesis.float32
    assert abs((out == 0).mean() - p) < 0.01
    assert abs(out.mean() - 1.0) < 0.02
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / (1 - p)], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), out)


def test_dropout_same_seed_same_mask():
    x = genesis.randn(50, 40)
    genesis.manual_seed(123)
    a = F.dropout(x, 0.5).numpy()
    genesis.manual_seed(123)
    b = F.dropout(x, 0.5).numpy()
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_gradcheck_with_fixed_mask():
    info = OpInfo("dropout_train", _seeded(lambda x: F.dropout(x, 0.4)), None, None)
    sample = Sample(np.random.default_rng(0).standard_normal((4, 5)))
    for _, analytic, numeric in gradcheck(info, sample):
        np.testing.assert_allclose(analytic, numeric, atol=1e-6)


def test_dropout_edge_probabilities_and_eval():
    x = genesis.randn(3, 4)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="dropout.*between 0 and 1.*1.5"):
        F.dropout(x, 1.5)


def test_dropout_inplace_writes_input():
    genesis.manual_seed(1)
    x = genesis.ones(20, 20)
    y = F.dropout(x, 0.5, inplace=True)
    assert y is x
    assert (x.numpy() == 0).any() and (x.numpy() == 2).any()


def test_sdpa_dropout_is_seeded_unbiased_and_differentiable():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 3, 4)) for _ in range(3))
    plain = F.scaled_dot_product_attention(_t(q), _t(k), _t(v)).numpy()
    op = _seeded(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.5))
    first, second = op(_t(q), _t(k), _t(v)).numpy(), op(_t(q), _t(k), _t(v)).numpy()
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, plain)
    genesis.manual_seed(5)
    mean = np.mean([F.scaled_dot_product_attention(_t(q), _t(k), _t(v), dropout_p=0.5).numpy()
                    for _ in range(3000)], axis=0)
    np.testing.assert_allclose(mean, plain, atol=0.08)
    info = OpInfo("sdpa_dropout", op, None, None)
    for _, analytic, numeric in gradcheck(info, Sample(q, k, v)):
        np.testing.assert_allclose(analytic, numeric, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- float32 stability
def test_float32_softmax_family_stable_on_huge_logits():
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((4, 7)) * 1e4).astype(np.float32)
    target = np.array([0, 3, 6, 2])
    x = _t(logits, requires_grad=True)
    tx = torch.tensor(logits, requires_grad=True)
    for ours, theirs in ((F.softmax(x, 1), TF.softmax(tx, 1)),
                         (F.log_softmax(x, 1), TF.log_softmax(tx, 1))):
        assert ours.dtype is genesis.float32
        assert np.isfinite(ours.detach().numpy()).all()
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-5,
                                   atol=1e-3)
    loss = F.cross_entropy(x, _t(target), label_smoothing=0.1)
    tloss = TF.cross_entropy(tx, torch.tensor(target), label_smoothing=0.1)
    assert loss.dtype is genesis.float32 and np.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    loss.backward()
    tloss.backward()
    assert x.grad.dtype is genesis.float32 and np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-6)


def test_float32_equal_huge_logits_give_uniform_softmax():
    x = genesis.full((2, 5), 3e4)
    np.testing.assert_allclose(F.softmax(x, -1).numpy(), np.full((2, 5), 0.2), rtol=1e-6)
    loss = F.cross_entropy(x, genesis.tensor([1, 4]))
    np.testing.assert_allclose(loss.item(), np.log(5), rtol=1e-6)


# --------------------------------------------------------------------------- dtypes
_F32_CASES = {
    "softmax": lambda x, w: F.softmax(x, -1),
    "log_softmax": lambda x, w: F.log_softmax(x, -1),
    "cross_entropy": lambda x, w: F.cross_entropy(x, genesis.tensor([0, 1, 2])),
    "cross_entropy_probs": lambda x, w: F.cross_entropy(x, F.softmax(w, -1)),
    "nll_loss": lambda x, w: F.nll_loss(x, genesis.tensor([0, 1, 2])),
    "silu": lambda x, w: F.silu(x),
    "gelu": lambda x, w: F.gelu(x),
    "gelu_tanh": lambda x, w: F.gelu(x, approximate="tanh"),
    "leaky_relu": lambda x, w: F.leaky_relu(x),
    "softplus": lambda x, w: F.softplus(x),
    "silu_and_mul": lambda x, w: F.silu_and_mul(x, w),
    "rms_norm": lambda x, w: F.rms_norm(x, (4,), w[0]),
    "layer_norm": lambda x, w: F.layer_norm(x, (4,), w[0], w[1]),
    "normalize": lambda x, w: F.normalize(x),
    "linear": lambda x, w: F.linear(x, w, w[0, :3]),
    "sdpa": lambda x, w: F.scaled_dot_product_attention(x, w, w),
    "sdpa_mask": lambda x, w: F.scaled_dot_product_attention(x, w, w, attn_mask=w[:, :3]),
    "mse_loss": lambda x, w: F.mse_loss(x, w),
    "l1_loss": lambda x, w: F.l1_loss(x, w),
    "bce_logits": lambda x, w: F.binary_cross_entropy_with_logits(x, genesis.sigmoid(w)),
    "pad": lambda x, w: F.pad(x, (1, 2)),
    "pad_reflect": lambda x, w: F.pad(x[None], (1, 2), mode="reflect"),
    "dropout": lambda x, w: F.dropout(x, 0.2),
    "matmul": lambda x, w: x @ w.T,
    "einsum": lambda x, w: genesis.einsum("ij,kj->ik", x, w),
    "embedding": lambda x, w: F.embedding(genesis.tensor([[0, 2], [1, 1]]), x),
}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(_F32_CASES))
def test_dtype_preserved_in_outputs_and_grads(name, dtype):
    dt = getattr(genesis, dtype)
    rng = np.random.default_rng(0)
    x = genesis.tensor(rng.standard_normal((3, 4)), dtype=dt).requires_grad_()
    w = genesis.tensor(rng.standard_normal((3, 4)), dtype=dt).requires_grad_()
    out = _F32_CASES[name](x, w)
    assert out.dtype is dt, f"{name}: output dtype {out.dtype}"
    out.sum().backward()
    for t in (x, w):
        if t.grad is not None:
            assert t.grad.dtype is dt, f"{name}: grad dtype {t.grad.dtype}"
            assert np.isfinite(t.grad.float().numpy()).all()


def test_bfloat16_softmax_and_cross_entropy_accumulate_in_float32():
    x = genesis.randn(4, 4096) * 3
    t = genesis.randint(0, 4096, (4,))
    xb = x.bfloat16()
    want = F.cross_entropy(xb.float(), t).item()
    assert abs(F.cross_entropy(xb, t).item() - want) <= 2 ** -8 * abs(want) * 2
    np.testing.assert_allclose(F.softmax(xb, -1).float().sum(-1).numpy(), np.ones(4), atol=2e-2)


def test_softmax_dtype_argument_casts_first():
    x = genesis.randn(2, 3, requires_grad=True)
    y = F.softmax(x, dim=1, dtype=genesis.float64)
    assert y.dtype is genesis.float64
    y.sum().backward()
    assert x.grad.dtype is genesis.float32
    with pytest.raises(TypeError, match="softmax.*floating"):
        genesis.softmax(genesis.tensor([1, 2]), 0)


def test_softmax_implicit_dim_warns_like_torch():
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = F.softmax(genesis.randn(2, 3))
    np.testing.assert_allclose(y.numpy().sum(1), [1, 1], rtol=1e-6)


def test_rms_norm_bfloat16_upcasts():
    x = genesis.randn(3, 8)
    w = genesis.randn(8)
    got = F.rms_norm(x.bfloat16(), (8,), w.bfloat16())
    assert got.dtype is genesis.bfloat16
    want = F.rms_norm(x, (8,), w, eps=float(np.finfo(np.float32).eps))
    np.testing.assert_allclose(got.float().numpy(), want.numpy(), rtol=2e-2, atol=2e-2)


# --------------------------------------------------------------------------- embedding padding
def test_embedding_padding_row_gets_no_gradient_like_torch():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3))
    idx = np.array([[0, 2, 0], [3, 0, 2]])
    g = rng.standard_normal((2, 3, 3))
    w = _t(weight, requires_grad=True)
    F.embedding(_t(idx), w, padding_idx=0).backward(_t(g))
    tw = torch.tensor(weight, requires_grad=True)
    TF.embedding(torch.tensor(idx), tw, padding_idx=0).backward(torch.tensor(g))
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), atol=1e-12)
    assert not w.grad.numpy()[0].any()


# --------------------------------------------------------------------------- functional API
def test_functional_namespace_is_complete():
    names = ["linear", "embedding", "relu", "gelu", "silu", "leaky_relu", "sigmoid", "tanh",
             "softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss", "l1_loss",
             "binary_cross_entropy_with_logits", "layer_norm", "rms_norm", "dropout", "one_hot",
             "pad", "scaled_dot_product_attention", "silu_and_mul", "softplus", "normalize"]
    assert all(callable(getattr(F, n)) for n in names)


def test_functional_inplace_activations():
    x = genesis.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x
    np.testing.assert_array_equal(x.numpy(), [0.0, 2.0])
    y = genesis.tensor([-1.0, 2.0])
    assert F.leaky_relu(y, 0.5, inplace=True) is y
    np.testing.assert_array_equal(y.numpy(), [-0.5, 2.0])


def test_one_hot_and_sigmoid_reexports():
    np.testing.assert_array_equal(F.one_hot(genesis.tensor([0, 2]), 3).numpy(),
                                  [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(F.sigmoid(genesis.tensor([0.0])).numpy(), [0.5])


def test_mse_loss_broadcast_warns():
    with pytest.warns(UserWarning, match="target size"):
        F.mse_loss(genesis.randn(3, 4), genesis.randn(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(genesis.randn(3, 4), genesis.randn(3, 4))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call,exc,pattern", [
    (lambda: genesis.matmul(genesis.randn(2, 3), genesis.randn(4, 5)), RuntimeError,
     r"matmul: shapes \(2, 3\) and \(4, 5\) cannot be multiplied \(3 != 4\)"),
    (lambda: genesis.matmul(genesis.randn(2, 2, 3), genesis.randn(3, 3, 2)), RuntimeError,
     r"matmul: batch dimensions of shapes \(2, 2, 3\) and \(3, 3, 2\)"),
    (lambda: genesis.matmul(genesis.randn(()), genesis.randn(3)), RuntimeError,
     "matmul: both arguments need to be at least 1-D"),
    (lambda: genesis.matmul(genesis.randn(3), genesis.randn(3).double()), RuntimeError,
     "matmul: expected both operands to have the same dtype"),
    (lambda: genesis.mm(genesis.randn(2, 3, 1), genesis.randn(3, 2)), RuntimeError,
     r"mm: expected 2-D tensors, but got shapes \(2, 3, 1\) and \(3, 2\)"),
    (lambda: genesis.bmm(genesis.randn(2, 3), genesis.randn(3, 2)), RuntimeError,
     r"bmm: expected 3-D tensors, but got shapes \(2, 3\) and \(3, 2\)"),
    (lambda: genesis.bmm(genesis.randn(2, 2, 3), genesis.randn(3, 3, 2)), RuntimeError,
     r"bmm: batch sizes of shapes \(2, 2, 3\) and \(3, 3, 2\) differ"),
    (lambda: genesis.bmm(genesis.randn(2, 2, 3), genesis.randn(2, 4, 2)), RuntimeError,
     r"bmm: shapes \(2, 2, 3\) and \(2, 4, 2\) cannot be multiplied \(3 != 4\)"),
    (lambda: genesis.dot(genesis.randn(3), genesis.randn(4)), RuntimeError,
     r"dot: inconsistent tensor sizes, got shapes \(3,\) and \(4,\)"),
    (lambda: genesis.einsum("ij,jk->ik", genesis.randn(2, 3), genesis.randn(4, 2)), ValueError,
     "einsum: operand 1 of shape \\(4, 2\\) has size 4 for subscript 'j'"),
    (lambda: genesis.einsum("ij->k", genesis.randn(2, 3)), ValueError,
     "einsum: output subscript 'k'"),
    (lambda: genesis.einsum("ij,j", genesis.randn(2, 3)), ValueError,
     "einsum: equation 'ij,j' has 2 operand subscripts but 1 operands"),
    (lambda: F.cross_entropy(genesis.randn(3, 4), genesis.tensor([0, 5, 1])), IndexError,
     "cross_entropy: target 5 is out of bounds for 4 classes"),
    (lambda: F.cross_entropy(genesis.randn(3, 4), genesis.tensor([0, 1])), ValueError,
     r"cross_entropy: expected target of shape \(3,\) for input of shape \(3, 4\), got \(2,\)"),
    (lambda: F.cross_entropy(genesis.randn(3, 4), genesis.tensor([0, 1, 2]), reduction="avg"),
     ValueError, "cross_entropy: reduction must be"),
    (lambda: F.nll_loss(genesis.randn(3, 4), genesis.tensor([0, 1, 9])), IndexError,
     "nll_loss: target 9 is out of bounds"),
    (lambda: F.embedding(genesis.tensor([0, 7]), genesis.randn(5, 2)), IndexError,
     "embedding: index 7 is out of range for an embedding with 5 rows"),
    (lambda: F.embedding(genesis.randn(2), genesis.randn(5, 2)), TypeError,
     "embedding: expected an integer index tensor"),
    (lambda: F.linear(genesis.randn(2, 3), genesis.randn(4, 5)), RuntimeError,
     r"linear: input of shape \(2, 3\) and weight of shape \(4, 5\) are incompatible"),
    (lambda: F.layer_norm(genesis.randn(2, 3), (4,)), ValueError,
     r"layer_norm: normalized_shape \(4,\) does not match .* \(2, 3\)"),
    (lambda: F.rms_norm(genesis.randn(2, 3), (3,), genesis.randn(4)), ValueError,
     r"rms_norm: weight of shape \(4,\) does not match normalized_shape \(3,\)"),
    (lambda: F.scaled_dot_product_attention(genesis.randn(1, 4, 3, 2), genesis.randn(1, 3, 5, 2),
                                            genesis.randn(1, 3, 5, 2), enable_gqa=True),
     ValueError, r"query heads \(4\) must be a multiple of the key/value heads \(3\)"),
    (lambda: F.scaled_dot_product_attention(genesis.randn(1, 4, 3, 2), genesis.randn(1, 2, 5, 2),
                                            genesis.randn(1, 2, 5, 2)),
     RuntimeError, "enable_gqa=True"),
    (lambda: F.scaled_dot_product_attention(genesis.randn(3, 2), genesis.randn(5, 3),
                                            genesis.randn(5, 2)),
     ValueError, r"incompatible shapes query \(3, 2\), key \(5, 3\)"),
    (lambda: F.scaled_dot_product_attention(genesis.randn(3, 2), genesis.randn(5, 2),
                                            genesis.randn(5, 2),
                                            attn_mask=genesis.ones(3, 5).bool(), is_causal=True),
     RuntimeError, "attn_mask should not be set when is_causal=True"),
    (lambda: F.scaled_dot_product_attention(genesis.randn(3, 2), genesis.randn(5, 2),
                                            genesis.randn(5, 2), attn_mask=genesis.randn(4, 5)),
     RuntimeError, r"attn_mask of shape \(4, 5\) cannot be broadcast"),
    (lambda: F.pad(genesis.randn(2, 3), (1, 2, 3)), ValueError, "pad: padding length"),
    (lambda: F.pad(genesis.randn(1, 2, 3), (3, 0), mode="reflect"), ValueError,
     "pad: reflect padding .* too large"),
    (lambda: F.gelu(genesis.randn(2), approximate="fast"), ValueError,
     "gelu: approximate must be 'none' or 'tanh'"),
])
def test_errors_name_the_op_and_shapes(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_loss_weight_requiring_grad_is_rejected_like_torch():
    w = genesis.rand(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="cross_entropy: not differentiable with respect "
                                           "to weight"):
        F.cross_entropy(genesis.randn(3, 4), genesis.tensor([0, 1, 2]), w)
    with genesis.no_grad():
        F.cross_entropy(genesis.randn(3, 4), genesis.tensor([0, 1, 2]), w)
