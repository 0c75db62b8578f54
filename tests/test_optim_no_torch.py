"""Optimizers without torch: updates checked against values worked out by hand."""
import math

import numpy as np
import pytest

import genesis
from genesis import optim

EPS = 1e-8


def _param(values):
    return genesis.nn.Parameter(genesis.tensor(values, dtype=genesis.float64))


def _steps(opt, w, grads):
    for g in grads:
        w.grad = genesis.tensor(g, dtype=genesis.float64)
        opt.step()
    return np.array(w.tolist())


def test_sgd_plain_step_from_autograd():
    w = _param([1.0, -2.0])
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()          # grad = 2w = [2, -4]
    opt.step()
    np.testing.assert_allclose(w.tolist(), [0.8, -1.6], rtol=1e-15)


@pytest.mark.parametrize("kwargs,total", [
    (dict(momentum=0.9), 0.1 + 0.1 * 1.9),                       # buf: g, then 0.9g + g
    (dict(momentum=0.9, nesterov=True), 0.1 * 1.9 + 0.1 * 2.71),   # g + 0.9 * buf
    (dict(momentum=0.9, dampening=0.5), 0.1 + 0.1 * 1.4),        # buf: g, then 0.9g + 0.5g
])
def test_sgd_momentum_variants_two_steps(kwargs, total):
    g = [1.0, -1.0]
    w = _param([0.0, 0.0])
    got = _steps(optim.SGD([w], lr=0.1, **kwargs), w, [g, g])
    np.testing.assert_allclose(got, [-total, total], rtol=1e-14)


def test_sgd_weight_decay_and_maximize():
    w = _param([1.0])
    np.testing.assert_allclose(_steps(optim.SGD([w], lr=0.1, weight_decay=0.1), w, [[0.0]]),
                               [0.99], rtol=1e-15)
    w = _param([1.0])
    np.testing.assert_allclose(_steps(optim.SGD([w], lr=0.1, maximize=True), w, [[2.0]]),
                               [1.2], rtol=1e-15)


def test_adam_constant_gradient_moves_lr_per_step():
    # With a constant gradient the bias-corrected moments are g and g^2, so each step is
    # lr * g / (|g| + eps).
    w = _param([1.0, 1.0])
    got = _steps(optim.Adam([w], lr=0.1), w, [[2.0, -0.5]] * 3)
    np.testing.assert_allclose(got, [1 - 3 * 0.1 * 2 / (2 + EPS), 1 + 3 * 0.1 * 0.5 / (0.5 + EPS)],
                               rtol=1e-14)


def test_adam_second_step_by_hand():
    b1, b2, lr = 0.9, 0.999, 0.1
    w = _param([0.0])
    got = _steps(optim.Adam([w], lr=lr), w, [[2.0], [0.0]])
    m1, v1 = (1 - b1) * 2.0, (1 - b2) * 4.0
    step1 = lr * (m1 / (1 - b1)) / (math.sqrt(v1 / (1 - b2)) + EPS)
    m2, v2 = b1 * m1, b2 * v1
    step2 = lr / (1 - b1 ** 2) * m2 / (math.sqrt(v2) / math.sqrt(1 - b2 ** 2) + EPS)
    np.testing.assert_allclose(got, [-step1 - step2], rtol=1e-14)


def test_adam_amsgrad_keeps_the_largest_second_moment():
    b1, b2, lr = 0.9, 0.999, 0.1
    w = _param([0.0])
    got = _steps(optim.Adam([w], lr=lr, amsgrad=True), w, [[2.0], [0.0]])
    v1 = (1 - b2) * 4.0
    step1 = lr * 2.0 / (2.0 + EPS)
    m2, v_max = b1 * (1 - b1) * 2.0, max(v1, b2 * v1)
    step2 = lr / (1 - b1 ** 2) * m2 / (math.sqrt(v_max) / math.sqrt(1 - b2 ** 2) + EPS)
    np.testing.assert_allclose(got, [-step1 - step2], rtol=1e-14)


def test_adam_l2_versus_adamw_decoupled_decay():
    w = _param([1.0])
    # L2: the decay enters the gradient (0 + 0.5 * 1), so the first step is lr * sign
    np.testing.assert_allclose(_steps(optim.Adam([w], lr=0.1, weight_decay=0.5), w, [[0.0]]),
                               [1 - 0.1 * 0.5 / (0.5 + EPS)], rtol=1e-14)
    w = _param([1.0])
    # decoupled: p *= 1 - lr * wd, and a zero gradient moves nothing else
    np.testing.assert_allclose(_steps(optim.AdamW([w], lr=0.1, weight_decay=0.5), w, [[0.0]]),
                               [0.95], rtol=1e-15)
    w = _param([1.0])
    np.testing.assert_allclose(_steps(optim.AdamW([w], lr=0.1, weight_decay=0.5), w, [[1.0]]),
                               [0.95 - 0.1 / (1 + EPS)], rtol=1e-14)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p, lr=0.1),
                                  lambda p: optim.AdamW(p, lr=0.1, amsgrad=True)])
def test_state_dict_resume_continues_exactly(make, tmp_path):
    grads = [[0.3, -1.0], [0.5, 0.25], [-0.7, 2.0], [1.0, 1.0]]
    w = _param([1.0, 2.0])
    opt = make([w])
    _steps(opt, w, grads[:2])
    genesis.save({"opt": opt.state_dict(), "w": w.detach()}, tmp_path / "ckpt.safetensors")
    straight = _steps(opt, w, grads[2:])
    ckpt = genesis.load(tmp_path / "ckpt.safetensors")
    w2 = _param(ckpt["w"].tolist())
    opt2 = make([w2])
    opt2.load_state_dict(ckpt["opt"])
    np.testing.assert_array_equal(_steps(opt2, w2, grads[2:]), straight)


def test_zero_grad_and_parameters_without_grad():
    a, b = _param([1.0]), _param([2.0])
    opt = optim.SGD([a, b], lr=0.5)
    a.grad = genesis.tensor([1.0], dtype=genesis.float64)
    opt.step()                                        # b has no grad: untouched
    assert a.tolist() == [0.5] and b.tolist() == [2.0]
    g = a.grad
    opt.zero_grad(set_to_none=False)
    assert g.tolist() == [0.0] and a.grad is g
    opt.zero_grad()
    assert a.grad is None


def test_param_groups_with_their_own_lr():
    a, b = _param([1.0]), _param([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = genesis.tensor([1.0], dtype=genesis.float64)
    b.grad = genesis.tensor([1.0], dtype=genesis.float64)
    opt.step()
    assert a.tolist() == [0.9] and b.tolist() == [0.5]


def test_optimizer_argument_errors():
    w = _param([1.0])
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([w], lr=-1)
    with pytest.raises(ValueError, match="beta"):
        optim.Adam([w], betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError):
        optim.SGD(w, lr=0.1)
