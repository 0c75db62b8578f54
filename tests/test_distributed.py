"""genesis.distributed: collectives on 2 and 3 MPI ranks against NumPy, and its errors."""
import os
import subprocess
import sys

import pytest

import genesis
import genesis.distributed as dist
from tests.parallel import ROOT, run_mpi


@pytest.mark.parametrize("nprocs", [2, 3])
def test_collectives_match_numpy(nprocs):
    """broadcast/all_reduce/all_gather/reduce_scatter/all_to_all_single (uneven splits), all
    dtypes, the differentiable all-to-all, and mismatch errors raised on every rank."""
    out = run_mpi(nprocs, "tests.parallel.collectives_worker")
    assert all(f"rank {r}/{nprocs} ok" in out for r in range(nprocs))


def test_missing_mpi_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(RuntimeError, match=r"mpi4py.*genesis\[distributed\]"):
        dist.init_process_group(backend="mpi")
    assert not dist.is_initialized()


def test_missing_nccl_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(RuntimeError, match="CuPy with NCCL is not installed"):
        dist.init_process_group(backend="nccl", rank=0, world_size=1)
    assert not dist.is_initialized()


def test_init_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown backend 'gloo'"):
        dist.init_process_group(backend="gloo")
    with pytest.raises(ValueError, match="init_method='tcp://x:1' is not supported"):
        dist.init_process_group(backend="mpi", init_method="tcp://x:1")
    with pytest.raises(RuntimeError, match="has not been initialized"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        dist.all_reduce(genesis.zeros(2))


def test_launcher_and_mpi_disagree():
    """WORLD_SIZE=2 announced by a launcher but a single MPI process: a clear error."""
    pytest.importorskip("mpi4py")
    from genesis.distributed.launch import clean_launch_env
    env = clean_launch_env()
    env.update(RANK="0", WORLD_SIZE="2", PYTHONPATH=ROOT)
    code = "import genesis.distributed as d; d.init_process_group('mpi')"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "reports 1 processes" in proc.stderr and "WORLD_SIZE" in proc.stderr


def test_work_then_runs_after_wait():
    calls = []
    work = dist.Work(lambda: calls.append("wait")).then(lambda: calls.append("then"))
    assert calls == [] and not work.is_completed()
    assert work.wait() and calls == ["wait", "then"]
    work.wait()
    assert calls == ["wait", "then"] and work.is_completed()


@pytest.mark.cuda
def test_nccl_single_gpu_collectives():
    """NCCL on one GPU (a group of one): results equal the inputs' reductions over one rank."""
    cupy = pytest.importorskip("cupy")
    if not genesis.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU")
    env = {k: v for k, v in os.environ.items()}
    env.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
               MASTER_PORT="29531", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "tests.parallel.collectives_worker", "nccl"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "rank 0/1 ok" in proc.stdout
    del cupy


@pytest.mark.cuda
def test_nccl_two_gpus():
    """NCCL on two GPUs under mpirun: the collective suite of the NCCL worker."""
    pytest.importorskip("cupy")
    if genesis.cuda.device_count() < 2:
        pytest.skip("needs two NVIDIA GPUs")
    out = run_mpi(2, "tests.parallel.collectives_worker", "nccl")
    assert "rank 0/2 ok" in out and "rank 1/2 ok" in out

