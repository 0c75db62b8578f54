"""The training loop behind ``genesis train``: progress, evaluation, checkpoints and resume."""
import json
import math
import os
import shutil
import signal
import time

import numpy as np

import genesis

from .data import (BatchSampler, CLIError, eval_windows, load_corpus, load_tokenizer,
                   split_tokens)

# A few-million-parameter MoE that learns bytes of English on two CPU cores in minutes.
DEFAULT_MODEL = dict(hidden_size=192, intermediate_size=384, moe_intermediate_size=384,
                     num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=6,
                     num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=512,
                     rope_theta=10000.0, rms_norm_eps=1e-5, router_aux_loss_coef=0.01,
                     tie_word_embeddings=True, model_type="genesis_moe")

CHECKPOINT = "checkpoint"
STATE_FILE = "training_state.safetensors"
ARGS_FILE = "train_args.json"
METRICS_FILE = "metrics.jsonl"
# Arguments that must match for --resume to continue the same run.
RUN_DEFINING = ("preset", "router", "config", "data", "tokenizer", "batch_size", "seq_len", "lr",
                "min_lr_ratio", "warmup_steps", "weight_decay", "grad_clip", "seed", "steps")


def build_config(args, vocab_size):
    """The MoEConfig from ``--config``, ``--preset`` or the default, with ``--router`` applied."""
    from ..models.transformers import MoEConfig, get_moe_config, list_moe_configs
    if args.config:
        if not os.path.isfile(args.config):
            raise CLIError(f"config file not found: {args.config}")
        try:
            config = MoEConfig.from_pretrained(args.config)
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            raise CLIError(f"invalid config {args.config}: {exc}") from None
    elif args.preset:
        if args.preset not in list_moe_configs():
            raise CLIError(f"unknown preset {args.preset!r}; choose one of "
                           f"{', '.join(list_moe_configs())}")
        config = get_moe_config(args.preset)
    else:
        config = MoEConfig(vocab_size=vocab_size, **DEFAULT_MODEL)
    if config.vocab_size < vocab_size:
        raise CLIError(f"the model's vocab_size {config.vocab_size} is smaller than the "
                       f"tokenizer's {vocab_size}")
    if args.router:
        config.router_type = args.router
    try:
        config.validate()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.seq_len > config.max_position_embeddings:
        raise CLIError(f"--seq-len {args.seq_len} is longer than the model's "
                       f"max_position_embeddings {config.max_position_embeddings}")
    return config


def _atomic_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(out_dir, model, optimizer, scheduler, sampler, tokenizer, step, run_args):
    """Write the checkpoint into a fresh folder, then swap it in: a crash never loses the last."""
    final = os.path.join(out_dir, CHECKPOINT)
    tmp, old = final + ".tmp", final + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    model.save_pretrained(tmp)
    tokenizer.save(tmp)
    genesis.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                  "rng": genesis.get_rng_state(), "sampler": sampler.state_dict(), "step": step},
                 os.path.join(tmp, STATE_FILE))
    _atomic_json(os.path.join(tmp, ARGS_FILE), run_args)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(final):
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(out_dir):
    """The newest complete checkpoint folder in ``out_dir`` (or its pre-swap copy)."""
    for name in (CHECKPOINT, CHECKPOINT + ".old"):
        path = os.path.join(out_dir, name)
        if os.path.isfile(os.path.join(path, STATE_FILE)):
            return path
    return None


class MetricsLog:
    """Append-only JSONL metrics; on resume, entries after the checkpoint step are dropped."""

    def __init__(self, path, resume_step=None):
        self.path = path
        if resume_step is not None and os.path.isfile(path):
            with open(path) as f:
                kept = [line for line in f if line.strip()
                        and json.loads(line).get("step", 0) <= resume_step]
            with open(path + ".tmp", "w") as f:
                f.writelines(kept)
            os.replace(path + ".tmp", path)
        elif resume_step is None and os.path.exists(path):
            os.remove(path)

    def write(self, record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def evaluate(model, windows, batch_size):
    """Mean next-token loss over fixed validation windows."""
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with genesis.no_grad():
        for i in range(0, len(windows), batch_size):
            chunk = genesis.tensor(windows[i:i + batch_size], device=device)
            loss, _ = model(chunk, labels=chunk)
            total += loss.item() * len(chunk)
            count += len(chunk)
    model.train()
    return total / count


_GENESIS_METRICS = ("energy", "ssi", "overflow_fraction", "load_cv", "experts_alive")


def _genesis_metrics(out):
    """Per-layer Genesis router metrics of a model output (empty for top-k routers)."""
    stats = out.router_stats or {}
    record = {}
    for name in _GENESIS_METRICS:
        if name in stats:
            record[name] = [v if isinstance(v, int) else round(float(v), 6) for v in stats[name]]
    return record


def _router_summary(out):
    """Aux loss, mean active experts per token and per-layer expert load of a model output
    (the load lists are ``config.num_expert_slots`` wide: zeros for unborn Genesis slots)."""
    stats = out.router_stats or {}
    aux = out.aux_loss
    aux = float(aux.item()) if hasattr(aux, "item") else (float(aux) if aux is not None else None)
    per_layer = stats.get("active_experts_per_token")
    active = float(np.mean(per_layer)) if per_layer else None
    load = stats.get("expert_load")
    if load is not None:
        load = [[round(float(v), 5) for v in np.asarray(layer).reshape(-1)] for layer in load]
    return aux, (float(active) if active is not None else None), load


class _Interrupt:
    """Turns the first Ctrl-C into a flag so the loop can checkpoint and stop cleanly."""

    def __init__(self):
        self.hit = False
        self._prev = None

    def __enter__(self):
        self._prev = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._prev)
        return False


def train(args, log=print):
    """Run ``genesis train`` with parsed ``args``; returns a summary dict."""
    from ..models.transformers import MoEForCausalLM
    from ..optim import AdamW
    from ..optim.lr_scheduler import get_cosine_schedule_with_warmup
    from ..nn.utils import clip_grad_norm_

    out_dir = args.out
    os.makedirs(out_dir, exist_ok=True)
    resume_from = None
    if args.resume:
        resume_from = find_checkpoint(out_dir)
        if resume_from is None:
            raise CLIError(f"--resume: no checkpoint in {out_dir}")
    tokenizer = load_tokenizer(args.tokenizer, resume_from)
    text, source = load_corpus(args.data)
    tokens = tokenizer.encode(text)
    if len(tokens) == 0:
        raise CLIError(f"the corpus {source} is empty")
    config = build_config(args, tokenizer.vocab_size)
    train_tokens, val_tokens = split_tokens(tokens, args.val_fraction, args.seq_len)
    run_args = {k: getattr(args, k) for k in RUN_DEFINING}
    run_args["model"] = config.to_dict()

    genesis.manual_seed(args.seed)
    model = MoEForCausalLM(config)
    if args.device != "cpu":
        model.to(args.device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = AdamW([{"params": decay, "weight_decay": args.weight_decay},
                       {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, args.steps // 20)
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, args.steps,
                                                min_lr_ratio=args.min_lr_ratio)
    sampler = BatchSampler(train_tokens, args.batch_size, args.seq_len, args.seed)
    step = 0
    if resume_from:
        step = _restore(resume_from, run_args, model, optimizer, scheduler, sampler)
        log(f"resumed from {resume_from} at step {step}")
    metrics = MetricsLog(os.path.join(out_dir, METRICS_FILE), step if resume_from else None)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f}M parameters, {config.num_hidden_layers} layers, "
        f"{config.num_local_experts} experts top-{config.num_experts_per_tok}, router "
        f"{config.router_type}; data: {source}, {len(train_tokens):,} train / "
        f"{len(val_tokens):,} val tokens ({tokenizer.name} tokenizer)")
    val_windows = eval_windows(val_tokens, args.seq_len, args.eval_windows)
    summary = _loop(args, model, optimizer, scheduler, sampler, tokenizer, metrics, val_windows,
                    step, run_args, clip_grad_norm_, log)
    summary["parameters"] = n_params
    _finish(args, model, tokenizer, summary, log)
    return summary


def _restore(path, run_args, model, optimizer, scheduler, sampler):
    with open(os.path.join(path, ARGS_FILE)) as f:
        saved = json.load(f)
    diffs = [k for k in run_args if k != "steps" and saved.get(k) != run_args[k]]
    if diffs:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {run_args[k]!r}"
                           for k in diffs if k != "model")
        raise CLIError(f"--resume: the checkpoint in {path} is from a different configuration "
                       f"({detail or 'model config differs'})")
    from ..models.transformers import MoEForCausalLM
    loaded = MoEForCausalLM.from_pretrained(path)
    model.load_state_dict(loaded.state_dict())
    state = genesis.load(os.path.join(path, STATE_FILE))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.load_state_dict(state["sampler"])
    genesis.set_rng_state(state["rng"])
    return int(state["step"])


def _autocast(args):
    """The mixed-precision region of ``--dtype``: bfloat16 autocast, or disabled for fp32."""
    return genesis.autocast(genesis.device(args.device).type, dtype=genesis.bfloat16,
                            enabled=getattr(args, "dtype", "fp32") == "bf16")


def _loop(args, model, optimizer, scheduler, sampler, tokenizer, metrics, val_windows, step,
          run_args, clip_grad_norm_, log):
    from tqdm import tqdm
    tokens_per_step = args.batch_size * args.seq_len
    summary = {"val_loss": None, "train_loss": None, "tokens_per_s": None, "interrupted": False}
    bar = tqdm(total=args.steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
               disable=args.quiet)
    timed_tokens, timed_seconds = 0, 0.0
    model.train()
    with _Interrupt() as interrupt:
        while step < args.steps and not interrupt.hit:
            inputs, labels = sampler.next_batch()
            t0 = time.perf_counter()
            with _autocast(args):
                out = model(genesis.tensor(inputs, device=args.device),
                            labels=genesis.tensor(labels, device=args.device),
                            return_dict=True, output_router_logits=True)
            optimizer.zero_grad()
            out.loss.backward()
            grad_norm = clip_grad_norm_(model.parameters(), args.grad_clip) if args.grad_clip \
                else None
            optimizer.step()
            births = model.update_router_state(optimizer)   # routers' post-step state
            scheduler.step()
            step += 1
            elapsed = time.perf_counter() - t0
            timed_tokens += tokens_per_step
            timed_seconds += elapsed
            loss = float(out.loss.item())
            if not math.isfinite(loss):
                raise CLIError(f"the loss became {loss} at step {step}; lower --lr or set "
                               "--grad-clip")
            aux, active, load = _router_summary(out)
            record = {"step": step, "loss": round(loss, 6), "lr": scheduler.get_last_lr()[0],
                      "tokens_per_s": round(tokens_per_step / elapsed, 1)}
            if grad_norm is not None:
                record["grad_norm"] = round(float(grad_norm.item()), 5)
            if aux is not None:
                record["aux_loss"] = round(aux, 6)
            if active is not None:
                record["active_experts"] = round(active, 4)
            if load is not None:
                record["expert_load"] = load
            record.update(_genesis_metrics(out))
            if births:
                record["mitosis"] = births
            metrics.write(record)
            summary["train_loss"] = loss
            postfix = {"loss": f"{loss:.3f}", "tok/s": f"{timed_tokens / timed_seconds:.0f}"}
            if aux is not None:
                postfix["aux"] = f"{aux:.3f}"
            if active is not None:
                postfix["experts"] = f"{active:.2f}"
            bar.set_postfix(postfix)
            bar.update(1)
            last = step == args.steps
            if args.eval_every and (step % args.eval_every == 0 or last):
                val = evaluate(model, val_windows, args.batch_size)
                summary["val_loss"] = val
                metrics.write({"step": step, "val_loss": round(val, 6)})
                bar.write(f"step {step}: train loss {loss:.4f}, val loss {val:.4f}")
            if last or (args.save_every and step % args.save_every == 0):
                save_checkpoint(args.out, model, optimizer, scheduler, sampler, tokenizer, step,
                                run_args)
        if interrupt.hit:
            save_checkpoint(args.out, model, optimizer, scheduler, sampler, tokenizer, step,
                            run_args)
            summary["interrupted"] = True
            bar.write(f"interrupted: checkpoint saved at step {step}; continue with --resume")
    bar.close()
    summary["step"] = step
    summary["tokens_per_s"] = timed_tokens / timed_seconds if timed_seconds else None
    return summary


def _finish(args, model, tokenizer, summary, log):
    from .plotting import plot_metrics
    for line in plot_metrics(os.path.join(args.out, METRICS_FILE), args.out):
        log(line)
    if summary["interrupted"] or not args.sample_tokens:
        return
    model.eval()
    prompt = args.sample_prompt
    ids = genesis.tensor(tokenizer.encode(prompt)[None, :], device=args.device)
    out = model.generate(ids, max_new_tokens=args.sample_tokens, do_sample=True, temperature=0.8,
                         top_k=50)
    sample = tokenizer.decode(out[0].tolist())
    summary["sample"] = sample
    log("sample:\n" + sample)
