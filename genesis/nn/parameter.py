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
            self._init(data.data, data.device)
            self._version = data._version
        else:
            Tensor.__init__(self, data)
        self.requires_grad = requires_grad

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = Parameter(Tensor._make(self.data.copy(), device=self.device),
                           requires_grad=self.requires_grad)
        if self.grad is not None:
            result.grad = Tensor._make(self.grad.data.copy(), device=self.device)
        memo[id(self)] = result
        return result

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

