"""``Trainer``: the training loop of a causal LM, as HuggingFace users know it.

``Trainer(model, args=TrainingArguments(...), train_dataset=..., eval_dataset=...).train()``
runs AdamW with warmup + cosine decay, evaluates and checkpoints on schedule, writes
``metrics.jsonl``, reports every record to its callbacks, and keeps the run safe: the run
folder is locked, an earlier run is never overwritten unless asked, checkpoints are verified
before they replace the previous one, ``train(resume_from_checkpoint=True)`` verifies the
checkpoint and continues bit for bit, and SIGINT/SIGTERM save at the end of the step.
"""
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections import namedtuple

import numpy as np

import genesis

from .._atomic import atomic_write
from .arguments import TrainingArguments
from .data import TokenDataset, WindowBatches, eval_windows
from .parallel import NullMetrics, ParallelContext
from .run_dir import (ARGS_FILE, METRICS_FILE, STATE_FILE, CheckpointSaveError, MetricsLog, RunLock, TrainingError, clear_run, describe_run,
                      find_checkpoint, prepare_output_dir, read_checkpoint_record,
                      save_checkpoint)

__all__ = ["Trainer", "TrainerCallback", "TrainerState", "TrainOutput", "ProgressCallback",
           "evaluate"]

TrainOutput = namedtuple("TrainOutput", ["global_step", "training_loss", "metrics"])
TrainOutput.__doc__ = "What ``Trainer.train`` returns (HF's fields)."


class TrainerState:
    """Where the run stands: ``global_step``, ``max_steps``, the last losses and checkpoint."""

    def __init__(self, max_steps):
        self.global_step = 0
        self.max_steps = max_steps
        self.train_loss = None
        self.eval_loss = None
        self.current_step = 1
        self.last_checkpoint_step = None
        self.interrupted_by = None


class TrainerCallback:
    """Hooks called by ``Trainer.train``; override the ones you need (all do nothing here).

    ``logs`` is each record written to ``metrics.jsonl``: per step ``step``, ``loss``, ``lr``,
    ``tokens_per_s`` (plus ``grad_norm``, ``aux_loss``, ``active_experts``, ``expert_load`` and
    Genesis-router metrics when present); per evaluation ``step`` and ``val_loss``.
    """

    def on_train_begin(self, args, state):
        """Before the first step (after a resume, before the first new step)."""

    def on_log(self, args, state, logs):
        """After each metrics record."""

    def on_evaluate(self, args, state, metrics):
        """After each evaluation; ``metrics`` is ``{"eval_loss": ...}``."""

    def on_save(self, args, state, checkpoint_dir):
        """After a checkpoint was written, verified and swapped in."""

    def on_train_end(self, args, state):
        """After the last step, an interrupt's save, or an error (the lock is still held)."""


class ProgressCallback(TrainerCallback):
    """A tqdm progress bar (on stderr, or ``file``) that fits the terminal width: the loss,
    throughput and router figures are shown as far as they fit, most important first. One
    line per evaluation; ``args.disable_tqdm`` hides the bar but keeps those lines."""

    BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"
    MIN_BAR = 10

    def __init__(self, file=None):
        self.file = file
        self.bar = None
        self._tokens_per_s = []

    def on_train_begin(self, args, state):
        from tqdm import tqdm
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train",
                        unit="step", dynamic_ncols=True, disable=args.disable_tqdm,
                        file=self.file, bar_format=self.BAR_FORMAT + "{postfix}")

    def on_log(self, args, state, logs):
        if "loss" not in logs:
            return
        self._tokens_per_s.append(logs["tokens_per_s"])
        fields = [f"loss={logs['loss']:.3f}",
                  f"tok/s={np.median(self._tokens_per_s[-20:]):.0f}"]
        if "active_experts" in logs:
            fields.append(f"experts={logs['active_experts']:.2f}")
        if "aux_loss" in logs:
            fields.append(f"aux={logs['aux_loss']:.3f}")
        self.bar.postfix = self._fit(fields, state)
        self.bar.update(1)

    def _fit(self, fields, state):
        """The postfix: as many ``fields`` as the terminal leaves room for beside the bar."""
        measure = getattr(self.bar, "dynamic_ncols", None)
        shape = measure(self.bar.fp) if callable(measure) else None
        width = shape[0] if isinstance(shape, (tuple, list)) else shape
        if not width:
            return ", ".join(fields)
        total = len(str(state.max_steps))
        room = width - (len("train: 100%|| ") + 2 * total + 1 + len(" [00:00:00<00:00:00]")
                        + self.MIN_BAR)
        shown = []
        for field in fields:
            if sum(len(f) + 2 for f in shown) + len(field) + 2 > room:
                break
            shown.append(field)
        return ", ".join(shown)

    def on_evaluate(self, args, state, metrics):
        self.bar.write(f"step {state.global_step}: train loss {state.train_loss:.4f}, "
                       f"val loss {metrics['eval_loss']:.4f}", file=self.file)

    def on_train_end(self, args, state):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def evaluate(model, windows, batch_size):
    """Mean next-token loss of ``model`` over the validation ``windows`` [N, seq_len]."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(iter(model.parameters())).device
    with genesis.no_grad():
        for i in range(0, len(windows), batch_size):
            chunk = genesis.tensor(windows[i:i + batch_size], device=device)
            loss, _ = model(chunk, labels=chunk)
            total += loss.item() * len(chunk)
            count += len(chunk)
    if was_training:
        model.train()
    return total / count


class Trainer:
    """Train a genesis causal LM on a ``TokenDataset`` (see the module docstring).

    ``tokenizer`` (optional, e.g. ``AutoTokenizer.from_pretrained(...)``) is saved with every
    checkpoint by its ``save_pretrained(folder)``, which returns ``{file name: FileDigest}`` for
    the checkpoint manifest. ``run_metadata`` is a JSON-able
    dict saved with every checkpoint (``train_args.json``), e.g. how the data was made.
    ``OPTION_NAMES`` spells options in messages; ``genesis train`` sets its flag names.
    Override ``get_train_batches`` to feed batches from elsewhere (an object with
    ``next_batch() -> (input_ids, labels)``, ``state_dict()`` and ``load_state_dict()``).
    """

    OPTION_NAMES = {"resume": "train(resume_from_checkpoint=True)",
                    "overwrite": "TrainingArguments(overwrite_output_dir=True)"}

    def __init__(self, model, args=None, train_dataset=None, eval_dataset=None, tokenizer=None,
                 callbacks=None, run_metadata=None, parallel=None):
        self.args = args if args is not None else TrainingArguments()
        if not isinstance(self.args, TrainingArguments):
            raise TypeError(f"Trainer: args must be TrainingArguments, got "
                            f"{type(self.args).__name__}")
        for name, ds in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
            if ds is not None and not isinstance(ds, TokenDataset):
                raise TypeError(f"Trainer: {name} must be a genesis.train.TokenDataset, got "
                                f"{type(ds).__name__}")
        if train_dataset is None:
            raise ValueError("Trainer: train_dataset is required")
        self.model = model
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.tokenizer = tokenizer
        self.run_metadata = dict(run_metadata or {})
        self.callbacks = [ProgressCallback()] + list(callbacks or [])
        self.state = TrainerState(self.args.max_steps)
        self.optimizer = self.lr_scheduler = self.batches = None
        if self.args.device != "cpu":
            self.model.to(self.args.device)
        self.parallel = parallel if parallel is not None else ParallelContext()
        self.wrapped = self.parallel.wrap(self.model)

    # ------------------------------------------------------------------ public API
    def add_callback(self, callback):
        """Add a ``TrainerCallback``."""
        self.callbacks.append(callback)

    def create_optimizer_and_scheduler(self):
        """AdamW (decay on matrices only) and warmup + cosine decay, from ``self.args``."""
        from ..optim import AdamW
        from ..optim.lr_scheduler import get_cosine_schedule_with_warmup
        a = self.args
        params = list(self.model.parameters())
        self.optimizer = AdamW([{"params": [p for p in params if p.ndim >= 2],
                                 "weight_decay": a.weight_decay},
                                {"params": [p for p in params if p.ndim < 2],
                                 "weight_decay": 0.0}],
                               lr=a.learning_rate, betas=(a.adam_beta1, a.adam_beta2),
                               eps=a.adam_epsilon)
        self.lr_scheduler = get_cosine_schedule_with_warmup(
            self.optimizer, a.resolved_warmup_steps, a.max_steps, min_lr_ratio=a.min_lr_ratio)

    def get_train_batches(self):
        """The batch source: seeded random windows of the training set (state is saved)."""
        ds = self.train_dataset
        return WindowBatches(ds, self.args.per_device_train_batch_size, self.args.seed)

    def evaluate(self):
        """``{"eval_loss": mean next-token loss}`` over ``args.eval_windows`` evenly spaced
        windows of ``eval_dataset``."""
        if self.eval_dataset is None:
            raise ValueError("Trainer.evaluate: no eval_dataset was given")
        ds = self.eval_dataset
        windows = eval_windows(ds.tokens, ds.seq_len, self.args.eval_windows)
        return {"eval_loss": evaluate(self.model, windows, self.args.eval_batch_size)}

    def train(self, resume_from_checkpoint=None):
        """Run to ``args.max_steps``; returns ``TrainOutput``. ``resume_from_checkpoint``: True
        (the run's checkpoint in ``output_dir``) or a checkpoint folder. Raises
        ``TrainingError`` (one-line message) when the run cannot start or continue."""
        out = self.args.output_dir
        par = self.parallel
        par.agree(lambda: prepare_output_dir(out))
        with (RunLock(out) if par.is_main else contextlib.nullcontext()) as lock:
            if lock is not None and lock.stale:
                self._say(f"note: took over the stale lock of a run that is no longer running "
                          f"(pid {lock.stale.get('pid')}) in {out}")
            started = par.agree(lambda: self._start(resume_from_checkpoint))
            ckpt, record = started if par.is_main else \
                self._start_follower(resume_from_checkpoint)
            self._metrics = MetricsLog(os.path.join(out, METRICS_FILE),
                                       int(record["global_step"]) if ckpt else None, self._say) \
                if par.is_main else NullMetrics()
            self.create_optimizer_and_scheduler()
            self.batches = self.get_train_batches()
            self.state = TrainerState(self.args.max_steps)
            if ckpt is None:
                genesis.manual_seed(self.args.seed)
            else:
                self._restore(ckpt, record)
            self._call("on_train_begin")
            try:
                self._loop()
            finally:
                self._call("on_train_end")
        s = self.state
        metrics = {"train_loss": s.train_loss, "eval_loss": s.eval_loss,
                   "tokens_per_s": self._tokens_per_s(), "interrupted_by": s.interrupted_by}
        return TrainOutput(s.global_step, s.train_loss, metrics)

    # ------------------------------------------------------------------ starting
    def _name(self, key):
        return self.OPTION_NAMES.get(key, key)

    def _start(self, resume):
        """(checkpoint folder or None, its record) after the run-folder checks."""
        out = self.args.output_dir
        if not resume:
            existing = describe_run(out)
            if existing and not self.args.overwrite_output_dir:
                raise TrainingError(f"{out} already holds {existing}; pass "
                                    f"{self._name('resume')} to continue it or "
                                    f"{self._name('overwrite')} to replace it")
            if existing:
                clear_run(out)
            self._signature = self._run_signature()
            return None, None
        if self.args.overwrite_output_dir:
            raise TrainingError(f"{self._name('resume')} and {self._name('overwrite')} "
                                "exclude each other")
        ckpt = find_checkpoint(out) if resume is True else os.fspath(resume)
        if ckpt is None or not os.path.isdir(ckpt):
            raise TrainingError(f"{self._name('resume')}: no checkpoint in {ckpt or out}")
        record = read_checkpoint_record(ckpt)
        self._signature = self._run_signature()
        self._check_same_run(ckpt, record)
        problem = steps_problem(ckpt, int(record["global_step"]), self.args.max_steps,
                                self._name("max_steps"))
        if problem:
            raise TrainingError(problem)
        return ckpt, record

    def _start_follower(self, resume):
        """Ranks other than 0, after rank 0's checks: the checkpoint to resume, if any."""
        self._signature = self._run_signature()
        if not resume:
            return None, None
        ckpt = find_checkpoint(self.args.output_dir) if resume is True else os.fspath(resume)
        return ckpt, read_checkpoint_record(ckpt)

    def _run_signature(self):
        """What must match for a resumed run to continue this one exactly (under mpirun also
        the number of processes and expert parallelism)."""
        config = self.model.config.to_dict()
        floating = [p.dtype.name for p in self.model.parameters() if p.dtype.is_floating_point]
        config["dtype"] = floating[0] if floating else None
        training_args = self.args.run_defining()
        if self.parallel.distributed:
            training_args.update(processes=self.parallel.world,
                                 expert_parallel=self.parallel.expert_parallel)
        return {"training_args": training_args, "model": config,
                "dataset": self.train_dataset.fingerprint()}

    def _check_same_run(self, ckpt, record):
        now = self._signature
        problems = []
        saved_args = record.get("training_args", {})
        for key, value in now["training_args"].items():
            if saved_args.get(key) != value:
                problems.append(f"{self._name(key)} is {saved_args.get(key)!r} there, "
                                f"{value!r} now")
        saved_model = record.get("model", {})
        for key in sorted(set(now["model"]) | set(saved_model)):
            if saved_model.get(key) != now["model"].get(key):
                problems.append(f"model config {key} is {saved_model.get(key)!r} there, "
                                f"{now['model'].get(key)!r} now")
        if record.get("dataset") != now["dataset"]:
            problems.append("the training data differs from the data it was trained on")
        if problems:
            raise TrainingError(f"cannot resume {ckpt}: it is from a different configuration ("
                                + "; ".join(problems[:3]) + ")")

    def _restore(self, ckpt, record):
        try:
            loaded = type(self.model).from_pretrained(ckpt)
            state = genesis.load(os.path.join(ckpt, STATE_FILE))
        except (OSError, ValueError, RuntimeError) as exc:
            raise TrainingError(f"cannot resume from {ckpt}: {exc}") from None
        self.parallel.load_model_state(self.model, loaded.state_dict())
        self.parallel.load_optimizer_state(self.optimizer, state["optimizer"])
        self.lr_scheduler.load_state_dict(state["scheduler"])
        self.batches.load_state_dict(state["sampler"])
        genesis.set_rng_state(state["rng"])
        self.state.global_step = int(state["step"])
        self.state.last_checkpoint_step = self.state.global_step
        self._say(f"resumed from {ckpt} at step {self.state.global_step}")
        before = record.get("training_args", {}).get("max_steps")
        if before is not None and before != self.args.max_steps:
            self._say(f"note: {self._name('max_steps')} changed from {before} to "
                      f"{self.args.max_steps}: the learning-rate schedule now decays to step "
                      f"{self.args.max_steps} (an uninterrupted run of that length would differ)")

    # ------------------------------------------------------------------ the loop
    def _loop(self):
        a, s, model, par = self.args, self.state, self.model, self.parallel
        self._timed = [0, 0.0]
        model.train()
        with _StopSignals(self, enabled=a.save_on_interrupt) as stop:
            while s.global_step < a.max_steps and not stop.signum:
                s.current_step = s.global_step + 1
                inputs, labels = self.batches.next_batch()
                tokens = inputs.size
                inputs, labels = par.local_rows(inputs), par.local_rows(labels)
                t0 = time.perf_counter()
                with genesis.autocast(genesis.device(a.device).type, dtype=genesis.bfloat16,
                                      enabled=a.bf16):
                    out = self.wrapped(genesis.tensor(inputs, device=a.device),
                                       labels=genesis.tensor(labels, device=a.device),
                                       return_dict=True, output_router_logits=True)
                self.optimizer.zero_grad()
                out.loss.backward()
                grad_norm = par.clip_grad_norm_(model.parameters(), a.max_grad_norm) \
                    if a.max_grad_norm else None
                self.optimizer.step()
                par.reduce_router_statistics(model)
                births = model.update_router_state(self.optimizer)
                self.lr_scheduler.step()
                s.global_step += 1
                elapsed = time.perf_counter() - t0
                loss = par.mean(out.loss.item())
                if not math.isfinite(loss):
                    raise TrainingError(
                        f"the loss became {loss} at step {s.global_step}; lower "
                        f"{self._name('learning_rate')} or set {self._name('max_grad_norm')} "
                        f"({self._last_checkpoint_phrase()})")
                self._timed[0] += tokens
                self._timed[1] += elapsed
                s.train_loss = loss
                self._log(_step_record(s.global_step, out, loss,
                                       self.lr_scheduler.get_last_lr()[0], tokens / elapsed,
                                       grad_norm, births))
                last = s.global_step == a.max_steps
                if a.eval_steps and self.eval_dataset is not None and \
                        (s.global_step % a.eval_steps == 0 or last):
                    metrics = self.evaluate()
                    s.eval_loss = metrics["eval_loss"]
                    self._log({"step": s.global_step, "val_loss": round(s.eval_loss, 6)})
                    self._call("on_evaluate", metrics)
                if last or (a.save_steps and s.global_step % a.save_steps == 0):
                    self._save_checkpoint()
                if par.distributed and par.any(stop.signum) and not stop.signum:
                    stop.signum = signal.SIGINT       # another rank was interrupted
            if stop.signum:
                s.interrupted_by = stop.signum
                if s.last_checkpoint_step != s.global_step:
                    self._save_checkpoint()
                self._say(f"stopped by {signal.Signals(stop.signum).name}: checkpoint saved at "
                          f"step {s.global_step}; continue with {self._name('resume')}")

    def _log(self, record):
        self._metrics.write(record)
        self._call("on_log", record)

    def _save_checkpoint(self):
        """Write the run's checkpoint (model, tokenizer, optimizer/scheduler/sampler/RNG state,
        options), verify it and swap it in for the previous one."""
        s = self.state
        model, optimizer_state = self.parallel.full_model(self.model), \
            self.parallel.optimizer_state(self.optimizer)
        if not self.parallel.is_main:
            s.last_checkpoint_step = s.global_step
            return None
        self._metrics.sync()
        record = dict(self._signature, global_step=s.global_step,
                      metadata=self.run_metadata,
                      training_args=dict(self.args.to_dict(), **self._signature["training_args"]))
        state = {"optimizer": optimizer_state,
                 "scheduler": self.lr_scheduler.state_dict(), "rng": genesis.get_rng_state(),
                 "sampler": self.batches.state_dict(), "step": s.global_step}

        def write(folder):
            digests = dict(model.save_pretrained(folder))
            if self.tokenizer is not None:
                digests.update(self.tokenizer.save_pretrained(folder))
            digests[STATE_FILE] = atomic_write(os.path.join(folder, STATE_FILE),
                                               lambda f: genesis.save(state, f))
            digests[ARGS_FILE] = atomic_write(os.path.join(folder, ARGS_FILE),
                                              json.dumps(record, indent=2, sort_keys=True))
            return digests
        try:
            path = save_checkpoint(self.args.output_dir, write)
        except CheckpointSaveError as exc:
            raise CheckpointSaveError(f"step {s.global_step}: {exc}; "
                                      f"{self._last_checkpoint_phrase()}") from None
        s.last_checkpoint_step = s.global_step
        self._call("on_save", path)
        return path

    # ------------------------------------------------------------------ helpers
    def _last_checkpoint_phrase(self):
        step = self.state.last_checkpoint_step
        return "no checkpoint was saved yet" if step is None else \
            f"the checkpoint of step {step} is intact"

    def _tokens_per_s(self):
        tokens, seconds = getattr(self, "_timed", (0, 0.0))
        return tokens / seconds if seconds else None

    def _call(self, event, *extra):
        if not self.parallel.is_main:
            return
        for cb in self.callbacks:
            getattr(cb, event)(self.args, self.state, *extra)

    @staticmethod
    def _say(line):
        """A note on stderr, above the progress bar."""
        from tqdm import tqdm
        tqdm.write(line, file=sys.stderr)

    @staticmethod
    def _say_now(line):
        """A note on stderr from a signal handler: one raw write (buffered streams are not
        reentrant, and the handler may interrupt a write to them)."""
        os.write(2, ("\n" + line + "\n").encode("utf-8", errors="replace"))


def steps_problem(ckpt, step, max_steps, name):
    """Why resuming the checkpoint ``ckpt`` of ``step`` to ``max_steps`` has nothing to do, or
    None when it has."""
    if max_steps == step:
        return f"the run in {ckpt} already reached step {step}; pass {name} above {step} to " \
               "train further"
    if max_steps < step:
        return f"{name} {max_steps} is below the checkpoint's step {step} ({ckpt}); pass " \
               f"{name} above {step} to train further"
    return None


def _step_record(step, out, loss, lr, tokens_per_s, grad_norm, births):
    """The metrics record of one training step."""
    record = {"step": step, "loss": round(loss, 6), "lr": lr,
              "tokens_per_s": round(tokens_per_s, 1)}
    if grad_norm is not None:
        record["grad_norm"] = round(float(grad_norm.item()), 5)
    stats = out.router_stats or {}
    aux = out.aux_loss
    if aux is not None:
        record["aux_loss"] = round(float(aux.item()) if hasattr(aux, "item") else float(aux), 6)
    if stats.get("active_experts_per_token"):
        record["active_experts"] = round(float(np.mean(stats["active_experts_per_token"])), 4)
    if stats.get("expert_load") is not None:
        record["expert_load"] = [[round(float(v), 5) for v in np.asarray(layer).reshape(-1)]
                                 for layer in stats["expert_load"]]
    for name in ("energy", "ssi", "overflow_fraction", "load_cv", "experts_alive"):
        if name in stats:
            record[name] = [v if isinstance(v, int) else round(float(v), 6)
                            for v in stats[name]]
    if births:
        record["mitosis"] = births
    return record


class _StopSignals:
    """SIGINT and SIGTERM ask the loop to stop after the current step and save; the message
    says so at once. A second signal stops at once without saving (KeyboardInterrupt)."""

    def __init__(self, trainer, enabled=True):
        self.trainer = trainer
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        t = self.trainer
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            again = "press Ctrl-C again" if signum == signal.SIGINT else "send it again"
            t._say_now(f"{name} received: saving a checkpoint at the end of step "
                   f"{t.state.current_step}, then stopping ({again} to stop at once without "
                   "saving)")
            return
        t._say_now(f"{name} again: stopping now WITHOUT saving; "
               f"{t._last_checkpoint_phrase()}")
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
