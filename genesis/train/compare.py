"""``genesis compare``: the mixtral, deepseek and genesis routers trained head to head.

Every mode trains the same byte-level (or ``--tokenizer``) MoE language model through the same
``Trainer`` as ``genesis train``: same corpus, split, seeds, data order, steps, batch,
optimizer and schedule, same attention and embeddings, the same total expert parameters;
only the MoE layers differ:

* ``mixtral``: 4 routed experts of width I, softmax top-2 renormalised, Switch aux loss.
* ``deepseek``: 7 fine-grained routed experts of width I/2 (top-3) + 1 always-on shared expert
  of width I/2 (total and active expert widths equal mixtral's), sequence-level aux loss.
* ``genesis``: the energy-aware router with 4 experts of width I, 1..2 experts per token, no
  load-balancing loss (``genesis_max_new_experts`` 0 unless given: free mitosis slots add
  parameters).

Each run logs validation loss (also before the first step) against steps, training wall
time and expert FLOPs; the modes are compared at equal steps (the end), at equal wall time
and at equal expert FLOPs (linear interpolation on those curves at the smallest budget every
run reached), with the routing figures measured on the validation windows in eval mode and
the energy from ``genesis.energy`` (or "unavailable"). ``--repeats N`` trains seeds
``seed .. seed+N-1`` and reports mean +- std (sample std over seeds).
"""
import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from .data import CLIError
from .trainer import TrainerCallback

__all__ = ["MODES", "CompareSize", "mode_config", "expert_flops_per_token", "interpolate",
           "value_at_budget", "summarize", "run_compare", "compare", "add_compare_arguments"]

MODES = ("mixtral", "deepseek", "genesis")
# Training FLOPs of one SwiGLU expert per token and unit of width: 3 matmuls of d x width,
# 2 FLOPs per multiply-add, x3 for forward + backward.
_FLOPS_PER_WIDTH = 3 * 2 * 3


@dataclass
class CompareSize:
    """The model, data and schedule every mode shares."""

    hidden: int = 128
    intermediate: int = 256
    layers: int = 2
    heads: int = 4
    seq_len: int = 128
    batch_size: int = 16
    steps: int = 200
    eval_every: int = 20
    eval_windows: int = 32
    lr: float = 3e-3
    aux_coef: float = 0.01
    val_fraction: float = 0.05


def mode_config(mode, size, vocab_size=256, genesis_overrides=None):
    """The ``MoEConfig`` of one router mode at ``size`` (``genesis_overrides``: genesis_* config
    fields for the genesis mode, e.g. ``{"genesis_threshold": 0.6}``)."""
    from ..models.transformers import MoEConfig
    if mode not in MODES:
        raise ValueError(f"compare: unknown mode {mode!r}; expected one of {MODES}")
    if size.intermediate % 2:
        raise ValueError(f"compare: intermediate must be even (deepseek's experts are half "
                         f"as wide), got {size.intermediate}")
    base = dict(vocab_size=vocab_size, hidden_size=size.hidden,
                intermediate_size=2 * size.intermediate, num_hidden_layers=size.layers,
                num_attention_heads=size.heads, num_key_value_heads=size.heads,
                max_position_embeddings=max(256, size.seq_len), rms_norm_eps=1e-5,
                tie_word_embeddings=True, router_aux_loss_coef=size.aux_coef)
    if mode == "mixtral":
        return MoEConfig(num_local_experts=4, num_experts_per_tok=2,
                         moe_intermediate_size=size.intermediate, norm_topk_prob=True, **base)
    if mode == "deepseek":
        return MoEConfig(num_local_experts=7, num_experts_per_tok=3,
                         moe_intermediate_size=size.intermediate // 2, num_shared_experts=1,
                         norm_topk_prob=False, seq_aux=True, **base)
    extra = dict(genesis_max_new_experts=0)
    extra.update(genesis_overrides or {})
    return MoEConfig(num_local_experts=4, num_experts_per_tok=2,
                     moe_intermediate_size=size.intermediate, router_type="genesis",
                     **extra, **base)


def expert_flops_per_token(config, active_experts, moe_layers):
    """Training FLOPs (forward + backward) of the expert MLPs per token: ``active_experts``
    routed experts per token and layer (mean over layers), plus the shared expert."""
    width = active_experts * config.moe_intermediate_size + \
        (config.shared_expert_intermediate_size or 0)
    return _FLOPS_PER_WIDTH * config.hidden_size * width * moe_layers


def interpolate(xs, ys, x):
    """Linear interpolation of the curve (``xs`` increasing) at ``x``; ``x`` outside the curve
    is an error, never an extrapolation."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0:
        raise ValueError(f"interpolate: xs and ys must be 1-D of one length, got shapes "
                         f"{xs.shape} and {ys.shape}")
    if np.any(np.diff(xs) < 0):
        raise ValueError("interpolate: xs must be non-decreasing")
    if not xs[0] <= x <= xs[-1]:
        raise ValueError(f"interpolate: {x} is outside the curve [{xs[0]}, {xs[-1]}]")
    return float(np.interp(x, xs, ys))


def value_at_budget(runs, axis):
    """``(budget, [loss of each run at it])``: the validation loss of every run interpolated at
    the largest ``axis`` ("seconds" or "expert_flops") that every run reached."""
    budget = min(run["curve"][axis][-1] for run in runs)
    return budget, [interpolate(run["curve"][axis], run["curve"]["val_loss"], budget)
                    for run in runs]


class CurveRecorder(TrainerCallback):
    """Accumulates training wall time and expert FLOPs per step and records each validation
    loss against (step, seconds, expert FLOPs)."""

    def __init__(self, config, tokens_per_step, initial_loss=None):
        self.config = config
        self.tokens_per_step = tokens_per_step
        self.seconds = 0.0
        self.flops = 0.0
        self.curve = {"step": [0], "seconds": [0.0], "expert_flops": [0.0],
                      "val_loss": [initial_loss]}

    def on_log(self, args, state, logs):
        if "loss" in logs:
            self.seconds += self.tokens_per_step / logs["tokens_per_s"]
            layers = len(logs.get("expert_load") or ())
            self.flops += self.tokens_per_step * expert_flops_per_token(
                self.config, logs.get("active_experts", 0.0), layers)
        elif "val_loss" in logs:
            for key, value in (("step", logs["step"]), ("seconds", self.seconds),
                               ("expert_flops", self.flops), ("val_loss", logs["val_loss"])):
                self.curve[key].append(value)


def routing_on(model, windows, batch_size):
    """Routing figures on the validation ``windows`` in eval mode: loads pooled over batches;
    load CV, starved share (experts under a quarter of their fair share) and experts alive
    over each layer's live experts, averaged over layers; SSI averaged over layers and
    batches."""
    import genesis
    model.eval()
    experts, ssi, loads, alive = [], [], None, None
    device = next(iter(model.parameters())).device
    with genesis.no_grad():
        for i in range(0, len(windows), batch_size):
            stats = model(genesis.tensor(windows[i:i + batch_size], device=device),
                          output_router_logits=True).router_stats
            experts.extend(stats["active_experts_per_token"])
            ssi.extend(v for v in stats.get("ssi", ()) if v is not None and math.isfinite(v))
            batch = np.stack([np.asarray(load) for load in stats["expert_load"]])
            loads = batch if loads is None else loads + batch
            alive = stats["experts_alive"]
    model.train()
    cvs, starved = [], []
    for load, live in zip(loads, alive):      # born experts fill the first free slots
        share = load[:live] / max(load[:live].sum(), 1e-12)
        cvs.append(float(np.std(share) / np.mean(share)))
        starved.append(float(np.mean(share * live < 0.25)))
    return {"experts_per_token": float(np.mean(experts)), "load_cv": float(np.mean(cvs)),
            "starved_fraction": float(np.mean(starved)),
            "ssi": float(np.mean(ssi)) if ssi else None,
            "experts_alive": float(np.mean(alive))}


def train_one(mode, seed, size, data, out_dir, device="cpu", genesis_overrides=None):
    """Train one mode with one seed through ``Trainer``; returns its result dict (figures and
    its validation curve)."""
    import genesis
    from ..energy import EnergyWindow, available_meter
    from ..models.transformers import MoEForCausalLM
    from .arguments import TrainingArguments
    from .data import TokenDataset, eval_windows
    from .trainer import ProgressCallback, Trainer
    config = mode_config(mode, size, data["vocab_size"], genesis_overrides)
    genesis.manual_seed(seed)
    model = MoEForCausalLM(config)
    args = TrainingArguments(
        output_dir=os.path.join(out_dir, "runs", f"{mode}-seed{seed}"),
        overwrite_output_dir=True, max_steps=size.steps,
        per_device_train_batch_size=size.batch_size, learning_rate=size.lr,
        eval_steps=size.eval_every, eval_windows=size.eval_windows, save_steps=0, seed=seed,
        device=device, disable_tqdm=True, save_on_interrupt=False)
    train_ds = TokenDataset(data["train"], size.seq_len)
    val_ds = TokenDataset(data["val"], size.seq_len)
    tokens_per_step = size.batch_size * size.seq_len
    recorder = CurveRecorder(config, tokens_per_step)
    trainer = Trainer(model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                      callbacks=[recorder], run_metadata={"compare_mode": mode})
    # one line per run is printed by ``compare``; the per-evaluation lines would be noise
    trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, ProgressCallback)]
    recorder.curve["val_loss"][0] = trainer.evaluate()["eval_loss"]
    with EnergyWindow(available_meter(device)) as energy:
        trainer.train()
    tokens = size.steps * tokens_per_step
    result = {"mode": mode, "seed": seed, "params": int(model.num_parameters()),
              "val_loss": recorder.curve["val_loss"][-1], "seconds": recorder.seconds,
              "tokens_per_s": tokens / recorder.seconds, "expert_flops": recorder.flops,
              "joules": energy.joules,
              "joules_per_token": None if energy.joules is None else energy.joules / tokens,
              "curve": recorder.curve}
    windows = eval_windows(val_ds.tokens, size.seq_len, size.eval_windows)
    result.update(routing_on(model, windows, args.eval_batch_size))
    return result


# Per-mode figures of the table: (key, label, format).
METRICS = (("params", "params", ".3g"),
           ("val_loss", "val loss @ equal steps", ".4f"),
           ("val_loss_at_time", "val loss @ equal time", ".4f"),
           ("val_loss_at_flops", "val loss @ equal expert FLOPs", ".4f"),
           ("tokens_per_s", "tokens/s", ".0f"),
           ("experts_per_token", "experts/token", ".2f"),
           ("load_cv", "load CV", ".3f"),
           ("starved_fraction", "starved experts", ".3f"),
           ("ssi", "SSI", ".3f"),
           ("experts_alive", "experts alive", ".2f"),
           ("joules", "joules", ".1f"),
           ("joules_per_token", "J/token", ".3e"))


def summarize(runs):
    """Per-mode ``{key: (mean, std, n)}`` over seeds (std: sample std, 0 for one seed; None
    where the figure is unavailable) after adding each run's losses at the equal-time and
    equal-FLOPs budgets; returns ``(summary, budgets)``."""
    budgets = {}
    for axis, key in (("seconds", "val_loss_at_time"), ("expert_flops", "val_loss_at_flops")):
        budget, losses = value_at_budget(runs, axis)
        budgets[axis] = budget
        for run, loss in zip(runs, losses):
            run[key] = loss
    summary = {}
    for mode in dict.fromkeys(run["mode"] for run in runs):
        rows = [run for run in runs if run["mode"] == mode]
        summary[mode] = {}
        for key, _, _ in METRICS:
            values = [run.get(key) for run in rows]
            if any(v is None for v in values):
                summary[mode][key] = None
                continue
            arr = np.asarray(values, dtype=np.float64)
            std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
            summary[mode][key] = (float(arr.mean()), std, int(arr.size))
    return summary, budgets


def load_data(data_path=None, tokenizer_path=None, size=None, warn=None):
    """Tokens of the corpus split into train and validation, and the vocabulary size."""
    from .data import load_corpus, load_tokenizer, split_tokens
    tokenizer = load_tokenizer(tokenizer_path)
    text, source = load_corpus(data_path, warn=warn)
    tokens = np.asarray(tokenizer.encode(text), dtype=np.int64)
    train, val = split_tokens(tokens, size.val_fraction, size.seq_len)
    return {"train": train, "val": val, "vocab_size": tokenizer.vocab_size, "source": source,
            "tokenizer": tokenizer.name}


def compare(out_dir, size=None, modes=MODES, repeats=3, seed=0, device="cpu", data_path=None,
            tokenizer_path=None, genesis_overrides=None, command=None, log=print):
    """Train every mode ``repeats`` times, write results.md, results.json and the plots into
    ``out_dir``; returns the results dict (as saved in results.json)."""
    from .compare_report import write_report
    size = size or CompareSize()
    data = load_data(data_path, tokenizer_path, size,
                     warn=lambda line: log(f"warning: {line}"))
    runs, started = [], time.time()
    for s in range(seed, seed + repeats):
        for mode in modes:
            run = train_one(mode, s, size, data, out_dir, device, genesis_overrides)
            runs.append(run)
            log(f"{mode:<9} seed {s}: val loss {run['val_loss']:.4f}, "
                f"{run['tokens_per_s']:.0f} tokens/s, {run['experts_per_token']:.2f} "
                f"experts/token, load CV {run['load_cv']:.3f} "
                f"({time.time() - started:.0f} s so far)")
    summary, budgets = summarize(runs)
    results = {"command": command, "size": asdict(size), "modes": list(modes),
               "seeds": list(range(seed, seed + repeats)), "device": device,
               "data": {"source": data["source"], "tokenizer": data["tokenizer"],
                        "train_tokens": int(len(data["train"])),
                        "val_tokens": int(len(data["val"]))},
               "genesis_overrides": dict(genesis_overrides or {}),
               "blas_threads": os.environ.get("OMP_NUM_THREADS") or "default",
               "budgets": budgets, "summary": summary, "runs": runs}
    for line in write_report(results, out_dir):
        log(line)
    return results


# --------------------------------------------------------------------------- command line
def add_compare_arguments(p):
    """The flags of ``genesis compare``."""
    from .command import number
    d = CompareSize()
    p.add_argument("--out", default="runs/compare", help="results folder (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated router modes (default: %(default)s)")
    p.add_argument("--repeats", type=number(int, 1), default=3,
                   help="seeds per mode; mean +- std over them (default: %(default)s)")
    p.add_argument("--seed", type=number(int, 0), default=0,
                   help="first seed (default: %(default)s)")
    p.add_argument("--data", default=None, help="a UTF-8 text file or folder of .txt files "
                   "(default: the Python documentation shipped with CPython)")
    p.add_argument("--tokenizer", default=None, help="a HuggingFace tokenizer.json "
                   "(default: bytes)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: %(default)s)")
    for name, kind, text in (
            ("steps", int, "optimizer steps per run"), ("batch_size", int, "windows per step"),
            ("seq_len", int, "tokens per window"), ("hidden", int, "hidden size"),
            ("intermediate", int, "width of a mixtral/genesis expert (deepseek's: half)"),
            ("layers", int, "MoE layers"), ("heads", int, "attention heads"),
            ("eval_every", int, "validation interval in steps (the curves' resolution)"),
            ("eval_windows", int, "validation windows"), ("lr", float, "peak learning rate"),
            ("aux_coef", float, "load-balancing loss coefficient of mixtral and deepseek")):
        p.add_argument("--" + name.replace("_", "-"), type=number(kind, 1 if kind is int else 0),
                       default=getattr(d, name), help=text + " (default: %(default)s)")
    p.add_argument("--val-fraction", type=number(float, 0, 1, low_open=True),
                   default=d.val_fraction, help="(default: %(default)s)")
    g = p.add_argument_group("genesis router (default: the MoEConfig defaults)")
    g.add_argument("--genesis-threshold", type=number(float, 0, 1, low_open=True))
    g.add_argument("--genesis-eta-cost", type=number(float, 0))
    g.add_argument("--genesis-new-experts", type=number(int, 0),
                   help="free slots for mitosis (default 0: they add parameters)")


def run_compare(args):
    """``genesis compare``: returns the exit status."""
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown or len(set(modes)) != len(modes):
        raise CLIError(f"--modes {args.modes!r}: expected distinct modes from "
                       f"{', '.join(MODES)}")
    if args.device != "cpu":
        from .command import _check_device
        _check_device(args.device)
    if os.path.exists(os.path.join(args.out, "results.json")) and not args.overwrite:
        raise CLIError(f"{args.out} already holds comparison results; pass --overwrite to "
                       "replace them or another --out")
    size = CompareSize(**{k: getattr(args, k) for k in asdict(CompareSize())})
    if size.intermediate % 2:
        raise CLIError(f"--intermediate must be even (deepseek's experts are half as wide), "
                       f"got {size.intermediate}")
    if size.hidden % size.heads:
        raise CLIError(f"--hidden {size.hidden} is not divisible by --heads {size.heads}")
    overrides = {field: value for field, value in (
        ("genesis_threshold", args.genesis_threshold), ("genesis_eta_cost", args.genesis_eta_cost),
        ("genesis_max_new_experts", args.genesis_new_experts)) if value is not None}
    command = "genesis compare " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["compare"] \
        else None
    compare(args.out, size, modes, args.repeats, args.seed, args.device, args.data,
            args.tokenizer, overrides, command=command,
            log=lambda line: print(line, flush=True))
    return 0
