"""A stand-in for CuPy that runs on NumPy but refuses what CuPy refuses (tests only).

Its arrays wrap NumPy arrays and, like CuPy's, are not ``np.ndarray`` instances: NumPy
functions and ufuncs called on them dispatch through ``__array_function__``/``__array_ufunc__``
and return device arrays; ``np.asarray``/``np.array`` on them raise TypeError (CuPy forbids
implicit device-to-host conversion); mixing them with NumPy arrays in one call raises;
reductions return 0-d arrays, not scalars; ``ufunc.at`` exists only for add/maximum/minimum,
and ``add.at`` only for CUDA's atomic-add dtypes. This proves that genesis never moves GPU
data to the host implicitly and never mixes host and device arrays; it does not prove that
CuPy implements every NumPy function genesis calls, nor anything about speed.
"""
import contextlib
import types

import numpy as np

from genesis.backends import scatter as _scatter

_NP_ASARRAY = np.asarray


class HostArrayError(TypeError):
    """Raised where real CuPy would refuse a host/device mix or implicit conversion."""


class FakeCupyArray:
    """A device array: a NumPy array held privately."""

    __slots__ = ("_a",)
    __array_priority__ = 2000

    def __init__(self, a):
        self._a = a

    def __array__(self, *args, **kwargs):
        raise HostArrayError("Implicit conversion to a NumPy array is not allowed. Please use "
                             "`.get()` to construct a NumPy array explicitly.")

    @property
    def __cuda_array_interface__(self):
        return {"shape": self._a.shape, "typestr": self._a.dtype.str, "version": 3,
                "data": (self._a.__array_interface__["data"][0], False)}

    def get(self):
        return self._a.copy()

    def set(self, arr, stream=None):
        """CuPy's ``ndarray.set``: copy a host array of the same shape into this array."""
        if not isinstance(arr, np.ndarray) or arr.shape != self._a.shape:
            raise ValueError("set: expected a NumPy array of the same shape")
        self._a[...] = arr

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = _unwrap(inputs)
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"])
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__ etc.: NumPy must not see the data
            raise AttributeError(name)
        value = getattr(self._a, name)
        if callable(value):
            return lambda *a, **k: _wrap(value(*_unwrap(a), **_unwrap(k)))
        return _wrap(value)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(x) for x in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __repr__(self):
        return f"fake_cupy.array({self._a!r})"


def _binary(name):
    def method(self, other):
        return _wrap(getattr(self._a, name)(_unwrap(other)))
    return method


for _name in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "floordiv",
              "rfloordiv", "mod", "rmod", "pow", "rpow", "matmul", "rmatmul", "and", "rand",
              "or", "ror", "xor", "rxor", "lt", "le", "gt", "ge", "eq", "ne", "iadd", "isub",
              "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand", "ior", "ixor", "lshift",
              "rshift"):
    setattr(FakeCupyArray, f"__{_name}__", _binary(f"__{_name}__"))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(FakeCupyArray, f"__{_name}__",
            (lambda n: lambda self: _wrap(getattr(self._a, n)()))(f"__{_name}__"))


def _unwrap(obj):
    if isinstance(obj, FakeCupyArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise HostArrayError(f"Unsupported type {type(obj)}: a NumPy array was passed where "
                             "CuPy needs device arrays")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    if isinstance(obj, np.ndarray):
        return FakeCupyArray(obj)
    if isinstance(obj, np.generic) and not isinstance(obj, np.dtype):
        return FakeCupyArray(_NP_ASARRAY(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


class _Ufunc:
    """A NumPy ufunc on device arrays, with CuPy's ``ufunc.at`` limits."""

    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _wrap(self._ufunc(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):  # reduce, accumulate, reduceat, outer (CuPy has these)
        if name not in ("reduce", "accumulate", "reduceat", "outer"):
            raise AttributeError(f"cupy ufunc has no {name!r}")
        method = getattr(self._ufunc, name)
        return lambda *a, **k: _wrap(method(*_unwrap(a), **_unwrap(k)))

    def at(self, target, index, values=None):
        name = self._ufunc.__name__
        if name not in ("add", "maximum", "minimum"):
            raise NotImplementedError(f"cupy.{name}.at is not supported")
        if name == "add" and target.dtype not in _scatter._ATOMIC_ADD:
            raise TypeError(f"cupy.add.at: no atomicAdd for dtype {target.dtype}")
        self._ufunc.at(target._a, _unwrap(index), _unwrap(values))


class _RandomState:
    def __init__(self, seed=None):
        self._rs = np.random.RandomState(seed % (1 << 32) if seed is not None else None)

    def __getattr__(self, name):
        method = getattr(self._rs, name)

        def call(*args, **kwargs):
            dtype = kwargs.pop("dtype", None)
            if name in ("random_sample", "standard_normal") and len(args) > 1:
                args, dtype = args[:1], args[1]
            if name == "randint" and len(args) > 3:
                args, dtype = args[:3], args[3]
            out = _NP_ASARRAY(method(*args, **kwargs))
            return FakeCupyArray(out if dtype is None else out.astype(dtype))
        return call


def _device(index=None):
    return contextlib.nullcontext()


def _asarray(a, dtype=None, order=None):
    if isinstance(a, FakeCupyArray):
        return a if dtype is None else FakeCupyArray(a._a.astype(dtype))
    return FakeCupyArray(np.array(a, dtype=dtype, copy=True))


class FakeCupy(types.ModuleType):
    """The ``cupy`` namespace: NumPy's functions on device arrays (see the module docstring)."""

    ndarray = FakeCupyArray

    def __init__(self):
        super().__init__("fake_cupy")
        self.asarray = _asarray
        self.array = _asarray
        self.ascontiguousarray = lambda a, dtype=None: FakeCupyArray(
            np.ascontiguousarray(a._a, dtype=dtype))
        self.asnumpy = lambda a: a.get()
        self.cuda = types.SimpleNamespace(Device=_device)
        self.random = types.SimpleNamespace(RandomState=_RandomState)

    def __getattr__(self, name):
        obj = getattr(np, name)
        if isinstance(obj, np.ufunc):
            return _Ufunc(obj)
        if callable(obj) and not isinstance(obj, type):
            return lambda *a, **k: _wrap(obj(*_unwrap(a), **_unwrap(k)))
        return obj


def cupyx_modules():
    """``cupyx.scipy.special`` (erf) for ``sys.modules``, computed by genesis's NumPy erf."""
    from genesis.ops._special import erf

    def fake_erf(x):
        if x.dtype.name == "bfloat16" or x.dtype.itemsize < 4:
            raise TypeError(f"cupyx.scipy.special.erf: no loop for {x.dtype}")
        return FakeCupyArray(erf(np, x._a))

    special = types.ModuleType("cupyx.scipy.special")
    special.erf = fake_erf
    scipy = types.ModuleType("cupyx.scipy")
    scipy.special = special
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = scipy
    return {"cupyx": cupyx, "cupyx.scipy": scipy, "cupyx.scipy.special": special}
