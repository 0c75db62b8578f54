"""Attach operators, op methods and in-place methods to Tensor (PyTorch's method names)."""

from . import backends, ops
from ._broadcast import check_broadcast_to
from .autograd import _mode
from .ops._views import ViewScatter
from .random import device_rng, draw_normal, draw_uniform
from .tensor import Tensor, check_no_internal_overlap

# Methods that forward to the op of the same name with ``self`` first.
_FORWARDED = """
add sub mul div true_divide floor_divide remainder fmod pow neg exp exp2 expm1 log log2 log10
log1p sqrt rsqrt square reciprocal abs sign sin cos tan tanh sigmoid erf relu clamp clip maximum
minimum masked_fill lerp eq ne lt le gt ge equal allclose isclose isnan isinf isfinite
logical_and logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor bitwise_not
floor ceil round trunc frac nan_to_num
sum mean prod var std max min amax amin argmax argmin logsumexp cumsum cumprod any all norm
reshape view view_as reshape_as transpose permute unsqueeze squeeze expand expand_as repeat
repeat_interleave flatten unflatten flip roll narrow split chunk unbind movedim swapaxes t
moveaxis swapdims
gather scatter scatter_add index_select index_add masked_select nonzero topk sort argsort
tril triu bincount index_fill take_along_dim
matmul bmm mm outer dot
softmax log_softmax
""".split()


def _forward(name):
    def method(self, *args, **kwargs):
        return getattr(ops, name)(self, *args, **kwargs)
    method.__name__ = name
    method.__doc__ = f"Method form of ``genesis.{name}(self, ...)``."
    return method


for _name in _FORWARDED:
    setattr(Tensor, _name, _forward(_name))

Tensor.absolute = Tensor.abs
Tensor.multiply = Tensor.mul
Tensor.subtract = Tensor.sub
Tensor.divide = Tensor.div
Tensor.greater = Tensor.gt
Tensor.less = Tensor.lt


Tensor.__add__ = Tensor.__radd__ = lambda self, other: ops.add(self, other)
Tensor.__sub__ = lambda self, other: ops.sub(self, other)
Tensor.__rsub__ = lambda self, other: ops.sub(other, self)
Tensor.__mul__ = Tensor.__rmul__ = lambda self, other: ops.mul(self, other)
Tensor.__truediv__ = lambda self, other: ops.div(self, other)
Tensor.__rtruediv__ = lambda self, other: ops.div(other, self)
Tensor.__floordiv__ = lambda self, other: ops.floor_divide(self, other)
Tensor.__rfloordiv__ = lambda self, other: ops.floor_divide(other, self)
Tensor.__mod__ = lambda self, other: ops.remainder(self, other)
Tensor.__rmod__ = lambda self, other: ops.remainder(other, self)
Tensor.__pow__ = lambda self, other: ops.pow(self, other)
Tensor.__rpow__ = lambda self, other: ops.pow(other, self)
Tensor.__matmul__ = lambda self, other: ops.matmul(self, other)
Tensor.__rmatmul__ = lambda self, other: ops.matmul(other, self)
Tensor.__neg__ = lambda self: ops.neg(self)
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = lambda self: ops.abs(self)
Tensor.__invert__ = lambda self: ops.bitwise_not(self)
Tensor.__eq__ = lambda self, other: ops.eq(self, other)
Tensor.__ne__ = lambda self, other: ops.ne(self, other)
Tensor.__lt__ = lambda self, other: ops.lt(self, other)
Tensor.__le__ = lambda self, other: ops.le(self, other)
Tensor.__gt__ = lambda self, other: ops.gt(self, other)
Tensor.__ge__ = lambda self, other: ops.ge(self, other)
Tensor.__and__ = Tensor.__rand__ = lambda self, other: ops.bitwise_and(self, other)
Tensor.__or__ = Tensor.__ror__ = lambda self, other: ops.bitwise_or(self, other)
Tensor.__xor__ = Tensor.__rxor__ = lambda self, other: ops.bitwise_xor(self, other)
Tensor.__getitem__ = lambda self, index: ops.getitem(self, index)
Tensor.__setitem__ = lambda self, index, value: ops.setitem(self, index, value)
Tensor.T = property(lambda self: ops.permute(self, tuple(range(self.ndim - 1, -1, -1))))
Tensor.mT = property(lambda self: ops.transpose(self, -2, -1))


# --------------------------------------------------------------------------- in-place
def _check_inplace(self, op):
    if not _mode.enabled:
        return
    if self.requires_grad and self.grad_fn is None and self._base is None:
        raise RuntimeError(f"{op}: a leaf tensor that requires grad is being used in an in-place "
                           "operation; wrap it in genesis.no_grad() or use the out-of-place op")
    base = self._base
    if base is not None and base.requires_grad and base.grad_fn is None:
        raise RuntimeError(f"{op}: a view of a leaf tensor that requires grad is being used in "
                           "an in-place operation; wrap it in genesis.no_grad() or clone() it")


def _graph_involved(self):
    """True when an in-place write into ``self`` must be recorded for autograd."""
    if not _mode.enabled:
        return False
    if self._base is not None:
        self._sync_view()
        return self._requires_grad or self._base._requires_grad
    return self._requires_grad


def _write_result(self, result, op):
    """Write ``result`` into ``self``'s memory (every alias sees it) and record the write.

    ``self`` adopts ``result``'s graph position; a view instead writes through its base with
    ``ViewScatter`` (the base takes the new graph position and the view is re-derived from it);
    a constant written over a tensor that requires grad cuts the gradient to its old values.
    """
    if result.dtype is not self.dtype:
        if result.dtype.is_floating_point and not self.dtype.is_floating_point:
            raise RuntimeError(f"{op}: result type {result.dtype} can't be cast to the desired "
                               f"output type {self.dtype}")
        result = ops.to_dtype(result, self.dtype)
    if tuple(result.shape) != tuple(self.shape):
        raise RuntimeError(f"{op}: output with shape {tuple(self.shape)} doesn't match the "
                           f"broadcast shape {tuple(result.shape)}")
    check_no_internal_overlap(self._array, op)
    tracked = _mode.enabled and (result.requires_grad or _graph_involved(self))
    if tracked and (self._base is not None or not result.requires_grad):
        target = self._base if self._base is not None else self
        replay = self.__dict__.get("_view_replay", ()) if self._base is not None else ()
        if any(len(step) == 4 for step in replay):
            raise RuntimeError(f"{op}: this view is one of several outputs of "
                               f"{replay[-1][0].__name__.lower()} and is being modified in place "
                               "on the autograd graph, which PyTorch does not allow either; use "
                               "an out-of-place op")
        new_target = ViewScatter.apply(target, result, replay)
        _adopt(target, new_target)
        if self._base is not None:
            self._sync_view()
        return self
    if tracked:
        _adopt(self, result)
        return self
    self._array[...] = result._array
    self._version[0] += 1
    return self


def _adopt(self, result):
    """Copy ``result`` into ``self``'s memory and give ``self`` its graph position."""
    self._array[...] = result._array
    self._version[0] += 1
    self.grad_fn = result.grad_fn
    self._output_nr = result._output_nr
    self._requires_grad = True


def _snapshot(self):
    """``self`` at its graph position with a private copy of its values: an in-place op computes
    from it, so arrays its backward saves are not overwritten when the result is written back."""
    t = Tensor._make(self._array.copy(), self._requires_grad, self.grad_fn, self._output_nr,
                     self.device)
    if self.grad_fn is None and self._requires_grad:
        t._accumulator = self._grad_node()
    return t


def _inplace(name):
    def method(self, *args, **kwargs):
        op = name + "_"
        _check_inplace(self, op)
        tracked = _graph_involved(self) or (_mode.enabled and any(
            isinstance(a, Tensor) and a.requires_grad for a in args))
        src = _snapshot(self) if tracked else self
        return _write_result(self, getattr(ops, name)(src, *args, **kwargs), op)
    method.__name__ = name + "_"
    method.__doc__ = f"In-place {name}."
    return method


for _name in ("add sub mul div pow clamp clip masked_fill exp log neg sqrt rsqrt abs sigmoid "
              "tanh relu floor ceil round trunc sin cos lerp remainder fmod scatter scatter_add "
              "index_add index_fill tril triu sign erf reciprocal square floor_divide frac "
              "nan_to_num").split():
    setattr(Tensor, _name + "_", _inplace(_name))

Tensor.__iadd__ = Tensor.add_
Tensor.__isub__ = Tensor.sub_
Tensor.__imul__ = Tensor.mul_
Tensor.__itruediv__ = Tensor.div_
Tensor.__ipow__ = Tensor.pow_
Tensor.__ifloordiv__ = Tensor.floor_divide_
Tensor.__imod__ = Tensor.remainder_


def _fill_array(self, arr, op):
    """Write values that do not depend on ``self`` (a number or an array) into it."""
    _check_inplace(self, op)
    if _graph_involved(self):
        xp = backends.xp_for(self.device)
        values = xp.empty(self._array.shape, self._array.dtype)
        values[...] = arr
        return _write_result(self, Tensor._make(values, device=self.device), op)
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
        _check_inplace(self, "copy_")
        result = ops.expand(ops.to_dtype(src, self.dtype), tuple(self.shape)).clone()
        return _write_result(self, result, "copy_")
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
