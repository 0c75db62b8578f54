"""``genesis.cuda``: GPU queries, the current device, seeding and memory statistics.

Everything here works on machines without CUDA, as ``torch.cuda`` does there: queries say
no GPU, seeding records the seeds (the GPU generators are built from them on first use), the
memory counters read 0, and calls that need a GPU raise a RuntimeError saying so.
"""
from .backends import cuda as _backend
from .random import cuda_seeds as _seeds
from .device import device as _device_cls

__all__ = ["is_available", "device_count", "current_device", "set_device", "device",
           "synchronize", "manual_seed", "manual_seed_all", "initial_seed", "memory_allocated",
           "max_memory_allocated", "reset_peak_memory_stats", "memory_reserved",
           "is_bf16_supported", "get_device_name", "get_device_capability"]

is_available = _backend.is_available
device_count = _backend.device_count


def _index(device, what):
    """The GPU index of ``device`` (None: the current one)."""
    if device is None:
        return current_device()
    if isinstance(device, int):
        return device
    d = _device_cls(device)
    if d.type != "cuda":
        raise ValueError(f"{what}: expected a CUDA device, got {d}")
    return d.index


def current_device():
    """Index of the current GPU (RuntimeError without CUDA)."""
    return _backend.require("genesis.cuda.current_device").cuda.runtime.getDevice()


def set_device(device):
    """Make ``device`` (an index, ``'cuda:N'`` or a device) the current GPU."""
    cupy = _backend.require("genesis.cuda.set_device")
    cupy.cuda.runtime.setDevice(_index(device, "set_device"))


class device:
    """Context manager that makes a GPU current: ``with genesis.cuda.device(1): ...``."""

    def __init__(self, device):
        self.idx = _index(device, "cuda.device")
        self._prev = None

    def __enter__(self):
        cupy = _backend.require("genesis.cuda.device")
        self._prev = cupy.cuda.runtime.getDevice()
        cupy.cuda.runtime.setDevice(self.idx)
        return self

    def __exit__(self, *exc):
        _backend.xp().cuda.runtime.setDevice(self._prev)
        return False


def synchronize(device=None):
    """Wait for every kernel queued on ``device`` (default: the current GPU) to finish."""
    cupy = _backend.require("genesis.cuda.synchronize")
    with cupy.cuda.Device(_index(device, "synchronize")):
        cupy.cuda.runtime.deviceSynchronize()


def manual_seed(seed):
    """Seed the current GPU's generator (recorded for GPU 0 when CUDA is not available)."""
    _seeds.seed(current_device() if is_available() else 0, seed)


def manual_seed_all(seed):
    """Seed every GPU's generator."""
    _seeds.seed_every(seed)


def initial_seed():
    """The seed of the current GPU's generator."""
    return _seeds.initial_seed(current_device() if is_available() else 0)


def _pool():
    return _backend.xp().get_default_memory_pool()


def memory_allocated(device=None):
    """Bytes held by live CUDA tensors on ``device`` (CuPy's memory pool); 0 without CUDA."""
    if not is_available():
        return 0
    with _backend.xp().cuda.Device(_index(device, "memory_allocated")):
        return _pool().used_bytes()


def memory_reserved(device=None):
    """Bytes the memory pool holds from the driver on ``device``; 0 without CUDA."""
    if not is_available():
        return 0
    with _backend.xp().cuda.Device(_index(device, "memory_reserved")):
        return _pool().total_bytes()


def max_memory_allocated(device=None):
    """Peak of ``memory_allocated`` since start or the last reset (0 without CUDA)."""
    if not is_available():
        return 0
    idx = _index(device, "max_memory_allocated")
    return max(_backend.peak_bytes.get(idx, 0), memory_allocated(idx))


def reset_peak_memory_stats(device=None):
    """Restart the peak of ``max_memory_allocated`` from the current usage."""
    _backend.require("genesis.cuda.reset_peak_memory_stats")
    idx = _index(device, "reset_peak_memory_stats")
    _backend.peak_bytes[idx] = memory_allocated(idx)


def get_device_capability(device=None):
    """``(major, minor)`` compute capability of a GPU."""
    cupy = _backend.require("genesis.cuda.get_device_capability")
    cc = cupy.cuda.Device(_index(device, "get_device_capability")).compute_capability
    return int(cc[:-1]), int(cc[-1])


def get_device_name(device=None):
    """The GPU's product name."""
    cupy = _backend.require("genesis.cuda.get_device_name")
    props = cupy.cuda.runtime.getDeviceProperties(_index(device, "get_device_name"))
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else name


def is_bf16_supported():
    """True when the current GPU computes in bfloat16 natively (compute capability >= 8.0)."""
    if not is_available():
        return False
    return get_device_capability()[0] >= 8
