"""DistributedDataParallel on R ranks against one process on the combined batch (float64).

Each rank starts from different weights (the wrap must broadcast rank 0's), trains k steps of
Adam with weight decay on its share of every batch, and compares every parameter with a model
it trains alone on the whole batch. The model has a branch only rank 0's rows use (its grad is
None on the other ranks but must still be averaged) and a parameter no row uses (it must stay
at grad None, as in one process, or weight decay would move it). Small buckets force several
overlapping reductions. A second run accumulates two micro-batches under ``no_sync``.
"""
import sys

import numpy as np

import genesis
import genesis.distributed as dist
import genesis.nn.functional as F
from genesis import nn
from genesis.nn.parallel import DistributedDataParallel as DDP
from genesis.utils.data import DistributedSampler

STEPS, BATCH, DIM = 3, 12, 5


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(DIM, 16)
        self.fc2 = nn.Linear(16, 3)
        self.branch = nn.Parameter(genesis.randn(16))
        self.never_used = nn.Parameter(genesis.randn(4))
        self.register_buffer("steps", genesis.zeros(1))

    def forward(self, x, flag):
        h = F.gelu(self.fc1(x))
        if bool(flag.any()):
            h = h + flag[:, None] * self.branch
        return self.fc2(h)


def batches():
    rng = np.random.default_rng(0)
    for step in range(STEPS):
        x = rng.standard_normal((BATCH, DIM))
        y = rng.integers(0, 3, BATCH)
        flag = np.zeros(BATCH)
        flag[0] = 1.0               # only row 0 uses the branch: it lands on rank 0
        yield x, y, flag


def make(seed):
    genesis.manual_seed(seed)
    return Net().double()


def loss_of(model, x, y, flag, scale=1.0):
    out = model(genesis.tensor(x), genesis.tensor(flag))
    return F.cross_entropy(out, genesis.tensor(y)) * scale


def train(model, rows_of, micro=1):
    """k Adam steps; ``rows_of(batch_rows)`` selects this process's rows; ``micro`` splits
    them into micro-batches accumulated (under no_sync when the model is DDP)."""
    opt = genesis.optim.Adam(model.parameters(), lr=0.05, weight_decay=0.1)
    for x, y, flag in batches():
        rows = rows_of(np.arange(BATCH))
        opt.zero_grad()
        parts = np.array_split(rows, micro)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            ctx = model.no_sync() if isinstance(model, DDP) and not last else _null()
            with ctx:
                loss_of(model, x[part], y[part], flag[part], len(part) / len(rows)).backward()
        opt.step()
    return model


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def compare(ddp_model, ref, what):
    for (name, p), (_, q) in zip(ddp_model.named_parameters(), ref.named_parameters()):
        a, b = p.detach().numpy(), q.detach().numpy()
        if not np.allclose(a, b, rtol=1e-12, atol=1e-13):
            raise AssertionError(f"rank {dist.get_rank()} {what}: {name} differs by "
                                 f"{np.abs(a - b).max():.3e}")


def main():
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    micro = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    sampler = DistributedSampler(range(BATCH), shuffle=False)
    mine = np.array(list(sampler))
    assert len(mine) == BATCH // world

    model = DDP(make(seed=100 + rank), bucket_cap_mb=200 / 2 ** 20)
    assert len(model._buckets) > 2, "buckets must split for this test"
    train(model, lambda rows: rows[mine], micro)
    if model.buckets_overlapped < STEPS:
        raise AssertionError(f"only {model.buckets_overlapped} buckets started during backward")
    ref = train(make(seed=100), lambda rows: rows, micro)
    compare(model.module, ref, f"DDP (micro={micro})")
    if ref.never_used.grad is not None or model.module.never_used.grad is not None:
        raise AssertionError("a parameter unused on every rank must keep grad None")
    if rank != 0 and model.module.branch.grad is None:
        raise AssertionError("the branch gradient must reach ranks that did not use it")
    assert list(model.state_dict()) == ["module." + k for k in ref.state_dict()]
    x, y, flag = next(batches())
    loss = loss_of(model, x[mine], y[mine], flag[mine])
    loss.backward(retain_graph=True)
    try:
        loss.backward()
    except RuntimeError as exc:
        assert "no forward of the wrapper prepared" in str(exc), exc
    else:
        raise AssertionError("a second backward after one forward must raise")
    dist.destroy_process_group()
    print(f"rank {rank} ddp ok")


if __name__ == "__main__":
    main()
