"""The fused MoE expert op against a brute-force dense reference (every expert on every token)."""
import math

import numpy as np

import genesis
from tests.opinfo import OpInfo, Sample

try:
    import torch
except ImportError:
    torch = None


def _np_act(name, g):
    if name == "silu":
        return g / (1 + np.exp(-g))
    if name == "gelu":
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return 0.5 * g * (1 + erf(g / math.sqrt(2)))
    return 0.5 * g * (1 + np.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g ** 3)))


def _combine(ids, weights, num_experts, zeros):
    """Dense [N, E] mixing matrix: weight of expert e for token t (0 when not routed)."""
    n, k = ids.shape
    comb = zeros((n, num_experts))
    for j in range(k):
        keep = ids[:, j] >= 0
        rows = np.nonzero(keep)[0] if not hasattr(keep, "numpy") else keep.nonzero()[:, 0]
        comb[rows, ids[rows, j]] += weights[rows, j]
    return comb


def dense_reference(x, ids, weights, gate_up, down, activation="silu"):
    """NumPy: all experts computed for all tokens, then masked by the routing weights."""
    inter = gate_up.shape[1] // 2
    h = np.einsum("nd,eod->neo", x, gate_up)
    a = _np_act(activation, h[..., :inter]) * h[..., inter:]
    y = np.einsum("nei,edi->ned", a, down)
    comb = _combine(ids, weights, gate_up.shape[0], lambda s: np.zeros(s))
    return (comb[..., None] * y).sum(axis=1)


def torch_dense_reference(x, ids, weights, gate_up, down, activation="silu"):
    """The same dense reference in torch (for forward and gradient parity)."""
    inter = gate_up.shape[1] // 2
    h = torch.einsum("nd,eod->neo", x, gate_up)
    act = {"silu": torch.nn.functional.silu, "gelu": torch.nn.functional.gelu,
           "gelu_pytorch_tanh": lambda g: torch.nn.functional.gelu(g, approximate="tanh")}
    a = act[activation](h[..., :inter]) * h[..., inter:]
    y = torch.einsum("nei,edi->ned", a, down)
    comb = _combine(ids, weights, gate_up.shape[0],
                    lambda s: torch.zeros(s, dtype=x.dtype))
    return (comb[..., None] * y).sum(dim=1)


def _routing(rng, n, k, num_experts, allowed=None):
    allowed = np.arange(num_experts) if allowed is None else np.asarray(allowed)
    ids = np.stack([rng.permutation(allowed)[:k] for _ in range(n)]) if n else \
        np.zeros((0, k), dtype=np.int64)
    return ids.astype(np.int64), rng.uniform(0.2, 1.0, (n, k))


def _weights(rng, num_experts, inter, d):
    return (rng.standard_normal((num_experts, 2 * inter, d)) * 0.5,
            rng.standard_normal((num_experts, d, inter)) * 0.5)


def moe_samples(rng):
    """Routing patterns: full, an idle expert, dropped pairs, top-1, empty, odd layouts."""
    out = []
    for name, n, k, e, inter, d, allowed, kw in (
            ("basic", 5, 2, 3, 2, 4, None, {}),
            ("idle_expert", 6, 2, 3, 2, 3, [0, 2], {}),
            ("top1", 4, 1, 3, 2, 4, None, {}),
            ("gelu", 3, 2, 2, 2, 3, None, {"activation": "gelu"}),
            ("gelu_tanh", 3, 2, 2, 3, 3, None, {"activation": "gelu_pytorch_tanh"}),
            ("empty", 0, 2, 3, 2, 4, None, {})):
        ids, w = _routing(rng, n, k, e, allowed)
        gu, down = _weights(rng, e, inter, d)
        out.append(Sample(rng.standard_normal((n, d)), ids, w, gu, down, name=name, **kw))
    ids, w = _routing(rng, 5, 2, 3)
    ids[1, 0] = ids[3, 1] = -1
    gu, down = _weights(rng, 3, 2, 4)
    out.append(Sample(rng.standard_normal((5, 4)), ids, w, gu, down, name="dropped"))
    ids, w = _routing(rng, 4, 2, 3)
    gu, down = _weights(rng, 3, 2, 3)
    out.append(Sample(rng.standard_normal((3, 4)).T, ids, w, gu, down, name="noncontig"))
    return out


OPS = [OpInfo("moe_experts", genesis.moe_experts, dense_reference, moe_samples,
              torch_dense_reference if torch is not None else None, atol=1e-12, rtol=1e-10)]
