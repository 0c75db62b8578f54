"""Is a sparse MoE faster than the dense model of the same size, and when?

Times one feed-forward layer, inference (forward under no_grad) and training (forward +
backward), for:
  * dense SwiGLU MLP at equal TOTAL parameters (intermediate = n * I) and at equal ACTIVE
    parameters (intermediate = k * I);
  * a naive MoE that loops over every expert and applies it to all tokens with a mask;
  * genesis's sorted dispatch (``genesis.moe_experts``: one matmul per active expert).
Both MoEs include their router (linear + softmax + top-k). The rule of thumb says the MoE
costs ``k/n + overhead`` of the equal-total dense layer, so it wins when that is below 1;
the script prints the measured ratio, the overhead it implies and where MoE breaks even
(the fewest experts at which it beats the equal-total dense layer), and plots the ratios.

    python benchmarks/moe_vs_dense.py [--hidden 256 --expert-intermediate 128 --top-k 2
        --experts 4,8,16,32,64 --tokens 128,512 --plot moe_vs_dense.png]
"""
import argparse
import os
import time

import numpy as np

import genesis
import genesis.nn.functional as F


def best_time(fn, repeat):
    """Best wall time of ``fn()`` over ``repeat`` runs after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _param(rng, *shape, scale):
    return genesis.tensor((rng.standard_normal(shape) * scale).astype(np.float32),
                          requires_grad=True)


def dense_mlp(rng, d, inter):
    """A SwiGLU MLP ``x -> down(silu(gate x) * up x)``: (forward function, parameters)."""
    gate, up = _param(rng, d, inter, scale=d ** -0.5), _param(rng, d, inter, scale=d ** -0.5)
    down = _param(rng, inter, d, scale=inter ** -0.5)
    return (lambda x: (F.silu(x @ gate) * (x @ up)) @ down), [gate, up, down]


def moe_layers(rng, d, inter, experts, top_k):
    """The naive masked-loop MoE and the sorted-dispatch MoE over the same weights."""
    router = _param(rng, d, experts, scale=d ** -0.5)
    gate_up = _param(rng, experts, 2 * inter, d, scale=d ** -0.5)
    down = _param(rng, experts, d, inter, scale=inter ** -0.5)

    def route(x):
        probs = F.softmax(x @ router, dim=-1)
        weights, ids = genesis.topk(probs, top_k, dim=-1)
        return ids, weights / weights.sum(dim=-1, keepdim=True)

    def sorted_dispatch(x):
        ids, weights = route(x)
        return genesis.moe_experts(x, ids, weights, gate_up, down)

    def naive(x):
        ids, weights = route(x)
        out = None
        for e in range(experts):
            w_e = (weights * (ids == e)).sum(dim=-1, keepdim=True)
            h = x @ gate_up[e].T
            y = (F.silu(h[:, :inter]) * h[:, inter:]) @ down[e].T
            out = w_e * y if out is None else out + w_e * y
        return out

    return naive, sorted_dispatch, [router, gate_up, down]


def time_layer(fn, params, x, repeat):
    """(inference seconds, training seconds) of one layer on ``x``."""
    def infer():
        with genesis.no_grad():
            fn(x)

    def train():
        for p in params:
            p.grad = None
        fn(x).sum().backward()

    return best_time(infer, repeat), best_time(train, repeat)


def sweep(args):
    """Rows ``(tokens, experts, mode, times...)`` of the whole sweep, printed as they come."""
    rng = np.random.default_rng(0)
    d, inter, k = args.hidden, args.expert_intermediate, args.top_k
    rows = []
    print(f"hidden {d}, expert intermediate {inter}, top-{k}; best of {args.repeat} "
          f"(ms); ratio = time / dense at equal total parameters")
    print(f"{'tokens':>6} {'experts':>7} {'mode':>5} {'dense tot':>9} {'dense act':>9} "
          f"{'naive':>8} {'sorted':>8} {'k/n':>5} {'sorted/tot':>10} {'overhead':>8} "
          f"{'naive/tot':>9}")
    for tokens in args.tokens:
        x = genesis.tensor(rng.standard_normal((tokens, d)).astype(np.float32))
        for n in args.experts:
            dense_tot = time_layer(*dense_mlp(rng, d, n * inter), x, args.repeat)
            dense_act = time_layer(*dense_mlp(rng, d, k * inter), x, args.repeat)
            naive, sorted_moe, params = moe_layers(rng, d, inter, n, k)
            with genesis.no_grad():
                a, b = naive(x).numpy(), sorted_moe(x).numpy()
            if not np.allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max()):
                raise RuntimeError(f"naive and sorted-dispatch MoE disagree at {n} experts: "
                                   f"max |diff| {np.abs(a - b).max():.2e}")
            t_naive = time_layer(naive, params, x, args.repeat)
            t_sorted = time_layer(sorted_moe, params, x, args.repeat)
            for m, mode in enumerate(("infer", "train")):
                ratio = t_sorted[m] / dense_tot[m]
                row = (tokens, n, mode, dense_tot[m], dense_act[m], t_naive[m], t_sorted[m],
                       k / n, ratio, ratio - k / n, t_naive[m] / dense_tot[m])
                rows.append(row)
                print(f"{tokens:>6} {n:>7} {mode:>5} {row[3] * 1e3:>9.2f} {row[4] * 1e3:>9.2f} "
                      f"{row[5] * 1e3:>8.2f} {row[6] * 1e3:>8.2f} {row[7]:>5.3f} {row[8]:>10.2f} "
                      f"{row[9]:>+8.2f} {row[10]:>9.2f}")
    return rows


def break_even(rows, args):
    """Print, per token count and mode, the fewest experts at which sorted dispatch beats the
    equal-total dense layer, next to the rule of thumb's prediction with the mean overhead."""
    print("\nbreak-even (sorted dispatch faster than the dense layer of equal total size):")
    for tokens in args.tokens:
        for mode in ("infer", "train"):
            sel = [r for r in rows if r[0] == tokens and r[2] == mode]
            wins = [r[1] for r in sel if r[8] < 1]
            overhead = float(np.mean([r[9] for r in sel]))
            predicted = [r[1] for r in sel if r[7] + overhead < 1]
            print(f"  {tokens:>5} tokens, {mode}: measured from "
                  f"{wins[0] if wins else 'none'} experts; rule k/n + overhead "
                  f"({overhead:+.2f} measured mean) < 1 predicts from "
                  f"{predicted[0] if predicted else 'none'}; equal-active dense is "
                  f"{np.mean([r[6] / r[4] for r in sel]):.2f}x faster than sorted MoE on average")


def plot(rows, args):
    """Save the sorted/dense and naive/dense ratios against the expert count to ``args.plot``."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, mode in zip(axes, ("infer", "train")):
        for tokens in args.tokens:
            sel = [r for r in rows if r[0] == tokens and r[2] == mode]
            n = [r[1] for r in sel]
            ax.plot(n, [r[8] for r in sel], "o-", label=f"sorted dispatch, {tokens} tok")
            ax.plot(n, [r[10] for r in sel], "x--", label=f"naive masked loop, {tokens} tok")
        n = np.array(args.experts, dtype=float)
        ax.plot(n, args.top_k / n, "k:", label="k/n (no overhead)")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("experts n")
        ax.set_title(f"{mode}: time / dense SwiGLU of equal total parameters")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot saved to {os.path.abspath(args.plot)}")


def _ints(value):
    return [int(v) for v in value.split(",")]


def main(argv=None):
    """Parse arguments, run the sweep, print the break-even and plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--expert-intermediate", type=int, default=128)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--experts", type=_ints, default=[4, 8, 16, 32, 64])
    parser.add_argument("--tokens", type=_ints, default=[128, 512])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plot", default="moe_vs_dense.png", help="PNG path ('' for none)")
    args = parser.parse_args(argv)
    rows = sweep(args)
    break_even(rows, args)
    if args.plot:
        plot(rows, args)
    return rows


if __name__ == "__main__":
    main()
