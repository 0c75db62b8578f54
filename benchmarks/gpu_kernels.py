"""genesis's Triton-backed GPU ops vs PyTorch eager on the same GPU (forward + backward, bf16).

Each case runs the genesis op on CUDA tensors (which dispatches to its Triton kernel) and the
PyTorch eager equivalent on the same data, times forward + backward (median of ``--iters``
after warm-up, the GPU synchronised around each), and prints the achieved memory bandwidth
(memory-bound kernels) or FLOP rate (matmul kernels) and its fraction of the GPU's datasheet
peak. Needs an NVIDIA GPU with CuPy, Triton and PyTorch (CUDA).

    python benchmarks/gpu_kernels.py [--quick] [--json results.json]
"""
import argparse
import json
import statistics
import time

import numpy as np

import genesis
from genesis.nn import functional as F

# Datasheet peaks: HBM bandwidth (bytes/s) and dense bf16 tensor-core rate (FLOP/s).
PEAKS = {"H200": (4.8e12, 989e12), "H100": (3.35e12, 989e12), "A100": (2.0e12, 312e12)}


def peaks(name):
    """(bandwidth, bf16 FLOP/s) of a known GPU, else (None, None)."""
    for key, value in PEAKS.items():
        if key in name:
            return value
    return None, None


def median_time(fn, sync, warmup, iters):
    """Median seconds of ``fn()`` with the GPU synchronised before and after each call."""
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


class Case:
    """One kernel: genesis and torch fwd+bwd closures, and its bytes or FLOPs per call."""

    def __init__(self, name, genesis_fn, torch_fn, nbytes=None, flops=None):
        self.name, self.genesis_fn, self.torch_fn = name, genesis_fn, torch_fn
        self.nbytes, self.flops = nbytes, flops


def _pair(torch, array, requires_grad=True):
    """The same bf16 data as a genesis CUDA tensor and a torch CUDA tensor."""
    g = genesis.tensor(array, device="cuda").bfloat16()
    t = torch.tensor(array, device="cuda").bfloat16()
    if requires_grad:
        g.requires_grad_(True)
        t.requires_grad_(True)
    return g, t


def _fwd_bwd(fn, leaves, grad):
    def run():
        for leaf in leaves:
            leaf.grad = None
        fn().backward(grad)
    return run


def cases(torch, scale):
    """The benchmark cases; ``scale`` shrinks every size (quick runs)."""
    rng = np.random.default_rng(0)
    tf = torch.nn.functional
    out = []

    rows, dim = 8192 // scale, 4096
    x, xt = _pair(torch, rng.standard_normal((rows, dim)).astype(np.float32))
    w, wt = _pair(torch, rng.uniform(0.5, 1.5, dim).astype(np.float32))
    g, gt = _pair(torch, rng.standard_normal((rows, dim)).astype(np.float32), False)
    out.append(Case("rms_norm", _fwd_bwd(lambda: F.rms_norm(x, (dim,), w, 1e-6), (x, w), g),
                    _fwd_bwd(lambda: tf.rms_norm(xt, (dim,), wt, 1e-6), (xt, wt), gt),
                    nbytes=5 * rows * dim * 2))

    n_rows, inter = 8192 // scale, 8192
    a, at = _pair(torch, rng.standard_normal((n_rows, inter)).astype(np.float32))
    b, bt = _pair(torch, rng.standard_normal((n_rows, inter)).astype(np.float32))
    g2, gt2 = _pair(torch, rng.standard_normal((n_rows, inter)).astype(np.float32), False)
    out.append(Case("swiglu", _fwd_bwd(lambda: F.silu_and_mul(a, b), (a, b), g2),
                    _fwd_bwd(lambda: tf.silu(at) * bt, (at, bt), gt2),
                    nbytes=8 * n_rows * inter * 2))

    batch, heads, seq, head_dim = 8 // min(scale, 8), 32, 2048, 128
    q, qt = _pair(torch, rng.standard_normal((batch, heads, seq, head_dim)).astype(np.float32))
    angles = rng.uniform(0, 6, (batch, 1, seq, head_dim // 2))
    angles = np.concatenate([angles, angles], -1)
    cos, cost = _pair(torch, np.cos(angles).astype(np.float32), False)
    sin, sint = _pair(torch, np.sin(angles).astype(np.float32), False)
    gq, gqt = _pair(torch, rng.standard_normal(q.shape).astype(np.float32), False)

    def torch_rope():
        half = head_dim // 2
        rotated = torch.cat([-qt[..., half:], qt[..., :half]], dim=-1)
        return qt * cost + rotated * sint

    out.append(Case("rotary_embedding",
                    _fwd_bwd(lambda: genesis.rotary_embedding(q, cos, sin), (q,), gq),
                    _fwd_bwd(torch_rope, (qt,), gqt), nbytes=4 * q.numel() * 2))

    tokens, vocab = 8192 // scale, 32000
    z, zt = _pair(torch, rng.standard_normal((tokens, vocab)).astype(np.float32))
    target = rng.integers(0, vocab, tokens)
    tg, tt = genesis.tensor(target, device="cuda"), torch.tensor(target, device="cuda")
    out.append(Case("cross_entropy", _fwd_bwd(lambda: F.cross_entropy(z, tg), (z,), None),
                    _fwd_bwd(lambda: tf.cross_entropy(zt, tt), (zt,), None),
                    nbytes=3 * tokens * vocab * 2))

    kv_heads, seq = 8, 2048 // min(scale, 4)
    shape_q, shape_kv = (4, 32, seq, 128), (4, kv_heads, seq, 128)
    qa, qat = _pair(torch, rng.standard_normal(shape_q).astype(np.float32))
    ka, kat = _pair(torch, rng.standard_normal(shape_kv).astype(np.float32))
    va, vat = _pair(torch, rng.standard_normal(shape_kv).astype(np.float32))
    go, got = _pair(torch, rng.standard_normal(shape_q).astype(np.float32), False)
    fwd_flops = 2 * 4 * 32 * seq * seq * 128  # two causal L x L x D matmuls
    out.append(Case(
        "flash_attention_gqa",
        _fwd_bwd(lambda: F.scaled_dot_product_attention(qa, ka, va, is_causal=True,
                                                        enable_gqa=True), (qa, ka, va), go),
        _fwd_bwd(lambda: tf.scaled_dot_product_attention(qat, kat, vat, is_causal=True,
                                                         enable_gqa=True), (qat, kat, vat), got),
        flops=3.5 * fwd_flops))

    n_tok, d_model, d_ff, experts, top_k = 8192 // scale, 2048, 4096, 8, 2
    hid, hidt = _pair(torch, rng.standard_normal((n_tok, d_model)).astype(np.float32))
    gu, gut = _pair(torch, (rng.standard_normal((experts, 2 * d_ff, d_model)) * 0.02)
                    .astype(np.float32))
    dn, dnt = _pair(torch, (rng.standard_normal((experts, d_model, d_ff)) * 0.02)
                    .astype(np.float32))
    ids = np.stack([rng.permutation(experts)[:top_k] for _ in range(n_tok)])
    wts = rng.dirichlet(np.ones(top_k), n_tok).astype(np.float32)
    ids_g, ids_t = genesis.tensor(ids, device="cuda"), torch.tensor(ids, device="cuda")
    w_g, w_t = _pair(torch, wts, False)
    gy, gyt = _pair(torch, rng.standard_normal((n_tok, d_model)).astype(np.float32), False)

    def torch_moe():
        out_t = torch.zeros_like(hidt)
        for e in range(experts):
            tok, slot = torch.where(ids_t == e)
            h = hidt[tok] @ gut[e].T
            act = tf.silu(h[:, :d_ff]) * h[:, d_ff:]
            out_t = out_t.index_add(0, tok, (act @ dnt[e].T) * w_t[tok, slot, None])
        return out_t

    out.append(Case(
        "moe_grouped_gemm",
        _fwd_bwd(lambda: genesis.moe_experts(hid, ids_g, w_g, gu, dn), (hid, gu, dn), gy),
        _fwd_bwd(torch_moe, (hidt, gut, dnt), gyt),
        flops=3 * 2 * n_tok * top_k * 3 * d_model * d_ff))

    n_params, size = 64, (1 << 20) // scale
    arrays = [rng.standard_normal(size).astype(np.float32) for _ in range(n_params)]
    grads = [rng.standard_normal(size).astype(np.float32) for _ in range(n_params)]
    gp = [genesis.nn.Parameter(genesis.tensor(a, device="cuda")) for a in arrays]
    tp = [torch.nn.Parameter(torch.tensor(a, device="cuda")) for a in arrays]
    for p, gr in zip(gp, grads):
        p.grad = genesis.tensor(gr, device="cuda")
    for p, gr in zip(tp, grads):
        p.grad = torch.tensor(gr, device="cuda")
    g_opt = genesis.optim.AdamW(gp, lr=1e-3)
    t_opt = torch.optim.AdamW(tp, lr=1e-3, foreach=True)
    out.append(Case("adamw_step", g_opt.step, t_opt.step, nbytes=7 * 4 * n_params * size))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer iterations")
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if not genesis.cuda.is_available():
        raise SystemExit("gpu_kernels: needs an NVIDIA GPU with CuPy (genesis[cuda])")
    import cupy
    import torch
    if not torch.cuda.is_available():
        raise SystemExit("gpu_kernels: PyTorch does not see a CUDA GPU")
    name = genesis.cuda.get_device_name()
    bandwidth, flop_rate = peaks(name)
    iters = args.iters or (5 if args.quick else 20)

    def sync():
        cupy.cuda.Device().synchronize()
        torch.cuda.synchronize()

    print(f"{name}; genesis Triton kernels vs PyTorch {torch.__version__} eager; bf16, "
          f"forward + backward, median of {iters}")
    print(f"{'kernel':<20} {'genesis ms':>11} {'torch ms':>9} {'speedup':>8} "
          f"{'genesis rate':>16} {'of peak':>8}")
    results = []
    for case in cases(torch, 4 if args.quick else 1):
        t_gen = median_time(case.genesis_fn, sync, 2, iters)
        t_ref = median_time(case.torch_fn, sync, 2, iters)
        if case.nbytes:
            rate, unit, peak = case.nbytes / t_gen, "GB/s", bandwidth
            shown = rate / 1e9
        else:
            rate, unit, peak = case.flops / t_gen, "TFLOP/s", flop_rate
            shown = rate / 1e12
        frac = f"{rate / peak:.0%}" if peak else "n/a"
        print(f"{case.name:<20} {t_gen * 1e3:>11.3f} {t_ref * 1e3:>9.3f} {t_ref / t_gen:>7.2f}x "
              f"{shown:>10.1f} {unit:<7} {frac:>6}")
        results.append({"kernel": case.name, "genesis_ms": t_gen * 1e3, "torch_ms": t_ref * 1e3,
                        "speedup_vs_torch": t_ref / t_gen, "rate": shown, "unit": unit,
                        "fraction_of_peak": rate / peak if peak else None})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": name, "torch": torch.__version__, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
