"""Chunked CPU execution over a small thread pool: NumPy's ufuncs release the GIL, so large
elementwise work and row-wise reductions split into blocks run on every core.

Every helper but ``sum_all`` computes exactly what the single NumPy call computes (the same
operations on the same elements, block by block); arrays below ``MIN_PARALLEL`` elements,
CuPy arrays and calls made from a pool thread run in the calling thread.
"""
import os
import threading

import numpy as np

from . import cpu

__all__ = ["MIN_PARALLEL", "MIN_PARALLEL_ROWS", "num_threads", "set_num_threads", "parallel_for",
           "ufunc", "add", "add_",
           "blocks", "copy", "row_sum", "sum_all"]

# Thresholds, from benchmarks/parallel_thresholds.py: splitting work of t ns per element over 2
# threads pays from about 2 * wake-up / t elements. On the 2-core Firecracker VM the docs'
# figures come from, idle: the pool's wake-up is ~70 us (a sleeping vCPU is woken through the
# host), add runs at 0.11 ns/element (512x512: 30 us alone, 88 us split), exp at 0.33,
# softmax forward at ~0.85 and its backward at ~0.4: break-even near 1.2M elements for
# add-like ufuncs, 165k-330k for row-wise softmax work. Under load (other processes on the
# cores) the wake-up drops to ~17 us but no split pays at all up to 1024x1024, as the second
# core is busy: the thresholds sit at the idle break-even, not below it.
MIN_PARALLEL = 1 << 20  # elements of a ufunc
MIN_PARALLEL_ROWS = 1 << 18  # elements of row-wise softmax / log-softmax work
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_state = threading.local()
_threads = [None]


def num_threads():
    """Threads the CPU helpers use (``set_num_threads``, else the BLAS thread count at the
    first call)."""
    if _threads[0] is None:
        _threads[0] = cpu.num_threads()
    return _threads[0]


def set_num_threads(n):
    """Use ``n`` threads for chunked CPU work (1 turns threading off)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _threads[0] = n


class _Worker:
    """A daemon thread that runs one ``fn(start, stop)`` job per ``go`` release and releases
    ``done`` when it finishes (a lock hand-off: cheaper than a queue and a future)."""

    def __init__(self):
        self.go = threading.Lock()
        self.go.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        self.job = None
        self.error = None
        threading.Thread(target=self._loop, name="genesis-cpu", daemon=True).start()

    def _loop(self):
        _state.worker = True
        while True:
            self.go.acquire()
            fn, err, start, stop = self.job
            try:
                with np.errstate(**err):
                    fn(start, stop)
            except BaseException as exc:  # handed to the caller, re-raised there
                self.error = exc
            self.job = None
            self.done.release()


_workers = []
_busy = [threading.Lock()]


def _reset_after_fork():
    _workers.clear()
    _busy[0] = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def parallel_for(n, fn, grain=None, cost=1):
    """Call ``fn(start, stop)`` over a split of ``range(n)``, each part worth ``grain`` elements
    at ``cost`` elements per index; the caller runs the last part and waits for the others.
    Runs inline when one part suffices, from a pool thread, or while another thread uses the
    pool; the first exception of any part is raised."""
    parts = min(num_threads(), (n * cost) // (grain or MIN_PARALLEL), n)
    busy = _busy[0]
    if parts <= 1 or getattr(_state, "worker", False) or not busy.acquire(blocking=False):
        fn(0, n)
        return
    try:
        while len(_workers) < parts - 1:
            _workers.append(_Worker())
        bounds = [n * i // parts for i in range(parts + 1)]
        err = np.geterr()
        used = _workers[:parts - 1]
        for i, worker in enumerate(used):
            worker.job = (fn, err, bounds[i], bounds[i + 1])
            worker.go.release()
        try:
            fn(bounds[-2], bounds[-1])
        finally:
            errors = []
            for worker in used:
                worker.done.acquire()
                if worker.error is not None:
                    errors.append(worker.error)
                    worker.error = None
        if errors:
            raise errors[0]
    finally:
        busy.release()


def _split_ok(args, size):
    """Whether a ufunc over these operands can run in blocks (NumPy floats, one dtype)."""
    if size < MIN_PARALLEL:
        return None
    dt = None
    for a in args:
        if type(a) is np.ndarray:
            if dt is None:
                dt = a.dtype
            elif a.dtype != dt:
                return None
        elif type(a) not in (float, int) and not (isinstance(a, np.generic) and a.dtype == dt):
            return None
    return dt if dt in _FLOATS else None


def ufunc(xp, f, *args):
    """``f(*args)`` for a NumPy ufunc ``f``, in blocks over the pool for large float arrays."""
    if xp is not np:
        return getattr(xp, f.__name__)(*args)
    for a in args:
        if type(a) is np.ndarray and a.size >= MIN_PARALLEL:
            return _blocked_ufunc(f, args)
    return f(*args)


def _blocked_ufunc(f, args, out=None):
    arrays = [a for a in args if type(a) is np.ndarray]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    size = 1
    for s in shape:
        size *= s
    dt = _split_ok(args, size)
    if dt is None or (out is not None and (out.dtype != dt or not out.flags.c_contiguous)):
        return f(*args) if out is None else f(*args, out=out)
    if out is None:
        out = np.empty(shape, dt)
    if all(a.shape == shape and a.flags.c_contiguous for a in arrays):
        flat = [a.reshape(-1) if type(a) is np.ndarray else a for a in args]
        o = out.reshape(-1)
        parallel_for(size, lambda s, e: f(*[a[s:e] if type(a) is np.ndarray else a for a in flat],
                                          out=o[s:e]))
        return out
    lead = shape[0]
    nd = len(shape)
    split = [type(a) is np.ndarray and a.ndim == nd and a.shape[0] == lead for a in args]
    parallel_for(lead, lambda s, e: f(*[a[s:e] if k else a for a, k in zip(args, split)],
                                      out=out[s:e]), cost=size // lead)
    return out


def add(a, b):
    """``a + b`` (gradient accumulation), in blocks when both are NumPy arrays."""
    if type(a) is np.ndarray and type(b) is np.ndarray:
        return ufunc(np, np.add, a, b)
    return a + b


def add_(a, b):
    """``a += b`` in place (gradient accumulation into ``.grad``), in blocks for large NumPy
    arrays of one shape."""
    if type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape \
            and a.size >= MIN_PARALLEL:
        _blocked_ufunc(np.add, (a, b), out=a)
    else:
        a += b
    return a


def blocks(fn, out, *arrays, axis=None):
    """Call ``fn(out_block, *array_blocks)`` over blocks of the leading axis (whole arrays for
    CuPy, small sizes or a reduction ``axis`` 0); ``fn`` must treat rows independently."""
    if (type(out) is not np.ndarray or out.ndim == 0 or out.size < MIN_PARALLEL_ROWS
            or out.shape[0] < 2 or (axis is not None and axis % out.ndim == 0)):
        fn(out, *arrays)
        return out
    parallel_for(out.shape[0], lambda s, e: fn(out[s:e], *(a[s:e] for a in arrays)),
                 grain=MIN_PARALLEL_ROWS, cost=out.size // out.shape[0])
    return out


def copy(a):
    """A C-contiguous copy of ``a`` (``a.copy()``), in blocks for large NumPy arrays."""
    if type(a) is not np.ndarray or a.size < MIN_PARALLEL or a.ndim == 0:
        return a.copy()
    out = np.empty(a.shape, a.dtype)
    parallel_for(a.shape[0], lambda s, e: np.copyto(out[s:e], a[s:e]),
                 cost=a.size // a.shape[0]) if a.shape[0] > 1 else np.copyto(out, a)
    return out


# Fast float sums. NumPy's float32 add.reduce runs about 0.13 ns per element (33 us on
# 512x512) and pays ~70 ns per row along the last axis; np.einsum's contiguous sum loop is
# SIMD and 3x faster. Its lanes add sequentially, so rows are summed in blocks of
# _SUM_BLOCK elements whose sums are added pairwise. Error, as max |sum - exact| / sum|x| over
# float32 rows of 512 to 100000 randn, uniform and exp(randn) values: within 2.6 eps (NumPy's
# pairwise sum: 1.5 eps, torch.sum: 1.8 eps); the whole-array sum (rows of 256): 0.64 eps, as
# NumPy's. Unlike a BLAS gemv against ones, einsum sums a row the same way wherever it lies
# (any block, any alignment), so blocked softmax stays bit-identical to one call.
_FAST_SUM_MIN = 4096       # elements: below this the plain reduction's call is cheaper
_FAST_ROW_MIN = 16         # rows shorter than this: add.reduce (einsum costs +0.5 us a call)
_SUM_BLOCK = 1024
_FLAT_ROW = 256


def _rows_sum(rows):
    """Sums of the rows of a 2-D float array with contiguous rows (einsum, blocked)."""
    c = rows.shape[1]
    if c <= 2 * _SUM_BLOCK:
        return np.einsum("ij->i", rows)
    m = c // _SUM_BLOCK
    head = rows[:, :m * _SUM_BLOCK].reshape(rows.shape[0], m, _SUM_BLOCK)
    total = np.add.reduce(np.einsum("ijk->ij", head), axis=1)
    if m * _SUM_BLOCK < c:
        total += np.einsum("ij->i", rows[:, m * _SUM_BLOCK:])
    return total


def row_sum(a):
    """``a.sum(axis=-1, keepdims=True)``; C-contiguous NumPy float32/float64 arrays with rows of
    ``_FAST_ROW_MIN`` elements or more take the fast einsum path described above (chosen by the
    row length alone, so a row's sum never depends on how many rows come with it)."""
    if type(a) is not np.ndarray or a.ndim == 0 or a.shape[-1] < _FAST_ROW_MIN \
            or a.dtype not in _FLOATS or not a.flags.c_contiguous:
        return np.add.reduce(a, axis=-1, keepdims=True) if type(a) is np.ndarray \
            else a.sum(axis=-1, keepdims=True)
    c = a.shape[-1]
    return _rows_sum(a.reshape(-1, c)).reshape(a.shape[:-1] + (1,))


def _flat_sum(flat):
    """Sum of a contiguous 1-D float array: rows of ``_FLAT_ROW`` added pairwise, + the tail."""
    n = flat.size
    head = n - n % _FLAT_ROW
    total = np.add.reduce(np.einsum("ij->i", flat[:head].reshape(-1, _FLAT_ROW)))
    return total + flat[head:].sum() if head < n else total


def sum_all(x, dtype=None):
    """``x.sum(dtype=dtype)``; float arrays take the fast path above, a large one as
    per-thread partial sums added in order (as PyTorch's parallel reduction does), so the last
    bits may differ from NumPy's."""
    if type(x) is not np.ndarray or x.size < _FAST_SUM_MIN or x.dtype not in _FLOATS \
            or (dtype is not None and np.dtype(dtype) != x.dtype) \
            or (x.size < MIN_PARALLEL and not x.flags.c_contiguous):
        return x.sum(dtype=dtype)
    flat = x.reshape(-1) if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(-1)
    parts = max(1, min(num_threads(), x.size // MIN_PARALLEL))
    if parts == 1:
        return _flat_sum(flat)
    partial = np.zeros(parts, x.dtype)
    n = flat.size

    def run(s, e):
        for i in range(s, e):
            partial[i] = _flat_sum(flat[n * i // parts:n * (i + 1) // parts])

    parallel_for(parts, run, grain=1)
    return partial.sum()
