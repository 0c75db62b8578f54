"""Reverse-mode autograd: Function, graph nodes, the backward engine and grad mode.

A differentiable op is a ``Function`` subclass whose ``forward(ctx, *args)`` and
``backward(ctx, *grad_outputs)`` work on raw arrays (NumPy or CuPy, via ``ctx.xp``).
``Function.apply`` unwraps Tensors, runs ``forward`` and, when gradients are needed, keeps
the call's ctx as the outputs' graph ``Node`` (``grad_fn``), linked to the inputs' nodes.
"""
import functools
import inspect
import sys
import threading

import numpy as np

from . import backends, dtypes
from ._broadcast import broadcast_error
from .backends import parallel
from .tensor import Tensor

__all__ = ["Function", "FunctionCtx", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled", "inference_mode", "grad", "backward", "unbroadcast",
           "queue_callback"]


class _GradMode(threading.local):
    enabled = True
    callbacks = None    # list while a backward pass runs: called when it ends


_mode = _GradMode()


def queue_callback(callback):
    """Run ``callback()`` once the backward pass now running has finished (PyTorch's
    ``Variable._execution_engine.queue_callback``); raises outside a backward pass."""
    if _mode.callbacks is None:
        raise RuntimeError("queue_callback: no backward pass is running; a callback can only be "
                           "queued from a hook called during backward")
    _mode.callbacks.append(callback)


def is_grad_enabled():
    """True when operations record a graph for backward."""
    return _mode.enabled


class _GradContext:
    """Base for grad-mode objects: context managers that also decorate functions and generators.

    As in PyTorch, a decorated function runs under a fresh copy of the object at each call, so
    decorating never changes the mode of the code around it.
    """

    _target = True

    def __enter__(self):
        self._prev = _mode.enabled
        _mode.enabled = self._target

    def __exit__(self, *exc):
        _mode.enabled = self._prev
        return False

    def clone(self):
        """A fresh object with the same setting (what each decorated call enters)."""
        return self.__class__()

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(self, fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.clone():
                return fn(*args, **kwargs)
        return wrapper


def _wrap_generator(mode, fn):
    """Run each step of the generator ``fn`` under ``mode`` (and nothing outside it)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        gen = fn(*args, **kwargs)
        try:
            with mode.clone():
                response = gen.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with mode.clone():
                        gen.close()
                    raise
                except BaseException as exc:
                    with mode.clone():
                        response = gen.throw(exc)
                else:
                    with mode.clone():
                        response = gen.send(request)
        except StopIteration as stop:
            return stop.value
    return wrapper


class _NoParamGradContext(_GradContext):
    """Grad-mode objects that also decorate without parentheses (``@no_grad``), as in PyTorch."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_NoParamGradContext):
    """Context manager / decorator that disables graph recording."""

    _target = False


class enable_grad(_NoParamGradContext):
    """Context manager / decorator that enables graph recording."""

    _target = True


class inference_mode(_GradContext):
    """``no_grad`` under PyTorch's name (genesis has no separate inference tensors).

    As in PyTorch, ``inference_mode(False)`` turns grad mode on inside its block.
    """

    def __new__(cls, mode=True):
        if callable(mode) and not isinstance(mode, bool):
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = bool(mode)
        self._target = not self.mode

    def clone(self):
        return self.__class__(self.mode)


class set_grad_enabled(_GradContext):
    """Set grad mode now; as a context manager or decorator the previous mode comes back after."""

    def __init__(self, mode):
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled: mode must be a bool, got {type(mode).__name__}")
        self._prev = _mode.enabled
        self.mode = mode
        _mode.enabled = mode

    def __call__(self, fn):
        _mode.enabled = self._prev
        return super().__call__(fn)

    def __enter__(self):
        pass

    def clone(self):
        return self.__class__(self.mode)


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the gradient of a broadcast from ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and grad.shape[i + lead] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class FunctionCtx:
    """Per-call state shared by ``forward`` and ``backward``.

    When the call is recorded the ctx is also its graph node (the outputs' ``grad_fn``), as in
    PyTorch: one object per call. Everything a call does not set is a class-level default.
    """

    __slots__ = ("__dict__", "__weakref__")
    to_save = ()
    non_differentiable = ()
    next_functions = ()
    _versions = None
    xp = np
    device = None

    def save_for_backward(self, *arrays):
        """Keep arrays for backward; in-place changes to their tensors are detected."""
        self.to_save = arrays

    def mark_non_differentiable(self, *arrays):
        """Outputs (by identity) that never carry a gradient, such as indices."""
        self.non_differentiable = arrays

    @property
    def needs_input_grad(self):
        """One bool per ``forward`` argument: whether backward must return its gradient."""
        return tuple([n is not None for n in self.next_functions])

    @property
    def saved_tensors(self):
        """The arrays given to ``save_for_backward``, checked against in-place modification."""
        if self._versions:
            for box, version, arr, dt in self._versions:
                if box[0] != version:
                    raise RuntimeError(
                        "one of the variables needed for gradient computation has been modified "
                        f"by an inplace operation: tensor of shape {tuple(arr.shape)} and dtype "
                        f"{dt} is at version {box[0]}; expected version {version} instead")
        return self.to_save


class Node(FunctionCtx):
    """A recorded call of a Function: its ctx and its place in the graph. Each Function class
    gets its own subclass (``MulBackward``), made once when the Function class is defined."""

    __slots__ = ("next_functions", "_out_meta")  # edges; (shape, dtype) of each output
    _function = None    # the Function class
    _pre_hooks = None   # {output_nr: [hook]}: Tensor.register_hook on a non-leaf
    _retains = None     # {output_nr: weakref to the tensor}: Tensor.retain_grad
    _freed = False

    @property
    def n_outputs(self):
        return len(self._out_meta)

    def name(self):
        """PyTorch-style node name, e.g. ``MulBackward``."""
        return f"{self._function.__name__}Backward"

    def __repr__(self):
        return f"<{self.name()}>"

    def register_hook(self, output_nr, hook):
        if self._pre_hooks is None:
            self._pre_hooks = {}
        self._pre_hooks.setdefault(output_nr, []).append(hook)

    def run(self, grads, retain_graph):
        if self._freed:
            raise RuntimeError(
                f"{self.name()}: trying to backward through the graph a second time (or to "
                "access saved tensors after they were freed); pass retain_graph=True to the "
                "first backward call if you need to backward twice")
        dev = self.device
        if dev is None:
            result = self._backward(grads)
        else:
            with backends.cuda.device_guard(dev.index):
                result = self._backward(grads)
        if not isinstance(result, tuple):
            result = (result,)
        n = len(self.next_functions)
        if len(result) < n:
            result = result + (None,) * (n - len(result))
        if not retain_graph:
            self._free()
        return result

    def _free(self):
        """Drop what forward saved; the graph structure (edges, output metadata) stays."""
        self.__dict__.clear()
        self._freed = True

    def _backward(self, grads):
        xp = self.xp
        for i, g in enumerate(grads):
            if g is None:
                shape, dt = self._out_meta[i]
                grads[i] = xp.zeros(shape, dtype=dt)
        if self._pre_hooks or self._retains:
            _run_output_hooks(self, grads)
        return self._function.backward(self, *grads)


def _run_output_hooks(node, grads):
    for i in range(len(grads)):
        for hook in (node._pre_hooks or {}).get(i, ()):
            out = hook(Tensor._make(grads[i]))
            if out is not None:
                grads[i] = out._array
        ref = (node._retains or {}).get(i)
        tensor = ref() if ref is not None else None
        if tensor is not None:
            g = grads[i].copy()
            tensor.grad = Tensor._make(g) if tensor.grad is None else Tensor._make(tensor.grad._array + g)


class AccumulateGrad:
    """Graph sink of a leaf tensor: runs its hooks and accumulates into ``.grad``."""

    __slots__ = ("variable", "next_functions", "__weakref__")

    def __init__(self, variable):
        self.variable = variable
        self.next_functions = ()

    n_outputs = 1

    def name(self):
        return "AccumulateGrad"

    def __repr__(self):
        return "<AccumulateGrad>"

    def accumulate(self, grads):
        """Add the gradient ``grads[0]`` (taken out of the list) into ``.grad``."""
        var = self.variable
        g = grads[0]
        grads[0] = None
        for hook in var._hooks or ():
            out = hook(Tensor._make(g))
            if out is not None:
                g = out._array
        if g.dtype != var._array.dtype:
            g = g.astype(var._array.dtype)
        acc = var.grad
        if acc is None:
            var.grad = Tensor._make(g if _unshared(g) else parallel.copy(g))
        elif acc._array.shape == g.shape and (type(acc._array) is not np.ndarray
                                              or acc._array.flags.writeable):
            parallel.add_(acc._array, g)   # in place, as PyTorch's AccumulateGrad
            acc._version[0] += 1
        else:
            var.grad = Tensor._make(parallel.add(acc._array, g))
        for hook in getattr(var, "_post_accumulate_grad_hooks", None) or ():
            hook(var)


def _refs(array):
    return sys.getrefcount(array)


def _held_refs(array):
    return _refs(array)


def _fresh_refs():
    array = np.empty(1)
    return _held_refs(array)


# What ``_refs`` counts, two calls down, for an array only one local variable holds (measured:
# it differs between Python versions); ``_unshared`` checks at the same depth.
_FRESH_REFS = _fresh_refs()


def _unshared(g):
    """Whether the gradient array ``g``, held only by the caller's local variable, may become a
    leaf's ``.grad`` as it is (PyTorch steals such a gradient instead of copying it): a
    writable, C-contiguous NumPy array owning its memory that nothing else references (no
    tensor, saved-for-backward slot, view or other gradient), so writes to ``.grad`` can reach
    nothing else."""
    return (type(g) is np.ndarray and g.base is None and g.flags.writeable
            and g.flags.c_contiguous and _refs(g) <= _FRESH_REFS)


_make = Tensor._make
# Output dtypes that carry a gradient.
_DIFFERENTIABLE = frozenset(d.np for d in dtypes.ALL if d.is_floating_point)


class Function:
    """Base class of differentiable ops; subclass with static ``forward``/``backward``.

    ``forward(ctx, *args)`` receives arrays for Tensor arguments and returns an array or
    a tuple of arrays; ``backward(ctx, *grad_outputs)`` returns one gradient (or None)
    per ``forward`` argument.
    """

    is_view = False          # outputs alias the first input's memory
    view_may_copy = False    # ... unless the op had to copy (checked after forward)
    _node_cls = Node         # the ctx/node class of each call, one subclass per Function

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._node_cls = type(f"{cls.__name__}Backward", (Node,),
                             {"_function": cls, "__slots__": (), "__module__": cls.__module__})

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = cls._node_cls()
        raw = []
        nexts = []
        enabled = _mode.enabled
        record = False
        dev = None
        for a in args:
            if isinstance(a, Tensor):
                if a._base is not None and a._view_version != a._version[0]:
                    a._sync_view()
                d = a.device
                if d is not dev:
                    if dev is None:
                        dev = d
                    elif d != dev:
                        return cls.apply(*_cpu_scalars_to_gpu(cls, args), **kwargs)
                raw.append(a._array)
                if a._requires_grad and enabled:
                    record = True
                    nexts.append((a.grad_fn or a._accumulator or a._grad_node(), a._output_nr))
                else:
                    nexts.append(None)
            else:
                raw.append(a)
                nexts.append(None)
        ctx.next_functions = tuple(nexts)
        try:
            if dev is None or dev.type == "cpu":
                out = cls.forward(ctx, *raw, **kwargs) if kwargs else cls.forward(ctx, *raw)
            else:
                ctx.xp = backends.xp_for(dev)
                ctx.device = dev
                with backends.cuda.device_guard(dev.index):
                    out = cls.forward(ctx, *raw, **kwargs)
        except ValueError as exc:
            if "broadcast" not in str(exc):
                raise
            shapes = " and ".join(str(tuple(a.shape)) for a in args if isinstance(a, Tensor))
            raise broadcast_error(cls.__name__, f"the shapes {shapes} cannot be broadcast "
                                                "together") from None
        if type(out) is not tuple:
            if not record:
                result = _make(out, False, None, 0, dev)
            else:
                if type(out) is not np.ndarray:
                    out = _as_output(ctx, out)
                ctx._out_meta = ((out.shape, out.dtype),)
                if out.dtype in _DIFFERENTIABLE and not (
                        ctx.non_differentiable and any(out is n for n in ctx.non_differentiable)):
                    result = _make(out, True, ctx, 0, dev)
                else:
                    result = _make(out, False, None, 0, dev)
            if cls.is_view:
                _mark_views(cls, ctx, args, raw[0], kwargs, (result,), False)
            if ctx.to_save and record:
                _record_versions(ctx, args, raw, (result,))
            return result
        if not record:
            results = tuple([_make(o, False, None, 0, dev) for o in out])
        else:
            results = _record_outputs(ctx, out, dev)
        if cls.is_view:
            _mark_views(cls, ctx, args, raw[0], kwargs, results, True)
        if ctx.to_save and record:
            _record_versions(ctx, args, raw, results)
        return results


def _record_outputs(ctx, out, dev):
    """Tensors for a recorded call's outputs (a tuple): differentiable ones point at ``ctx``."""
    outs = tuple([_as_output(ctx, o) for o in out])
    ctx._out_meta = tuple([(o.shape, o.dtype) for o in outs])
    nondiff = ctx.non_differentiable
    results = []
    for i, o in enumerate(outs):
        if o.dtype in _DIFFERENTIABLE and not (nondiff and any(o is n for n in nondiff)):
            results.append(_make(o, True, ctx, i, dev))
        else:
            results.append(_make(o, False, None, 0, dev))
    return tuple(results)


def _as_output(ctx, o):
    """A forward output as an array of the op's array module (scalars wrapped)."""
    return o if type(o) is np.ndarray or hasattr(o, "__cuda_array_interface__") \
        else ctx.xp.asarray(o)


def _cpu_scalars_to_gpu(cls, args):
    """``args`` with 0-dim CPU tensors copied to the one GPU the others are on (as PyTorch
    allows); any other device mix raises a RuntimeError naming the devices."""
    devices = {a.device for a in args
               if isinstance(a, Tensor) and not (a.device.type == "cpu" and a.ndim == 0)}
    if len(devices) != 1 or next(iter(devices)).type == "cpu":
        found = " and ".join(sorted({str(a.device) for a in args if isinstance(a, Tensor)}))
        raise RuntimeError(f"{cls.__name__}: expected all tensors to be on the same device, "
                           f"but found {found}")
    gpu = next(iter(devices))
    return tuple(_device_copy(a, gpu) if isinstance(a, Tensor) and a.device != gpu else a
                 for a in args)


# The differentiable device copy (ops.elementwise.to_device), provided by the ops layer when
# genesis.ops is imported: autograd stays below the ops it records.
_device_copy = None


def set_device_copy(fn):
    """Install ``fn(tensor, device)``, the op that copies 0-dim CPU operands to a GPU."""
    global _device_copy
    _device_copy = fn


def _mark_views(cls, ctx, args, raw0, kwargs, results, multi):
    """Make a view op's outputs aliases of its first argument's base (when it is a Tensor and,
    for ``view_may_copy`` ops, the output really shares its memory): they share the base's
    version counter and remember how to re-derive them from it (``_view_replay``: the chain
    of view ops), for ``Tensor._sync_view``."""
    base = args[0]
    if not isinstance(base, Tensor):
        return
    if cls.view_may_copy and not _shares_memory(ctx.xp, results[0]._array, raw0):
        return
    step = (cls, args[1:], kwargs)
    if base._base is not None:
        replay = base._view_replay + (step,)
        base = base._base
    else:
        replay = (step,)
    version = base._version
    for i, view in enumerate(results):
        view._version = version
        view._base = base
        view._view_replay = replay[:-1] + (step + (i,),) if multi else replay
        view._view_version = version[0]


def _shares_memory(xp, out, arr):
    """True when ``out`` aliases ``arr``: the base-array identity settles the common case
    (a view of ``arr`` or of the array ``arr`` views) before the general memory-bounds test."""
    owner = out.base
    if owner is not None and (owner is arr or owner is arr.base):
        return True
    return bool(xp.may_share_memory(out, arr))


def _record_versions(ctx, args, raw, results):
    """Remember the version of every saved array that belongs to an input or output tensor
    (the last input holding it, else the first output)."""
    versions = []
    for arr in ctx.to_save:
        i = len(raw)
        while i:
            i -= 1
            if raw[i] is arr and args[i] is not arr:   # a Tensor argument's array
                owner = args[i]
                break
        else:
            for owner in results:
                if owner._array is arr:
                    break
            else:
                continue
        versions.append((owner._version, owner._version[0], arr, owner.dtype))
    ctx._versions = versions


def _run_engine(roots, root_grads, retain_graph, capture=None):
    """Propagate ``root_grads`` from ``roots`` (pairs of node, output_nr) through the graph,
    then run the callbacks queued during the pass (outermost pass only).

    With ``capture`` (a dict ``(node, output_nr) -> slot``) gradients arriving there are
    returned instead of accumulated into leaves' ``.grad``.
    """
    if _mode.callbacks is not None:
        return _propagate(roots, root_grads, retain_graph, capture)
    _mode.callbacks = callbacks = []
    try:
        captured = _propagate(roots, root_grads, retain_graph, capture)
    finally:
        _mode.callbacks = None
    for callback in callbacks:
        callback()
    return captured


def _propagate(roots, root_grads, retain_graph, capture):
    deps = {}
    stack = [n for n, _ in roots]
    seen = set(stack)
    while stack:
        node = stack.pop()
        for nxt in node.next_functions:
            if nxt is None:
                continue
            child = nxt[0]
            deps[child] = deps.get(child, 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    buffers = {}
    for (node, nr), g in zip(roots, root_grads):
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * node.n_outputs
        buf[nr] = g if buf[nr] is None else buf[nr] + g
    captured = {} if capture is not None else None
    ready = [n for n in buffers if deps.get(n, 0) == 0]
    while ready:
        node = ready.pop()
        grads = buffers.pop(node, None)
        if capture is not None and grads is not None:
            for nr, g in enumerate(grads):
                slot = capture.get((node, nr))
                if slot is not None and g is not None:
                    captured[slot] = g if slot not in captured else captured[slot] + g
        if isinstance(node, AccumulateGrad):
            if grads is not None and grads[0] is not None and capture is None:
                node.accumulate(grads)
            continue
        if grads is None or all(g is None for g in grads):
            in_grads = (None,) * len(node.next_functions)
        else:
            in_grads = node.run(grads, retain_graph)
        for nxt, g in zip(node.next_functions, in_grads):
            if nxt is None:
                continue
            child, nr = nxt
            if g is not None:
                shape = child.variable._array.shape if isinstance(child, AccumulateGrad) \
                    else child._out_meta[nr][0]
                if g.shape != shape:
                    g = _fix_grad_shape(node, g, shape)
                buf = buffers.get(child)
                if buf is None:
                    buf = buffers[child] = [None] * child.n_outputs
                buf[nr] = g if buf[nr] is None else parallel.add(buf[nr], g)
            deps[child] -= 1
            if deps[child] == 0:
                ready.append(child)
        in_grads = g = buf = None  # leaves' gradients are referenced only by their buffers
    return captured


def _fix_grad_shape(node, g, shape):
    if g.size == int(np.prod(shape)) and g.ndim == 0:
        return g.reshape(shape)
    raise RuntimeError(f"{node.name()}: backward returned a gradient of shape {tuple(g.shape)} "
                       f"for an input of shape {tuple(shape)}")


def _as_grad_array(tensor, gradient, what):
    xp = backends.xp_for(tensor.device)
    if gradient is None:
        if tensor.numel() != 1:
            raise RuntimeError(f"{what}: grad can be implicitly created only for scalar outputs; "
                               f"got an output of shape {tuple(tensor.shape)}")
        return xp.ones(tensor._array.shape, dtype=tensor._array.dtype)
    g = gradient._array if isinstance(gradient, Tensor) else xp.asarray(gradient)
    if g.shape != tensor._array.shape:
        raise RuntimeError(f"{what}: gradient of shape {tuple(g.shape)} does not match the "
                           f"output's shape {tuple(tensor.shape)}")
    return g.astype(tensor._array.dtype, copy=False)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves they depend on."""
    if create_graph:
        raise NotImplementedError("backward: create_graph=True (higher-order gradients) is not "
                                  "supported by genesis")
    if isinstance(tensors, Tensor):
        tensors = (tensors,)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = (grad_tensors,) * len(tensors) if grad_tensors is None else (grad_tensors,)
    roots, grads = [], []
    for t, g in zip(tensors, grad_tensors):
        if not t.requires_grad:
            raise RuntimeError("backward: element 0 of tensors does not require grad and does "
                               "not have a grad_fn")
        roots.append((t._grad_node(), t._output_nr))
        grads.append(_as_grad_array(t, g, "backward"))
    _run_engine(roots, grads, bool(retain_graph))


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, without touching ``.grad``."""
    if create_graph:
        raise NotImplementedError("autograd.grad: create_graph=True (higher-order gradients) is "
                                  "not supported by genesis")
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    single = isinstance(inputs, Tensor)
    inputs = (inputs,) if single else tuple(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = (grad_outputs,) * len(outputs) if grad_outputs is None else (grad_outputs,)
    capture = {}
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: input {i} does not require grad")
        capture[(t._grad_node(), t._output_nr)] = i
    roots, grads = [], []
    for t, g in zip(outputs, grad_outputs):
        if not t.requires_grad:
            raise RuntimeError("autograd.grad: an output does not require grad and does not "
                               "have a grad_fn")
        roots.append((t._grad_node(), t._output_nr))
        grads.append(_as_grad_array(t, g, "autograd.grad"))
    captured = _run_engine(roots, grads, bool(retain_graph), capture)
    result = []
    for i, t in enumerate(inputs):
        g = captured.get(i)
        if g is None and not allow_unused:
            raise RuntimeError(f"autograd.grad: input {i} was not used in the graph; pass "
                               "allow_unused=True to get None for it")
        result.append(None if g is None else Tensor._make(g.astype(t._array.dtype, copy=False)))
    return tuple(result)


def _grad_node(self):
    """The node a tensor's gradient flows into: its ``grad_fn``, or its leaf accumulator."""
    if self.grad_fn is not None:
        return self.grad_fn
    if self._accumulator is None:
        self._accumulator = AccumulateGrad(self)
    return self._accumulator


def _sync_view(self):
    """After the base of this view changed in place, re-derive the view's graph position
    from the base (as PyTorch does), so gradients through the view see the change."""
    if self._view_version == self._version[0] or not _mode.enabled:
        return
    self._view_version = self._version[0]
    base = self._base
    if not (base._requires_grad or self._requires_grad):
        return
    current = base
    for step in self._view_replay:
        cls, rest, kwargs = step[:3]
        current = cls.apply(current, *rest, **kwargs)
        if len(step) == 4:
            current = current[step[3]]
    self.grad_fn = current.grad_fn
    self._output_nr = current._output_nr
    self._requires_grad = current._requires_grad


def _tensor_backward(self, gradient=None, retain_graph=None, create_graph=False):
    """Compute gradients of this tensor with respect to graph leaves."""
    if self._base is not None:
        self._sync_view()
    backward(self, gradient, retain_graph, create_graph)


# Tensor's autograd methods live here, with the graph they walk (tensor.py stays below).
Tensor._grad_node = _grad_node
Tensor._sync_view = _sync_view
Tensor.backward = _tensor_backward
