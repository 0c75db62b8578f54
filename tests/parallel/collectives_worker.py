"""Every collective, every dtype, against NumPy on all ranks; then the mismatch errors.

Each rank rebuilds every rank's input from a seed, so it knows the expected result exactly.
Values are small integers, so sums are exact in every dtype and reduction order.
"""
import sys

import numpy as np

import genesis
import genesis.distributed as dist
from genesis.distributed.nn import functional as dist_fn

DTYPES = [genesis.bool, genesis.uint8, genesis.int8, genesis.int16, genesis.int32,
          genesis.int64, genesis.float16, genesis.bfloat16, genesis.float32, genesis.float64]
SHAPE = (3, 4)
DEVICE = "cpu"


def T(arr):
    """A tensor of ``arr`` on the device under test."""
    return genesis.tensor(arr, device=DEVICE)


def data(rank, dt, shape=SHAPE, salt=0):
    """Rank ``rank``'s input: small integers (0/1 for bool) in dtype ``dt``."""
    rng = np.random.default_rng([rank, salt, DTYPES.index(dt)])
    high = 2 if dt is genesis.bool else 4
    return rng.integers(0, high, size=shape).astype(dt.np)


def check(got, want, what):
    got = np.asarray(got.cpu().numpy() if isinstance(got, genesis.Tensor) else got)
    want = np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(
            got.astype(np.float64), want.astype(np.float64)):
        raise AssertionError(f"rank {dist.get_rank()} {what}: got {got!r}, want {want!r}")


def expect_error(fn, words, what):
    try:
        fn()
    except (RuntimeError, ValueError, TypeError) as exc:
        msg = str(exc)
        if not all(w in msg for w in words):
            raise AssertionError(f"{what}: message {msg!r} lacks {words}") from exc
        return
    raise AssertionError(f"{what}: no error raised")


def reduce_ref(arrays, op, dt):
    stack = np.stack([a.astype(np.float64) for a in arrays])
    out = {"sum": stack.sum(0), "product": stack.prod(0), "min": stack.min(0),
           "max": stack.max(0), "avg": stack.mean(0)}[op]
    if dt is genesis.bool:
        out = {"sum": stack.max(0), "product": stack.min(0)}.get(op, out)
    return out.astype(dt.np)


def test_dtype(rank, world, dt):
    everyone = [data(r, dt) for r in range(world)]
    t = T(everyone[rank])
    src = world - 1
    dist.broadcast(t, src=src)
    check(t, everyone[src], f"broadcast {dt}")
    ops = [dist.ReduceOp.SUM, dist.ReduceOp.MAX, dist.ReduceOp.MIN, dist.ReduceOp.PRODUCT]
    if dt.is_floating_point:
        ops.append(dist.ReduceOp.AVG)
    for op in ops:
        t = T(everyone[rank])
        dist.all_reduce(t, op=op)
        check(t, reduce_ref(everyone, op, dt), f"all_reduce {op} {dt}")
    work = dist.all_reduce(t := T(everyone[rank]), async_op=True)
    work.wait()
    check(t, reduce_ref(everyone, "sum", dt), f"all_reduce async {dt}")
    outs = [T(np.zeros(SHAPE, dt.np)) for _ in range(world)]
    dist.all_gather(outs, T(everyone[rank]))
    for r in range(world):
        check(outs[r], everyone[r], f"all_gather[{r}] {dt}")
    cat = T(np.zeros((world * SHAPE[0], SHAPE[1]), dt.np))
    dist.all_gather_into_tensor(cat, T(everyone[rank]))
    check(cat, np.concatenate(everyone), f"all_gather_into_tensor {dt}")
    chunks = [[data(r, dt, salt=1 + c) for c in range(world)] for r in range(world)]
    out = T(np.zeros(SHAPE, dt.np))
    dist.reduce_scatter(out, [T(c) for c in chunks[rank]])
    check(out, reduce_ref([chunks[r][rank] for r in range(world)], "sum", dt),
          f"reduce_scatter {dt}")
    out = T(np.zeros(SHAPE, dt.np))
    dist.reduce_scatter_tensor(out, T(np.concatenate(chunks[rank])),
                               op=dist.ReduceOp.MAX)
    check(out, reduce_ref([chunks[r][rank] for r in range(world)], "max", dt),
          f"reduce_scatter_tensor max {dt}")
    test_all_to_all(rank, world, dt)


def splits(world):
    """Uneven, with empty slices: splits[r][s] rows go from rank r to rank s."""
    return [[(r + 2 * s) % 3 for s in range(world)] for r in range(world)]


def test_all_to_all(rank, world, dt):
    sp = splits(world)
    sent = [data(r, dt, shape=(sum(sp[r]), 2, 3), salt=7) for r in range(world)]
    offsets = [np.concatenate([[0], np.cumsum(sp[r])]) for r in range(world)]
    want = np.concatenate([sent[r][offsets[r][rank]:offsets[r][rank + 1]] for r in range(world)])
    out = T(np.zeros((sum(sp[r][rank] for r in range(world)), 2, 3), dt.np))
    dist.all_to_all_single(out, T(sent[rank]),
                           output_split_sizes=[sp[r][rank] for r in range(world)],
                           input_split_sizes=sp[rank])
    check(out, want, f"all_to_all_single uneven {dt}")
    even = [data(r, dt, shape=(2 * world, 3), salt=9) for r in range(world)]
    out = T(np.zeros((2 * world, 3), dt.np))
    dist.all_to_all_single(out, T(even[rank]))
    check(out, np.concatenate([even[r][2 * rank:2 * rank + 2] for r in range(world)]),
          f"all_to_all_single even {dt}")


def test_differentiable_all_to_all(rank, world):
    sp = splits(world)
    rows_in = sum(sp[rank])
    rows_out = sum(sp[r][rank] for r in range(world))
    x = T(data(rank, genesis.float64, shape=(rows_in, 3), salt=11)).requires_grad_()
    y = dist_fn.all_to_all_single(genesis.empty(rows_out, 3, dtype=genesis.float64,
                                                device=DEVICE), x,
                                  [sp[r][rank] for r in range(world)], sp[rank])
    weights = [data(r, genesis.float64, shape=(sum(sp[q][r] for q in range(world)), 3), salt=12)
               for r in range(world)]
    (y * T(weights[rank])).sum().backward()
    # d loss / d x[rank] rows sent to rank s = the weights rank s applied to those rows
    want = []
    for s in range(world):
        start = sum(sp[q][s] for q in range(rank))
        want.append(weights[s][start:start + sp[rank][s]])
    check(x.grad, np.concatenate(want), "differentiable all_to_all_single grad")


def test_errors(rank, world):
    expect_error(lambda: dist.all_reduce(T(np.zeros(2, np.int64)), op=dist.ReduceOp.AVG),
                 ["AVG", "int64"], "int AVG")
    if world == 1:
        return
    t = T(np.zeros(2 + rank))
    expect_error(lambda: dist.all_reduce(t), ["all_reduce", "disagree on the shape"],
                 "shape mismatch")
    t = T(np.zeros(2, np.float32 if rank == 0 else np.float64))
    expect_error(lambda: dist.broadcast(t, 0), ["broadcast", "dtype", "float32", "float64"],
                 "dtype mismatch")
    expect_error(lambda: dist.broadcast(T(np.zeros(2)), src=world if rank == 1 else 0),
                 ["broadcast"], "bad src on one rank")
    bad = [1] * world
    bad[0] += 1 if rank == 0 else 0
    expect_error(lambda: dist.all_to_all_single(T(np.zeros(world)), T(np.zeros(sum(bad))),
                                                [1] * world, bad),
                 ["all_to_all_single", "split sizes do not match"], "split mismatch")
    call = (lambda: dist.all_reduce(T(np.zeros(1)))) if rank == 0 else \
        (lambda: dist.broadcast(T(np.zeros(1)), 0))
    expect_error(call, ["different collectives"], "different collectives")
    dist.barrier()


def main():
    """Argument ``nccl`` runs the suite on CUDA tensors over NCCL; default: CPU over MPI."""
    global DEVICE
    backend = sys.argv[1] if len(sys.argv) > 1 else "mpi"
    DEVICE = "cuda" if backend == "nccl" else "cpu"
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    assert dist.is_initialized() and dist.get_backend() == backend
    for dt in DTYPES:
        if DEVICE == "cuda" and dt is genesis.bfloat16:
            continue            # CuPy arrays have no bfloat16 dtype
        test_dtype(rank, world, dt)
    test_differentiable_all_to_all(rank, world)
    test_errors(rank, world)
    dist.destroy_process_group()
    assert not dist.is_initialized()
    print(f"rank {rank}/{world} ok")


if __name__ == "__main__":
    main()
