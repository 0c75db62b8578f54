"""A leaf's first gradient becomes its ``.grad`` without a copy only when nothing else holds
that array (PyTorch's AccumulateGrad steals such a gradient); otherwise ``.grad`` is a copy,
so writing to it can never reach another tensor, a saved array or a hook's tensor."""
import weakref

import numpy as np
import pytest

import genesis
from genesis.autograd import Function

KEPT = []


def _identity_keeping(keep):
    """An identity Function whose backward returns a new array and appends ``keep(array)`` to
    ``KEPT``."""

    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, g):
            out = g * 1
            KEPT.append(keep(out))
            return out
    return Identity


Fresh = _identity_keeping(weakref.ref)   # remembers its gradient weakly
Kept = _identity_keeping(lambda array: array)   # keeps its gradient alive


def _leaf():
    return genesis.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)


def test_an_unshared_gradient_becomes_grad_without_a_copy():
    KEPT.clear()
    x = _leaf()
    Fresh.apply(x).sum().backward()
    assert KEPT[0]() is x.grad._array
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3)))


def test_a_gradient_something_else_holds_is_copied():
    KEPT.clear()
    x = _leaf()
    Kept.apply(x).sum().backward()
    assert not np.shares_memory(KEPT[0], x.grad._array)
    x.grad.mul_(5)
    np.testing.assert_array_equal(KEPT[0], np.ones((2, 3)))


def test_leaves_sharing_one_gradient_get_their_own_memory():
    a, b = _leaf(), _leaf()
    (a * 3 + b).sum().backward()      # b's gradient is the sum's broadcast; a's a new array
    c, d = _leaf(), _leaf()
    Fresh.apply(c + d).sum().backward()   # add hands one array to both leaves
    assert not np.shares_memory(c.grad._array, d.grad._array)
    c.grad.add_(1)
    np.testing.assert_array_equal(d.grad.numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(a.grad.numpy(), np.full((2, 3), 3.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.ones((2, 3)))


def test_a_gradient_a_hook_kept_is_copied():
    seen = []
    x = _leaf()
    x.register_hook(seen.append)
    (x * 2).sum().backward()
    x.grad.zero_()
    np.testing.assert_array_equal(seen[0].numpy(), np.full((2, 3), 2.0))


def test_an_explicit_gradient_is_never_the_grad():
    x = _leaf()
    v = genesis.tensor(np.full((2, 3), 7.0, np.float32))
    (x * 1).backward(gradient=v)
    x.grad.zero_()
    np.testing.assert_array_equal(v.numpy(), np.full((2, 3), 7.0))
    y = _leaf()
    y.backward(gradient=v)
    assert not np.shares_memory(y.grad._array, v._array)


def test_later_gradients_accumulate_in_place_as_in_torch():
    torch = pytest.importorskip("torch")
    KEPT.clear()
    x = _leaf()
    Fresh.apply(x).sum().backward()
    first, version = x.grad, x.grad._version[0]
    Fresh.apply(x * 2).sum().backward()
    t = torch.tensor(x.detach().numpy(), requires_grad=True)
    (t * 1).sum().backward()
    t_first, t_version = t.grad, t.grad._version
    (t * 2).sum().backward()
    assert x.grad is first and t.grad is t_first
    assert x.grad._version[0] - version == t.grad._version - t_version == 1
    np.testing.assert_array_equal(first.numpy(), t_first.numpy())
