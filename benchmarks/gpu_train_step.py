"""bf16 training step on one GPU: genesis vs HF transformers (PyTorch eager), same weights.

A moe-small-sized Mixtral model (hidden 768, 6 layers, 4 experts top-2, vocab 32000) is built
in genesis, saved, and loaded into ``transformers.MixtralForCausalLM`` so both start from the
same float32 weights. Each step runs forward under bf16 autocast, backward and AdamW. Prints the
first-step losses (they must agree to bf16 accuracy), median step time, tokens/s and, when
NVML's energy counter is readable, joules per token of the GPU in use.

    python benchmarks/gpu_train_step.py [--batch 8 --seq 1024 --steps 10] [--json out.json]
"""
import argparse
import json
import statistics
import tempfile
import time

import numpy as np

import genesis
from genesis.energy import available_meter
from genesis.models.transformers import MoEConfig, MoEForCausalLM, get_moe_config


def config(args):
    """moe-small's sizes in Mixtral form (the layout transformers' Mixtral loads)."""
    small = get_moe_config("moe-small")
    return MoEConfig(model_type="mixtral", vocab_size=small.vocab_size,
                     hidden_size=small.hidden_size, intermediate_size=small.moe_intermediate_size,
                     num_hidden_layers=small.num_hidden_layers,
                     num_attention_heads=small.num_attention_heads,
                     num_key_value_heads=small.num_key_value_heads,
                     num_local_experts=small.num_local_experts,
                     num_experts_per_tok=small.num_experts_per_tok,
                     max_position_embeddings=max(args.seq, 2048), rope_theta=1e6,
                     rms_norm_eps=1e-5, router_aux_loss_coef=0.02, tie_word_embeddings=False)


def measure(step, sync, meter, steps, warmup):
    """(median seconds per step, joules per step or None)."""
    for _ in range(warmup):
        step()
    sync()
    start_energy = meter.read() if meter else None
    samples = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        samples.append(time.perf_counter() - start)
    joules = meter.joules(start_energy, meter.read()) / steps if meter else None
    return statistics.median(samples), joules


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if not genesis.cuda.is_available():
        raise SystemExit("gpu_train_step: needs an NVIDIA GPU with CuPy (genesis[cuda])")
    import cupy
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_train_step: PyTorch does not see a CUDA GPU")

    def sync():
        cupy.cuda.Device().synchronize()
        torch.cuda.synchronize()

    genesis.manual_seed(0)
    cfg = config(args)
    model = MoEForCausalLM(cfg)
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        hf = transformers.MixtralForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.to("cuda").train()
    hf.to("cuda").train()
    ids_np = np.random.default_rng(0).integers(0, cfg.vocab_size, (args.batch, args.seq))
    ids, ids_t = genesis.tensor(ids_np, device="cuda"), torch.tensor(ids_np, device="cuda")
    opt = genesis.optim.AdamW(model.parameters(), lr=1e-4)
    opt_t = torch.optim.AdamW(hf.parameters(), lr=1e-4)
    losses = {}

    def genesis_step():
        with genesis.autocast("cuda", dtype=genesis.bfloat16):
            loss, _ = model(ids, labels=ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.setdefault("genesis", loss.item())

    def torch_step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = hf(ids_t, labels=ids_t, output_router_logits=True).loss
        opt_t.zero_grad()
        loss.backward()
        opt_t.step()
        losses.setdefault("torch", loss.item())

    meter = available_meter("cuda:0")
    tokens = args.batch * args.seq
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{genesis.cuda.get_device_name()}: Mixtral-style moe-small ({n_params / 1e6:.0f}M "
          f"params), bf16 autocast, batch {args.batch} x seq {args.seq}, AdamW; median of "
          f"{args.steps} steps after {args.warmup} warm-up; energy: "
          f"{meter.name if meter else 'unavailable'}")
    results = {}
    for name, step in (("genesis", genesis_step), ("torch", torch_step)):
        seconds, joules = measure(step, sync, meter, args.steps, args.warmup)
        results[name] = {"ms_per_step": seconds * 1e3, "tokens_per_s": tokens / seconds,
                         "joules_per_token": joules / tokens if joules else None}
        energy = f", {joules / tokens * 1e3:.3f} mJ/token" if joules else ""
        print(f"  {name:<8} {seconds * 1e3:8.1f} ms/step  {tokens / seconds:10.0f} tokens/s"
              f"{energy}")
    print(f"  first-step loss: genesis {losses['genesis']:.4f}, torch {losses['torch']:.4f}")
    print(f"  speedup genesis vs PyTorch eager: "
          f"{results['torch']['ms_per_step'] / results['genesis']['ms_per_step']:.2f}x")
    results["first_step_loss"] = losses
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
