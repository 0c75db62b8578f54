"""PNG plots of a training run's metrics (needs matplotlib: ``pip install "genesis[plot]"``).

``loss.png``: training and validation loss per step. ``expert_load.png``: per MoE layer, the
share of routed tokens each expert received, with a dashed line at the balanced share
(1 / live experts), the legend outside the plot area.
"""
import io
import os

from .._atomic import atomic_write
from .run_dir import read_metrics_records

__all__ = ["read_metrics", "plot_metrics"]


def read_metrics(path, warn=None):
    """Train records (with ``loss``) and validation records (with ``val_loss``) of a JSONL log."""
    train, val = [], []
    for rec in read_metrics_records(path, warn):
        if "val_loss" in rec:
            val.append(rec)
        elif "loss" in rec:
            train.append(rec)
    return train, val


def plot_metrics(metrics_path, out_dir, warn=None):
    """Write loss.png and expert_load.png into ``out_dir``; returns the lines to print."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["plots skipped: matplotlib is not installed (pip install 'genesis[plot]')"]
    train, val = read_metrics(metrics_path, warn)
    if not train:
        return ["plots skipped: no metrics recorded"]
    lines = [_loss_plot(plt, train, val, out_dir)]
    loads = [r for r in train if r.get("expert_load")]
    if loads:
        lines.append(_load_plot(plt, loads, out_dir))
    return lines


def _save(plt, fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return f"wrote {path}"


def _loss_plot(plt, train, val, out_dir):
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=0.8, label="train")
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("genesis train: loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(plt, fig, os.path.join(out_dir, "loss.png"))


def _load_plot(plt, loads, out_dir):
    n_layers = len(loads[0]["expert_load"])
    fig, axes = plt.subplots(n_layers, 1, figsize=(8, 1.8 * n_layers + 0.6), sharex=True,
                             squeeze=False)
    steps = [r["step"] for r in loads]
    for layer in range(n_layers):
        ax = axes[layer][0]
        rows = [r["expert_load"][layer] for r in loads]
        width = max(len(row) for row in rows)
        series = list(zip(*[list(row) + [0.0] * (width - len(row)) for row in rows]))
        for expert, values in enumerate(series):
            if any(values):  # slots never used (unborn Genesis experts) are not drawn
                ax.plot(steps, values, lw=0.8, label=f"expert {expert}")
        alive = [r["experts_alive"][layer] if "experts_alive" in r else len(row)
                 for r, row in zip(loads, rows)]
        ax.step(steps, [1.0 / n for n in alive], where="post", color="black", ls="--", lw=1.0,
                label="balanced share")
        ax.set_ylabel(f"MoE layer {layer}\nshare")
        ax.grid(alpha=0.3)
    axes[0][0].set_title("genesis train: share of routed tokens per expert")
    axes[0][0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                      borderaxespad=0.0)
    axes[-1][0].set_xlabel("step")
    return _save(plt, fig, os.path.join(out_dir, "expert_load.png"))
