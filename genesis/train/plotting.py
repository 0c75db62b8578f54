"""PNG plots of a training run's metrics (needs the optional matplotlib extra)."""
import json
import os


def read_metrics(path):
    """Train records (with ``loss``) and validation records (with ``val_loss``) of a JSONL log."""
    train, val = [], []
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    (val if "val_loss" in rec else train).append(rec)
    return train, val


def plot_metrics(metrics_path, out_dir):
    """Write loss.png and expert_load.png; returns the lines to print."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["plots skipped: matplotlib is not installed (pip install 'genesis[plot]')"]
    train, val = read_metrics(metrics_path)
    if not train:
        return ["plots skipped: no metrics recorded"]
    lines = []
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=0.8, label="train")
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("genesis train: loss")
    ax.legend()
    ax.grid(alpha=0.3)
    loss_png = os.path.join(out_dir, "loss.png")
    fig.tight_layout()
    fig.savefig(loss_png, dpi=110)
    plt.close(fig)
    lines.append(f"wrote {loss_png}")
    loads = [r for r in train if r.get("expert_load")]
    if loads:
        n_layers = len(loads[0]["expert_load"])
        fig, axes = plt.subplots(n_layers, 1, figsize=(7, 1.8 * n_layers + 0.6), sharex=True,
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
            ax.set_ylabel(f"MoE layer {layer}\nshare")
            ax.grid(alpha=0.3)
        axes[0][0].set_title("genesis train: share of routed tokens per expert")
        axes[0][0].legend(ncol=4, fontsize=7)
        axes[-1][0].set_xlabel("step")
        load_png = os.path.join(out_dir, "expert_load.png")
        fig.tight_layout()
        fig.savefig(load_png, dpi=110)
        plt.close(fig)
        lines.append(f"wrote {load_png}")
    return lines
