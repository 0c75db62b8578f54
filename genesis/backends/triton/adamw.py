"""One fused AdamW step per parameter: decay, both moments and the update in one pass.

Same arithmetic as ``genesis.optim.Adam`` with decoupled weight decay (PyTorch's AdamW):
``p *= 1 - lr wd; m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2;
p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)``, in float32 registers.
"""
import math

import triton
import triton.language as tl

from . import arg

_BLOCK = 1024


@triton.jit
def _step(p_ptr, g_ptr, m_ptr, v_ptr, n, lr, beta1, beta2, eps, decay, step_size, bc2_sqrt,
          BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    p = tl.load(p_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    m = tl.load(m_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    p = p * decay
    m = m + (1 - beta1) * (g - m)
    v = v * beta2 + (1 - beta2) * g * g
    p = p - step_size * m / (tl.sqrt(v) / bc2_sqrt + eps)
    tl.store(p_ptr + offs, p.to(p_ptr.dtype.element_ty), mask=mask)
    tl.store(m_ptr + offs, m.to(m_ptr.dtype.element_ty), mask=mask)
    tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)


def step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """Update ``param``, ``exp_avg`` and ``exp_avg_sq`` in place (contiguous arrays)."""
    n = param.size
    _step[(triton.cdiv(n, _BLOCK),)](arg(param), arg(grad), arg(exp_avg), arg(exp_avg_sq), n,
                                    float(lr), float(beta1), float(beta2), float(eps),
                                    1.0 - lr * weight_decay, lr / (1 - beta1 ** step),
                                    math.sqrt(1 - beta2 ** step), BLOCK=_BLOCK)
