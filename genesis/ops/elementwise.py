"""Elementwise ops: arithmetic with broadcasting and PyTorch promotion, unary maths, casts."""
import math

import ml_dtypes
import numpy as np

from .. import backends, dtypes
from ..backends import parallel
from ..amp.autocast_mode import autocast_op
from ..autograd import Function, unbroadcast
from ..device import as_device
from ..tensor import Tensor
from ._activations import sigmoid as _sigmoid
from ._special import erf as _erf

__all__ = ["add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod", "pow",
           "neg", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt",
           "square", "reciprocal", "abs", "sign", "sin", "cos", "tan", "tanh", "sigmoid", "erf",
           "relu", "clamp", "clip", "maximum", "minimum", "where", "masked_fill", "lerp",
           "eq", "ne", "lt", "le", "gt", "ge", "equal", "allclose", "isclose", "isnan",
           "isinf", "isfinite", "logical_and", "logical_or", "logical_xor", "logical_not",
           "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "floor", "ceil",
           "round", "trunc", "frac", "to_dtype", "to_device", "clone", "nan_to_num"]

# Ops that are also Tensor methods (x.name(...) is name(x, ...)) and have an in-place
# form (x.name_(...)); bound onto Tensor by ops/_methods.py.
TENSOR_METHODS = """
add sub mul div true_divide floor_divide remainder fmod pow neg exp exp2 expm1 log log2 log10
log1p sqrt rsqrt square reciprocal abs sign sin cos tan tanh sigmoid erf relu clamp clip
maximum minimum masked_fill lerp eq ne lt le gt ge equal allclose isclose isnan isinf isfinite
logical_and logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor bitwise_not
floor ceil round trunc frac nan_to_num clone
"""
INPLACE_METHODS = """
add sub mul div pow clamp clip masked_fill exp log neg sqrt rsqrt abs sigmoid tanh relu floor
ceil round trunc sin cos lerp remainder fmod sign erf reciprocal square floor_divide frac
nan_to_num
"""


def _float_dtype(dt):
    return dt if dt.is_floating_point else dtypes.get_default_dtype()


def _operand(x, dt):
    """``x`` as a Tensor of dtype ``dt``, or a NumPy scalar of ``dt`` for Python numbers."""
    if isinstance(x, Tensor):
        return x if x.dtype is dt else to_dtype(x, dt)
    if isinstance(x, (bool, int, float, np.number, np.bool_)):
        return dt.np.type(x)
    raise TypeError(f"expected a Tensor or a Python number, got {type(x).__name__}")


def _binary(a, b, float_result=False):
    if isinstance(a, Tensor):
        dt = a.dtype
        if isinstance(b, Tensor):
            if b.dtype is dt and (dt.is_floating_point or not float_result):
                return a, b, dt
        elif dt.is_floating_point and type(b) in (float, int):
            return a, dt.np.type(b), dt
    elif not isinstance(b, Tensor):
        a = Tensor(a)
    dt = dtypes.result_type(a, b)
    if float_result:
        dt = _float_dtype(dt)
    return _operand(a, dt), _operand(b, dt), dt


def _shape(x):
    return getattr(x, "shape", ())


def _ufunc2(xp, f, a, b):
    """``f(a, b)`` for a binary NumPy ufunc: directly when neither operand reaches
    ``parallel.MIN_PARALLEL`` elements (tiny ops skip the pool's dispatch), else through
    ``parallel.ufunc``, which splits large float work over the pool."""
    if xp is np and a.size < parallel.MIN_PARALLEL and b.size < parallel.MIN_PARALLEL:
        return f(a, b)
    return parallel.ufunc(xp, f, a, b)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (getattr(a, "shape", ()), getattr(b, "shape", ()))
        return _ufunc2(ctx.xp, np.add, a, b)

    @staticmethod
    def backward(ctx, g):
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, ctx.shapes[0]) if na else None,
                unbroadcast(g, ctx.shapes[1]) if nb else None)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (getattr(a, "shape", ()), getattr(b, "shape", ()))
        return _ufunc2(ctx.xp, np.subtract, a, b)

    @staticmethod
    def backward(ctx, g):
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, ctx.shapes[0]) if na else None,
                unbroadcast(-g, ctx.shapes[1]) if nb else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _ufunc2(ctx.xp, np.multiply, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (unbroadcast(_ufunc2(ctx.xp, np.multiply, g, b), _shape(a)) if na else None,
                unbroadcast(_ufunc2(ctx.xp, np.multiply, g, a), _shape(b)) if nb else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _ufunc2(ctx.xp, np.divide, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g / b, _shape(a)) if na else None,
                unbroadcast(-g * a / (b * b), _shape(b)) if nb else None)


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        xp = ctx.xp
        out = xp.power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        a, b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:
            with np.errstate(divide="ignore", invalid="ignore"):
                da = xp.where(b == 0, 0, b * xp.power(a, b - 1))
            ga = unbroadcast((g * da).astype(g.dtype, copy=False), _shape(a))
        if nb:
            with np.errstate(divide="ignore", invalid="ignore"):
                la = xp.where(a == 0, xp.zeros_like(a), xp.log(xp.where(a == 0, 1, a)))
            gb = unbroadcast(g * out * la, _shape(b))
        return ga, gb


def _check_int_divisor(op, b, dt):
    """Integer division by zero raises, as in PyTorch (NumPy would give 0 and a warning)."""
    if dt.is_floating_point:
        return
    if dt is dtypes.bool_:
        raise TypeError(f"{op}: not implemented for bool tensors")
    divisor = b._array if isinstance(b, Tensor) else b
    if bool((divisor == 0).any()):
        raise RuntimeError(f"{op}: ZeroDivisionError (integer division by zero)")


def _mod_forward(ctx, a, b, name):
    """``a mod b`` by the ufunc ``name`` (``remainder``: Python's sign, ``fmod``: C's)."""
    ctx.save_for_backward(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return getattr(ctx.xp, name)(a, b)


def _mod_backward(ctx, g, rounding):
    """``a mod b = a - b * round(a / b)``: gradient ``g`` for ``a``, ``-g * round(a / b)`` for
    ``b``, with the quotient rounded by the ufunc ``rounding`` (``floor`` or ``trunc``)."""
    a, b = ctx.saved_tensors
    na, nb = ctx.needs_input_grad
    return (unbroadcast(g, _shape(a)) if na else None,
            unbroadcast(-g * getattr(ctx.xp, rounding)(a / b), _shape(b)) if nb else None)


class Remainder(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _mod_forward(ctx, a, b, "remainder")

    @staticmethod
    def backward(ctx, g):
        return _mod_backward(ctx, g, "floor")


class Fmod(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _mod_forward(ctx, a, b, "fmod")

    @staticmethod
    def backward(ctx, g):
        return _mod_backward(ctx, g, "trunc")


class RoundedDiv(Function):
    """Division rounded down ('floor') or toward zero ('trunc'); zero gradient, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b, rounding_mode):
        xp = ctx.xp
        ctx.shapes = (_shape(a), _shape(b))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            q = xp.floor_divide(a, b)
            if rounding_mode == "trunc":
                if q.dtype.kind == "f":
                    q = xp.trunc(xp.true_divide(a, b)).astype(q.dtype, copy=False)
                else:
                    q = q + ((q < 0) & (q * b != a))
        return xp.asarray(q)

    @staticmethod
    def backward(ctx, g):
        na, nb = ctx.needs_input_grad[:2]
        xp = ctx.xp
        return (xp.zeros(ctx.shapes[0], g.dtype) if na else None,
                xp.zeros(ctx.shapes[1], g.dtype) if nb else None, None)


def add(input, other, *, alpha=1):
    """``input + alpha * other`` with broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    a, b, _ = _binary(input, other)
    return Add.apply(a, b)


def sub(input, other, *, alpha=1):
    """``input - alpha * other`` with broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    a, b, dt = _binary(input, other)
    if dt is dtypes.bool_:
        raise RuntimeError("sub: subtraction of bool tensors is not supported; use logical_xor")
    return Sub.apply(a, b)


def mul(input, other):
    """Elementwise product with broadcasting."""
    a, b, _ = _binary(input, other)
    return Mul.apply(a, b)


def div(input, other, *, rounding_mode=None):
    """True division (integers promote to float); ``rounding_mode`` 'trunc' or 'floor'."""
    if rounding_mode is None:
        a, b, _ = _binary(input, other, float_result=True)
        return Div.apply(a, b)
    if rounding_mode not in ("floor", "trunc"):
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got "
                         f"{rounding_mode!r}")
    a, b, dt = _binary(input, other)
    _check_int_divisor("div", b, dt)
    return RoundedDiv.apply(a, b, rounding_mode)


true_divide = div


def floor_divide(input, other):
    """Division rounded down (Python's ``//``); zero gradient."""
    a, b, dt = _binary(input, other)
    _check_int_divisor("floor_divide", b, dt)
    return RoundedDiv.apply(a, b, "floor")


def remainder(input, other):
    """Python-style modulus (sign of the divisor)."""
    a, b, dt = _binary(input, other)
    _check_int_divisor("remainder", b, dt)
    return Remainder.apply(a, b)


def fmod(input, other):
    """C-style modulus (sign of the dividend)."""
    a, b, dt = _binary(input, other)
    _check_int_divisor("fmod", b, dt)
    return Fmod.apply(a, b)


@autocast_op
def pow(input, exponent):
    """``input ** exponent`` with broadcasting."""
    a, b, dt = _binary(input, exponent)
    if not dt.is_floating_point and isinstance(b, Tensor) is False and b < 0:
        raise RuntimeError("pow: integers to negative integer powers are not allowed")
    return Pow.apply(a, b)


def _dev(*xs):
    for x in xs:
        if isinstance(x, Tensor):
            return x.device
    return None


# --------------------------------------------------------------------------- unary maths
def _unary(name, fwd, grad, save="x", float_only=True, doc=""):
    """Build a unary Function + wrapper; ``grad(xp, x, y, g)`` gives the input gradient."""

    def forward(ctx, x):
        y = fwd(ctx.xp, x)
        ctx.save_for_backward(x if save == "x" else y)
        return y

    def backward(ctx, g):
        (saved,) = ctx.saved_tensors
        x, y = (saved, None) if save == "x" else (None, saved)
        return grad(ctx.xp, x, y, g)

    cls = type(name.capitalize(), (Function,), {"forward": staticmethod(forward),
                                                 "backward": staticmethod(backward)})

    def op(input):
        if float_only and not input.dtype.is_floating_point:
            input = to_dtype(input, dtypes.get_default_dtype())
        return cls.apply(input)

    op.__name__ = name
    op.__doc__ = doc or f"Elementwise {name}."
    return autocast_op(op)


_SQRT_PI_2 = 2.0 / math.sqrt(math.pi)

exp = _unary("exp", lambda xp, x: parallel.ufunc(xp, np.exp, x),
             lambda xp, x, y, g: parallel.ufunc(xp, np.multiply, g, y), save="y")
exp2 = _unary("exp2", lambda xp, x: xp.exp2(x), lambda xp, x, y, g: g * y * math.log(2), save="y")
expm1 = _unary("expm1", lambda xp, x: xp.expm1(x), lambda xp, x, y, g: g * (y + 1), save="y")
log = _unary("log", lambda xp, x: xp.log(x), lambda xp, x, y, g: g / x)
log2 = _unary("log2", lambda xp, x: xp.log2(x), lambda xp, x, y, g: g / (x * math.log(2)))
log10 = _unary("log10", lambda xp, x: xp.log10(x), lambda xp, x, y, g: g / (x * math.log(10)))
log1p = _unary("log1p", lambda xp, x: xp.log1p(x), lambda xp, x, y, g: g / (1 + x))
sqrt = _unary("sqrt", lambda xp, x: xp.sqrt(x), lambda xp, x, y, g: g / (2 * y), save="y")
rsqrt = _unary("rsqrt", lambda xp, x: 1 / xp.sqrt(x), lambda xp, x, y, g: -0.5 * g * y * y * y,
               save="y")
sin = _unary("sin", lambda xp, x: xp.sin(x), lambda xp, x, y, g: g * xp.cos(x))
cos = _unary("cos", lambda xp, x: xp.cos(x), lambda xp, x, y, g: -g * xp.sin(x))
tan = _unary("tan", lambda xp, x: xp.tan(x), lambda xp, x, y, g: g * (1 + y * y), save="y")
tanh = _unary("tanh", lambda xp, x: xp.tanh(x), lambda xp, x, y, g: g * (1 - y * y), save="y")
erf = _unary("erf", lambda xp, x: _erf(xp, x),
             lambda xp, x, y, g: g * (_SQRT_PI_2 * xp.exp(-x * x)).astype(g.dtype))


sigmoid = _unary("sigmoid", _sigmoid, lambda xp, x, y, g: g * y * (1 - y), save="y",
                 doc="Logistic sigmoid, computed without overflow.")


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.xp.sign(x)


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.maximum(x, 0).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (y > 0)


def neg(input):
    """``-input``."""
    if input.dtype is dtypes.bool_:
        raise RuntimeError("neg: negation of a bool tensor is not supported; use logical_not")
    return Neg.apply(input)


def abs(input):
    """Absolute value (gradient 0 at 0)."""
    return Abs.apply(input)


def relu(input):
    """``max(input, 0)``."""
    return Relu.apply(input)


def square(input):
    """``input * input``."""
    return mul(input, input)


@autocast_op
def reciprocal(input):
    """``1 / input``."""
    return div(1.0, input)


def sign(input):
    """Sign (-1, 0, 1); gradient is zero."""
    return _nondiff(np.sign, input)


def _as_array(out, dtype=None):
    """A ufunc result as an array on its own device (NumPy scalars become 0-d arrays)."""
    arr = out if backends.is_array(out) else np.asarray(out)
    return arr if dtype is None else arr.astype(dtype, copy=False)


def _nondiff(fn, *xs, dtype=None):
    """``fn`` (a NumPy ufunc/function; CuPy arrays dispatch to CuPy) without a gradient."""
    arrs = [x._array if isinstance(x, Tensor) else x for x in xs]
    return Tensor._make(_as_array(fn(*arrs), dtype), device=_dev(*xs))


class _Rounding(Function):
    """Rounding ops: piecewise constant, so the gradient is zero."""

    @staticmethod
    def forward(ctx, x, fn):
        return getattr(ctx.xp, fn)(x)

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.zeros_like(g), None


def floor(input):
    """Round down."""
    return _Rounding.apply(input, "floor") if input.dtype.is_floating_point else input.clone()


def ceil(input):
    """Round up."""
    return _Rounding.apply(input, "ceil") if input.dtype.is_floating_point else input.clone()


def trunc(input):
    """Round toward zero."""
    return _Rounding.apply(input, "trunc") if input.dtype.is_floating_point else input.clone()


def round(input, decimals=0):
    """Round half to even, as PyTorch does."""
    if decimals:
        scale = 10.0 ** decimals
        return div(_Rounding.apply(mul(input, scale), "rint"), scale)
    return _Rounding.apply(input, "rint") if input.dtype.is_floating_point else input.clone()


def frac(input):
    """``input - trunc(input)``."""
    if not input.dtype.is_floating_point:
        raise TypeError(f"frac: expected a floating point tensor, got {input.dtype}")
    return sub(input, trunc(input).detach())


# --------------------------------------------------------------------------- selection
class Clamp(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        xp = ctx.xp
        keep = xp.ones(x.shape, dtype=bool)
        y = x
        if lo is not None:
            keep &= x >= lo
            y = xp.maximum(y, lo)
        if hi is not None:
            keep &= x <= hi
            y = xp.minimum(y, hi)
        ctx.save_for_backward(keep)
        ctx.shapes = (_shape(lo), _shape(hi))
        return y.astype(x.dtype, copy=False) if y is not x else x.copy()

    @staticmethod
    def backward(ctx, g):
        (keep,) = ctx.saved_tensors
        return g * keep, None, None


def clamp(input, min=None, max=None):
    """Limit values to ``[min, max]``; gradient flows where the input is inside the range."""
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = maximum(out, min if isinstance(min, Tensor) else Tensor(min).to(input.dtype))
        if max is not None:
            out = minimum(out, max if isinstance(max, Tensor) else Tensor(max).to(input.dtype))
        return out
    dt = dtypes.result_type(input, *(v for v in (min, max) if v is not None))
    x = _operand(input, dt)
    return Clamp.apply(x, None if min is None else dt.np.type(min),
                       None if max is None else dt.np.type(max))


clip = clamp


class _MaxMin(Function):
    @staticmethod
    def forward(ctx, a, b, is_max):
        xp = ctx.xp
        out = xp.maximum(a, b) if is_max else xp.minimum(a, b)
        ctx.save_for_backward(a, b)
        ctx.is_max = is_max
        return out

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        xp = ctx.xp
        wins = (a > b) if ctx.is_max else (a < b)
        tie = (a == b)
        wa = wins + 0.5 * tie
        wb = 1 - wa
        wb = xp.where(xp.isnan(a) | xp.isnan(b), 0, wb)
        na, nb = ctx.needs_input_grad[:2]
        return (unbroadcast((g * wa).astype(g.dtype), _shape(a)) if na else None,
                unbroadcast((g * wb).astype(g.dtype), _shape(b)) if nb else None, None)


def maximum(input, other):
    """Elementwise maximum; ties split the gradient equally."""
    a, b, _ = _binary(input, other)
    return _MaxMin.apply(a, b, True)


def minimum(input, other):
    """Elementwise minimum; ties split the gradient equally."""
    a, b, _ = _binary(input, other)
    return _MaxMin.apply(a, b, False)


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = (_shape(a), _shape(b))
        return ctx.xp.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        xp = ctx.xp
        _, na, nb = ctx.needs_input_grad
        zero = xp.zeros((), dtype=g.dtype)
        return (None,
                unbroadcast(xp.where(cond, g, zero), ctx.shapes[0]) if na else None,
                unbroadcast(xp.where(cond, zero, g), ctx.shapes[1]) if nb else None)


def where(condition, input=None, other=None):
    """Pick ``input`` where ``condition`` holds, else ``other``; one argument = nonzero."""
    if input is None and other is None:
        from .indexing import nonzero
        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor):
        condition = Tensor(condition)
    if condition.dtype is not dtypes.bool_:
        condition = condition != 0
    a, b, _ = _binary(input, other)
    return Where.apply(condition._array, a, b)


def check_bool_mask(op, input, mask, dtype_error=TypeError):
    """Raise unless ``mask`` is a bool Tensor broadcastable with ``input`` (errors name ``op``)."""
    if not isinstance(mask, Tensor) or mask.dtype is not dtypes.bool_:
        raise dtype_error(f"{op}: mask must be a bool tensor, got "
                          f"{getattr(mask, 'dtype', type(mask).__name__)}")
    try:
        np.broadcast_shapes(tuple(mask.shape), tuple(input.shape))
    except ValueError:
        raise RuntimeError(f"{op}: mask of shape {tuple(mask.shape)} is not broadcastable "
                           f"with input of shape {tuple(input.shape)}") from None


def masked_fill(input, mask, value):
    """Fill positions where ``mask`` is True with ``value`` (scalar or 0-d tensor)."""
    check_bool_mask("masked_fill", input, mask)
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill: value must be a 0-dim tensor, got shape "
                               f"{tuple(value.shape)}")
        value = value.to(input.dtype)
    else:
        value = input.dtype.np.type(value)
    out = Where.apply(mask._array, value, input)
    if tuple(out.shape) != tuple(input.shape):
        raise RuntimeError(f"masked_fill: mask of shape {tuple(mask.shape)} would broadcast the "
                           f"input of shape {tuple(input.shape)} to {tuple(out.shape)}")
    return out


def lerp(input, end, weight):
    """``input + weight * (end - input)``."""
    return add(input, mul(weight, sub(end, input)))


# --------------------------------------------------------------------------- comparisons
def _compare(fn):
    def op(input, other):
        a, b, _ = _binary(input, other)
        ad = a._array if isinstance(a, Tensor) else a
        bd = b._array if isinstance(b, Tensor) else b
        return Tensor._make(fn(ad, bd), device=_dev(a, b))
    op.__name__ = fn.__name__
    op.__doc__ = f"Elementwise comparison ({fn.__name__}) with broadcasting; a bool tensor."
    return op


eq = _compare(np.equal)
ne = _compare(np.not_equal)
lt = _compare(np.less)
le = _compare(np.less_equal)
gt = _compare(np.greater)
ge = _compare(np.greater_equal)
logical_and = _compare(np.logical_and)
logical_or = _compare(np.logical_or)
logical_xor = _compare(np.logical_xor)


def _bitwise(fn):
    compare = _compare(fn)

    def op(input, other):
        for x in (input, other):
            if (isinstance(x, Tensor) and x.dtype.is_floating_point) or isinstance(x, float):
                raise TypeError(f"{fn.__name__}: only integer and bool tensors are supported, "
                                f"got {x.dtype if isinstance(x, Tensor) else 'a float'}")
        return compare(input, other)
    op.__name__ = fn.__name__
    op.__doc__ = f"Elementwise {fn.__name__} of integer or bool tensors, with broadcasting."
    return op


bitwise_and = _bitwise(np.bitwise_and)
bitwise_or = _bitwise(np.bitwise_or)
bitwise_xor = _bitwise(np.bitwise_xor)


def logical_not(input):
    """Elementwise not."""
    return _nondiff(np.logical_not, input)


def bitwise_not(input):
    """Bitwise not (logical not for bool)."""
    if input.dtype.is_floating_point:
        raise TypeError(f"bitwise_not: only integer and bool tensors are supported, got "
                        f"{input.dtype}")
    return _nondiff(np.invert, input)


def isnan(input):
    """True where NaN."""
    return _nondiff(np.isnan, input)


def isinf(input):
    """True where +-inf."""
    return _nondiff(np.isinf, input)


def isfinite(input):
    """True where finite."""
    return _nondiff(np.isfinite, input)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise ``|a - b| <= atol + rtol * |b|``."""
    return _nondiff(lambda a, b: np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan),
                    input, other)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True when every element is close."""
    return bool(isclose(input, other, rtol, atol, equal_nan)._array.all())


def equal(input, other):
    """True when shapes and all elements are equal."""
    return tuple(input.shape) == tuple(other.shape) and bool((input._array == other._array).all())


class NanToNum(Function):
    @staticmethod
    def forward(ctx, x, nan, posinf, neginf):
        xp = ctx.xp
        ctx.save_for_backward(x)
        finfo = ml_dtypes.finfo(x.dtype)
        out = xp.where(xp.isnan(x), x.dtype.type(nan), x)
        out = xp.where(xp.isposinf(out), x.dtype.type(finfo.max if posinf is None else posinf), out)
        return xp.where(xp.isneginf(out), x.dtype.type(finfo.min if neginf is None else neginf),
                        out)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.xp.isfinite(x), None, None, None


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """Replace NaN and infinities with finite numbers; the gradient flows where finite."""
    if not input.dtype.is_floating_point:
        return input.clone()
    return NanToNum.apply(input, nan, posinf, neginf)


# --------------------------------------------------------------------------- casts and copies
class ToDtype(Function):
    @staticmethod
    def forward(ctx, x, npd):
        ctx.src = x.dtype
        return x.astype(npd)

    @staticmethod
    def backward(ctx, g):
        if ctx.src.kind != "f" and ctx.src.name != "bfloat16":
            return None, None
        return g.astype(ctx.src), None


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, dev):
        from ..tensor import _move
        from ..backends import device_of_array
        ctx.src = device_of_array(x)
        out = _move(x, dev)
        return out.copy() if out is x else out

    @staticmethod
    def backward(ctx, g):
        from ..tensor import _move
        return _move(g, ctx.src), None


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return g


def to_dtype(input, dtype):
    """Cast to ``dtype``; gradients flow between floating dtypes."""
    dtype = dtypes.as_dtype(dtype)
    if input.dtype is dtype:
        return input
    out = ToDtype.apply(input, dtype.np)
    return out


def to_device(input, device):
    """Copy to ``device`` (a device or a string such as ``"cuda:0"``); differentiable."""
    device = as_device(device)
    out = ToDevice.apply(input, device)
    out.device = device
    return out


def clone(input, memory_format=None):
    """A copy with its own storage; differentiable (``memory_format`` is accepted and ignored:
    genesis tensors are always C-contiguous copies)."""
    return Clone.apply(input)
