"""Movement ops: reshapes, permutations, expansion, slicing, joining and splitting.

Ops whose PyTorch counterpart returns a view return a NumPy/CuPy view here too and set
``is_view`` so the output shares the input's version counter; ops PyTorch copies (flip,
roll, repeat, cat, stack) copy.
"""
import math
import operator

import numpy as np

from .. import dtypes
from ..autograd import Function, unbroadcast
from ..tensor import Tensor, _wrap_dim
from .elementwise import to_dtype

__all__ = ["reshape", "view", "view_as", "reshape_as", "transpose", "swapaxes", "swapdims",
           "permute", "t", "movedim", "moveaxis", "unsqueeze", "squeeze", "expand", "expand_as",
           "repeat", "repeat_interleave", "flatten", "unflatten", "flip", "roll", "narrow",
           "cat", "concat", "concatenate", "stack", "split", "chunk", "unbind"]

# Ops that are also Tensor methods (x.name(...) is name(x, ...)); bound onto Tensor by ops/_methods.py.
TENSOR_METHODS = """
reshape view view_as reshape_as transpose permute unsqueeze squeeze expand expand_as repeat
repeat_interleave flatten unflatten flip roll narrow split chunk unbind movedim swapaxes t
moveaxis swapdims
"""


# --------------------------------------------------------------------------- argument helpers
def _as_int(value, op, what="dim"):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {what} must be an integer, got {type(value).__name__} "
                        f"({value!r})") from None


def _dims(dims, ndim, op):
    """Wrap an int or a sequence of dims into a tuple of distinct non-negative axes."""
    if not isinstance(dims, (tuple, list)):
        dims = (dims,)
    axes = tuple(_wrap_dim(_as_int(d, op), ndim, op) for d in dims)
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"{op}: dims {tuple(dims)} name a dimension more than once")
    return axes


def _varargs(args, op, what="shape"):
    """``f(x, 2, 3)`` and ``f(x, (2, 3))`` both give ``(2, 3)``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    for a in args:
        if type(a) is not int:
            return tuple(_as_int(a, op, what) for a in args)
    return tuple(args)


def _infer_shape(shape, numel, op, in_shape):
    """Resolve one ``-1`` in ``shape`` and check it holds ``numel`` elements."""
    shape = tuple(shape)
    known = math.prod(shape)
    if known == numel and min(shape, default=0) >= 0:
        return shape
    if known < 0 and numel % known == 0 and shape.count(-1) == 1 and min(shape) == -1:
        i = shape.index(-1)
        return shape[:i] + (numel // -known,) + shape[i + 1:]
    unknown = shape.count(-1)
    if unknown > 1:
        raise RuntimeError(f"{op}: only one dimension can be inferred, got shape {list(shape)}")
    if min(shape, default=0) < -1:
        raise RuntimeError(f"{op}: invalid shape dimension in {list(shape)}")
    known = -math.prod(shape) if unknown else math.prod(shape)
    if unknown:
        if known == 0:
            raise RuntimeError(f"{op}: cannot reshape a tensor of {numel} elements into shape "
                               f"{list(shape)}: the size of the -1 dimension is ambiguous")
        if numel % known == 0:
            i = shape.index(-1)
            shape = shape[:i] + (numel // known,) + shape[i + 1:]
            known = numel
    if known != numel:
        raise RuntimeError(f"{op}: shape {list(shape)} is invalid for input of shape "
                           f"{list(in_shape)} ({numel} elements)")
    return tuple(shape)


def _index(axis, idx):
    """An index tuple selecting ``idx`` (int or slice) along ``axis``; always an array view."""
    return (slice(None),) * axis + (idx, Ellipsis)


# --------------------------------------------------------------------------- reshapes
class Reshape(Function):
    """A new shape for the same elements (a view when the layout allows, else a copy)."""

    is_view = True
    view_may_copy = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape)


def _reshape(input, shape, op):
    """``Reshape`` of ``input``. A well-formed shape (no entry below -1, at most one -1) goes
    to the array's reshape as it is, which resolves the -1 and checks the element count;
    anything it refuses is resolved and checked by ``_infer_shape``, which names ``op``."""
    if min(shape, default=0) >= -1 and shape.count(-1) <= 1:
        try:
            return Reshape.apply(input, shape)
        except ValueError:
            pass
    return Reshape.apply(input, _infer_shape(shape, input._array.size, op, input._array.shape))


def reshape(input, *shape):
    """Same elements in a new shape (one dimension may be -1)."""
    return _reshape(input, _varargs(shape, "reshape"), "reshape")


def view(input, *shape):
    """Same elements in a new shape; like ``reshape`` (copies when strides forbid a view)."""
    return _reshape(input, _varargs(shape, "view"), "view")


def view_as(input, other):
    """``input.view(other.shape)``."""
    return _reshape(input, tuple(other.shape), "view_as")


def reshape_as(input, other):
    """``input.reshape(other.shape)``."""
    return _reshape(input, tuple(other.shape), "reshape_as")


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dimensions ``start_dim..end_dim`` into one."""
    if input.ndim == 0:
        return Reshape.apply(input, (1,))
    start = _wrap_dim(_as_int(start_dim, "flatten"), input.ndim, "flatten")
    end = _wrap_dim(_as_int(end_dim, "flatten"), input.ndim, "flatten")
    if start > end:
        raise RuntimeError(f"flatten: start_dim ({start_dim}) cannot come after end_dim "
                           f"({end_dim}) for a tensor of shape {tuple(input.shape)}")
    s = input.shape
    return Reshape.apply(input, s[:start] + (math.prod(s[start:end + 1]),) + s[end + 1:])


def unflatten(input, dim, sizes):
    """Split dimension ``dim`` into ``sizes`` (one entry may be -1)."""
    axis = _wrap_dim(_as_int(dim, "unflatten"), input.ndim, "unflatten")
    sizes = _varargs(sizes, "unflatten", "sizes")
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    n = input.shape[axis]
    try:
        sizes = _infer_shape(sizes, n, "unflatten", (n,))
    except RuntimeError:
        raise RuntimeError(f"unflatten: provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({n}) of the input of shape "
                           f"{tuple(input.shape)}") from None
    s = input.shape
    return Reshape.apply(input, s[:axis] + sizes + s[axis + 1:])


def unsqueeze(input, dim):
    """Insert a size-1 dimension at ``dim``."""
    axis = _wrap_dim(_as_int(dim, "unsqueeze"), input.ndim + 1, "unsqueeze")
    s = input.shape
    return Reshape.apply(input, s[:axis] + (1,) + s[axis:])


def squeeze(input, dim=None):
    """Drop size-1 dimensions (all, or those among ``dim``; others are left alone)."""
    s = input.shape
    if dim is None:
        axes = range(input.ndim)
    else:
        axes = _dims(dim, input.ndim, "squeeze")
    drop = {a for a in axes if input.ndim and s[a] == 1}
    return Reshape.apply(input, tuple(n for i, n in enumerate(s) if i not in drop))


# --------------------------------------------------------------------------- permutations
class Permute(Function):
    """Reorder dimensions (a view)."""

    is_view = True

    @staticmethod
    def forward(ctx, x, perm):
        ctx.inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))
        return x.transpose(perm)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse)


def permute(input, *dims):
    """Reorder dimensions: ``permute(x, 2, 0, 1)`` or ``permute(x, (2, 0, 1))``."""
    dims = _varargs(dims, "permute", "dims")
    if len(dims) != input.ndim:
        raise RuntimeError(f"permute: the number of dims {len(dims)} in {list(dims)} does not "
                           f"match the input's {input.ndim} dimensions (shape "
                           f"{tuple(input.shape)})")
    return Permute.apply(input, _dims(dims, input.ndim, "permute"))


def transpose(input, dim0, dim1):
    """Swap dimensions ``dim0`` and ``dim1`` (a view)."""
    a = _wrap_dim(_as_int(dim0, "transpose"), input.ndim, "transpose")
    b = _wrap_dim(_as_int(dim1, "transpose"), input.ndim, "transpose")
    perm = list(range(input.ndim))
    if input.ndim:
        perm[a], perm[b] = perm[b], perm[a]
    return Permute.apply(input, tuple(perm))


def swapaxes(input, axis0, axis1):
    """Alias of ``transpose``."""
    return transpose(input, axis0, axis1)


def swapdims(input, dim0, dim1):
    """Alias of ``transpose``."""
    return transpose(input, dim0, dim1)


def t(input):
    """Transpose a tensor of at most 2 dimensions."""
    if input.ndim > 2:
        raise RuntimeError(f"t: expects a tensor with <= 2 dimensions, but got shape "
                           f"{tuple(input.shape)}")
    return Permute.apply(input, tuple(range(input.ndim))[::-1])


def movedim(input, source, destination):
    """Move dimensions ``source`` to positions ``destination``; the rest keep their order."""
    src = _dims(source, input.ndim, "movedim")
    dst = _dims(destination, input.ndim, "movedim")
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: invalid source or destination dims: source ({list(src)} "
                           f"dims) should contain the same number of dims as destination "
                           f"({list(dst)} dims)")
    rest = iter(d for d in range(input.ndim) if d not in src)
    placed = dict(zip(dst, src))
    return Permute.apply(input, tuple(placed[i] if i in placed else next(rest)
                                      for i in range(input.ndim)))


moveaxis = movedim


# --------------------------------------------------------------------------- expansion
class Expand(Function):
    """Broadcast to a larger shape without copying: a view whose repeated elements share memory
    (filling it works, other in-place writes are refused, as in PyTorch)."""

    is_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        out = ctx.xp.broadcast_to(x, shape)
        if ctx.xp is np:
            out = np.lib.stride_tricks.as_strided(x, out.shape, out.strides,
                                                  writeable=x.flags.writeable)
        return out

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g, ctx.in_shape)


def expand(input, *sizes):
    """Broadcast size-1 dimensions to ``sizes`` (-1 keeps a dimension) without copying."""
    sizes = _varargs(sizes, "expand", "sizes")
    s = tuple(input.shape)
    lead = len(sizes) - len(s)
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater "
                           f"or equal to the number of dimensions of the tensor of shape {s}")
    out = []
    for i, n in enumerate(sizes):
        if i < lead:
            if n < 0:
                raise RuntimeError(f"expand: the expanded size {n} isn't allowed in a leading, "
                                   f"non-existing dimension {i} (sizes {list(sizes)})")
            out.append(n)
            continue
        have = s[i - lead]
        if n == -1:
            n = have
        if have != n and have != 1:
            raise RuntimeError(f"expand: the expanded size of the tensor ({n}) must match the "
                               f"existing size ({have}) at non-singleton dimension {i}. Target "
                               f"sizes: {list(sizes)}. Tensor sizes: {list(s)}")
        out.append(n)
    return Expand.apply(input, tuple(out))


def expand_as(input, other):
    """``input.expand(other.shape)``."""
    return expand(input, tuple(other.shape))


class Repeat(Function):
    """Tile the tensor ``reps`` times along each dimension (a copy)."""

    @staticmethod
    def forward(ctx, x, reps):
        ctx.in_shape = x.shape
        ctx.reps = reps
        return ctx.xp.tile(x, reps)

    @staticmethod
    def backward(ctx, g):
        reps = ctx.reps
        shape = (1,) * (len(reps) - len(ctx.in_shape)) + ctx.in_shape
        split = tuple(n for pair in zip(reps, shape) for n in pair)
        summed = g.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return summed.reshape(ctx.in_shape)


def repeat(input, *sizes):
    """Tile the tensor: ``sizes[i]`` copies along dimension i (leading sizes add dims)."""
    reps = _varargs(sizes, "repeat", "sizes")
    if len(reps) < input.ndim:
        raise RuntimeError(f"repeat: number of repeat dims ({len(reps)}) can not be smaller than "
                           f"the number of dimensions of the tensor of shape "
                           f"{tuple(input.shape)}")
    if any(r < 0 for r in reps):
        raise RuntimeError(f"repeat: repeats must be non-negative, got {list(reps)}")
    return Repeat.apply(input, reps)


class RepeatInterleave(Function):
    """Repeat each slice along ``axis`` ``repeats`` times (an int or one count per slice)."""

    @staticmethod
    def forward(ctx, x, repeats, axis):
        ctx.in_shape = x.shape
        ctx.axis = axis
        ctx.repeats = repeats
        xp = ctx.xp
        counts = repeats if isinstance(repeats, int) or xp is np else repeats.tolist()
        return xp.repeat(x, counts, axis=axis)

    @staticmethod
    def backward(ctx, g):
        xp, axis, r, shape = ctx.xp, ctx.axis, ctx.repeats, ctx.in_shape
        if isinstance(r, int):
            return g.reshape(shape[:axis] + (shape[axis], r) + shape[axis + 1:]).sum(axis=axis + 1)
        out = xp.zeros(shape, dtype=g.dtype)
        keep = xp.nonzero(r)[0]
        if keep.size:
            starts = xp.cumsum(r) - r
            out[_index(axis, keep)] = xp.add.reduceat(g, starts[keep], axis=axis)
        return out


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat elements along ``dim`` (flattened when None); ``repeat_interleave(counts)`` too."""
    if repeats is None:
        counts = input
        if counts.ndim > 1 or counts.dtype.is_floating_point:
            raise RuntimeError(f"repeat_interleave: repeats must be a 0-d or 1-d integer tensor, "
                               f"got shape {tuple(counts.shape)} and dtype {counts.dtype}")
        from ..creation import arange
        input = arange(counts.numel(), device=counts.device)
        return repeat_interleave(input, counts.reshape(-1), 0, output_size=output_size)
    if dim is None:
        input, axis = input.reshape(-1), 0
    else:
        axis = _wrap_dim(_as_int(dim, "repeat_interleave"), input.ndim, "repeat_interleave")
        if input.ndim == 0:
            input = input.reshape(1)
    n = input.shape[axis]
    if isinstance(repeats, Tensor):
        if repeats.dtype.is_floating_point or repeats.ndim > 1:
            raise RuntimeError(f"repeat_interleave: repeats must be an integer tensor of at most "
                               f"1 dimension, got shape {tuple(repeats.shape)} and dtype "
                               f"{repeats.dtype}")
        if repeats.numel() == 1:
            repeats = int(repeats.item())
        elif repeats.numel() != n:
            raise RuntimeError(f"repeat_interleave: repeats must have the same size as input "
                               f"along dim {axis} ({n}), got {repeats.numel()} counts")
        else:
            repeats = repeats.to(dtypes.int64)
            if bool((repeats._array < 0).any()):
                raise RuntimeError("repeat_interleave: repeats can not be negative")
    if not isinstance(repeats, Tensor):
        repeats = _as_int(repeats, "repeat_interleave", "repeats")
        if repeats < 0:
            raise RuntimeError(f"repeat_interleave: repeats can not be negative, got {repeats}")
    out = RepeatInterleave.apply(input, repeats, axis)
    if output_size is not None and out.shape[axis] != output_size:
        raise RuntimeError(f"repeat_interleave: output_size {output_size} does not match the "
                           f"repeated size {out.shape[axis]}")
    return out


# --------------------------------------------------------------------------- reordering copies
class Flip(Function):
    """Reverse the order along ``axes`` (a copy, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return ctx.xp.ascontiguousarray(ctx.xp.flip(x, axis=axes)) if axes else x.copy()

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.flip(g, axis=ctx.axes) if ctx.axes else g


def flip(input, *dims):
    """Reverse the order of elements along ``dims``."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    axes = _dims(tuple(dims), input.ndim, "flip")
    return Flip.apply(input, axes if input.ndim else ())


class Roll(Function):
    """Rotate elements along ``axes`` by ``shifts`` (flattened when ``axes`` is None)."""

    @staticmethod
    def forward(ctx, x, shifts, axes):
        ctx.shifts, ctx.axes = shifts, axes
        return ctx.xp.roll(x, shifts, axis=axes)

    @staticmethod
    def backward(ctx, g):
        back = tuple(-s for s in ctx.shifts) if ctx.axes is not None else -ctx.shifts
        return ctx.xp.roll(g, back, axis=ctx.axes)


def roll(input, shifts, dims=None):
    """Rotate elements by ``shifts`` along ``dims`` (over the flattened tensor when None)."""
    shifts = shifts if isinstance(shifts, (tuple, list)) else (shifts,)
    shifts = tuple(_as_int(s, "roll", "shifts") for s in shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"roll: shifts and dimensions must align: got shifts {shifts} "
                               "and no dims")
        return Roll.apply(input, shifts[0], None)
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    if len(dims) != len(shifts):
        raise RuntimeError(f"roll: shifts and dimensions must align: got shifts {shifts} and "
                           f"dims {tuple(dims)}")
    axes = tuple(_wrap_dim(_as_int(d, "roll"), input.ndim, "roll") for d in dims)
    if input.ndim == 0:
        return Roll.apply(input, shifts[0], None)
    return Roll.apply(input, shifts, axes)


# --------------------------------------------------------------------------- slicing
class Narrow(Function):
    """Elements ``start:start+length`` along ``axis`` (a view)."""

    is_view = True

    @staticmethod
    def forward(ctx, x, axis, start, length):
        ctx.in_shape = x.shape
        ctx.index = _index(axis, slice(start, start + length))
        return x[ctx.index]

    @staticmethod
    def backward(ctx, g):
        out = ctx.xp.zeros(ctx.in_shape, dtype=g.dtype)
        out[ctx.index] = g
        return out


def narrow(input, dim, start, length):
    """The slice ``start:start+length`` of dimension ``dim`` (negative ``start`` wraps)."""
    if input.ndim == 0:
        raise RuntimeError("narrow: cannot be applied to a 0-dim tensor")
    axis = _wrap_dim(_as_int(dim, "narrow"), input.ndim, "narrow")
    start = _as_int(start, "narrow", "start")
    length = _as_int(length, "narrow", "length")
    n = input.shape[axis]
    if not -n <= start <= n:
        raise IndexError(f"narrow: start ({start}) is out of range for dimension {axis} of "
                         f"size {n}")
    start = start + n if start < 0 else start
    if length < 0 or start + length > n:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension size "
                           f"({n}) of the input of shape {tuple(input.shape)}")
    return Narrow.apply(input, axis, start, length)


class Split(Function):
    """Consecutive pieces of ``sizes`` along ``axis`` (views)."""

    is_view = True

    @staticmethod
    def forward(ctx, x, sizes, axis):
        ctx.axis = axis
        out, start = [], 0
        for s in sizes:
            out.append(x[_index(axis, slice(start, start + s))])
            start += s
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        return ctx.xp.concatenate(grads, axis=ctx.axis)


def split(tensor, split_size_or_sections, dim=0):
    """Split into pieces of one size (the last may be smaller) or of the listed sizes."""
    if tensor.ndim == 0:
        raise RuntimeError("split: cannot split a 0-dim tensor")
    axis = _wrap_dim(_as_int(dim, "split"), tensor.ndim, "split")
    n = tensor.shape[axis]
    if isinstance(split_size_or_sections, (tuple, list)):
        sizes = tuple(_as_int(s, "split", "split_sizes") for s in split_size_or_sections)
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise RuntimeError(f"split: split_sizes {list(sizes)} must be non-negative and sum "
                               f"exactly to {n} (the input's size at dimension {axis}, shape "
                               f"{tuple(tensor.shape)})")
    else:
        size = _as_int(split_size_or_sections, "split", "split_size")
        if size < 0 or (size == 0 and n):
            raise RuntimeError(f"split: split_size must be positive (0 only for an empty "
                               f"dimension), got {size} for dimension size {n}")
        sizes = tuple(min(size, n - i) for i in range(0, n, size)) if n else (0,)
    return Split.apply(tensor, sizes, axis)


def chunk(input, chunks, dim=0):
    """Split into ``chunks`` nearly equal pieces (fewer when the size does not allow more)."""
    chunks = _as_int(chunks, "chunk", "chunks")
    if chunks <= 0:
        raise RuntimeError(f"chunk: expects `chunks` to be greater than 0, got {chunks}")
    if input.ndim == 0:
        raise RuntimeError("chunk: cannot chunk a 0-dim tensor")
    axis = _wrap_dim(_as_int(dim, "chunk"), input.ndim, "chunk")
    n = input.shape[axis]
    if n == 0:
        return Split.apply(input, (0,) * chunks, axis)
    return split(input, -(-n // chunks), axis)


class Unbind(Function):
    """Every slice along ``axis``, with that dimension removed (views)."""

    is_view = True

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return tuple(x[_index(axis, i)] for i in range(x.shape[axis]))

    @staticmethod
    def backward(ctx, *grads):
        return ctx.xp.stack(grads, axis=ctx.axis)


def unbind(input, dim=0):
    """A tuple of all slices along ``dim``."""
    if input.ndim == 0:
        raise RuntimeError("unbind: dimension specified as 0 but tensor has no dimensions")
    return Unbind.apply(input, _wrap_dim(_as_int(dim, "unbind"), input.ndim, "unbind"))


# --------------------------------------------------------------------------- joining
def _joinable(tensors, op):
    """Check the list and cast every tensor to the promoted dtype of all of them."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (tuple, list)):
        raise TypeError(f"{op}: expected a list or tuple of Tensors, got "
                        f"{type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of Tensors")
    for i, x in enumerate(tensors):
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}: expected Tensors, got {type(x).__name__} at position {i}")
    dt = tensors[0].dtype
    for x in tensors[1:]:
        dt = dtypes.promote_types(dt, x.dtype)
    return [to_dtype(x, dt) for x in tensors]


class Cat(Function):
    """Concatenate along ``axis`` (a copy)."""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        ctx.sizes = [x.shape[axis] for x in xs]
        return ctx.xp.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        out, start = [], 0
        for s in ctx.sizes:
            out.append(g[_index(ctx.axis, slice(start, start + s))])
            start += s
        return tuple(out)


def cat(tensors, dim=0):
    """Concatenate tensors along ``dim``; dtypes promote; 1-D empty tensors are skipped."""
    tensors = _joinable(tensors, "cat")
    kept = [x for x in tensors if tuple(x.shape) != (0,)] or tensors[:1]
    for i, x in enumerate(kept):
        if x.ndim == 0:
            raise RuntimeError(f"cat: zero-dimensional tensor (at position {i}) cannot be "
                               "concatenated")
    ref = kept[0]
    axis = _wrap_dim(_as_int(dim, "cat"), ref.ndim, "cat")
    for i, x in enumerate(kept):
        if x.ndim != ref.ndim or any(a != b for k, (a, b) in enumerate(zip(x.shape, ref.shape))
                                     if k != axis):
            raise RuntimeError(f"cat: sizes of tensors must match except in dimension {axis}; "
                               f"tensor 0 has shape {tuple(ref.shape)} but tensor {i} has shape "
                               f"{tuple(x.shape)}")
    return Cat.apply(*kept, axis=axis)


concat = concatenate = cat


class Stack(Function):
    """Join equal-shaped tensors along a new dimension ``axis`` (a copy)."""

    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        return ctx.xp.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(g[_index(ctx.axis, i)] for i in range(g.shape[ctx.axis]))


def stack(tensors, dim=0):
    """Join equal-shaped tensors along a new dimension ``dim``; dtypes promote."""
    tensors = _joinable(tensors, "stack")
    ref = tuple(tensors[0].shape)
    for i, x in enumerate(tensors):
        if tuple(x.shape) != ref:
            raise RuntimeError(f"stack: expects each tensor to be equal size, but got {ref} at "
                               f"entry 0 and {tuple(x.shape)} at entry {i}")
    axis = _wrap_dim(_as_int(dim, "stack"), len(ref) + 1, "stack")
    return Stack.apply(*tensors, axis=axis)

