"""Peak memory of forward+backward through a stack of transformer blocks, with and without
activation checkpointing (genesis.utils.checkpoint), measured with tracemalloc (which sees
every NumPy allocation) in the same run; also the memory held between forward and backward
and the time cost of recomputation.

    python benchmarks/checkpoint_memory.py [--layers 8 --dim 128 --seq 128 --batch 4]
"""
import argparse
import time
import tracemalloc

import genesis
from genesis import nn
from genesis.nn import functional as F
from genesis.utils.checkpoint import checkpoint


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention then a GELU MLP, with residuals."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


def measure(blocks, x, use_checkpoint):
    """(bytes held after forward, peak bytes over forward+backward, seconds)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    h = x
    for blk in blocks:
        h = checkpoint(blk, h) if use_checkpoint else blk(h)
    held = tracemalloc.get_traced_memory()[0]
    (h * h).mean().backward()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    blocks.zero_grad()
    return held, peak, seconds


def main():
    """Measure both modes on one model and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    genesis.manual_seed(0)
    blocks = nn.ModuleList([Block(args.dim, args.heads) for _ in range(args.layers)])
    x = genesis.randn(args.batch, args.seq, args.dim, requires_grad=True)
    measure(blocks, x, False)
    plain = measure(blocks, x, False)
    ckpt = measure(blocks, x, True)
    mib = 1 / 2 ** 20
    print(f"{args.layers} blocks, dim {args.dim}, {args.heads} heads, seq {args.seq}, "
          f"batch {args.batch}, float32")
    print(f"{'':16s}{'held after fwd':>16s}{'peak fwd+bwd':>16s}{'time':>10s}")
    for name, (held, peak, sec) in (("no checkpoint", plain), ("checkpoint", ckpt)):
        print(f"{name:16s}{held * mib:13.2f} MiB{peak * mib:13.2f} MiB{sec:9.3f}s")
    print(f"peak ratio checkpoint / no checkpoint: {ckpt[1] / plain[1]:.3f} "
          f"(saving {1 - ckpt[1] / plain[1]:.1%}); held ratio {ckpt[0] / plain[0]:.3f}; "
          f"time ratio {ckpt[2] / plain[2]:.2f}")


if __name__ == "__main__":
    main()
