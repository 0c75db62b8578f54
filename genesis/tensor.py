"""Tensor: an array with a dtype, a device and autograd fields, spelled like PyTorch."""
import copy
import numbers

import numpy as np

from . import backends, dtypes
from .device import CPU, as_device


def _to_array(data, dtype=None, dev=CPU):
    """Convert Python data, NumPy/CuPy arrays or Tensors into an array of the right dtype."""
    if isinstance(data, Tensor):
        arr = data._array
    elif isinstance(data, np.ndarray):
        arr = data
    elif hasattr(data, "__cuda_array_interface__"):
        arr = data
    else:
        arr = _python_to_numpy(data, exact=dtype is not None)
    if arr.dtype not in dtypes._FROM_NP:
        if dtype is None and arr.dtype.kind == "f":
            arr = arr.astype(dtypes.get_default_dtype().np)
        elif dtype is None:
            raise TypeError(f"tensor: unsupported array dtype {arr.dtype}; genesis supports "
                            f"{[d.name for d in dtypes.ALL]}")
    if dtype is not None:
        npd = dtypes.as_dtype(dtype).np
        if arr.dtype != npd:
            arr = arr.astype(npd)
    xp = backends.xp_for(dev)
    if xp is not np or not isinstance(arr, np.ndarray):
        arr = _move(arr, dev)
    return arr


def _python_to_numpy(data, exact=False):
    """Python numbers and nested sequences as an array; floats take the default dtype unless
    ``exact`` (a dtype was requested: keep float64 so the final cast rounds only once)."""
    if isinstance(data, (bool, np.bool_)):
        return np.array(data, dtype=np.bool_)
    if isinstance(data, numbers.Integral):
        return np.array(data, dtype=np.int64)
    if isinstance(data, numbers.Real):
        return np.array(data, dtype=np.float64 if exact else dtypes.get_default_dtype().np)
    if isinstance(data, (list, tuple)):
        if any(isinstance(x, Tensor) for x in data):
            data = [x.tolist() if isinstance(x, Tensor) else x for x in data]
        try:
            arr = np.array(data)
        except ValueError:
            arr = None
        if arr is None or arr.dtype == object:
            raise ValueError("tensor: ragged nested sequences cannot become a tensor; every "
                             "row must have the same length")
        if arr.dtype.kind == "f":
            return arr if exact else arr.astype(dtypes.get_default_dtype().np)
        if arr.dtype.kind in "iu":
            return arr.astype(np.int64)
        if arr.size == 0 and arr.dtype.kind not in "b":
            return arr.astype(dtypes.get_default_dtype().np)
        return arr
    raise TypeError(f"tensor: cannot build a tensor from {type(data).__name__}")


def _move(arr, dev):
    if dev.type == "cpu":
        if isinstance(arr, (np.ndarray, np.generic)):
            return np.asarray(arr)
        return arr.get()
    cp = backends.xp_for(dev)
    with cp.cuda.Device(dev.index):
        return cp.asarray(arr)


_new = object.__new__
_FROM_NP = dtypes._FROM_NP


class _HookHandle:
    """What ``register_*_hook`` returns: ``remove()`` unregisters the hook."""

    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        """Unregister the hook (no-op when already removed)."""
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Tensor:
    """A multi-dimensional array with reverse-mode autograd."""

    __slots__ = ("_array", "dtype", "device", "_requires_grad", "grad", "grad_fn", "_output_nr",
                 "_version", "_hooks", "_base", "_accumulator", "_view_replay", "_view_version",
                 "__weakref__", "__dict__")
    __array_priority__ = 1000
    __array_ufunc__ = None

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        dev = as_device(device)
        arr = _to_array(data, dtype, dev)
        self._init(arr, dev)
        if requires_grad:
            self.requires_grad = True

    def _init(self, arr, dev):
        self._array = arr
        self.dtype = dtypes._FROM_NP[arr.dtype]
        self.device = dev
        self._requires_grad = False
        self.grad = None
        self.grad_fn = None
        self._output_nr = 0
        self._version = [0]
        self._hooks = None
        self._base = None
        self._accumulator = None

    @staticmethod
    def _make(arr, requires_grad=False, grad_fn=None, output_nr=0, device=None):
        """Wrap an array without copying (internal fast path)."""
        t = _new(Tensor)
        if type(arr) is not np.ndarray:
            if not hasattr(arr, "dtype") or np.isscalar(arr):
                arr = np.asarray(arr)
            if device is None and not isinstance(arr, np.ndarray):
                device = backends.device_of_array(arr)
        t._array = arr
        t.dtype = _FROM_NP[arr.dtype]
        t.device = device if device is not None else CPU
        t._requires_grad = requires_grad
        t.grad = None
        t.grad_fn = grad_fn
        t._output_nr = output_nr
        t._version = [0]
        t._hooks = None
        t._base = None
        t._accumulator = None
        return t

    # ----------------------------------------------------------------- autograd fields
    @property
    def requires_grad(self):
        if self._base is not None:
            self._sync_view()
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if self.grad_fn is not None:
            if not value:
                raise RuntimeError("requires_grad: you can only change requires_grad flags of "
                                   "leaf tensors; use detach() to get a tensor without grad")
            return
        if value and not self.dtype.is_floating_point:
            raise RuntimeError(f"requires_grad: only tensors of floating point dtype can require "
                               f"gradients, got {self.dtype}")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place and return self."""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new grad."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't "
                               "require gradient")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(hook)
        else:
            self.grad_fn.register_hook(self._output_nr, hook)
        return hook

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` on this leaf after backward has accumulated into its ``.grad``."""
        if self.grad_fn is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks "
                               "cannot be registered on non-leaf tensors")
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a "
                               "tensor that doesn't require gradient")
        hooks = self.__dict__.setdefault("_post_accumulate_grad_hooks", [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        import weakref
        if self.grad_fn is None:
            return
        node = self.grad_fn
        if node._retains is None:
            node._retains = {}
        node._retains[self._output_nr] = weakref.ref(self)

    @property
    def retains_grad(self):
        node = self.grad_fn
        return bool(node is not None and node._retains and self._output_nr in node._retains)

    @property
    def data(self):
        """This tensor's values as a Tensor that shares its memory and does not require grad.

        As in PyTorch, changes made through ``.data`` are hidden from autograd: the alias has
        its own version counter (``detach()`` shares it and so is checked).
        """
        return Tensor._make(self._array, device=self.device)

    @data.setter
    def data(self, value):
        """``x.data = y``: ``x`` takes ``y``'s memory, shape, dtype and device (as in PyTorch);
        its graph position, grad and aliases made before stay as they were."""
        if not isinstance(value, Tensor):
            raise TypeError(f"data: assigned value must be a Tensor, got {type(value).__name__}")
        if self._requires_grad and not value.dtype.is_floating_point:
            raise RuntimeError(f"data: cannot assign a {value.dtype} tensor to the .data of a "
                               "tensor that requires grad (only floating point dtypes can)")
        self._array = value._array
        self.dtype = value.dtype
        self.device = value.device

    def detach(self):
        """A tensor sharing this data, cut from the graph."""
        t = Tensor._make(self._array, device=self.device)
        t._version = self._version
        return t

    def detach_(self):
        """Cut this tensor from the graph in place."""
        self.grad_fn = None
        self._requires_grad = False
        return self

    # ----------------------------------------------------------------- metadata
    @property
    def shape(self):
        return Size(self._array.shape)

    def size(self, dim=None):
        """The shape, or the length of one dimension."""
        if dim is None:
            return Size(self._array.shape)
        return self._array.shape[_wrap_dim(dim, self._array.ndim, "size")]

    def dim(self):
        """Number of dimensions."""
        return self._array.ndim

    @property
    def ndim(self):
        return self._array.ndim

    def numel(self):
        """Number of elements."""
        return int(self._array.size)

    nelement = numel

    def element_size(self):
        """Bytes per element."""
        return self.dtype.itemsize

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return int(self._array.nbytes)

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    def is_floating_point(self):
        """True for float16/bfloat16/float32/float64 tensors."""
        return self.dtype.is_floating_point

    def stride(self, dim=None):
        """Strides in elements, as PyTorch reports them."""
        st = tuple(s // self._array.itemsize for s in self._array.strides)
        return st if dim is None else st[_wrap_dim(dim, self.ndim, "stride")]

    def is_contiguous(self):
        """True when the data is C-contiguous."""
        return bool(self._array.flags.c_contiguous)

    def data_ptr(self):
        """Address of the first element."""
        if isinstance(self._array, np.ndarray):
            return self._array.__array_interface__["data"][0]
        return self._array.data.ptr

    # ----------------------------------------------------------------- conversion
    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self._array.size != 1:
            raise RuntimeError(f"item: a Tensor with {self._array.size} elements cannot be converted "
                               "to Scalar")
        return self._numpy_view().reshape(()).item() if self.dtype is not dtypes.bfloat16 else \
            float(self._numpy_view().reshape(()))

    def tolist(self):
        """Nested Python lists of the elements."""
        arr = self._numpy_view()
        if self.dtype in (dtypes.bfloat16,):
            arr = arr.astype(np.float32)
        return arr.tolist()

    def _numpy_view(self):
        return self._array if isinstance(self._array, np.ndarray) else self._array.get()

    def numpy(self, force=False):
        """The data as a NumPy array (shares memory on the CPU)."""
        if self.requires_grad and not force:
            raise RuntimeError("numpy: can't call numpy() on a tensor that requires grad; use "
                               "tensor.detach().numpy() instead")
        if self.device.type != "cpu" and not force:
            raise TypeError(f"numpy: can't convert {self.device} tensor to numpy; use "
                            "tensor.cpu() to copy it to host memory first")
        return self._numpy_view()

    def __array__(self, dtype=None, copy=None):
        arr = self._numpy_view()
        return arr if dtype is None else arr.astype(dtype)

    # ----------------------------------------------------------------- python protocol
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._array.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __bool__(self):
        if self._array.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._array.size} elements is "
                               "ambiguous")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.is_floating_point or self._array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self):
        from ._format import format_tensor
        return format_tensor(self)

    def __format__(self, format_spec):
        """``f"{loss:.4f}"``: a 0-d tensor formats as its Python number; others as ``str``."""
        if self._array.ndim == 0:
            return self.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def __getstate__(self):
        raise TypeError("genesis tensors are not picklable; use genesis.save (safetensors)")

    def __deepcopy__(self, memo):
        if self.grad_fn is not None:
            raise RuntimeError("deepcopy: only tensors created by the user (graph leaves) support "
                               "deepcopy; detach() it first")
        if id(self) in memo:
            return memo[id(self)]
        new = object.__new__(type(self))
        memo[id(self)] = new
        new._init(self._array.copy(), self.device)
        new._requires_grad = self._requires_grad
        if self.grad is not None:
            new.grad = Tensor._make(self.grad._array.copy(), device=self.device)
        for key, value in self.__dict__.items():
            setattr(new, key, copy.deepcopy(value, memo))
        return new


def check_no_internal_overlap(arr, op):
    """Refuse to write into an array whose elements share memory (an ``expand`` view), as
    PyTorch does: the result would depend on the order of the writes."""
    if 0 in arr.strides and arr.size > 1 and any(
            st == 0 and n > 1 for st, n in zip(arr.strides, arr.shape)):
        raise RuntimeError(f"{op}: unsupported operation: more than one element of the "
                           "written-to tensor refers to a single memory location (an expand() "
                           "view); clone() the tensor before performing the operation")


def _zero_grads(tensors, set_to_none=True):
    """Reset the ``.grad`` of each tensor to None, or to zeros in place (bumping its version)."""
    for t in tensors:
        if t.grad is None:
            continue
        if set_to_none:
            t.grad = None
        else:
            t.grad._array[...] = 0
            t.grad._version[0] += 1


def _wrap_dim(dim, ndim, op):
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of "
                         f"[{-n}, {n - 1}], but got {dim})")
    return dim % n


class Size(tuple):
    """Tensor shape: a tuple with ``numel()``, printed like ``genesis.Size([2, 3])``."""

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return f"genesis.Size({list(self)})"

    def __getitem__(self, item):
        out = tuple.__getitem__(self, item)
        return Size(out) if isinstance(item, slice) else out
