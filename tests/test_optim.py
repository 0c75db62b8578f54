"""Optimizers: PyTorch trajectory parity (float64), state_dict round trips, errors."""
import itertools

import numpy as np
import pytest

import genesis
from genesis import optim
from genesis.nn import Parameter

torch = pytest.importorskip("torch")

STEPS = 60
SHAPES = [(3, 4), (5,), ()]


def _initial(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def _grad(k, i, p):
    """A deterministic bounded gradient: a pull towards 0.3 plus a step-dependent wiggle."""
    idx = np.arange(p.size, dtype=np.float64).reshape(p.shape)
    return np.asarray(0.8 * np.tanh(p - 0.3) + 0.5 * np.sin(3.0 * k + idx + i))


def _run_genesis(cls, kwargs, steps, params=None, opt=None):
    params = params or [Parameter(genesis.tensor(a, dtype=genesis.float64)) for a in _initial()]
    opt = opt or cls(params, **kwargs)
    for k in range(steps):
        for i, p in enumerate(params):
            p.grad = genesis.tensor(_grad(k, i, p._array))
        opt.step()
    return params, opt


def _run_torch(cls, kwargs, steps):
    params = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in _initial()]
    opt = cls(params, foreach=False, **kwargs)
    for k in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(_grad(k, i, p.detach().numpy()))
        opt.step()
    return params, opt


def _assert_match(g_params, t_params):
    for g, t in zip(g_params, t_params):
        np.testing.assert_allclose(g._array, t.detach().numpy(), rtol=0, atol=1e-9)


SGD_CASES = [dict(lr=0.05, momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
             for m, d, n, wd, mx in itertools.product((0.0, 0.9), (0.0, 0.5), (False, True),
                                                      (0.0, 0.1), (False, True))
             if not (n and (m == 0 or d != 0))]

ADAM_CASES = [dict(lr=0.02, betas=b, weight_decay=wd, amsgrad=a, maximize=mx)
              for b, wd, a, mx in itertools.product(((0.9, 0.999), (0.3, 0.95)), (0.0, 0.1),
                                                    (False, True), (False, True))]


@pytest.mark.parametrize("kwargs", SGD_CASES, ids=lambda k: "-".join(f"{a}={b}" for a, b in
                                                                    k.items()))
def test_sgd_matches_torch(kwargs):
    g, _ = _run_genesis(optim.SGD, kwargs, STEPS)
    t, _ = _run_torch(torch.optim.SGD, kwargs, STEPS)
    _assert_match(g, t)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("kwargs", ADAM_CASES, ids=lambda k: "-".join(f"{a}={b}" for a, b in
                                                                     k.items()))
def test_adam_matches_torch(name, kwargs):
    g, _ = _run_genesis(getattr(optim, name), kwargs, STEPS)
    t, _ = _run_torch(getattr(torch.optim, name), kwargs, STEPS)
    _assert_match(g, t)


def test_defaults_match_torch():
    p = [torch.zeros(1, requires_grad=True)]
    q = [Parameter(genesis.zeros(1))]
    for name in ("SGD", "Adam", "AdamW"):
        tdef = getattr(torch.optim, name)(p).defaults
        gdef = getattr(optim, name)(q).defaults
        for key, value in gdef.items():
            assert tdef[key] == value, (name, key)


def test_param_groups_with_own_lr_match_torch():
    init = _initial()
    gp = [Parameter(genesis.tensor(a, dtype=genesis.float64)) for a in init]
    tp = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in init]
    gopt = optim.Adam([{"params": gp[:2]}, {"params": gp[2:], "lr": 0.1, "amsgrad": True}],
                      lr=0.01)
    topt = torch.optim.Adam([{"params": tp[:2]}, {"params": tp[2:], "lr": 0.1,
                                                  "amsgrad": True}], lr=0.01, foreach=False)
    for k in range(STEPS):
        for i, (g, t) in enumerate(zip(gp, tp)):
            g.grad = genesis.tensor(_grad(k, i, g._array))
            t.grad = torch.from_numpy(_grad(k, i, t.detach().numpy()))
        gopt.step()
        topt.step()
    _assert_match(gp, tp)


def test_training_loop_with_autograd_matches_torch():
    """A real forward/backward through genesis ops, optimised by Adam, tracks torch."""
    rng = np.random.default_rng(1)
    w0, x, y = rng.standard_normal((4, 3)), rng.standard_normal((16, 4)), rng.standard_normal(16)
    gw = Parameter(genesis.tensor(w0))
    tw = torch.tensor(w0, requires_grad=True)
    gopt, topt = optim.AdamW([gw], lr=0.05), torch.optim.AdamW([tw], lr=0.05, foreach=False)
    gx, gy, tx, ty = genesis.tensor(x), genesis.tensor(y), torch.tensor(x), torch.tensor(y)
    for _ in range(50):
        gopt.zero_grad()
        topt.zero_grad()
        gloss = ((genesis.tanh(gx @ gw).sum(dim=1) - gy) ** 2).mean()
        tloss = ((torch.tanh(tx @ tw).sum(dim=1) - ty) ** 2).mean()
        gloss.backward()
        tloss.backward()
        gopt.step()
        topt.step()
    np.testing.assert_allclose(gw._array, tw.detach().numpy(), rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- state dicts
RESUME_CASES = [(optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
                (optim.Adam, dict(lr=0.02, amsgrad=True, weight_decay=0.1)),
                (optim.AdamW, dict(lr=0.02, betas=(0.8, 0.99)))]


@pytest.mark.parametrize("cls,kwargs", RESUME_CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_state_dict_resume_is_bit_for_bit(cls, kwargs, tmp_path):
    full, _ = _run_genesis(cls, kwargs, 40)
    params, opt = _run_genesis(cls, kwargs, 25)
    path = tmp_path / "ckpt.safetensors"
    genesis.save({"params": params, "optimizer": opt.state_dict()}, path)
    loaded = genesis.load(path)
    params2 = [Parameter(genesis.tensor(p.numpy(force=True))) for p in loaded["params"]]
    opt2 = cls(params2, **kwargs)
    opt2.load_state_dict(loaded["optimizer"])
    for k in range(25, 40):
        for i, p in enumerate(params2):
            p.grad = genesis.tensor(_grad(k, i, p._array))
        opt2.step()
    for a, b in zip(full, params2):
        assert np.array_equal(a._array, b._array)


def test_state_dict_format_matches_torch():
    g, gopt = _run_genesis(optim.Adam, dict(lr=0.01, amsgrad=True), 3)
    t, topt = _run_torch(torch.optim.Adam, dict(lr=0.01, amsgrad=True), 3)
    gsd, tsd = gopt.state_dict(), topt.state_dict()
    assert set(gsd) == set(tsd) == {"state", "param_groups"}
    assert list(gsd["state"]) == list(tsd["state"]) == [0, 1, 2]
    assert set(gsd["state"][0]) == set(tsd["state"][0])
    assert gsd["state"][0]["step"] == int(tsd["state"][0]["step"].item())
    assert gsd["param_groups"][0]["params"] == tsd["param_groups"][0]["params"]
    assert set(gsd["param_groups"][0]) <= set(tsd["param_groups"][0])
    np.testing.assert_allclose(gsd["state"][1]["exp_avg_sq"].numpy(),
                               tsd["state"][1]["exp_avg_sq"].numpy(), rtol=0, atol=1e-12)


def test_sgd_without_momentum_keeps_no_state_like_torch():
    _, gopt = _run_genesis(optim.SGD, dict(lr=0.1), 2)
    _, topt = _run_torch(torch.optim.SGD, dict(lr=0.1), 2)
    assert gopt.state_dict()["state"] == topt.state_dict()["state"] == {}
    _, gopt = _run_genesis(optim.SGD, dict(lr=0.1, momentum=0.5), 2)
    _, topt = _run_torch(torch.optim.SGD, dict(lr=0.1, momentum=0.5), 2)
    assert set(gopt.state_dict()["state"][2]) == set(topt.state_dict()["state"][2])


def test_state_dict_types_survive_save_load(tmp_path):
    params, opt = _run_genesis(optim.Adam, dict(lr=0.01), 2)
    genesis.save(opt.state_dict(), tmp_path / "o.st")
    sd = genesis.load(tmp_path / "o.st")
    assert list(sd["state"]) == [0, 1, 2] and all(isinstance(k, int) for k in sd["state"])
    assert type(sd["state"][0]["step"]) is int and sd["state"][0]["step"] == 2
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sd["param_groups"][0]["amsgrad"] is False


def test_load_state_dict_casts_to_parameter_dtype():
    params, opt = _run_genesis(optim.Adam, dict(lr=0.01), 2)
    sd = opt.state_dict()
    p32 = [Parameter(genesis.zeros(*s, dtype=genesis.float32)) for s in SHAPES]
    opt32 = optim.Adam(p32, lr=0.01)
    opt32.load_state_dict(sd)
    assert opt32.state[p32[0]]["exp_avg"].dtype is genesis.float32
    assert opt32.state[p32[0]]["exp_avg"]._array is not opt.state[params[0]]["exp_avg"]._array


def test_load_state_dict_mismatch_errors():
    _, opt = _run_genesis(optim.SGD, dict(lr=0.1, momentum=0.9), 1)
    other = optim.SGD([Parameter(genesis.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="parameter group 0 of 3 parameters"):
        other.load_state_dict(opt.state_dict())
    two = optim.SGD([{"params": [Parameter(genesis.zeros(2))]},
                     {"params": [Parameter(genesis.zeros(2))]}], lr=0.1)
    with pytest.raises(ValueError, match="2 parameter groups"):
        opt.load_state_dict(two.state_dict())


# --------------------------------------------------------------------------- base behaviour
def test_zero_grad_and_skipped_params():
    a, b = Parameter(genesis.ones(2)), Parameter(genesis.ones(2))
    opt = optim.SGD([a, b], lr=0.5)
    a.grad = genesis.ones(2)
    opt.step()
    assert a.tolist() == [0.5, 0.5] and b.tolist() == [1.0, 1.0]
    assert b not in opt.state
    opt.zero_grad(set_to_none=False)
    assert a.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert a.grad is None


def test_step_with_closure_and_version_bump():
    p = Parameter(genesis.tensor([1.0, 2.0]))
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    before = p._version[0]
    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    assert p._version[0] == before + 1
    np.testing.assert_allclose(p._array, [0.8, 1.6])


def test_add_param_group_and_errors():
    a, b = Parameter(genesis.ones(2)), Parameter(genesis.ones(2))
    opt = optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        opt.add_param_group({"params": {Parameter(genesis.ones(1))}})
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([a * 2], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.Adam([a], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([a], lr=0.1, nesterov=True)


def test_float32_and_bfloat16_parameters_update_in_their_dtype():
    for dt in (genesis.float32, genesis.bfloat16):
        p = Parameter(genesis.ones(4, dtype=dt))
        opt = optim.AdamW([p], lr=0.1)
        p.grad = genesis.ones(4, dtype=dt)
        opt.step()
        assert p.dtype is dt and opt.state[p]["exp_avg"].dtype is dt
        assert np.allclose(p._array.astype(np.float32), 1 - 0.1 * 0.01 - 0.1, atol=1e-2)


def _step_both(gopt, topt, gp, tp, steps):
    """``steps`` optimizer steps on both sides with the same gradients (``_grad``)."""
    for k in range(steps):
        for i, (g, t) in enumerate(zip(gp, tp)):
            g.grad = genesis.tensor(_grad(k, i, g._array))
            t.grad = torch.from_numpy(_grad(k, i, t.detach().numpy()))
        gopt.step()
        topt.step()


@pytest.mark.parametrize("cls, kwargs", [
    ("AdamW", dict(lr=0.02, weight_decay=0.1)),
    ("Adam", dict(lr=0.02, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5, maximize=True)),
])
def test_blocked_multithreaded_update_of_a_large_parameter_matches_torch(cls, kwargs,
                                                                          monkeypatch):
    """A parameter spanning many blocks, updated by two threads, tracks PyTorch as tightly."""
    from genesis.backends import parallel
    from genesis.optim import _kernels
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 1 << 15)
    assert 300_001 > max(parallel.MIN_PARALLEL, 2 * _kernels.BLOCK)
    init = np.random.default_rng(3).standard_normal(300_001)
    before = parallel.num_threads()
    parallel.set_num_threads(2)
    try:
        gp = Parameter(genesis.tensor(init))
        gopt = getattr(optim, cls)([gp], **kwargs)
        tp = torch.tensor(init, requires_grad=True)
        topt = getattr(torch.optim, cls)([tp], foreach=False, **kwargs)
        for k in range(5):
            gp.grad = genesis.tensor(_grad(k, 0, gp._array))
            tp.grad = torch.from_numpy(_grad(k, 0, tp.detach().numpy()))
            gopt.step()
            topt.step()
    finally:
        parallel.set_num_threads(before)
    np.testing.assert_allclose(gp._array, tp.detach().numpy(), rtol=0, atol=1e-9)


@pytest.fixture
def two_threads_small_blocks(monkeypatch):
    """Two pool threads, and parallel splits from a few blocks on (so small tests use them)."""
    from genesis.backends import parallel
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 1 << 15)
    before = parallel.num_threads()
    parallel.set_num_threads(2)
    yield
    parallel.set_num_threads(before)


@pytest.mark.parametrize("cls, kwargs", [
    ("AdamW", dict(lr=0.02, weight_decay=0.1)),
    ("Adam", dict(lr=0.02, amsgrad=True, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
])
def test_one_step_splits_the_blocks_of_all_parameters_and_matches_torch(
        cls, kwargs, two_threads_small_blocks):
    """Large, small, scalar and empty parameters in two groups, updated in one threaded pass."""
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(s) for s in [(70_001,), (3, 5), (), (0, 4), (40, 900), (7,)]]
    gp = [Parameter(genesis.tensor(a)) for a in init]
    tp = [torch.tensor(a, requires_grad=True) for a in init]
    gopt = getattr(optim, cls)([{"params": gp[:3]}, {"params": gp[3:], "lr": 0.01}], **kwargs)
    topt = getattr(torch.optim, cls)([{"params": tp[:3]}, {"params": tp[3:], "lr": 0.01}],
                                     foreach=False, **kwargs)
    _step_both(gopt, topt, gp, tp, 5)
    _assert_match(gp, tp)


def test_parameters_sharing_memory_are_updated_in_turn_like_torch(two_threads_small_blocks):
    """Overlapping parameters see each other's updates in parameter order, as in PyTorch
    (with decoupled weight decay the order changes the result)."""
    base = np.random.default_rng(6).standard_normal(1_000_000)
    storage = genesis.tensor(base)
    gp = [Parameter(storage[:600_000]), Parameter(storage[400_000:])]
    assert np.shares_memory(gp[0]._array, gp[1]._array)
    tbase = torch.tensor(base)
    tp = [tbase[:600_000].detach().requires_grad_(), tbase[400_000:].detach().requires_grad_()]
    gopt = optim.AdamW(gp, lr=0.05, weight_decay=0.5)
    topt = torch.optim.AdamW(tp, lr=0.05, weight_decay=0.5, foreach=False)
    _step_both(gopt, topt, gp, tp, 3)
    np.testing.assert_allclose(storage._array, tbase.numpy(), rtol=0, atol=1e-9)


def test_a_bad_gradient_stops_the_step_after_the_earlier_parameters_updated():
    """Parameters before the faulty one are updated (state and values agree), as in PyTorch."""
    a, b = Parameter(genesis.ones(3)), Parameter(genesis.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = genesis.ones(3), genesis.ones(5)
    with pytest.raises(RuntimeError, match="does not match"):
        opt.step()
    assert opt.state[a]["step"] == 1 and b not in opt.state
    np.testing.assert_allclose(a._array, [0.9] * 3, rtol=1e-6)
    np.testing.assert_array_equal(b._array, [1.0, 1.0])
