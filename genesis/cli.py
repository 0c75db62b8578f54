"""The ``genesis`` command. Every mistake is answered with one line on stderr and exit code 2,
never a traceback. A subcommand is one entry of ``COMMANDS``: (help, add_arguments, run)."""
import argparse
import os
import platform
import sys
from collections import namedtuple

from .train.command import add_plot_arguments, add_train_arguments, number, run_plot, run_train
from .train.data import CLIError

Command = namedtuple("Command", ["help", "add_arguments", "run"])


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (``genesis train: error: ...``), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------- generate
def add_generate_arguments(g):
    """The flags of ``genesis generate``."""
    g.add_argument("--checkpoint", required=True, help="a checkpoint folder (HF layout)")
    g.add_argument("--prompt", default="The ", help="(default: %(default)r)")
    g.add_argument("--max-new-tokens", type=number(int, 1), default=200,
                   help="(default: %(default)s)")
    g.add_argument("--temperature", type=number(float, 0), default=0.8,
                   help="0 means greedy decoding (default: %(default)s)")
    g.add_argument("--top-k", type=number(int, 0), default=50,
                   help="keep the k likeliest tokens, 0 disables (default: %(default)s)")
    g.add_argument("--top-p", type=number(float, 0, 1, low_open=True), default=1.0,
                   help="nucleus sampling mass in (0, 1] (default: %(default)s)")
    g.add_argument("--repetition-penalty", type=number(float, 0, low_open=True), default=1.0,
                   help="> 0; 1 disables (default: %(default)s)")
    g.add_argument("--tokenizer", help="tokenizer.json (default: the checkpoint's)")
    g.add_argument("--seed", type=number(int, 0), default=None,
                   help="makes sampling reproducible (default: a fresh random seed each run)")


def _seed_generation(seed):
    """Seed sampling: ``--seed`` reproduces a run; without it every run samples anew."""
    import genesis
    if seed is None:
        genesis.seed()
    else:
        genesis.manual_seed(seed)


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
    _seed_generation(args.seed)
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


# --------------------------------------------------------------------------- info
def _version(module):
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "installed")
    except Exception:
        return "not installed"


def cmd_info(args):
    """``genesis info``: versions, backends and threads."""
    import genesis
    from .backends import cpu, cuda
    from .energy import describe_meters
    from .models.transformers import list_moe_configs
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
    print(f"  energy       {describe_meters()}")
    print("presets: " + ", ".join(list_moe_configs()))
    return 0


# --------------------------------------------------------------------------- registry
COMMANDS = {
    "train": Command("train an MoE language model (default: embedded corpus)",
                     add_train_arguments, run_train),
    "generate": Command("sample text from a checkpoint", add_generate_arguments, cmd_generate),
    "plot": Command("redraw a run's loss.png and expert_load.png from its metrics.jsonl",
                    add_plot_arguments, run_plot),
    "info": Command("versions, backends, presets", lambda p: None, cmd_info),
}


def build_parser():
    """The argument parser of every subcommand."""
    from . import __version__
    parser = _Parser(prog="genesis", description="Train and sample Mixture-of-Experts language "
                     "models with genesis.")
    parser.add_argument("--version", action="version", version=f"genesis {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help,
                                             description=command.help[:1].upper() +
                                             command.help[1:] + "."))
    return parser


def main(argv=None):
    """Entry point of the ``genesis`` console script; returns the exit status."""
    from .train.run_dir import CheckpointSaveError, TrainingError
    args = build_parser().parse_args(argv)
    prog = f"genesis {args.command}"
    try:
        status = COMMANDS[args.command].run(args)
        sys.stdout.flush()
        return status
    except CheckpointSaveError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except (CLIError, TrainingError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`genesis info | head`): stop quietly, like a killed pipe writer.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
