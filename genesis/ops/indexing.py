"""Indexing ops: ``x[index]``, ``x[index] = v``, gather/scatter, selection, sorting, one_hot.

Indices follow PyTorch: integers and slices (positive steps only), ``None``, ``...``, integer
tensors/lists (advanced indexing) and bool masks. As in PyTorch, integer indices are applied
first as a view; the remaining advanced indices then follow NumPy's placement rules.
"""
import collections
import numbers
import operator

import numpy as np

from .. import backends, dtypes
from ..backends import scatter as _scatter
from ..amp.autocast_mode import autocast_op
from .._broadcast import broadcast_error, broadcast_shapes
from ..autograd import Function, _mode, unbroadcast
from ..tensor import Tensor, _wrap_dim, check_no_internal_overlap
from ._inplace import check_inplace, graph_involved, write_result
from .elementwise import check_bool_mask, clone, mul, to_dtype

__all__ = ["getitem", "setitem", "gather", "take_along_dim", "scatter", "scatter_add",
           "index_select", "index_add", "index_fill", "masked_select", "nonzero", "sort",
           "argsort", "topk", "tril", "triu", "one_hot", "bincount"]

# Ops that are also Tensor methods (x.name(...) is name(x, ...)) and have an in-place
# form (x.name_(...)); bound onto Tensor by ops/_methods.py.
TENSOR_METHODS = """
gather scatter scatter_add index_select index_add masked_select nonzero topk sort argsort tril
triu bincount index_fill take_along_dim
"""
INPLACE_METHODS = """
scatter scatter_add index_add index_fill tril triu
"""

_ValuesIndicesTopk = collections.namedtuple("topk", ["values", "indices"])
_ValuesIndicesSort = collections.namedtuple("sort", ["values", "indices"])
_FULL = slice(None)


# --------------------------------------------------------------------------- index parsing
def _index_array(obj, xp, op):
    """An index tensor/list/array as a raw integer or bool array."""
    if isinstance(obj, Tensor):
        arr = obj._array
    else:
        arr = np.asarray(obj)
        if arr.size == 0 and arr.dtype.kind == "f":
            arr = arr.astype(np.int64)
    if arr.dtype == np.uint8:
        arr = arr.astype(bool)
    if arr.dtype.kind not in "biu":
        raise IndexError(f"{op}: tensors used as indices must be long, int, byte or bool "
                         f"tensors, got dtype {arr.dtype}")
    return arr if isinstance(arr, xp.ndarray) else xp.asarray(arr)


def _as_items(index):
    """The index as a tuple of items; lists of numbers are one advanced index, as in NumPy."""
    if isinstance(index, tuple):
        return index
    if isinstance(index, list) and any(
            isinstance(i, (Tensor, slice)) or i is None or i is Ellipsis for i in index):
        return tuple(index)
    return (index,)


def _classify(item, xp, op):
    """(kind, value) of one index item: int, slice, none, ellipsis, array or mask."""
    if item is None:
        return "none", None
    if item is Ellipsis:
        return "ellipsis", None
    if isinstance(item, (bool, np.bool_)):
        return "mask", xp.asarray(bool(item))
    if isinstance(item, (numbers.Integral, np.integer)):
        return "int", int(item)
    if isinstance(item, slice):
        parts = [None if p is None else operator.index(p) for p in
                 (item.start, item.stop, item.step)]
        if parts[2] is not None and parts[2] <= 0:
            raise ValueError(f"{op}: step must be greater than zero, got {parts[2]}")
        return "slice", slice(*parts)
    if isinstance(item, (Tensor, np.ndarray, list, tuple)) or \
            hasattr(item, "__cuda_array_interface__"):
        arr = _index_array(item, xp, op)
        if arr.dtype == bool:
            return "mask", arr
        if arr.ndim == 0:
            return "int", int(arr)
        return "array", arr
    raise IndexError(f"{op}: only integers, slices (`:`), ellipsis (`...`), None and long, int, "
                     f"byte or bool tensors are valid indices (got {type(item).__name__})")


def _check_range(xp, arr, size, dim, op, allow_negative=True, error=IndexError):
    """Raise ``error`` naming the first index outside ``[-size, size)`` (or ``[0, size)``)."""
    if arr.size == 0:
        return
    lo, hi = int(arr.min()), int(arr.max())
    low = -size if allow_negative else 0
    if lo < low or hi >= size:
        bad = lo if lo < low else hi
        raise error(f"{op}: index {bad} is out of bounds for dimension {dim} with size {size}")


def _parse_index(x, index, op):
    """Split a PyTorch index into a basic (view) part and an advanced part, both NumPy-ready.

    Returns ``(basic, adv)``: ``basic`` indexes ``x`` (always a view), ``adv`` is None or the
    advanced index applied to that view afterwards.
    """
    xp = backends.xp_for(x.device)
    items = [_classify(it, xp, op) for it in _as_items(index)]
    shape = x._array.shape
    consumed = sum(v.ndim if k == "mask" else 1 for k, v in items
                   if k in ("int", "slice", "array", "mask"))
    n_ellipsis = sum(k == "ellipsis" for k, _ in items)
    if n_ellipsis > 1:
        raise IndexError(f"{op}: an index can only have a single ellipsis ('...')")
    if consumed > len(shape):
        raise IndexError(f"{op}: too many indices for tensor of dimension {len(shape)} "
                         f"(got {consumed} indexed dimensions)")
    basic, adv = [], []
    has_adv = any(k in ("array", "mask") for k, _ in items)
    d = 0
    for pos, (kind, v) in enumerate(items):
        if kind == "int":
            size = shape[d]
            if not -size <= v < size:
                raise IndexError(f"{op}: index {v} is out of bounds for dimension {d} with size "
                                 f"{size}")
            basic.append(v)
            d += 1
        elif kind == "slice":
            basic.append(v)
            adv.append(_FULL)
            d += 1
        elif kind == "none":
            basic.append(None)
            adv.append(_FULL)
        elif kind == "ellipsis":
            span = len(shape) - consumed
            basic.extend([_FULL] * span)
            adv.extend([_FULL] * span)
            d += span
        elif kind == "array":
            _check_range(xp, v, shape[d], d, op)
            basic.append(_FULL)
            adv.append(v)
            d += 1
        else:
            if tuple(v.shape) != tuple(shape[d:d + v.ndim]):
                raise IndexError(f"{op}: the shape of the mask {list(v.shape)} at index {pos} "
                                 f"does not match the shape of the indexed tensor "
                                 f"{list(shape)} at index {d}")
            basic.extend([_FULL] * v.ndim)
            adv.append(v)
            d += v.ndim
    arrays = [v for k, v in items if k in ("array", "mask")]
    if len(arrays) > 1:
        shapes = [(int(v.sum()),) if v.dtype == bool else tuple(v.shape) for v in arrays]
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise IndexError(f"{op}: shape mismatch: indexing tensors could not be broadcast "
                             f"together with shapes {shapes}") from None
    trivial = all(isinstance(b, slice) and b == _FULL for b in basic)
    basic = None if (has_adv and trivial) else tuple(basic) + (Ellipsis,)
    return basic, (tuple(adv) if has_adv else None)


def _scatter_add_into(xp, target, index, values):
    """``target[index] += values`` with repeated indices accumulating (NumPy/CuPy ``add.at``)."""
    _scatter.scatter_add(xp, target, index, values)


def _unique_positions(index):
    """True when an advanced index cannot address one element twice (bool masks only)."""
    return all(not hasattr(i, "dtype") or i.dtype == bool for i in index)


# --------------------------------------------------------------------------- functions
class BasicIndex(Function):
    """``x[index]`` for ints, slices, None and Ellipsis: a view of ``x``."""

    is_view = True

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx, g):
        gx = ctx.xp.zeros(ctx.shape, dtype=g.dtype)
        gx[ctx.index] = g
        return gx, None


class Index(Function):
    """``x[index]`` with integer/bool arrays: a copy; backward scatter-adds repeated indices."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        gx = xp.zeros(ctx.shape, dtype=g.dtype)
        if _unique_positions(ctx.index):
            gx[ctx.index] = g
        else:
            _scatter_add_into(xp, gx, ctx.index, g)
        return gx, None


def _fit(grad, shape):
    """Reduce the gradient of a broadcast assignment back to the value's ``shape``."""
    if grad.ndim < len(shape):
        grad = grad.reshape((1,) * (len(shape) - grad.ndim) + grad.shape)
    return unbroadcast(grad, tuple(shape))


def _target(arr, basic, adv):
    """The part of ``arr`` that (basic, adv) addresses, and the index into it."""
    view = arr if basic is None else arr[basic]
    return view, (Ellipsis,) if adv is None else adv


def _assign(xp, view, idx, values, accumulate, op):
    """``view[idx] = values`` (``+=`` with ``accumulate``); PyTorch's RuntimeError when the
    value does not broadcast to the indexed part."""
    try:
        if accumulate:
            _scatter_add_into(xp, view, idx, values)
        else:
            view[idx] = values
    except ValueError:
        raise broadcast_error(op, f"shape mismatch: value tensor of shape "
                                  f"{tuple(getattr(values, 'shape', ()))} cannot be broadcast to "
                                  f"indexing result of shape {tuple(view[idx].shape)}") from None


class IndexPut(Function):
    """``out = x.clone(); out[basic][adv] = values`` (or ``+=`` with ``accumulate``)."""

    @staticmethod
    def forward(ctx, x, values, basic, adv, accumulate, op):
        out = x.copy()
        view, idx = _target(out, basic, adv)
        _assign(ctx.xp, view, idx, values, accumulate, op)
        ctx.meta = (basic, adv, accumulate, getattr(values, "shape", ()))
        return out

    @staticmethod
    def backward(ctx, g):
        basic, adv, accumulate, vshape = ctx.meta
        needs_x, needs_v = ctx.needs_input_grad[:2]
        gx = gv = None
        if needs_x:
            if accumulate:
                gx = g
            else:
                gx = g.copy()
                view, idx = _target(gx, basic, adv)
                view[idx] = 0
        if needs_v:
            view, idx = _target(g, basic, adv)
            gv = _fit(view[idx], vshape)
        return gx, gv, None, None, None, None


def _index_put(input, values, basic, adv, accumulate, op):
    """Functional ``index_put`` shared by setitem and the scatter family."""
    return IndexPut.apply(input, values, basic, adv, accumulate, op)


# --------------------------------------------------------------------------- [] and []=
def getitem(input, index):
    """``input[index]`` with PyTorch semantics; basic indexing returns a view."""
    basic, adv = _parse_index(input, index, "getitem")
    out = input if basic is None else BasicIndex.apply(input, basic)
    if adv is None:
        return out
    return Index.apply(out, adv)


def _value_operand(input, value, op):
    """``value`` as a Tensor of ``input``'s dtype or a NumPy scalar of that dtype."""
    if isinstance(value, Tensor):
        if value.device != input.device:
            raise RuntimeError(f"{op}: value is on {value.device} but the tensor is on "
                               f"{input.device}")
        return to_dtype(value, input.dtype)
    if isinstance(value, (numbers.Number, np.generic)):
        return input.dtype.np.type(value)
    raise TypeError(f"{op}: value must be a Tensor or a Python number, got "
                    f"{type(value).__name__}")


def setitem(input, index, value):
    """``input[index] = value`` in place (value broadcast); differentiable in both."""
    basic, adv = _parse_index(input, index, "setitem")
    value = _value_operand(input, value, "setitem")
    value_grad = isinstance(value, Tensor) and value.requires_grad
    if not (value_grad and _mode.enabled or graph_involved(input)):
        view, idx = _target(input._array, basic, adv)
        if adv is None:
            check_no_internal_overlap(view, "setitem")
        _assign(backends.xp_for(input.device), view, idx,
                value._array if isinstance(value, Tensor) else value, False, "setitem")
        input._version[0] += 1
        return input
    check_inplace(input, "setitem")
    return write_result(input, _index_put(input, value, basic, adv, False, "setitem"),
                        "setitem")


# --------------------------------------------------------------------------- along a dim
def _index_tensor(index, op, name="index"):
    """The raw integer array of an index tensor."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor of integers, got "
                        f"{type(index).__name__}")
    if index.dtype.is_floating_point or index.dtype is dtypes.bool_:
        raise RuntimeError(f"{op}: expected {name} to have an integer dtype (int64), got "
                           f"{index.dtype}")
    return index._array


def _along_dim_index(xp, index, dim, src_shape):
    """Advanced index picking ``src[..., index[p], ...]`` along ``dim`` at each position ``p``.

    Other dims use the position itself, or 0 where ``src`` has size 1 (broadcast).
    """
    ndim = index.ndim
    out = []
    for d in range(ndim):
        if d == dim:
            out.append(index)
            continue
        shape = [1] * ndim
        if src_shape[d] == 1:
            out.append(xp.zeros(shape, dtype=np.int64))
        else:
            shape[d] = index.shape[d]
            out.append(xp.arange(index.shape[d]).reshape(shape))
    return tuple(out)


def _check_gather_shapes(input, index, dim, op, src=None):
    """PyTorch's gather/scatter rules: same ndim; index no larger than the others."""
    if index.ndim != input.ndim:
        raise RuntimeError(f"{op}: index tensor must have the same number of dimensions as the "
                           f"input tensor; got index of shape {tuple(index.shape)} and input of "
                           f"shape {tuple(input.shape)}")
    for d in range(index.ndim):
        too_big = (d != dim and index.shape[d] > input.shape[d]) or \
            (src is not None and index.shape[d] > src.shape[d])
        if too_big:
            srcmsg = "" if src is None else f" and to be no larger than src {list(src.shape)}"
            raise RuntimeError(f"{op}: expected index {list(index.shape)} to be no larger than "
                               f"input {list(input.shape)} apart from dimension {dim}{srcmsg}")


def _promote_0d(t):
    """A 0-d tensor as a (differentiable) view of shape (1,)."""
    return BasicIndex.apply(t, (None, Ellipsis)) if t.ndim == 0 else t


def _demote_0d(t, was_0d):
    """Undo ``_promote_0d`` on a result."""
    return BasicIndex.apply(t, (0, Ellipsis)) if was_0d else t


def gather(input, dim, index):
    """``out[i][j] = input[index[i][j]][j]`` (dim 0) and so on; index no larger than input."""
    idx = _index_tensor(index, "gather")
    was_0d = input.ndim == 0
    dim = _wrap_dim(dim, input.ndim, "gather")
    _check_gather_shapes(input, index, dim, "gather")
    x = _promote_0d(input)
    idx = idx.reshape(1) if idx.ndim == 0 else idx
    xp = backends.xp_for(x.device)
    _check_range(xp, idx, x.shape[dim], dim, "gather", allow_negative=False, error=RuntimeError)
    return _demote_0d(Index.apply(x, _along_dim_index(xp, idx, dim, x.shape)), was_0d)


def take_along_dim(input, indices, dim=None):
    """Pick values along ``dim`` at ``indices`` (broadcast with ``input``); dim=None: flat."""
    idx = _index_tensor(indices, "take_along_dim", "indices")
    xp = backends.xp_for(input.device)
    x = _promote_0d(input)
    if dim is None:
        flat = idx.reshape(-1)
        _check_range(xp, flat, x.numel(), 0, "take_along_dim", allow_negative=False,
                     error=RuntimeError)
        return Index.apply(x, tuple(xp.unravel_index(flat, x.shape)))
    if idx.ndim != input.ndim:
        raise RuntimeError(f"take_along_dim: input and indices should have the same number of "
                           f"dimensions, got {input.ndim} and {idx.ndim}")
    idx = idx.reshape(1) if idx.ndim == 0 else idx
    dim = _wrap_dim(dim, x.ndim, "take_along_dim")
    bshape = list(broadcast_shapes(
        "take_along_dim", tuple(s for d, s in enumerate(x.shape) if d != dim),
        tuple(s for d, s in enumerate(idx.shape) if d != dim),
        what=f"input of shape {tuple(input.shape)} and indices of shape {tuple(idx.shape)} "
             f"apart from dimension {dim}"))
    bshape.insert(dim, idx.shape[dim])
    idx = xp.broadcast_to(idx, tuple(bshape))
    _check_range(xp, idx, x.shape[dim], dim, "take_along_dim", allow_negative=False,
                 error=RuntimeError)
    return _demote_0d(Index.apply(x, _along_dim_index(xp, idx, dim, x.shape)),
                      input.ndim == 0)


def _same_dtype(input, src, op, name):
    if src.dtype is not input.dtype:
        raise RuntimeError(f"{op}: expected {name} to have the same dtype as input "
                           f"({input.dtype}), got {src.dtype}")


def _scatter_setup(input, dim, index, src, op):
    """Validated (dim, raw index, values) for the scatter family; src cut to index's shape."""
    idx = _index_tensor(index, op)
    dim = _wrap_dim(dim, input.ndim, op)
    is_src = isinstance(src, Tensor)
    if is_src:
        _same_dtype(input, src, op, "src")
        if src.ndim != index.ndim:
            raise RuntimeError(f"{op}: src of shape {tuple(src.shape)} must have as many "
                               f"dimensions as index of shape {tuple(index.shape)}")
    _check_gather_shapes(input, index, dim, op, src if is_src else None)
    if input.ndim == 0:
        idx = idx.reshape(1)
    _check_range(backends.xp_for(input.device), idx, input.shape[dim] if input.ndim else 1, dim,
                 op, allow_negative=False, error=RuntimeError)
    if is_src:
        values = src if tuple(src.shape) == tuple(index.shape) else \
            BasicIndex.apply(src, tuple(slice(0, n) for n in index.shape) + (Ellipsis,))
        values = _promote_0d(values)
    else:
        values = _value_operand(input, src, op)
    return dim, idx, values


def _scatter_impl(input, dim, index, src, accumulate, op):
    dim, idx, values = _scatter_setup(input, dim, index, src, op)
    x = _promote_0d(input)
    xp = backends.xp_for(x.device)
    out = _index_put(x, values, None, _along_dim_index(xp, idx, dim, x.shape), accumulate, op)
    return _demote_0d(out, input.ndim == 0)


def scatter(input, dim, index, src=None, reduce=None, *, value=None):
    """Write ``src`` (tensor) or ``value`` (number) into ``input`` at ``index`` along ``dim``."""
    if (src is None) == (value is None):
        raise TypeError("scatter: pass exactly one of src (a tensor or number) or value")
    src = value if src is None else src
    if reduce is None:
        return _scatter_impl(input, dim, index, src, False, "scatter")
    if reduce == "add":
        return _scatter_impl(input, dim, index, src, True, "scatter")
    if reduce != "multiply":
        raise RuntimeError(f"scatter: reduce argument must be either 'add' or 'multiply', got "
                           f"{reduce!r}")
    if _mode.enabled and (input.requires_grad or getattr(src, "requires_grad", False)):
        raise RuntimeError("scatter: the derivative for reduce='multiply' is not implemented "
                           "(as in PyTorch); run it under genesis.no_grad()")
    dim, idx, values = _scatter_setup(input, dim, index, src, "scatter")
    x = input._array.reshape(1) if input.ndim == 0 else input._array
    xp = backends.xp_for(input.device)
    out = x.copy()
    raw = values._array if isinstance(values, Tensor) else values
    _scatter.scatter_multiply(xp, out, _along_dim_index(xp, idx, dim, x.shape), raw)
    return Tensor._make(out.reshape(input._array.shape), device=input.device)


@autocast_op
def scatter_add(input, dim, index, src):
    """Add ``src`` into ``input`` at ``index`` along ``dim``; repeated indices accumulate."""
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add: src must be a Tensor, got {type(src).__name__}")
    return _scatter_impl(input, dim, index, src, True, "scatter_add")


def _index_1d(index, op):
    """A 1-D (or 0-d) integer index tensor as a raw 1-D array."""
    idx = _index_tensor(index, op)
    if idx.ndim > 1:
        raise IndexError(f"{op}: index is supposed to be a vector, got shape "
                         f"{tuple(index.shape)}")
    return idx.reshape(-1)


def _dim_index(input, dim, index, op):
    """(dim, index tuple addressing ``index`` along ``dim``) after range checks."""
    idx = _index_1d(index, op)
    dim = _wrap_dim(dim, input.ndim, op)
    size = input.shape[dim] if input.ndim else 1
    _check_range(backends.xp_for(input.device), idx, size, dim, op, allow_negative=False,
                 error=RuntimeError)
    return dim, (_FULL,) * dim + (idx,)


def index_select(input, dim, index):
    """Entries of ``input`` along ``dim`` at the positions in 1-D ``index``."""
    dim, idx = _dim_index(input, dim, index, "index_select")
    x = _promote_0d(input)
    return _demote_0d(Index.apply(x, idx), input.ndim == 0)


def index_add(input, dim, index, source, *, alpha=1):
    """``input`` with ``alpha * source`` slices added at ``index`` along ``dim`` (accumulating)."""
    dim, idx = _dim_index(input, dim, index, "index_add")
    if not isinstance(source, Tensor):
        raise TypeError(f"index_add: source must be a Tensor, got {type(source).__name__}")
    _same_dtype(input, source, "index_add", "source")
    want = list(input.shape)
    if want:
        want[dim] = idx[-1].size
    if list(source.shape) != want:
        raise RuntimeError(f"index_add: source of shape {tuple(source.shape)} does not match "
                           f"input of shape {tuple(input.shape)} with dimension {dim} of size "
                           f"len(index) = {idx[-1].size}; expected {tuple(want)}")
    values = source if alpha == 1 else mul(source, alpha)
    x = _promote_0d(input)
    out = _index_put(x, _promote_0d(values), None, idx, True, "index_add")
    return _demote_0d(out, input.ndim == 0)


def index_fill(input, dim, index, value):
    """``input`` with the slices at ``index`` along ``dim`` set to ``value`` (number or 0-d)."""
    dim, idx = _dim_index(input, dim, index, "index_fill")
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"index_fill: only supports a 0-dimensional value tensor, got shape "
                           f"{tuple(value.shape)}")
    xp = backends.xp_for(input.device)
    idx = idx[:-1] + (xp.unique(idx[-1]),)
    x = _promote_0d(input)
    out = _index_put(x, _value_operand(input, value, "index_fill"), None, idx, False,
                     "index_fill")
    return _demote_0d(out, input.ndim == 0)


# --------------------------------------------------------------------------- masks
class MaskedSelect(Function):
    """Elements where a broadcast bool mask holds; backward scatters into the broadcast shape."""

    @staticmethod
    def forward(ctx, x, mask):
        xp = ctx.xp
        shape = np.broadcast_shapes(x.shape, mask.shape)
        ctx.mask = mask = xp.broadcast_to(mask, shape)
        ctx.shape = x.shape
        return xp.broadcast_to(x, shape)[mask]

    @staticmethod
    def backward(ctx, g):
        mask = ctx.mask
        gx = ctx.xp.zeros(mask.shape, dtype=g.dtype)
        gx[mask] = g
        return unbroadcast(gx, ctx.shape), None


def masked_select(input, mask):
    """1-D tensor of the elements of ``input`` where the bool ``mask`` (broadcast) is True."""
    check_bool_mask("masked_select", input, mask, dtype_error=RuntimeError)
    return MaskedSelect.apply(input, mask._array)


def nonzero(input, *, as_tuple=False):
    """Indices of nonzero elements: an ``(n, ndim)`` int64 tensor, or a tuple of 1-D tensors."""
    xp = backends.xp_for(input.device)
    x = input._array
    if as_tuple:
        parts = xp.nonzero(x.reshape(1) if x.ndim == 0 else x)
        return tuple(Tensor._make(p.astype(np.int64, copy=False), device=input.device)
                     for p in parts)
    return Tensor._make(xp.argwhere(x).astype(np.int64, copy=False), device=input.device)


# --------------------------------------------------------------------------- ordering
def _take_sorted(input, order, dim):
    """Values of ``input`` at ``order`` along ``dim`` (differentiable) and the int64 indices."""
    xp = backends.xp_for(input.device)
    if input.ndim == 0:
        return clone(input), Tensor._make(xp.zeros((), dtype=np.int64), device=input.device)
    order = order.astype(np.int64, copy=False)
    values = Index.apply(input, _along_dim_index(xp, order, dim, input.shape))
    return values, Tensor._make(order, device=input.device)


def _argsort(xp, x, axis, descending, stable):
    """Sorting permutation along ``axis``; NaN sorts as the largest value, as in PyTorch.

    Descending order sorts the flipped array stably, so equal elements keep their order.
    CuPy's sort is always stable and accepts no ``kind``.
    """
    kind = "stable" if xp is np and (stable or descending) else None
    if not descending:
        return xp.argsort(x, axis=axis, kind=kind)
    order = xp.argsort(xp.flip(x, axis=axis), axis=axis, kind=kind)
    return (x.shape[axis] - 1) - xp.flip(order, axis=axis)


def sort(input, dim=-1, descending=False, stable=False):
    """Sorted values and their int64 indices along ``dim`` (NaN last ascending)."""
    dim = _wrap_dim(dim, input.ndim, "sort")
    xp = backends.xp_for(input.device)
    x = input._array.reshape(1) if input.ndim == 0 else input._array
    values, indices = _take_sorted(input, _argsort(xp, x, dim, descending, stable), dim)
    return _ValuesIndicesSort(values, indices)


def argsort(input, dim=-1, descending=False, stable=False):
    """The int64 permutation that sorts ``input`` along ``dim``."""
    return sort(input, dim, descending, stable).indices


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The ``k`` largest (or smallest) values along ``dim`` and their int64 indices."""
    dim = _wrap_dim(dim, input.ndim, "topk")
    xp = backends.xp_for(input.device)
    x = input._array.reshape(1) if input.ndim == 0 else input._array
    n = x.shape[dim]
    k = operator.index(k)
    if not 0 <= k <= n:
        raise RuntimeError(f"topk: selected index k out of range: k={k} for dimension {dim} "
                           f"of size {n}")
    if k == 0 or k == n:
        order = _argsort(xp, x, dim, largest, False)
        order = xp.take(order, xp.arange(k), axis=dim)
    else:
        part = xp.argpartition(x, n - k if largest else k - 1, axis=dim)
        part = xp.take(part, xp.arange(n - k, n) if largest else xp.arange(k), axis=dim)
        if sorted:
            picked = xp.take_along_axis(x, part, axis=dim)
            part = xp.take_along_axis(part, _argsort(xp, picked, dim, largest, False), axis=dim)
        order = part
    values, indices = _take_sorted(input, order, dim)
    return _ValuesIndicesTopk(values, indices)


# --------------------------------------------------------------------------- triangles
class Triangular(Function):
    """tril/triu of the last two dims; the gradient is masked the same way."""

    @staticmethod
    def forward(ctx, x, diagonal, upper):
        ctx.args = (diagonal, upper)
        return (ctx.xp.triu if upper else ctx.xp.tril)(x, diagonal)

    @staticmethod
    def backward(ctx, g):
        diagonal, upper = ctx.args
        return (ctx.xp.triu if upper else ctx.xp.tril)(g, diagonal), None, None


def _tri(input, diagonal, upper):
    op = "triu" if upper else "tril"
    if input.ndim < 2:
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions, got shape "
                           f"{tuple(input.shape)}")
    return Triangular.apply(input, operator.index(diagonal), upper)


def tril(input, diagonal=0):
    """Lower triangle of the last two dims (elements above ``diagonal`` zeroed)."""
    return _tri(input, diagonal, False)


def triu(input, diagonal=0):
    """Upper triangle of the last two dims (elements below ``diagonal`` zeroed)."""
    return _tri(input, diagonal, True)


# --------------------------------------------------------------------------- counting
def one_hot(tensor, num_classes=-1):
    """int64 one-hot encoding with a new last dimension of ``num_classes``."""
    if not isinstance(tensor, Tensor) or tensor.dtype is not dtypes.int64:
        raise RuntimeError(f"one_hot: is only applicable to index tensors of dtype int64, got "
                           f"{getattr(tensor, 'dtype', type(tensor).__name__)}")
    xp = backends.xp_for(tensor.device)
    x = tensor._array
    if x.size and int(x.min()) < 0:
        raise RuntimeError(f"one_hot: class values must be non-negative, got {int(x.min())}")
    if num_classes == -1:
        if x.size == 0:
            raise RuntimeError("one_hot: can not infer the total number of classes from an "
                               "empty tensor; pass num_classes")
        num_classes = int(x.max()) + 1
    elif x.size and int(x.max()) >= num_classes:
        raise RuntimeError(f"one_hot: class values must be smaller than num_classes="
                           f"{num_classes}, got {int(x.max())}")
    out = (x[..., None] == xp.arange(num_classes)).astype(np.int64)
    return Tensor._make(out, device=tensor.device)


def bincount(input, weights=None, minlength=0):
    """Occurrences of each value of a 1-D non-negative integer tensor (optionally weighted)."""
    x = input._array
    if x.ndim != 1 or input.dtype.is_floating_point or input.dtype is dtypes.bool_ or \
            (x.size and int(x.min()) < 0):
        raise RuntimeError(f"bincount: only supports 1-d non-negative integral inputs; got "
                           f"shape {tuple(input.shape)} and dtype {input.dtype}")
    if minlength < 0:
        raise RuntimeError(f"bincount: minlength should be >= 0, got {minlength}")
    xp = backends.xp_for(input.device)
    if weights is None:
        out = xp.bincount(x, minlength=minlength).astype(np.int64, copy=False)
    else:
        if tuple(weights.shape) != tuple(input.shape):
            raise RuntimeError(f"bincount: weights of shape {tuple(weights.shape)} should have "
                               f"the same shape as input {tuple(input.shape)}")
        dt = weights.dtype if weights.dtype.is_floating_point else dtypes.float64
        out = xp.bincount(x, weights=weights._array.astype(np.float64), minlength=minlength)
        out = out.astype(dt.np, copy=False)
    return Tensor._make(out, device=input.device)
