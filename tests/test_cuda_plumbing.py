"""genesis.cuda and the GPU plumbing on any machine; the CuPy-only paths of the scatter helpers.

Tests marked ``cuda`` run the real thing on a GPU. The others check what a CPU-only machine
can: the documented no-GPU behaviour, seeding state, flags, and the array algorithms genesis
uses where CuPy lacks ``ufunc.at`` support (run against a NumPy stand-in that refuses exactly
what CuPy refuses: this proves the fallback algorithms, not CuPy itself).
"""
import types

import ml_dtypes
import numpy as np
import pytest

import genesis
from genesis.backends import scatter

needs_gpu = pytest.mark.skipif(not genesis.cuda.is_available(),
                               reason="needs an NVIDIA GPU with CuPy")
no_gpu = pytest.mark.skipif(genesis.cuda.is_available(), reason="a GPU is present")


@no_gpu
def test_queries_without_cuda_match_torch_without_cuda():
    assert genesis.cuda.is_available() is False and genesis.cuda.device_count() == 0
    assert genesis.cuda.is_bf16_supported() is False
    assert genesis.cuda.memory_allocated() == 0 and genesis.cuda.max_memory_allocated() == 0
    for call in (genesis.cuda.current_device, genesis.cuda.synchronize,
                 genesis.cuda.reset_peak_memory_stats, lambda: genesis.cuda.set_device(0)):
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            call()
    with pytest.raises(RuntimeError, match="CuPy is not installed|CUDA"):
        genesis.zeros(2, device="cuda")


def test_seeds_are_recorded_without_a_gpu_and_follow_manual_seed():
    genesis.manual_seed(11)
    assert genesis.cuda.initial_seed() == 11
    genesis.cuda.manual_seed(5)
    assert genesis.cuda.initial_seed() == 5
    genesis.cuda.manual_seed_all(7)
    assert genesis.cuda.initial_seed() == 7
    genesis.manual_seed(0)
    assert genesis.cuda.initial_seed() == 0


def test_cpu_draws_are_unchanged_by_gpu_seeding():
    genesis.manual_seed(3)
    a = genesis.randn(5).numpy()
    genesis.manual_seed(3)
    genesis.cuda.manual_seed_all(99)
    b = genesis.randn(5).numpy()
    np.testing.assert_array_equal(a, b)


def test_backend_flags_are_settable_like_torch():
    assert genesis.backends.cuda.matmul.allow_tf32 is False
    assert genesis.backends.cudnn.allow_tf32 is True
    genesis.backends.cuda.matmul.allow_tf32 = True
    try:
        assert genesis.backends.cuda.matmul.allow_tf32 is True
    finally:
        genesis.backends.cuda.matmul.allow_tf32 = False


class _AtUfunc:
    """A NumPy ufunc whose ``.at`` accepts only the dtypes given (CuPy's atomicAdd types)."""

    def __init__(self, ufunc, dtypes):
        self._ufunc, self._dtypes = ufunc, dtypes

    def __call__(self, *args, **kwargs):
        return self._ufunc(*args, **kwargs)

    def at(self, target, index, values):
        if target.dtype not in self._dtypes:
            raise TypeError(f"{self._ufunc.__name__}.at: dtype {target.dtype} not supported")
        self._ufunc.at(target, index, values)


def _cupy_like():
    """NumPy with CuPy's ``ufunc.at`` limits: add.at for atomicAdd dtypes, no multiply.at."""
    fake = types.SimpleNamespace(**{n: getattr(np, n) for n in dir(np) if not n.startswith("__")})
    fake.add = _AtUfunc(np.add, scatter._ATOMIC_ADD)
    fake.multiply = _AtUfunc(np.multiply, set())
    return fake


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16, np.int64,
                                   np.int8, np.bool_])
def test_scatter_add_cuda_path_matches_numpy_add_at(dtype):
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, (6, 3)).astype(dtype)
    index = np.array([0, 2, 2, 5, 0, 0])
    values = rng.integers(-2, 3, (6, 3)).astype(dtype)
    if dtype is np.int64:
        values[0, 0] = 2 ** 62  # exercises the unsigned-view addition
    want = target.copy()
    np.add.at(want, index, values)
    got = target.copy()
    scatter.scatter_add(_cupy_like(), got, index, values)
    np.testing.assert_array_equal(got.astype(np.float64) if dtype is not np.int64 else got,
                                  want.astype(np.float64) if dtype is not np.int64 else want)


def test_scatter_multiply_cuda_path_matches_numpy_multiply_at():
    rng = np.random.default_rng(1)
    target = rng.uniform(0.5, 2.0, (4, 5)).astype(np.float32)
    index = (np.array([[0, 1, 1], [3, 3, 3]]), np.array([[2, 2, 2], [0, 0, 4]]))
    values = rng.uniform(0.5, 2.0, (2, 3)).astype(np.float32)
    want = target.copy()
    np.multiply.at(want, index, values)
    got = target.copy()
    scatter.scatter_multiply(_cupy_like(), got, index, values)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    strided = np.ones((5, 4), np.float32).T
    expected = strided.copy()
    np.multiply.at(expected, index, values)
    scatter.scatter_multiply(_cupy_like(), strided, index, values)
    np.testing.assert_allclose(strided, expected, rtol=1e-6)


@pytest.mark.cuda
@needs_gpu
def test_creation_and_random_draws_happen_on_the_gpu():
    genesis.manual_seed(0)
    for t in (genesis.zeros(3, device="cuda"), genesis.ones(2, 2, device="cuda"),
              genesis.arange(5, device="cuda"), genesis.eye(3, device="cuda"),
              genesis.full((2,), 1.5, device="cuda"), genesis.rand(4, device="cuda"),
              genesis.randn(4, device="cuda"), genesis.randint(0, 9, (4,), device="cuda"),
              genesis.randperm(6, device="cuda"), genesis.linspace(0, 1, 5, device="cuda")):
        assert t.device.type == "cuda" and not isinstance(t._array, np.ndarray)
    genesis.manual_seed(1)
    a = genesis.randn(1000, device="cuda").cpu().numpy()
    genesis.manual_seed(1)
    b = genesis.randn(1000, device="cuda").cpu().numpy()
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.15 and abs(a.std() - 1) < 0.1
    x = genesis.ones(10000, device="cuda")
    kept = genesis.nn.functional.dropout(x, 0.25)
    assert kept.device.type == "cuda"
    assert abs(float((kept != 0).float().mean().item()) - 0.75) < 0.03


@pytest.mark.cuda
@needs_gpu
def test_memory_stats_and_sync_on_the_gpu():
    genesis.cuda.synchronize()
    genesis.cuda.reset_peak_memory_stats()
    base = genesis.cuda.memory_allocated()
    x = genesis.zeros(1 << 20, device="cuda")
    assert genesis.cuda.memory_allocated() >= base + 4 * (1 << 20)
    peak = genesis.cuda.max_memory_allocated()
    del x
    assert genesis.cuda.max_memory_allocated() == peak >= base + 4 * (1 << 20)
    assert isinstance(genesis.cuda.is_bf16_supported(), bool)


@pytest.mark.cuda
@needs_gpu
def test_cross_device_mix_raises_clearly():
    with pytest.raises(RuntimeError, match="same device"):
        genesis.ones(2, device="cuda") + genesis.ones(2)


@pytest.mark.cuda
@needs_gpu
def test_bf16_training_step_on_the_gpu():
    from genesis.models.transformers import MoEConfig, MoEForCausalLM
    genesis.manual_seed(0)
    model = MoEForCausalLM(MoEConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, num_local_experts=4,
                                     num_experts_per_tok=2, moe_intermediate_size=24,
                                     max_position_embeddings=64)).to("cuda")
    opt = genesis.optim.AdamW(model.parameters(), lr=1e-3)
    ids = genesis.randint(0, 64, (2, 16), device="cuda")
    with genesis.autocast("cuda", dtype=genesis.bfloat16):
        loss = model(ids, labels=ids)[0]
    loss.backward()
    opt.step()
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert np.isfinite(loss.item())
