"""`genesis plot`, generate seeding, --version, defaults in --help, the run folder named at the
start, and the README's commands and Python blocks run as written."""
import json
import os
import re
import subprocess
import sys

import pytest

from genesis.cli import build_parser, main
from tests.train_fixtures import ROOT, one_line_error, train_argv, write_inputs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = write_inputs(tmp_path_factory.mktemp("trained"))
    assert main(train_argv(folder, folder / "run", steps=8)) == 0
    return folder


def test_plot_redraws_the_plots_from_metrics(trained, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "copy"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes((trained / "run" / "metrics.jsonl").read_bytes() +
                                        b'{"step": 9, "lo')          # torn by a crash
    assert main(["plot", str(run)]) == 0
    captured = capsys.readouterr()
    assert f"wrote {run / 'loss.png'}" in captured.out
    assert "skipped a torn last line" in captured.err
    for name in ("loss.png", "expert_load.png"):
        data = (run / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000, name
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert one_line_error(capsys.readouterr().err, "has no metrics.jsonl")


def test_expert_load_plot_has_its_legend_outside_and_a_balanced_share_line(trained,
                                                                           monkeypatch):
    pytest.importorskip("matplotlib")
    from genesis.train import plotting
    figures = {}

    def keep(plt, fig, path):
        figures[os.path.basename(path)] = fig
        return f"wrote {path}"

    monkeypatch.setattr(plotting, "_save", keep)
    plotting.plot_metrics(str(trained / "run" / "metrics.jsonl"), str(trained / "run"))
    fig = figures["expert_load.png"]
    fig.canvas.draw()
    axes = fig.axes
    legend = axes[0].get_legend()
    box = legend.get_window_extent()
    for ax in axes:
        assert box.x0 >= ax.get_window_extent().x1        # right of every plot area
        balanced = [ln for ln in ax.get_lines() if ln.get_label() == "balanced share"]
        assert len(balanced) == 1 and set(balanced[0].get_ydata()) == {0.25}  # 4 experts


def test_generate_samples_anew_without_seed_and_reproducibly_with_one(trained, capsys):
    argv = ["generate", "--checkpoint", str(trained / "run" / "checkpoint"), "--prompt",
            "genesis", "--max-new-tokens", "40", "--temperature", "1.5", "--top-k", "0"]
    texts = []
    for extra in ([], [], ["--seed", "7"], ["--seed", "7"]):
        assert main(argv + extra) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] != texts[1]
    assert texts[2] == texts[3]


def test_version_and_defaults_in_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert re.fullmatch(r"genesis \d+\.\d+\.\d+\n", capsys.readouterr().out)
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for fragment in ("(default: 800)", "(default: 0.003)", "(default: runs/genesis-moe)",
                     "(default: 5% of --steps)", "(default: 128)"):
        assert fragment in re.sub(r"\s+", " ", text), fragment


def test_run_folder_is_named_first(trained, tmp_path, capsys):
    out = tmp_path / "named"
    assert main(train_argv(trained, out, steps=2)) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"run folder: {out}"


def test_resume_reuses_the_saved_options_and_compares_resolved_paths(trained, tmp_path,
                                                                     monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(train_argv(trained, out, steps=4)) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--steps", "6", "--quiet",
                 "--sample-tokens", "0"]) == 0
    assert "--steps changed from 4 to 6: the learning-rate schedule now decays to step 6" in \
        capsys.readouterr().err
    with open(out / "checkpoint" / "train_args.json") as f:
        record = json.load(f)
    assert record["global_step"] == 6
    assert record["metadata"]["options"]["config"] == str(trained / "tiny.json")
    assert record["training_args"]["per_device_train_batch_size"] == 4
    assert record["training_args"]["eval_steps"] == 4          # every saved option is reused
    assert record["metadata"]["options"]["sample_tokens"] == 0
    monkeypatch.chdir(trained)
    assert main(["train", "--out", str(out), "--resume", "--steps", "8", "--config",
                 "./tiny.json", "--data", "../" + trained.name + "/corpus.txt", "--quiet",
                 "--sample-tokens", "0"]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--steps", "10", "--batch-size",
                 "8"]) == 2
    assert one_line_error(capsys.readouterr().err, "different configuration",
                          "--batch-size is 4 there, 8 now")
    moved = tmp_path / "moved.txt"                      # same text elsewhere: accepted
    moved.write_bytes((trained / "corpus.txt").read_bytes())
    assert main(["train", "--out", str(out), "--resume", "--steps", "10", "--data",
                 str(moved), "--quiet", "--sample-tokens", "0"]) == 0
    moved.write_text((trained / "corpus.txt").read_text().upper())   # other text: refused
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--steps", "12", "--data",
                 str(moved), "--quiet"]) == 2
    assert one_line_error(capsys.readouterr().err, "training data differs")


def _readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_readme_quick_start_is_two_commands_installing_the_plot_extra():
    quick = _readme().split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert block[0] == 'pip install ".[plot]" && genesis train'
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        assert re.search(r'^plot = \["matplotlib', f.read(), re.M)


def test_readme_python_blocks_run_as_written(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", _readme(), re.S)
    assert len(blocks) >= 3
    for i, code in enumerate(blocks):
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))
        assert proc.returncode == 0, f"README block {i}:\n{code}\n{proc.stderr}"


def test_resume_reuses_the_saved_dtype(trained, tmp_path, capsys):
    out = tmp_path / "bf16"
    assert main(train_argv(trained, out, steps=2, extra=["--dtype", "bf16"])) == 0
    assert main(["train", "--out", str(out), "--resume", "--steps", "3", "--quiet"]) == 0
    with open(out / "checkpoint" / "train_args.json") as f:
        assert json.load(f)["training_args"]["bf16"] is True
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--steps", "4", "--dtype", "fp32"]) == 2
    assert one_line_error(capsys.readouterr().err, "--dtype is 'bf16' there, 'fp32' now")
