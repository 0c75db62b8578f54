"""Small PyTorch habits: f-strings of 0-d tensors, genesis.load's torch.load keywords,
optimizer implementation flags."""
import numpy as np
import pytest

import genesis

FORMAT_VALUES = {"float": lambda lib: lib.tensor(3.14159), "int": lambda lib: lib.tensor(7),
                 "bool": lambda lib: lib.tensor(True), "vector": lambda lib: lib.tensor([1.0, 2.0]),
                 "float64": lambda lib: lib.tensor(-2.5, dtype=lib.float64)}
FORMAT_SPECS = [".4f", "", ">8", "d", "e", ".1%"]


def _format(lib, value, spec):
    try:
        return format(FORMAT_VALUES[value](lib), spec)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__


@pytest.mark.parametrize("spec", FORMAT_SPECS)
@pytest.mark.parametrize("value", sorted(FORMAT_VALUES))
def test_format_matches_torch(value, spec):
    torch = pytest.importorskip("torch")
    want = _format(torch, value, spec)
    got = _format(genesis, value, spec)
    if value == "vector" and spec == "":
        want = want.replace("torch", "genesis")  # str() of the tensor
    assert got == want


def test_format_hand_checked():
    loss = genesis.tensor(0.123456)
    assert f"{loss:.4f}" == "0.1235" and f"loss={loss:.2e}" == "loss=1.23e-01"
    assert f"{genesis.tensor(12):5d}" == "   12"
    v = genesis.tensor([1.0, 2.0])
    assert f"{v}" == str(v)
    with pytest.raises(TypeError):
        f"{v:.4f}"


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "w.safetensors"
    genesis.save({"w": genesis.arange(4.0)}, path)
    return path


@pytest.mark.parametrize("kwargs", [dict(), dict(weights_only=True), dict(weights_only=None),
                                    dict(map_location="cpu", weights_only=True),
                                    dict(map_location=genesis.device("cpu"))])
def test_load_accepts_torch_load_keywords(saved, kwargs):
    assert genesis.load(saved, **kwargs)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    with open(saved, "rb") as f:
        assert genesis.load(f, **kwargs)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_load_refuses_unpickling(saved):
    with pytest.raises(ValueError, match="weights_only=False.*never"):
        genesis.load(saved, weights_only=False)
    with pytest.raises(ValueError, match="pickle_module"):
        genesis.load(saved, pickle_module=object())
    with pytest.raises(TypeError, match="map_location"):
        genesis.load(saved, map_location={"cuda:0": "cpu"})
    with pytest.raises(TypeError, match="map_location"):
        genesis.load(saved, map_location=lambda storage, loc: storage)


OPTIMIZERS = {"SGD": dict(lr=0.1, momentum=0.9), "Adam": dict(lr=0.1), "AdamW": dict(lr=0.1)}
FLAGS = {"SGD": ["foreach", "fused", "differentiable"],
         "Adam": ["foreach", "fused", "capturable", "differentiable"],
         "AdamW": ["foreach", "fused", "capturable", "differentiable"]}


def _step(name, **flags):
    w = genesis.nn.Parameter(genesis.tensor([1.0, -2.0]))
    opt = getattr(genesis.optim, name)([w], **OPTIMIZERS[name], **flags)
    (w * w).sum().backward()
    opt.step()
    return w.tolist(), opt


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_flags_false_or_none_work(name):
    want, _ = _step(name)
    for flag in FLAGS[name]:
        for value in (False, None):
            got, opt = _step(name, **{flag: value})
            assert got == want
            assert opt.param_groups[0][flag] == value


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_flags_true_raise(name):
    for flag in FLAGS[name]:
        with pytest.raises(ValueError, match=f"{name}: {flag}=True is not supported"):
            _step(name, **{flag: True})


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_param_group_keys_match_torch(name):
    torch = pytest.importorskip("torch")
    _, opt = _step(name)
    t_opt = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))], **OPTIMIZERS[name])
    assert set(opt.param_groups[0]) == set(t_opt.param_groups[0])
    t_state = t_opt.state_dict()["param_groups"][0]
    g_state = opt.state_dict()["param_groups"][0]
    assert {k: g_state[k] for k in FLAGS[name]} == {k: t_state[k] for k in FLAGS[name]}


def test_torch_state_dict_with_flags_loads():
    torch = pytest.importorskip("torch")
    tw = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    t_opt = torch.optim.Adam([tw], lr=0.1)
    (tw * tw).sum().backward()
    t_opt.step()
    state = t_opt.state_dict()
    gw = genesis.nn.Parameter(genesis.tensor(tw.detach().numpy().copy()))
    g_opt = genesis.optim.Adam([gw], lr=0.1)
    g_state = {"param_groups": state["param_groups"],
               "state": {k: {n: (genesis.tensor(v.numpy()) if hasattr(v, "numpy") else v)
                             for n, v in s.items()} for k, s in state["state"].items()}}
    g_opt.load_state_dict(g_state)
    np.testing.assert_allclose(g_opt.state[gw]["exp_avg"].numpy(),
                               state["state"][0]["exp_avg"].numpy())
