"""Collectives on tensors with PyTorch's names and signatures (default group only).

Before moving data each call exchanges a small metadata vector (which collective, dtype,
shape, split sizes, root, reduction) among all ranks, so a mismatch - ranks disagreeing on
shapes or dtypes, calling different collectives, or one rank passing bad arguments - raises
the same clear ``RuntimeError`` on every rank instead of hanging or corrupting memory.
Results are written into the given tensors' memory (their version counters are bumped).
Reductions run in a dtype the transport reduces natively: bool as uint8, float16 and bfloat16
in float32, int16 in int32; the result is cast back.
"""
import numpy as np

from .. import backends, dtypes
from ..tensor import Tensor
from .process_group import ReduceOp, _group_backend

__all__ = ["barrier", "broadcast", "all_reduce", "all_gather", "all_gather_into_tensor",
           "reduce_scatter", "reduce_scatter_tensor", "all_to_all_single"]

_OPS = ("barrier", "broadcast", "all_reduce", "all_gather", "reduce_scatter", "all_to_all_single")
_MAX_DIMS = 8
_HEAD = 6            # op, local error, dtype, ndim, root, reduction
_REDUCE_AS = {np.dtype(np.bool_): np.uint8, np.dtype(np.float16): np.float32,
              dtypes.bfloat16.np: np.float32, np.dtype(np.int16): np.int32}
_BOOL_OPS = {ReduceOp.SUM: "max", ReduceOp.PRODUCT: "min", ReduceOp.MIN: "min",
             ReduceOp.MAX: "max"}


def _meta(backend, op, tensor, error=None, root=0, reduce_op=None, splits=None):
    """Exchange metadata; raise the same error on every rank when ranks disagree.

    Returns the gathered ``[world, L]`` matrix for op-specific checks."""
    world = backend.world_size
    vec = np.full(_HEAD + _MAX_DIMS + 2 * world, -1, dtype=np.int64)
    vec[0] = _OPS.index(op)
    vec[1] = 1 if error else 0
    if isinstance(tensor, Tensor) and not error:
        vec[2] = dtypes.ALL.index(tensor.dtype)
        vec[3] = tensor.ndim
        shape = tuple(tensor.shape)[:_MAX_DIMS]
        vec[_HEAD:_HEAD + len(shape)] = shape
    vec[4] = root
    vec[5] = -1 if reduce_op is None else ReduceOp.ALL.index(reduce_op)
    if splits is not None:
        vec[_HEAD + _MAX_DIMS:] = np.concatenate(splits)
    rows = backend.gather_meta(vec)
    if rows[:, 1].any():
        if error:
            raise error
        bad = np.nonzero(rows[:, 1])[0].tolist()
        raise RuntimeError(f"{op}: rank(s) {bad} passed invalid arguments (see the error raised "
                           "there); no data was exchanged")
    if (rows[:, 0] != rows[0, 0]).any():
        called = {r: _OPS[c] for r, c in enumerate(rows[:, 0].tolist())}
        raise RuntimeError(f"{op}: ranks called different collectives: {called}")
    if (rows[:, 2] != rows[0, 2]).any():
        got = {r: dtypes.ALL[c].name for r, c in enumerate(rows[:, 2].tolist())}
        raise RuntimeError(f"{op}: ranks disagree on the dtype: {got}")
    for col, what in ((4, "root (src)"), (5, "reduction op")):
        if (rows[:, col] != rows[0, col]).any():
            got = rows[:, col].tolist()
            if col == 5:
                got = [ReduceOp.ALL[c] for c in got]
            raise RuntimeError(f"{op}: ranks disagree on the {what}: {dict(enumerate(got))}")
    return rows


def _shapes(rows):
    return {r: tuple(int(s) for s in row[_HEAD:_HEAD + row[3]]) for r, row in enumerate(rows)}


def _same_shapes(op, rows, tail_only=False):
    shapes = _shapes(rows)
    key = {r: s[1:] if tail_only else s for r, s in shapes.items()}
    if len(set(key.values())) > 1:
        what = "the shape after dim 0" if tail_only else "the shape"
        raise RuntimeError(f"{op}: ranks disagree on {what}: {shapes}")


def _check_tensor(op, name, t):
    if not isinstance(t, Tensor):
        return TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if t.ndim > _MAX_DIMS:
        return ValueError(f"{op}: {name} has {t.ndim} dimensions; at most {_MAX_DIMS} supported")
    return None


def _xp(t):
    return backends.xp_for(t.device)


def _contiguous(arr, xp, dtype=None):
    """A C-contiguous buffer with ``arr``'s values (a copy when layout or dtype differ)."""
    dtype = arr.dtype if dtype is None else np.dtype(dtype)
    if arr.dtype == dtype and arr.flags.c_contiguous:
        return arr
    return xp.ascontiguousarray(arr).astype(dtype)


def _write(tensor, buf):
    """Store ``buf`` into ``tensor``'s memory (cast to its dtype) and bump its version."""
    arr = tensor._array
    if buf is not arr:
        arr[...] = buf.reshape(arr.shape).astype(arr.dtype, copy=False)
    tensor._version[0] += 1


def _finish(work, async_op):
    if async_op:
        return work
    work.wait()
    return None


def reduce_array(backend, arr, op, xp):
    """Start reducing ``arr`` over ranks; returns ``(buffer, work)`` with the result in
    ``buffer`` (``arr`` itself when its dtype and layout allow) once ``work`` is waited on.

    The internal entry of ``all_reduce`` (no metadata exchange), also used by
    ``DistributedDataParallel`` whose buffers are known to agree."""
    work_dtype = _REDUCE_AS.get(arr.dtype, arr.dtype)
    buf = _contiguous(arr, xp, work_dtype)
    transport_op = _BOOL_OPS[op] if arr.dtype == np.bool_ else (
        ReduceOp.SUM if op == ReduceOp.AVG else op)
    work = backend.all_reduce(buf, transport_op)
    if op == ReduceOp.AVG:
        def average():
            buf[...] /= backend.world_size
        work.then(average)
    return buf, work


def barrier(group=None, async_op=False, device_ids=None):
    """Block until every rank has entered the barrier."""
    backend = _group_backend(group, "barrier")
    _meta(backend, "barrier", None)
    return _finish(backend.barrier(), async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """Copy rank ``src``'s ``tensor`` into ``tensor`` on every rank."""
    backend = _group_backend(group, "broadcast")
    error = _check_tensor("broadcast", "tensor", tensor)
    if error is None and not (isinstance(src, int) and 0 <= src < backend.world_size):
        error = ValueError(f"broadcast: src={src!r} is not a rank of a group of "
                           f"{backend.world_size} processes")
    rows = _meta(backend, "broadcast", tensor, error, root=src if error is None else -1)
    _same_shapes("broadcast", rows)
    buf = _contiguous(tensor._array, _xp(tensor))
    return _finish(backend.broadcast(buf, src).then(lambda: _write(tensor, buf)), async_op)


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``tensor`` element-wise over ranks (SUM, AVG, PRODUCT, MIN, MAX), in place."""
    backend = _group_backend(group, "all_reduce")
    error = _check_tensor("all_reduce", "tensor", tensor)
    if error is None and op not in ReduceOp.ALL:
        error = ValueError(f"all_reduce: unknown op {op!r}; expected one of ReduceOp.SUM, AVG, "
                           "PRODUCT, MIN, MAX")
    if error is None and op == ReduceOp.AVG and not tensor.dtype.is_floating_point:
        error = TypeError(f"all_reduce: ReduceOp.AVG needs a floating point tensor, got "
                          f"{tensor.dtype}")
    rows = _meta(backend, "all_reduce", tensor, error, reduce_op=None if error else op)
    _same_shapes("all_reduce", rows)
    buf, work = reduce_array(backend, tensor._array, op, _xp(tensor))
    return _finish(work.then(lambda: _write(tensor, buf)), async_op)


def _gather_into(backend, out_arr, tensor, async_op, after):
    xp = _xp(tensor)
    inp = _contiguous(tensor._array, xp)
    out = out_arr if out_arr.flags.c_contiguous else xp.empty(out_arr.shape, out_arr.dtype)
    return _finish(backend.all_gather(out, inp).then(lambda: after(out)), async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill ``tensor_list[r]`` with rank r's ``tensor`` on every rank."""
    backend = _group_backend(group, "all_gather")
    world = backend.world_size
    error = _check_tensor("all_gather", "tensor", tensor)
    if error is None and (len(tensor_list) != world or any(
            not isinstance(t, Tensor) or tuple(t.shape) != tuple(tensor.shape)
            or t.dtype is not tensor.dtype for t in tensor_list)):
        error = ValueError(f"all_gather: tensor_list must hold {world} tensors of shape "
                           f"{tuple(tensor.shape)} and dtype {tensor.dtype}, got "
                           f"{[(tuple(t.shape), t.dtype) for t in tensor_list]}")
    rows = _meta(backend, "all_gather", tensor, error)
    _same_shapes("all_gather", rows)
    xp = _xp(tensor)
    out = xp.empty((world,) + tuple(tensor.shape), dtype=tensor._array.dtype)

    def scatter(buf):
        for r, t in enumerate(tensor_list):
            _write(t, buf[r])
    return _gather_into(backend, out, tensor, async_op, scatter)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Concatenate every rank's ``input_tensor`` along dim 0 (or stack) into ``output_tensor``."""
    backend = _group_backend(group, "all_gather")
    world = backend.world_size
    error = _check_tensor("all_gather", "input_tensor", input_tensor) or \
        _check_tensor("all_gather", "output_tensor", output_tensor)
    if error is None and (output_tensor.numel() != world * input_tensor.numel()
                          or output_tensor.dtype is not input_tensor.dtype):
        error = ValueError(f"all_gather_into_tensor: output_tensor {tuple(output_tensor.shape)} "
                           f"{output_tensor.dtype} must hold {world} x input_tensor "
                           f"{tuple(input_tensor.shape)} {input_tensor.dtype}")
    rows = _meta(backend, "all_gather", input_tensor, error)
    _same_shapes("all_gather", rows)
    return _gather_into(backend, output_tensor._array, input_tensor, async_op,
                        lambda buf: _write(output_tensor, buf))


def _reduce_scatter(backend, output, stacked, op, async_op):
    xp = _xp(output)
    work_dtype = _REDUCE_AS.get(output._array.dtype, output._array.dtype)
    inp = _contiguous(stacked, xp, work_dtype)
    out = xp.empty(output.shape, dtype=work_dtype)
    transport_op = _BOOL_OPS[op] if output.dtype is dtypes.bool_ else (
        ReduceOp.SUM if op == ReduceOp.AVG else op)
    work = backend.reduce_scatter(out, inp, transport_op)
    if op == ReduceOp.AVG:
        def average():
            out[...] /= backend.world_size
        work.then(average)
    return _finish(work.then(lambda: _write(output, out)), async_op)


def _reduce_op_error(name, op, dtype):
    if op not in ReduceOp.ALL:
        return ValueError(f"{name}: unknown op {op!r}; expected one of ReduceOp.SUM, AVG, "
                          "PRODUCT, MIN, MAX")
    if op == ReduceOp.AVG and not dtype.is_floating_point:
        return TypeError(f"{name}: ReduceOp.AVG needs a floating point tensor, got {dtype}")
    return None


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """``output`` = reduction over ranks of each rank's ``input_list[rank]``."""
    backend = _group_backend(group, "reduce_scatter")
    world = backend.world_size
    error = _check_tensor("reduce_scatter", "output", output)
    if error is None and (len(input_list) != world or any(
            not isinstance(t, Tensor) or tuple(t.shape) != tuple(output.shape)
            or t.dtype is not output.dtype for t in input_list)):
        error = ValueError(f"reduce_scatter: input_list must hold {world} tensors of shape "
                           f"{tuple(output.shape)} and dtype {output.dtype}")
    error = error or _reduce_op_error("reduce_scatter", op, output.dtype)
    rows = _meta(backend, "reduce_scatter", output, error, reduce_op=None if error else op)
    _same_shapes("reduce_scatter", rows)
    xp = _xp(output)
    stacked = xp.stack([t._array for t in input_list])
    return _reduce_scatter(backend, output, stacked, op, async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """``output`` = reduction over ranks of chunk ``rank`` of ``input`` (split along dim 0)."""
    backend = _group_backend(group, "reduce_scatter")
    world = backend.world_size
    error = _check_tensor("reduce_scatter", "output", output) or \
        _check_tensor("reduce_scatter", "input", input)
    if error is None and (input.numel() != world * output.numel()
                          or input.dtype is not output.dtype):
        error = ValueError(f"reduce_scatter_tensor: input {tuple(input.shape)} {input.dtype} "
                           f"must hold {world} x output {tuple(output.shape)} {output.dtype}")
    error = error or _reduce_op_error("reduce_scatter", op, output.dtype)
    rows = _meta(backend, "reduce_scatter", output, error, reduce_op=None if error else op)
    _same_shapes("reduce_scatter", rows)
    return _reduce_scatter(backend, output, input._array, op, async_op)


def _splits(name, sizes, dim0, world):
    """Split sizes as a list of ints; None means ``world`` equal parts of ``dim0``."""
    if sizes is None:
        if dim0 % world:
            raise ValueError(f"all_to_all_single: {name} is None but dim 0 ({dim0}) does not "
                             f"split evenly over {world} ranks")
        return [dim0 // world] * world
    sizes = [int(s) for s in (sizes.tolist() if isinstance(sizes, Tensor) else sizes)]
    if len(sizes) != world or any(s < 0 for s in sizes) or sum(sizes) != dim0:
        raise ValueError(f"all_to_all_single: {name}={sizes} must be {world} non-negative sizes "
                         f"summing to dim 0 of the tensor ({dim0})")
    return sizes


def plan_all_to_all(backend, output, input, output_split_sizes, input_split_sizes):
    """Validate an ``all_to_all_single`` on every rank; returns the (send, recv) dim-0 splits."""
    world = backend.world_size
    error = _check_tensor("all_to_all_single", "input", input) or \
        _check_tensor("all_to_all_single", "output", output)
    send = recv = [0] * world
    if error is None:
        try:
            if input.dtype is not output.dtype or tuple(input.shape[1:]) != \
                    tuple(output.shape[1:]) or input.ndim == 0:
                raise ValueError(f"all_to_all_single: input {tuple(input.shape)} {input.dtype} "
                                 f"and output {tuple(output.shape)} {output.dtype} must share "
                                 "the dtype and the shape after dim 0")
            send = _splits("input_split_sizes", input_split_sizes, input.shape[0], world)
            recv = _splits("output_split_sizes", output_split_sizes, output.shape[0], world)
        except ValueError as exc:
            error = exc
    rows = _meta(backend, "all_to_all_single", input, error, splits=(send, recv))
    _same_shapes("all_to_all_single", rows, tail_only=True)
    base = _HEAD + _MAX_DIMS
    sent = rows[:, base:base + world]                 # sent[r, s]: rows r sends to s
    expected = rows[:, base + world:base + 2 * world]  # expected[s, r]: rows s takes from r
    if (sent.T != expected).any():
        raise RuntimeError(f"all_to_all_single: split sizes do not match across ranks: rank r "
                           f"sends input_split_sizes {sent.tolist()} (row r) but the receivers "
                           f"expect output_split_sizes {expected.tolist()} (row s holds what s "
                           "takes from each rank)")
    return send, recv


def exchange_rows(backend, arr, send, recv, xp, out=None):
    """Start the all-to-all of ``arr``'s dim-0 rows (``send[r]`` rows to rank r, ``recv[r]``
    from it); returns ``(out, work)``. No metadata exchange: callers know the splits agree."""
    row = int(np.prod(arr.shape[1:], dtype=np.int64))
    inp = _contiguous(arr, xp)
    if out is None or not out.flags.c_contiguous or out is arr:
        out = xp.empty((sum(recv),) + tuple(arr.shape[1:]), dtype=arr.dtype)
    work = backend.all_to_all(out, inp, [s * row for s in send], [r * row for r in recv])
    return out, work


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                      group=None, async_op=False):
    """Scatter consecutive dim-0 slices of ``input`` to the ranks (``input_split_sizes[r]``
    rows to rank r) and gather what they send into ``output`` (``output_split_sizes[r]`` rows
    from rank r); splits default to equal parts."""
    backend = _group_backend(group, "all_to_all_single")
    send, recv = plan_all_to_all(backend, output, input, output_split_sizes, input_split_sizes)
    out, work = exchange_rows(backend, input._array, send, recv, _xp(input), output._array)
    return _finish(work.then(lambda: _write(output, out)), async_op)
