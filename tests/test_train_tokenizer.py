"""The tokenizer of `genesis train` is the library's: each checkpoint holds its save_pretrained
files (loaded by genesis's and transformers' AutoTokenizer), checked against the manifest;
checkpoints of the earlier format resume exactly; tokenizer problems are one-line errors."""
import json
import sys

import pytest

from genesis._atomic import sha256_file
from genesis.cli import main
from genesis.models.transformers import AutoTokenizer, ByteTokenizer, PreTrainedTokenizerFast
from genesis.models.transformers.manifest import read_manifest, update_manifest
from tests.train_fixtures import (TEXT, interrupt_at_step, losses, one_line_error, train_argv,
                                  write_inputs)

SAMPLE = "Experts specialise; the router learns which expert reads which token."


@pytest.fixture()
def inputs(tmp_path):
    return write_inputs(tmp_path)


def _word_tokenizer(folder):
    """A word-level tokenizer.json trained on the corpus; returns its path."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers
    tok = tokenizers.Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([TEXT], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    path = folder / "tokenizer.json"
    tok.save(str(path))
    return path


def _assert_listed(checkpoint, names):
    listed = read_manifest(checkpoint)
    for name in names:
        digest = sha256_file(checkpoint / name)
        assert listed[name] == {"sha256": digest.sha256, "size": digest.size}, name


def test_byte_run_saves_a_tokenizer_autotokenizer_loads(inputs):
    out = inputs / "run"
    assert main(train_argv(inputs, out, steps=4)) == 0
    checkpoint = out / "checkpoint"
    _assert_listed(checkpoint, ["tokenizer_config.json"])
    tok = AutoTokenizer.from_pretrained(checkpoint)
    assert isinstance(tok, ByteTokenizer)
    assert tok.encode("héllo") == list("héllo".encode()) and tok.decode([104, 300]) == "h\ufffd"


def test_hf_run_saves_a_tokenizer_json_genesis_and_transformers_load(inputs):
    Tokenizer = pytest.importorskip("tokenizers").Tokenizer   # the optional tokenizers extra
    source = _word_tokenizer(inputs)
    out = inputs / "run"
    assert main(train_argv(inputs, out, steps=4, extra=["--tokenizer", str(source)])) == 0
    checkpoint = out / "checkpoint"
    _assert_listed(checkpoint, ["tokenizer.json", "tokenizer_config.json"])
    expected = Tokenizer.from_file(str(source)).encode(SAMPLE).ids
    ours = AutoTokenizer.from_pretrained(checkpoint)
    assert isinstance(ours, PreTrainedTokenizerFast) and ours.encode(SAMPLE) == expected
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    assert theirs(SAMPLE)["input_ids"] == expected
    assert len(theirs) == ours.vocab_size


def _write_previous_format(checkpoint, kind):
    """Rewrite the tokenizer files as the previous `genesis train` wrote them (a compact
    tokenizer.json, tokenizer_config.json holding only the type) and list them in the
    manifest, as that version did."""
    files = {"tokenizer_config.json": json.dumps({"type": kind}, indent=2) + "\n"}
    if kind == "hf":
        from tokenizers import Tokenizer
        files["tokenizer.json"] = Tokenizer.from_file(str(checkpoint / "tokenizer.json")).to_str()
    for name, text in files.items():
        (checkpoint / name).write_text(text, encoding="utf-8")
    update_manifest(checkpoint, {name: sha256_file(checkpoint / name) for name in files})


@pytest.mark.parametrize("kind", ["byte", "hf"])
def test_checkpoint_of_the_previous_format_resumes_exactly(inputs, monkeypatch, capsys, kind):
    extra = ["--tokenizer", str(_word_tokenizer(inputs))] if kind == "hf" else []
    assert main(train_argv(inputs, inputs / "full", steps=10, extra=extra)) == 0
    reference = losses(inputs / "full")
    out = inputs / "parted"
    interrupt_at_step(monkeypatch, 3)
    assert main(train_argv(inputs, out, steps=10, extra=extra)) == 130
    monkeypatch.undo()
    checkpoint = out / "checkpoint"
    _write_previous_format(checkpoint, kind)
    tok = AutoTokenizer.from_pretrained(checkpoint)
    assert tok.name == kind
    assert main(["generate", "--checkpoint", str(out), "--prompt", "Experts ",
                 "--max-new-tokens", "4", "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(train_argv(inputs, out, steps=10, extra=["--resume"])) == 0
    assert losses(out) == reference
    assert f"({kind} tokenizer)" in capsys.readouterr().out


def _error(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


def test_tokenizer_problems_are_one_line_errors(inputs, capsys, monkeypatch):
    source = _word_tokenizer(inputs)
    hf_run = inputs / "hf"
    assert main(train_argv(inputs, hf_run, steps=4, extra=["--tokenizer", str(source)])) == 0
    capsys.readouterr()

    bad = inputs / "bad.json"
    bad.write_text("{not a tokenizer")
    code, err = _error(train_argv(inputs, inputs / "r1", extra=["--tokenizer", str(bad)]), capsys)
    assert code == 2 and one_line_error(err, "cannot read", "bad.json"), err
    code, err = _error(train_argv(inputs, inputs / "r2",
                                  extra=["--tokenizer", str(inputs / "none.json")]), capsys)
    assert code == 2 and one_line_error(err, "tokenizer not found", "none.json"), err
    empty = inputs / "empty"
    empty.mkdir()
    code, err = _error(train_argv(inputs, inputs / "r3", extra=["--tokenizer", str(empty)]),
                       capsys)
    assert code == 2 and one_line_error(err, "holds no tokenizer.json"), err

    tokenizer_json = hf_run / "checkpoint" / "tokenizer.json"
    original = tokenizer_json.read_bytes()
    tokenizer_json.write_bytes(original.replace(b"experts", b"Experts", 1))
    code, err = _error(train_argv(inputs, hf_run, steps=6, extra=["--resume"]), capsys)
    assert code == 2 and one_line_error(err, "tokenizer.json", "damaged"), err
    code, err = _error(["generate", "--checkpoint", str(hf_run)], capsys)
    assert code == 2 and one_line_error(err, "tokenizer.json", "damaged"), err
    tokenizer_json.write_bytes(original)

    monkeypatch.setitem(sys.modules, "tokenizers", None)      # the optional package is absent
    code, err = _error(train_argv(inputs, inputs / "r4", extra=["--tokenizer", str(source)]),
                       capsys)
    assert code == 2 and one_line_error(err, "'tokenizers' package", "pip install"), err
    code, err = _error(train_argv(inputs, hf_run, steps=6, extra=["--resume"]), capsys)
    assert code == 2 and one_line_error(err, "'tokenizers' package", "pip install"), err
