"""LR schedulers: step-by-step parity with torch.optim.lr_scheduler, state_dict resume."""
import math

import pytest

import genesis
from genesis import optim
from genesis.nn import Parameter
from genesis.optim import lr_scheduler as gsched

torch = pytest.importorskip("torch")
tsched = torch.optim.lr_scheduler

STEPS = 40


def _optimizers(kind="sgd"):
    """A genesis and a torch optimizer with two param groups (lr 0.1 and 0.02)."""
    gp = [Parameter(genesis.zeros(2)), Parameter(genesis.zeros(3))]
    tp = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    if kind == "sgd":
        g = optim.SGD([{"params": gp[:1]}, {"params": gp[1:], "lr": 0.02}], lr=0.1, momentum=0.9)
        t = torch.optim.SGD([{"params": tp[:1]}, {"params": tp[1:], "lr": 0.02}], lr=0.1,
                            momentum=0.9)
    else:
        g = optim.AdamW([{"params": gp[:1]}, {"params": gp[1:], "lr": 0.02}], lr=0.1)
        t = torch.optim.AdamW([{"params": tp[:1]}, {"params": tp[1:], "lr": 0.02}], lr=0.1)
    return g, t


def _lambda(step):
    return 0.95 ** step + 0.01 * step


# name -> (genesis factory, torch factory, optimizer kind, steps)
CASES = {
    "lambda": (lambda o: gsched.LambdaLR(o, _lambda), lambda o: tsched.LambdaLR(o, _lambda)),
    "lambda_per_group": (lambda o: gsched.LambdaLR(o, [_lambda, lambda s: 1 / (s + 1)]),
                         lambda o: tsched.LambdaLR(o, [_lambda, lambda s: 1 / (s + 1)])),
    "step": (lambda o: gsched.StepLR(o, 7, gamma=0.5), lambda o: tsched.StepLR(o, 7, gamma=0.5)),
    "multistep": (lambda o: gsched.MultiStepLR(o, [5, 12, 12, 30], gamma=0.3),
                  lambda o: tsched.MultiStepLR(o, [5, 12, 12, 30], gamma=0.3)),
    "exponential": (lambda o: gsched.ExponentialLR(o, 0.93),
                    lambda o: tsched.ExponentialLR(o, 0.93)),
    "cosine": (lambda o: gsched.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
               lambda o: tsched.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    "linear": (lambda o: gsched.LinearLR(o, start_factor=0.1, end_factor=0.8, total_iters=15),
               lambda o: tsched.LinearLR(o, start_factor=0.1, end_factor=0.8, total_iters=15)),
    "sequential": (
        lambda o: gsched.SequentialLR(o, [gsched.LinearLR(o, 0.01, 1.0, 5),
                                          gsched.CosineAnnealingLR(o, 20, 1e-4),
                                          gsched.ExponentialLR(o, 0.9)], milestones=[5, 25]),
        lambda o: tsched.SequentialLR(o, [tsched.LinearLR(o, 0.01, 1.0, 5),
                                          tsched.CosineAnnealingLR(o, 20, 1e-4),
                                          tsched.ExponentialLR(o, 0.9)], milestones=[5, 25])),
    "onecycle_cos": (lambda o: gsched.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=STEPS),
                     lambda o: tsched.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=STEPS)),
    "onecycle_linear_3phase": (
        lambda o: gsched.OneCycleLR(o, 0.8, epochs=4, steps_per_epoch=10, pct_start=0.25,
                                    anneal_strategy="linear", three_phase=True),
        lambda o: tsched.OneCycleLR(o, 0.8, epochs=4, steps_per_epoch=10, pct_start=0.25,
                                    anneal_strategy="linear", three_phase=True)),
}


def _lrs(opt):
    return [(g["lr"], g.get("momentum"), tuple(g["betas"]) if "betas" in g else None)
            for g in opt.param_groups]


def _assert_close(a, b):
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if v is None:
                assert u is None
            else:
                assert u == pytest.approx(v, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
@pytest.mark.parametrize("name", list(CASES))
def test_scheduler_matches_torch(name, kind):
    gopt, topt = _optimizers(kind)
    gfac, tfac = CASES[name]
    gs, ts = gfac(gopt), tfac(topt)
    _assert_close(_lrs(gopt), _lrs(topt))
    for _ in range(STEPS if name.startswith("onecycle") else STEPS - 1):
        gopt.step()
        topt.step()
        gs.step()
        ts.step()
        _assert_close(_lrs(gopt), _lrs(topt))
        assert gs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)


def test_cosine_recursive_form_beyond_t_max_matches_torch():
    gopt, topt = _optimizers()
    gs, ts = gsched.CosineAnnealingLR(gopt, T_max=4), tsched.CosineAnnealingLR(topt, T_max=4)
    for _ in range(25):
        topt.step()
        gs.step()
        ts.step()
        assert gs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)


def test_closed_form_epoch_in_sequential_restart():
    gopt, _ = _optimizers()
    s = gsched.StepLR(gopt, 3, gamma=0.5)
    s._update_lr(7)
    assert s.get_last_lr() == pytest.approx([0.1 * 0.25, 0.02 * 0.25])


@pytest.mark.parametrize("num_cycles,min_lr_ratio", [(0.5, 0.0), (0.5, 0.1), (1.5, 0.0)])
def test_warmup_cosine_matches_transformers(num_cycles, min_lr_ratio):
    transformers = pytest.importorskip("transformers")
    gopt, topt = _optimizers("adamw")
    gs = gsched.get_cosine_schedule_with_warmup(gopt, 5, 30, num_cycles=num_cycles,
                                                min_lr_ratio=min_lr_ratio)
    if min_lr_ratio:
        from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup
        ts = get_cosine_with_min_lr_schedule_with_warmup(topt, 5, 30, num_cycles=num_cycles,
                                                         min_lr_rate=min_lr_ratio)
    else:
        ts = transformers.get_cosine_schedule_with_warmup(topt, 5, 30, num_cycles=num_cycles)
    assert gs.get_last_lr() == pytest.approx(ts.get_last_lr(), abs=1e-15)
    for _ in range(35):
        topt.step()
        gs.step()
        ts.step()
        assert gs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", list(CASES) + ["warmup_cosine"])
def test_state_dict_resume_through_save_load(name, tmp_path):
    def make(opt):
        if name == "warmup_cosine":
            return gsched.get_cosine_schedule_with_warmup(opt, 4, STEPS, min_lr_ratio=0.05)
        return CASES[name][0](opt)

    gopt, _ = _optimizers("adamw")
    ref = make(gopt)
    history = []
    for _ in range(STEPS - 1):
        ref.step()
        history.append(_lrs(gopt))
    opt1, _ = _optimizers("adamw")
    s1 = make(opt1)
    for _ in range(13):
        s1.step()
    genesis.save({"optimizer": opt1.state_dict(), "scheduler": s1.state_dict()},
                 tmp_path / "sched.safetensors")
    loaded = genesis.load(tmp_path / "sched.safetensors")
    opt2, _ = _optimizers("adamw")
    s2 = make(opt2)
    opt2.load_state_dict(loaded["optimizer"])
    s2.load_state_dict(loaded["scheduler"])
    for k in range(13, STEPS - 1):
        s2.step()
        assert _lrs(opt2) == history[k]


def test_lambda_state_dict_skips_plain_functions():
    gopt, _ = _optimizers()
    sd = gsched.LambdaLR(gopt, lambda s: 1.0).state_dict()
    assert sd["lr_lambdas"] == [None, None] and "optimizer" not in sd


def test_scheduler_errors():
    gopt, _ = _optimizers()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        gsched.StepLR(object(), 3)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        gsched.LambdaLR(gopt, [_lambda])
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        gsched.LinearLR(gopt, start_factor=0)
    with pytest.raises(ValueError, match="total_steps OR"):
        gsched.OneCycleLR(gopt, 1.0)
    with pytest.raises(ValueError, match="one more than the number of milestones"):
        gsched.SequentialLR(gopt, [gsched.StepLR(gopt, 2)], milestones=[3])
    with pytest.raises(KeyError, match="initial_lr"):
        gsched.StepLR(optim.SGD([Parameter(genesis.zeros(1))], lr=0.1), 3, last_epoch=4)
    one = gsched.OneCycleLR(gopt, 1.0, total_steps=2)
    one.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        one.step()
        one.step()
    assert math.isfinite(one.get_last_lr()[0])
