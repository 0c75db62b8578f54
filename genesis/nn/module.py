"""Module: the base of every layer and model, with PyTorch's registration and state_dict rules."""
import itertools
import weakref
from collections import OrderedDict, namedtuple

from .. import dtypes
from ..device import as_device, device as _device_cls
from ..tensor import Tensor, _move, _zero_grads
from .parameter import Parameter

__all__ = ["Module", "RemovableHandle"]

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """Returned by ``register_*_hook``; ``remove()`` (or leaving a ``with`` block) unregisters."""

    _ids = itertools.count()

    def __init__(self, *hook_dicts):
        self.id = next(RemovableHandle._ids)
        self._refs = [weakref.ref(d) for d in hook_dicts]

    def remove(self):
        """Unregister the hook (idempotent)."""
        for ref in self._refs:
            d = ref()
            if d is not None:
                d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class _HookDict(OrderedDict):
    """An OrderedDict that can be weakly referenced by handles."""


def _addindent(text, spaces):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    pad = " " * spaces
    return lines[0] + "\n" + "\n".join(pad + line for line in lines[1:])


def _convert_tensor_(t, dtype, device):
    """Change ``t``'s dtype (floating tensors only) and/or device in place, keeping the object."""
    arr = t._array
    if device is not None and t.device != device:
        arr = _move(arr, device)
    if dtype is not None and t.dtype.is_floating_point and t.dtype is not dtype:
        arr = arr.astype(dtype.np)
    if arr is not t._array:
        t._array = arr
        t.dtype = dtypes._FROM_NP[arr.dtype]
        t.device = device if device is not None else t.device
        t._version[0] += 1
    if t.grad is not None:
        _convert_tensor_(t.grad, dtype, device)


def _parse_to(args, kwargs):
    """``(dtype, device)`` from the arguments of ``Module.to``."""
    dt = kwargs.pop("dtype", None)
    dev = kwargs.pop("device", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"Module.to: unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dt, dev = a.dtype, a.device
        elif isinstance(a, dtypes.dtype) or (isinstance(a, str) and a in dtypes._NAMES):
            dt = a
        elif isinstance(a, (str, _device_cls, int)):
            dev = a
        elif a is not None:
            dt = a
    dt = dtypes.as_dtype(dt) if dt is not None else None
    if dt is not None and not dt.is_floating_point:
        raise TypeError(f"Module.to only accepts floating point dtypes, but got desired "
                        f"dtype={dt}")
    return dt, (as_device(dev) if dev is not None else None)


class Module:
    """Base class of all neural-network modules; subclasses define ``forward``."""

    training: bool

    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_pre_hooks"] = _HookDict()
        d["_forward_pre_hooks_with_kwargs"] = set()
        d["_forward_hooks"] = _HookDict()
        d["_forward_hooks_with_kwargs"] = set()

    def forward(self, *args, **kwargs):
        """The computation; every subclass overrides it."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  '"forward" function')

    # ----------------------------------------------------------------- calling
    def __call__(self, *args, **kwargs):
        if not self._forward_pre_hooks and not self._forward_hooks:
            return self.forward(*args, **kwargs)
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook registered with_kwargs must return "
                                           f"None or a tuple (args, kwargs), got {result!r}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook_id, hook in list(self._forward_hooks.items()):
            if hook_id in self._forward_hooks_with_kwargs:
                result = hook(self, args, kwargs, output)
            else:
                result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args)`` before ``forward``; it may return replacement args."""
        return self._add_hook(self._forward_pre_hooks, self._forward_pre_hooks_with_kwargs,
                              hook, prepend, with_kwargs)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args, output)`` after ``forward``; it may return a new output."""
        return self._add_hook(self._forward_hooks, self._forward_hooks_with_kwargs,
                              hook, prepend, with_kwargs)

    @staticmethod
    def _add_hook(hooks, kwarg_ids, hook, prepend, with_kwargs):
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        if with_kwargs:
            kwarg_ids.add(handle.id)
        return handle

    # ----------------------------------------------------------------- registration
    def _check_new_name(self, name, kind, allow_existing):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got {name!r}')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if hasattr(self, name) and name not in allow_existing:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name, param):
        """Add a Parameter (or None) under ``name``."""
        self._check_new_name(name, "parameter", self._parameters)
        if param is None:
            self._parameters[name] = None
            return
        if not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (genesis.nn.Parameter or None required)")
        if param.grad_fn is not None:
            raise ValueError(f"Cannot assign non-leaf Tensor to parameter '{name}'. Model "
                             "parameters must be created explicitly; to express a parameter as "
                             "a function of another Tensor, compute it in forward()")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a Tensor (or None) under ``name``; persistent buffers go into ``state_dict``."""
        self._check_new_name(name, "buffer", self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(genesis Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name, module):
        """Add a child module (or None) under ``name``."""
        self._check_new_name(name, "module", self._modules)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._remove_name(name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(genesis.nn.Parameter or None expected)")
            params[name] = None
        else:
            modules = d.get("_modules")
            if isinstance(value, Module):
                if modules is None:
                    raise AttributeError("cannot assign module before Module.__init__() call")
                self._remove_name(name)
                modules[name] = value
            elif modules is not None and name in modules:
                if value is not None:
                    raise TypeError(f"cannot assign '{type(value).__name__}' as child module "
                                    f"'{name}' (genesis.nn.Module or None expected)")
                modules[name] = None
            else:
                buffers = d.get("_buffers")
                if buffers is not None and name in buffers:
                    if value is not None and not isinstance(value, Tensor):
                        raise TypeError(f"cannot assign '{type(value).__name__}' as buffer "
                                        f"'{name}' (genesis Tensor or None expected)")
                    buffers[name] = value
                else:
                    object.__setattr__(self, name, value)

    def _remove_name(self, name):
        d = self.__dict__
        d.pop(name, None)
        for key in ("_parameters", "_buffers", "_modules"):
            d[key].pop(name, None)
        d["_non_persistent_buffers_set"].discard(name)

    def __getattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            store = d.get(key)
            if store is not None and name in store:
                return store[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        d = self.__dict__
        if name in d.get("_parameters", ()):
            del d["_parameters"][name]
        elif name in d.get("_buffers", ()):
            del d["_buffers"][name]
            d["_non_persistent_buffers_set"].discard(name)
        elif name in d.get("_modules", ()):
            del d["_modules"][name]
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        keys = set(object.__dir__(self))
        keys.update(self._parameters, self._buffers, self._modules)
        return sorted(k for k in keys if not k[0].isdigit())

    def get_submodule(self, target):
        """The submodule at dotted path ``target`` (``""`` is self)."""
        mod = self
        if target == "":
            return mod
        for item in target.split("."):
            if item not in mod._modules or mod._modules[item] is None:
                raise AttributeError(f"{type(mod).__name__} has no submodule `{item}` "
                                     f"(looking up {target!r})")
            mod = mod._modules[item]
        return mod

    def get_parameter(self, target):
        """The parameter at dotted path ``target``."""
        prefix, _, name = target.rpartition(".")
        mod = self.get_submodule(prefix)
        if name not in mod._parameters:
            raise AttributeError(f"{type(mod).__name__} has no parameter `{name}`")
        return mod._parameters[name]

    def get_buffer(self, target):
        """The buffer at dotted path ``target``."""
        prefix, _, name = target.rpartition(".")
        mod = self.get_submodule(prefix)
        if name not in mod._buffers:
            raise AttributeError(f"{type(mod).__name__} has no buffer `{name}`")
        return mod._buffers[name]

    # ----------------------------------------------------------------- iteration
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Yield ``(dotted_name, module)`` for self and every descendant (each once by default)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self):
        """Yield self and every descendant module."""
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """Yield ``(name, module)`` for direct children."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        """Yield direct child modules."""
        for _, m in self.named_children():
            yield m

    def _named_members(self, store, prefix, recurse, remove_duplicate):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, value in getattr(mod, store).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield mod_prefix + ("." if mod_prefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(dotted_name, Parameter)``; a shared parameter appears once by default."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """Yield every Parameter once."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(dotted_name, Tensor)`` for buffers, persistent or not."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        """Yield every buffer once."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ----------------------------------------------------------------- modes and transforms
    def train(self, mode=True):
        """Set training mode on self and descendants (dropout active); returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: training mode is expected to be boolean, got {mode!r}")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        """Set evaluation mode (``train(False)``); returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter; returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset parameter gradients to None (default) or to zeros in place."""
        _zero_grads(self.parameters(), set_to_none)

    def apply(self, fn):
        """Call ``fn`` on every descendant (children first) and on self; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, *args, **kwargs):
        """Convert floating parameters/buffers to a dtype and/or move everything to a device.

        Conversion happens in place: the same Parameter objects are kept, so an optimizer
        built before ``to`` still updates them.
        """
        dt, dev = _parse_to(args, kwargs)
        for t in itertools.chain(self.parameters(), self.buffers()):
            _convert_tensor_(t, dt, dev)
        return self

    def float(self):
        """Cast floating parameters and buffers to float32."""
        return self.to(dtypes.float32)

    def double(self):
        """Cast floating parameters and buffers to float64."""
        return self.to(dtypes.float64)

    def half(self):
        """Cast floating parameters and buffers to float16."""
        return self.to(dtypes.float16)

    def bfloat16(self):
        """Cast floating parameters and buffers to bfloat16."""
        return self.to(dtypes.bfloat16)

    def cpu(self):
        """Move parameters and buffers to host memory."""
        return self.to("cpu")

    def cuda(self, device=None):
        """Move parameters and buffers to a GPU."""
        return self.to(_device_cls("cuda", device if isinstance(device, int) else 0))

    # ----------------------------------------------------------------- state dict
    def _state_entries(self, prefix=""):
        """Yield ``(key, module, name, kind)`` of persistent state, shared modules included."""
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, self, name, "_parameters"
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                yield prefix + name, self, name, "_buffers"
        for name, m in self._modules.items():
            if m is not None:
                yield from m._state_entries(prefix + name + ".")

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Persistent state (parameters and persistent buffers) by dotted name, detached."""
        if destination is None:
            destination = OrderedDict()
        for key, mod, name, kind in self._state_entries(prefix):
            value = getattr(mod, kind)[name]
            destination[key] = value if keep_vars else value.detach()
        return destination

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy ``state_dict`` into parameters and buffers; nothing is changed if it fails.

        With ``strict`` missing and unexpected keys are errors; shape mismatches always are.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict: expected a mapping of names to tensors, got "
                            f"{type(state_dict).__name__}")
        entries = list(self._state_entries())
        expected = {key for key, *_ in entries}
        missing = [key for key, *_ in entries if key not in state_dict]
        unexpected = [key for key in state_dict.keys() if key not in expected]
        errors = []
        if strict and missing:
            errors.append("Missing key(s) in state_dict: "
                          + ", ".join(f'"{k}"' for k in missing) + ". ")
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: "
                          + ", ".join(f'"{k}"' for k in unexpected) + ". ")
        todo = []
        for key, mod, name, kind in entries:
            if key not in state_dict:
                continue
            value = state_dict[key]
            current = getattr(mod, kind)[name]
            if not isinstance(value, Tensor):
                errors.append(f'While copying the parameter named "{key}", expected a genesis '
                              f"Tensor from checkpoint but received {type(value).__name__}")
            elif tuple(value.shape) != tuple(current.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape "
                              f"{tuple(value.shape)} from checkpoint, the shape in current "
                              f"model is {tuple(current.shape)}.")
            else:
                todo.append((mod, name, kind, current, value))
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        for mod, name, kind, current, value in todo:
            if assign:
                if kind == "_parameters":
                    value = Parameter(value, requires_grad=current.requires_grad)
                getattr(mod, kind)[name] = value
                continue
            arr = value._array
            if value.device != current.device:
                arr = _move(arr, current.device)
            current._array[...] = arr.astype(current._array.dtype, copy=False)
            current._version[0] += 1
        return _IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- repr
    def extra_repr(self):
        """Extra text shown inside this module's repr (its hyper-parameters)."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({key}): " + _addindent(repr(m), 2) for key, m in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                body = extra_lines[0]
            else:
                body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"
