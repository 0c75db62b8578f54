"""``genesis sparsify``: convert a dense checkpoint into an MoE one and measure what it costs.

Steps, each timed: held-out loss of the dense model; ``inject_router`` on calibration tokens;
held-out loss of the converted model; a short fine-tune of the routers only (``--router-steps``)
and, with ``--tune-steps``, of every parameter; held-out loss after each. Writes the final
model (loadable with ``from_pretrained`` and ``genesis generate``), its tokenizer and a
``sparsify.json`` with every figure. Peak memory is the process's maximum resident set size.
"""
import json
import os
import resource
import time

import numpy as np

from ..train.data import CLIError, load_corpus
from .common import checkpoint_tokenizer, load_checkpoint

__all__ = ["add_arguments", "run", "main"]


def add_arguments(p):
    """The flags of ``genesis sparsify``."""
    from ..models.transformers.sparsify import SPARSIFY_MODES
    from ..train.command import number
    positive_int = number(int, 1)
    p.add_argument("--checkpoint", required=True, help="a dense Llama/Qwen2 checkpoint folder")
    p.add_argument("--mode", choices=SPARSIFY_MODES, default="genesis")
    p.add_argument("--experts", type=positive_int, default=8)
    p.add_argument("--top-k", type=positive_int, default=2)
    p.add_argument("--calibration", help="calibration text file (default: the Python "
                   "documentation shipped with CPython)")
    p.add_argument("--calibration-tokens", type=positive_int, default=4096,
                   help="tokens used to cluster neurons and fit routers")
    p.add_argument("--eval-tokens", type=positive_int, default=2048,
                   help="held-out tokens (taken from the end of the text, never tuned on)")
    p.add_argument("--seq-len", type=positive_int, default=128)
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--router-steps", type=number(int, 0), default=20,
                   help="fine-tune steps of the routers only (0: none)")
    p.add_argument("--router-lr", type=number(float, 0, low_open=True), default=1e-3)
    p.add_argument("--tune-steps", type=number(int, 0), default=0,
                   help="then fine-tune steps of every parameter (0: none)")
    p.add_argument("--tune-lr", type=number(float, 0, low_open=True), default=5e-5)
    p.add_argument("--tokenizer", help="tokenizer.json (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the converted checkpoint")


def _peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _windows(tokens, seq_len):
    count = len(tokens) // seq_len
    return tokens[:count * seq_len].reshape(count, seq_len)


def _split(tokens, args):
    """(calibration tokens, held-out windows): held-out from the end, calibration before it."""
    need = args.eval_tokens + args.seq_len
    if len(tokens) < need + args.seq_len:
        raise CLIError(f"the calibration text has {len(tokens)} tokens; it needs at least "
                       f"{need + args.seq_len} (--eval-tokens {args.eval_tokens} held out plus "
                       f"one --seq-len {args.seq_len} window to calibrate on)")
    held = _windows(tokens[-args.eval_tokens:], args.seq_len)
    if len(held) == 0:
        raise CLIError(f"--eval-tokens {args.eval_tokens} is shorter than --seq-len "
                       f"{args.seq_len}")
    calib = tokens[:-args.eval_tokens][:args.calibration_tokens]
    return calib, held


def evaluate(model, windows, batch_size):
    """(mean next-token cross-entropy without router losses, mean active experts per token or
    None) over fixed windows."""
    import genesis
    from ..models.transformers.modeling_moe import causal_lm_loss
    model.eval()
    total, count, active = 0.0, 0, []
    with genesis.no_grad():
        for i in range(0, len(windows), batch_size):
            chunk = genesis.tensor(windows[i:i + batch_size])
            out = model(chunk, return_dict=True,
                        output_router_logits=bool(model.config.num_local_experts))
            total += causal_lm_loss(out.logits, chunk, model.config.vocab_size).item() * \
                len(chunk)
            count += len(chunk)
            if out.router_stats:
                active.append(float(np.mean(out.router_stats["active_experts_per_token"])))
    return total / count, (float(np.mean(active)) if active else None)


def tune(model, params, tokens, args, steps, lr):
    """``steps`` AdamW steps on random calibration windows, updating ``params`` only (and,
    after each step, the routers' own state, as in training)."""
    import genesis
    from ..nn.utils import clip_grad_norm_
    from ..optim import AdamW
    from ..train.data import TokenDataset, WindowBatches
    trainable = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    optimizer = AdamW(params, lr=lr, weight_decay=0.0)
    sampler = WindowBatches(TokenDataset(tokens, args.seq_len), args.batch_size, args.seed)
    model.train()
    losses = []
    for _ in range(steps):
        inputs, labels = sampler.next_batch()
        loss, _ = model(genesis.tensor(inputs), labels=genesis.tensor(labels))
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(params, 1.0)
        optimizer.step()
        model.update_router_state(optimizer)
        losses.append(float(loss.item()))
        if not np.isfinite(losses[-1]):
            raise CLIError(f"the fine-tune loss became {losses[-1]}; lower the learning rate")
    for p in model.parameters():
        p.requires_grad_(True)
    return losses


def _router_params(model):
    return [layer.mlp.gate.weight for layer in model.model.layers]


def run(args, log=print):
    """Run ``genesis sparsify``; returns the summary dict written to ``sparsify.json``."""
    from ..models.transformers import inject_router
    start = time.perf_counter()
    model = load_checkpoint(args.checkpoint)
    tokenizer = checkpoint_tokenizer(args.tokenizer, args.checkpoint, model.config.vocab_size)
    text, source = load_corpus(args.calibration)
    calib, held = _split(np.asarray(tokenizer.encode(text), dtype=np.int64), args)
    summary = {"checkpoint": args.checkpoint, "mode": args.mode, "experts": args.experts,
               "top_k": args.top_k, "calibration": source, "calibration_tokens": len(calib),
               "eval_tokens": int(held.size), "seq_len": args.seq_len, "phases": []}

    def phase(name, seconds, loss=None, active=None, **extra):
        record = {"phase": name, "seconds": round(seconds, 2),
                  "peak_rss_bytes": _peak_rss_bytes(), **extra}
        if loss is not None:
            record["heldout_loss"] = round(loss, 4)
        if active is not None:
            record["active_experts_per_token"] = round(active, 3)
        summary["phases"].append(record)
        text = f"{name:<16s} " + (f"held-out loss {loss:.4f}" if loss is not None else "")
        text += f"  active experts/token {active:.2f}" if active is not None else ""
        text += f"  [{seconds:.1f} s, peak RSS {record['peak_rss_bytes'] / 1e9:.2f} GB]"
        log(text)

    t = time.perf_counter()
    loss, _ = evaluate(model, held, args.batch_size)
    phase("dense", time.perf_counter() - t, loss)
    t = time.perf_counter()
    try:
        inject_router(model, args.mode, args.experts, args.top_k,
                      _windows(calib, args.seq_len), seed=args.seed)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    phase("convert", time.perf_counter() - t)
    t = time.perf_counter()
    loss, active = evaluate(model, held, args.batch_size)
    phase("converted", time.perf_counter() - t, loss, active)
    if args.router_steps:
        t = time.perf_counter()
        losses = tune(model, _router_params(model), calib, args, args.router_steps,
                      args.router_lr)
        loss, active = evaluate(model, held, args.batch_size)
        phase("routers tuned", time.perf_counter() - t, loss, active, steps=args.router_steps,
              lr=args.router_lr, last_train_loss=round(losses[-1], 4))
    if args.tune_steps:
        t = time.perf_counter()
        losses = tune(model, list(model.parameters()), calib, args, args.tune_steps,
                      args.tune_lr)
        loss, active = evaluate(model, held, args.batch_size)
        phase("all tuned", time.perf_counter() - t, loss, active, steps=args.tune_steps,
              lr=args.tune_lr, last_train_loss=round(losses[-1], 4))
    model.eval()
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    summary["total_seconds"] = round(time.perf_counter() - start, 2)
    summary["peak_rss_bytes"] = _peak_rss_bytes()
    with open(os.path.join(args.out, "sparsify.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    log(f"wrote {args.out} ({args.mode}, {args.experts} experts top-{args.top_k}); total "
        f"{summary['total_seconds']:.1f} s, peak RSS {summary['peak_rss_bytes'] / 1e9:.2f} GB")
    return summary


def main(args):
    """Run ``genesis sparsify``; returns the exit code."""
    run(args)
    return 0
