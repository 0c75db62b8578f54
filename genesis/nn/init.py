"""In-place parameter initialisers with PyTorch's names and formulas, drawn from genesis's RNG.

Every draw goes through ``genesis.random``'s generator, so ``genesis.manual_seed`` makes
initialisation reproducible. Values are drawn on the host and copied into the tensor.
"""
import contextlib
import functools
import math
import warnings

import numpy as np

from ..backends import is_array
from ..ops._special import erf
from ..random import _rng, draw_normal, draw_uniform
from ..tensor import _move

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
           "zeros_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
           "skip_init"]

_skipping = [False]


@contextlib.contextmanager
def skip_init():
    """Within this block every initialiser leaves its tensor untouched (for loading weights
    that will be overwritten anyway: no random draws, no wasted time or memory)."""
    previous = _skipping[0]
    _skipping[0] = True
    try:
        yield
    finally:
        _skipping[0] = previous


def _skippable(fn):
    @functools.wraps(fn)
    def wrapper(tensor, *args, **kwargs):
        if _skipping[0]:
            return tensor
        return fn(tensor, *args, **kwargs)
    return wrapper


def _fill(tensor, values):
    """Write ``values`` (host, or already on the tensor's GPU) into ``tensor`` in place."""
    arr = values if is_array(values) else np.asarray(values)
    arr = arr.astype(tensor._array.dtype, copy=False)
    if tensor.device.type != "cpu" and isinstance(arr, np.ndarray):
        arr = _move(arr, tensor.device)
    tensor._array[...] = arr
    tensor._version[0] += 1
    return tensor


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (as ``torch.nn.init.calculate_gain``)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         f"dimensions (got shape {tuple(tensor.shape)})")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _empty_warning(tensor, op):
    if tensor.numel() == 0:
        warnings.warn(f"{op}: initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


@_skippable
def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with samples from U(a, b)."""
    return _fill(tensor, draw_uniform(tuple(tensor.shape), tensor._array.dtype, a, b, generator,
                                      tensor.device))


@_skippable
def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with samples from N(mean, std^2)."""
    return _fill(tensor, draw_normal(tuple(tensor.shape), tensor._array.dtype, mean, std,
                                     generator, tensor.device))


def _erfinv(y):
    """Inverse error function: Giles' approximation polished by two Newton steps."""
    w = -np.log((1.0 - y) * (1.0 + y))
    central = w < 5.0
    wc = np.where(central, w - 2.5, np.sqrt(w) - 3.0)
    coeffs_c = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
    coeffs_t = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)
    pc = np.zeros_like(wc)
    pt = np.zeros_like(wc)
    for cc, ct in zip(coeffs_c, coeffs_t):
        pc = pc * wc + cc
        pt = pt * wc + ct
    x = np.where(central, pc, pt) * y
    for _ in range(2):
        x = x - (erf(np, x) - y) / (2.0 / math.sqrt(math.pi) * np.exp(-x * x))
    return x


def _norm_cdf(x):
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


@_skippable
def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std^2) samples truncated to [a, b] (inverse-CDF, drawn on the host)."""
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")

    lo, hi = _norm_cdf((a - mean) / std), _norm_cdf((b - mean) / std)
    u = _rng(generator).uniform(2 * lo - 1, 2 * hi - 1, tuple(tensor.shape))
    values = np.clip(_erfinv(u) * (std * math.sqrt(2.0)) + mean, a, b)
    return _fill(tensor, values)


@_skippable
def constant_(tensor, val):
    """Fill with ``val``."""
    return _fill(tensor, np.full(tuple(tensor.shape), val))


def ones_(tensor):
    """Fill with ones."""
    return constant_(tensor, 1)


def zeros_(tensor):
    """Fill with zeros."""
    return constant_(tensor, 0)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: U(-r, r) with r = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan)."""
    if _empty_warning(tensor, "kaiming_uniform_"):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: N(0, std^2) with std = gain / sqrt(fan)."""
    if _empty_warning(tensor, "kaiming_normal_"):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)
