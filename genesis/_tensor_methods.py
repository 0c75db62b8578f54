"""Attach operators, aliases, fills and factories to Tensor (PyTorch's names); the ops' own
methods are bound by ``genesis/ops/_methods.py`` from each op module."""

from . import backends, ops
from ._broadcast import check_broadcast_to
from .autograd import _mode
from .ops._inplace import check_inplace, graph_involved, write_result
from .random import device_rng, draw_normal, draw_uniform
from .tensor import Tensor, check_no_internal_overlap

Tensor.absolute = Tensor.abs
Tensor.multiply = Tensor.mul
Tensor.subtract = Tensor.sub
Tensor.divide = Tensor.div
Tensor.greater = Tensor.gt
Tensor.less = Tensor.lt


Tensor.__add__ = Tensor.__radd__ = ops.add
Tensor.__sub__ = ops.sub
Tensor.__rsub__ = lambda self, other: ops.sub(other, self)
Tensor.__mul__ = Tensor.__rmul__ = ops.mul
Tensor.__truediv__ = ops.div
Tensor.__rtruediv__ = lambda self, other: ops.div(other, self)
Tensor.__floordiv__ = ops.floor_divide
Tensor.__rfloordiv__ = lambda self, other: ops.floor_divide(other, self)
Tensor.__mod__ = ops.remainder
Tensor.__rmod__ = lambda self, other: ops.remainder(other, self)
Tensor.__pow__ = ops.pow
Tensor.__rpow__ = lambda self, other: ops.pow(other, self)
Tensor.__matmul__ = ops.matmul
Tensor.__rmatmul__ = lambda self, other: ops.matmul(other, self)
Tensor.__neg__ = ops.neg
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = ops.abs
Tensor.__invert__ = ops.bitwise_not
Tensor.__eq__ = ops.eq
Tensor.__ne__ = ops.ne
Tensor.__lt__ = ops.lt
Tensor.__le__ = ops.le
Tensor.__gt__ = ops.gt
Tensor.__ge__ = ops.ge
Tensor.__and__ = Tensor.__rand__ = ops.bitwise_and
Tensor.__or__ = Tensor.__ror__ = ops.bitwise_or
Tensor.__xor__ = Tensor.__rxor__ = ops.bitwise_xor
Tensor.__getitem__ = ops.getitem
Tensor.__setitem__ = ops.setitem
Tensor.T = property(lambda self: ops.permute(self, tuple(range(self.ndim - 1, -1, -1))))
Tensor.mT = property(lambda self: ops.transpose(self, -2, -1))


Tensor.__iadd__ = Tensor.add_
Tensor.__isub__ = Tensor.sub_
Tensor.__imul__ = Tensor.mul_
Tensor.__itruediv__ = Tensor.div_
Tensor.__ipow__ = Tensor.pow_
Tensor.__ifloordiv__ = Tensor.floor_divide_
Tensor.__imod__ = Tensor.remainder_


def _fill_array(self, arr, op):
    """Write values that do not depend on ``self`` (a number or an array) into it."""
    check_inplace(self, op)
    if graph_involved(self):
        xp = backends.xp_for(self.device)
        values = xp.empty(self._array.shape, self._array.dtype)
        values[...] = arr
        return write_result(self, Tensor._make(values, device=self.device), op)
    if op not in ("zero_", "fill_"):
        check_no_internal_overlap(self._array, op)
    self._array[...] = arr
    self._version[0] += 1
    return self


def zero_(self):
    """Fill with zeros in place."""
    return _fill_array(self, 0, "zero_")


def fill_(self, value):
    """Fill with ``value`` in place."""
    if isinstance(value, Tensor):
        value = value.item()
    return _fill_array(self, value, "fill_")


def copy_(self, src, non_blocking=False):
    """Copy ``src`` (broadcast, cast and moved as needed) into self; differentiable in ``src``."""
    if not isinstance(src, Tensor):
        src = Tensor(src)
    if src.device != self.device:
        src = src.to(self.device)
    check_broadcast_to("copy_", src.shape, self.shape, "source", "the destination")
    if src.requires_grad and _mode.enabled:
        check_inplace(self, "copy_")
        result = ops.expand(ops.to_dtype(src, self.dtype), tuple(self.shape)).clone()
        return write_result(self, result, "copy_")
    return _fill_array(self, src._array.astype(self._array.dtype, copy=False), "copy_")


def _random_fill(self, draw, op):
    """Fill ``self`` in place with ``draw(rng, shape)``, drawn on its device by its generator."""
    from .backends import cuda
    with cuda.device_guard(self.device.index):
        arr = draw(self._array.shape)
        return _fill_array(self, arr.astype(self._array.dtype, copy=False), op)


def normal_(self, mean=0.0, std=1.0, generator=None):
    """Fill with normal samples in place (drawn in float32 unless the tensor is float64)."""
    return _random_fill(self, lambda shape: draw_normal(shape, self._array.dtype, mean, std,
                                                        generator, self.device), "normal_")


def uniform_(self, a=0.0, b=1.0, generator=None):
    """Fill with uniform samples from [a, b) in place."""
    return _random_fill(self, lambda shape: draw_uniform(shape, self._array.dtype, a, b,
                                                         generator, self.device), "uniform_")


def bernoulli_(self, p=0.5, generator=None):
    """Fill with Bernoulli(p) samples in place."""
    return _random_fill(self, lambda shape: device_rng(self.device, generator).random(shape) < p,
                        "bernoulli_")


def random_(self, low=0, high=None, generator=None):
    """Fill with random integers from [low, high) in place."""
    if high is None:
        low, high = 0, low if low else 2 ** 31
    return _random_fill(self, lambda shape: device_rng(self.device, generator).integers(
        low, high, shape), "random_")


def exponential_(self, lambd=1.0, generator=None):
    """Fill with exponential samples in place."""
    return _random_fill(self, lambda shape: device_rng(self.device, generator).exponential(
        1.0 / lambd, shape), "exponential_")


for _fn in (zero_, fill_, copy_, normal_, uniform_, bernoulli_, random_, exponential_):
    setattr(Tensor, _fn.__name__, _fn)


def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    """A new tensor with this tensor's dtype and device by default."""
    from .creation import tensor
    return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                  requires_grad=requires_grad)


def _new_factory(factory):
    def method(self, *size, dtype=None, device=None, requires_grad=False):
        return factory(*size, dtype=dtype or self.dtype, device=device or self.device,
                       requires_grad=requires_grad)
    method.__name__ = "new_" + factory.__name__
    method.__doc__ = f"``{factory.__name__}`` with this tensor's dtype and device by default."
    return method


def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    """``full`` with this tensor's dtype and device by default."""
    from .creation import full
    return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                requires_grad=requires_grad)


def _install_factories():
    from . import creation
    Tensor.new_tensor = new_tensor
    Tensor.new_full = new_full
    Tensor.new_zeros = _new_factory(creation.zeros)
    Tensor.new_ones = _new_factory(creation.ones)
    Tensor.new_empty = _new_factory(creation.empty)


_install_factories()


def _type_as(self, other):
    """Cast to ``other``'s dtype."""
    return self.to(other.dtype)


Tensor.type_as = _type_as
Tensor.is_complex = lambda self: False
Tensor.is_signed = lambda self: self.dtype.is_signed
Tensor.get_device = lambda self: -1 if self.device.type == "cpu" else self.device.index
