"""Optimizer base: parameter groups, per-parameter state and PyTorch-format state dicts.

Updates work on the raw arrays (``p._array``, ``p.grad._array``) in place through the device's
array module: no autograd graph, no Python loop over elements.
"""
import copy
from collections import defaultdict

from .. import backends
from ..autograd import enable_grad
from ..tensor import Tensor, _move, _zero_grads
from . import _kernels

__all__ = ["Optimizer", "required", "implementation_flags"]


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


def implementation_flags(optimizer, **flags):
    """PyTorch's ``foreach``/``fused``/``capturable``/``differentiable`` choices, checked.

    genesis has one implementation of each optimizer (in-place array updates, no graph), so
    None and False are accepted (and kept in the param groups, as PyTorch does) and True is
    refused rather than silently ignored.
    """
    for name, value in flags.items():
        if value not in (None, False):
            raise ValueError(f"{optimizer}: {name}={value!r} is not supported; genesis has one "
                             f"implementation of each optimizer (in-place updates through the "
                             f"array module, outside autograd), so pass {name}=None or False")
    return flags


class Optimizer:
    """Base class: ``param_groups`` (``params`` + hyper-parameters) and per-parameter ``state``."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {group[k]}" for k in sorted(group) if k != "params")
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group):
        """Append a group ``{'params': ..., **hyper-parameters}``; missing ones take defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: param_group must be a dict, got "
                            f"{type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs; use "
                            "a list instead")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group = dict(param_group, params=params)
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer: a parameter group contains the same parameter twice")
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Reset gradients to None (default) or to zeros in place."""
        _zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        updates = []
        try:
            self._collect_updates(updates)
        finally:
            _kernels.run(updates)
        return loss

    def _collect_updates(self, updates):
        """Advance every parameter's state, appending its pending update to ``updates`` (run
        together afterwards, also when a later parameter raises)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad._array.shape != p._array.shape:
                    raise RuntimeError(f"{type(self).__name__}.step: gradient of shape "
                                       f"{tuple(p.grad.shape)} does not match its parameter's "
                                       f"shape {tuple(p.shape)}")
                state = self.state.get(p, {})
                update = self._update(backends.xp_for(p.device), p, p.grad._array, state, group)
                if update is not None:
                    updates.append(update)
                if state:
                    self.state[p] = state
                p._version[0] += 1

    def _update(self, xp, param, grad, state, group):
        """Advance ``state`` and return the in-place update of ``param._array`` from ``grad``
        (an array) as a ``_kernels.Update``, or None once done; subclasses implement it."""
        raise NotImplementedError

    # ----------------------------------------------------------------- state dict
    def state_dict(self):
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``.

        Parameters are numbered in group order from 0, as PyTorch does; the per-parameter
        state dicts are the live ones (save them before stepping again).
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore state from ``state_dict()`` (copied; tensors cast to each parameter)."""
        if not isinstance(state_dict, dict) or "state" not in state_dict \
                or "param_groups" not in state_dict:
            raise ValueError("load_state_dict: expected a dict with 'state' and 'param_groups' "
                             "(as returned by Optimizer.state_dict())")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, the "
                             f"optimizer has {len(self.param_groups)}")
        id_map = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"loaded state dict contains a parameter group {i} of "
                                 f"{len(saved['params'])} parameters, the optimizer's group "
                                 f"has {len(group['params'])}")
            id_map.update(zip(saved["params"], group["params"]))
        new_state = defaultdict(dict)
        for key, pstate in state_dict["state"].items():
            k = int(key)
            if k not in id_map:
                raise ValueError(f"load_state_dict: state for parameter index {k} does not match "
                                 f"any parameter (indices {sorted(id_map)})")
            param = id_map[k]
            new_state[param] = {name: self._cast_state(param, name, value)
                                for name, value in pstate.items()}
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new_group = copy.deepcopy({k: v for k, v in saved.items() if k != "params"})
            new_group["params"] = group["params"]
            new_groups.append(new_group)
        self.state = new_state
        self.param_groups = new_groups

    @staticmethod
    def _cast_state(param, name, value):
        """A private copy of a saved state value on the parameter's device (and dtype)."""
        if not isinstance(value, Tensor):
            return copy.deepcopy(value)
        arr = value._array
        if value.device != param.device:
            arr = _move(arr, param.device)
        if name != "step" and value.dtype.is_floating_point:
            arr = arr.astype(param._array.dtype, copy=False)
        return Tensor._make(arr.copy(), device=param.device)
