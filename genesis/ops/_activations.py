"""Activation maths on raw arrays (NumPy or CuPy via ``xp``), written once for every op that
needs it: the sigmoid family, GELU (exact and tanh) and ReLU, each with its derivative."""
import math

import numpy as np

from ._special import erf

__all__ = ["sigmoid", "silu", "silu_grad", "gelu", "gelu_grad", "act_and_grad", "ACTIVATIONS"]

SQRT_2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)   # GELU tanh approximation: outer factor
GELU_TANH_COEF = 0.044715                   # GELU tanh approximation: cubic coefficient
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# PyTorch's kernels raise no floating-point warnings: exp(-x) overflowing to inf for very
# negative x is the formula's normal way to reach the limit 0, and inf inputs give inf * 0 = NaN
# in silu exactly as PyTorch's formula does.
_QUIET = {"over": "ignore", "under": "ignore", "invalid": "ignore"}


def _sigmoid(xp, x):
    """``1 / (1 + exp(-x))`` in four passes over one fresh array (half types via float32)."""
    work = x.dtype if x.dtype.itemsize >= 4 else np.float32
    r = xp.empty(x.shape, work)
    xp.negative(x, out=r)
    xp.exp(r, out=r)
    r += 1
    xp.divide(1, r, out=r)    # a SIMD loop in NumPy, unlike np.reciprocal
    return r if work == x.dtype else r.astype(x.dtype)


def sigmoid(xp, x):
    """``1 / (1 + exp(-x))``, PyTorch's formula and branch-free: ``exp(-x)`` overflowing to inf
    gives the exact limit 0. Half types are computed in float32 (their ``exp`` overflows early)
    and rounded once, as PyTorch does."""
    with np.errstate(**_QUIET):
        return _sigmoid(xp, x)


def silu(xp, x):
    """``x * sigmoid(x)``."""
    with np.errstate(**_QUIET):
        s = _sigmoid(xp, x)
        s *= x
    return s


def silu_grad(xp, x, s=None):
    """``d silu / dx = s (1 + x (1 - s))`` with ``s = sigmoid(x)`` (pass ``s`` if known)."""
    with np.errstate(**_QUIET):
        if s is None:
            s = _sigmoid(xp, x)
        d = 1 - s
        d *= x
        d += 1
        d *= s
    return d


def _gelu_tanh_inner(xp, x):
    return xp.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x))


def _gelu_half(xp, x, approximate):
    """``(1 + erf(x / sqrt 2)) / 2`` (the normal CDF) or ``(1 + tanh(...)) / 2``, and the tanh
    (None for the exact formula). ``x * half`` is bit-identical to ``0.5 * x * (1 + ...)``:
    halving is exact."""
    t = _gelu_tanh_inner(xp, x) if approximate == "tanh" else None
    h = t + 1 if t is not None else erf(xp, x / SQRT_2)
    if t is None:
        h += 1
    h *= 0.5
    return h, t


def _gelu_grad_from(xp, x, h, t):
    """``d gelu / dx`` given ``_gelu_half``'s results."""
    if t is not None:
        return h + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_COEF * x * x)
    return h + x * INV_SQRT_2PI * xp.exp(-0.5 * x * x)


def gelu(xp, x, approximate="none"):
    """``x * Phi(x)``; ``approximate="tanh"`` uses the tanh formula (``gelu_pytorch_tanh``)."""
    h, _ = _gelu_half(xp, x, approximate)
    h *= x
    return h


def gelu_grad(xp, x, approximate="none"):
    """``d gelu / dx`` for either formula."""
    h, t = _gelu_half(xp, x, approximate)
    return _gelu_grad_from(xp, x, h, t)


# HF ``hidden_act`` names -> the activation computed
ACTIVATIONS = {"silu": "silu", "swish": "silu", "relu": "relu", "gelu": "gelu",
               "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}


def act_and_grad(xp, name, x, need_grad):
    """``act(x)`` and (when ``need_grad``) ``act'(x)`` for a name of ``ACTIVATIONS``' values."""
    if name == "silu":
        with np.errstate(**_QUIET):
            s = _sigmoid(xp, x)
            act = x * s
            if not need_grad:
                return act, None
            d = 1 - s        # silu' = s (1 + x (1 - s)) = s + act (1 - s): three passes
            d *= act
            d += s
        return act, d
    if name == "relu":
        pos = x > 0
        return x * pos, (pos.astype(x.dtype) if need_grad else None)
    h, t = _gelu_half(xp, x, "tanh" if name == "gelu_tanh" else "none")   # one erf / tanh
    return x * h, (_gelu_grad_from(xp, x, h, t) if need_grad else None)
