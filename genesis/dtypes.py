"""dtypes and PyTorch's type-promotion rules."""
import builtins as _builtins

import numpy as np
import ml_dtypes

_builtin_float, _builtin_int, _builtin_bool = _builtins.float, _builtins.int, _builtins.bool


class dtype:
    """A tensor element type: a name, its NumPy dtype and its promotion category."""

    __slots__ = ("name", "np", "is_floating_point", "is_signed", "itemsize", "_category")

    def __init__(self, name, np_dtype, category):
        self.name = name
        self.np = np.dtype(np_dtype)
        self._category = category  # 0 bool, 1 integer, 2 floating
        self.is_floating_point = category == 2
        self.is_signed = category == 2 or (category == 1 and self.np.kind == "i")
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"genesis.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


bool_ = dtype("bool", np.bool_, 0)
uint8 = dtype("uint8", np.uint8, 1)
int8 = dtype("int8", np.int8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
float16 = dtype("float16", np.float16, 2)
bfloat16 = dtype("bfloat16", ml_dtypes.bfloat16, 2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)

half, float, double = float16, float32, float64
short, int, long = int16, int32, int64

ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
_FROM_NP = {d.np: d for d in ALL}
_NAMES = {d.name: d for d in ALL}
_NAMES.update(half=float16, float=float32, double=float64, short=int16, int=int32, long=int64)

_default_float = float32


def _by_name(name):
    return _NAMES[name]


def get_default_dtype():
    """The dtype of floating tensors created from Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(d):
    """Set the default floating dtype (float32 or float64, as in PyTorch)."""
    global _default_float
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating dtypes are allowed, got {d}")
    _default_float = d


class default_dtype:
    """``with default_dtype(genesis.bfloat16): ...`` creates floating tensors in that dtype."""

    def __init__(self, d):
        self._dtype = as_dtype(d) if d is not None else None

    def __enter__(self):
        self._previous = _default_float
        if self._dtype is not None:
            set_default_dtype(self._dtype)
        return self

    def __exit__(self, *exc):
        set_default_dtype(self._previous)
        return False


def as_dtype(d):
    """Convert a genesis dtype, NumPy dtype, Python type or name into a genesis dtype."""
    if isinstance(d, dtype):
        return d
    if d is None:
        return None
    if isinstance(d, str):
        try:
            return _NAMES[d.replace("torch.", "").replace("genesis.", "")]
        except KeyError:
            raise TypeError(f"unknown dtype name {d!r}; expected one of {sorted(_NAMES)}") from None
    if d is _builtin_float:
        return _default_float
    if d is _builtin_int:
        return int64
    if d is _builtin_bool:
        return bool_
    try:
        return _FROM_NP[np.dtype(d)]
    except (KeyError, TypeError):
        raise TypeError(f"unsupported dtype {d!r}; genesis supports {[x.name for x in ALL]}") from None


def from_numpy_dtype(npd):
    """The genesis dtype of a NumPy dtype (raises TypeError for unsupported ones)."""
    try:
        return _FROM_NP[npd]
    except KeyError:
        return as_dtype(npd)


def _promote_same_category(a, b):
    if a is b:
        return a
    if {a, b} == {float16, bfloat16}:
        return float32
    return _FROM_NP[np.promote_types(a.np, b.np)]


def scalar_dtype(value):
    """The dtype PyTorch gives a Python scalar: bool, int64, or the default float."""
    if isinstance(value, _builtin_bool) or isinstance(value, np.bool_):
        return bool_
    if isinstance(value, (_builtin_int, np.integer)):
        return int64
    if isinstance(value, (_builtin_float, np.floating)):
        return _default_float
    raise TypeError(f"expected a Python number, got {type(value).__name__}")


def result_type(*operands):
    """PyTorch promotion: dimensioned tensors > zero-dim tensors > Python scalars, by category.

    Operands are Tensors (anything with ``dtype`` and ``ndim``) or Python scalars.
    A lower-priority operand only changes the result when its category is higher.
    """
    tiers = [None, None, None]  # dimensioned, zero-dim, scalar
    for op in operands:
        if hasattr(op, "dtype") and hasattr(op, "ndim") and isinstance(op.dtype, dtype):
            d, tier = op.dtype, 0 if op.ndim > 0 else 1
        else:
            d, tier = scalar_dtype(op), 2
        cur = tiers[tier]
        if cur is None:
            tiers[tier] = d
        elif cur._category == d._category:
            tiers[tier] = _promote_same_category(cur, d)
        elif d._category > cur._category:
            tiers[tier] = d
    result = None
    for d in tiers:
        if d is None:
            continue
        if result is None or d._category > result._category:
            result = d
    return result


def promote_types(a, b):
    """Promote two dtypes as PyTorch does for tensors of equal priority."""
    a, b = as_dtype(a), as_dtype(b)
    if a._category == b._category:
        return _promote_same_category(a, b)
    return a if a._category > b._category else b
