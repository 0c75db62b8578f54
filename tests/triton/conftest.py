"""Triton kernel tests: Triton's CPU interpreter on NumPy memory, or the GPU when one is present.

Without a GPU, ``TRITON_INTERPRET=1`` is set before Triton is imported so the kernels run in
the interpreter on torch CPU tensors that share the NumPy arrays' memory. With a GPU (CuPy), the
same tests run the compiled kernels on CuPy arrays.
"""
import os

import numpy as np
import pytest

import genesis

ON_GPU = genesis.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") != "1"
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"

try:  # the interpreter takes torch tensors; both come with the parity extra
    import torch  # noqa: F401
    import triton  # noqa: F401
except ImportError:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def xp():
    """The array namespace the kernels run on (CuPy on a GPU, NumPy in the interpreter)."""
    if ON_GPU:
        import cupy
        return cupy
    return np


def host(a):
    """A kernel result as a NumPy array."""
    return a if isinstance(a, np.ndarray) else a.get()
