"""Activation checkpointing: same gradients and RNG stream, fewer stored activations."""
import tracemalloc
import warnings

import numpy as np
import pytest

import genesis
from genesis import nn
from genesis.nn import functional as F
from genesis.utils.checkpoint import checkpoint


class Block(nn.Module):
    """A pre-norm transformer block with dropout (so the RNG must be replayed)."""

    def __init__(self, dim=16, heads=2, p=0.1):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


def _model(seed=0):
    genesis.manual_seed(seed)
    blocks = nn.ModuleList([Block() for _ in range(3)]).double()
    return blocks


def _run(blocks, x, use_checkpoint, seed=123):
    genesis.manual_seed(seed)
    h = x
    for blk in blocks:
        h = checkpoint(blk, h) if use_checkpoint else blk(h)
    loss = (h * h).mean()
    loss.backward()
    after = genesis.rand(4).tolist()
    return loss.item(), after


def test_gradients_and_rng_stream_match_plain_backward():
    x0 = np.random.default_rng(0).standard_normal((2, 8, 16))
    results = []
    for use in (False, True):
        blocks = _model()
        x = genesis.tensor(x0, requires_grad=True)
        loss, after = _run(blocks, x, use)
        results.append((loss, after, x.grad._array, [p.grad._array for p in blocks.parameters()]))
    (l0, a0, gx0, gp0), (l1, a1, gx1, gp1) = results
    assert l0 == l1
    assert a0 == a1, "the RNG must continue as if the block had run once"
    np.testing.assert_allclose(gx1, gx0, rtol=1e-12, atol=1e-14)
    for p1, p0 in zip(gp1, gp0):
        np.testing.assert_allclose(p1, p0, rtol=1e-12, atol=1e-14)


def test_parameters_get_gradients_when_input_needs_none():
    blocks = _model()
    x = genesis.randn(2, 4, 16, dtype=genesis.float64)
    out = checkpoint(blocks[0], x)
    assert out.requires_grad
    out.sum().backward()
    assert all(p.grad is not None for p in blocks[0].parameters())


def test_closure_parameters_multiple_outputs_and_kwargs():
    w = nn.Parameter(genesis.randn(3, 3, dtype=genesis.float64))
    x = genesis.randn(2, 3, dtype=genesis.float64, requires_grad=True)

    def fn(a, mask, scale=1.0):
        h = (a @ w).tanh() * scale
        return h, h.sum(dim=1) if mask is None else h

    h, s = checkpoint(fn, x, None, scale=2.0)
    (h.sum() + (s * s).sum()).backward()
    gx, gw = x.grad._array.copy(), w.grad._array.copy()
    x.grad, w.grad = None, None
    h2 = (x @ w).tanh() * 2.0
    (h2.sum() + (h2.sum(dim=1) ** 2).sum()).backward()
    np.testing.assert_allclose(gx, x.grad._array, rtol=1e-12)
    np.testing.assert_allclose(gw, w.grad._array, rtol=1e-12)


def test_autograd_grad_through_checkpoint():
    blocks = _model()
    blocks.eval()
    x = genesis.randn(1, 4, 16, dtype=genesis.float64, requires_grad=True)
    (g_ckpt,) = genesis.autograd.grad(checkpoint(blocks[0], x).sum(), [x])
    (g_plain,) = genesis.autograd.grad(blocks[0](x).sum(), [x])
    np.testing.assert_allclose(g_ckpt._array, g_plain._array, rtol=1e-12)


def test_errors_and_warnings():
    x = genesis.randn(3)
    with pytest.warns(UserWarning, match="none of the inputs have requires_grad"):
        checkpoint(lambda a: a * 2, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError, match="must return a Tensor or a tuple of Tensors"):
            checkpoint(lambda a: [a], x.requires_grad_())
    y = genesis.randn(3, requires_grad=True)
    z = y * 1
    out = checkpoint(lambda a: a.exp(), z)
    with genesis.no_grad():
        z.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_checkpoint_lowers_stored_and_peak_memory():
    genesis.manual_seed(0)
    blocks = nn.ModuleList([Block(dim=32, heads=2, p=0.0) for _ in range(8)])
    x = genesis.randn(4, 64, 32)

    def measure(use):
        tracemalloc.start()
        h = x
        for blk in blocks:
            h = checkpoint(blk, h) if use else blk(h)
        stored = tracemalloc.get_traced_memory()[0]
        h.sum().backward()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        blocks.zero_grad()
        return stored, peak

    measure(False)
    (plain_stored, plain_peak), (ckpt_stored, ckpt_peak) = measure(False), measure(True)
    assert ckpt_stored < 0.1 * plain_stored, (plain_stored, ckpt_stored)
    assert ckpt_peak < 0.6 * plain_peak, (plain_peak, ckpt_peak)
