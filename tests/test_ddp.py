"""DistributedDataParallel on 2 MPI ranks equals one process on the combined batch, and
DistributedSampler's partition of a dataset."""
import pytest

from genesis.utils.data import DistributedSampler
from tests.dist import run_mpi


@pytest.mark.parametrize("micro", [1, 2], ids=["sync", "no_sync-accumulation"])
def test_ddp_two_ranks_equals_one_process(micro):
    out = run_mpi(2, "tests.dist.ddp_worker", micro)
    assert "rank 0 ddp ok" in out and "rank 1 ddp ok" in out


def test_sampler_partitions_and_pads():
    ranks = [list(DistributedSampler(range(10), num_replicas=3, rank=r, shuffle=False))
             for r in range(3)]
    assert ranks == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    assert all(len(DistributedSampler(range(10), 3, r)) == 4 for r in range(3))
    dropped = [list(DistributedSampler(range(10), 3, r, shuffle=False, drop_last=True))
               for r in range(3)]
    assert dropped == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_sampler_shuffle_is_shared_and_changes_with_epoch():
    def epoch(e):
        parts = []
        for r in range(2):
            s = DistributedSampler(range(9), num_replicas=2, rank=r, seed=3)
            s.set_epoch(e)
            parts.append(list(s))
        return parts
    first = epoch(0)
    assert set(first[0]) | set(first[1]) == set(range(9))
    assert len(first[0]) == len(first[1]) == 5
    assert epoch(0) == first and epoch(1) != first


def test_sampler_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"invalid rank 2.*\[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
