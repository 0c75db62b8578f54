"""Expert-parallel MoE layers on 2 MPI ranks equal the single-process layer, forward and every
gradient, for each router type (see tests/parallel/expert_parallel_worker.py)."""
import pytest

from tests.parallel import run_mpi


@pytest.mark.parametrize("nprocs", [2])
def test_expert_parallel_matches_single_process(nprocs):
    out = run_mpi(nprocs, "tests.parallel.expert_parallel_worker")
    assert all(f"rank {r} expert parallel ok" in out for r in range(nprocs))


def test_expert_parallel_and_ddp_keep_device_arrays_on_the_cupy_stand_in():
    """On tests/fake_cupy.py's device arrays (which refuse implicit host copies) over MPI:
    expert-parallel forward/backward and DDP gradients equal the CPU computation."""
    out = run_mpi(2, "tests.parallel.fake_gpu_worker")
    assert "rank 0 fake gpu ok" in out and "rank 1 fake gpu ok" in out
