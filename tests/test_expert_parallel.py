"""Expert-parallel MoE layers on 2 MPI ranks equal the single-process layer, forward and every
gradient, for each router type (see tests/parallel/expert_parallel_worker.py)."""
import pytest

from tests.parallel import run_mpi


@pytest.mark.parametrize("nprocs", [2])
def test_expert_parallel_matches_single_process(nprocs):
    out = run_mpi(nprocs, "tests.parallel.expert_parallel_worker")
    assert all(f"rank {r} expert parallel ok" in out for r in range(nprocs))
