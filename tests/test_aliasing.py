"""One storage, many aliases: every alias kind x every in-place op, compared with PyTorch.

Each case builds a base tensor and an alias of it, applies an in-place op to one of them, and
records the values of both (and of the NumPy array for ``from_numpy``), or the error raised.
The same code runs on genesis and on torch; the torch run is the oracle.
"""
import numpy as np
import pytest

import genesis
from tests.test_fake_device import fake_gpu  # noqa: F401  (fixture: a CuPy stand-in)

BASE = np.arange(6, dtype=np.float32).reshape(2, 3) + 1.0


def _alias_kinds():
    """name -> (make_base(lib, array), make_alias(lib, base, array))."""
    plain = lambda lib, arr: lib.tensor(arr.copy())  # noqa: E731
    return {
        "detach": (plain, lambda lib, x, arr: x.detach()),
        "data": (plain, lambda lib, x, arr: x.data),
        "from_numpy": (lambda lib, arr: lib.from_numpy(arr),
                       lambda lib, x, arr: lib.from_numpy(arr)),
        "index_row": (plain, lambda lib, x, arr: x[1]),
        "slice": (plain, lambda lib, x, arr: x[:, 1:]),
        "step_slice": (plain, lambda lib, x, arr: x[:, ::2]),
        "view": (plain, lambda lib, x, arr: x.view(-1)),
        "reshape": (plain, lambda lib, x, arr: x.reshape(3, 2)),
        "transpose": (plain, lambda lib, x, arr: x.t()),
        "unsqueeze": (plain, lambda lib, x, arr: x.unsqueeze(0)),
        "expand": (lambda lib, arr: lib.tensor(arr[:1].copy()),
                   lambda lib, x, arr: x.expand(4, 3)),
    }


def _ops():
    """name -> fn(lib, target) applying one in-place op to ``target``."""
    return {
        "add_": lambda lib, t: t.add_(1.5),
        "add_tensor_": lambda lib, t: t.add_(lib.ones(t.shape[-1:]) * 2),
        "mul_": lambda lib, t: t.mul_(-2.0),
        "div_": lambda lib, t: t.div_(4.0),
        "clamp_": lambda lib, t: t.clamp_(max=3.0),
        "copy_": lambda lib, t: t.copy_(lib.arange(t.numel(), dtype=lib.float32).reshape(
            tuple(t.shape)) * 10),
        "copy_broadcast": lambda lib, t: t.copy_(lib.tensor(-1.0)),
        "zero_": lambda lib, t: t.zero_(),
        "fill_": lambda lib, t: t.fill_(7.0),
        "setitem_int": lambda lib, t: t.__setitem__(0, 9.0),
        "setitem_slice": lambda lib, t: t.__setitem__((Ellipsis, slice(0, 1)), -3.0),
        "iadd": lambda lib, t: t.__iadd__(1.0),
    }


TARGETS = ["base", "alias"]


def _run(lib, kind, op, target):
    make_base, make_alias = _alias_kinds()[kind]
    arr = BASE.copy()
    base = make_base(lib, arr)
    alias = make_alias(lib, base, arr)
    try:
        _ops()[op](lib, base if target == "base" else alias)
        error = None
    except RuntimeError:
        error = "RuntimeError"
    return {"error": error, "base": np.array(base.tolist()), "alias": np.array(alias.tolist()),
            "numpy": arr.copy() if kind == "from_numpy" else None}


CASES = [(k, o, t) for k in _alias_kinds() for o in _ops() for t in TARGETS]


def _assert_same(got, want):
    assert got["error"] == want["error"]
    for key in ("base", "alias", "numpy"):
        if want[key] is None:
            assert got[key] is None
        else:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.parametrize("kind,op,target", CASES, ids=["-".join(c) for c in CASES])
def test_alias_sees_inplace_update_like_torch(kind, op, target):
    torch = pytest.importorskip("torch")
    _assert_same(_run(genesis, kind, op, target), _run(torch, kind, op, target))


@pytest.mark.parametrize("kind", sorted(set(_alias_kinds()) - {"expand"}))
@pytest.mark.parametrize("target", TARGETS)
def test_alias_sees_add_hand_checked(kind, target):
    res = _run(genesis, kind, "add_", target)
    assert res["error"] is None
    want_base = BASE + 1.5
    if kind in ("index_row", "slice", "step_slice") and target == "alias":
        want_base = BASE.copy()
        region = {"index_row": (1,), "slice": (slice(None), slice(1, None)),
                  "step_slice": (slice(None), slice(None, None, 2))}[kind]
        want_base[region] += 1.5
    np.testing.assert_array_equal(res["base"], want_base)
    if kind == "from_numpy":
        np.testing.assert_array_equal(res["numpy"], want_base)


def test_write_into_expanded_alias_raises():
    x = genesis.zeros(1, 3)
    for write in (lambda e: e.add_(1.0), lambda e: e.normal_(), lambda e: e.copy_(e * 2),
                  lambda e: e.__setitem__((Ellipsis, slice(0, 1)), 1.0)):
        with pytest.raises(RuntimeError, match="more than one element"):
            write(x.expand(2, 3))
    assert x.tolist() == [[0.0, 0.0, 0.0]]
    x.expand(2, 3).fill_(4.0)
    assert x.tolist() == [[4.0, 4.0, 4.0]]
    x.expand(2, 3)[1] = genesis.tensor([1.0, 2.0, 3.0])
    assert x.tolist() == [[1.0, 2.0, 3.0]]


# --------------------------------------------------------------------------- x.data = y
def _data_set(lib, name):
    """``x.data = y`` in one situation; returns what can be observed afterwards."""
    out = {}
    rg = name.startswith("rg_")
    x = lib.zeros(3, requires_grad=rg)
    y = {"same": lambda: lib.ones(3), "shape": lambda: lib.ones(2, 2),
         "float64": lambda: lib.ones(3, dtype=lib.float64),
         "int64": lambda: lib.ones(3, dtype=lib.int64),
         "bool": lambda: lib.ones(3, dtype=lib.bool),
         "requires_grad_src": lambda: lib.ones(3, requires_grad=True),
         "list": lambda: [1.0, 2.0, 3.0], "numpy": lambda: np.ones(3)}[name.removeprefix("rg_")]()
    before_detach, before_view = x.detach(), x.view(3)
    try:
        x.data = y
    except (RuntimeError, TypeError) as exc:
        out["error"] = type(exc).__name__
        return out
    out["shape"] = list(x.shape)
    out["dtype"] = str(x.dtype).split(".")[-1]
    out["requires_grad"] = x.requires_grad
    out["is_leaf"] = x.is_leaf
    out["values"] = x.tolist()
    out["old_aliases"] = [before_detach.tolist(), before_view.tolist()]
    if isinstance(y, lib.Tensor) and not y.requires_grad:
        y.add_(True if y.dtype == lib.bool else 1)
        out["shares_with_source"] = x.tolist()
    return out


DATA_SET_CASES = [p + n for p in ("", "rg_") for n in ("same", "shape", "float64", "int64",
                                                        "bool", "requires_grad_src", "list",
                                                        "numpy")]


@pytest.mark.parametrize("name", DATA_SET_CASES)
def test_data_setter_like_torch(name):
    torch = pytest.importorskip("torch")
    assert _data_set(genesis, name) == _data_set(torch, name)


def test_data_setter_hand_checked():
    assert _data_set(genesis, "rg_int64") == {"error": "RuntimeError"}
    assert _data_set(genesis, "list") == {"error": "TypeError"}
    got = _data_set(genesis, "rg_shape")
    assert got["shape"] == [2, 2] and got["requires_grad"] and got["is_leaf"]
    assert got["old_aliases"] == [[0.0] * 3, [0.0] * 3]
    assert got["shares_with_source"] == [[2.0, 2.0], [2.0, 2.0]]


def test_data_setter_keeps_graph_and_grad():
    w = genesis.tensor([1.0, 2.0], requires_grad=True)
    y = (w * 3).sum()
    w.data = genesis.tensor([5.0, 6.0])
    y.backward()
    assert w.grad.tolist() == [3.0, 3.0] and w.tolist() == [5.0, 6.0]


def test_param_data_assignment_moves_parameters_like_torch_idiom():
    lin = genesis.nn.Linear(2, 2)
    new = genesis.zeros(2, 2, dtype=genesis.float64)
    lin.weight.data = new
    assert lin.weight.dtype is genesis.float64 and lin.weight.requires_grad
    assert isinstance(lin.weight, genesis.nn.Parameter)
    new.fill_(1.0)
    assert lin.weight.tolist() == [[1.0, 1.0], [1.0, 1.0]]


# --------------------------------------------------------------------------- with autograd
def _grad_case(lib, name):
    """Scenarios where a parameter requires grad; returns values, grads and errors."""
    out = {}
    w = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    if name == "detach_alias_after_no_grad_add":
        a = w.detach()
        with lib.no_grad():
            w.add_(lib.ones(3))
        out["alias"] = a.tolist()
    elif name == "data_alias_after_optimizer_step":
        a, d, v = w.detach(), w.data, w[1:]
        (w * w).sum().backward()
        opt = lib.optim.SGD([w], lr=0.1, momentum=0.9)
        opt.step()
        opt.step()
        out["aliases"] = [a.tolist(), d.tolist(), v.tolist()]
    elif name == "adam_step_seen_by_aliases":
        a, d = w.detach(), w.data.view(3, 1)
        (w ** 3).sum().backward()
        lib.optim.Adam([w], lr=0.5).step()
        out["aliases"] = [a.tolist(), d.tolist()]
    elif name == "sgd_step_seen_by_numpy_reshape_and_expand":
        arr = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
        p = lib.nn.Parameter(lib.from_numpy(arr))
        r, e = p.detach().reshape(3), p.detach().expand(2, 3)
        (p * p).sum().backward()
        lib.optim.SGD([p], lr=0.25).step()
        out["aliases"] = [arr.tolist(), r.tolist(), e.tolist()]
    elif name == "view_of_buffer_joins_graph":
        buf = lib.zeros(3)
        v = buf[0:2]
        buf.copy_(w * 1)
        out["requires_grad"] = v.requires_grad
        (v * v).sum().backward()
        out["grad"] = w.grad.tolist()
    elif name == "data_mul_hidden_from_autograd":
        y = (w * w).sum()
        w.data.mul_(2.0)
        y.backward()
        out["grad"] = w.grad.tolist()
    elif name == "detach_mul_detected_by_autograd":
        y = (w * w).sum()
        w.detach().mul_(2.0)
        try:
            y.backward()
        except RuntimeError:
            out["error"] = "RuntimeError"
    elif name == "inplace_on_leaf_raises":
        try:
            w.add_(1.0)
        except RuntimeError:
            out["error"] = "RuntimeError"
        out["w"] = w.tolist()
    elif name == "inplace_on_nonleaf_gradient":
        y = w * 2
        alias = y.detach()
        y.mul_(3.0)
        y.add_(w)
        y.sum().backward()
        out["grad"] = w.grad.tolist()
        out["alias"] = alias.tolist()
    elif name == "inplace_on_saved_nonleaf_detected":
        y = w * 2
        z = y * y
        y.add_(1.0)
        try:
            z.sum().backward()
        except RuntimeError:
            out["error"] = "RuntimeError"
    elif name == "copy_into_buffer_gradient":
        buf = lib.zeros(3)
        alias = buf.detach()
        buf.copy_(w * 3)
        (buf * buf).sum().backward()
        out["grad"] = w.grad.tolist()
        out["alias"] = alias.tolist()
    elif name == "setitem_from_grad_value":
        buf = lib.zeros(2, 3)
        alias = buf.view(-1)
        buf[1] = w * w
        buf.sum().backward()
        out["grad"] = w.grad.tolist()
        out["alias"] = alias.tolist()
    elif name == "zero_grad_keeps_grad_alias":
        (w * 2).sum().backward()
        g = w.grad
        opt = lib.optim.SGD([w], lr=0.1)
        opt.zero_grad(set_to_none=False)
        out["grad_alias"] = g.tolist()
    elif name == "normal_through_data_under_init":
        with lib.no_grad():
            w.data.fill_(0.5)
            w.data.mul_(4.0)
        out["w"] = w.tolist()
        out["requires_grad"] = w.requires_grad
    return out


GRAD_CASES = ["detach_alias_after_no_grad_add", "data_alias_after_optimizer_step",
              "adam_step_seen_by_aliases", "sgd_step_seen_by_numpy_reshape_and_expand",
              "view_of_buffer_joins_graph", "data_mul_hidden_from_autograd",
              "detach_mul_detected_by_autograd", "inplace_on_leaf_raises",
              "inplace_on_nonleaf_gradient", "inplace_on_saved_nonleaf_detected",
              "copy_into_buffer_gradient",
              "setitem_from_grad_value", "zero_grad_keeps_grad_alias",
              "normal_through_data_under_init"]


@pytest.mark.parametrize("name", GRAD_CASES)
def test_grad_aliasing_like_torch(name):
    torch = pytest.importorskip("torch")
    want = _grad_case(torch, name)
    got = _grad_case(genesis, name)
    assert sorted(got) == sorted(want)
    for key in want:
        if key == "aliases":
            for g, w in zip(got[key], want[key], strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=key)
        elif isinstance(want[key], list):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)
        else:
            assert got[key] == want[key], key


def test_grad_aliasing_hand_checked():
    assert _grad_case(genesis, "detach_alias_after_no_grad_add") == {"alias": [2.0, 3.0, 4.0]}
    # w * w saved w itself; .data changes are hidden from the version check, so the
    # gradient 2 * w uses the doubled values.
    assert _grad_case(genesis, "data_mul_hidden_from_autograd") == {"grad": [4.0, 8.0, 12.0]}
    assert _grad_case(genesis, "detach_mul_detected_by_autograd") == {"error": "RuntimeError"}
    assert _grad_case(genesis, "view_of_buffer_joins_graph") == {"requires_grad": True,
                                                                 "grad": [2.0, 4.0, 0.0]}
    # y = 3 * (2w) + w -> dy/dw = 7; the detached alias saw both in-place updates
    assert _grad_case(genesis, "inplace_on_nonleaf_gradient") == {
        "grad": [7.0, 7.0, 7.0], "alias": [7.0, 14.0, 21.0]}
    assert _grad_case(genesis, "inplace_on_saved_nonleaf_detected") == {"error": "RuntimeError"}
    # SGD momentum 0.9, lr 0.1, grad 2w (fixed): w - 0.1*2w - 0.1*(0.9*2w + 2w) = 0.42 w
    res = _grad_case(genesis, "data_alias_after_optimizer_step")
    np.testing.assert_allclose(res["aliases"][0], [0.42, 0.84, 1.26], rtol=1e-6)
    np.testing.assert_allclose(res["aliases"][1], [0.42, 0.84, 1.26], rtol=1e-6)
    np.testing.assert_allclose(res["aliases"][2], [0.84, 1.26], rtol=1e-6)
    # p - 0.25 * 2p = p / 2, seen by the NumPy array and by every view
    res = _grad_case(genesis, "sgd_step_seen_by_numpy_reshape_and_expand")
    assert res["aliases"] == [[[0.5, 1.0, 1.5]], [0.5, 1.0, 1.5], [[0.5, 1.0, 1.5]] * 2]
    res = _grad_case(genesis, "copy_into_buffer_gradient")
    assert res == {"grad": [18.0, 36.0, 54.0], "alias": [3.0, 6.0, 9.0]}
    res = _grad_case(genesis, "setitem_from_grad_value")
    assert res == {"grad": [2.0, 4.0, 6.0], "alias": [0.0, 0.0, 0.0, 1.0, 4.0, 9.0]}
    assert _grad_case(genesis, "zero_grad_keeps_grad_alias") == {"grad_alias": [0.0, 0.0, 0.0]}


@pytest.mark.cuda
@pytest.mark.skipif(not genesis.cuda.is_available(), reason="needs an NVIDIA GPU with CuPy")
def test_data_setter_moves_between_devices_like_torch():
    w = genesis.nn.Parameter(genesis.tensor([1.0, 2.0]))
    w.data = w.data.cuda()
    assert w.device.type == "cuda" and w.requires_grad
    (w * w).sum().backward()
    assert w.grad.device.type == "cuda" and w.grad.cpu().tolist() == [2.0, 4.0]
    w.data = w.data.cpu()
    assert w.device.type == "cpu" and w.tolist() == [1.0, 2.0]


# --------------------------------------------------------------------------- writes and graphs
def _write_case(lib, name):
    """An in-place write into a tensor (or a view of it) on the graph of ``w``; returns the
    values and ``w``'s gradient of a weighted sum of the written tensor."""
    w = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = w * 2
    write = {
        "zero": lambda: y.zero_(), "fill": lambda: y.fill_(5.0),
        "copy_constant": lambda: y.copy_(lib.ones(3)),
        "setitem_constant": lambda: y.__setitem__(0, 7.0),
        "view_zero": lambda: y[1:].zero_(), "view_mul": lambda: y.view(3).mul_(3.0),
        "view_copy_grad": lambda: y[:2].copy_(w[1:] * 10),
        "view_setitem_grad": lambda: y.view(3).__setitem__(0, w[2] * 10),
        "chained_view_add": lambda: y.view(3, 1).t().add_(w),
        "index_view_iadd": lambda: y[1].__iadd__(w[0]),
        "split_view_mul": lambda: y.split(2)[1].mul_(w[2:]),
    }
    try:
        write[name]()
    except RuntimeError:
        return "RuntimeError"
    (y * lib.tensor([1.0, 10.0, 100.0])).sum().backward()
    return y.tolist(), w.grad.tolist()


WRITE_CASES = ["zero", "fill", "copy_constant", "setitem_constant", "view_zero", "view_mul",
               "view_copy_grad", "view_setitem_grad", "chained_view_add", "index_view_iadd",
               "split_view_mul"]


@pytest.mark.parametrize("name", WRITE_CASES)
def test_inplace_writes_on_the_graph_like_torch(name):
    torch = pytest.importorskip("torch")
    assert _write_case(genesis, name) == _write_case(torch, name)


def test_inplace_writes_on_the_graph_hand_checked():
    # y = 2w overwritten by a constant: no gradient reaches w
    assert _write_case(genesis, "zero") == ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    # y[1:] zeroed: only y[0] = 2 w0 carries a gradient (weight 1)
    assert _write_case(genesis, "view_zero") == ([2.0, 0.0, 0.0], [2.0, 0.0, 0.0])
    # y[:2] = 10 * w[1:]: y = [20, 30, 6]; dL/dw = [0, 10 * 1, 10 * 10 + 100 * 2]
    assert _write_case(genesis, "view_copy_grad") == ([20.0, 30.0, 6.0], [0.0, 10.0, 300.0])
    # as in PyTorch, one of several views returned by split() cannot be written on the graph
    assert _write_case(genesis, "split_view_mul") == "RuntimeError"


def _stale_view_case(lib, name):
    """A view made before its base changed in place, used afterwards."""
    w = lib.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = w * 1
    view = {"view": lambda: y.view(4), "slice": lambda: y[0], "t": lambda: y.t()}[name]()
    y.mul_(3.0)
    (view * view).sum().backward()
    return view.tolist(), w.grad.tolist()


@pytest.mark.parametrize("name", ["view", "slice", "t"])
def test_view_used_after_its_base_changed_like_torch(name):
    torch = pytest.importorskip("torch")
    assert _stale_view_case(genesis, name) == _stale_view_case(torch, name)


def test_view_used_after_its_base_changed_hand_checked():
    # view = 3w, loss = sum(9 w^2): gradient 18 w (not 6 w from the stale graph)
    assert _stale_view_case(genesis, "view") == ([3.0, 6.0, 9.0, 12.0],
                                                 [[18.0, 36.0], [54.0, 72.0]])


def test_inplace_on_view_of_leaf_requiring_grad_raises_like_torch():
    w = genesis.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="view of a leaf"):
        w[0:1].mul_(2.0)
    with pytest.raises(RuntimeError, match="leaf"):
        w.view(2).zero_()
    with genesis.no_grad():
        w.view(2).zero_()
    assert w.tolist() == [0.0, 0.0]


def test_reshape_that_copies_is_not_an_alias_like_torch():
    x = genesis.arange(6.0).reshape(2, 3).t()
    r = x.reshape(6)
    r.add_(100.0)
    assert x.tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]


@pytest.mark.parametrize("name", WRITE_CASES + ["stale_view"])
def test_inplace_writes_on_the_graph_on_a_gpu_stand_in(fake_gpu, name):
    """The same writes through views on (stand-in) GPU arrays: values and gradients stay on
    the device and equal the CPU ones."""

    class OnGPU:
        """genesis with every new tensor created on the GPU."""

        def __getattr__(self, attr):
            return getattr(genesis, attr)

        @staticmethod
        def tensor(data, **kwargs):
            return genesis.tensor(data, device="cuda", **kwargs)

        @staticmethod
        def ones(*size, **kwargs):
            return genesis.ones(*size, device="cuda", **kwargs)

    assert OnGPU().tensor([1.0]).device.type == "cuda"
    run = (lambda lib: _stale_view_case(lib, "view")) if name == "stale_view" else \
        (lambda lib: _write_case(lib, name))
    assert run(OnGPU()) == run(genesis)
