"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from ..tensor import Tensor
from ._kernels import sgd_update
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
        buf = None
        first = False
        if momentum != 0:
            buf = state.get("momentum_buffer")
            first = buf is None
            if first:
                buf = Tensor._make(xp.empty(p.shape, xp.result_type(p.dtype, grad.dtype)),
                                   device=param.device)
                state["momentum_buffer"] = buf
            buf = buf._array
        return sgd_update(xp, p, grad, buf, first=first, lr=lr, momentum=momentum,
                          dampening=group["dampening"], weight_decay=wd,
                          nesterov=group["nesterov"], maximize=group["maximize"])
