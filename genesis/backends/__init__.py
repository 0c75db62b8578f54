"""Array namespaces per device: NumPy on the CPU, CuPy on NVIDIA GPUs."""
import numpy as np

from . import cpu


def xp_for(dev):
    """The array module (``numpy`` or ``cupy``) that holds tensors of ``dev``."""
    if dev.type == "cpu":
        return np
    from . import cuda
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


__all__ = ["cpu", "xp_for", "device_of_array"]
