"""Adam and AdamW with PyTorch's single-tensor update (bias corrections, amsgrad, maximize)."""
import math

from ..backends import triton as _triton
from ..tensor import Tensor
from .optimizer import Optimizer, implementation_flags

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam; L2 ``weight_decay`` adds ``wd * p`` to the gradient (AdamW decouples it)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        flags = implementation_flags(type(self).__name__, foreach=foreach,
                                     capturable=capturable, differentiable=differentiable,
                                     fused=fused)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay, **flags))

    def _update(self, xp, param, grad, state, group):
        p = param._array
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = Tensor._make(xp.zeros_like(p), device=param.device)
            state["exp_avg_sq"] = Tensor._make(xp.zeros_like(p), device=param.device)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor._make(xp.zeros_like(p), device=param.device)
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        step = state["step"]
        if _fusable(xp, p, grad, group):
            _triton.kernels("adamw").step(p, grad, state["exp_avg"]._array,
                                          state["exp_avg_sq"]._array, step, lr, beta1, beta2,
                                          eps, wd if group["decoupled_weight_decay"] else 0.0)
            return
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p *= 1 - lr * wd
            else:
                grad = grad + wd * p
        exp_avg, exp_avg_sq = state["exp_avg"]._array, state["exp_avg_sq"]._array
        _lerp_(xp, exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = math.sqrt(bias_correction2)
        if group["amsgrad"]:
            max_sq = state["max_exp_avg_sq"]._array
            xp.maximum(max_sq, exp_avg_sq, out=max_sq)
            denom = xp.sqrt(max_sq)
        else:
            denom = xp.sqrt(exp_avg_sq)
        denom /= bias_correction2_sqrt
        denom += eps
        p += -step_size * exp_avg / denom


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * wd`` before the Adam step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         foreach=foreach, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True)


def _fusable(xp, p, grad, group):
    """Whether the fused AdamW Triton kernel computes this step (GPU, plain AdamW/Adam math)."""
    return (not group["amsgrad"] and (group["decoupled_weight_decay"] or group["weight_decay"] == 0)
            and grad.dtype == p.dtype and p.flags.c_contiguous and grad.flags.c_contiguous
            and _triton.enabled(xp, p))


def _lerp_(xp, start, end, weight):
    """``start += weight * (end - start)`` in place, with PyTorch's two-branch lerp formula."""
    diff = end - start
    if abs(weight) < 0.5:
        diff *= weight
        start += diff
    else:
        diff *= 1 - weight
        xp.subtract(end, diff, out=start)
