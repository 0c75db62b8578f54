"""The report of ``genesis compare``: results.json, results.md (tables and the spec's targets)
and three plots (validation loss vs expert FLOPs and vs wall time, a bar chart of the
figures with their spread over seeds)."""
import io
import json
import os

import numpy as np

from .._atomic import atomic_write
from .compare import METRICS

__all__ = ["write_report", "format_cell", "markdown"]

_COLORS = {"mixtral": "tab:blue", "deepseek": "tab:orange", "genesis": "tab:green"}


def format_cell(stat, fmt):
    """``mean ± std`` (one seed: the value; None: "unavailable")."""
    if stat is None:
        return "unavailable"
    mean, std, n = stat
    if fmt == ".3g":                       # parameter counts
        return f"{mean / 1e6:.3f}M"
    return f"{mean:{fmt}} ± {std:{fmt}}" if n > 1 else f"{mean:{fmt}}"


def _targets(summary):
    """Lines checking genesis against mixtral on the spec's targets for the defaults."""
    if "genesis" not in summary or "mixtral" not in summary:
        return []
    g, m = summary["genesis"], summary["mixtral"]
    lines = []

    def verdict(ok):
        return "met" if ok else "NOT met"
    starved = g["starved_fraction"][0]
    cv_ok = g["load_cv"][0] <= 1.5 * m["load_cv"][0]
    lines.append(f"- no collapse (no expert under a quarter of its fair share, load CV within "
                 f"1.5x mixtral's): {verdict(starved == 0 and cv_ok)} (starved share "
                 f"{starved:.3f}; load CV {g['load_cv'][0]:.3f} vs mixtral "
                 f"{m['load_cv'][0]:.3f})")
    lines.append(f"- fewer active experts per token than mixtral: "
                 f"{verdict(g['experts_per_token'][0] < m['experts_per_token'][0])} "
                 f"({g['experts_per_token'][0]:.2f} vs {m['experts_per_token'][0]:.2f})")
    for key, what in (("val_loss_at_flops", "equal expert FLOPs"), ("val_loss", "equal steps"),
                      ("val_loss_at_time", "equal wall time")):
        gain = m[key][0] - g[key][0]
        spread = g[key][1] + m[key][1]
        lines.append(f"- validation loss at {what} better than mixtral's by more than the "
                     f"spread over seeds (sum of the two stds): {verdict(gain > spread)} "
                     f"(mixtral - genesis = {gain:+.4f}, spread {spread:.4f})")
    return lines


def _paired(runs, key):
    """Per seed, genesis's ``key`` minus mixtral's (seeds both modes ran), or []."""
    by = {(run["mode"], run["seed"]): run[key] for run in runs}
    return [by[("genesis", seed)] - by[("mixtral", seed)] for mode, seed in by
            if mode == "genesis" and ("mixtral", seed) in by]


def markdown(results):
    """results.md: the setup, the per-mode table, the targets and the per-run table."""
    summary, budgets, size = results["summary"], results["budgets"], results["size"]
    seeds = results["seeds"]
    lines = ["# genesis compare: mixtral vs deepseek vs genesis", ""]
    if results.get("command"):
        lines += ["```", results["command"], "```", ""]
    lines += [f"{size['steps']} steps x {size['batch_size']} x {size['seq_len']} tokens per run, "
              f"hidden {size['hidden']}, {size['layers']} layers, expert width "
              f"{size['intermediate']}, lr {size['lr']}, seeds {seeds}, device "
              f"{results['device']} (BLAS threads {results['blas_threads']}); data "
              f"{results['data']['source']} ({results['data']['tokenizer']} tokenizer, "
              f"{results['data']['train_tokens']:,} train / {results['data']['val_tokens']:,} "
              f"validation tokens); genesis overrides: {results['genesis_overrides'] or 'none'}.",
              "",
              f"Mean ± std (sample std) over {len(seeds)} seed(s). Equal wall time: "
              f"{budgets['seconds']:.1f} s of training; equal expert FLOPs: "
              f"{budgets['expert_flops']:.3e} (the largest budget every run reached; losses "
              "linearly interpolated between evaluations).", ""]
    header = ["mode"] + [label for _, label, _ in METRICS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for mode in results["modes"]:
        stats = summary[mode]
        lines.append("| " + " | ".join([mode] + [format_cell(stats[key], fmt)
                                                for key, _, fmt in METRICS]) + " |")
    targets = _targets(summary)
    if targets:
        lines += ["", "Targets of the spec (genesis vs mixtral, means):", ""] + targets
        for key, what in (("val_loss_at_flops", "equal expert FLOPs"),
                          ("val_loss", "equal steps"), ("val_loss_at_time", "equal wall time")):
            diffs = np.array(_paired(results["runs"], key))
            spread = f" (mean {diffs.mean():+.4f} ± {diffs.std(ddof=1):.4f})" \
                if diffs.size > 1 else ""
            lines.append(f"- paired per seed, genesis - mixtral at {what}: "
                         + ", ".join(f"{d:+.4f}" for d in diffs) + spread)
    lines += ["", "Per run:", "",
              "| mode | seed | val loss | @ equal time | @ equal FLOPs | tokens/s | "
              "experts/token | load CV | starved | expert FLOPs |", "|" + "---|" * 10]
    for run in results["runs"]:
        lines.append(f"| {run['mode']} | {run['seed']} | {run['val_loss']:.4f} | "
                     f"{run['val_loss_at_time']:.4f} | {run['val_loss_at_flops']:.4f} | "
                     f"{run['tokens_per_s']:.0f} | {run['experts_per_token']:.2f} | "
                     f"{run['load_cv']:.3f} | {run['starved_fraction']:.3f} | "
                     f"{run['expert_flops']:.3e} |")
    lines += ["", "Columns: validation loss in nats/token; tokens/s and wall time count "
              "training steps only (not evaluations); experts/token = routed experts per "
              "token (deepseek's shared expert is always on besides); load CV = std/mean of "
              "the live experts' shares of routed pairs; starved experts = share of experts "
              "under a quarter of their fair share; SSI = semantic stability index (1 = "
              "coherent top-1 groups) — all on the validation windows in eval mode, averaged "
              "over MoE layers; expert FLOPs = forward + backward FLOPs of the expert MLPs; "
              "joules from genesis.energy over the whole Trainer run (steps, evaluations, the "
              "final checkpoint) and J/token per training token (\"unavailable\" when no "
              "counter is readable; never estimated). Wall time and tokens/s depend on what "
              "else the machine was running."]
    return "\n".join(lines) + "\n"


def _save_png(plt, fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return f"wrote {path}"


def _curve_plot(plt, results, axis, xlabel, budget, path):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labelled = set()
    for run in results["runs"]:
        mode = run["mode"]
        ax.plot(run["curve"][axis], run["curve"]["val_loss"], "o-", ms=2.5, lw=1.0, alpha=0.8,
                color=_COLORS.get(mode), label=None if mode in labelled else mode)
        labelled.add(mode)
    ax.axvline(budget, color="black", ls="--", lw=0.8, label="comparison budget")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(f"genesis compare: validation loss vs {xlabel.split(' (')[0]}")
    ax.grid(alpha=0.3)
    ax.legend()
    finals = [min(run["curve"]["val_loss"]) for run in results["runs"]]
    firsts = [run["curve"]["val_loss"][1] if len(run["curve"]["val_loss"]) > 1 else
              run["curve"]["val_loss"][0] for run in results["runs"]]
    ax.set_ylim(min(finals) - 0.05, max(firsts) + 0.05)
    return _save_png(plt, fig, path)


def _bar_plot(plt, results, path):
    shown = [("val_loss", "val loss @ equal steps"), ("val_loss_at_flops", "val loss @ equal "
             "expert FLOPs"), ("val_loss_at_time", "val loss @ equal time"),
             ("experts_per_token", "experts/token"), ("load_cv", "load CV"),
             ("tokens_per_s", "tokens/s")]
    modes = results["modes"]
    fig, axes = plt.subplots(2, 3, figsize=(11, 6))
    for ax, (key, label) in zip(axes.flat, shown):
        stats = [results["summary"][m][key] for m in modes]
        means = [s[0] if s else 0.0 for s in stats]
        stds = [s[1] if s else 0.0 for s in stats]
        ax.bar(modes, means, yerr=stds, capsize=4,
               color=[_COLORS.get(m, "tab:gray") for m in modes])
        if key.startswith("val_loss"):
            low = min(m - s for m, s in zip(means, stds))
            high = max(m + s for m, s in zip(means, stds))
            pad = max(high - low, 1e-3)
            ax.set_ylim(low - pad, high + pad)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"genesis compare: mean ± std over {len(results['seeds'])} seed(s)")
    fig.tight_layout()
    return _save_png(plt, fig, path)


def write_report(results, out_dir):
    """Write results.json, results.md and the plots into ``out_dir``; returns lines to print."""
    os.makedirs(out_dir, exist_ok=True)
    lines = []
    for name, text in (("results.json", json.dumps(results, indent=1, sort_keys=True)),
                       ("results.md", markdown(results))):
        path = os.path.join(out_dir, name)
        atomic_write(path, text)
        lines.append(f"wrote {path}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return lines + ["plots skipped: matplotlib is not installed (pip install "
                        "'genesis[plot]')"]
    budgets = results["budgets"]
    lines.append(_curve_plot(plt, results, "expert_flops", "expert FLOPs (forward + backward)",
                             budgets["expert_flops"], os.path.join(out_dir, "loss_vs_flops.png")))
    lines.append(_curve_plot(plt, results, "seconds", "training wall time (s)",
                             budgets["seconds"], os.path.join(out_dir, "loss_vs_time.png")))
    lines.append(_bar_plot(plt, results, os.path.join(out_dir, "bars.png")))
    return lines
