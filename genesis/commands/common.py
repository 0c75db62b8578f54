"""What the checkpoint-reading subcommands share: loading a model and its tokenizer."""
import os

from ..train.data import CLIError, load_tokenizer

__all__ = ["load_checkpoint", "checkpoint_tokenizer"]


def load_checkpoint(path):
    """``MoEForCausalLM.from_pretrained(path)`` in eval mode; a bad folder is a ``CLIError``."""
    from ..models.transformers import MoEForCausalLM
    if not os.path.isdir(path):
        raise CLIError(f"checkpoint folder not found: {path}")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise CLIError(f"{path} has no config.json: not a genesis/HF checkpoint")
    try:
        model = MoEForCausalLM.from_pretrained(path)
    except (ValueError, OSError, RuntimeError) as exc:
        raise CLIError(f"cannot load {path}: {exc}") from None
    model.eval()
    return model


def checkpoint_tokenizer(path, checkpoint, vocab_size):
    """``--tokenizer``, else the checkpoint's (``load_tokenizer``), checked against the model's
    ``vocab_size``; a mismatch is a ``CLIError``."""
    from ..models.transformers.tokenization import check_tokenizer_matches
    tokenizer = load_tokenizer(path, checkpoint)
    try:
        check_tokenizer_matches(tokenizer, vocab_size)
    except ValueError as exc:
        raise CLIError(f"{exc}; pass the model's --tokenizer") from None
    return tokenizer
