"""SwiGLU ``silu(gate) * up`` forward and backward over flat, equal-shaped arrays (float32 math)."""
import triton
import triton.language as tl

from . import arg

_BLOCK = 1024


@triton.jit
def _forward(gate_ptr, up_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    gate = tl.load(gate_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(up_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    out = gate * tl.sigmoid(gate) * up
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward(g_ptr, gate_ptr, up_ptr, dgate_ptr, dup_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    gate = tl.load(gate_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(up_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    s = tl.sigmoid(gate)
    tl.store(dgate_ptr + offs, (g * up * s * (1 + gate * (1 - s))).to(dgate_ptr.dtype.element_ty),
             mask=mask)
    tl.store(dup_ptr + offs, (g * gate * s).to(dup_ptr.dtype.element_ty), mask=mask)


def forward(xp, gate, up):
    """``silu(gate) * up`` for contiguous arrays of one shape and dtype."""
    out = xp.empty_like(gate)
    _forward[(triton.cdiv(gate.size, _BLOCK),)](arg(gate), arg(up), arg(out), gate.size,
                                               BLOCK=_BLOCK)
    return out


def backward(xp, g, gate, up):
    """``(grad_gate, grad_up)``."""
    dgate, dup = xp.empty_like(gate), xp.empty_like(up)
    _backward[(triton.cdiv(gate.size, _BLOCK),)](arg(xp.ascontiguousarray(g)), arg(gate), arg(up),
                                                arg(dgate), arg(dup), gate.size, BLOCK=_BLOCK)
    return dgate, dup
