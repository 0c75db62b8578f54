"""Adam and AdamW with PyTorch's single-tensor update (bias corrections, amsgrad, maximize)."""
from ..backends import triton as _triton
from ..tensor import Tensor
from ._kernels import adam_update
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
        state["step"] += 1
        step = state["step"]
        if _fusable(xp, p, grad, group):
            _triton.kernels("adamw").step(p, -grad if group["maximize"] else grad,
                                          state["exp_avg"]._array, state["exp_avg_sq"]._array,
                                          step, lr, beta1, beta2, eps,
                                          wd if group["decoupled_weight_decay"] else 0.0)
            return None
        max_sq = state["max_exp_avg_sq"]._array if group["amsgrad"] else None
        return adam_update(xp, p, grad, state["exp_avg"]._array, state["exp_avg_sq"]._array,
                           max_sq, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                           weight_decay=wd, decoupled=group["decoupled_weight_decay"],
                           maximize=group["maximize"])


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

