"""Triton kernels for the fused ops, one module per family, launched on raw arrays.

On a GPU the kernels take CuPy arrays (wrapped so Triton sees a pointer and a dtype) and run on
the current device's default stream, the stream CuPy uses. With ``TRITON_INTERPRET=1`` Triton's
interpreter runs the same kernels on the CPU; it needs torch tensors, so NumPy arrays are
wrapped as torch CPU tensors sharing their memory (used by the tests only).

The ops call ``enabled(name)`` before using a kernel: Triton must import, the arrays must be on
a GPU, and ``GENESIS_TRITON`` must not be ``0`` (set it to fall back to the CuPy composites).
"""
import os

import numpy as np

_triton = []


def _import():
    if not _triton:
        try:
            import triton
        except Exception:
            triton = None
        _triton.append(triton)
    return _triton[0]


_KERNEL_DTYPES = ("float32", "float16", "bfloat16")


def enabled(xp, *arrays):
    """True when the Triton kernels should run: CuPy arrays, Triton importable, not disabled by
    ``GENESIS_TRITON=0``, and every floating array (None is skipped) in float32 or a half type
    (the kernels compute in float32, so float64 stays on the CuPy composites)."""
    if xp is np or os.environ.get("GENESIS_TRITON", "1") == "0" or _import() is None:
        return False
    return kernel_dtypes(arrays)


def kernel_dtypes(arrays):
    """True when every floating array (None skipped) is float32, float16 or bfloat16."""
    return all(a is None or a.dtype.kind in "iub" or a.dtype.name in _KERNEL_DTYPES
               for a in arrays)


class _DevicePointer:
    """What Triton needs from a CuPy array: ``data_ptr()`` and a dtype it can name."""

    __slots__ = ("arr", "dtype")

    def __init__(self, arr):
        self.arr = arr
        self.dtype = arr.dtype

    def data_ptr(self):
        return self.arr.data.ptr


def arg(arr):
    """``arr`` as a Triton kernel argument (CuPy: a pointer wrapper; NumPy: a torch CPU view)."""
    if arr is None:
        return None
    if isinstance(arr, np.ndarray):
        import torch
        if arr.dtype.name == "bfloat16":
            return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(arr)
    return _DevicePointer(arr)


def interpreting():
    """True under Triton's CPU interpreter, whose half-precision ``tl.dot`` is not exact: kernels
    then upcast dot operands to float32 (on a GPU they feed bf16/fp16 to the tensor cores)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def next_power_of_2(n):
    """The smallest power of two >= n (block sizes)."""
    return 1 << max(0, int(n) - 1).bit_length()


def kernels(family):
    """The kernel module of ``family`` (imports Triton; call only when ``enabled``)."""
    import importlib
    return importlib.import_module(f"{__name__}.{family}")
