"""The fused Mixture-of-Experts expert computation: sorted dispatch, one matmul per active expert.

``moe_experts`` computes ``out[t] = sum_j w[t, j] * f_{ids[t, j]}(x[t])`` with SwiGLU experts
``f_e(x) = down_e @ (act(gate_e @ x) * (up_e @ x))`` whose weights are stacked
``gate_up_proj [E, 2I, d]`` (gate rows first, HF v5 layout) and ``down_proj [E, d, I]``.
The (token, slot) pairs are stably sorted by expert, each expert that received rows runs one
contiguous matmul per projection, and results are un-permuted and summed over the k slots by a
reshape (deterministic, no scatter-add). Backward mirrors it: grouped matmuls with the same
offsets give the weight gradients, the input gradient and the routing-weight gradient.
"""

import numpy as np

from .. import backends, dtypes
from ..backends import triton as _triton
from ..amp.autocast_mode import autocast_op
from ..autograd import Function
from ..tensor import Tensor
from ._activations import ACTIVATIONS as _ACTIVATIONS, act_and_grad as _act_and_grad
from .elementwise import to_dtype

__all__ = ["moe_experts"]


def _expert_matmul(xp, a, weight, bounds, active, transpose=True):
    """``a[rows of e] @ weight[e]^T`` (or ``@ weight[e]``) for every active expert ``e``.

    On a GPU with Triton this is one grouped-GEMM launch; otherwise one matmul per active expert.
    """
    if a.dtype == weight.dtype and _triton.enabled(xp, a):
        return _triton.kernels("moe_grouped_gemm").grouped_matmul(xp, a, weight, bounds,
                                                                  transpose)
    out = xp.empty((a.shape[0], weight.shape[1] if transpose else weight.shape[2]), dtype=a.dtype)
    for e in active:
        s, t = bounds[e], bounds[e + 1]
        xp.matmul(a[s:t], weight[e].T if transpose else weight[e], out=out[s:t])
    return out


def _expert_weight_grad(xp, a, b, bounds, active, weight):
    """``a[rows of e]^T @ b[rows of e]`` per expert: the gradient of ``weight [E, N, K]``
    (zero for experts that received no rows)."""
    if a.dtype == b.dtype == weight.dtype and _triton.enabled(xp, a):
        return _triton.kernels("moe_grouped_gemm").grouped_matmul_tn(
            xp, a, b, bounds, weight.shape[0], weight.dtype)
    grad = xp.empty_like(weight)
    if len(active) < weight.shape[0]:
        grad[xp.asarray(np.nonzero(np.diff(bounds) == 0)[0])] = 0
    for e in active:
        s, t = bounds[e], bounds[e + 1]
        xp.matmul(a[s:t].T, b[s:t], out=grad[e])
    return grad


def _combine(xp, rows, inverse, n, k, dropped):
    """``[N, d]``: the sum over each token's k slots of ``rows`` (one per dispatched pair, in
    sorted order); ``inverse`` maps each (token, slot) pair to its row, dropped pairs to
    ``len(rows)``, a zero row appended when there are any (a gather: no zero fill, no scatter)."""
    if dropped:
        rows = xp.concatenate([rows, xp.zeros((1, rows.shape[1]), rows.dtype)])
    return rows[inverse].reshape(n, k, rows.shape[1]).sum(axis=1)


class MoEExperts(Function):
    """Sorted-token dispatch of SwiGLU experts with an analytic backward (see module docstring)."""

    @staticmethod
    def forward(ctx, hidden, topk_ids, topk_weights, gate_up_proj, down_proj, activation):
        xp = ctx.xp
        n, k = topk_ids.shape
        num_experts, two_i, d = gate_up_proj.shape
        inter = two_i // 2
        flat_ids = topk_ids.reshape(-1)
        sorted_pairs = xp.argsort(flat_ids, kind="stable")
        dropped = int((flat_ids < 0).sum())
        order = sorted_pairs[dropped:]
        inverse = xp.empty(n * k, dtype=order.dtype)
        inverse[order] = xp.arange(order.shape[0], dtype=order.dtype)
        inverse[sorted_pairs[:dropped]] = order.shape[0]
        counts = backends.to_host(xp.bincount(flat_ids[order], minlength=num_experts))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        active = np.nonzero(counts)[0].tolist()
        tokens = order // k
        x_g = hidden[tokens]
        w_g = topk_weights.reshape(-1)[order]
        h = _expert_matmul(xp, x_g, gate_up_proj, bounds, active)
        need_dh = ctx.needs_input_grad[0] or ctx.needs_input_grad[3]
        act, dact = _act_and_grad(xp, activation, h[:, :inter], need_dh)
        a = act * h[:, inter:]
        y_g = _expert_matmul(xp, a, down_proj, bounds, active)
        ctx.save_for_backward(hidden, topk_weights, gate_up_proj, down_proj)
        ctx.dispatch = (order, inverse, dropped, tokens, bounds, active, x_g, h, a, y_g,
                        act, dact)
        return _combine(xp, y_g * w_g[:, None], inverse, n, k, dropped)

    @staticmethod
    def backward(ctx, grad_out):
        xp = ctx.xp
        hidden, topk_weights, gate_up_proj, down_proj = ctx.saved_tensors
        order, inverse, dropped, tokens, bounds, active, x_g, h, a, y_g, act, dact = \
            ctx.dispatch
        need_x, _, need_w, need_gu, need_down, _ = ctx.needs_input_grad
        n, k = topk_weights.shape
        inter = gate_up_proj.shape[1] // 2
        g_g = grad_out[tokens]
        grad_w = None
        if need_w:
            flat = xp.zeros(n * k, dtype=grad_out.dtype)
            flat[order] = (g_g * y_g).sum(axis=-1)
            grad_w = flat.reshape(n, k).astype(topk_weights.dtype, copy=False)
        if not (need_x or need_gu or need_down):
            return None, None, grad_w, None, None, None
        dy = (g_g * topk_weights.reshape(-1)[order][:, None]).astype(a.dtype, copy=False)
        grad_down = _expert_weight_grad(xp, dy, a, bounds, active, down_proj) if need_down \
            else None
        da = _expert_matmul(xp, dy, down_proj, bounds, active, transpose=False)
        up = h[:, inter:]
        dh = xp.empty(h.shape, h.dtype)
        xp.multiply(da, up, out=dh[:, :inter])
        dh[:, :inter] *= dact
        xp.multiply(da, act, out=dh[:, inter:])
        grad_gu = _expert_weight_grad(xp, dh, x_g, bounds, active, gate_up_proj) \
            if need_gu else None
        grad_x = None
        if need_x:
            dx_g = _expert_matmul(xp, dh, gate_up_proj, bounds, active, transpose=False)
            grad_x = _combine(xp, dx_g, inverse, n, k, dropped)
        return grad_x, None, grad_w, grad_gu, grad_down, None


@autocast_op
def moe_experts(hidden, topk_ids, topk_weights, gate_up_proj, down_proj, activation="silu"):
    """Weighted sum of the top-k SwiGLU experts of each token: ``[N, d]`` -> ``[N, d]``.

    ``topk_ids [N, k]`` (int) selects experts; a negative id marks a dropped (token, slot) pair
    that contributes nothing (capacity overflow). ``topk_weights [N, k]`` are cast to the
    hidden dtype. Experts: ``gate_up_proj [E, 2I, d]`` (gate rows first), ``down_proj [E, d, I]``.
    """
    for name, t in (("hidden", hidden), ("topk_ids", topk_ids), ("topk_weights", topk_weights),
                    ("gate_up_proj", gate_up_proj), ("down_proj", down_proj)):
        if not isinstance(t, Tensor):
            raise TypeError(f"moe_experts: {name} must be a Tensor, got {type(t).__name__}")
    act = _ACTIVATIONS.get(activation)
    if act is None:
        raise ValueError(f"moe_experts: unknown activation {activation!r}; expected one of "
                         f"{sorted(_ACTIVATIONS)}")
    if hidden.ndim != 2 or gate_up_proj.ndim != 3 or down_proj.ndim != 3:
        raise ValueError(f"moe_experts: expected hidden [N, d], gate_up_proj [E, 2I, d] and "
                         f"down_proj [E, d, I], got {tuple(hidden.shape)}, "
                         f"{tuple(gate_up_proj.shape)} and {tuple(down_proj.shape)}")
    n, d = hidden.shape
    num_experts, two_i, d_in = gate_up_proj.shape
    if d_in != d or two_i % 2 or tuple(down_proj.shape) != (num_experts, d, two_i // 2):
        raise ValueError(f"moe_experts: weights do not fit hidden size {d}: gate_up_proj "
                         f"{tuple(gate_up_proj.shape)} must be [E, 2I, {d}] and down_proj "
                         f"{tuple(down_proj.shape)} must be [E, {d}, I]")
    if topk_ids.ndim != 2 or topk_ids.shape[0] != n or tuple(topk_weights.shape) != \
            tuple(topk_ids.shape):
        raise ValueError(f"moe_experts: topk_ids {tuple(topk_ids.shape)} and topk_weights "
                         f"{tuple(topk_weights.shape)} must both be [N={n}, k]")
    if topk_ids.dtype.is_floating_point or topk_ids.dtype is dtypes.bool_:
        raise TypeError(f"moe_experts: topk_ids must be an integer tensor, got {topk_ids.dtype}")
    if not hidden.dtype.is_floating_point:
        raise TypeError(f"moe_experts: hidden must be floating point, got {hidden.dtype}")
    if gate_up_proj.dtype is not hidden.dtype or down_proj.dtype is not hidden.dtype:
        raise TypeError(f"moe_experts: expert weights ({gate_up_proj.dtype}, {down_proj.dtype}) "
                        f"must have the hidden dtype {hidden.dtype}")
    if topk_ids.numel() and int(topk_ids._array.max()) >= num_experts:
        raise ValueError(f"moe_experts: topk_ids holds expert {int(topk_ids._array.max())} but "
                         f"there are only {num_experts} experts")
    ids = topk_ids if topk_ids.dtype is dtypes.int64 else to_dtype(topk_ids, dtypes.int64)
    return MoEExperts.apply(hidden, ids, to_dtype(topk_weights, hidden.dtype), gate_up_proj,
                            down_proj, act)
