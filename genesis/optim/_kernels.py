"""Fused Adam/AdamW and SGD updates: every pass over a parameter runs block by block while the
block is in cache, blocks split over the CPU thread pool, with preallocated scratch (``out=``).

Each kernel performs the same floating-point operations in the same order as PyTorch's
single-tensor update, so results match it as the unfused NumPy code did.
"""
import math

import numpy as np

from ..backends import parallel

__all__ = ["adam_update", "sgd_update"]

BLOCK = 1 << 15  # elements per block: a block of every array of one update fits in L2


def _run(xp, kernel, arrays, n_scratch, dtype, hyper):
    """Run ``kernel(xp, *arrays, *scratch, *hyper)`` over blocks (whole arrays unless every
    array is a C-contiguous NumPy array)."""
    if xp is not np or not all(type(a) is np.ndarray and a.flags.c_contiguous for a in arrays):
        kernel(xp, *arrays, *(xp.empty(arrays[0].shape, dtype) for _ in range(n_scratch)), *hyper)
        return
    flat = [a.reshape(-1) for a in arrays]

    def part(start, stop):
        scratch = [np.empty(min(BLOCK, stop - start), dtype) for _ in range(n_scratch)]
        for s in range(start, stop, BLOCK):
            c = min(BLOCK, stop - s)
            kernel(np, *(a[s:s + c] for a in flat), *(t[:c] for t in scratch), *hyper)

    parallel.parallel_for(flat[0].size, part)


def adam_update(xp, p, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps,
                weight_decay, decoupled, maximize):
    """One Adam(W) step in place on ``p`` and its moments (``max_exp_avg_sq`` None unless
    amsgrad); ``grad`` is only read."""
    dtype = np.result_type(p.dtype, grad.dtype)
    step_size = lr / (1 - beta1 ** step)
    hyper = (lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step_size,
             math.sqrt(1 - beta2 ** step))
    arrays = [p, grad, exp_avg, exp_avg_sq]
    if max_exp_avg_sq is not None:
        arrays.append(max_exp_avg_sq)
        _run(xp, _adam_amsgrad_block, arrays, 3, dtype, hyper)
    else:
        _run(xp, _adam_block, arrays, 3, dtype, hyper)


def _adam_amsgrad_block(xp, p, g, m, v, vmax, t1, t2, tg, *hyper):
    _adam_block(xp, p, g, m, v, t1, t2, tg, *hyper, vmax=vmax)


def _adam_block(xp, p, g, m, v, t1, t2, tg, lr, beta1, beta2, eps, wd, decoupled, maximize,
                step_size, bias_correction2_sqrt, vmax=None):
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
    t1 /= bias_correction2_sqrt
    t1 += eps
    xp.multiply(m, -step_size, out=t2)
    t2 /= t1
    p += t2


def sgd_update(xp, p, grad, momentum_buffer, *, first, lr, momentum, dampening, weight_decay,
               nesterov, maximize):
    """One SGD step in place on ``p`` (and ``momentum_buffer`` when momentum is used; with
    ``first`` the buffer is filled with the gradient, as PyTorch's first step does)."""
    dtype = np.result_type(p.dtype, grad.dtype)
    hyper = (first, lr, momentum, dampening, weight_decay, nesterov, maximize)
    if momentum_buffer is None:
        _run(xp, _sgd_plain_block, [p, grad], 2, dtype, hyper)
    else:
        _run(xp, _sgd_block, [p, grad, momentum_buffer], 2, dtype, hyper)


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

