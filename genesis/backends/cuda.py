"""The CUDA backend: CuPy arrays; imported only when a CUDA tensor is made."""
_cupy = None


def is_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def xp():
    """The CuPy module, or a RuntimeError that says how to get it."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as exc:
            raise RuntimeError("cuda backend: CuPy is not installed; install genesis[cuda] "
                               "on a machine with an NVIDIA GPU") from exc
        _cupy = cupy
    return _cupy


def device_count():
    """Number of visible GPUs (0 without CuPy)."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0
