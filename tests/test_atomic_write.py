"""The one atomic writer, the streamed safetensors writer and checkpoint manifests."""
import errno
import hashlib
import io
import json
import os
import stat

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save as reference_save

import genesis
from genesis import _atomic
from genesis._atomic import atomic_write, sha256_file
from genesis.models.transformers import MoEConfig, MoEForCausalLM
from genesis.models.transformers.manifest import (CheckpointCorruptError, read_manifest,
                                                  verify_checkpoint)
from genesis.serialization import write_safetensors
from tests.train_fixtures import TINY


def test_atomic_write_returns_the_digest_of_what_it_wrote(tmp_path):
    path = tmp_path / "f.bin"
    digest = atomic_write(path, b"abc" * 1000)
    assert digest == (hashlib.sha256(b"abc" * 1000).hexdigest(), 3000)
    assert sha256_file(path) == digest
    assert atomic_write(path, "é") == (hashlib.sha256("é".encode()).hexdigest(), 2)
    assert path.read_text(encoding="utf-8") == "é"
    assert atomic_write(path, lambda f: f.write(np.arange(4, dtype=np.int32))).size == 16


def test_atomic_write_honours_the_umask_like_open(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a", b"x")
        with open(tmp_path / "b", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "a").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "b").st_mode) == 0o640


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    atomic_write(path, "old")

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_atomic._HashingWriter, "write", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.json"]


def test_streamed_safetensors_is_byte_identical_to_the_reference_writer():
    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3),
              "a": np.ones(3, dtype=np.int64), "s": np.array(2.5, dtype=np.float64),
              "e": np.zeros((0, 4), np.float16), "m": np.array([True, False])}
    buf = io.BytesIO()
    write_safetensors(buf, arrays, {"format": "pt"})
    assert buf.getvalue() == reference_save(arrays, metadata={"format": "pt"})
    strided = np.arange(8, dtype=np.float32)[::2]            # written by value, not memory
    buf = io.BytesIO()
    write_safetensors(buf, {"t": strided})
    np.testing.assert_array_equal(genesis.load(io.BytesIO(buf.getvalue()))["t"].numpy(),
                                  [0, 2, 4, 6])
    bf16 = {"w": np.arange(4, dtype=np.float32).astype(ml_dtypes.bfloat16)}
    buf = io.BytesIO()
    write_safetensors(buf, bf16)
    assert genesis.load(io.BytesIO(buf.getvalue()))["w"].dtype == genesis.bfloat16


def _saved(tmp_path):
    genesis.manual_seed(0)
    model = MoEForCausalLM(MoEConfig(**TINY))
    digests = model.save_pretrained(tmp_path)
    return model, digests


def test_save_pretrained_writes_a_manifest_of_every_file(tmp_path):
    _, digests = _saved(tmp_path)
    files = read_manifest(tmp_path)
    assert sorted(files) == sorted(digests) == ["config.json", "model.safetensors"]
    for name, entry in files.items():
        assert sha256_file(tmp_path / name) == (entry["sha256"], entry["size"])
    assert verify_checkpoint(tmp_path) == files


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_flipped_bit_is_refused_on_load(tmp_path, name):
    _saved(tmp_path)
    data = bytearray((tmp_path / name).read_bytes())
    data[len(data) // 2] ^= 0x04
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptError, match=f"{name} is damaged: its SHA-256"):
        MoEForCausalLM.from_pretrained(tmp_path)


def test_a_damaged_manifest_is_named(tmp_path):
    _saved(tmp_path)
    path = tmp_path / "genesis_manifest.json"
    manifest = json.loads(path.read_text())
    entry = manifest["files"]["model.safetensors"]
    entry["sha256"] = entry["sha256"][:-1] + ("0" if entry["sha256"][-1] != "0" else "1")
    path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointCorruptError, match="genesis_manifest.json is damaged"):
        MoEForCausalLM.from_pretrained(tmp_path)


def test_config_save_pretrained_keeps_the_manifest_current(tmp_path):
    model, _ = _saved(tmp_path)
    model.config.use_cache = False
    model.config.save_pretrained(tmp_path)
    assert MoEForCausalLM.from_pretrained(tmp_path).config.use_cache is False


def test_a_folder_without_manifest_loads_unverified(tmp_path):
    model, _ = _saved(tmp_path)
    os.remove(tmp_path / "genesis_manifest.json")
    loaded = MoEForCausalLM.from_pretrained(tmp_path)
    ids = genesis.tensor([[1, 2, 3]])
    model.eval()
    np.testing.assert_array_equal(loaded(ids).detach().numpy(), model(ids).detach().numpy())
