"""Tokenizers: tokenizer.json folders, byte tokenizer, AutoTokenizer, chat templates vs HF."""
import json

import numpy as np
import pytest

import genesis

from genesis.models.transformers.tokenization import (AutoTokenizer, ByteTokenizer,
                                                      PreTrainedTokenizerFast,
                                                      check_tokenizer_matches)

CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# Exercises what HF's environment adds: trim_blocks/lstrip_blocks, loop controls, tojson,
# raise_exception, namespace, the special tokens as variables, and extra keyword arguments.
FANCY = """{{ bos_token }}
{% set ns = namespace(n=0) %}
{% for message in messages %}
    {% if message['role'] not in ['user', 'assistant', 'system'] %}
        {{ raise_exception('bad role ' + message['role']) }}
    {% endif %}
    {% if message['role'] == 'system' %}{% continue %}{% endif %}
    {% set ns.n = ns.n + 1 %}
[{{ ns.n }}] {{ message['role'] }}: {{ message['content'] | trim }}
{% endfor %}
{% if tools %}TOOLS {{ tools | tojson }}
{% endif %}
{% if greeting is defined %}{{ greeting }}{% endif %}
{% if add_generation_prompt %}[{{ ns.n + 1 }}] assistant:{% endif %}"""

CHATS = [
    [{"role": "user", "content": "Hello there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi é ü"},
     {"role": "assistant", "content": "  Hello!  "}, {"role": "user", "content": "Tell me <more>"}],
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>",
                                                                  "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = ["Hello there, tell me more about the world.", "You are helpful. Be brief!"] * 50
    tok.train_from_iterator(text, trainer)
    path = tmp_path_factory.mktemp("tok")
    tok.save(str(path / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|im_start|>",
              "eos_token": {"content": "<|im_end|>", "special": True, "__type": "AddedToken"},
              "pad_token": "<|endoftext|>", "chat_template": CHATML}
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def _hf(folder):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(folder))


def test_folder_tokenizer_reads_special_tokens_and_template(folder):
    tok = AutoTokenizer.from_pretrained(folder)
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>",
                                                             "<|endoftext|>")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 0)
    assert tok.chat_template == CHATML
    assert tok.decode(tok.encode("Hello there")) == "Hello there"


def test_encode_decode_and_call_match_transformers(folder):
    ref, tok = _hf(folder), AutoTokenizer.from_pretrained(folder)
    for text in ["Hello there", " tell  me\nmore <|im_end|>", "wörld ü"]:
        assert tok.encode(text) == ref.encode(text)
        assert tok.decode(tok.encode(text), skip_special_tokens=True) == \
            ref.decode(ref.encode(text), skip_special_tokens=True)
    assert dict(tok(["Hello", "there"])) == {k: v for k, v in ref(["Hello", "there"]).items()}
    batch = tok(["Hello there", "Hello world"], return_tensors="np")
    assert batch.input_ids.dtype == np.int64 and batch.input_ids.shape[0] == 2
    pt = tok("Hello there", return_tensors="pt")
    assert isinstance(pt.input_ids, genesis.Tensor) and pt.input_ids.dtype == genesis.int64
    assert pt.input_ids.tolist() == [tok.encode("Hello there")]
    with pytest.raises(ValueError, match="sequences of one length"):
        tok(["Hello", "Hello there world"], return_tensors="np")


@pytest.mark.parametrize("template", [CHATML, FANCY], ids=["chatml", "hf-environment"])
@pytest.mark.parametrize("chat", CHATS, ids=["one-turn", "multi-turn"])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_chat_template_renders_as_transformers(folder, template, chat, add_generation_prompt):
    ref, tok = _hf(folder), AutoTokenizer.from_pretrained(folder)
    kwargs = dict(chat_template=template, add_generation_prompt=add_generation_prompt)
    extra = dict(tools=[{"name": "f", "description": "é"}], greeting="hey") \
        if template is FANCY else {}
    assert tok.apply_chat_template(chat, tokenize=False, **kwargs, **extra) == \
        ref.apply_chat_template(chat, tokenize=False, **kwargs, **extra)
    assert tok.apply_chat_template(chat, return_dict=False, **kwargs, **extra) == \
        ref.apply_chat_template(chat, return_dict=False, **kwargs, **extra)


def test_continue_final_message_and_batches_match_transformers(folder):
    ref, tok = _hf(folder), AutoTokenizer.from_pretrained(folder)
    chat = CHATS[1][:-1]
    assert tok.apply_chat_template(chat, tokenize=False, continue_final_message=True) == \
        ref.apply_chat_template(chat, tokenize=False, continue_final_message=True)
    assert tok.apply_chat_template(CHATS, tokenize=False) == \
        ref.apply_chat_template(CHATS, tokenize=False)


def test_template_errors(folder):
    tok = AutoTokenizer.from_pretrained(folder)
    jinja2 = pytest.importorskip("jinja2")
    with pytest.raises(jinja2.exceptions.TemplateError, match="bad role tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], chat_template=FANCY)
    with pytest.raises(ValueError, match="not compatible"):
        tok.apply_chat_template(CHATS[0], add_generation_prompt=True, continue_final_message=True)
    with pytest.raises(ValueError, match="has no chat_template"):
        ByteTokenizer().apply_chat_template(CHATS[0])


def test_templates_run_sandboxed(folder):
    jinja2 = pytest.importorskip("jinja2")
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.apply_chat_template(CHATS[0], chat_template="{{ messages.__class__ }}",
                                   tokenize=False) == ""
    for template in ("{% set ns = namespace(_x=1) %}",
                     "{% set ns = namespace(a=1) %}{% set ns._y = 2 %}",
                     "{{ ''.__class__.__mro__ }}"):
        with pytest.raises(jinja2.exceptions.SecurityError):
            tok.apply_chat_template(CHATS[0], chat_template=template, tokenize=False)


def test_chat_template_jinja_file_wins_and_save_round_trip(folder, tmp_path):
    tok = AutoTokenizer.from_pretrained(folder)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.chat_template == CHATML and again.eos_token == "<|im_end|>"
    assert again.encode("Hello there") == tok.encode("Hello there")
    (tmp_path / "chat_template.jinja").write_text(FANCY)
    assert AutoTokenizer.from_pretrained(tmp_path).chat_template == FANCY


def test_special_tokens_map_overrides_tokenizer_config_as_in_hf(folder, tmp_path):
    import shutil
    shutil.copy(folder / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    (tmp_path / "special_tokens_map.json").write_text(json.dumps(
        {"eos_token": "<|endoftext|>", "bos_token": {"content": "<|im_start|>"}}))
    tok, ref = AutoTokenizer.from_pretrained(tmp_path), _hf(tmp_path)
    assert (tok.eos_token, tok.bos_token, tok.bos_token_id) == ("<|endoftext|>", "<|im_start|>",
                                                                1)
    assert (tok.eos_token, tok.bos_token) == (ref.eos_token, ref.bos_token)


def test_byte_tokenizer_round_trip_and_stream(tmp_path):
    tok = ByteTokenizer(chat_template=CHATML)
    ids = tok.encode("héllo")
    assert ids == list("héllo".encode()) and tok.decode(ids) == "héllo"
    push = tok.stream_decoder()
    assert "".join(push([i]) for i in ids) + push([], final=True) == "héllo"
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(again, ByteTokenizer) and again.chat_template == CHATML
    assert tok.decode([104, 300, -1, 105]) == "h\ufffd\ufffdi"    # ids a wider model samples


def test_stream_decoder_holds_incomplete_characters(folder):
    tok = AutoTokenizer.from_pretrained(folder)
    text = "wörld ü Hello"
    ids = tok.encode(text)
    push = tok.stream_decoder()
    pieces = [push([i]) for i in ids] + [push([], final=True)]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_byte_tokenizer_refused_for_other_vocabularies(folder):
    check_tokenizer_matches(ByteTokenizer(), 256)
    with pytest.raises(ValueError, match="byte tokenizer .* vocab_size 49152"):
        check_tokenizer_matches(ByteTokenizer(), 49152)
    with pytest.raises(ValueError, match="model's vocab_size is 100"):
        check_tokenizer_matches(AutoTokenizer.from_pretrained(folder), 100)


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no tokenizer.json"):
        AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no folder or file"):
        AutoTokenizer.from_pretrained(tmp_path / "nope")


def test_save_pretrained_returns_digests_and_keeps_the_manifest_true(folder, tmp_path):
    """save_pretrained writes through the atomic writer, returns each file's digest and records
    it in the folder's manifest; from_pretrained refuses a listed file that was damaged."""
    from genesis._atomic import sha256_file
    from genesis.models.transformers.manifest import (CheckpointCorruptError, read_manifest,
                                                      write_manifest)
    write_manifest(tmp_path, {})                              # a genesis checkpoint folder
    tok = AutoTokenizer.from_pretrained(folder)
    digests = tok.save_pretrained(tmp_path)
    assert sorted(digests) == ["tokenizer.json", "tokenizer_config.json"]
    listed = read_manifest(tmp_path)
    for name, digest in digests.items():
        assert digest == sha256_file(tmp_path / name)
        assert listed[name] == {"sha256": digest.sha256, "size": digest.size}
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.encode("Hello there") == tok.encode("Hello there")
    assert again.chat_template == CHATML and again.eos_token == "<|im_end|>"
    assert _hf(tmp_path)("Hello there")["input_ids"] == tok.encode("Hello there")
    byte_digests = ByteTokenizer().save_pretrained(tmp_path / "bytes")
    assert byte_digests["tokenizer_config.json"] == sha256_file(
        tmp_path / "bytes" / "tokenizer_config.json")
    path = tmp_path / "tokenizer.json"
    path.write_text(path.read_text().replace("Hello", "Jello", 1))
    with pytest.raises(CheckpointCorruptError, match="tokenizer.json"):
        AutoTokenizer.from_pretrained(tmp_path)
