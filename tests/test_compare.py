"""``genesis compare``: the interpolation at equal budgets, the mean +- std over repeats, the
FLOPs bookkeeping, matched parameter budgets, and a tiny end-to-end comparison that writes
every file with every column."""
import importlib.util
import json
import math
import os

import pytest

from genesis.cli import main
from genesis.train.compare import (METRICS, CompareSize, CurveRecorder, expert_flops_per_token,
                                   interpolate, mode_config, summarize, value_at_budget)
from genesis.train.compare_report import format_cell, markdown

TINY = ["--steps", "4", "--eval-every", "2", "--hidden", "32", "--intermediate", "32",
        "--layers", "1", "--heads", "2", "--seq-len", "32", "--batch-size", "4",
        "--eval-windows", "4"]
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "compare_routers.py")


def test_interpolate_on_synthetic_curves():
    xs, ys = [0.0, 10.0, 20.0, 40.0], [5.0, 3.0, 2.0, 1.0]
    assert interpolate(xs, ys, 0.0) == 5.0
    assert interpolate(xs, ys, 5.0) == 4.0
    assert interpolate(xs, ys, 10.0) == 3.0
    assert interpolate(xs, ys, 30.0) == 1.5
    assert interpolate(xs, ys, 40.0) == 1.0
    with pytest.raises(ValueError, match="outside the curve"):
        interpolate(xs, ys, 41.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        interpolate([0.0, 2.0, 1.0], ys[:3], 0.5)


def _run(mode, seed, flops, loss, seconds=None, **figures):
    curve = {"step": [0, 10, 20], "expert_flops": flops, "val_loss": loss,
             "seconds": seconds or [0.0, 1.0, 2.0]}
    row = {"mode": mode, "seed": seed, "curve": curve, "val_loss": loss[-1]}
    row.update({key: 1.0 for key, _, _ in METRICS if key not in row})
    row.update(figures)
    return row


def test_value_at_budget_interpolates_every_run_at_the_smallest_final_budget():
    # mixtral spends 200 FLOPs, genesis 100: the comparison is at 100, where mixtral's curve
    # is halfway between its first two evaluations.
    mixtral = _run("mixtral", 0, [0.0, 100.0 / 0.5 / 2, 200.0], [6.0, 4.0, 3.0])
    genesis = _run("genesis", 0, [0.0, 50.0, 100.0], [6.0, 4.5, 3.5])
    budget, losses = value_at_budget([mixtral, genesis], "expert_flops")
    assert budget == 100.0
    assert losses == [4.0, 3.5]


def test_repeats_give_mean_and_sample_std():
    runs = [_run("mixtral", 0, [0.0, 1.0, 2.0], [5.0, 4.0, 3.0], load_cv=0.2, joules=None),
            _run("mixtral", 1, [0.0, 1.0, 2.0], [5.0, 4.0, 1.0], load_cv=0.4, joules=None),
            _run("genesis", 0, [0.0, 1.0, 2.0], [5.0, 4.0, 2.0], load_cv=0.3, joules=None),
            _run("genesis", 1, [0.0, 1.0, 2.0], [5.0, 4.0, 2.0], load_cv=0.3, joules=None)]
    summary, budgets = summarize(runs)
    assert budgets == {"seconds": 2.0, "expert_flops": 2.0}
    mean, std, n = summary["mixtral"]["val_loss"]
    assert (mean, n) == (2.0, 2) and std == pytest.approx(math.sqrt(2.0))
    assert summary["mixtral"]["load_cv"][:2] == pytest.approx((0.3, math.sqrt(0.02)))
    assert summary["genesis"]["val_loss_at_flops"] == (2.0, 0.0, 2)
    assert summary["genesis"]["joules"] is None
    assert format_cell(summary["mixtral"]["val_loss"], ".4f") == "2.0000 ± 1.4142"
    assert format_cell((2.0, 0.0, 1), ".4f") == "2.0000"
    assert format_cell(None, ".4f") == "unavailable"


def test_curve_recorder_accumulates_time_and_expert_flops():
    size = CompareSize(hidden=32, intermediate=64, layers=2, heads=2)
    config = mode_config("deepseek", size)
    rec = CurveRecorder(config, tokens_per_step=100, initial_loss=5.5)
    rec.on_log(None, None, {"step": 1, "loss": 5.0, "tokens_per_s": 400.0,
                            "active_experts": 3.0, "expert_load": [[0.1] * 7, [0.1] * 7]})
    rec.on_log(None, None, {"step": 2, "loss": 4.0, "tokens_per_s": 200.0,
                            "active_experts": 2.0, "expert_load": [[0.1] * 7, [0.1] * 7]})
    rec.on_log(None, None, {"step": 2, "val_loss": 4.2})
    # per token and layer: 18 * hidden * (routed experts x 32 + the shared expert's 32)
    per_token = [18 * 32 * (3 * 32 + 32) * 2, 18 * 32 * (2 * 32 + 32) * 2]
    assert rec.curve == {"step": [0, 2], "seconds": [0.0, 0.25 + 0.5],
                         "expert_flops": [0.0, 100 * sum(per_token)],
                         "val_loss": [5.5, 4.2]}
    assert expert_flops_per_token(config, 3.0, 2) == per_token[0]


def test_modes_share_the_total_and_active_expert_budget():
    size = CompareSize(hidden=32, intermediate=64)
    configs = {mode: mode_config(mode, size) for mode in ("mixtral", "deepseek", "genesis")}
    total = {m: c.num_local_experts * c.moe_intermediate_size +
             (c.shared_expert_intermediate_size or 0) for m, c in configs.items()}
    assert total == {"mixtral": 256, "deepseek": 256, "genesis": 256}
    active = {m: c.num_experts_per_tok * c.moe_intermediate_size +
              (c.shared_expert_intermediate_size or 0) for m, c in configs.items()}
    assert active == {"mixtral": 128, "deepseek": 128, "genesis": 128}
    assert configs["genesis"].router_type == "genesis"
    assert configs["genesis"].genesis_max_new_experts == 0
    tuned = mode_config("genesis", size, genesis_overrides={"genesis_threshold": 0.6})
    assert tuned.genesis_threshold == 0.6


def test_tiny_comparison_writes_every_file_and_column(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp"
    assert main(["compare", "--out", str(out), "--repeats", "2", *TINY]) == 0
    for name in ("results.md", "results.json", "loss_vs_flops.png", "loss_vs_time.png",
                 "bars.png"):
        assert (out / name).stat().st_size > 0, name
    for name in ("loss_vs_flops.png", "loss_vs_time.png", "bars.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "results.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| mode | params"))
    assert [c.strip() for c in header.strip("|").split("|")] == \
        ["mode"] + [label for _, label, _ in METRICS]
    for mode in ("mixtral", "deepseek", "genesis"):
        row = next(line for line in md.splitlines() if line.startswith(f"| {mode} | 0."))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == len(METRICS) + 1
        assert all("±" in c for c, (key, _, _) in zip(cells[1:], METRICS)
                   if key not in ("params", "joules", "joules_per_token"))
    results = json.loads((out / "results.json").read_text())
    by = {(r["mode"], r["seed"]): r["val_loss_at_flops"] for r in results["runs"]}
    paired = [by["genesis", s] - by["mixtral", s] for s in (0, 1)]
    assert "- paired per seed, genesis - mixtral at equal expert FLOPs: " + \
        ", ".join(f"{d:+.4f}" for d in paired) in md
    assert markdown(results) == md     # results.json alone redraws the same report
    rows = [line.split("|")[1].strip() for line in md.splitlines()
            if line.startswith("| ") and line.split("|")[2].strip().endswith("M")]
    assert rows == ["mixtral", "deepseek", "genesis"]
    assert len(results["runs"]) == 6 and results["seeds"] == [0, 1]
    for run in results["runs"]:
        curve = run["curve"]
        assert curve["step"] == [0, 2, 4]
        assert curve["seconds"][0] == 0.0 and curve["seconds"][-1] == run["seconds"] > 0
        assert curve["expert_flops"][-1] == run["expert_flops"] > 0
        assert 1.0 <= run["experts_per_token"] <= (3.0 if run["mode"] == "deepseek" else 2.0)
    assert results["summary"]["genesis"]["val_loss"][2] == 2
    assert "wrote" in capsys.readouterr().out
    # an existing comparison is never overwritten without --overwrite
    assert main(["compare", "--out", str(out), "--repeats", "1", *TINY]) == 2
    assert "already holds comparison results" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--modes", "mixtral,switch"], "--modes"),
    (["--intermediate", "33"], "must be even"),
    (["--hidden", "30", "--heads", "4"], "not divisible"),
])
def test_bad_options_give_one_line_error(tmp_path, capsys, argv, message):
    assert main(["compare", "--out", str(tmp_path / "x"), *TINY, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_example_script_runs_a_tiny_comparison(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("compare_routers", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path / "ex"), "--steps", "2", "--repeats", "1", "--hidden",
                 "32", "--intermediate", "32", "--layers", "1", "--seq-len", "32",
                 "--batch-size", "4"])
    out = capsys.readouterr().out
    for mode in ("mixtral", "deepseek", "genesis"):
        assert f"{mode:<9} val loss at equal expert FLOPs" in out
    assert (tmp_path / "ex" / "results.md").is_file()
