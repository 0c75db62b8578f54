"""``genesis train`` and ``genesis plot``: flags in, ``TrainingArguments`` + ``Trainer`` out.

The command loads the tokenizer and the text, builds the model, turns its flags into
``TrainingArguments`` and runs ``Trainer``; every guarantee (lock, no overwrite, verified
checkpoints, exact resume, signals) lives in the Trainer. ``--resume`` reuses the options
saved with the run; an option given again must match. Files (``--config``, ``--data``,
``--tokenizer``) are compared by what they hold, not by how the path is spelled: the Trainer
checks the model config and a SHA-256 of the training tokens, so a moved file is fine.
"""
import argparse
import dataclasses
import math
import os
import sys

import numpy as np

from .arguments import TrainingArguments
from .data import CLIError
from .trainer import Trainer, steps_problem

__all__ = ["add_train_arguments", "run_train", "add_plot_arguments", "run_plot"]

# A few-million-parameter MoE that learns bytes of English on two CPU cores in minutes.
DEFAULT_MODEL = dict(hidden_size=192, intermediate_size=384, moe_intermediate_size=384,
                     num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=6,
                     num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=512,
                     rope_theta=10000.0, rms_norm_eps=1e-5, router_aux_loss_coef=0.01,
                     tie_word_embeddings=True, model_type="genesis_moe")
# Bytes per parameter to train in float32: weights, gradients, AdamW's two moments.
TRAIN_BYTES_PER_PARAM = 16

_ARG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
# flag dest -> TrainingArguments field
TRAINING_FLAGS = {"out": "output_dir", "overwrite": "overwrite_output_dir", "steps": "max_steps",
                  "batch_size": "per_device_train_batch_size", "lr": "learning_rate",
                  "min_lr_ratio": "min_lr_ratio", "warmup_steps": "warmup_steps",
                  "weight_decay": "weight_decay", "grad_clip": "max_grad_norm",
                  "eval_every": "eval_steps", "eval_windows": "eval_windows",
                  "save_every": "save_steps", "seed": "seed", "device": "device",
                  "quiet": "disable_tqdm"}
# Options of the command itself that define a run (saved with it, reused by --resume).
RUN_OPTIONS = {"preset": None, "router": None, "config": None, "data": None, "tokenizer": None,
               "seq_len": 128, "val_fraction": 0.05, "dtype": "fp32"}
OTHER_OPTIONS = {"sample_tokens": 200, "sample_prompt": "The "}
# Options --resume does not take from the saved run.
PER_INVOCATION = ("out", "overwrite", "resume", "quiet")
PATH_OPTIONS = ("config", "data", "tokenizer")


def number(kind=float, low=None, high=None, low_open=False):
    """An argparse type: a finite ``kind`` within the bounds, else a one-line error."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        ok = math.isfinite(value) and (low is None or (value > low if low_open else value >= low)) \
            and (high is None or value <= high)
        if not ok:
            lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
            hi = "" if high is None else f"<= {high:g}"
            raise argparse.ArgumentTypeError(
                f"expected a finite {'integer' if kind is int else 'number'} "
                f"{' and '.join(p for p in (lo, hi) if p)}, got {text}")
        return value
    return parse


class _Given(argparse.Action):
    """Store the value and remember that the flag was given (``--resume`` compares those)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True if self.nargs == 0 else values)
        namespace.given = getattr(namespace, "given", set()) | {self.dest}


def _opt(group, flag, default, help_text, shown=None, **kwargs):
    """An option with its default shown in --help."""
    shown = default if shown is None else shown
    suffix = "" if shown is None else f" (default: {shown})"
    group.add_argument(flag, default=default, action=_Given,
                       help=(help_text + suffix).replace("%", "%%"), **kwargs)


def _switch(group, flag, help_text):
    group.add_argument(flag, default=False, action=_Given, nargs=0, help=help_text)


def add_train_arguments(t):
    """The flags of ``genesis train``."""
    d = _ARG_DEFAULTS
    m = t.add_argument_group("model and data")
    _opt(m, "--preset", None, "model preset (see `genesis info`); default: a small MoE")
    _opt(m, "--router", None, "router type", choices=["topk", "genesis"])
    _opt(m, "--config", None, "model config.json (instead of --preset)")
    _opt(m, "--data", None, "a UTF-8 text file or a folder of .txt files (default: the Python "
         "documentation shipped with CPython)")
    _opt(m, "--tokenizer", None, "a HuggingFace tokenizer.json or a folder with one (default: "
         "bytes, vocab 256)")
    _opt(m, "--seq-len", RUN_OPTIONS["seq_len"], "tokens per training window",
         type=number(int, 1))
    _opt(m, "--val-fraction", RUN_OPTIONS["val_fraction"],
         "share of the text held out for validation", type=number(float, 0, 1, low_open=True))
    o = t.add_argument_group("training")
    _opt(o, "--steps", d["max_steps"], "optimizer steps", type=number(int, 1))
    _opt(o, "--batch-size", d["per_device_train_batch_size"], "windows per step",
         type=number(int, 1))
    _opt(o, "--lr", d["learning_rate"], "peak learning rate", type=number(float, 0))
    _opt(o, "--min-lr-ratio", d["min_lr_ratio"], "final learning rate as a fraction of --lr "
         "(cosine schedule)", type=number(float, 0, 1))
    _opt(o, "--warmup-steps", None, "linear warmup steps", shown="5% of --steps",
         type=number(int, 0))
    _opt(o, "--weight-decay", d["weight_decay"], "AdamW weight decay", type=number(float, 0))
    _opt(o, "--grad-clip", d["max_grad_norm"], "gradient norm clip, 0 disables",
         type=number(float, 0))
    _opt(o, "--seed", d["seed"], "seed of initialisation and sampling", type=number(int, 0))
    _opt(o, "--device", d["device"], "cpu or cuda[:N]")
    _opt(o, "--dtype", RUN_OPTIONS["dtype"], "bf16: autocast matmuls and attention to bfloat16 (weights, "
         "optimizer state and losses stay float32)", choices=["fp32", "bf16"])
    r = t.add_argument_group("run folder, evaluation and output")
    _opt(r, "--out", d["output_dir"], "run folder: checkpoint/, metrics.jsonl, plots")
    _switch(r, "--resume", "continue the run in --out (its saved options are reused)")
    _switch(r, "--overwrite", "replace the run already in --out")
    _opt(r, "--eval-every", d["eval_steps"], "validation interval in steps, 0: never",
         type=number(int, 0))
    _opt(r, "--eval-windows", d["eval_windows"], "validation windows of --seq-len tokens",
         type=number(int, 1))
    _opt(r, "--save-every", d["save_steps"], "checkpoint interval in steps, 0: at the end only",
         type=number(int, 0))
    _opt(r, "--sample-tokens", OTHER_OPTIONS["sample_tokens"],
         "tokens sampled at the end, 0: none", type=number(int, 0))
    _opt(r, "--sample-prompt", OTHER_OPTIONS["sample_prompt"], "prompt of the final sample",
         shown=repr(OTHER_OPTIONS["sample_prompt"]))
    _switch(r, "--quiet", "no progress bar")
    _switch(o, "--expert-parallel", "under mpirun -n N: shard each MoE layer's experts over the N "
            "processes (data parallel either way; see docs/distributed.md)")


def _flag(dest):
    return "--" + dest.replace("_", "-")


def _resolve(dest, value):
    return os.path.realpath(value) if dest in PATH_OPTIONS and value is not None else value


def _options(args):
    """``{dest: value}`` of every train option, saved ones reused on --resume."""
    opts = {k: v for k, v in vars(args).items() if k not in ("command", "given")}
    given = {k: opts[k] for k in getattr(args, "given", ())}
    if opts["resume"] and opts["overwrite"]:
        raise CLIError("--resume and --overwrite exclude each other")
    if opts["resume"]:
        opts.update(_saved_options(opts["out"], given))
        opts.update(given)
    for dest in PATH_OPTIONS:
        opts[dest] = _resolve(dest, opts[dest])
    return opts


def _saved_options(out, given):
    """The options saved with the run in ``out`` (all but ``PER_INVOCATION``); a given option
    that defines the run must match its saved value."""
    from .run_dir import find_checkpoint, read_checkpoint_record
    path = find_checkpoint(out)
    if path is None:
        raise CLIError(f"--resume: no checkpoint in {out}")
    record = read_checkpoint_record(path)
    saved = dict(record.get("metadata", {}).get("options", {}))
    training = record.get("training_args", {})
    for dest, field in TRAINING_FLAGS.items():
        if field in training and dest not in PER_INVOCATION:
            saved.setdefault(dest, training[field])
    run_defining = set(RUN_OPTIONS) | {d for d, f in TRAINING_FLAGS.items()
                                       if f in TrainingArguments().run_defining()}
    for dest in sorted((run_defining - set(PATH_OPTIONS)) & set(given)):
        if given[dest] != saved.get(dest):
            raise CLIError(f"--resume: the checkpoint in {path} is from a different "
                           f"configuration: {_flag(dest)} is {saved.get(dest)!r} there, "
                           f"{given[dest]!r} now; leave {_flag(dest)} out to "
                           "reuse the run's value, or train a new run with another --out")
    problem = steps_problem(path, int(record["global_step"]), given.get("steps", saved["steps"]),
                            "--steps")
    if problem:
        raise CLIError(problem)
    return {k: v for k, v in saved.items() if k not in PER_INVOCATION}


def run_train(args):
    """``genesis train``: returns the exit status."""
    import genesis
    from ..models.transformers import MoEForCausalLM
    from .data import TokenDataset, load_corpus, load_tokenizer, split_tokens
    from .run_dir import describe_run, find_checkpoint
    from .parallel import ParallelContext
    opts = _options(args)
    out = opts["out"]
    parallel = ParallelContext.start(opts.get("expert_parallel", False), opts["device"],
                                     opts["batch_size"])

    def check_out():
        existing = describe_run(out) if not opts["resume"] and not opts["overwrite"] and \
            os.path.isdir(out) else None
        if existing:
            raise CLIError(f"{out} already holds {existing}; pass --resume to continue it, "
                           "--overwrite to replace it, or another --out")
    parallel.agree(check_out)
    say = print if parallel.is_main else (lambda *a, **k: None)
    if opts["device"] != "cpu":
        _check_device(opts["device"])
    explicit = getattr(args, "given", set())
    resumed_tokenizer = opts["resume"] and "tokenizer" not in explicit
    tokenizer = load_tokenizer(None if resumed_tokenizer else opts["tokenizer"],
                               find_checkpoint(out) if opts["resume"] else None)
    text, source = load_corpus(opts["data"], warn=_warn)
    config = build_config(opts, tokenizer.vocab_size)
    parallel.check_config(config)
    tokens = np.asarray(tokenizer.encode(text), dtype=np.int64)
    if len(tokens) == 0:
        raise CLIError(f"the corpus {source} is empty")
    train_tokens, val_tokens = split_tokens(tokens, opts["val_fraction"], opts["seq_len"])
    training_args = TrainingArguments(bf16=opts["dtype"] == "bf16",
                                      **{f: opts[d] for d, f in TRAINING_FLAGS.items()
                                         if opts[d] is not None})
    genesis.manual_seed(opts["seed"])
    model = MoEForCausalLM(config)
    trainer = CommandTrainer(
        model, args=training_args, train_dataset=TokenDataset(train_tokens, opts["seq_len"]),
        eval_dataset=TokenDataset(val_tokens, opts["seq_len"]), tokenizer=tokenizer,
        run_metadata={"options": {k: opts[k] for k in (*RUN_OPTIONS, *OTHER_OPTIONS)}},
        parallel=parallel)
    experts = f"{config.num_local_experts} experts top-{config.num_experts_per_tok}, router " \
        f"{config.router_type}" if config.num_local_experts else "dense (no experts)"
    say(f"run folder: {out}\nmodel: {model.num_parameters() / 1e6:.2f}M parameters, "
          f"{config.num_hidden_layers} layers, {experts}; data: {source}, "
          f"{len(train_tokens):,} train / {len(val_tokens):,} val tokens ({tokenizer.name} "
          "tokenizer)" + (f"; {parallel.world} processes"
                          + (", expert parallel" if parallel.expert_parallel else "")
                          if parallel.distributed else ""), flush=True)
    result = trainer.train(resume_from_checkpoint=True if opts["resume"] else None)
    model = parallel.full_model(model)
    if not parallel.is_main:
        return 0
    from .plotting import plot_metrics
    for line in plot_metrics(os.path.join(out, "metrics.jsonl"), out, warn=_warn):
        print(line)
    signum = result.metrics["interrupted_by"]
    if signum:
        return 128 + int(signum)
    if config.num_local_experts:
        from ..dashboard import write_dashboard
        text = tokenizer.decode(val_tokens[:min(256, config.max_position_embeddings)].tolist())
        print("wrote " + write_dashboard(model, tokenizer, text, os.path.join(out, "routing.html"),
                                         os.path.join(out, "metrics.jsonl")))
    if result.metrics["eval_loss"] is not None:
        print(f"final validation loss {result.metrics['eval_loss']:.4f} nats/token; "
              f"{result.metrics['tokens_per_s'] or 0:.0f} tokens/s; checkpoint in "
              f"{os.path.join(out, 'checkpoint')}")
    if opts["sample_tokens"]:
        ids = genesis.tensor(np.asarray([tokenizer.encode(opts["sample_prompt"])],
                                        dtype=np.int64), device=opts["device"])
        sample = model.generate(ids, max_new_tokens=opts["sample_tokens"], do_sample=True,
                                temperature=0.8, top_k=50)
        print("sample:\n" + tokenizer.decode(sample[0].tolist(), skip_special_tokens=True))
    return 0


class CommandTrainer(Trainer):
    """The Trainer of ``genesis train``: its messages spell options as the command's flags."""

    OPTION_NAMES = dict({f: _flag(d) for d, f in TRAINING_FLAGS.items()},
                        resume="--resume", overwrite="--overwrite", bf16="--dtype")


def _warn(line):
    print(f"genesis: warning: {line}", file=sys.stderr, flush=True)


def _check_device(device):
    from ..backends import cuda
    if not device.startswith("cuda"):
        raise CLIError(f"unknown --device {device!r}; expected cpu or cuda[:N]")
    if not cuda.is_available():
        raise CLIError(f"--device {device}: no CUDA GPU available (needs genesis[cuda] and an "
                       "NVIDIA GPU)")


def build_config(opts, vocab_size):
    """The MoEConfig from ``--config``, ``--preset`` or the default, with ``--router`` applied,
    refused before any work when it cannot train here."""
    from ..models.transformers import MoEConfig, get_moe_config, list_moe_configs
    if opts["config"]:
        if not os.path.isfile(opts["config"]):
            raise CLIError(f"config file not found: {opts['config']}")
        try:
            config = MoEConfig.from_pretrained(opts["config"])
        except (ValueError, TypeError, OSError) as exc:
            raise CLIError(f"invalid config {opts['config']}: {exc}") from None
        what = f"--config {opts['config']}"
    elif opts["preset"]:
        if opts["preset"] not in list_moe_configs():
            raise CLIError(f"unknown preset {opts['preset']!r}; choose one of "
                           f"{', '.join(list_moe_configs())}")
        config = get_moe_config(opts["preset"])
        what = f"--preset {opts['preset']}"
    else:
        config = MoEConfig(vocab_size=vocab_size, **DEFAULT_MODEL)
        what = "the default model"
    if config.vocab_size < vocab_size:
        raise CLIError(f"{what} has vocab_size {config.vocab_size}, smaller than the "
                       f"tokenizer's {vocab_size}; pass --tokenizer with at most "
                       f"{config.vocab_size} tokens, or a --config with vocab_size >= "
                       f"{vocab_size}")
    if opts["router"]:
        config.router_type = opts["router"]
    try:
        config.validate()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if opts["seq_len"] > config.max_position_embeddings:
        raise CLIError(f"--seq-len {opts['seq_len']} is longer than the model's "
                       f"max_position_embeddings {config.max_position_embeddings}")
    _check_training_memory(config, what)
    return config


def _check_training_memory(config, what):
    from ..models.transformers.configuration_moe import available_memory_bytes, format_bytes
    params = config.num_parameters()
    need, have = params * TRAIN_BYTES_PER_PARAM, available_memory_bytes()
    if have is not None and need > have:
        raise CLIError(f"{what} has {params / 1e9:.2f}B parameters: training it needs about "
                       f"{format_bytes(need)} (float32 weights, gradients and AdamW state) but "
                       f"{format_bytes(have)} is available; pass --preset moe-small or a "
                       "smaller --config")


def add_plot_arguments(p):
    """The arguments of ``genesis plot``."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder holding metrics.jsonl")


def run_plot(args):
    """``genesis plot RUN_DIR``: redraw loss.png and expert_load.png from metrics.jsonl."""
    from .plotting import plot_metrics
    path = os.path.join(args.run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise CLIError(f"{args.run_dir} has no metrics.jsonl (not a genesis run folder?)")
    lines = plot_metrics(path, args.run_dir, warn=_warn)
    if lines[0].startswith("plots skipped"):
        raise CLIError(lines[0])
    print("\n".join(lines))
    return 0
