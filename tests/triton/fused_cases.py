"""The fused ops with a Triton branch, as cases runnable on any device (shared by two tests)."""
import ml_dtypes
import numpy as np

import genesis
from genesis.nn import functional as F

DTYPES = [(np.float32, 2e-5), (ml_dtypes.bfloat16, 3e-2)]


def _rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _rope(dtype, device):
    rng = np.random.default_rng(0)
    angles = rng.uniform(0, 6, (2, 1, 5, 4))
    angles = np.concatenate([angles, angles], -1)
    cos = genesis.tensor(np.cos(angles).astype(dtype), device=device)
    sin = genesis.tensor(np.sin(angles).astype(dtype), device=device)
    return (lambda x: genesis.rotary_embedding(x, cos, sin)), [_rand(rng, (2, 3, 5, 8), dtype)]


def _cross_entropy(reduction):
    def case(dtype, device):
        target = genesis.tensor(np.array([1, -100, 7, 3, 0, 9]), device=device)
        return (lambda z: F.cross_entropy(z, target, reduction=reduction)), \
            [_rand(np.random.default_rng(1), (6, 10), dtype, 3.0)]
    return case


def _moe(dtype, device):
    rng = np.random.default_rng(3)
    ids = genesis.tensor(np.array([[0, 2], [2, 3], [0, 1], [3, -1], [2, 0]]), device=device)
    return (lambda h, w, gu, dn: genesis.moe_experts(h, ids, w, gu, dn)), \
        [_rand(rng, (5, 16), dtype), rng.uniform(0.2, 0.8, (5, 2)).astype(dtype),
         _rand(rng, (4, 24, 16), dtype, 0.3), _rand(rng, (4, 16, 12), dtype, 0.3)]


CASES = {
    "rms_norm": lambda dtype, device: (
        lambda x, w: F.rms_norm(x, (16,), w, 1e-6),
        [_rand(np.random.default_rng(0), (3, 5, 16), dtype),
         np.random.default_rng(1).uniform(0.5, 1.5, 16).astype(dtype)]),
    "silu_and_mul": lambda dtype, device: (
        F.silu_and_mul, [_rand(np.random.default_rng(0), (4, 33), dtype),
                         _rand(np.random.default_rng(1), (4, 33), dtype)]),
    "rotary_embedding": _rope,
    "cross_entropy_mean": _cross_entropy("mean"),
    "cross_entropy_sum": _cross_entropy("sum"),
    "cross_entropy_none": _cross_entropy("none"),
    "causal_gqa_attention": lambda dtype, device: (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                       enable_gqa=True),
        [_rand(np.random.default_rng(2), (1, 4, 9, 16), dtype),
         _rand(np.random.default_rng(3), (1, 2, 9, 16), dtype),
         _rand(np.random.default_rng(4), (1, 2, 9, 16), dtype)]),
    "moe_experts": _moe,
}


def run(case, dtype, device=None):
    """Output and input gradients (host float32 arrays) of ``case`` on ``device``."""
    fn, arrays = CASES[case](dtype, device)
    leaves = [genesis.tensor(a, device=device, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    g = np.random.default_rng(9).standard_normal(tuple(out.shape)).astype(out.dtype.np)
    out.backward(genesis.tensor(g, device=device) if out.ndim else None)
    return [out.detach().float().cpu().numpy()] + [t.grad.float().cpu().numpy() for t in leaves]


def adamw_run(device=None, steps=3):
    """Parameters after ``steps`` AdamW steps on fixed gradients."""
    rng = np.random.default_rng(4)
    p0, grads = rng.standard_normal(50).astype(np.float32), rng.standard_normal((steps, 50))
    param = genesis.nn.Parameter(genesis.tensor(p0, device=device))
    opt = genesis.optim.AdamW([param], lr=1e-2, weight_decay=0.1)
    for g in grads:
        param.grad = genesis.tensor(g.astype(np.float32), device=device)
        opt.step()
    return param.detach().cpu().numpy()
