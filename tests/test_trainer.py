"""genesis.train.Trainer as a library: HF-style arguments, callbacks, exact resume, and the same
run-folder guarantees as `genesis train`."""
import json
import math
import os
import signal
import stat

import numpy as np
import pytest

import genesis
from genesis.models.transformers import ByteTokenizer, MoEConfig, MoEForCausalLM
from genesis.train import (TokenDataset, Trainer, TrainerCallback, TrainingArguments,
                           TrainingError)
from tests.train_fixtures import TEXT, TINY

TOKENS = np.asarray(ByteTokenizer().encode(TEXT), dtype=np.int64)


def _model(seed=0, **overrides):
    genesis.manual_seed(seed)
    return MoEForCausalLM(MoEConfig(**dict(TINY, **overrides)))


def _trainer(out, steps=8, callbacks=(), model=None, tokens=TOKENS, **args):
    args = TrainingArguments(output_dir=str(out), max_steps=steps,
                             per_device_train_batch_size=4, eval_steps=4, save_steps=4,
                             eval_windows=4, disable_tqdm=True, **args)
    return Trainer(model or _model(), args=args, train_dataset=TokenDataset(tokens[:-300], 16),
                   eval_dataset=TokenDataset(tokens[-300:], 16), tokenizer=ByteTokenizer(),
                   callbacks=list(callbacks))


class Recorder(TrainerCallback):
    def __init__(self):
        self.events = []
        self.logs = []

    def on_train_begin(self, args, state):
        self.events.append(("begin", state.global_step))

    def on_log(self, args, state, logs):
        self.logs.append(logs)

    def on_evaluate(self, args, state, metrics):
        self.events.append(("evaluate", state.global_step, metrics["eval_loss"]))

    def on_save(self, args, state, checkpoint_dir):
        self.events.append(("save", state.global_step, os.path.basename(checkpoint_dir)))

    def on_train_end(self, args, state):
        self.events.append(("end", state.global_step))


def test_train_reports_every_record_to_callbacks(tmp_path):
    rec = Recorder()
    trainer = _trainer(tmp_path / "run", callbacks=[rec])
    result = trainer.train()
    assert result.global_step == 8 and math.isfinite(result.training_loss)
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        assert rec.logs == [json.loads(line) for line in f]
    kinds = [e[:2] if e[0] != "save" else e for e in rec.events]
    assert kinds == [("begin", 0), ("evaluate", 4), ("save", 4, "checkpoint"), ("evaluate", 8),
                     ("save", 8, "checkpoint"), ("end", 8)]
    assert result.metrics["eval_loss"] == rec.events[3][2]
    loaded = MoEForCausalLM.from_pretrained(tmp_path / "run" / "checkpoint")
    ids = genesis.tensor(TOKENS[None, :16])
    trainer.model.eval()
    np.testing.assert_array_equal(loaded(ids).detach().numpy(),
                                  trainer.model(ids).detach().numpy())


class InterruptAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_log(self, args, state, logs):
        if logs.get("step") == self.step and "loss" in logs:
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupted_library_run_resumes_bit_for_bit(tmp_path):
    full = _trainer(tmp_path / "full", steps=10)
    full.train()
    parted = _trainer(tmp_path / "parted", steps=10, callbacks=[InterruptAt(3)])
    result = parted.train()
    assert result.global_step == 3 and result.metrics["interrupted_by"] == signal.SIGINT
    resumed = _trainer(tmp_path / "parted", steps=10, model=_model(seed=123))
    resumed.train(resume_from_checkpoint=True)
    for name, p in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name].numpy(), p.numpy(),
                                      err_msg=name)
    with open(tmp_path / "full" / "metrics.jsonl") as a, \
            open(tmp_path / "parted" / "metrics.jsonl") as b:
        strip = [{k: v for k, v in json.loads(line).items() if k != "tokens_per_s"} for line in a]
        assert strip == [{k: v for k, v in json.loads(line).items() if k != "tokens_per_s"}
                         for line in b]


def test_library_refuses_to_overwrite_a_run_unless_asked(tmp_path):
    out = tmp_path / "run"
    _trainer(out, steps=4).train()
    before = (out / "metrics.jsonl").read_bytes()
    with pytest.raises(TrainingError, match=r"already holds a run with a checkpoint at step 4 "
                                            r"of 4; pass train\(resume_from_checkpoint=True\) "
                                            r"to continue it or TrainingArguments\("
                                            r"overwrite_output_dir=True\)"):
        _trainer(out, steps=4).train()
    assert (out / "metrics.jsonl").read_bytes() == before
    _trainer(out, steps=2, overwrite_output_dir=True).train()
    with open(out / "checkpoint" / "train_args.json") as f:
        assert json.load(f)["global_step"] == 2
    with pytest.raises(TrainingError, match="exclude each other"):
        _trainer(out, steps=4, overwrite_output_dir=True).train(resume_from_checkpoint=True)


def test_library_resume_refuses_a_different_run(tmp_path):
    out = tmp_path / "run"
    _trainer(out, steps=4).train()
    with pytest.raises(TrainingError, match=r"learning_rate is 0.003 there, 0.01 now"):
        _trainer(out, steps=8, learning_rate=0.01).train(resume_from_checkpoint=True)
    with pytest.raises(TrainingError, match=r"model config hidden_size is 32 there, 64 now"):
        _trainer(out, steps=8, model=_model(hidden_size=64)).train(resume_from_checkpoint=True)
    with pytest.raises(TrainingError, match="training data differs"):
        _trainer(out, steps=8, tokens=TOKENS[::-1].copy()).train(resume_from_checkpoint=True)
    with pytest.raises(TrainingError, match=r"max_steps 3 is below the checkpoint's step 4"):
        _trainer(out, steps=3).train(resume_from_checkpoint=True)
    with pytest.raises(TrainingError, match="already reached step 4"):
        _trainer(out, steps=4).train(resume_from_checkpoint=True)


def test_checkpoint_is_hf_layout_with_a_manifest_and_uniform_permissions(tmp_path):
    out = tmp_path / "run"
    old_umask = os.umask(0o022)
    try:
        _trainer(out, steps=4).train()
    finally:
        os.umask(old_umask)
    ckpt = out / "checkpoint"
    names = sorted(os.listdir(ckpt))
    assert names == ["config.json", "genesis_manifest.json", "model.safetensors",
                     "tokenizer_config.json", "train_args.json", "training_state.safetensors"]
    modes = {stat.S_IMODE(os.stat(ckpt / n).st_mode) for n in names}
    assert modes == {0o644}
    with open(ckpt / "genesis_manifest.json") as f:
        manifest = json.load(f)
    assert sorted(manifest["files"]) == [n for n in names if n != "genesis_manifest.json"]
    for name, entry in manifest["files"].items():
        assert entry["size"] == os.path.getsize(ckpt / name)


def test_trainer_checkpoint_of_a_mixtral_model_loads_in_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = _model(model_type="mixtral", tie_word_embeddings=False, moe_intermediate_size=64)
    trainer = _trainer(tmp_path / "run", steps=2, model=model)
    trainer.train()
    ckpt = tmp_path / "run" / "checkpoint"
    hf = transformers.AutoModelForCausalLM.from_pretrained(ckpt, attn_implementation="eager")
    ids = TOKENS[None, :16]
    with torch.no_grad():
        expected = hf(torch.tensor(ids)).logits.float().numpy()
    model.eval()
    np.testing.assert_allclose(model(genesis.tensor(ids)).detach().numpy(), expected, atol=1e-4,
                               rtol=1e-4)


def test_training_arguments_are_validated():
    for kwargs, fragment in [({"learning_rate": float("nan")}, "learning_rate"),
                             ({"max_steps": 0}, "max_steps"),
                             ({"min_lr_ratio": 5}, "min_lr_ratio"),
                             ({"warmup_steps": -1}, "warmup_steps"),
                             ({"eval_steps": -1}, "eval_steps"),
                             ({"per_device_train_batch_size": 2.5},
                              "per_device_train_batch_size"),
                             ({"output_dir": ""}, "output_dir")]:
        with pytest.raises(ValueError, match=f"TrainingArguments: {fragment}"):
            TrainingArguments(**kwargs)
    assert TrainingArguments(max_steps=100).resolved_warmup_steps == 5
    assert TrainingArguments(max_steps=10).resolved_warmup_steps == 1


def test_trainer_rejects_wrong_inputs(tmp_path):
    with pytest.raises(TypeError, match="TokenDataset"):
        Trainer(_model(), args=TrainingArguments(output_dir=str(tmp_path)),
                train_dataset=TOKENS)
    with pytest.raises(ValueError, match="too few"):
        TokenDataset(TOKENS[:10], 16)


def test_batches_come_from_an_overridable_source(tmp_path):
    """``get_train_batches`` is the one place a DataLoader-like source plugs in."""
    class Fixed:
        def __init__(self):
            self.calls = 0

        def next_batch(self):
            self.calls += 1
            window = np.tile(TOKENS[:16], (2, 1))
            return window, window

        def state_dict(self):
            return {"calls": self.calls}

        def load_state_dict(self, state):
            self.calls = state["calls"]

    class FixedTrainer(Trainer):
        def get_train_batches(self):
            return Fixed()

    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=3, eval_steps=0,
                             save_steps=0, disable_tqdm=True)
    trainer = FixedTrainer(_model(), args=args, train_dataset=TokenDataset(TOKENS, 16))
    trainer.train()
    assert trainer.batches.calls == 3
    state = genesis.load(tmp_path / "run" / "checkpoint" / "training_state.safetensors")
    assert state["sampler"] == {"calls": 3}


def _drain(fd):
    """Everything written to a pty so far, read from its master side."""
    import select
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


def test_progress_bar_fits_the_terminal(tmp_path):
    import fcntl
    import struct
    import termios
    from genesis.train.trainer import ProgressCallback, TrainerState
    for columns in (50, 72, 140):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        with os.fdopen(slave, "w") as f:
            cb, state = ProgressCallback(file=f), TrainerState(800)
            cb.on_train_begin(TrainingArguments(), state)
            for _ in range(3):
                state.global_step += 1
                cb.on_log(None, state, {"loss": 5.1234, "tokens_per_s": 1234.0,
                                        "aux_loss": 0.0123, "active_experts": 2.0})
            cb.bar.refresh()
            cb.on_train_end(None, state)
        text = _drain(master)
        lines = [ln for ln in text.replace("\n", "\r").split("\r") if ln.strip()]
        assert max(len(ln.rstrip()) for ln in lines) < columns
        if columns >= 140:
            assert "aux=0.012" in lines[-1]
        assert "loss=" in lines[-1] or columns < 72


def test_token_dataset_is_a_genesis_dataset_that_a_dataloader_batches():
    from genesis.train.data import TokenDataset
    from genesis.utils.data import DataLoader, Dataset
    ds = TokenDataset(np.arange(40), 8)
    assert isinstance(ds, Dataset) and len(ds) == 32
    batches = list(DataLoader(ds, batch_size=5, drop_last=True))
    assert len(batches) == 6 and tuple(batches[0].shape) == (5, 8)
    np.testing.assert_array_equal(batches[1].numpy()[2], np.arange(7, 15))


def test_trainer_batches_come_from_a_dataloader_and_resume_exactly():
    from genesis.train.data import TokenDataset, WindowBatches
    tokens = np.arange(500) % 97
    ds = TokenDataset(tokens, 16)
    source = WindowBatches(ds, 4, seed=3)
    rng = np.random.Generator(np.random.PCG64(3))
    for _ in range(3):
        starts = rng.integers(0, len(tokens) - 16, size=4)
        inputs, labels = source.next_batch()
        np.testing.assert_array_equal(inputs, tokens[starts[:, None] + np.arange(16)])
        assert labels is inputs and inputs.dtype == np.int64
    saved = source.state_dict()
    expected = [source.next_batch()[0] for _ in range(2)]
    resumed = WindowBatches(ds, 4, seed=99)
    resumed.load_state_dict(saved)
    for want in expected:
        np.testing.assert_array_equal(resumed.next_batch()[0], want)
