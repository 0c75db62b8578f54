"""Tensor methods of the ops. Each op module lists, next to its ``__all__``, the ops that are
also Tensor methods (``TENSOR_METHODS``: ``x.name(...)`` is ``name(x, ...)``) and those with an
in-place form (``INPLACE_METHODS``: ``x.name_(...)``); ``install`` binds them onto Tensor, so
adding an op and its methods touches only the op's module (and its test)."""
from ..autograd import _mode
from ..tensor import Tensor
from ._inplace import check_inplace, graph_involved, snapshot, write_result

__all__ = ["install", "inplace_method"]


def inplace_method(fn, name):
    """``x.name_(...)``: ``fn`` computed from ``x`` and written back into ``x``'s memory."""
    def method(self, *args, **kwargs):
        op = name + "_"
        check_inplace(self, op)
        tracked = graph_involved(self) or (_mode.enabled and any(
            isinstance(a, Tensor) and a.requires_grad for a in args))
        src = snapshot(self) if tracked else self
        return write_result(self, fn(src, *args, **kwargs), op)
    method.__name__ = name + "_"
    method.__doc__ = f"In-place {name}."
    return method


def install(module):
    """Bind ``module``'s ``TENSOR_METHODS`` (names of its ops, ``self`` first, or a
    ``{method name: function}`` dict) and ``INPLACE_METHODS`` onto Tensor."""
    methods = getattr(module, "TENSOR_METHODS", "")
    if isinstance(methods, str):
        methods = {name: getattr(module, name) for name in methods.split()}
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    for name in getattr(module, "INPLACE_METHODS", "").split():
        setattr(Tensor, name + "_", inplace_method(getattr(module, name), name))
