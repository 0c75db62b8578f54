"""Router modes compared on one short training run each: mixtral, deepseek and genesis.

Every mode trains the same small byte-level MoE language model (same attention, embeddings,
seed, data order, optimizer and schedule) on the corpus embedded in CPython
(``genesis.train.data.default_corpus_text``), through the same dispatch path
(``genesis.moe_experts``); only the MoE layers differ, at the same expert parameter budget:

* ``mixtral``: 4 routed experts of width I, softmax top-2 renormalised, Switch aux loss.
* ``deepseek``: 7 fine-grained routed experts of width I/2 (top-3) + 1 always-on shared expert
  of width I/2, softmax top-k (not renormalised), sequence-level aux loss.
* ``genesis``: the energy-aware router (v2) with 4 experts of width I (``--genesis-experts``;
  ``--genesis-new-experts`` free slots for mitosis, 0 by default so the parameter budget equals
  mixtral's), adaptive 1..2 experts per token, entropy energy as the only router loss.

Printed per mode and seed: final validation loss (nats/token), training tokens/s, mean routed
experts per token, the FFN width each token activates, the load coefficient of variation and
the smallest expert load as a fraction of its fair share (on the validation windows, eval
mode, pooled over batches, CV averaged and minimum taken over MoE layers), joules/token from
``genesis.energy`` when a counter is readable (never estimated), and every mitosis; with
several seeds, mean +- std over them.

    PYTHONPATH=. python benchmarks/router_modes.py [--steps 300 --seeds 0,1 --eta-cost 0.05]

On a machine shared with other jobs, ``OMP_NUM_THREADS=1`` keeps BLAS threads from fighting
over the cores (several times faster there); tokens/s remain noisy and are for orientation.
"""
import argparse
import os
import time

import numpy as np

import genesis
from genesis.energy import EnergyWindow, available_meter
from genesis.models.transformers import ByteTokenizer, MoEConfig, MoEForCausalLM
from genesis.optim import AdamW
from genesis.optim.lr_scheduler import get_cosine_schedule_with_warmup
from genesis.train.data import (TokenDataset, WindowBatches, default_corpus_text, eval_windows,
                                split_tokens)
from genesis.train.trainer import evaluate

MODES = ("mixtral", "deepseek", "genesis")


def mode_config(mode, args):
    """The MoEConfig of one router mode (shared trunk, mode-specific MoE layers)."""
    inter = args.intermediate
    base = dict(vocab_size=ByteTokenizer.vocab_size, hidden_size=args.hidden,
                intermediate_size=2 * inter, num_hidden_layers=args.layers,
                num_attention_heads=args.heads, num_key_value_heads=args.heads,
                max_position_embeddings=max(256, args.seq), rms_norm_eps=1e-5,
                tie_word_embeddings=True, router_aux_loss_coef=args.aux_coef)
    if mode == "mixtral":
        return MoEConfig(num_local_experts=4, num_experts_per_tok=2, moe_intermediate_size=inter,
                         norm_topk_prob=True, **base)
    if mode == "deepseek":
        return MoEConfig(num_local_experts=7, num_experts_per_tok=3,
                         moe_intermediate_size=inter // 2, num_shared_experts=1,
                         norm_topk_prob=False, seq_aux=True, **base)
    return MoEConfig(num_local_experts=args.genesis_experts, num_experts_per_tok=2,
                     moe_intermediate_size=inter, router_type="genesis",
                     genesis_max_new_experts=args.genesis_new_experts,
                     genesis_mitosis_interval=args.mitosis_interval,
                     genesis_eta_cost=args.eta_cost, genesis_threshold=args.threshold,
                     genesis_renormalize=not args.raw_weights, **base)


def routing_on(model, windows, batch_size):
    """(routed experts per token, load CV, smallest load / fair share) on the validation
    windows in eval mode: loads pooled over batches, CV averaged and minimum taken over
    layers, both over each layer's live experts (``routing_metrics`` per batch)."""
    model.eval()
    experts, loads, alive = [], None, None
    with genesis.no_grad():
        for i in range(0, len(windows), batch_size):
            stats = model(genesis.tensor(windows[i:i + batch_size]),
                          output_router_logits=True).router_stats
            experts.extend(stats["active_experts_per_token"])
            batch = np.stack(stats["expert_load"])
            loads = batch if loads is None else loads + batch
            alive = stats["experts_alive"]
    model.train()
    cvs, shares = [], []
    for load, live in zip(loads, alive):      # born experts fill the first free slots
        live_load = load[:live] / load[:live].sum()
        cvs.append(float(np.std(live_load) / np.mean(live_load)))
        shares.append(float(live_load.min() * live))
    return float(np.mean(experts)), float(np.mean(cvs)), float(np.min(shares))


def run_mode(mode, args, seed, train_tokens, val_windows, meter):
    """Train one mode with one seed; returns its row of results."""
    config = mode_config(mode, args)
    genesis.manual_seed(seed)
    model = MoEForCausalLM(config)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = AdamW([{"params": decay, "weight_decay": 0.1},
                       {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    scheduler = get_cosine_schedule_with_warmup(optimizer, max(1, args.steps // 20), args.steps,
                                                min_lr_ratio=0.1)
    sampler = WindowBatches(TokenDataset(train_tokens, args.seq), args.batch, seed)
    births, seconds = [], 0.0
    model.train()
    with EnergyWindow(meter) as energy:
        for step in range(args.steps):
            inputs, labels = sampler.next_batch()
            start = time.perf_counter()
            loss, _ = model(genesis.tensor(inputs), labels=genesis.tensor(labels))
            optimizer.zero_grad()
            loss.backward()
            genesis.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            births += [dict(b, step=step + 1) for b in model.update_router_state(optimizer)]
            scheduler.step()
            seconds += time.perf_counter() - start
    tokens = args.steps * args.batch * args.seq
    active, load_cv, min_share = routing_on(model, val_windows, args.batch)
    width = active * config.moe_intermediate_size + (config.shared_expert_intermediate_size or 0)
    return {"mode": mode, "seed": seed, "params": model.num_parameters(),
            "val_loss": evaluate(model, val_windows, args.batch), "train_loss": loss.item(),
            "tokens_per_s": tokens / seconds, "experts": active, "ffn_width": width,
            "load_cv": load_cv, "min_share": min_share,
            "joules_per_token": None if energy.joules is None else energy.joules / tokens,
            "births": births}


def main():
    """Parse arguments, train every mode and print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--intermediate", type=int, default=256,
                        help="width I of a mixtral/genesis expert")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--aux-coef", type=float, default=0.01)
    parser.add_argument("--mitosis-interval", type=int, default=50)
    parser.add_argument("--eval-windows", type=int, default=32)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--genesis-experts", type=int, default=4)
    parser.add_argument("--genesis-new-experts", type=int, default=0,
                        help="free slots for mitosis (adds their parameters)")
    parser.add_argument("--eta-cost", type=float, default=0.05)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--raw-weights", action="store_true",
                        help="genesis_renormalize=False (ablation)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {MODES}")
    tokens = np.asarray(ByteTokenizer().encode(default_corpus_text()), dtype=np.int64)
    train_tokens, val_tokens = split_tokens(tokens, 0.05, args.seq)
    val_windows = eval_windows(val_tokens, args.seq, args.eval_windows)
    meter = available_meter("cpu")
    blas = os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS") or "default"
    print(f"genesis {genesis.__version__} on numpy {np.__version__} ({os.cpu_count()} CPUs, BLAS "
          f"threads {blas}); energy meter: {meter.name if meter else 'unavailable'}")
    print(f"{args.steps} steps x {args.batch} x {args.seq} byte tokens per mode, hidden "
          f"{args.hidden}, {args.layers} layers, expert width I={args.intermediate}, seeds "
          f"{seeds}; genesis eta_cost {args.eta_cost}, threshold {args.threshold}, "
          f"{'raw' if args.raw_weights else 'renormalised'} weights; {len(val_windows)} "
          "validation windows\n")
    header = (f"{'mode':<9} {'seed':>4} {'params':>8} {'val loss':>9} {'tokens/s':>9} "
              f"{'experts/tok':>12} {'FFN width/tok':>14} {'load CV':>8} {'min share':>9} "
              f"{'J/token':>12}")
    print(header)
    rows = {mode: [] for mode in modes}
    for seed in seeds:
        for mode in modes:
            row = run_mode(mode, args, seed, train_tokens, val_windows, meter)
            rows[mode].append(row)
            joules = "unavailable" if row["joules_per_token"] is None else \
                f"{row['joules_per_token']:.3e}"
            print(f"{row['mode']:<9} {seed:>4} {row['params'] / 1e6:>7.2f}M "
                  f"{row['val_loss']:>9.4f} {row['tokens_per_s']:>9.0f} {row['experts']:>12.2f} "
                  f"{row['ffn_width']:>14.0f} {row['load_cv']:>8.2f} {row['min_share']:>9.2f} "
                  f"{joules:>12}", flush=True)
            for birth in row["births"]:
                print(f"{'':<14} mitosis at step {birth['step']}: layer {birth['layer']} "
                      f"expert {birth['parent']} -> slot {birth['child']}")
    if len(seeds) > 1:
        print(f"\nmean +- std over {len(seeds)} seeds")
        for mode in modes:
            cells = []
            for key, fmt in (("val_loss", ".4f"), ("tokens_per_s", ".0f"), ("experts", ".2f"),
                             ("load_cv", ".2f"), ("min_share", ".2f")):
                values = np.array([r[key] for r in rows[mode]])
                cells.append(f"{key} {values.mean():{fmt}} +- {values.std():{fmt}}")
            print(f"{mode:<9} " + ", ".join(cells))
    print("\nexperts/tok: routed experts per token (deepseek adds its always-on shared expert "
          "to the FFN width); FFN width/tok = experts/tok x expert width (+ shared width); load "
          "CV: std/mean of the live experts' shares of routed pairs (0 = balanced); min share: "
          "the least-loaded expert's share over its fair share (1 = fair).")


if __name__ == "__main__":
    main()
