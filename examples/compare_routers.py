"""Mixtral vs DeepSeek vs Genesis routing, head to head, from Python.

The same experiment as ``genesis compare``: every router mode trains the same byte-level MoE
language model (same total expert parameters, data, steps and seeds) through
``genesis.train.Trainer``; the modes are compared at equal steps, equal wall time and equal
expert FLOPs, with routing figures and energy, mean +- std over the seeds. The results
(results.md, results.json, loss_vs_flops.png, loss_vs_time.png, bars.png) go to ``--out``.

    python examples/compare_routers.py                          # 3 seeds, 15-20 min on 2 cores
    python examples/compare_routers.py --steps 40 --repeats 2   # a quick look
"""
import argparse

from genesis.train.compare import MODES, CompareSize, compare


def main(argv=None):
    """Run the comparison and print the per-mode table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/compare-example")
    parser.add_argument("--steps", type=int, default=CompareSize.steps)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--intermediate", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--genesis-threshold", type=float, default=None,
                        help="override genesis_threshold (default: the MoEConfig default)")
    args = parser.parse_args(argv)
    size = CompareSize(hidden=args.hidden, intermediate=args.intermediate, layers=args.layers,
                       heads=4 if args.hidden % 4 == 0 else 1, seq_len=args.seq_len,
                       batch_size=args.batch_size, steps=args.steps,
                       eval_every=max(1, args.steps // 10))
    overrides = {} if args.genesis_threshold is None else \
        {"genesis_threshold": args.genesis_threshold}
    results = compare(args.out, size, MODES, repeats=args.repeats, genesis_overrides=overrides)
    print()
    for mode, stats in results["summary"].items():
        mean, std, _ = stats["val_loss_at_flops"]
        experts = stats["experts_per_token"][0]
        print(f"{mode:<9} val loss at equal expert FLOPs {mean:.4f} +- {std:.4f}, "
              f"{experts:.2f} routed experts per token")
    print(f"full table: {args.out}/results.md")


if __name__ == "__main__":
    main()
