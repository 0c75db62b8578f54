"""Mixtral-style training step on the CPU: genesis vs HF transformers (PyTorch), same weights.

Part 1 times a full step (forward + backward + AdamW) of a small Mixtral model in genesis and
in ``transformers.MixtralForCausalLM`` loaded from the checkpoint genesis wrote, so both start
from identical weights; it checks the first-step losses agree and prints median step times and
their ratio. Part 2 times one sparse MoE layer (forward, and forward + backward) while the
number of experts grows at a fixed top-2: the work per token is constant, so flat times are
the goal (weight gradients are as large as the experts owned, so the backward grows with them).

    python benchmarks/train_step.py [--hidden 256 --layers 4 --experts 8 --seq 128 --batch 4]
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import genesis
from genesis.bench import train_step_fn
from genesis.models.transformers import MoEConfig, MoEForCausalLM

try:
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
except ImportError:
    torch = transformers = None


def mixtral_config(args, num_experts, layers):
    """The benchmark's Mixtral-style genesis config."""
    return MoEConfig(model_type="mixtral", vocab_size=args.vocab, hidden_size=args.hidden,
                     intermediate_size=args.intermediate, num_hidden_layers=layers,
                     num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                     num_local_experts=num_experts, num_experts_per_tok=args.top_k,
                     max_position_embeddings=max(2 * args.seq, 256), rope_theta=1e6,
                     rms_norm_eps=1e-5, router_aux_loss_coef=0.02, initializer_range=0.02)


def step_times(step, steps, warmup):
    """(median, min) seconds of ``step()`` over ``steps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        step()
    samples = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def genesis_and_torch_models(config):
    """A random genesis model and, when transformers is installed, HF's copy of its weights."""
    genesis.manual_seed(0)
    model = MoEForCausalLM(config)
    if transformers is None:
        return model, None
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        hf = transformers.MixtralForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return model, hf


def train_step_benchmark(args):
    """Part 1: full training step, genesis vs PyTorch."""
    config = mixtral_config(args, args.experts, args.layers)
    model, hf = genesis_and_torch_models(config)
    rng = np.random.default_rng(0)
    ids_np = rng.integers(0, args.vocab, (args.batch, args.seq))
    losses = {}
    genesis_train = train_step_fn(model, ids_np)

    def genesis_step():
        losses.setdefault("genesis", genesis_train().item())

    print(f"\nPart 1: training step, Mixtral-style: hidden {args.hidden}, {args.layers} layers, "
          f"{args.experts} experts top-{args.top_k}, intermediate {args.intermediate}, heads "
          f"{args.heads}/{args.kv_heads}, vocab {args.vocab}, batch {args.batch} x seq {args.seq}"
          f" ({model.num_parameters() / 1e6:.1f}M params)")
    t_genesis, best_genesis = step_times(genesis_step, args.steps, args.warmup)
    print(f"  genesis: median {t_genesis * 1e3:.1f} ms/step (min {best_genesis * 1e3:.1f})")
    if hf is None:
        print("  transformers/torch not installed: no reference timing")
        return
    torch_train = train_step_fn(hf, ids_np, torch)

    def torch_step():
        losses.setdefault("torch", torch_train().item())

    t_torch, best_torch = step_times(torch_step, args.steps, args.warmup)
    impl = (hf.config._attn_implementation, hf.config._experts_implementation)
    print(f"  transformers {transformers.__version__} on PyTorch {torch.__version__} (attention "
          f"{impl[0]}, experts {impl[1]}, {torch.get_num_threads()} threads): median "
          f"{t_torch * 1e3:.1f} ms/step (min {best_torch * 1e3:.1f})")
    print(f"  first-step loss: genesis {losses['genesis']:.6f}, torch {losses['torch']:.6f} "
          f"(|diff| {abs(losses['genesis'] - losses['torch']):.1e}: same weights, CE + 0.02*aux)")
    print(f"  ratio genesis / PyTorch = {t_genesis / t_torch:.2f}x median "
          f"({best_genesis / best_torch:.2f}x min)")


def moe_layer_benchmark(args):
    """Part 2: one sparse MoE layer, forward and forward + backward, vs number of experts."""
    tokens = args.batch * args.seq
    print(f"\nPart 2: one MoE layer, {tokens} tokens, hidden {args.hidden}, intermediate "
          f"{args.intermediate}, top-{args.top_k}; median ms (fwd = forward only, "
          f"step = forward + backward)")
    header = f"  {'experts':>7} {'genesis fwd':>12} {'genesis step':>13}"
    if transformers is not None:
        header += f" {'torch fwd':>10} {'torch step':>11} {'step ratio':>11}"
    print(header)
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((args.batch, args.seq, args.hidden)).astype(np.float32)
    for num_experts in args.expert_counts:
        model, hf = genesis_and_torch_models(mixtral_config(args, num_experts, 1))
        block = model.model.layers[0].mlp
        block.train()
        x = genesis.tensor(x_np, requires_grad=True)

        def genesis_forward():
            with genesis.no_grad():
                block(x)

        def genesis_layer():
            out, _ = block(x)
            block.zero_grad()
            out.sum().backward()

        fwd = step_times(genesis_forward, args.steps, args.warmup)[0]
        step = step_times(genesis_layer, args.steps, args.warmup)[0]
        row = f"  {num_experts:>7} {fwd * 1e3:>12.2f} {step * 1e3:>13.2f}"
        if hf is not None:
            hf_block = hf.model.layers[0].mlp
            hf_block.train()
            tx = torch.tensor(x_np, requires_grad=True)

            def torch_forward():
                with torch.no_grad():
                    hf_block(tx)

            def torch_layer():
                out = hf_block(tx)
                hf_block.zero_grad()
                out.sum().backward()

            t_fwd = step_times(torch_forward, args.steps, args.warmup)[0]
            t_step = step_times(torch_layer, args.steps, args.warmup)[0]
            row += f" {t_fwd * 1e3:>10.2f} {t_step * 1e3:>11.2f} {step / t_step:>10.2f}x"
        print(row)


def main():
    """Parse arguments and run both parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--intermediate", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--expert-counts", type=lambda s: [int(v) for v in s.split(",")],
                        default=[4, 8, 16, 32, 64])
    args = parser.parse_args()
    blas = os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS") or "default"
    print(f"genesis {genesis.__version__} on numpy {np.__version__} (BLAS threads: {blas}); "
          f"{os.cpu_count()} CPUs")
    train_step_benchmark(args)
    moe_layer_benchmark(args)


if __name__ == "__main__":
    main()
