"""``genesis route``: write the routing dashboard of a text for a checkpoint (one HTML file)."""
import os

from ..train.data import CLIError
from .common import checkpoint_tokenizer, load_checkpoint

__all__ = ["add_arguments", "main"]


def add_arguments(p):
    """The flags of ``genesis route``."""
    p.add_argument("--checkpoint", required=True, help="an MoE checkpoint folder")
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to route")
    text.add_argument("--text-file", help="a file holding the text to route")
    p.add_argument("--out", default="routing.html", help="the HTML file to write")
    p.add_argument("--metrics", help="metrics.jsonl with the expert load over training "
                   "(default: the checkpoint's run folder, if it has one)")
    p.add_argument("--tokenizer", help="tokenizer.json (default: the checkpoint's)")


def main(args):
    """Run ``genesis route``; returns the exit code."""
    from ..dashboard import write_dashboard
    if args.text_file:
        try:
            with open(args.text_file, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as exc:
            raise CLIError(f"cannot read --text-file {args.text_file}: {exc.strerror}") from None
    else:
        text = args.text
    if not text:
        raise CLIError("the text to route is empty")
    if args.metrics and not os.path.isfile(args.metrics):
        raise CLIError(f"--metrics file not found: {args.metrics}")
    model = load_checkpoint(args.checkpoint)
    tokenizer = checkpoint_tokenizer(args.tokenizer, args.checkpoint, model.config.vocab_size)
    directory = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(directory):
        raise CLIError(f"--out folder does not exist: {directory}")
    try:
        path = write_dashboard(model, tokenizer, text, args.out,
                               args.metrics or args.checkpoint)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {path}")
    return 0
