"""The `genesis` command end to end on a tiny model: train, resume, generate, errors."""
import json
import os
import subprocess
import sys

import pytest

from genesis.cli import build_parser, main
from tests.train_fixtures import TEXT, TINY, interrupt_at_step, write_inputs
from tests.train_fixtures import train_argv as _train_argv


@pytest.fixture()
def run_dir(tmp_path):
    return write_inputs(tmp_path)


def _losses(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def test_train_writes_checkpoint_metrics_and_sample(run_dir, capsys):
    out = run_dir / "run"
    assert main(_train_argv(run_dir, out)) == 0
    ckpt = out / "checkpoint"
    for name in ("config.json", "training_state.safetensors", "train_args.json",
                 "tokenizer_config.json"):
        assert (ckpt / name).is_file(), name
    assert [s for s, _ in _losses(out)] == list(range(1, 9))
    with open(out / "metrics.jsonl") as f:
        vals = [json.loads(line) for line in f if "val_loss" in line]
    assert [v["step"] for v in vals] == [4, 8]
    printed = capsys.readouterr().out
    assert "final validation loss" in printed and "sample:" in printed
    page = (out / "routing.html").read_text()        # the routing dashboard of the run
    assert f"wrote {out / 'routing.html'}" in printed and "<svg" in page
    assert 'src="http' not in page and 'href="http' not in page    # self-contained


def test_resume_after_ctrl_c_matches_uninterrupted_run(run_dir, monkeypatch):
    full = run_dir / "full"
    assert main(_train_argv(run_dir, full, steps=10)) == 0
    reference = _losses(full)

    parted = run_dir / "parted"
    interrupt_at_step(monkeypatch, 3)
    assert main(_train_argv(run_dir, parted, steps=10)) == 130
    monkeypatch.undo()
    assert [s for s, _ in _losses(parted)] == [1, 2, 3]
    assert main(_train_argv(run_dir, parted, steps=10, extra=["--resume"])) == 0
    assert _losses(parted) == reference


def test_genesis_router_resume_with_mitosis_matches_uninterrupted_run(run_dir, monkeypatch):
    genesis_tiny = dict(TINY, router_type="genesis", genesis_max_new_experts=2,
                        genesis_mitosis_interval=2, genesis_split_ratio=1.0)
    (run_dir / "genesis.json").write_text(json.dumps(genesis_tiny))

    def argv(out, extra=()):
        args = _train_argv(run_dir, out, steps=10, extra=extra)
        args[args.index("--config") + 1] = str(run_dir / "genesis.json")
        return args

    full = run_dir / "full"
    assert main(argv(full)) == 0
    with open(full / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f if '"loss"' in line]
    births = [(r["step"], b["child"]) for r in records for b in r.get("mitosis", ())]
    assert {s for s, _ in births} == {2, 4}      # both free slots of each layer filled by step 4
    assert all(len(load) == 6 for r in records for load in r["expert_load"])
    assert records[0]["experts_alive"] == [4, 4] and records[-1]["experts_alive"] == [6, 6]
    for name in ("energy", "ssi", "overflow_fraction", "load_cv"):
        assert len(records[-1][name]) == 2, name
    try:
        import matplotlib  # noqa: F401  (the load plot must cope with experts being born)
        assert (full / "expert_load.png").stat().st_size > 1000
    except ImportError:
        pass

    parted = run_dir / "parted"
    interrupt_at_step(monkeypatch, 3)
    assert main(argv(parted)) == 130
    monkeypatch.undo()
    assert main(argv(parted, extra=["--resume"])) == 0
    assert _losses(parted) == _losses(full)
    with open(parted / "metrics.jsonl") as f:
        resumed = [json.loads(line) for line in f if '"loss"' in line]
    assert resumed == [dict(r, tokens_per_s=q["tokens_per_s"]) for r, q in zip(records, resumed)]


def test_generate_streams_text_from_checkpoint(run_dir):
    out = run_dir / "run"
    assert main(_train_argv(run_dir, out, steps=4)) == 0
    proc = subprocess.run([sys.executable, "-m", "genesis", "generate", "--checkpoint",
                           str(out / "checkpoint"), "--prompt", "genesis", "--max-new-tokens",
                           "12", "--temperature", "0"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("genesis") and len(proc.stdout) > len("genesis")


@pytest.mark.parametrize("case,extra,message", [
    ("missing data", ["--data", "/nonexistent/corpus.txt"], "data path not found"),
    ("seq too long", ["--seq-len", "4096"], "longer than the model's max_position_embeddings"),
    ("unknown preset", ["--preset", "no-such-model"], "unknown preset"),
])
def test_bad_input_gives_one_line_error(run_dir, case, extra, message):
    argv = [sys.executable, "-m", "genesis", "train", "--out", str(run_dir / "err"), "--steps",
            "2", "--quiet"]
    if "--preset" not in extra:
        argv += ["--config", str(run_dir / "tiny.json")]
    if "--data" not in extra:
        argv += ["--data", str(run_dir / "corpus.txt")]
    proc = subprocess.run(argv + extra, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_empty_corpus_and_foreign_checkpoint_are_rejected(run_dir, capsys):
    (run_dir / "empty.txt").write_text("   \n")
    argv = _train_argv(run_dir, run_dir / "e", steps=2)
    argv[argv.index("--data") + 1] = str(run_dir / "empty.txt")
    assert main(argv) == 2
    assert "empty" in capsys.readouterr().err

    out = run_dir / "run"
    assert main(_train_argv(run_dir, out, steps=4)) == 0
    other = dict(TINY, hidden_size=64)
    (run_dir / "other.json").write_text(json.dumps(other))
    argv = _train_argv(run_dir, out, steps=8, extra=["--resume"])
    argv[argv.index("--config") + 1] = str(run_dir / "other.json")
    assert main(argv) == 2
    assert "different configuration" in capsys.readouterr().err


def test_parser_defaults_are_the_documented_main_job():
    args = build_parser().parse_args(["train"])
    assert args.data is None and args.tokenizer is None and args.device == "cpu"
    assert args.preset is None and args.steps > 0


def test_info_lists_backends(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "NumPy (CPU)" in text and "CuPy (GPU)" in text and "presets:" in text


def test_plots_are_written_when_matplotlib_is_installed(run_dir):
    pytest.importorskip("matplotlib")
    out = run_dir / "run"
    assert main(_train_argv(run_dir, out, steps=4)) == 0
    for name in ("loss.png", "expert_load.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000, name


def test_plots_missing_matplotlib_gives_one_line_notice(run_dir, monkeypatch):
    import builtins
    from genesis.train.plotting import plot_metrics
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    lines = plot_metrics(str(run_dir / "metrics.jsonl"), str(run_dir))
    assert len(lines) == 1 and "matplotlib is not installed" in lines[0]


def test_train_and_generate_with_hf_tokenizer(run_dir):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers
    tok = tokenizers.Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([TEXT], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    tok.save(str(run_dir / "tokenizer.json"))
    out = run_dir / "tok"
    assert main(_train_argv(run_dir, out, steps=4,
                            extra=["--tokenizer", str(run_dir / "tokenizer.json")])) == 0
    assert (out / "checkpoint" / "tokenizer.json").is_file()
    proc = subprocess.run([sys.executable, "-m", "genesis", "generate", "--checkpoint",
                           str(out / "checkpoint"), "--prompt", "experts", "--max-new-tokens",
                           "5", "--seed", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("experts")
