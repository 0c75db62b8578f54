"""Fused Adam/AdamW and SGD updates: the whole update of a parameter block runs while the block
is in cache, the blocks of every parameter of a step split over the CPU thread pool at once,
into preallocated scratch.

An optimizer step collects one ``Update`` per parameter and hands them all to ``run``: NumPy
parameters are cut into blocks of ``BLOCK`` elements and the blocks of all parameters are
shared out among the threads at once (small parameters ride along with large ones instead of
each running alone). The kernels compute PyTorch's single-tensor updates; Adam folds its two
bias corrections into one step scale and one epsilon (``m * (-lr * c2 / c1) / (sqrt(v) + eps *
c2)``, ``c_i`` the corrections' square root and complement), which differs from PyTorch's
order of operations only in rounding.
"""
import math

import numpy as np

from ..backends import parallel

__all__ = ["BLOCK", "Update", "adam_update", "sgd_update", "run"]

# Elements per block. AdamW over 17.5M parameters, idle 2-core machine: two threads 32K 33.5,
# 64K 23.2, 128K 18.9, 256K 19.2, 1M 20.4 ms (each NumPy call's Python part holds the GIL, so
# small blocks serialize the threads); one thread 64K 26.4, 128K 26.4, 256K 27.7 ms.
BLOCK = 1 << 17


class Update:
    """A deferred in-place update: ``kernel(xp, *arrays, *scratch, *hyper)`` over ``arrays``
    (written in place; the gradient is only read) with ``n_scratch`` work arrays of ``dtype``."""

    __slots__ = ("xp", "kernel", "arrays", "n_scratch", "dtype", "hyper")

    def __init__(self, xp, kernel, arrays, n_scratch, dtype, hyper):
        self.xp, self.kernel, self.arrays = xp, kernel, arrays
        self.n_scratch, self.dtype, self.hyper = n_scratch, dtype, hyper

    def blockable(self):
        """Whether every array is a C-contiguous NumPy array (so it can run in flat blocks)."""
        return self.xp is np and all(type(a) is np.ndarray and a.flags.c_contiguous
                                     for a in self.arrays)

    def run_whole(self):
        """Run the kernel once over the whole arrays (CuPy, strided or overlapping arrays)."""
        xp = self.xp
        scratch = (xp.empty(self.arrays[0].shape, self.dtype) for _ in range(self.n_scratch))
        self.kernel(xp, *self.arrays, *scratch, *self.hyper)


def run(updates):
    """Apply ``updates`` (a list of ``Update``): blockable ones over the thread pool together,
    the others one by one; in order, one at a time, if any two share memory."""
    blocked = []
    for u in updates:
        if u.blockable():
            blocked.append(u)
        else:
            u.run_whole()
    if not blocked:
        return
    if _overlap(blocked):
        for u in blocked:
            _run_blocks([u])
        return
    _run_blocks(blocked)


def _overlap(updates):
    """Whether arrays of two different updates share memory (aliased parameters)."""
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes, i)
                   for i, u in enumerate(updates) for a in u.arrays)
    end, owner = -1, -1
    for lo, hi, i in spans:
        if lo < end and i != owner:
            return True
        if hi > end:
            end, owner = hi, i
    return False


def _run_blocks(updates):
    flat = [[a.reshape(-1) for a in u.arrays] for u in updates]
    blocks = [(u.kernel, arrays, u.dtype, u.n_scratch, u.hyper, s,
               min(BLOCK, arrays[0].size - s))
              for u, arrays in zip(updates, flat) for s in range(0, arrays[0].size, BLOCK)]

    def part(start, stop):
        scratch = {}
        for kernel, arrays, dtype, n, hyper, s, c in blocks[start:stop]:
            work = scratch.get(dtype)
            if work is None:
                work = scratch[dtype] = [np.empty(BLOCK, dtype) for _ in range(3)]
            e = s + c
            kernel(np, *[a[s:e] for a in arrays],
                   *(work[:n] if c == BLOCK else [t[:c] for t in work[:n]]), *hyper)

    parallel.parallel_for(len(blocks), part, cost=BLOCK)


def adam_update(xp, p, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps,
                weight_decay, decoupled, maximize):
    """The ``Update`` of one Adam(W) step of ``p`` and its moments (``max_exp_avg_sq`` None
    unless amsgrad); ``grad`` is only read."""
    dtype = np.result_type(p.dtype, grad.dtype)
    correction2 = math.sqrt(1 - beta2 ** step)
    hyper = (lr, beta1, beta2, weight_decay, decoupled, maximize,
             -lr * correction2 / (1 - beta1 ** step), eps * correction2)
    arrays = [p, grad, exp_avg, exp_avg_sq]
    if max_exp_avg_sq is not None:
        arrays.append(max_exp_avg_sq)
        return Update(xp, _adam_amsgrad_block, arrays, 3, dtype, hyper)
    return Update(xp, _adam_block, arrays, 3, dtype, hyper)


def _adam_amsgrad_block(xp, p, g, m, v, vmax, t1, t2, tg, *hyper):
    _adam_block(xp, p, g, m, v, t1, t2, tg, *hyper, vmax=vmax)


def _adam_block(xp, p, g, m, v, t1, t2, tg, lr, beta1, beta2, wd, decoupled, maximize,
                step_scale, eps_scaled, vmax=None):
    if maximize:
        g = xp.negative(g, out=tg)
    if wd != 0:
        if decoupled:
            p *= 1 - lr * wd
        else:
            xp.multiply(p, wd, out=t1)
            g = xp.add(g, t1, out=tg)
    weight = 1 - beta1
    xp.subtract(g, m, out=t1)
    if abs(weight) < 0.5:
        t1 *= weight
        m += t1
    else:
        t1 *= 1 - weight
        xp.subtract(g, t1, out=m)
    v *= beta2
    xp.multiply(g, 1 - beta2, out=t1)
    t1 *= g
    v += t1
    if vmax is not None:
        xp.maximum(vmax, v, out=vmax)
        xp.sqrt(vmax, out=t1)
    else:
        xp.sqrt(v, out=t1)
    t1 += eps_scaled
    xp.multiply(m, step_scale, out=t2)
    t2 /= t1
    p += t2


def sgd_update(xp, p, grad, momentum_buffer, *, first, lr, momentum, dampening, weight_decay,
               nesterov, maximize):
    """The ``Update`` of one SGD step of ``p`` (and ``momentum_buffer`` when momentum is used;
    with ``first`` the buffer is filled with the gradient, as PyTorch's first step does)."""
    dtype = np.result_type(p.dtype, grad.dtype)
    hyper = (first, lr, momentum, dampening, weight_decay, nesterov, maximize)
    if momentum_buffer is None:
        return Update(xp, _sgd_plain_block, [p, grad], 2, dtype, hyper)
    return Update(xp, _sgd_block, [p, grad, momentum_buffer], 2, dtype, hyper)


def _sgd_plain_block(xp, p, g, t, tg, *hyper):
    _sgd_block(xp, p, g, None, t, tg, *hyper)


def _sgd_block(xp, p, g, buf, t, tg, first, lr, momentum, dampening, wd, nesterov, maximize):
    if maximize:
        g = xp.negative(g, out=tg)
    if wd != 0:
        xp.multiply(p, wd, out=t)
        g = xp.add(g, t, out=tg)
    if buf is not None:
        if first:
            buf[...] = g
        else:
            buf *= momentum
            xp.multiply(g, 1 - dampening, out=t)
            buf += t
        if nesterov:
            xp.multiply(buf, momentum, out=t)
            g = xp.add(g, t, out=tg)
        else:
            g = buf
    xp.multiply(g, -lr, out=t)
    p += t
