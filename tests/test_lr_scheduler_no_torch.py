"""Learning-rate schedulers without torch: learning rates worked out by hand."""
import math

import numpy as np
import pytest

import genesis
from genesis.optim import SGD, lr_scheduler as sched

C = math.cos


def _opt(lr=1.0, momentum=0.0):
    return SGD([genesis.nn.Parameter(genesis.zeros(1))], lr=lr, momentum=momentum)


def _lrs(make, n, lr=1.0):
    opt = _opt(lr)
    s = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return out


HAND = {
    "step": (lambda o: sched.StepLR(o, step_size=2, gamma=0.1),
             [1, 1, 0.1, 0.1, 0.01, 0.01]),
    "multistep": (lambda o: sched.MultiStepLR(o, milestones=[1, 3], gamma=0.5),
                  [1, 0.5, 0.5, 0.25, 0.25]),
    "exponential": (lambda o: sched.ExponentialLR(o, gamma=0.5), [1, 0.5, 0.25, 0.125]),
    "lambda": (lambda o: sched.LambdaLR(o, lambda e: 1 / (e + 1)), [1, 1 / 2, 1 / 3, 1 / 4]),
    "cosine": (lambda o: sched.CosineAnnealingLR(o, T_max=4),
               [1, (1 + C(math.pi / 4)) / 2, 0.5, (1 + C(3 * math.pi / 4)) / 2, 0.0]),
    "cosine_eta_min": (lambda o: sched.CosineAnnealingLR(o, T_max=2, eta_min=0.5),
                       [1, 0.75, 0.5]),
    "linear": (lambda o: sched.LinearLR(o, start_factor=0.25, total_iters=3),
               [0.25, 0.5, 0.75, 1.0, 1.0]),
    "sequential": (lambda o: sched.SequentialLR(
        o, [sched.LinearLR(o, start_factor=0.5, total_iters=2), sched.ExponentialLR(o, 0.5)],
        milestones=[2]), [0.5, 0.75, 1.0, 0.5, 0.25]),
    "warmup_cosine": (lambda o: sched.get_cosine_schedule_with_warmup(o, 2, 10),
                      [0.0, 0.5, 1.0, (1 + C(math.pi / 8)) / 2, (1 + C(math.pi / 4)) / 2,
                       (1 + C(3 * math.pi / 8)) / 2, 0.5]),
    "warmup_cosine_floor": (lambda o: sched.get_cosine_schedule_with_warmup(
        o, 0, 2, min_lr_ratio=0.2), [1.0, 0.2 + 0.8 * 0.5, 0.2]),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_schedule_by_hand(name):
    make, want = HAND[name]
    np.testing.assert_allclose(_lrs(make, len(want)), want, rtol=1e-12, atol=1e-15)


def test_one_cycle_endpoints_and_momentum():
    opt = _opt(momentum=0.9)
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    lrs, moms = [], []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        s.step()
    # warm up from max_lr / div_factor over pct_start*total - 1 = 2 steps, peak at 1.0,
    # anneal to initial_lr / final_div_factor at the last step
    np.testing.assert_allclose(lrs[0], 1.0 / 25, rtol=1e-12)
    np.testing.assert_allclose(lrs[1], 1.0 / 25 + (1 - 1 / 25) * (1 - C(math.pi / 2)) / 2,
                               rtol=1e-12)
    assert max(lrs) == lrs[2] == pytest.approx(1.0)
    np.testing.assert_allclose(lrs[9], 1.0 / 25 / 1e4, rtol=1e-9)
    assert moms[0] == pytest.approx(0.95) and moms[2] == pytest.approx(0.85)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))


def test_multiple_param_groups_keep_their_ratio():
    opt = SGD([{"params": [genesis.nn.Parameter(genesis.zeros(1))]},
               {"params": [genesis.nn.Parameter(genesis.zeros(1))], "lr": 0.1}], lr=1.0)
    s = sched.StepLR(opt, step_size=1, gamma=0.5)
    opt.step()
    s.step()
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.05]
    assert s.get_last_lr() == [0.5, 0.05]


def test_state_dict_resume_by_hand(tmp_path):
    opt = _opt()
    s = sched.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(3):
        opt.step()
        s.step()
    state = s.state_dict()
    opt2 = _opt()
    s2 = sched.StepLR(opt2, step_size=2, gamma=0.1)
    s2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    opt2.step()
    s2.step()
    assert s2.last_epoch == 4
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.01)


def test_scheduler_argument_errors():
    with pytest.raises(TypeError, match="Optimizer"):
        sched.StepLR(object(), step_size=1)
    with pytest.raises(ValueError):
        sched.OneCycleLR(_opt(), max_lr=1.0, total_steps=0)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        sched.get_cosine_schedule_with_warmup(_opt(), 1, 10, min_lr_ratio=2.0)
