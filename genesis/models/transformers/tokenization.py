"""Tokenizers with HuggingFace's API: UTF-8 bytes, ``tokenizer.json`` files and chat templates.

``AutoTokenizer.from_pretrained(path)`` reads what HF writes next to a checkpoint:
``tokenizer.json`` (through the optional ``tokenizers`` package) and ``tokenizer_config.json``
(special tokens, overridden by ``special_tokens_map.json`` as in HF; ``chat_template``, where
a ``chat_template.jinja`` file wins, as in HF), the byte tokenizer recorded by ``genesis
train``, or the tokenizer stored in a ``.gguf`` file.
``apply_chat_template`` renders with jinja2 in the sandboxed environment HF uses (same options,
filters and globals), so a template gives the same text as in transformers.
``save_pretrained`` writes through the atomic writer and returns ``{file: FileDigest}``; loading
a folder checks its tokenizer files against the folder's ``genesis_manifest.json`` when it
lists them.
"""
import codecs
import json
import os
from datetime import datetime

import numpy as np

from ..._atomic import atomic_write
from .manifest import read_manifest, update_manifest, verify_checkpoint

__all__ = ["AutoTokenizer", "ByteTokenizer", "PreTrainedTokenizerFast", "BatchEncoding",
           "check_tokenizer_matches", "TOKENIZER_FILE", "TOKENIZER_CONFIG_FILE"]

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


class BatchEncoding(dict):
    """The ``input_ids`` / ``attention_mask`` dict a tokenizer call returns (keys as attributes)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _token_content(value):
    """The text of a special token written as a string or as HF's AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def _as_tensors(ids, return_tensors):
    """Token id lists as plain lists, NumPy arrays ("np") or genesis tensors ("pt"/"genesis")."""
    if return_tensors is None:
        return ids
    if return_tensors not in ("np", "pt", "genesis"):
        raise ValueError(f"tokenizer: return_tensors must be None, 'np', 'pt' or 'genesis', got "
                         f"{return_tensors!r} ('pt' gives genesis tensors)")
    lengths = {len(row) for row in ids}
    if len(lengths) > 1:
        raise ValueError(f"tokenizer: return_tensors={return_tensors!r} needs sequences of one "
                         f"length, got lengths {sorted(lengths)} (genesis does not pad here)")
    array = np.asarray(ids, dtype=np.int64).reshape(len(ids), -1)
    if return_tensors == "np":
        return array
    from ...creation import tensor
    return tensor(array)


def _compile_chat_template(template):
    """The template compiled in HF's sandbox: trim/lstrip blocks, loop controls, HF's globals
    (a chat template comes with a checkpoint: it is untrusted code)."""
    try:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise ImportError("apply_chat_template needs jinja2: pip install 'genesis[tokenizers]'") \
            from None

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    class TemplateNamespace(jinja2.utils.Namespace):
        """``namespace()`` refusing underscore attributes (templates are untrusted code)."""

        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            TemplateNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"chat templates cannot store underscore-prefixed attributes on a "
                    f"namespace, got {name!r}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.globals["namespace"] = TemplateNamespace
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


class PreTrainedTokenizerBase:
    """What every genesis tokenizer shares: special tokens, ``__call__``, chat templates."""

    def __init__(self, chat_template=None, **special_tokens):
        self.chat_template = chat_template
        for name in SPECIAL_TOKENS:
            setattr(self, name, _token_content(special_tokens.get(name)))
        self._compiled = None

    # -- implemented by subclasses: encode(text, add_special_tokens), decode(ids, ...),
    #    vocab_size, convert_tokens_to_ids(token)

    def __len__(self):
        return self.vocab_size

    @property
    def special_tokens_map(self):
        """``{"bos_token": "<s>", ...}`` for the special tokens this tokenizer has."""
        return {name: getattr(self, name) for name in SPECIAL_TOKENS
                if getattr(self, name) is not None}

    def _special_id(self, name):
        token = getattr(self, name)
        return None if token is None else self.convert_tokens_to_ids(token)

    @property
    def bos_token_id(self):
        """Id of ``bos_token`` (None when there is none)."""
        return self._special_id("bos_token")

    @property
    def eos_token_id(self):
        """Id of ``eos_token`` (None when there is none)."""
        return self._special_id("eos_token")

    @property
    def pad_token_id(self):
        """Id of ``pad_token`` (None when there is none)."""
        return self._special_id("pad_token")

    @property
    def unk_token_id(self):
        """Id of ``unk_token`` (None when there is none)."""
        return self._special_id("unk_token")

    def __call__(self, text, add_special_tokens=True, return_tensors=None):
        """``BatchEncoding(input_ids, attention_mask)`` of one text or a list of texts."""
        batched = isinstance(text, (list, tuple))
        ids = [self.encode(t, add_special_tokens=add_special_tokens)
               for t in (text if batched else [text])]
        mask = [[1] * len(row) for row in ids]
        if return_tensors is not None:
            return BatchEncoding(input_ids=_as_tensors(ids, return_tensors),
                                 attention_mask=_as_tensors(mask, return_tensors))
        if not batched:
            ids, mask = ids[0], mask[0]
        return BatchEncoding(input_ids=ids, attention_mask=mask)

    def batch_decode(self, sequences, skip_special_tokens=False):
        """``decode`` of each row."""
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in sequences]

    def apply_chat_template(self, conversation, tools=None, documents=None, chat_template=None,
                            add_generation_prompt=False, continue_final_message=False,
                            tokenize=True, return_tensors=None, return_dict=True, **kwargs):
        """Render ``conversation`` (a list of ``{"role", "content"}`` dicts, or a list of them)
        with the chat template as transformers does; ``tokenize=False`` returns the text.

        Tokenized, it returns ``BatchEncoding`` (``return_dict=True``, HF v5's default) or the
        ids; the text is encoded without adding special tokens, since the template writes them.
        """
        template = chat_template if chat_template is not None else self.chat_template
        if template is None:
            raise ValueError("apply_chat_template: this tokenizer has no chat_template (none in "
                             "tokenizer_config.json or chat_template.jinja); pass chat_template=")
        if continue_final_message and add_generation_prompt:
            raise ValueError("apply_chat_template: continue_final_message and "
                             "add_generation_prompt are not compatible")
        if template is self.chat_template:
            if self._compiled is None:
                self._compiled = _compile_chat_template(template)
            compiled = self._compiled
        else:
            compiled = _compile_chat_template(template)
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        chats = conversation if batched else [conversation]
        context = {**self.special_tokens_map, **kwargs}
        rendered = [self._render(compiled, template, chat, tools, documents, add_generation_prompt,
                                 continue_final_message, context) for chat in chats]
        if not tokenize:
            return rendered if batched else rendered[0]
        out = self(rendered if batched else rendered[0], add_special_tokens=False,
                   return_tensors=return_tensors)
        return out if return_dict else out["input_ids"]

    @staticmethod
    def _render(compiled, template, chat, tools, documents, add_generation_prompt,
                continue_final_message, context):
        messages = []
        for message in chat:
            if not isinstance(message, dict):
                raise TypeError(f"apply_chat_template: messages must be dicts with 'role' and "
                                f"'content', got {message!r}")
            messages.append({k: v for k, v in message.items() if v is not None})
        tag = "CONTINUE_FINAL_MESSAGE_TAG "
        field = None
        if continue_final_message:
            field = continue_final_message if isinstance(continue_final_message, str) \
                else "content"
            if not messages or not isinstance(messages[-1].get(field), str):
                raise ValueError(f"apply_chat_template: continue_final_message needs a final "
                                 f"message with a text {field!r}")
            final = messages[-1][field]
            messages[-1] = dict(messages[-1], **{field: final + tag})
        text = compiled.render(messages=messages, tools=tools, documents=documents,
                               add_generation_prompt=add_generation_prompt, **context)
        if field is not None:
            cut = text.rindex(tag.strip())
            text = text[:cut] if text[cut:cut + len(tag)] == tag else text[:cut].rstrip()
        return text

    def stream_decoder(self):
        """A function ``push(ids, final=False)`` returning the text successive ids add, holding
        back an incomplete character until the next ids (or ``final=True``) complete it."""
        seen, emitted = [], [0]

        def push(ids, final=False):
            seen.extend(int(i) for i in ids)
            text = self.decode(seen, skip_special_tokens=True)
            if text.endswith("\ufffd") and not final:
                return ""
            new = text[emitted[0]:]
            emitted[0] = len(text)
            return new
        return push

    def _config_dict(self):
        cfg = {name: value for name, value in self.special_tokens_map.items()}
        if self.chat_template is not None:
            cfg["chat_template"] = self.chat_template
        return cfg


class ByteTokenizer(PreTrainedTokenizerBase):
    """UTF-8 bytes as tokens: vocabulary 256, no special tokens, no download."""

    name = "byte"
    vocab_size = 256

    def encode(self, text, add_special_tokens=True):
        """Token ids (the UTF-8 bytes) of ``text``."""
        return list(text.encode("utf-8"))

    def decode(self, ids, skip_special_tokens=False):
        """Text of ``ids``: invalid UTF-8 sequences and ids outside 0..255 (which a model with a
        larger vocabulary can sample) become U+FFFD."""
        return _bytes_of(ids).decode("utf-8", errors="replace")

    def stream_decoder(self):
        """Incremental UTF-8 decoding: text appears as soon as its characters are complete;
        ids outside 0..255 become U+FFFD."""
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda ids, final=False: dec.decode(_bytes_of(ids), final=final)

    def convert_tokens_to_ids(self, token):
        """The byte value of a one-byte token."""
        data = token.encode("utf-8")
        if len(data) != 1:
            raise ValueError(f"ByteTokenizer: {token!r} is not a single byte")
        return data[0]

    def save_pretrained(self, save_directory):
        """Record the byte tokenizer (and any chat template) in ``tokenizer_config.json``;
        returns ``{file name: FileDigest}``."""
        return _save_files(save_directory, {TOKENIZER_CONFIG_FILE: _json_text(
            {"type": "byte", **self._config_dict()})})


def _bytes_of(ids):
    """Bytes of byte-token ids; an id outside 0..255 becomes 0xFF (never valid UTF-8)."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    return np.where((ids >= 0) & (ids < 256), ids, 0xFF).astype(np.uint8).tobytes()


class PreTrainedTokenizerFast(PreTrainedTokenizerBase):
    """A HuggingFace ``tokenizers`` tokenizer (``tokenizer.json``) with HF's special tokens."""

    name = "hf"

    def __init__(self, tokenizer_object=None, tokenizer_file=None, chat_template=None,
                 **special_tokens):
        if tokenizer_object is None:
            if tokenizer_file is None:
                raise ValueError("PreTrainedTokenizerFast needs tokenizer_object or "
                                 "tokenizer_file")
            tokenizer_object = _read_tokenizer_file(tokenizer_file)
        super().__init__(chat_template=chat_template, **special_tokens)
        self._tokenizer = tokenizer_object

    @property
    def backend_tokenizer(self):
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tokenizer

    @property
    def vocab_size(self):
        """Size of the vocabulary, added tokens included (what a model's embedding must hold)."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text, add_special_tokens=True):
        """Token ids of ``text`` (the post-processor's BOS/EOS when ``add_special_tokens``)."""
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens=False):
        """Text of ``ids``."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_ids(self, token):
        """Id of ``token`` (None when it is not in the vocabulary)."""
        return self._tokenizer.token_to_id(token)

    def get_vocab(self):
        """``{token: id}`` including added tokens."""
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def save_pretrained(self, save_directory):
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` as HF does (transformers loads
        them); returns ``{file name: FileDigest}``."""
        return _save_files(save_directory, {
            TOKENIZER_FILE: self._tokenizer.to_str(pretty=True),
            TOKENIZER_CONFIG_FILE: _json_text({"type": "hf",
                                               "tokenizer_class": "PreTrainedTokenizerFast",
                                               **self._config_dict()})})


def _read_tokenizer_file(path):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError(f"reading {path} needs the 'tokenizers' package: pip install "
                          f"'genesis[tokenizers]'") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    try:
        return Tokenizer.from_file(path)
    except Exception as exc:
        raise ValueError(f"cannot read {path} as a tokenizer.json: {exc}") from None


def _json_text(obj):
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def _save_files(directory, texts):
    """Write ``{file name: text}`` into ``directory`` atomically, record them in its checksum
    manifest when it has one, and return ``{file name: FileDigest}``."""
    if os.path.isfile(directory):
        raise ValueError(f"save_pretrained: {directory!r} is a file; expected a directory")
    os.makedirs(directory, exist_ok=True)
    digests = {name: atomic_write(os.path.join(directory, name), text)
               for name, text in texts.items()}
    update_manifest(directory, digests)
    return digests


def _read_tokenizer_config(directory):
    """The folder's tokenizer settings, its files first checked against its checksum manifest
    (``CheckpointCorruptError`` names a damaged one; files it does not list load as they are)."""
    files = (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, CHAT_TEMPLATE_FILE)
    listed = read_manifest(directory) or {}
    verify_checkpoint(directory, [name for name in files if name in listed])
    path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(cfg).__name__}")
    special_map = os.path.join(directory, SPECIAL_TOKENS_MAP_FILE)
    if os.path.isfile(special_map):  # as in HF, its special tokens win over tokenizer_config's
        with open(special_map, encoding="utf-8") as f:
            cfg.update((k, v) for k, v in json.load(f).items() if k in SPECIAL_TOKENS)
    template_file = os.path.join(directory, CHAT_TEMPLATE_FILE)
    if os.path.isfile(template_file):
        with open(template_file, encoding="utf-8") as f:
            cfg["chat_template"] = f.read()
    template = cfg.get("chat_template")
    if isinstance(template, list):  # HF's named templates: the "default" one is the chat template
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        cfg["chat_template"] = named.get("default")
    return cfg


class AutoTokenizer:
    """``AutoTokenizer.from_pretrained(path)``: the tokenizer saved with a checkpoint."""

    def __init__(self):
        raise TypeError("AutoTokenizer is built with AutoTokenizer.from_pretrained(path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path, **kwargs):
        """The tokenizer of a checkpoint folder (``tokenizer.json`` + ``tokenizer_config.json``,
        or genesis's byte tokenizer), a ``tokenizer.json`` file or a ``.gguf`` file.
        ``kwargs`` override special tokens or ``chat_template``."""
        path = os.fspath(pretrained_model_name_or_path)
        if os.path.isfile(path) and path.endswith(".gguf"):
            from .gguf import load_gguf_tokenizer
            return load_gguf_tokenizer(path, **kwargs)
        if os.path.isfile(path):
            return PreTrainedTokenizerFast(tokenizer_file=path, **kwargs)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"AutoTokenizer.from_pretrained: no folder or file at "
                                    f"{path!r}")
        cfg = _read_tokenizer_config(path)
        options = {"chat_template": cfg.get("chat_template")}
        options.update((name, cfg.get(name)) for name in SPECIAL_TOKENS)
        options.update(kwargs)
        file = os.path.join(path, TOKENIZER_FILE)
        if os.path.isfile(file):
            return PreTrainedTokenizerFast(tokenizer_file=file, **options)
        if cfg.get("type") == "byte":
            return ByteTokenizer(**options)
        raise FileNotFoundError(f"AutoTokenizer.from_pretrained: {path} has no {TOKENIZER_FILE} "
                                f"(and its {TOKENIZER_CONFIG_FILE} does not record genesis's byte "
                                f"tokenizer)")


def check_tokenizer_matches(tokenizer, vocab_size):
    """Raise ValueError when a byte tokenizer meets a model whose vocabulary is not bytes, or a
    tokenizer has ids the model cannot embed."""
    if isinstance(tokenizer, ByteTokenizer) and vocab_size != 256:
        raise ValueError(f"the byte tokenizer (vocabulary 256) cannot drive a model with "
                         f"vocab_size {vocab_size}; give the model's tokenizer.json")
    if tokenizer.vocab_size > vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's "
                         f"vocab_size is {vocab_size}")
