"""Shared pieces of the `genesis train` / Trainer tests: a tiny model, a corpus, argv builders."""
import json
import os
import signal
import subprocess
import sys

TINY = {"model_type": "genesis_moe", "vocab_size": 256, "hidden_size": 32,
        "intermediate_size": 64, "moe_intermediate_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4,
        "num_experts_per_tok": 2, "max_position_embeddings": 64, "tie_word_embeddings": True}

TEXT = ("genesis trains mixture of experts language models on plain text. " * 40 +
        "Experts specialise; the router learns which expert reads which token. " * 40)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_inputs(folder):
    """corpus.txt and tiny.json in ``folder`` (a pathlib.Path); returns it."""
    (folder / "corpus.txt").write_text(TEXT)
    (folder / "tiny.json").write_text(json.dumps(TINY))
    return folder


def train_argv(folder, out, steps=8, extra=()):
    """argv of a short `genesis train` run of the tiny model."""
    return ["train", "--config", str(folder / "tiny.json"), "--data", str(folder / "corpus.txt"),
            "--steps", str(steps), "--batch-size", "4", "--seq-len", "16", "--eval-every", "4",
            "--save-every", "4", "--eval-windows", "4", "--out", str(out), "--sample-tokens",
            "8", "--quiet", *extra]


def interrupt_at_step(monkeypatch, step):
    """Make the running process receive SIGINT (Ctrl-C) once training step ``step`` is logged;
    ``monkeypatch.undo()`` restores the metrics log."""
    from genesis.train import trainer
    real = trainer.MetricsLog.write

    def write(self, record):
        real(self, record)
        if record.get("step") == step and "loss" in record:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(trainer.MetricsLog, "write", write)


def run_genesis(argv, **kwargs):
    """`python -m genesis ARGV` in a subprocess importing this checkout."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "genesis", *argv], capture_output=True,
                          text=True, timeout=300, env=env, **kwargs)


def one_line_error(stderr, *fragments):
    """True when ``stderr`` is exactly one error line holding every fragment."""
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in stderr and "error:" in lines[0] and \
        all(f in lines[0] for f in fragments)


def losses(out):
    """(step, loss) of every training record of a run's metrics.jsonl."""
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]
