"""Faults injected into `genesis train`: kill -9 mid-save, concurrent runs, stale locks,
truncated and bit-flipped files of every kind, SIGTERM, a full disk, a silently bad write.
Each ends with a loadable checkpoint and a clear one-line message."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from genesis import _atomic
from genesis.cli import main
from genesis.models.transformers import MoEForCausalLM
from genesis.models.transformers.manifest import verify_checkpoint
from tests.train_fixtures import ROOT, losses, one_line_error, train_argv, write_inputs

CHECKPOINT_FILES = ("config.json", "model.safetensors", "training_state.safetensors",
                    "train_args.json", "tokenizer_config.json", "genesis_manifest.json")
MODEL_FILES = ("config.json", "model.safetensors", "genesis_manifest.json")
GENERATE_READS = MODEL_FILES + ("tokenizer_config.json",)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 8-step run (checkpoints at 4 and 8): its folder and losses."""
    folder = write_inputs(tmp_path_factory.mktemp("reference"))
    assert main(train_argv(folder, folder / "run")) == 0
    return folder, losses(folder / "run")


@pytest.fixture()
def inputs(tmp_path):
    return write_inputs(tmp_path)


def _step_of(checkpoint):
    with open(os.path.join(checkpoint, "train_args.json")) as f:
        return json.load(f)["global_step"]


def _child(script, argv):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", script, *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, child, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert child.poll() is None, f"child exited before {what}: {child.stderr.read()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


_KILL_DURING_SECOND_SAVE = """
import os, sys, time
from genesis import _atomic
from genesis.cli import main
from genesis.train import trainer
marker = sys.argv[1]
saves = []
real_save = trainer.Trainer._save_checkpoint
def save(self):
    saves.append(self.state.global_step)
    return real_save(self)
trainer.Trainer._save_checkpoint = save
real_write = _atomic._HashingWriter.write
def write(self, data):
    if len(saves) == 2:
        view = memoryview(data).cast("B")
        real_write(self, view[: len(view) // 2])
        self.flush()
        open(marker, "w").close()
        time.sleep(300)
    return real_write(self, data)
_atomic._HashingWriter.write = write
sys.exit(main(sys.argv[2:]))
"""


def test_kill_9_during_save_keeps_the_last_checkpoint_and_resumes_exactly(inputs, reference,
                                                                         capfd):
    out, marker = inputs / "run", inputs / "saving"
    child = _child(_KILL_DURING_SECOND_SAVE, [str(marker), *train_argv(inputs, out)])
    try:
        _wait_for(marker.exists, child, "the second save")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert _step_of(out / "checkpoint") == 4
    verify_checkpoint(out / "checkpoint")
    assert (out / "checkpoint.tmp").is_dir() and (out / "run.lock").is_file()
    MoEForCausalLM.from_pretrained(out / "checkpoint")
    assert main(train_argv(inputs, out, extra=["--resume"])) == 0
    err = capfd.readouterr().err
    assert "took over the stale lock of a run that is no longer running" in err
    assert losses(out) == reference[1]
    assert not (out / "checkpoint.tmp").exists() and not (out / "run.lock").exists()


_LONG_RUN = """
import sys
from genesis.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_concurrent_run_is_refused_and_sigterm_saves(inputs):
    out = inputs / "run"
    argv = train_argv(inputs, out, steps=100000, extra=["--save-every", "0", "--eval-every",
                                                          "0"])
    child = _child(_LONG_RUN, argv)
    try:
        metrics = out / "metrics.jsonl"
        _wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0, child,
                  "the first step")
        for extra in (["--resume"], ["--overwrite"], []):
            second = subprocess.run([sys.executable, "-m", "genesis",
                                     *train_argv(inputs, out, steps=100000, extra=extra)],
                                    capture_output=True, text=True, timeout=300,
                                    env=dict(os.environ, PYTHONPATH=ROOT))
            assert second.returncode == 2, (extra, second.stderr)
            if extra == []:
                assert one_line_error(second.stderr, "already holds", "--resume",
                                      "--overwrite")
            elif extra == ["--resume"]:
                assert one_line_error(second.stderr, "no checkpoint")
            else:
                assert one_line_error(second.stderr, "in use by another run",
                                      f"process {child.pid}")
        assert metrics.exists()                  # --overwrite deleted nothing of the live run
        os.kill(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM received: saving a checkpoint" in err
    steps = [s for s, _ in losses(out)]
    assert steps == list(range(1, len(steps) + 1))      # one run's records, none mixed in
    assert _step_of(out / "checkpoint") == steps[-1]
    verify_checkpoint(out / "checkpoint")
    assert not (out / "run.lock").exists()


def test_second_run_into_a_locked_folder_names_the_owner(inputs, capsys):
    from genesis.train.run_dir import RunLock
    out = inputs / "run"
    out.mkdir()
    with RunLock(str(out)):
        assert main(train_argv(inputs, out, steps=2, extra=["--overwrite"])) == 2
    err = capsys.readouterr().err
    assert one_line_error(err, "in use by another run", f"process {os.getpid()}")


def _damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    else:
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:])
    return data


@pytest.mark.parametrize("how", ["truncated", "bit-flipped"])
@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_damaged_checkpoint_file_is_named_and_nothing_is_overwritten(reference, tmp_path,
                                                                     capsys, name, how):
    folder, reference_losses = reference
    run = tmp_path / "run"
    shutil.copytree(folder / "run", run)
    argv = train_argv(folder, run, steps=12, extra=["--resume"])
    target = run / "checkpoint" / name
    original = _damage(target, how)
    damaged = target.read_bytes()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert one_line_error(err, name), err
    assert target.read_bytes() == damaged                     # left for the user to inspect
    if name in GENERATE_READS:
        proc = subprocess.run([sys.executable, "-m", "genesis", "generate", "--checkpoint",
                               str(run / "checkpoint"), "--max-new-tokens", "4"],
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=ROOT))
        assert proc.returncode == 2 and one_line_error(proc.stderr, name), proc.stderr
    if name in MODEL_FILES:
        with pytest.raises(RuntimeError, match=name):
            MoEForCausalLM.from_pretrained(run / "checkpoint")
    target.write_bytes(original)
    assert main(argv) == 0                                    # repaired: resumes and goes on
    assert losses(run)[:8] == reference_losses


def test_torn_last_metrics_line_is_dropped_and_a_damaged_one_is_refused(reference, tmp_path,
                                                                        capfd):
    folder, reference_losses = reference
    run = tmp_path / "run"
    shutil.copytree(folder / "run", run)
    metrics = run / "metrics.jsonl"
    good = metrics.read_text()
    metrics.write_text(good + '{"step": 9, "loss": 4.1')      # a crash mid-append
    assert main(train_argv(folder, run, steps=10, extra=["--resume"])) == 0
    err = capfd.readouterr().err
    assert "skipped a torn last line (line" in err
    assert losses(run)[:8] == reference_losses and [s for s, _ in losses(run)][-1] == 10

    lines = good.splitlines(keepends=True)
    metrics.write_text("".join(lines[:3]) + "{garbage\n" + "".join(lines[3:]))
    assert main(train_argv(folder, run, steps=12, extra=["--resume"])) == 2
    assert one_line_error(capfd.readouterr().err, "metrics.jsonl line 4 is damaged")


def test_disk_full_during_save_keeps_the_previous_checkpoint(inputs, reference, capsys,
                                                             monkeypatch):
    from genesis.train import trainer
    out = inputs / "run"
    saves = []
    real_save, real_write = trainer.Trainer._save_checkpoint, _atomic._HashingWriter.write

    def save(self):
        saves.append(self.state.global_step)
        return real_save(self)

    def write(self, data):
        if len(saves) == 2 and self.size > 1000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "model.safetensors")
        return real_write(self, data)

    monkeypatch.setattr(trainer.Trainer, "_save_checkpoint", save)
    monkeypatch.setattr(_atomic._HashingWriter, "write", write)
    assert main(train_argv(inputs, out)) == 1
    err = capsys.readouterr().err
    assert one_line_error(err, "No space left on device", "the checkpoint of step 4 is intact")
    assert _step_of(out / "checkpoint") == 4
    verify_checkpoint(out / "checkpoint")
    leftovers = [n for n in os.listdir(out) if n.endswith(".tmp") or n == "checkpoint.tmp"]
    assert leftovers == [] and os.listdir(out / "checkpoint").count("genesis_manifest.json") == 1
    assert not (out / "run.lock").exists()
    monkeypatch.undo()
    assert main(train_argv(inputs, out, extra=["--resume"])) == 0
    assert losses(out) == reference[1]


def test_a_silently_bad_write_is_caught_before_the_swap(inputs, capsys, monkeypatch):
    """The disk returns other bytes than were written: verification refuses the new checkpoint
    and the previous one stays in place."""
    from genesis.train import trainer
    out = inputs / "run"
    saves = []
    real_save = trainer.Trainer._save_checkpoint

    def save(self):
        saves.append(self.state.global_step)
        return real_save(self)

    def write(self, data):
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self.size += len(view)
        if len(saves) == 2 and len(view) > 100:
            view = bytes(view[:-1]) + bytes([view[-1] ^ 1])
        self._f.write(view)
        return len(view)

    monkeypatch.setattr(trainer.Trainer, "_save_checkpoint", save)
    monkeypatch.setattr(_atomic._HashingWriter, "write", write)
    assert main(train_argv(inputs, out)) == 1
    assert one_line_error(capsys.readouterr().err, "cannot write the checkpoint", "damaged",
                          "the checkpoint of step 4 is intact")
    assert _step_of(out / "checkpoint") == 4
    monkeypatch.undo()
    verify_checkpoint(out / "checkpoint")


def test_crash_between_the_two_renames_of_a_swap_resumes_from_the_old_copy(reference, tmp_path):
    folder, reference_losses = reference
    run = tmp_path / "run"
    shutil.copytree(folder / "run", run)
    os.replace(run / "checkpoint", run / "checkpoint.old")
    assert main(train_argv(folder, run, steps=10, extra=["--resume"])) == 0
    assert losses(run)[:8] == reference_losses
    assert (run / "checkpoint").is_dir() and not (run / "checkpoint.old").exists()
