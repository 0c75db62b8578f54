"""The CUDA backend: CuPy arrays; CuPy is imported only when a CUDA tensor or query needs it."""
import contextlib

_cupy = []


def _import():
    """The CuPy module or None (not installed, or its CUDA libraries fail to load)."""
    if not _cupy:
        try:
            import cupy
        except Exception:
            cupy = None
        _cupy.append(cupy)
        if cupy is not None:
            _apply_tf32(matmul.allow_tf32)
            cupy.cuda.set_allocator(_peak_tracking_malloc)
    return _cupy[0]


peak_bytes = {}


def _peak_tracking_malloc(size):
    """CuPy's pool allocation, recording each GPU's peak of used bytes (max_memory_allocated)."""
    cupy = _cupy[0]
    pool = cupy.get_default_memory_pool()
    mem = pool.malloc(size)
    dev = mem.device_id
    used = pool.used_bytes()
    if used > peak_bytes.get(dev, 0):
        peak_bytes[dev] = used
    return mem


class _MatmulFlags:
    """``genesis.backends.cuda.matmul``: flags of float32 matmuls on the GPU, as in PyTorch."""

    def __init__(self):
        self._allow_tf32 = False

    @property
    def allow_tf32(self):
        """Whether float32 matmuls may use TF32 tensor cores (default False, as PyTorch)."""
        return self._allow_tf32

    @allow_tf32.setter
    def allow_tf32(self, value):
        self._allow_tf32 = bool(value)
        if _cupy and _cupy[0] is not None:
            _apply_tf32(self._allow_tf32)


matmul = _MatmulFlags()


def device_count():
    """Number of visible GPUs (0 without CuPy or a driver)."""
    cupy = _import()
    if cupy is None:
        return 0
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


def is_available():
    """True when CuPy imports and sees at least one GPU."""
    return device_count() > 0


def xp():
    """The CuPy module, or a RuntimeError that says how to get it."""
    cupy = _import()
    if cupy is None:
        raise RuntimeError("cuda backend: CuPy is not installed (or its CUDA libraries do not "
                           "load); install genesis[cuda] on a machine with an NVIDIA GPU")
    return cupy


def require(what):
    """CuPy when a GPU is present, else a RuntimeError naming ``what``."""
    if not is_available():
        raise RuntimeError(f"{what}: CUDA is not available (CuPy is not installed or no NVIDIA "
                           "GPU is visible)")
    return _cupy[0]


def device_guard(index):
    """Context that makes GPU ``index`` current (CuPy allocates and launches there)."""
    if index is None:
        return contextlib.nullcontext()
    return xp().cuda.Device(index)


def _apply_tf32(enabled):
    """Set CuPy's cuBLAS compute type for float32 matmuls: TF32 tensor cores or full FP32."""
    import numpy as np
    from cupy._core import _routines_linalg as linalg
    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if enabled
                            else linalg.COMPUTE_TYPE_FP32)
