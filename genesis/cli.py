"""The ``genesis`` command: train, generate and info."""
import argparse
import os
import platform
import sys

from .train.data import CLIError


def _positive_int(value):
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _non_negative_float(value):
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if x < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {x}")
    return x


def build_parser():
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="genesis", description="Train and sample "
                                     "Mixture-of-Experts language models with genesis.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an MoE language model (default: embedded corpus)")
    t.add_argument("--preset", help="model preset (see `genesis info`); default: a small MoE")
    t.add_argument("--router", choices=["topk", "genesis"], help="router type")
    t.add_argument("--config", help="model config.json (overrides --preset)")
    t.add_argument("--data", help="a text file or a folder of .txt files (default: the Python "
                   "documentation shipped with CPython)")
    t.add_argument("--tokenizer", help="a HuggingFace tokenizer.json (default: bytes, vocab 256)")
    t.add_argument("--steps", type=_positive_int, default=800)
    t.add_argument("--batch-size", type=_positive_int, default=16)
    t.add_argument("--seq-len", type=_positive_int, default=128)
    t.add_argument("--lr", type=_non_negative_float, default=3e-3, help="peak learning rate")
    t.add_argument("--min-lr-ratio", type=_non_negative_float, default=0.1,
                   help="final learning rate as a fraction of --lr (cosine schedule)")
    t.add_argument("--warmup-steps", type=int, default=None, help="default: 5%% of --steps")
    t.add_argument("--weight-decay", type=_non_negative_float, default=0.1)
    t.add_argument("--grad-clip", type=_non_negative_float, default=1.0, help="0 disables")
    t.add_argument("--eval-every", type=int, default=100, help="validation interval (0: never)")
    t.add_argument("--save-every", type=int, default=100, help="checkpoint interval (0: end only)")
    t.add_argument("--eval-windows", type=_positive_int, default=32,
                   help="validation windows of --seq-len tokens")
    t.add_argument("--val-fraction", type=_non_negative_float, default=0.05)
    t.add_argument("--out", default="runs/genesis-moe", help="output folder")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    t.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast matmuls and attention to bfloat16 (weights, optimizer "
                        "state and losses stay float32)")
    t.add_argument("--sample-tokens", type=int, default=200, help="tokens sampled at the end")
    t.add_argument("--sample-prompt", default="The ")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    g = sub.add_parser("generate", help="sample text from a checkpoint")
    g.add_argument("--checkpoint", required=True, help="a checkpoint folder (HF layout)")
    g.add_argument("--prompt", default="The ")
    g.add_argument("--max-new-tokens", type=_positive_int, default=200)
    g.add_argument("--temperature", type=_non_negative_float, default=0.8,
                   help="0 means greedy decoding")
    g.add_argument("--top-k", type=int, default=50)
    g.add_argument("--top-p", type=_non_negative_float, default=1.0)
    g.add_argument("--repetition-penalty", type=_non_negative_float, default=1.0)
    g.add_argument("--tokenizer", help="tokenizer.json (default: the checkpoint's)")
    g.add_argument("--seed", type=int, default=None)

    sub.add_parser("info", help="versions, backends and threads")
    return parser


def cmd_train(args):
    """``genesis train``."""
    from .train.trainer import train
    if args.device != "cpu":
        _check_device(args.device)
    summary = train(args)
    if summary.get("val_loss") is not None:
        print(f"final validation loss {summary['val_loss']:.4f} nats/token; "
              f"{summary['tokens_per_s']:.0f} tokens/s; checkpoint in "
              f"{os.path.join(args.out, 'checkpoint')}")
    return 130 if summary.get("interrupted") else 0


def _check_device(device):
    from .backends import cuda
    if not device.startswith("cuda"):
        raise CLIError(f"unknown --device {device!r}; expected cpu or cuda[:N]")
    if not cuda.is_available():
        raise CLIError(f"--device {device}: no CUDA GPU available (needs genesis[cuda] and an "
                       "NVIDIA GPU)")


def cmd_generate(args):
    """``genesis generate``: stream sampled tokens to stdout."""
    import genesis
    from .models.transformers import MoEForCausalLM
    from .train.data import load_tokenizer
    if not os.path.isdir(args.checkpoint):
        raise CLIError(f"checkpoint folder not found: {args.checkpoint}")
    if not os.path.isfile(os.path.join(args.checkpoint, "config.json")):
        raise CLIError(f"{args.checkpoint} has no config.json: not a genesis/HF checkpoint")
    tokenizer = load_tokenizer(args.tokenizer, args.checkpoint)
    try:
        model = MoEForCausalLM.from_pretrained(args.checkpoint)
    except (ValueError, OSError, RuntimeError) as exc:
        raise CLIError(f"cannot load {args.checkpoint}: {exc}") from None
    model.eval()
    if args.seed is not None:
        genesis.manual_seed(args.seed)
    ids = tokenizer.encode(args.prompt)
    if len(ids) == 0:
        raise CLIError("--prompt is empty")
    if len(ids) + args.max_new_tokens > model.config.max_position_embeddings:
        raise CLIError(f"prompt ({len(ids)} tokens) + --max-new-tokens {args.max_new_tokens} "
                       f"exceeds max_position_embeddings {model.config.max_position_embeddings}")
    decode = tokenizer.stream_decoder()
    sys.stdout.write(args.prompt)
    sys.stdout.flush()

    def streamer(new_ids):
        sys.stdout.write(decode(new_ids.reshape(-1).tolist()))
        sys.stdout.flush()

    model.generate(genesis.tensor(ids[None, :]), max_new_tokens=args.max_new_tokens,
                   do_sample=args.temperature > 0, temperature=args.temperature or 1.0,
                   top_k=args.top_k, top_p=args.top_p,
                   repetition_penalty=args.repetition_penalty, streamer=streamer)
    sys.stdout.write("\n")
    return 0


def _version(module):
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "installed")
    except Exception:
        return "not installed"


def cmd_info(args):
    """``genesis info``: versions, backends and threads."""
    import numpy as np
    import genesis
    from .backends import cpu, cuda
    print(f"genesis {genesis.__version__}  python {platform.python_version()}  "
          f"{platform.system()} {platform.machine()}")
    for name in ("numpy", "safetensors", "ml_dtypes", "tqdm", "matplotlib", "tokenizers"):
        print(f"  {name:12s} {_version(name)}")
    print("backends:")
    print(f"  NumPy (CPU)  available, BLAS threads {cpu.num_threads()}, "
          f"CPU cores {os.cpu_count()}")
    gpu = f"available, {cuda.device_count()} GPU(s)" if cuda.is_available() else \
        f"unavailable (cupy {_version('cupy')})"
    print(f"  CuPy (GPU)   {gpu}")
    print(f"  Triton       {_version('triton')}")
    from .energy import describe_meters
    print(f"  energy       {describe_meters()}")
    from .models.transformers import list_moe_configs
    print("presets: " + ", ".join(list_moe_configs()))
    del np
    return 0


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "info": cmd_info}


def main(argv=None):
    """Entry point of the ``genesis`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CLIError as exc:
        print(f"genesis {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genesis {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
