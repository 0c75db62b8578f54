"""GradScaler: same scale trajectory, skipped steps and parameters as torch.amp.GradScaler."""
import math
import warnings

import numpy as np
import pytest

import genesis
from genesis import optim
from genesis.amp import GradScaler

torch = pytest.importorskip("torch")

# Per step: the gradient multiplier, inf/nan injected into the second parameter's gradient.
SCHEDULE = [1.0, 1.0, math.inf, 1.0, 1.0, 1.0, math.nan, 1.0, 1.0, 1.0, 1.0, -math.inf, 1.0]


def _run_genesis(w0, b0, growth_interval):
    w = genesis.tensor(w0, requires_grad=True)
    b = genesis.tensor(b0, requires_grad=True)
    opt = optim.SGD([w, b], lr=0.125)
    scaler = GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=growth_interval)
    scales = []
    for bad in SCHEDULE:
        opt.zero_grad()
        loss = ((w * w).sum() + (b * bad).sum()) if not math.isfinite(bad) else \
            ((w * w).sum() * bad + b.sum())
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return scales, w.detach().numpy(), b.detach().numpy(), scaler.state_dict()


def _run_torch(w0, b0, growth_interval):
    w = torch.tensor(w0, requires_grad=True)
    b = torch.tensor(b0, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=0.125)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=growth_interval)
    scales = []
    for bad in SCHEDULE:
        opt.zero_grad()
        loss = ((w * w).sum() + (b * bad).sum()) if not math.isfinite(bad) else \
            ((w * w).sum() * bad + b.sum())
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return scales, w.detach().numpy(), b.detach().numpy(), scaler.state_dict()


@pytest.mark.parametrize("growth_interval", [1, 3])
def test_scale_trajectory_and_parameters_match_torch(growth_interval):
    rng = np.random.default_rng(0)
    w0, b0 = rng.standard_normal(5).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    g_scales, g_w, g_b, g_state = _run_genesis(w0, b0, growth_interval)
    t_scales, t_w, t_b, t_state = _run_torch(w0, b0, growth_interval)
    assert g_scales == t_scales
    steps = list(zip(g_scales, g_scales[1:]))
    assert any(b > a for a, b in steps) and any(b < a for a, b in steps)  # grows and backs off
    np.testing.assert_array_equal(g_w, t_w)
    np.testing.assert_array_equal(g_b, t_b)
    assert g_state == t_state


def test_skipped_step_leaves_parameters_and_returns_none():
    w = genesis.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    scaler = GradScaler("cpu", init_scale=4.0)
    (w.sum() * math.inf).backward()
    assert scaler.step(opt) is None
    scaler.update()
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 2.0])
    assert scaler.get_scale() == 2.0


def test_unscale_then_clip_then_step():
    w = genesis.tensor([3.0, 4.0], requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    scaler = GradScaler("cpu", init_scale=1024.0)
    scaler.scale((w * w).sum() / 2).backward()
    scaler.unscale_(opt)
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 4.0])
    genesis.nn.utils.clip_grad_norm_([w], 1.0)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(w.detach().numpy(), [3.0 - 0.6, 4.0 - 0.8], rtol=1e-5)


def test_misuse_raises_like_torch():
    w = genesis.tensor([1.0], requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    scaler = GradScaler("cpu")
    with pytest.raises(RuntimeError, match="no inf checks"):
        scaler.update()
    scaler.scale(w.sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="Closure"):
        scaler.step(opt, closure=lambda: None)
    w16 = genesis.tensor([1.0], dtype=genesis.float16, requires_grad=True)
    w16.grad = genesis.tensor([1.0], dtype=genesis.float16)
    with pytest.raises(ValueError, match="float16"):
        GradScaler("cpu").unscale_(optim.SGD([w16], lr=1.0))
    with pytest.raises(ValueError, match="growth_factor"):
        GradScaler("cpu", growth_factor=1.0)


def test_state_dict_round_trip_and_disabled_scaler():
    a = GradScaler("cpu", init_scale=8.0, growth_interval=2)
    w = genesis.tensor([1.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        a.scale(w.sum()).backward()
        a.step(opt)
        a.update()
    b = GradScaler("cpu")
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict() == {
        "scale": 16.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2,
        "_growth_tracker": 1}
    off = GradScaler("cpu", enabled=False)
    assert off.state_dict() == {} and off.get_scale() == 1.0
    loss = w.sum()
    assert off.scale(loss) is loss
    with pytest.raises(RuntimeError, match="empty"):
        GradScaler("cpu").load_state_dict({})


def test_cuda_scaler_without_cuda_warns_and_disables():
    if genesis.cuda.is_available():
        pytest.skip("a GPU is present")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = GradScaler()
    assert not scaler.is_enabled()
    assert any("CUDA is not available" in str(w.message) for w in caught)
