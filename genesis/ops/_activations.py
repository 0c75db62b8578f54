"""Activation maths on raw arrays (NumPy or CuPy via ``xp``), written once for every op that
needs it: the sigmoid family, GELU (exact and tanh) and ReLU, each with its derivative."""
import math

from ._special import erf

__all__ = ["sigmoid", "silu", "silu_grad", "gelu", "gelu_grad", "act_and_grad", "ACTIVATIONS"]

SQRT_2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)   # GELU tanh approximation: outer factor
GELU_TANH_COEF = 0.044715                   # GELU tanh approximation: cubic coefficient
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def sigmoid(xp, x):
    """``1 / (1 + exp(-x))`` without overflow: only ``exp(-|x|)`` is ever computed."""
    ez = xp.exp(-xp.abs(x))
    r = 1 / (1 + ez)
    return xp.where(x >= 0, r, ez * r)


def silu(xp, x):
    """``x * sigmoid(x)``."""
    return x * sigmoid(xp, x)


def silu_grad(xp, x, s=None):
    """``d silu / dx = s (1 + x (1 - s))`` with ``s = sigmoid(x)`` (pass ``s`` if known)."""
    if s is None:
        s = sigmoid(xp, x)
    return s * (1 + x * (1 - s))


def _gelu_tanh_inner(xp, x):
    return xp.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x))


def gelu(xp, x, approximate="none"):
    """``x * Phi(x)``; ``approximate="tanh"`` uses the tanh formula (``gelu_pytorch_tanh``)."""
    if approximate == "tanh":
        return 0.5 * x * (1 + _gelu_tanh_inner(xp, x))
    return 0.5 * x * (1 + erf(xp, x / SQRT_2))


def gelu_grad(xp, x, approximate="none"):
    """``d gelu / dx`` for either formula."""
    if approximate == "tanh":
        t = _gelu_tanh_inner(xp, x)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * \
            (1 + 3 * GELU_TANH_COEF * x * x)
    return 0.5 * (1 + erf(xp, x / SQRT_2)) + x * INV_SQRT_2PI * xp.exp(-0.5 * x * x)


# HF ``hidden_act`` names -> the activation computed
ACTIVATIONS = {"silu": "silu", "swish": "silu", "relu": "relu", "gelu": "gelu",
               "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}


def act_and_grad(xp, name, x, need_grad):
    """``act(x)`` and (when ``need_grad``) ``act'(x)`` for a name of ``ACTIVATIONS``' values."""
    if name == "silu":
        s = sigmoid(xp, x)
        return x * s, (silu_grad(xp, x, s) if need_grad else None)
    if name == "relu":
        pos = x > 0
        return x * pos, (pos.astype(x.dtype) if need_grad else None)
    approximate = "tanh" if name == "gelu_tanh" else "none"
    return gelu(xp, x, approximate), (gelu_grad(xp, x, approximate) if need_grad else None)
