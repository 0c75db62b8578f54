"""Scatter-accumulate with repeated indices (``ufunc.at``), on NumPy and on CuPy.

CuPy's ``ufunc.at`` exists only for add/maximum/minimum and, for add, only for dtypes with a
CUDA ``atomicAdd`` (float32, float64, int32, uint32, uint64; float16 on recent GPUs, never
bfloat16). These helpers give every genesis dtype one behaviour on both devices.
"""
import numpy as np

_ATOMIC_ADD = {np.dtype(t) for t in (np.float32, np.float64, np.int32, np.uint32, np.uint64)}


def scatter_add(xp, target, index, values):
    """``target[index] += values`` in place, repeated indices accumulating."""
    if xp is np:
        np.add.at(target, index, values)
        return
    dt = target.dtype
    if dt in _ATOMIC_ADD:
        xp.add.at(target, index, values)
    elif dt == np.int64:
        # two's-complement addition is the same bit pattern as unsigned addition mod 2^64
        vals = xp.ascontiguousarray(xp.broadcast_to(xp.asarray(values, dtype=np.int64),
                                                    target[index].shape))
        xp.add.at(target.view(np.uint64), index, vals.view(np.uint64))
    else:
        # half floats accumulate in float32, small integers and bool in int32
        floating = dt.kind == "f" or dt.name == "bfloat16"
        work = target.astype(np.float32 if floating else np.int32)
        xp.add.at(work, index, xp.asarray(values).astype(work.dtype))
        target[...] = work.astype(dt)

def scatter_multiply(xp, target, index, values):
    """``target[index] *= values`` in place, repeated indices multiplying in turn."""
    if xp is np:
        np.multiply.at(target, index, values)
        return
    work = target if target.flags.c_contiguous else xp.ascontiguousarray(target)
    flat = work.reshape(-1)
    index = xp.broadcast_arrays(*(index if isinstance(index, tuple) else (index,)))
    linear = xp.ravel_multi_index(tuple(index), target.shape).reshape(-1)
    vals = xp.broadcast_to(xp.asarray(values, dtype=target.dtype), index[0].shape).reshape(-1)
    while linear.size:
        # one round multiplies the first remaining occurrence of every index: no clashes
        uniq, first = xp.unique(linear, return_index=True)
        flat[uniq] *= vals[first]
        rest = xp.ones(linear.size, dtype=bool)
        rest[first] = False
        linear, vals = linear[rest], vals[rest]
    if work is not target:
        target[...] = work
