"""Tensor factories: tensor, zeros, ones, arange, rand, randn, ... (PyTorch signatures)."""
import math
import numbers

import numpy as np

from . import backends, dtypes
from .device import as_device
from .random import device_rng, draw_normal, draw_uniform
from .tensor import Tensor, _move, _to_array

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange",
           "linspace", "eye", "zeros_like", "ones_like", "full_like", "empty_like", "rand",
           "randn", "randint", "randperm", "multinomial", "normal", "bernoulli", "rand_like",
           "randn_like", "randint_like", "scalar_tensor"]


def _size(size, op):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = int(s.item())
        if not isinstance(s, numbers.Integral) or isinstance(s, bool):
            raise TypeError(f"{op}: size must be a sequence of ints, got {size!r}")
        if s < 0:
            raise RuntimeError(f"{op}: negative dimension {s} in size {tuple(size)}")
        out.append(int(s))
    return tuple(out)


def _wrap(arr, dtype, device, requires_grad, default=None):
    dt = dtypes.as_dtype(dtype) if dtype is not None else (default or dtypes.get_default_dtype())
    if arr.dtype != dt.np:
        arr = arr.astype(dt.np)
    dev = as_device(device)
    if dev.type != "cpu":
        arr = _move(arr, dev)
    t = Tensor._make(arr, device=dev)
    if requires_grad:
        t.requires_grad = True
    return t


def _build(make, dtype, device, requires_grad, default=None):
    """Wrap ``make(xp, dev)``, run with ``device`` current so arrays are allocated there."""
    dt = dtypes.as_dtype(dtype) if dtype is not None else (default or dtypes.get_default_dtype())
    dev = as_device(device)
    with backends.cuda.device_guard(dev.index):
        arr = make(backends.xp_for(dev), dev)
        if arr.dtype != dt.np:
            arr = arr.astype(dt.np)
    t = Tensor._make(arr, device=dev)
    if requires_grad:
        t.requires_grad = True
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor copying ``data`` (nested lists, numbers, arrays or tensors)."""
    dev = as_device(device)
    arr = _to_array(data, dtype, dev)
    if arr is (data._array if isinstance(data, Tensor) else data):
        arr = arr.copy()
    t = Tensor._make(arr, device=dev)
    if requires_grad:
        t.requires_grad = True
    return t


def scalar_tensor(value, dtype=None, device=None, requires_grad=False):
    """A 0-d tensor."""
    return tensor(value, dtype=dtype or dtypes.get_default_dtype(), device=device,
                  requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares memory with ``data`` when no conversion is needed."""
    if isinstance(data, Tensor) and (dtype is None or dtypes.as_dtype(dtype) is data.dtype) \
            and (device is None or as_device(device) == data.device):
        return data
    dev = as_device(device)
    return Tensor._make(_to_array(data, dtype, dev), device=dev)


def from_numpy(ndarray):
    """A tensor sharing memory with a NumPy array."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(ndarray).__name__}")
    return Tensor._make(_to_array(ndarray))


def zeros(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros."""
    shape, dt = _size(size, "zeros"), dtypes.as_dtype(dtype or dtypes.get_default_dtype())
    return _build(lambda xp, dev: xp.zeros(shape, dt.np), dt, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of ones."""
    shape, dt = _size(size, "ones"), dtypes.as_dtype(dtype or dtypes.get_default_dtype())
    return _build(lambda xp, dev: xp.ones(shape, dt.np), dt, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor (genesis zero-fills it)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor filled with ``fill_value``; dtype inferred from the value like PyTorch."""
    if dtype is None:
        dtype = dtypes.scalar_dtype(fill_value)
    shape, dt = _size((size,), "full"), dtypes.as_dtype(dtype)
    return _build(lambda xp, dev: xp.full(shape, fill_value, dt.np), dt, device, requires_grad)


def _like(input, dtype, device):
    return (dtype if dtype is not None else input.dtype,
            device if device is not None else input.device)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    """Zeros with ``input``'s shape, dtype and device."""
    dt, dev = _like(input, dtype, device)
    return zeros(tuple(input.shape), dtype=dt, device=dev, requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    """Ones with ``input``'s shape, dtype and device."""
    dt, dev = _like(input, dtype, device)
    return ones(tuple(input.shape), dtype=dt, device=dev, requires_grad=requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor like ``input``."""
    return zeros_like(input, dtype, device, requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    """``fill_value`` with ``input``'s shape, dtype and device."""
    dt, dev = _like(input, dtype, device)
    return full(tuple(input.shape), fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    is_float = any(isinstance(v, float) for v in vals)
    default = dtypes.get_default_dtype() if is_float else dtypes.int64
    n = max(0, math.ceil((vals[1] - vals[0]) / vals[2]))
    return _build(lambda xp, dev: vals[0] + xp.arange(n, dtype=np.float64 if is_float
                                                      else np.int64) * vals[2],
                  dtype, device, requires_grad, default=default)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    return _build(lambda xp, dev: xp.linspace(start, end, steps), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    """Identity matrix of shape (n, m)."""
    return _build(lambda xp, dev: xp.eye(n, m), dtype, device, requires_grad)


# --------------------------------------------------------------------------- random
def _float_dt(dtype, op):
    dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    if not dt.is_floating_point:
        raise TypeError(f"{op}: dtype must be floating point, got {dt}")
    return dt


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    dt, shape = _float_dt(dtype, "rand"), _size(size, "rand")
    return _build(lambda xp, dev: draw_uniform(shape, dt.np, generator=generator, device=dev),
                  dt, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples."""
    dt, shape = _float_dt(dtype, "randn"), _size(size, "randn")
    return _build(lambda xp, dev: draw_normal(shape, dt.np, generator=generator, device=dev),
                  dt, device, requires_grad)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None,
            requires_grad=False):
    """Integers uniform in [low, high); ``randint(high, size)`` also works."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint: expected randint(low, high, size) or randint(high, size)")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if high <= low:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    shape = _size((size,), "randint")
    return _build(lambda xp, dev: device_rng(dev, generator).integers(low, high, size=shape,
                                                                      dtype=np.int64),
                  dtype, device, requires_grad, default=dtypes.int64)


def randperm(n, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0..n-1."""
    return _build(lambda xp, dev: device_rng(dev, generator).permutation(n).astype(np.int64),
                  dtype, device, requires_grad, default=dtypes.int64)


def normal(mean=0.0, std=1.0, size=None, generator=None, dtype=None, device=None):
    """Normal samples with the given mean and std (numbers or tensors)."""
    m = mean._array if isinstance(mean, Tensor) else mean
    s = std._array if isinstance(std, Tensor) else std
    if size is None:
        size = np.broadcast_shapes(np.shape(m), np.shape(s))
    shape = _size((size,), "normal")
    if device is None:
        device = next((t.device for t in (mean, std) if isinstance(t, Tensor)), None)
    dt = dtype or (mean.dtype if isinstance(mean, Tensor) else None)
    return _build(lambda xp, dev: m + s * device_rng(dev, generator).standard_normal(shape),
                  dt, device, False)


def bernoulli(input, p=None, generator=None):
    """Samples 1 with probability ``input`` (or ``p``), else 0, in ``input``'s dtype."""
    def make(xp, dev):
        probs = input._array if p is None else p
        return device_rng(dev, generator).random(tuple(input.shape)) < probs
    return _build(make, input.dtype, input.device, False)


def multinomial(input, num_samples, replacement=False, generator=None):
    """Sample indices from the rows of ``input`` (non-negative weights)."""
    probs = np.asarray(input.detach().cpu().numpy(), dtype=np.float64)
    if probs.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: input must be 1-D or 2-D, got shape {probs.shape}")
    if (probs < 0).any() or not np.isfinite(probs).all():
        raise RuntimeError("multinomial: probability tensor contains inf, nan or negative values")
    rows = probs.reshape(-1, probs.shape[-1])
    sums = rows.sum(-1, keepdims=True)
    if (sums <= 0).any():
        raise RuntimeError("multinomial: a row of the probability tensor sums to zero")
    if not replacement and num_samples > rows.shape[-1]:
        raise RuntimeError(f"multinomial: cannot sample {num_samples} > {rows.shape[-1]} "
                           "categories without replacement")
    rng = device_rng(None, generator)
    p = rows / sums
    if replacement:
        cdf = np.cumsum(p, axis=-1)
        cdf[:, -1] = 1.0
        u = rng.random((rows.shape[0], num_samples))
        out = (u[:, :, None] >= cdf[:, None, :]).sum(-1)
        out = np.minimum(out, rows.shape[-1] - 1)
    else:
        # Gumbel-top-k: sampling without replacement in one vectorised pass.
        with np.errstate(divide="ignore"):
            keys = np.log(p) - np.log(-np.log(rng.random(p.shape)))
        out = np.argsort(-keys, axis=-1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64).reshape(probs.shape[:-1] + (num_samples,))
    return _wrap(out, dtypes.int64, input.device, False)


def rand_like(input, dtype=None, device=None, requires_grad=False):
    """Uniform samples shaped like ``input``."""
    dt, dev = _like(input, dtype, device)
    return rand(tuple(input.shape), dtype=dt, device=dev, requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad=False):
    """Normal samples shaped like ``input``."""
    dt, dev = _like(input, dtype, device)
    return randn(tuple(input.shape), dtype=dt, device=dev, requires_grad=requires_grad)


def randint_like(input, low, high=None, dtype=None, device=None):
    """Random integers shaped like ``input``."""
    dt, dev = _like(input, dtype, device)
    return randint(low, high, tuple(input.shape), dtype=dt, device=dev)
