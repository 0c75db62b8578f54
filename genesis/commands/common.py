"""What the checkpoint-reading subcommands share: loading a model and its tokenizer."""
import json
import os

from ..train.data import CLIError, HFTokenizer, load_tokenizer

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


def _is_genesis_tokenizer_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            return "type" in json.load(f)
    except (OSError, ValueError):
        return False


def checkpoint_tokenizer(path, checkpoint, vocab_size):
    """``--tokenizer``, else the checkpoint's: genesis's record, a HuggingFace
    ``tokenizer.json`` (as transformers saves it), or bytes; checked against ``vocab_size``."""
    hf_file = os.path.join(checkpoint, "tokenizer.json")
    genesis_record = _is_genesis_tokenizer_config(os.path.join(checkpoint,
                                                               "tokenizer_config.json"))
    if path is None and not genesis_record and os.path.isfile(hf_file):
        tokenizer = HFTokenizer(hf_file)
    else:
        tokenizer = load_tokenizer(path, checkpoint)
    if tokenizer.vocab_size > vocab_size:
        raise CLIError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                       f"{vocab_size}; pass the model's --tokenizer")
    return tokenizer
