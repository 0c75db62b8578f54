"""``genesis generate`` and ``genesis chat``: a checkpoint and its tokenizer, streamed to stdout.

``--checkpoint`` takes a HF checkpoint folder (``config.json`` + safetensors, with the
``tokenizer.json`` / ``tokenizer_config.json`` next to it), the ``--out`` folder of a training
run (its ``checkpoint/`` is used) or a llama.cpp ``.gguf`` file (config and tokenizer from its
metadata). ``chat`` reads one user message per line from stdin, so it works interactively and
with piped input; each reply streams as it is generated and joins the conversation.
"""
import os
import sys

from .train.command import number
from .train.data import CLIError

CHECKPOINT_HELP = ("a HF checkpoint folder, a training run's --out folder, or a llama.cpp "
                   ".gguf file")


def _sampling_arguments(p, temperature):
    p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    p.add_argument("--tokenizer", help="tokenizer.json or a folder with one (default: the "
                   "checkpoint's)")
    p.add_argument("--max-new-tokens", type=number(int, 1), default=200,
                   help="(default: %(default)s)")
    p.add_argument("--temperature", type=number(float, 0), default=temperature,
                   help="0 means greedy decoding (default: %(default)s)")
    p.add_argument("--top-k", type=number(int, 0), default=50,
                   help="keep the k likeliest tokens, 0 disables (default: %(default)s)")
    p.add_argument("--top-p", type=number(float, 0, 1, low_open=True), default=1.0,
                   help="nucleus sampling mass in (0, 1] (default: %(default)s)")
    p.add_argument("--repetition-penalty", type=number(float, 0, low_open=True), default=1.0,
                   help="> 0; 1 disables (default: %(default)s)")
    p.add_argument("--seed", type=number(int, 0), default=None,
                   help="makes sampling reproducible (default: a fresh random seed each run)")


def add_generate_arguments(g):
    """The flags of ``genesis generate``."""
    _sampling_arguments(g, temperature=0.8)
    g.add_argument("--prompt", default="The ", help="(default: %(default)r)")


def add_chat_arguments(c):
    """The flags of ``genesis chat``."""
    _sampling_arguments(c, temperature=0.7)
    c.add_argument("--system", help="a system message opening the conversation")


def _seed_generation(seed):
    """Seed sampling: ``--seed`` reproduces a run; without it every run samples anew."""
    import genesis
    if seed is None:
        genesis.seed()
    else:
        genesis.manual_seed(seed)


def resolve_checkpoint(path):
    """The checkpoint a ``--checkpoint`` value names: a .gguf file, a folder with config.json,
    or a run folder holding ``checkpoint/``."""
    if os.path.isfile(path):
        if path.endswith(".gguf"):
            return path
        raise CLIError(f"--checkpoint {path} is a file but not a .gguf; give a checkpoint folder")
    if not os.path.isdir(path):
        raise CLIError(f"checkpoint not found: {path}")
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    inner = os.path.join(path, "checkpoint")
    if os.path.isfile(os.path.join(inner, "config.json")):
        return inner
    raise CLIError(f"{path} has no config.json (nor checkpoint/config.json): not a genesis/HF "
                   f"checkpoint or training run folder")


def load_model_and_tokenizer(args):
    """``(model, tokenizer)`` for ``args.checkpoint`` / ``args.tokenizer``, checked to agree."""
    from .models.transformers import MoEForCausalLM
    from .models.transformers.tokenization import (TOKENIZER_FILE, ByteTokenizer,
                                                   check_tokenizer_matches)
    from .train.data import read_tokenizer
    checkpoint = resolve_checkpoint(args.checkpoint)
    try:
        model = MoEForCausalLM.from_pretrained(checkpoint)
    except (ValueError, OSError, RuntimeError, ImportError) as exc:
        raise CLIError(f"cannot load {checkpoint}: {exc}") from None
    model.eval()
    tokenizer = read_tokenizer(args.tokenizer or checkpoint)
    vocab = model.config.vocab_size
    if tokenizer is None:
        if vocab != 256:
            raise CLIError(f"{checkpoint} has no {TOKENIZER_FILE} and its vocab_size is {vocab} "
                           f"(not bytes); pass --tokenizer PATH")
        tokenizer = ByteTokenizer()
    try:
        check_tokenizer_matches(tokenizer, vocab)
    except ValueError as exc:
        raise CLIError(f"tokenizer of {checkpoint}: {exc}") from None
    return model, tokenizer


def _generate_kwargs(args):
    return dict(max_new_tokens=args.max_new_tokens, do_sample=args.temperature > 0,
                temperature=args.temperature or 1.0, top_k=args.top_k, top_p=args.top_p,
                repetition_penalty=args.repetition_penalty)


def _check_length(model, prompt_len, max_new_tokens):
    limit = model.config.max_position_embeddings
    if prompt_len + max_new_tokens > limit:
        raise CLIError(f"prompt ({prompt_len} tokens) + --max-new-tokens {max_new_tokens} "
                       f"exceeds max_position_embeddings {limit}")


def _stream(model, tokenizer, ids, args, eos):
    """Generate after ``ids``, writing text to stdout as it completes; return the new ids."""
    import numpy as np

    import genesis
    decode = tokenizer.stream_decoder()

    def streamer(new_ids):
        sys.stdout.write(decode(new_ids.reshape(-1).tolist()))
        sys.stdout.flush()

    out = model.generate(genesis.tensor(np.asarray([ids], dtype=np.int64)), streamer=streamer,
                         eos_token_id=eos, **_generate_kwargs(args))
    sys.stdout.write(decode([], final=True))
    return out.numpy()[0, len(ids):].tolist()


def _eos_ids(model, tokenizer):
    """The config's end-of-sequence ids plus the tokenizer's (a chat turn's end token)."""
    eos = model.config.eos_token_id
    eos = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    return eos or None


def cmd_generate(args):
    """``genesis generate``: stream sampled tokens after ``--prompt`` to stdout."""
    model, tokenizer = load_model_and_tokenizer(args)
    _seed_generation(args.seed)
    ids = tokenizer.encode(args.prompt)
    if len(ids) == 0:
        raise CLIError("--prompt is empty")
    _check_length(model, len(ids), args.max_new_tokens)
    sys.stdout.write(args.prompt)
    sys.stdout.flush()
    _stream(model, tokenizer, ids, args, _eos_ids(model, tokenizer))
    sys.stdout.write("\n")
    return 0


def _fit_history(tokenizer, messages, limit):
    """The prompt ids of ``messages``, dropping the oldest exchanges (never the system message
    or the newest user message) until they fit in ``limit`` tokens."""
    while True:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                            return_dict=False)
        start = 1 if messages[0]["role"] == "system" else 0
        if len(ids) <= limit or len(messages) - start <= 1:
            return ids, messages
        messages = messages[:start] + messages[start + 2:]


def _template_errors():
    """What rendering a chat template can raise (jinja2's TemplateError when installed)."""
    try:
        from jinja2.exceptions import TemplateError
    except ImportError:
        return (ValueError, TypeError, ImportError)
    return (ValueError, TypeError, ImportError, TemplateError)


def cmd_chat(args):
    """``genesis chat``: one user message per stdin line, each reply streamed."""
    model, tokenizer = load_model_and_tokenizer(args)
    if tokenizer.chat_template is None:
        raise CLIError(f"{args.checkpoint} has no chat template (tokenizer_config.json "
                       f"chat_template); use `genesis generate` for plain text")
    _seed_generation(args.seed)
    interactive = sys.stdin.isatty()
    messages = [{"role": "system", "content": args.system}] if args.system else []
    eos = _eos_ids(model, tokenizer)
    limit = model.config.max_position_embeddings - args.max_new_tokens
    while True:
        if interactive:
            sys.stdout.write("> ")
            sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        messages.append({"role": "user", "content": text})
        try:
            ids, messages = _fit_history(tokenizer, messages, limit)
        except _template_errors() as exc:
            raise CLIError(f"chat template of {args.checkpoint} failed: {exc}") from None
        _check_length(model, len(ids), args.max_new_tokens)
        new = _stream(model, tokenizer, ids, args, eos)
        sys.stdout.write("\n")
        sys.stdout.flush()
        reply = tokenizer.decode(new, skip_special_tokens=True).strip()
        messages.append({"role": "assistant", "content": reply})
    return 0
