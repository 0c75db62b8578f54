"""genesis.save / genesis.load: round trips, safetensors interop, atomicity, corrupt files."""
import io
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import safetensors
import safetensors.numpy

import genesis
from genesis import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tensor_equal(a, b):
    return a.dtype is b.dtype and tuple(a.shape) == tuple(b.shape) and np.array_equal(
        a._array.astype(np.float64) if a.dtype is genesis.bfloat16 else a._array,
        b._array.astype(np.float64) if b.dtype is genesis.bfloat16 else b._array)


def test_nested_round_trip_preserves_types_and_values(tmp_path):
    w = genesis.randn(3, 4)
    obj = {
        "model": {"w": w, "tied": w, "b16": genesis.tensor([1.5, -2.0], dtype=genesis.bfloat16)},
        "dtypes": [genesis.ones(2, dtype=d) for d in (genesis.float16, genesis.float64,
                                                       genesis.int8, genesis.int16,
                                                       genesis.int32, genesis.int64,
                                                       genesis.uint8, genesis.bool)],
        "scalar": genesis.tensor(3.25), "empty": genesis.zeros(0, 3),
        "view": genesis.arange(12.0).reshape(3, 4)[:, 1:3],
        "state": {0: {"step": 7, "exp_avg": genesis.zeros(2)}, 12: {}},
        "betas": (0.9, 0.999), "steps": [1, 2, [3, "x"]], "name": "run-1", "none": None,
        "flag": False, "big": 2 ** 70, "nan": math.nan, "inf": -math.inf, "lr": 3e-4,
    }
    path = tmp_path / "ckpt.safetensors"
    genesis.save(obj, path)
    out = genesis.load(str(path))
    assert out["model"]["w"] is out["model"]["tied"]
    assert _tensor_equal(out["model"]["w"], w)
    assert _tensor_equal(out["model"]["b16"], obj["model"]["b16"])
    for a, b in zip(out["dtypes"], obj["dtypes"]):
        assert _tensor_equal(a, b)
    assert out["scalar"].ndim == 0 and out["scalar"].item() == 3.25
    assert tuple(out["empty"].shape) == (0, 3)
    assert out["view"].tolist() == [[1.0, 2.0], [5.0, 6.0], [9.0, 10.0]]
    assert list(out["state"]) == [0, 12] and type(out["state"][0]["step"]) is int
    assert out["betas"] == (0.9, 0.999) and isinstance(out["betas"], tuple)
    assert out["steps"] == [1, 2, [3, "x"]] and out["name"] == "run-1"
    assert out["none"] is None and out["flag"] is False and out["big"] == 2 ** 70
    assert math.isnan(out["nan"]) and out["inf"] == -math.inf and out["lr"] == 3e-4
    out["model"]["w"].add_(1.0)


def test_parameters_and_requires_grad_survive(tmp_path):
    p = nn.Parameter(genesis.ones(2))
    frozen = nn.Parameter(genesis.ones(2), requires_grad=False)
    leaf = genesis.ones(3, requires_grad=True)
    genesis.save([p, frozen, leaf], tmp_path / "p.st")
    a, b, c = genesis.load(tmp_path / "p.st")
    assert isinstance(a, nn.Parameter) and a.requires_grad
    assert isinstance(b, nn.Parameter) and not b.requires_grad
    assert not isinstance(c, nn.Parameter) and c.requires_grad


def test_module_state_dict_round_trip(tmp_path):
    genesis.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 2))
    genesis.save(net.state_dict(), tmp_path / "model.safetensors")
    genesis.manual_seed(1)
    other = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 2))
    other.load_state_dict(genesis.load(tmp_path / "model.safetensors"))
    x = genesis.randn(3, 4)
    assert np.array_equal(net(x)._array, other(x)._array)


def test_safetensors_interop(tmp_path):
    genesis.save({"layer": {"weight": genesis.ones(2, 2)}, "step": 3}, tmp_path / "a.st")
    with safetensors.safe_open(tmp_path / "a.st", framework="np") as f:
        assert list(f.keys()) == ["layer.weight"]
        assert f.metadata()["format"] == "genesis.save/1"
    safetensors.numpy.save_file({"x.y": np.arange(6, dtype=np.int32).reshape(2, 3)},
                                tmp_path / "plain.st")
    plain = genesis.load(tmp_path / "plain.st")
    assert list(plain) == ["x.y"] and plain["x.y"].dtype is genesis.int32
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    loaded = load_file(tmp_path / "a.st")
    assert torch.equal(loaded["layer.weight"], torch.ones(2, 2))


def test_saved_file_gets_default_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    genesis.save({"a": genesis.ones(1)}, tmp_path / "perm.st")
    assert os.stat(tmp_path / "perm.st").st_mode & 0o777 == 0o666 & ~umask


def test_file_objects_and_map_location(tmp_path):
    buf = io.BytesIO()
    genesis.save({"a": genesis.arange(3)}, buf)
    buf.seek(0)
    assert genesis.load(buf, map_location="cpu")["a"].tolist() == [0, 1, 2]


def test_unsupported_objects_raise_type_error(tmp_path):
    with pytest.raises(TypeError, match=r"cannot save a set at opt\.x"):
        genesis.save({"opt": {"x": {1, 2}}}, tmp_path / "bad.st")
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        genesis.save({(1, 2): 3}, tmp_path / "bad.st")
    assert not os.path.exists(tmp_path / "bad.st")


def test_failed_write_keeps_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.st"
    genesis.save({"v": genesis.tensor([1.0])}, path)
    from genesis import serialization

    def broken(f, data):
        f.write(data[:10])
        raise OSError("disk full")

    monkeypatch.setattr(serialization, "_write_chunks", broken)
    with pytest.raises(OSError, match="disk full"):
        genesis.save({"v": genesis.tensor([2.0])}, path)
    assert os.listdir(tmp_path) == ["ckpt.st"]
    assert genesis.load(path)["v"].tolist() == [1.0]


# --------------------------------------------------------------------------- bad files
@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.st"
    genesis.save({"w": genesis.arange(64, dtype=genesis.float32).reshape(8, 8), "step": 5,
                  "name": "x"}, path)
    return path


def _write(tmp_path, data):
    path = tmp_path / "bad.st"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("cut", [0, 5, 8, 40, -100, -1])
def test_truncated_file_raises_clear_error(good_file, tmp_path, cut):
    data = good_file.read_bytes()
    path = _write(tmp_path, data[:cut])
    with pytest.raises(RuntimeError, match=r"genesis\.load: .*bad\.st .*(truncated|not a "
                                           r"safetensors|corrupted)"):
        genesis.load(path)


@pytest.mark.parametrize("data", [b"", b"hello world, not a checkpoint at all",
                                  b"\x80\x04\x95" + b"\x00" * 64, os.urandom(4096)],
                         ids=["empty", "text", "pickle-like", "random"])
def test_garbage_files_raise_clear_error(tmp_path, data):
    path = _write(tmp_path, data)
    with pytest.raises(RuntimeError, match=r"genesis\.load: .*bad\.st"):
        genesis.load(path)


def test_flipped_data_byte_is_detected(good_file, tmp_path):
    data = bytearray(good_file.read_bytes())
    data[-7] ^= 0x10
    with pytest.raises(RuntimeError, match="CRC32"):
        genesis.load(_write(tmp_path, bytes(data)))


def test_edited_header_is_detected(good_file, tmp_path):
    data = good_file.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n]
    assert b'\\"step\\",5' in header
    edited = data[:8] + header.replace(b'\\"step\\",5', b'\\"step\\",6') + data[8 + n:]
    with pytest.raises(RuntimeError, match="CRC32"):
        genesis.load(_write(tmp_path, edited))
    broken = data[:8] + header.replace(b'"shape":[8,8]', b'"shape":[8,9]') + data[8 + n:]
    with pytest.raises(RuntimeError, match="genesis.load"):
        genesis.load(_write(tmp_path, broken))


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        genesis.load(tmp_path / "nope.st")


# --------------------------------------------------------------------------- kill mid-save
_CHILD = textwrap.dedent("""
    import sys, time
    import genesis
    from genesis import serialization

    path, marker = sys.argv[1], sys.argv[2]
    genesis.save({"version": 1, "w": genesis.full((256, 256), 1.0)}, path)

    def slow(f, data):
        f.write(data[: len(data) // 2])
        f.flush()
        open(marker, "w").close()
        time.sleep(60)
        f.write(data[len(data) // 2:])

    serialization._write_chunks = slow
    genesis.save({"version": 2, "w": genesis.full((256, 256), 2.0)}, path)
""")


def test_kill_during_save_leaves_previous_checkpoint_intact(tmp_path):
    path, marker = tmp_path / "ckpt.safetensors", tmp_path / "writing"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "child exited before the second save started"
            assert time.monotonic() < deadline, "child never reached the second save"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    state = genesis.load(path)
    assert state["version"] == 1 and float(state["w"]._array.min()) == 1.0
    leftovers = [n for n in os.listdir(tmp_path) if n not in ("ckpt.safetensors", "writing")]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")
    with pytest.raises(RuntimeError, match="genesis.load"):
        genesis.load(tmp_path / leftovers[0])
