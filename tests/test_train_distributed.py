"""`genesis train` under mpirun: 2-rank data-parallel and expert-parallel runs follow the
1-process loss curve; rank 0 alone writes; an expert-parallel run resumes exactly."""
import json
import os

import pytest

from genesis.cli import main
from tests.parallel import run_mpi
from tests.test_cli import TEXT, TINY

# Aux loss off: it is computed per rank on local tokens, so with it the curves would differ by
# design. A flat learning rate makes a 3-step run resumed to 6 the same run as 6 steps.
CONFIG = dict(TINY, router_aux_loss_coef=0.0)


@pytest.fixture()
def run_dir(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT)
    (tmp_path / "tiny.json").write_text(json.dumps(CONFIG))
    return tmp_path


def _argv(run_dir, out, steps, extra=()):
    return ["train", "--config", str(run_dir / "tiny.json"), "--data", str(run_dir / "corpus.txt"),
            "--steps", str(steps), "--batch-size", "4", "--seq-len", "16", "--eval-every", "3",
            "--save-every", "3", "--eval-windows", "4", "--out", str(out), "--sample-tokens", "4",
            "--min-lr-ratio", "1.0", "--warmup-steps", "1", "--quiet", *extra]


def _losses(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def _close(a, b):
    assert [s for s, _ in a] == [s for s, _ in b]
    assert all(abs(x - y) < 1e-4 for (_, x), (_, y) in zip(a, b)), (a, b)


def test_mpirun_train_data_and_expert_parallel_follow_one_process(run_dir):
    assert main(_argv(run_dir, run_dir / "one", 6)) == 0
    reference = _losses(run_dir / "one")
    out = run_mpi(2, "genesis", *_argv(run_dir, run_dir / "dp", 6))
    assert out.count("final validation loss") == 1        # rank 0 alone reports
    _close(_losses(run_dir / "dp"), reference)
    run_mpi(2, "genesis", *_argv(run_dir, run_dir / "ep", 6, ["--expert-parallel"]))
    _close(_losses(run_dir / "ep"), reference)
    for name in ("checkpoint/config.json", "checkpoint/model.safetensors", "loss.png"):
        assert (run_dir / "ep" / name).is_file(), name


def test_mpirun_expert_parallel_resume_matches_uninterrupted(run_dir):
    ep = ["--expert-parallel"]
    run_mpi(2, "genesis", *_argv(run_dir, run_dir / "full", 6, ep))
    run_mpi(2, "genesis", *_argv(run_dir, run_dir / "part", 3, ep))
    run_mpi(2, "genesis", *_argv(run_dir, run_dir / "part", 6, ep + ["--resume"]))
    assert _losses(run_dir / "part") == _losses(run_dir / "full")


def test_mpirun_genesis_router_with_births_follows_one_process(run_dir):
    """With the Genesis router (births every 2 steps) the routers update from the statistics
    of all ranks, so data- and expert-parallel runs make the one-process births and follow its
    losses (the born expert's weights and moments cross ranks under expert parallelism)."""
    genesis_cfg = dict(CONFIG, router_type="genesis", genesis_max_new_experts=2,
                       genesis_mitosis_interval=2, genesis_split_ratio=1.0)
    (run_dir / "tiny.json").write_text(json.dumps(genesis_cfg))
    assert main(_argv(run_dir, run_dir / "one", 4)) == 0
    run_mpi(2, "genesis", *_argv(run_dir, run_dir / "dp", 4))
    run_mpi(2, "genesis", *_argv(run_dir, run_dir / "ep", 4, ["--expert-parallel"]))

    def births(out):
        with open(os.path.join(out, "metrics.jsonl")) as f:
            return [r["mitosis"] for r in map(json.loads, f) if "mitosis" in r]
    assert births(run_dir / "one")
    for run in ("dp", "ep"):
        assert births(run_dir / run) == births(run_dir / "one"), run
        _close(_losses(run_dir / run), _losses(run_dir / "one"))
