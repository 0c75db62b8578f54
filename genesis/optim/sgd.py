"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from ..tensor import Tensor
from .optimizer import Optimizer, implementation_flags

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD as PyTorch: ``buf = m*buf + (1-d)*g``; ``p -= lr * (g + m*buf if nesterov else buf)``."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        flags = implementation_flags("SGD", foreach=foreach, differentiable=differentiable,
                                     fused=fused)
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, **flags))

    def _update(self, xp, param, grad, state, group):
        p = param._array
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        if wd != 0:
            grad = grad + wd * p
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = Tensor._make(grad.copy(), device=param.device)
                state["momentum_buffer"] = buf
            else:
                buf._array *= momentum
                buf._array += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf._array if group["nesterov"] else buf._array
        p += -lr * grad
