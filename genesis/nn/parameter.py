"""Parameter: a Tensor that a Module registers as learnable state."""
from ..tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default; ``Parameter(t)`` shares ``t``'s storage."""

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            from ..creation import empty
            data = empty(0)
        if isinstance(data, Tensor):
            self._init(data._array, data.device)
            self._version = data._version
        else:
            Tensor.__init__(self, data)
        self.requires_grad = requires_grad

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

