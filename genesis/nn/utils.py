"""Gradient utilities: clipping by norm or value, and flattening parameters to one vector."""
import math

import numpy as np

from .. import backends
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector",
           "vector_to_parameters"]


def _as_list(parameters):
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _grads(parameters):
    return [p.grad for p in _as_list(parameters) if p.grad is not None]


def _vector_norm(xp, arr, norm_type):
    """The ``norm_type`` norm of ``arr`` flattened (inf, 0 and any p > 0)."""
    flat = arr.reshape(-1)
    if norm_type == math.inf:
        return xp.abs(flat).max() if flat.size else xp.zeros((), flat.dtype)
    if norm_type == -math.inf:
        return xp.abs(flat).min() if flat.size else xp.full((), math.inf, flat.dtype)
    if norm_type == 0:
        return xp.asarray((flat != 0).sum(), dtype=flat.dtype)
    if norm_type == 2:
        return xp.sqrt(xp.dot(flat, flat))
    if norm_type == 1:
        return xp.abs(flat).sum()
    return (xp.abs(flat) ** norm_type).sum() ** (1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale gradients in place so their joint norm is at most ``max_norm``; return that norm.

    The total norm is the ``norm_type`` norm of the per-parameter gradient norms (``inf`` gives
    the largest absolute entry), returned as a 0-d tensor computed before clipping.
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        from ..creation import tensor
        return tensor(0.0)
    xp = backends.xp_for(grads[0].device)
    dt = grads[0]._array.dtype
    work = dt if dt.kind == "f" and dt.itemsize >= 4 else np.dtype(np.float32)
    norms = xp.stack([_vector_norm(xp, g._array.astype(work, copy=False), norm_type)
                      for g in grads])
    total = _vector_norm(xp, norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} for gradients "
                           "from `parameters` is non-finite, so it cannot be clipped. To disable "
                           "this error and scale the gradients by the non-finite norm anyway, "
                           "set `error_if_nonfinite=False`")
    coef = xp.minimum(work.type(max_norm) / (total + work.type(1e-6)), work.type(1.0))
    for g in grads:
        g._array *= coef.astype(g._array.dtype)
        g._version[0] += 1
    return Tensor._make(xp.asarray(total).astype(dt), device=grads[0].device)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        xp = backends.xp_for(g.device)
        xp.clip(g._array, -clip_value, clip_value, out=g._array)
        g._version[0] += 1


def parameters_to_vector(parameters):
    """Concatenate the flattened parameters into one 1-D tensor (differentiable)."""
    from .. import ops
    params = _as_list(parameters)
    device = params[0].device if params else None
    flat = []
    for p in params:
        if p.device != device:
            raise TypeError(f"parameters_to_vector: found parameters on {device} and "
                            f"{p.device}; all must be on one device")
        flat.append(ops.reshape(p, (-1,)))
    return ops.cat(flat)


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D tensor ``vec`` into the parameters, in place."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a genesis Tensor, got "
                        f"{type(vec).__name__}")
    params = _as_list(parameters)
    total = sum(p.numel() for p in params)
    if vec.dim() != 1 or vec.numel() != total:
        raise ValueError(f"vector_to_parameters: expected a 1-D vector of {total} elements, "
                         f"got shape {tuple(vec.shape)}")
    offset = 0
    for p in params:
        n = p.numel()
        p._array[...] = vec._array[offset:offset + n].reshape(p._array.shape).astype(p._array.dtype)
        p._version[0] += 1
        offset += n
