"""The CPU backend: NumPy arrays, BLAS threads."""
import os

import numpy as np

xp = np


def num_threads():
    """BLAS threads NumPy may use (from the usual environment variables, else the CPU count)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1
