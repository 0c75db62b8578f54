"""Training text: the embedded default corpus, user text files, tokenizers, token datasets
and the batch sampler the Trainer draws from."""
import json
import os

import numpy as np

from ..utils.data import DataLoader, Dataset, Sampler

__all__ = ["CLIError", "load_tokenizer", "read_tokenizer", "load_corpus",
           "default_corpus_text", "split_tokens", "TokenDataset", "WindowBatches",
           "eval_windows"]


class CLIError(Exception):
    """A user-facing problem reported as one line by the ``genesis`` command."""


def load_tokenizer(path=None, checkpoint_dir=None):
    """The tokenizer given by ``--tokenizer`` (a tokenizer.json or a folder with one), else the
    one saved in ``checkpoint_dir``, else UTF-8 bytes; any problem is a one-line ``CLIError``."""
    from ..models.transformers.tokenization import ByteTokenizer
    if path:
        tokenizer = read_tokenizer(path)
        if tokenizer is None:
            raise CLIError(f"--tokenizer {path}: the folder holds no tokenizer.json; give a "
                           "HuggingFace tokenizer.json")
        return tokenizer
    return (read_tokenizer(checkpoint_dir) if checkpoint_dir else None) or ByteTokenizer()


def read_tokenizer(source):
    """The tokenizer at ``source`` (a tokenizer.json, a .gguf file, or a folder holding
    ``tokenizer.json`` / ``tokenizer_config.json``, checked against its manifest), or None for
    a folder holding neither; any problem is a one-line ``CLIError``."""
    from ..models.transformers.manifest import CheckpointCorruptError
    from ..models.transformers.tokenization import (TOKENIZER_CONFIG_FILE, TOKENIZER_FILE,
                                                   AutoTokenizer)
    if not os.path.exists(source):
        raise CLIError(f"tokenizer not found: {source}")
    if os.path.isdir(source) and not any(os.path.isfile(os.path.join(source, name))
                                         for name in (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE)):
        return None
    try:
        return AutoTokenizer.from_pretrained(source)
    except (CheckpointCorruptError, ImportError) as exc:
        raise CLIError(str(exc)) from None
    except (ValueError, OSError) as exc:
        raise CLIError(f"cannot read the tokenizer {source}: {exc}") from None


def default_corpus_text():
    """The English documentation that ships with CPython (``pydoc_data.topics``)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise CLIError("the embedded corpus (pydoc_data.topics) is missing from this Python; "
                       "pass --data PATH") from None
    return "\n\n".join(topics[key] for key in sorted(topics))


def load_corpus(path=None, warn=None):
    """Text of ``--data`` (a .txt file or a folder of .txt files), or the default corpus.

    Files are read as UTF-8. A file holding NUL bytes is binary and refused; other invalid
    UTF-8 is decoded with U+FFFD replacing each bad byte sequence, and ``warn`` (a function
    given one line) is told which file and where.
    """
    if path is None:
        return default_corpus_text(), "pydoc_data.topics"
    if not os.path.exists(path):
        raise CLIError(f"data path not found: {path}")
    if os.path.isdir(path):
        files = sorted(os.path.join(root, name) for root, _, names in os.walk(path)
                       for name in names if name.endswith(".txt"))
        if not files:
            raise CLIError(f"no .txt files in data folder: {path}")
    else:
        files = [path]
    text = "\n\n".join(_read_text(name, warn) for name in files)
    if not text.strip():
        raise CLIError(f"the corpus at {path} is empty")
    return text, path


def _read_text(name, warn):
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise CLIError(f"cannot read {name}: {exc.strerror}") from None
    if b"\x00" in raw:
        raise CLIError(f"{name} is a binary file (it holds NUL bytes at offset "
                       f"{raw.index(0)}); --data takes UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if warn is not None:
            warn(f"{name} is not valid UTF-8 (first bad byte at offset {exc.start}); invalid "
                 "bytes are read as U+FFFD")
        return raw.decode("utf-8", errors="replace")


def split_tokens(tokens, val_fraction, seq_len):
    """Contiguous train/validation split; both parts must hold at least one window."""
    n_val = max(int(len(tokens) * val_fraction), seq_len + 1)
    train, val = tokens[:-n_val], tokens[-n_val:]
    if len(train) < seq_len + 1:
        raise CLIError(f"the corpus has {len(tokens)} tokens: too small for --seq-len {seq_len} "
                       "with a validation split; use more text or a shorter --seq-len")
    return train, val


class TokenDataset(Dataset):
    """A token stream read as windows of ``seq_len`` tokens: item ``i`` is
    ``tokens[i:i + seq_len]`` (labels are the inputs, shifted inside the model as in HF)."""

    def __init__(self, tokens, seq_len):
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"TokenDataset: tokens must be a 1-D integer array, got shape "
                            f"{tokens.shape} of {tokens.dtype}")
        if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or \
                seq_len < 1:
            raise ValueError(f"TokenDataset: seq_len must be an int >= 1, got {seq_len!r}")
        if len(tokens) < seq_len + 1:
            raise ValueError(f"TokenDataset: {len(tokens)} tokens are too few for one window of "
                             f"seq_len {seq_len} (+1)")
        self.tokens = tokens.astype(np.int64, copy=False)
        self.seq_len = int(seq_len)

    def __len__(self):
        return len(self.tokens) - self.seq_len

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"TokenDataset: index {i} out of range for {len(self)} windows")
        i %= len(self)
        return self.tokens[i:i + self.seq_len]

    def fingerprint(self):
        """SHA-256 of the tokens and the window length: a resumed run checks it is unchanged."""
        import hashlib
        h = hashlib.sha256(f"{self.seq_len}|{len(self.tokens)}|".encode())
        h.update(self.tokens.view(np.uint8))
        return h.hexdigest()


class RandomWindowBatches(Sampler):
    """An endless batch sampler: each batch is ``batch_size`` window indices drawn uniformly
    (with replacement) from a seeded generator whose state is saved, so a resumed run draws
    exactly the batches the uninterrupted run would have drawn."""

    def __init__(self, num_windows, batch_size, seed):
        self.num_windows = num_windows
        self.batch_size = batch_size
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def __iter__(self):
        while True:
            yield self.rng.integers(0, self.num_windows, size=self.batch_size).tolist()

    def state_dict(self):
        """The generator state (JSON-able) for exact resumption."""
        return {"bit_generator": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state):
        """Restore a state from ``state_dict``."""
        bg = np.random.PCG64()
        bg.state = json.loads(state["bit_generator"])
        self.rng = np.random.Generator(bg)


class WindowBatches:
    """The Trainer's batch source: a ``genesis.utils.data.DataLoader`` over a ``TokenDataset``
    whose batches come from ``RandomWindowBatches`` (``next_batch``, ``state_dict``,
    ``load_state_dict``)."""

    def __init__(self, dataset, batch_size, seed):
        self.sampler = RandomWindowBatches(len(dataset), batch_size, seed)
        self._batches = iter(DataLoader(dataset, batch_sampler=self.sampler,
                                        collate_fn=np.stack))

    def next_batch(self):
        """(inputs, labels) int64 arrays of shape (batch, seq_len); labels = inputs (HF shift)."""
        window = next(self._batches)
        return window, window

    def state_dict(self):
        """The sampler's generator state."""
        return self.sampler.state_dict()

    def load_state_dict(self, state):
        """Continue from a saved ``state_dict``."""
        self.sampler.load_state_dict(state)


def eval_windows(tokens, seq_len, max_windows):
    """Fixed, evenly spaced validation windows (the same every evaluation)."""
    count = min(max_windows, max(1, (len(tokens) - 1) // seq_len))
    starts = np.linspace(0, len(tokens) - seq_len - 1, count).astype(np.int64)
    return tokens[starts[:, None] + np.arange(seq_len)[None, :]]
