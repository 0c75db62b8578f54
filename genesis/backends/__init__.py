"""Array namespaces per device: NumPy on the CPU, CuPy on NVIDIA GPUs."""
import numpy as np

from . import cpu, cuda, cudnn


def xp_for(dev):
    """The array module (``numpy`` or ``cupy``) that holds tensors of ``dev``."""
    if dev.type == "cpu":
        return np
    return cuda.xp()


def device_of_array(arr):
    """The genesis device that owns ``arr`` (NumPy arrays live on the CPU)."""
    from ..device import CPU, device
    if isinstance(arr, np.ndarray) or np.isscalar(arr):
        return CPU
    dev = getattr(arr, "device", None)
    if dev is not None and hasattr(dev, "id"):
        return device("cuda", dev.id)
    return CPU


def to_host(arr):
    """``arr`` as a NumPy array (a device-to-host copy for CuPy arrays, else no copy)."""
    return arr if isinstance(arr, np.ndarray) else np.asarray(arr.get() if hasattr(arr, "get")
                                                               else arr)


def is_array(obj):
    """True for NumPy and CuPy arrays (not for Python or NumPy scalars)."""
    return isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__")


__all__ = ["cpu", "cuda", "cudnn", "xp_for", "device_of_array", "to_host", "is_array"]
