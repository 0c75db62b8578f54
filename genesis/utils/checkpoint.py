"""Activation checkpointing: run a block without keeping its activations, recompute in backward.

``checkpoint(fn, *args)`` runs ``fn`` under ``no_grad`` and keeps only its inputs. When the
gradient arrives, ``fn`` is run again with grad enabled and the same RNG state (so dropout
masks match) and the engine backpropagates through that recomputed graph. Peak memory drops
from all of the block's activations to its inputs plus one block's recomputation.
"""
import warnings

from ..autograd import Function, enable_grad, grad as autograd_grad, is_grad_enabled, no_grad
from ..random import default_generator
from ..tensor import Tensor

__all__ = ["checkpoint"]


def _module_params(fn):
    """Parameters of ``fn`` when it is a Module or a bound method of one."""
    from ..nn.module import Module
    owner = fn if isinstance(fn, Module) else getattr(fn, "__self__", None)
    if isinstance(owner, Module):
        return [p for p in owner.parameters() if p.requires_grad]
    return []


def _graph_leaves(outputs):
    """Leaf tensors requiring grad that the recomputed ``outputs`` depend on, in visit order."""
    from ..autograd import AccumulateGrad
    leaves, seen = [], set()
    stack = [o.grad_fn for o in outputs if o.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node, AccumulateGrad):
            leaves.append(node.variable)
            continue
        stack.extend(nxt[0] for nxt in node.next_functions if nxt is not None)
    return leaves


_STATIC = 5  # fn, preserve_rng_state, kwargs, is_tensor, params


class _Checkpoint(Function):
    """Runs ``fn`` without a graph in forward; recomputes it with one in backward."""

    @staticmethod
    def forward(ctx, fn, preserve_rng_state, kwargs, is_tensor, params, *args):
        n = len(is_tensor)
        ctx.fn, ctx.kwargs, ctx.is_tensor, ctx.params = fn, kwargs, is_tensor, params
        ctx.rng_state = default_generator.rng.bit_generator.state if preserve_rng_state else None
        ctx.save_for_backward(*(a for a, t in zip(args[:n], is_tensor) if t))
        with no_grad():
            out = fn(*_rebuild(args[:n], is_tensor), **kwargs)
        single = isinstance(out, Tensor)
        outs = (out,) if single else out
        if not isinstance(outs, tuple) or not all(isinstance(o, Tensor) for o in outs):
            raise TypeError("checkpoint: function must return a Tensor or a tuple of Tensors, "
                            f"got {type(out).__name__}")
        return outs[0]._array if single else tuple(o._array for o in outs)

    @staticmethod
    def backward(ctx, *grad_outputs):
        is_tensor = ctx.is_tensor
        n = len(is_tensor)
        needs = ctx.needs_input_grad[_STATIC:]
        saved = iter(ctx.saved_tensors)
        args = [next(saved) if t else None for t in is_tensor]
        inputs = _rebuild(args, is_tensor)
        for i, t in enumerate(inputs):
            if is_tensor[i] and needs[i]:
                t.requires_grad_(True)
        rng = default_generator.rng.bit_generator
        current = rng.state
        if ctx.rng_state is not None:
            rng.state = ctx.rng_state
        try:
            with enable_grad():
                out = ctx.fn(*inputs, **ctx.kwargs)
        finally:
            rng.state = current
        outs = (out,) if isinstance(out, Tensor) else tuple(out)
        pairs = [(o, g) for o, g in zip(outs, grad_outputs) if o.requires_grad]
        grads = [None] * (_STATIC + len(needs))
        if not pairs:
            return tuple(grads)
        # A leaf's gradient goes to its input slot of this Function, or straight into .grad.
        slots = {id(t): _STATIC + i for i, t in enumerate(inputs) if is_tensor[i] and needs[i]}
        slots.update({id(p): _STATIC + n + j for j, p in enumerate(ctx.params) if needs[n + j]})
        targets = [t for i, t in enumerate(inputs) if is_tensor[i] and needs[i]]
        input_ids = {id(t) for t in targets}
        targets += [leaf for leaf in _graph_leaves([o for o, _ in pairs])
                    if id(leaf) not in input_ids]
        results = autograd_grad([o for o, _ in pairs], targets,
                                [Tensor._make(g) for _, g in pairs], allow_unused=True)
        for t, g in zip(targets, results):
            if g is None:
                continue
            slot = slots.get(id(t))
            if slot is None:
                t._grad_node().accumulate([g._array])
            else:
                grads[slot] = g._array
        return tuple(grads)


def _rebuild(args, is_tensor):
    """Positional arguments for ``fn``: arrays wrapped as fresh leaf Tensors."""
    return [Tensor._make(a) if t else a for a, t in zip(args, is_tensor)]


def checkpoint(function, *args, use_reentrant=None, preserve_rng_state=True, **kwargs):
    """``function(*args, **kwargs)`` without storing its activations; recomputed in backward.

    Tensor positional arguments are saved; gradients reach them and every parameter the
    recomputation uses (a Module's own parameters flow through the graph; parameters
    reached otherwise are accumulated into ``.grad``). ``use_reentrant`` is accepted for
    PyTorch compatibility: genesis has one implementation serving both usages.
    """
    is_tensor = tuple(isinstance(a, Tensor) for a in args)
    params = _module_params(function)
    if is_grad_enabled() and not params \
            and not any(a.requires_grad for a in args if isinstance(a, Tensor)):
        warnings.warn("checkpoint: none of the inputs have requires_grad=True and function is "
                      "not a Module; gradients will not flow through this call", stacklevel=2)
    return _Checkpoint.apply(function, preserve_rng_state, kwargs, is_tensor, params, *args,
                             *params)
