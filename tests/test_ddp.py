"""DistributedDataParallel on 2 and 3 MPI ranks equals one process on the combined batch, and
DistributedSampler's partition of a dataset."""
import pytest

from genesis.utils.data import DistributedSampler
from tests.parallel import run_mpi


@pytest.mark.parametrize("nprocs,micro", [(2, 1), (2, 2), (3, 1)],
                         ids=["2-sync", "2-no_sync-accumulation", "3-sync"])
def test_ddp_equals_one_process_on_the_combined_batch(nprocs, micro):
    out = run_mpi(nprocs, "tests.parallel.ddp_worker", micro)
    assert all(f"rank {r} ddp ok" in out for r in range(nprocs))


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


def test_sampler_feeds_a_dataloader():
    from genesis.utils.data import DataLoader, Sampler, TensorDataset
    import genesis
    data = TensorDataset(genesis.arange(10))
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=False)
    assert isinstance(sampler, Sampler)
    batches = [b[0].tolist() for b in DataLoader(data, batch_size=2, sampler=sampler)]
    assert batches == [[1, 3], [5, 7], [9]]
