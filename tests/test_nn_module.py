"""Module semantics: registration, iteration, state_dict, modes, hooks, conversion, repr."""
import numpy as np
import pytest

import genesis
from genesis import nn, optim


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.register_buffer("running", genesis.zeros(4))
        self.register_buffer("cache", genesis.ones(2), persistent=False)
        self.scale = nn.Parameter(genesis.ones(1))
        self.not_state = 5

    def forward(self, x):
        return self.norm(self.fc(x)) * self.scale + self.running


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        x = self.blocks[0](x)
        return self.head(self.blocks[1](x[..., :3]))


def test_registration_and_iteration():
    b = Block()
    assert [n for n, _ in b.named_parameters()] == ["scale", "fc.weight", "fc.bias",
                                                   "norm.weight", "norm.bias"]
    assert [n for n, _ in b.named_buffers()] == ["running", "cache"]
    assert [n for n, _ in b.named_children()] == ["fc", "norm"]
    assert [n for n, _ in b.named_modules()] == ["", "fc", "norm"]
    assert len(list(b.parameters(recurse=False))) == 1
    assert b.not_state == 5 and "not_state" not in b._parameters
    assert isinstance(b.fc.weight, nn.Parameter) and b.fc.weight.requires_grad
    assert b.get_parameter("fc.bias") is b.fc.bias
    assert b.get_submodule("norm") is b.norm and b.get_buffer("running") is b.running


def test_reassignment_moves_between_kinds():
    b = Block()
    b.fc = None
    assert b.fc is None and "fc" in b._modules
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        b.scale = genesis.ones(1)
    b.running = genesis.full((4,), 2.0)
    assert b.running.tolist() == [2.0] * 4
    with pytest.raises(TypeError, match="as buffer 'running'"):
        b.running = 3
    b.extra = nn.Linear(1, 1)
    del b.extra
    assert not hasattr(b, "extra")
    with pytest.raises(KeyError, match="already exists"):
        b.register_buffer("scale", genesis.ones(1))
    with pytest.raises(KeyError, match='contain "\\."'):
        b.register_parameter("a.b", None)
    with pytest.raises(TypeError, match="genesis.nn.Parameter or None required"):
        b.register_parameter("w", genesis.ones(1))


def test_assign_before_init_errors():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(genesis.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()


def test_shared_parameters_deduplicated():
    a = nn.Linear(2, 2)
    seq = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.named_parameters(remove_duplicate=False))) == 4
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    tied = nn.Module()
    tied.emb = nn.Embedding(5, 3)
    tied.out = nn.Linear(3, 5, bias=False)
    tied.out.weight = tied.emb.weight
    assert len(list(tied.parameters())) == 1


def test_state_dict_keys_and_round_trip():
    genesis.manual_seed(0)
    net, other = Net(), Net()
    sd = net.state_dict()
    assert list(sd) == ["blocks.0.scale", "blocks.0.running", "blocks.0.fc.weight",
                        "blocks.0.fc.bias", "blocks.0.norm.weight", "blocks.0.norm.bias",
                        "blocks.1.scale", "blocks.1.running", "blocks.1.fc.weight",
                        "blocks.1.fc.bias", "blocks.1.norm.weight", "blocks.1.norm.bias",
                        "head.weight"]
    assert not sd["head.weight"].requires_grad
    assert net.state_dict(keep_vars=True)["head.weight"] is net.head.weight
    param = other.head.weight
    result = other.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert other.head.weight is param
    x = genesis.randn(2, 3)
    np.testing.assert_array_equal(net(x)._array, other(x)._array)


def test_load_state_dict_strict_errors_name_keys():
    net = Net()
    sd = net.state_dict()
    del sd["head.weight"]
    sd["head.bias"] = genesis.zeros(2)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    assert 'Missing key(s) in state_dict: "head.weight"' in msg
    assert 'Unexpected key(s) in state_dict: "head.bias"' in msg
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["head.weight"] and result.unexpected_keys == ["head.bias"]


def test_load_state_dict_shape_mismatch_names_both_shapes_and_changes_nothing():
    net = Net()
    before = net.blocks[0].fc.bias.tolist()
    sd = net.state_dict()
    sd = {k: (genesis.full(tuple(v.shape), 7.0) if v.dtype.is_floating_point else v)
          for k, v in sd.items()}
    sd["head.weight"] = genesis.zeros(3, 4)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for head.weight: copying a param "
                                               r"with shape \(3, 4\) from checkpoint, the shape "
                                               r"in current model is \(2, 4\)"):
            net.load_state_dict(sd, strict=strict)
    assert net.blocks[0].fc.bias.tolist() == before


def test_non_persistent_buffer_excluded_and_unexpected():
    b = Block()
    assert "cache" not in b.state_dict()
    sd = b.state_dict()
    sd["cache"] = genesis.ones(2)
    with pytest.raises(RuntimeError, match='Unexpected key.*"cache"'):
        b.load_state_dict(sd)


def test_load_state_dict_casts_and_assign():
    lin = nn.Linear(2, 2)
    sd = {"weight": genesis.ones(2, 2, dtype=genesis.float64), "bias": genesis.zeros(2)}
    lin.load_state_dict(sd)
    assert lin.weight.dtype is genesis.float32 and lin.weight.tolist() == [[1, 1], [1, 1]]
    lin.load_state_dict(sd, assign=True)
    assert lin.weight.dtype is genesis.float64 and isinstance(lin.weight, nn.Parameter)


def test_train_eval_changes_dropout():
    genesis.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5))
    x = genesis.ones(4, 8)
    assert m.training and m[1].training
    m.eval()
    assert not m.training and not m[1].training
    np.testing.assert_array_equal(m(x)._array, m(x)._array)
    m.train()
    a, b = m(x)._array, m(x)._array
    assert not np.array_equal(a, b)
    assert (a == 0).any()
    with pytest.raises(ValueError, match="boolean"):
        m.train("yes")


class Scale(nn.Module):
    def forward(self, x, scale=1.0):
        return x * scale


def test_forward_hooks_modify_and_remove():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out + 1)
    x = genesis.ones(1, 2)
    out = lin(x)
    np.testing.assert_allclose(out._array, lin.bias._array[None] + 1, rtol=1e-6)
    assert calls == [genesis.Size([1, 2])]
    h1.remove()
    h2.remove()
    h2.remove()
    np.testing.assert_allclose(lin(x)._array, (x @ lin.weight.T + lin.bias)._array, rtol=1e-6)
    scaler = Scale()
    with scaler.register_forward_pre_hook(lambda m, a, k: (a, {"scale": 3.0}), with_kwargs=True):
        with scaler.register_forward_hook(lambda m, a, k, o: o + k["scale"], with_kwargs=True):
            assert scaler(genesis.ones(1)).tolist() == [6.0]
    assert scaler(genesis.ones(1)).tolist() == [1.0]
    order = []
    lin.register_forward_hook(lambda *a: order.append(1))
    lin.register_forward_hook(lambda *a: order.append(0), prepend=True)
    lin(x)
    assert order == [0, 1]


def test_to_dtype_keeps_parameter_objects_for_optimizer():
    lin = nn.Linear(3, 2)
    opt = optim.SGD(lin.parameters(), lr=0.1)
    weight = lin.weight
    lin.weight.grad = genesis.ones(2, 3)
    lin.to(genesis.float64)
    assert lin.weight is weight and weight.dtype is genesis.float64
    assert weight.grad.dtype is genesis.float64
    opt.step()
    assert weight.dtype is genesis.float64
    lin.half()
    assert lin.bias.dtype is genesis.float16
    with pytest.raises(TypeError, match="floating point"):
        lin.to(genesis.int64)
    ids = nn.Module()
    ids.register_buffer("idx", genesis.arange(3))
    ids.double()
    assert ids.idx.dtype is genesis.int64


def test_zero_grad_requires_grad_apply():
    net = Net()
    net(genesis.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(float(abs(p.grad).sum()) == 0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 3


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and len(seq[:2]) == 2
    seq.append(nn.Tanh())
    seq.insert(0, nn.Identity())
    assert [type(m).__name__ for m in seq] == ["Identity", "Linear", "ReLU", "Linear", "Tanh"]
    del seq[0]
    assert list(seq._modules) == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match="out of range"):
        seq[7]
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml += [nn.ReLU()]
    ml.insert(0, nn.Tanh())
    assert [type(m).__name__ for m in ml] == ["Tanh", "Linear", "ReLU"]
    assert len(list(ml.parameters())) == 2
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.ReLU()
    assert list(md.keys()) == ["a", "b"] and "a" in md and len(md) == 2
    assert md.pop("b").__class__ is nn.ReLU
    x = genesis.randn(3)
    assert nn.Identity(54, unused="x")(x) is x


def test_repr_like_pytorch():
    torch = pytest.importorskip("torch")
    g = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.2), nn.LayerNorm(3),
                      nn.ModuleList([nn.Linear(3, 3) for _ in range(3)]), nn.GELU("tanh"),
                      nn.Embedding(4, 3, padding_idx=1), nn.Softmax(dim=-1), nn.SiLU(),
                      nn.CrossEntropyLoss(), nn.MSELoss())
    t = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                            torch.nn.LayerNorm(3),
                            torch.nn.ModuleList([torch.nn.Linear(3, 3) for _ in range(3)]),
                            torch.nn.GELU("tanh"), torch.nn.Embedding(4, 3, padding_idx=1),
                            torch.nn.Softmax(dim=-1), torch.nn.SiLU(),
                            torch.nn.CrossEntropyLoss(), torch.nn.MSELoss())
    assert repr(g) == repr(t)


def test_parameter_shares_data_and_deepcopies():
    import copy
    t = genesis.ones(3)
    p = nn.Parameter(t)
    t._array[0] = 5.0
    assert p.tolist() == [5.0, 1.0, 1.0] and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor([5., 1., 1.]")
    lin = nn.Linear(2, 2)
    lin.weight.grad = genesis.ones(2, 2)
    twin = copy.deepcopy(lin)
    assert isinstance(twin.weight, nn.Parameter) and twin.weight is not lin.weight
    assert np.array_equal(twin.weight._array, lin.weight._array)
    assert twin.weight.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    twin.weight._array[...] = 0
    assert lin.weight._array.any()


def test_missing_forward():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)
