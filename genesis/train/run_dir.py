"""The run folder: its lock, its checkpoints and its metrics log.

A run folder holds ``checkpoint/`` (HF layout + training state + checksum manifest),
``metrics.jsonl`` and the plots. One process at a time may train into it (``RunLock``). A
checkpoint is written into ``checkpoint.tmp/``, read back and verified against its manifest,
and only then swapped in for the previous one, so a crash, a full disk or a bad write never
leaves the run without a good checkpoint.
"""
import errno
import json
import os
import shutil
import socket
import time

from .._atomic import atomic_write, fsync_dir
from ..models.transformers.manifest import (MANIFEST_NAME, CheckpointCorruptError,
                                            verify_checkpoint, write_manifest)

__all__ = ["TrainingError", "CheckpointSaveError", "RunLock", "MetricsLog", "CHECKPOINT",
           "STATE_FILE", "ARGS_FILE", "METRICS_FILE", "LOCK_FILE", "PLOT_FILES",
           "prepare_output_dir", "find_checkpoint", "read_checkpoint_record", "describe_run",
           "clear_run", "save_checkpoint", "read_metrics_records"]

CHECKPOINT = "checkpoint"
STATE_FILE = "training_state.safetensors"
ARGS_FILE = "train_args.json"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = "run.lock"
PLOT_FILES = ("loss.png", "expert_load.png")


class TrainingError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


class CheckpointSaveError(TrainingError):
    """Writing a checkpoint failed (e.g. the disk is full); the previous one is intact."""


def prepare_output_dir(path):
    """Create the run folder, or raise ``TrainingError`` when it is a file or not writable."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise TrainingError(f"the output folder {path} is a file; pass a folder path")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise TrainingError(f"cannot create the output folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise TrainingError(f"the output folder {path} is not writable")


class RunLock:
    """An exclusive lock on a run folder: ``run.lock`` holds the owner's pid, host and start
    time and is ``flock``ed while the run lives. The kernel drops the lock when the owner
    dies, so a lock file left by a killed run is stale and taken over (``self.stale`` then
    holds what it recorded)."""

    def __init__(self, directory):
        self.path = os.path.join(directory, LOCK_FILE)
        self.directory = directory
        self.stale = None
        self._fd = None

    def acquire(self):
        """Take the lock or raise ``TrainingError`` naming the process that holds it."""
        import fcntl
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise TrainingError(f"cannot create the lock {self.path}: "
                                    f"{exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = _read_owner(fd)
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise TrainingError(f"cannot lock {self.path}: {exc.strerror}") from None
                raise TrainingError(
                    f"{self.directory} is in use by another run ({_describe(owner)}); wait for "
                    "it to finish, stop it, or choose another output folder") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)            # the previous owner removed the file as we opened it
        self.stale = _read_owner(fd)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record + b"\n", 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self):
        """Remove the lock file and drop the lock."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def _read_owner(fd):
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data.decode()) if data.strip() else None
    except (OSError, ValueError):
        return {"pid": "?", "host": "?", "started": "?"}


def _describe(owner):
    if not owner:
        return "process unknown"
    return f"process {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}"


def find_checkpoint(out_dir):
    """The run's checkpoint folder (``checkpoint/``, or ``checkpoint.old/`` when a crash hit
    between the two renames of a swap), or None."""
    for name in (CHECKPOINT, CHECKPOINT + ".old"):
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            return path
    return None


def read_checkpoint_record(path):
    """Verify every file of the checkpoint at ``path`` against its manifest and return its
    ``train_args.json``; ``TrainingError`` names a missing or damaged file."""
    if not os.path.isfile(os.path.join(path, MANIFEST_NAME)):
        raise TrainingError(f"{path} has no {MANIFEST_NAME}: it is not a complete checkpoint "
                            "written by genesis and cannot be verified")
    try:
        verify_checkpoint(path)
        with open(os.path.join(path, ARGS_FILE), encoding="utf-8") as f:
            record = json.load(f)
        int(record["global_step"])
    except CheckpointCorruptError as exc:
        raise TrainingError(f"cannot resume: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"cannot resume: {os.path.join(path, ARGS_FILE)} is unreadable "
                            f"({type(exc).__name__}: {exc})") from None
    return record


def describe_run(out_dir):
    """A phrase describing the earlier run in ``out_dir`` ("checkpoint at step 800"), or None."""
    path = find_checkpoint(out_dir)
    if path is not None:
        try:
            with open(os.path.join(path, ARGS_FILE), encoding="utf-8") as f:
                record = json.load(f)
            return f"a run with a checkpoint at step {record['global_step']} of " \
                   f"{record['training_args']['max_steps']}"
        except (OSError, ValueError, KeyError, TypeError):
            return f"a run with a checkpoint ({path})"
    if os.path.exists(os.path.join(out_dir, METRICS_FILE)):
        return f"an earlier run's {METRICS_FILE}"
    return None


def clear_run(out_dir):
    """Delete what genesis wrote into ``out_dir`` (checkpoints, metrics, plots), nothing else."""
    for name in (CHECKPOINT, CHECKPOINT + ".old", CHECKPOINT + ".tmp"):
        shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)
    for name in (METRICS_FILE,) + PLOT_FILES:
        path = os.path.join(out_dir, name)
        if os.path.isfile(path):
            os.remove(path)
    fsync_dir(out_dir)


def save_checkpoint(out_dir, write_files):
    """Write a checkpoint with ``write_files(folder) -> {file name: FileDigest}``, then the
    manifest; read it back and verify it; only then replace the previous checkpoint.

    Raises ``CheckpointSaveError`` when any step fails; the previous checkpoint is intact.
    """
    final = os.path.join(out_dir, CHECKPOINT)
    tmp, old = final + ".tmp", final + ".old"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        write_manifest(tmp, write_files(tmp))
        verify_checkpoint(tmp)
    except (OSError, CheckpointCorruptError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        what = f"{exc.strerror} ({exc.filename})" if isinstance(exc, OSError) and \
            exc.strerror else str(exc)
        raise CheckpointSaveError(f"cannot write the checkpoint: {what}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(final):
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return final


def read_metrics_records(path, warn=None):
    """The records of a metrics JSONL file. A torn last line (what a crash mid-append leaves)
    is skipped and reported to ``warn``; a damaged line before it raises ``TrainingError``."""
    if not os.path.isfile(path):
        return []
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            records.append(record)
        except ValueError:
            if any(rest.strip() for rest in lines[number:]):
                raise TrainingError(f"{path} line {number} is damaged (not a JSON record); "
                                    "repair or delete the file") from None
            if warn is not None:
                warn(f"{path}: skipped a torn last line (line {number}), left by an "
                     "interrupted write")
    return records


class MetricsLog:
    """Append-only JSONL metrics. On resume, entries after the checkpoint's step are dropped
    (the file is rewritten atomically); a fresh run starts an empty log."""

    def __init__(self, path, resume_step=None, warn=None):
        self.path = path
        if resume_step is not None:
            kept = [r for r in read_metrics_records(path, warn) if r.get("step", 0) <= resume_step]
            atomic_write(path, "".join(json.dumps(r) + "\n" for r in kept))
        elif os.path.exists(path):
            os.remove(path)

    def write(self, record):
        """Append one record."""
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def sync(self):
        """Make the records written so far durable (called before each checkpoint)."""
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                os.fsync(f.fileno())
