"""Layers, initialisers and gradient utilities against torch.nn (float64, copied weights)."""
import math

import numpy as np
import pytest

import genesis
from genesis import nn
from genesis.nn import init

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)


def _pair(arr, requires_grad=True):
    """The same float64 data as a genesis and a torch tensor."""
    g = genesis.tensor(arr.copy(), dtype=genesis.float64, requires_grad=requires_grad)
    t = torch.tensor(arr.copy(), dtype=torch.float64, requires_grad=requires_grad)
    return g, t


def _copy_params(g_mod, t_mod):
    """Copy torch's parameters into the genesis module (same names) and cast both to float64."""
    g_mod.double()
    t_mod.double()
    sd = {k: genesis.tensor(v.detach().numpy().copy()) for k, v in t_mod.state_dict().items()}
    g_mod.load_state_dict(sd)


def _check_module(g_mod, t_mod, *inputs, int_inputs=()):
    """Forward and every gradient (inputs and parameters) agree with torch."""
    _copy_params(g_mod, t_mod)
    g_in, t_in = zip(*[_pair(a) for a in inputs]) if inputs else ((), ())
    g_extra = [genesis.tensor(a) for a in int_inputs]
    t_extra = [torch.tensor(a) for a in int_inputs]
    g_out = g_mod(*g_in, *g_extra)
    t_out = t_mod(*t_in, *t_extra)
    np.testing.assert_allclose(g_out._array, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = RNG.standard_normal(tuple(t_out.shape))
    (g_out * genesis.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for g, t in zip(g_in, t_in):
        np.testing.assert_allclose(g.grad._array, t.grad.numpy(), rtol=1e-10, atol=1e-12)
    t_params = dict(t_mod.named_parameters())
    for name, p in g_mod.named_parameters():
        tg = t_params[name].grad
        np.testing.assert_allclose(p.grad._array, tg.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    _check_module(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias),
                  RNG.standard_normal((2, 4, 5)))


def test_embedding_matches_torch_with_padding():
    idx = np.array([[0, 2, 1], [2, 2, 3]])
    g, t = nn.Embedding(4, 3, padding_idx=2), torch.nn.Embedding(4, 3, padding_idx=2)
    _check_module(g, t, int_inputs=[idx])
    assert g.weight.grad._array[2].tolist() == [0.0, 0.0, 0.0]


def test_embedding_init_and_from_pretrained():
    genesis.manual_seed(0)
    e = nn.Embedding(2000, 16, padding_idx=-1)
    assert e.padding_idx == 1999 and not e.weight._array[1999].any()
    w = e.weight._array[:1999]
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    pre = nn.Embedding.from_pretrained(genesis.ones(3, 2))
    assert not pre.weight.requires_grad and pre(genesis.tensor([1])).tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_layer_norm_matches_torch(affine, bias):
    _check_module(nn.LayerNorm((3, 4), eps=1e-6, elementwise_affine=affine, bias=bias),
                  torch.nn.LayerNorm((3, 4), eps=1e-6, elementwise_affine=affine, bias=bias),
                  RNG.standard_normal((2, 3, 4)))


@pytest.mark.parametrize("eps", [None, 1e-5])
def test_rms_norm_matches_torch(eps):
    _check_module(nn.RMSNorm(6, eps=eps), torch.nn.RMSNorm(6, eps=eps),
                  RNG.standard_normal((3, 6)))


@pytest.mark.parametrize("g_mod,t_mod", [
    (nn.ReLU(), torch.nn.ReLU()), (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU("tanh")), (nn.SiLU(), torch.nn.SiLU()),
    (nn.Tanh(), torch.nn.Tanh()), (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)), (nn.LogSoftmax(-1), torch.nn.LogSoftmax(-1))],
    ids=lambda m: repr(m))
def test_activations_match_torch(g_mod, t_mod):
    _check_module(g_mod, t_mod, RNG.standard_normal((3, 5)))


@pytest.mark.parametrize("kwargs", [dict(), dict(reduction="sum"), dict(reduction="none"),
                                    dict(ignore_index=1), dict(label_smoothing=0.1),
                                    dict(weight=[0.5, 1.0, 2.0, 1.5])], ids=str)
def test_cross_entropy_loss_matches_torch(kwargs):
    tkw = dict(kwargs)
    gkw = dict(kwargs)
    if "weight" in kwargs:
        tkw["weight"] = torch.tensor(kwargs["weight"], dtype=torch.float64)
        gkw["weight"] = genesis.tensor(kwargs["weight"], dtype=genesis.float64)
    target = np.array([0, 1, 3, 1, 2])
    _check_module(nn.CrossEntropyLoss(**gkw), torch.nn.CrossEntropyLoss(**tkw),
                  RNG.standard_normal((5, 4)), int_inputs=[target])


def test_cross_entropy_weight_is_a_buffer():
    loss = nn.CrossEntropyLoss(weight=genesis.ones(3))
    assert "weight" in dict(loss.named_buffers()) and "weight" in loss.state_dict()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction):
    g_in, t_in = _pair(RNG.standard_normal((4, 3)))
    target = RNG.standard_normal((4, 3))
    g = nn.MSELoss(reduction)(g_in, genesis.tensor(target))
    t = torch.nn.MSELoss(reduction=reduction)(t_in, torch.tensor(target))
    np.testing.assert_allclose(g._array, t.detach().numpy(), rtol=1e-12)
    g.sum().backward()
    t.sum().backward()
    np.testing.assert_allclose(g_in.grad._array, t_in.grad.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss("avg")


def test_dropout_statistics_and_modes():
    genesis.manual_seed(3)
    x = genesis.ones(20000, dtype=genesis.float64)
    out = nn.Dropout(0.25)(x)._array
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / 0.75], rtol=1e-15)
    assert abs((out == 0).mean() - 0.25) < 0.02
    d = nn.Dropout(0.5).eval()
    assert d(x) is x or np.array_equal(d(x)._array, x._array)
    assert not nn.Dropout(1.0)(x)._array.any()
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


# --------------------------------------------------------------------------- initialisation
def test_linear_default_init_matches_torch_distribution():
    genesis.manual_seed(0)
    torch.manual_seed(0)
    g, t = nn.Linear(256, 128), torch.nn.Linear(256, 128)
    bound = 1 / math.sqrt(256)
    for gp, tp in ((g.weight, t.weight), (g.bias, t.bias)):
        a, b = gp._array, tp.detach().numpy()
        assert np.abs(a).max() <= bound and np.abs(b).max() <= bound
        assert abs(a.std() - b.std()) < 0.1 * b.std()
    assert abs(g.weight._array.std() - bound / math.sqrt(3)) < 0.01 * bound


def test_init_respects_manual_seed():
    w1, w2 = genesis.empty(4, 5), genesis.empty(4, 5)
    for fn in (init.normal_, init.uniform_, init.xavier_uniform_, init.xavier_normal_,
               init.kaiming_uniform_, init.kaiming_normal_, init.trunc_normal_):
        genesis.manual_seed(7)
        fn(w1)
        genesis.manual_seed(7)
        fn(w2)
        assert np.array_equal(w1._array, w2._array), fn.__name__
    genesis.manual_seed(7)
    a = nn.Linear(3, 3).weight._array.copy()
    genesis.manual_seed(7)
    assert np.array_equal(nn.Linear(3, 3).weight._array, a)


@pytest.mark.parametrize("name,kwargs,expected_std", [
    ("xavier_uniform_", dict(gain=2.0), 2.0 * math.sqrt(2.0 / (300 + 200))),
    ("xavier_normal_", dict(), math.sqrt(2.0 / (300 + 200))),
    ("kaiming_uniform_", dict(nonlinearity="relu"), math.sqrt(2.0) / math.sqrt(300)),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2.0 / 200)),
    ("normal_", dict(std=0.02), 0.02)])
def test_init_standard_deviations(name, kwargs, expected_std):
    genesis.manual_seed(0)
    w = getattr(init, name)(genesis.empty(200, 300, dtype=genesis.float64), **kwargs)
    assert abs(w._array.std() - expected_std) < 0.02 * expected_std
    assert abs(w._array.mean()) < 0.02 * expected_std


def test_trunc_normal_matches_torch_moments():
    genesis.manual_seed(0)
    torch.manual_seed(0)
    for mean, std, a, b in ((0.0, 1.0, -2.0, 2.0), (0.5, 2.0, 0.0, 1.5), (0.0, 0.02, -0.04, 0.04)):
        g = init.trunc_normal_(genesis.empty(100000, dtype=genesis.float64), mean, std, a, b)
        t = torch.nn.init.trunc_normal_(torch.empty(100000, dtype=torch.float64), mean, std, a, b)
        assert g._array.min() >= a and g._array.max() <= b
        assert abs(g._array.mean() - t.numpy().mean()) < 0.015 * std
        assert abs(g._array.std() - t.numpy().std()) < 0.015 * std


def test_constant_fills_and_gain():
    w = genesis.empty(2, 3)
    assert init.ones_(w).tolist() == [[1.0] * 3] * 2
    assert init.zeros_(w).tolist() == [[0.0] * 3] * 2
    assert init.constant_(w, 0.5).tolist() == [[0.5] * 3] * 2
    for nl, param in (("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                      ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)):
        assert init.calculate_gain(nl, param) == pytest.approx(
            torch.nn.init.calculate_gain(nl, param))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(genesis.empty(3))


# --------------------------------------------------------------------------- gradient utilities
def _grads_pair():
    shapes = [(3, 4), (5,), (2, 2)]
    arrays = [RNG.standard_normal(s) * 3 for s in shapes]
    gp = [nn.Parameter(genesis.zeros(*s, dtype=genesis.float64)) for s in shapes]
    tp = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for g, t, a in zip(gp, tp, arrays):
        g.grad = genesis.tensor(a.copy())
        t.grad = torch.tensor(a.copy())
    return gp, tp


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1000.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    gp, tp = _grads_pair()
    g_total = nn.utils.clip_grad_norm_(gp, max_norm, norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type)
    assert isinstance(g_total, genesis.Tensor) and g_total.ndim == 0
    np.testing.assert_allclose(g_total.item(), t_total.item(), rtol=1e-12)
    for g, t in zip(gp, tp):
        np.testing.assert_allclose(g.grad._array, t.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_clip_grad_norm_nonfinite_and_empty():
    p = nn.Parameter(genesis.zeros(2))
    p.grad = genesis.tensor([math.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    assert nn.utils.clip_grad_norm_([nn.Parameter(genesis.zeros(2))], 1.0).item() == 0.0


def test_clip_grad_value_and_vector_round_trip():
    gp, tp = _grads_pair()
    nn.utils.clip_grad_value_(gp, 0.7)
    torch.nn.utils.clip_grad_value_(tp, 0.7)
    for g, t in zip(gp, tp):
        np.testing.assert_array_equal(g.grad._array, t.grad.numpy())
    vec = nn.utils.parameters_to_vector(gp)
    assert tuple(vec.shape) == (12 + 5 + 4,)
    nn.utils.vector_to_parameters(genesis.arange(21, dtype=genesis.float64), gp)
    assert gp[1].tolist() == [12.0, 13.0, 14.0, 15.0, 16.0]
    with pytest.raises(ValueError, match="21 elements"):
        nn.utils.vector_to_parameters(genesis.zeros(3), gp)


def test_skip_init_leaves_parameters_untouched_and_draws_nothing():
    genesis.manual_seed(0)
    state = genesis.get_rng_state()
    with nn.init.skip_init():
        layer = nn.Linear(4, 3)
    assert not layer.weight.detach().numpy().any()
    assert genesis.get_rng_state().tolist() == state.tolist()
    nn.init.normal_(layer.weight)
    assert layer.weight.detach().numpy().any()
