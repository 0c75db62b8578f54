"""Every registered op on a stand-in GPU that refuses what CuPy refuses (tests/fake_cupy.py).

This runs the CUDA code paths of all ops (forward against NumPy, gradients against the CPU) on
arrays that raise on implicit device-to-host conversion and on host/device mixes, so it proves
genesis keeps GPU data on the device through every op; it cannot prove that CuPy itself
computes what NumPy computes (that is tests/test_ops_cuda.py on a real GPU).
"""
import sys

import numpy as np
import pytest

import genesis
from genesis.backends import cuda as cuda_backend
from tests import fake_cupy
from tests.test_ops import CASES, GRAD_CASES, IDS
from tests.test_ops_cuda import GRAD_IDS, check_forward, check_gradients


@pytest.fixture
def fake_gpu(monkeypatch):
    if genesis.cuda.is_available():
        pytest.skip("a real GPU is present: tests/test_ops_cuda.py covers it")
    monkeypatch.setattr(cuda_backend, "_cupy", [fake_cupy.FakeCupy()])
    monkeypatch.setattr(cuda_backend, "device_count", lambda: 1)
    monkeypatch.setenv("GENESIS_TRITON", "0")
    for name, module in fake_cupy.cupyx_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    genesis.random.cuda_seeds.rngs.clear()
    yield
    genesis.random.cuda_seeds.rngs.clear()


@pytest.mark.parametrize("info,idx,sample", CASES, ids=IDS)
def test_forward_on_fake_gpu(fake_gpu, info, idx, sample):
    if info.ref is None:
        pytest.skip(f"{info.name} has no NumPy reference (PyTorch parity only)")
    check_forward(info, sample)


@pytest.mark.parametrize("info,idx,sample", GRAD_CASES, ids=GRAD_IDS)
def test_gradients_on_fake_gpu(fake_gpu, info, idx, sample):
    check_gradients(info, sample)


def test_the_stand_in_refuses_what_cupy_refuses():
    x = fake_cupy.FakeCupy().ones(3)
    with pytest.raises(TypeError):
        np.asarray(x)
    with pytest.raises(TypeError):
        x + np.ones(3)
    assert not isinstance(x, np.ndarray) and isinstance(x.sum(), fake_cupy.FakeCupyArray)


def test_creation_and_random_ops_stay_on_the_device(fake_gpu):
    genesis.manual_seed(0)
    made = [genesis.zeros(3, device="cuda"), genesis.ones(2, 2, device="cuda"),
            genesis.arange(5, device="cuda"), genesis.eye(3, device="cuda"),
            genesis.full((2,), 1.5, device="cuda"), genesis.linspace(0, 1, 5, device="cuda"),
            genesis.rand(4, device="cuda"), genesis.randn(4, device="cuda"),
            genesis.randint(0, 9, (4,), device="cuda"), genesis.randperm(6, device="cuda"),
            genesis.normal(genesis.zeros(3, device="cuda"), 1.0),
            genesis.bernoulli(genesis.full((5,), 0.5, device="cuda")),
            genesis.nn.functional.dropout(genesis.ones(8, device="cuda"), 0.5),
            genesis.empty(4, device="cuda").normal_(), genesis.empty(4, device="cuda").uniform_(),
            genesis.nn.init.normal_(genesis.empty(3, 3, device="cuda"))]
    for t in made:
        assert t.device.type == "cuda" and isinstance(t._array, fake_cupy.FakeCupyArray)
    genesis.manual_seed(0)
    again = genesis.rand(4, device="cuda")
    np.testing.assert_array_equal(again.cpu().numpy(), made[6].cpu().numpy())


@pytest.mark.parametrize("router", ["topk", "genesis"])
def test_moe_training_step_with_autocast_and_grad_scaler(fake_gpu, router):
    from genesis.models.transformers import MoEConfig, MoEForCausalLM
    genesis.manual_seed(0)
    model = MoEForCausalLM(MoEConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, num_local_experts=4,
                                     num_experts_per_tok=2, moe_intermediate_size=24,
                                     max_position_embeddings=64, router_type=router)).to("cuda")
    opt = genesis.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = genesis.amp.GradScaler("cuda")
    ids = genesis.randint(0, 64, (2, 12), device="cuda")
    losses = []
    for _ in range(2):
        opt.zero_grad()
        with genesis.autocast("cuda", dtype=genesis.float16):
            loss, logits = model(ids, labels=ids)
        assert logits.dtype is genesis.float16 and loss.dtype is genesis.float32
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert all(p.device.type == "cuda" and p.grad.device.type == "cuda"
               for p in model.parameters() if p.grad is not None)
    assert np.isfinite(losses).all()
    with genesis.no_grad():
        out = model.generate(ids[:, :4], max_new_tokens=3, do_sample=False)
    assert out.device.type == "cuda" and tuple(out.shape) == (2, 7)


def test_genesis_train_on_the_device_with_bf16(fake_gpu, tmp_path):
    import json
    from genesis.cli import main
    from tests.test_cli import TEXT, TINY
    (tmp_path / "corpus.txt").write_text(TEXT)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    out = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "tiny.json"), "--data",
                 str(tmp_path / "corpus.txt"), "--steps", "3", "--batch-size", "2", "--seq-len",
                 "16", "--eval-every", "3", "--save-every", "0", "--eval-windows", "2", "--out",
                 str(out), "--sample-tokens", "4", "--quiet", "--device", "cuda",
                 "--dtype", "bf16"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    assert (out / "checkpoint" / "config.json").is_file()


def test_cpu_scalars_combine_with_gpu_tensors_and_other_mixes_raise(fake_gpu):
    x = genesis.ones(3, device="cuda", requires_grad=True)
    s = genesis.tensor(2.0, requires_grad=True)
    y = (x * s).sum()
    assert y.device.type == "cuda"
    y.backward()
    assert s.grad.device.type == "cpu" and s.grad.item() == 3.0
    assert x.grad.device.type == "cuda"
    with pytest.raises(RuntimeError, match="same device, but found cpu and cuda:0"):
        x + genesis.ones(3)
