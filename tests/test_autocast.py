"""Autocast: genesis picks the same dtype per op as torch.autocast, casts are differentiable."""
import numpy as np
import pytest

import genesis
from genesis.amp import autocast_mode
from genesis.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((4, 8)).astype(np.float32),
        "w": rng.standard_normal((6, 8)).astype(np.float32),
        "b": rng.standard_normal(6).astype(np.float32),
        "q": rng.standard_normal((2, 3, 5, 8)).astype(np.float32),
        "t": rng.integers(0, 8, 4),
        "p": rng.uniform(0.5, 2.0, (4, 8)).astype(np.float32),
    }


# name -> a call written once for both frameworks (``g`` is genesis or torch).
CASES = {
    "matmul": lambda g, T: g.matmul(T["x"], T["w"].T),
    "mm": lambda g, T: g.mm(T["x"], T["w"].T),
    "bmm": lambda g, T: g.bmm(T["q"][0], T["q"][1].transpose(1, 2)),
    "einsum": lambda g, T: g.einsum("ij,kj->ik", T["x"], T["w"]),
    "linear": lambda g, T: g.nn.functional.linear(T["x"], T["w"], T["b"]),
    "linear_low_input": lambda g, T: g.nn.functional.linear(T["x"].bfloat16(), T["w"], T["b"]),
    "sdpa": lambda g, T: g.nn.functional.scaled_dot_product_attention(T["q"], T["q"], T["q"],
                                                                      is_causal=True),
    "dot": lambda g, T: g.dot(T["x"][0], T["x"][1]),
    "softmax": lambda g, T: g.softmax(T["x"].bfloat16(), 1),
    "log_softmax": lambda g, T: g.log_softmax(T["x"].bfloat16(), 1),
    "sum": lambda g, T: T["x"].bfloat16().sum(),
    "mean": lambda g, T: T["x"].bfloat16().mean(),
    "prod": lambda g, T: T["p"].bfloat16().prod(dim=1),
    "cumsum": lambda g, T: T["x"].bfloat16().cumsum(0),
    "logsumexp": lambda g, T: T["x"].bfloat16().logsumexp(1),
    "norm": lambda g, T: T["x"].bfloat16().norm(),
    "exp": lambda g, T: T["x"].bfloat16().exp(),
    "log": lambda g, T: T["p"].bfloat16().log(),
    "pow": lambda g, T: T["p"].bfloat16().pow(2),
    "layer_norm": lambda g, T: g.nn.functional.layer_norm(T["x"].bfloat16(), (8,)),
    "rms_norm": lambda g, T: g.nn.functional.rms_norm(T["x"].bfloat16(), (8,)),
    "softplus": lambda g, T: g.nn.functional.softplus(T["x"].bfloat16()),
    "cross_entropy": lambda g, T: g.nn.functional.cross_entropy(T["x"].bfloat16(), T["t"]),
    "nll_loss": lambda g, T: g.nn.functional.nll_loss(T["x"].bfloat16(), T["t"]),
    "mse_loss": lambda g, T: g.nn.functional.mse_loss(T["x"].bfloat16(), T["p"]),
    "l1_loss": lambda g, T: g.nn.functional.l1_loss(T["x"].bfloat16(), T["p"].bfloat16()),
    "bce_with_logits": lambda g, T: g.nn.functional.binary_cross_entropy_with_logits(
        T["x"].bfloat16(), T["p"].bfloat16() / 2),
    "cat_mixed": lambda g, T: g.cat([T["x"], T["x"].bfloat16()]),
    "add_mixed": lambda g, T: T["x"] + T["x"].bfloat16(),
    "matmul_float64": lambda g, T: g.matmul(T["x"].double(), T["w"].double().T),
    "sum_explicit_dtype": lambda g, T: T["x"].bfloat16().sum(dtype=g.bfloat16),
}


def _run_both(name, low):
    fn = CASES[name]
    arrays = _inputs()
    G = {k: genesis.tensor(v) for k, v in arrays.items()}
    T = {k: torch.from_numpy(v) for k, v in arrays.items()}
    with genesis.autocast("cpu", dtype=getattr(genesis, low)):
        g_out = fn(genesis, G)
    with torch.autocast("cpu", dtype=getattr(torch, low)):
        t_out = fn(torch, T)
    return g_out, t_out


@pytest.mark.parametrize("low", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu_dtype_choice_matches_torch(name, low):
    g_out, t_out = _run_both(name, low)
    assert g_out.dtype.name == str(t_out.dtype).replace("torch.", ""), name
    tol = 2e-2 if g_out.dtype.itemsize == 2 else 1e-5
    np.testing.assert_allclose(g_out.float().numpy(), t_out.float().numpy(), rtol=tol,
                               atol=tol * 4)


# PyTorch's CUDA autocast lists (aten/src/ATen/autocast_mode.h), for input float32 tensors
# (lower) or bfloat16 tensors (float32 ops), as the cases above build them.
CUDA_EXPECTED = {
    "matmul": "low", "mm": "low", "bmm": "low", "einsum": "low", "linear": "low",
    "linear_low_input": "low", "sdpa": "low", "dot": "float32", "softmax": "float32",
    "log_softmax": "float32", "sum": "float32", "mean": "bfloat16", "prod": "float32",
    "cumsum": "float32", "logsumexp": "float32", "norm": "float32", "exp": "float32",
    "log": "float32", "pow": "float32", "layer_norm": "float32", "rms_norm": "float32",
    "softplus": "float32", "cross_entropy": "float32", "nll_loss": "float32",
    "mse_loss": "float32", "l1_loss": "float32", "bce_with_logits": "float32",
    "cat_mixed": "float32", "add_mixed": "float32", "matmul_float64": "float64",
    "sum_explicit_dtype": "bfloat16",
}


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_dtype_choice_follows_torch_cuda_lists(name):
    if not genesis.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CuPy")
    G = {k: genesis.tensor(v, device="cuda") for k, v in _inputs().items()}
    with genesis.autocast("cuda", dtype=genesis.float16):
        out = CASES[name](genesis, G)
    expected = CUDA_EXPECTED[name]
    assert out.dtype.name == ("float16" if expected == "low" else expected)


def test_every_listed_op_is_wrapped():
    listed = set().union(*(set(t) for t in autocast_mode.POLICIES.values()))
    assert listed == autocast_mode.WRAPPED


def test_gradients_reach_float32_leaves_through_the_casts():
    arrays = _inputs()
    x = genesis.tensor(arrays["x"], requires_grad=True)
    w = genesis.tensor(arrays["w"], requires_grad=True)
    tx = torch.tensor(arrays["x"], requires_grad=True)
    tw = torch.tensor(arrays["w"], requires_grad=True)
    with genesis.autocast("cpu"):
        loss = F.cross_entropy(F.linear(x, w), genesis.tensor(arrays["t"] % 6))
    with torch.autocast("cpu"):
        tloss = TF.cross_entropy(TF.linear(tx, tw), torch.from_numpy(arrays["t"] % 6))
    loss.backward()
    tloss.backward()
    assert w.grad.dtype is genesis.float32 and x.grad.dtype is genesis.float32
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=3e-2, atol=3e-3)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=3e-2, atol=3e-3)


def test_weight_cast_is_cached_within_a_region_and_dropped_after():
    x = genesis.randn(3, 8)
    w = genesis.randn(5, 8, requires_grad=True)
    with genesis.autocast("cpu"):
        a, b = F.linear(x, w), F.linear(x * 2, w)
        assert a.grad_fn.next_functions[1][0] is b.grad_fn.next_functions[1][0]
        assert len(autocast_mode._state.cache) == 1
    assert not autocast_mode._state.cache
    with genesis.autocast("cpu", cache_enabled=False):
        a, b = F.linear(x, w), F.linear(x, w)
        assert a.grad_fn.next_functions[1][0] is not b.grad_fn.next_functions[1][0]


def test_inplace_update_between_regions_is_seen():
    x = genesis.ones(1, 2)
    w = genesis.ones(1, 2, requires_grad=True)
    with genesis.autocast("cpu"):
        assert F.linear(x, w).item() == 2
    with genesis.no_grad():
        w.mul_(3)
    with genesis.autocast("cpu"):
        assert F.linear(x, w).item() == 6


def test_nesting_disable_decorator_and_queries():
    x = genesis.randn(2, 2)
    assert not genesis.is_autocast_enabled("cpu")
    with genesis.autocast("cpu", dtype=genesis.float16):
        assert genesis.is_autocast_enabled("cpu") and not genesis.is_autocast_enabled("cuda")
        assert genesis.get_autocast_dtype("cpu") is genesis.float16
        with genesis.autocast("cpu", enabled=False):
            assert (x @ x).dtype is genesis.float32
        assert (x @ x).dtype is genesis.float16
    assert (x @ x).dtype is genesis.float32

    @genesis.amp.autocast("cpu")
    def f(a):
        return a @ a

    assert f(x).dtype is genesis.bfloat16
    assert (x @ x).dtype is genesis.float32
    with genesis.autocast("cuda", dtype=genesis.bfloat16):
        assert (x @ x).dtype is genesis.float32  # only tensors on the autocast device change


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="bfloat16 or genesis.float16"):
        genesis.autocast("cpu", dtype=genesis.float32)
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        genesis.autocast("tpu")


def test_autocast_state_is_per_thread():
    import threading
    inside, done = threading.Event(), threading.Event()

    def hold_region():
        with genesis.autocast("cpu"):
            inside.set()
            done.wait(10)

    worker = threading.Thread(target=hold_region)
    worker.start()
    inside.wait(10)
    try:
        x = genesis.randn(2, 2)
        assert (x @ x).dtype is genesis.float32  # another thread's region does not apply here
    finally:
        done.set()
        worker.join()
