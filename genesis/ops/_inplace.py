"""The in-place protocol shared by every in-place op: checks autograd can follow, a private
snapshot to compute from, and writing the result into the tensor's own memory (so every alias
sees it) while the tensor, or the base of a view, takes the result's place in the graph."""
from ..autograd import _mode
from ..tensor import Tensor, check_no_internal_overlap
from ._views import ViewScatter
from .elementwise import to_dtype

__all__ = ["check_inplace", "graph_involved", "write_result", "snapshot"]


def check_inplace(self, op):
    """Refuse in-place writes autograd cannot follow (into a leaf that requires grad, or a
    view of one)."""
    if not _mode.enabled:
        return
    if self.requires_grad and self.grad_fn is None and self._base is None:
        raise RuntimeError(f"{op}: a leaf tensor that requires grad is being used in an in-place "
                           "operation; wrap it in genesis.no_grad() or use the out-of-place op")
    base = self._base
    if base is not None and base.requires_grad and base.grad_fn is None:
        raise RuntimeError(f"{op}: a view of a leaf tensor that requires grad is being used in "
                           "an in-place operation; wrap it in genesis.no_grad() or clone() it")


def graph_involved(self):
    """True when an in-place write into ``self`` must be recorded for autograd."""
    if not _mode.enabled:
        return False
    if self._base is not None:
        self._sync_view()
        return self._requires_grad or self._base._requires_grad
    return self._requires_grad


def write_result(self, result, op):
    """Write ``result`` into ``self``'s memory (every alias sees it) and record the write.

    ``self`` adopts ``result``'s graph position; a view instead writes through its base with
    ``ViewScatter`` (the base takes the new graph position and the view is re-derived from it);
    a constant written over a tensor that requires grad cuts the gradient to its old values.
    """
    if result.dtype is not self.dtype:
        if result.dtype.is_floating_point and not self.dtype.is_floating_point:
            raise RuntimeError(f"{op}: result type {result.dtype} can't be cast to the desired "
                               f"output type {self.dtype}")
        result = to_dtype(result, self.dtype)
    if tuple(result.shape) != tuple(self.shape):
        raise RuntimeError(f"{op}: output with shape {tuple(self.shape)} doesn't match the "
                           f"broadcast shape {tuple(result.shape)}")
    check_no_internal_overlap(self._array, op)
    tracked = _mode.enabled and (result.requires_grad or graph_involved(self))
    if tracked and (self._base is not None or not result.requires_grad):
        target = self._base if self._base is not None else self
        replay = self._view_replay if self._base is not None else ()
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


def snapshot(self):
    """``self`` at its graph position with a private copy of its values: an in-place op computes
    from it, so arrays its backward saves are not overwritten when the result is written back."""
    t = Tensor._make(self._array.copy(), self._requires_grad, self.grad_fn, self._output_nr,
                     self.device)
    if self.grad_fn is None and self._requires_grad:
        t._accumulator = self._grad_node()
    return t
