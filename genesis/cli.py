"""The ``genesis`` command. Every mistake is answered with one line on stderr and exit code 2,
never a traceback. A subcommand is one entry of ``COMMANDS``: (help, add_arguments, run)."""
import argparse
import os
import platform
import sys
from collections import namedtuple

from . import chat
from .bench import add_arguments as add_bench_arguments, main as run_bench
from .commands import route, sparsify
from .train.command import add_plot_arguments, add_train_arguments, run_plot, run_train
from .train.compare import add_compare_arguments, run_compare
from .train.data import CLIError

Command = namedtuple("Command", ["help", "add_arguments", "run"])


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (``genesis train: error: ...``), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
    for name in ("numpy", "safetensors", "ml_dtypes", "tqdm", "matplotlib", "tokenizers", "jinja2",
                 "gguf"):
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
    "generate": Command("sample text from a checkpoint", chat.add_generate_arguments,
                        chat.cmd_generate),
    "chat": Command("multi-turn chat with a checkpoint that has a chat template (one message "
                    "per stdin line)", chat.add_chat_arguments, chat.cmd_chat),
    "plot": Command("redraw a run's loss.png and expert_load.png from its metrics.jsonl",
                    add_plot_arguments, run_plot),
    "compare": Command("train mixtral, deepseek and genesis routers head to head",
                       add_compare_arguments, run_compare),
    "info": Command("versions, backends, presets", lambda p: None, cmd_info),
    "sparsify": Command("turn a dense checkpoint into an MoE and measure the cost (inject_router)",
                        sparsify.add_arguments, sparsify.main),
    "route": Command("write an HTML page of which experts a text wakes up",
                     route.add_arguments, route.main),
    "bench": Command("time genesis against PyTorch on this machine (one table of ratios)",
                     add_bench_arguments, run_bench),
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
