"""Tensor conversion methods: ``to`` (dtype and/or device), ``type``, ``float``/``double``/...,
``cpu``/``cuda`` and ``contiguous``, built on the ``to_dtype``/``to_device``/``clone`` ops."""
from .. import dtypes
from ..device import as_device, device as _device_cls
from ..tensor import Tensor
from .elementwise import clone, to_device, to_dtype

__all__ = []


def to(self, *args, **kwargs):
    """Convert dtype and/or device: ``to(dtype)``, ``to(device)``, ``to(device, dtype)``."""
    dt = kwargs.pop("dtype", None)
    dev = kwargs.pop("device", None)
    kwargs.pop("non_blocking", None)
    copy = kwargs.pop("copy", False)
    if kwargs:
        raise TypeError(f"to: unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dt, dev = a.dtype, a.device
        elif isinstance(a, (dtypes.dtype, type)) or (isinstance(a, str) and a in dtypes._NAMES):
            dt = a
        elif isinstance(a, (str, _device_cls, int)):
            dev = a
        elif a is not None:
            dt = a
    out = self
    if dev is not None and as_device(dev) != self.device:
        out = to_device(out, as_device(dev))
    if dt is not None and dtypes.as_dtype(dt) is not out.dtype:
        out = to_dtype(out, dtypes.as_dtype(dt))
    if copy and out is self:
        out = clone(self)
    return out


def _type(self, dtype=None):
    """The dtype name (no argument) or a converted tensor."""
    if dtype is None:
        return f"genesis.{self.dtype.name}"
    return self.to(dtype)


def _float(self):
    """Convert to float32."""
    return self.to(dtypes.float32)


def _double(self):
    """Convert to float64."""
    return self.to(dtypes.float64)


def _half(self):
    """Convert to float16."""
    return self.to(dtypes.float16)


def _bfloat16(self):
    """Convert to bfloat16."""
    return self.to(dtypes.bfloat16)


def _long(self):
    """Convert to int64."""
    return self.to(dtypes.int64)


def _int(self):
    """Convert to int32."""
    return self.to(dtypes.int32)


def _bool(self):
    """Convert to bool."""
    return self.to(dtypes.bool_)


def _cpu(self):
    """Copy to host memory (no-op on the CPU)."""
    return self.to("cpu")


def _cuda(self, device=None):
    """Copy to a GPU."""
    return self.to(_device_cls("cuda", device if isinstance(device, int) else 0))


def contiguous(self, memory_format=None):
    """Self if C-contiguous, else a contiguous copy."""
    if self._array.flags.c_contiguous:
        return self
    return clone(self)


# Tensor methods only (no genesis.* functions); bound onto Tensor by ops/_methods.py.
TENSOR_METHODS = {"to": to, "type": _type, "float": _float, "double": _double, "half": _half,
                  "bfloat16": _bfloat16, "long": _long, "int": _int, "bool": _bool, "cpu": _cpu,
                  "cuda": _cuda, "contiguous": contiguous}
