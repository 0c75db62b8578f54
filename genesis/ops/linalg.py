"""Linear algebra: matmul (all of PyTorch's broadcasting cases), mm, bmm, dot, outer, einsum."""
import string

import numpy as np

from .. import dtypes
from ..amp.autocast_mode import autocast_op
from .._broadcast import broadcast_shapes
from ..autograd import Function, unbroadcast
from ..tensor import Tensor
from .elementwise import to_dtype

__all__ = ["matmul", "mm", "bmm", "dot", "outer", "einsum"]

# Ops that are also Tensor methods (x.name(...) is name(x, ...)); bound onto Tensor by ops/_methods.py.
TENSOR_METHODS = """
matmul bmm mm outer dot
"""


_BLAS_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _shape(t):
    return t._array.shape


def _same_dtype(op, a, b):
    if a.dtype is not b.dtype:
        raise RuntimeError(f"{op}: expected both operands to have the same dtype, but got "
                           f"{a.dtype} and {b.dtype}")


def _check_tensor(op, *xs):
    for x in xs:
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}: expected Tensor arguments, got {type(x).__name__}")


def _matmul(xp, a, b):
    """``a @ b`` in ``a``'s dtype, folding ``a``'s batch dims into one GEMM when ``b`` is 2-D.

    (ml_dtypes' bfloat16 matmul returns float32; the cast keeps the op dtype-preserving.)
    """
    if b.ndim == 2 and a.ndim > 2:
        out = (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[1],))
    elif a.ndim > 2 or b.ndim > 2:
        out = xp.matmul(_blas_layout(xp, a), _blas_layout(xp, b))
    else:
        out = xp.matmul(a, b)
    return out.astype(a.dtype, copy=False)


def _blas_layout(xp, x):
    """``x`` when BLAS reads its matrices in place (rows or columns unit-stride, NumPy's own
    test), else a C-contiguous copy: NumPy runs stacked products of other layouts (broadcast
    or strided columns) in a slow non-BLAS loop. Transposed views need no copy."""
    if x.ndim < 2:
        return x
    item = x.itemsize
    row, col = x.strides[-2:]
    m, n = x.shape[-2:]
    if (col == item and row % item == 0 and row >= n * item) or \
            (row == item and col % item == 0 and col >= m * item):
        return x
    return xp.ascontiguousarray(x)


class MatMul(Function):
    """``a @ b`` with NumPy's matmul rules: 1-D operands are promoted, batch dims broadcast."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if a.ndim == 2 and b.ndim == 2 and type(a) is np.ndarray and a.dtype in _BLAS_FLOATS:
            return a.dot(b)  # same BLAS GEMM as np.matmul, without the ufunc dispatch (~0.5 us)
        return _matmul(ctx.xp, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        xp = ctx.xp
        na, nb = ctx.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:
            return (g * b if na else None), (g * a if nb else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        ga = gb = None
        if na:
            ga = unbroadcast(_matmul(xp, g2, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if nb:
            if b2.ndim == 2 and a2.ndim > 2:
                k, n = a2.shape[-1], g2.shape[-1]
                gb = _matmul(xp, a2.reshape(-1, k).T, g2.reshape(-1, n))
            else:
                gb = unbroadcast(_matmul(xp, xp.swapaxes(a2, -1, -2), g2), b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


@autocast_op
def matmul(input, other):
    """Matrix product with PyTorch's rules for 1-D, 2-D and batched (broadcast) operands."""
    _check_tensor("matmul", input, other)
    sa, sb = _shape(input), _shape(other)
    if not sa or not sb:
        raise RuntimeError(f"matmul: both arguments need to be at least 1-D, but got shapes "
                           f"{sa} and {sb}")
    _same_dtype("matmul", input, other)
    k_a = sa[-1]
    k_b = sb[0] if len(sb) == 1 else sb[-2]
    if k_a != k_b:
        raise RuntimeError(f"matmul: shapes {sa} and {sb} cannot be multiplied ({k_a} != {k_b})")
    if len(sa) > 2 or len(sb) > 2:
        batch_a = sa[:-2] if len(sa) > 1 else ()
        batch_b = sb[:-2] if len(sb) > 1 else ()
        broadcast_shapes("matmul", batch_a, batch_b,
                         what=f"batch dimensions of shapes {sa} and {sb}")
    return MatMul.apply(input, other)


@autocast_op
def mm(input, mat2):
    """Product of two 2-D matrices (no broadcasting)."""
    _check_tensor("mm", input, mat2)
    sa, sb = _shape(input), _shape(mat2)
    if len(sa) != 2 or len(sb) != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, but got shapes {sa} and {sb}")
    if sa[1] != sb[0]:
        raise RuntimeError(f"mm: shapes {sa} and {sb} cannot be multiplied ({sa[1]} != {sb[0]})")
    _same_dtype("mm", input, mat2)
    return MatMul.apply(input, mat2)


@autocast_op
def bmm(input, mat2):
    """Batched product of 3-D tensors ``(b, n, m) @ (b, m, p)`` (no broadcasting)."""
    _check_tensor("bmm", input, mat2)
    sa, sb = _shape(input), _shape(mat2)
    if len(sa) != 3 or len(sb) != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, but got shapes {sa} and {sb}")
    if sa[0] != sb[0]:
        raise RuntimeError(f"bmm: batch sizes of shapes {sa} and {sb} differ "
                           f"({sa[0]} != {sb[0]})")
    if sa[2] != sb[1]:
        raise RuntimeError(f"bmm: shapes {sa} and {sb} cannot be multiplied ({sa[2]} != {sb[1]})")
    _same_dtype("bmm", input, mat2)
    return MatMul.apply(input, mat2)


@autocast_op
def dot(input, other):
    """Inner product of two 1-D tensors of the same length."""
    _check_tensor("dot", input, other)
    sa, sb = _shape(input), _shape(other)
    if len(sa) != 1 or len(sb) != 1:
        raise RuntimeError(f"dot: expected 1-D tensors, but got shapes {sa} and {sb}")
    if sa != sb:
        raise RuntimeError(f"dot: inconsistent tensor sizes, got shapes {sa} and {sb}")
    _same_dtype("dot", input, other)
    return MatMul.apply(input, other)


class Outer(Function):
    """``a[:, None] * b[None, :]`` for 1-D ``a`` and ``b``."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.multiply.outer(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        xp = ctx.xp
        na, nb = ctx.needs_input_grad
        return (_matmul(xp, g, b) if na else None), (_matmul(xp, a, g) if nb else None)


def outer(input, vec2):
    """Outer product of two 1-D tensors."""
    _check_tensor("outer", input, vec2)
    sa, sb = _shape(input), _shape(vec2)
    if len(sa) != 1 or len(sb) != 1:
        raise RuntimeError(f"outer: expected 1-D tensors, but got shapes {sa} and {sb}")
    dt = dtypes.promote_types(input.dtype, vec2.dtype)
    return Outer.apply(to_dtype(input, dt), to_dtype(vec2, dt))


# --------------------------------------------------------------------------- einsum
_LETTERS = string.ascii_uppercase + string.ascii_lowercase


class Einsum(Function):
    """Einstein summation over canonical subscripts (explicit output, no ellipsis).

    ``squeezed`` lists, per operand, the size-1 axes that broadcast against a larger size
    elsewhere; they are dropped before the contraction so the backward sums over them.
    """

    @staticmethod
    def forward(ctx, in_subs, out_subs, squeezed, *operands):
        xp = ctx.xp
        ops = [x.reshape([s for ax, s in enumerate(x.shape) if ax not in sq])
               for x, sq in zip(operands, squeezed)]
        ctx.save_for_backward(*ops)
        ctx.shapes = [x.shape for x in operands]
        ctx.subs = (in_subs, out_subs)
        eq = ",".join(in_subs) + "->" + out_subs
        return xp.asarray(xp.einsum(eq, *ops, optimize=len(ops) > 1)).astype(ops[0].dtype,
                                                                              copy=False)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        ops = ctx.saved_tensors
        in_subs, out_subs = ctx.subs
        grads = [None, None, None]
        for i, (sub, x) in enumerate(zip(in_subs, ops)):
            if not ctx.needs_input_grad[3 + i]:
                grads.append(None)
                continue
            others = [j for j in range(len(ops)) if j != i]
            available = set(out_subs).union(*(in_subs[j] for j in others))
            unique = "".join(dict.fromkeys(sub))
            kept = "".join(c for c in unique if c in available)
            eq = ",".join([out_subs] + [in_subs[j] for j in others]) + "->" + kept
            gi = xp.asarray(xp.einsum(eq, g, *(ops[j] for j in others),
                                      optimize=len(ops) > 1))
            sizes = {c: n for c, n in zip(sub, x.shape)}
            if kept != unique:
                gi = gi.reshape([sizes[c] if c in kept else 1 for c in unique])
                gi = xp.broadcast_to(gi, [sizes[c] for c in unique])
            if unique != sub:
                gi = _scatter_diagonal(xp, gi, unique, sub, x.shape)
            grads.append(xp.ascontiguousarray(gi).reshape(ctx.shapes[i]).astype(x.dtype,
                                                                                  copy=False))
        return tuple(grads)


def _scatter_diagonal(xp, g, unique, sub, shape):
    """Place ``g`` (indexed by ``unique`` letters) on the diagonals of a zero array ``sub``."""
    out = xp.zeros(shape, dtype=g.dtype)
    n = len(unique)
    grids = {c: xp.arange(g.shape[p]).reshape([-1 if q == p else 1 for q in range(n)])
             for p, c in enumerate(unique)}
    out[tuple(grids[c] for c in sub)] = g
    return out


def _sublist_to_equation(args):
    """Convert ``einsum(op0, sub0, op1, sub1, ..., [out])`` into an equation and operands."""
    def letters(sub):
        out = []
        for s in sub:
            if s is Ellipsis:
                out.append("...")
            elif isinstance(s, int) and 0 <= s < len(_LETTERS):
                out.append(_LETTERS[s])
            else:
                raise ValueError(f"einsum: sublist entries must be integers in [0, 52) or "
                                 f"Ellipsis, got {s!r}")
        return "".join(out)
    operands = list(args[0::2])
    subs = list(args[1::2])
    out = None
    if len(operands) > len(subs):
        out = operands.pop()
        if isinstance(out, Tensor):
            raise ValueError("einsum: every operand in sublist format needs a sublist")
    eq = ",".join(letters(s) for s in subs)
    if out is not None:
        eq += "->" + letters(out)
    return eq, operands


def _parse_einsum(equation, operands):
    """Canonical per-operand subscripts, output subscripts and letter sizes (ellipsis expanded)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: equation {equation!r} has {len(terms)} operand subscripts "
                         f"but {len(operands)} operands were given")
    for term in terms + [rhs]:
        bad = set(term.replace("...", "")) - set(_LETTERS)
        if bad or term.count("...") > 1:
            raise ValueError(f"einsum: invalid subscripts {term!r} in equation {equation!r}; use "
                             "letters a-z, A-Z and at most one '...' per operand")
    used = set(eq) & set(_LETTERS)
    free = [c for c in _LETTERS if c not in used]
    n_ell = 0
    for term, x in zip(terms, operands):
        n_named = len(term.replace("...", ""))
        if x.ndim < n_named or ("..." not in term and x.ndim != n_named):
            raise ValueError(f"einsum: subscripts {term!r} do not match operand of shape "
                             f"{tuple(x.shape)}")
        n_ell = max(n_ell, x.ndim - n_named)
    if n_ell > len(free):
        raise ValueError(f"einsum: too many dimensions ({n_ell}) under '...' in {equation!r}")
    ell = "".join(free[:n_ell])
    in_subs = []
    for term, x in zip(terms, operands):
        k = x.ndim - len(term.replace("...", ""))
        in_subs.append(term.replace("...", ell[n_ell - k:]))
    if arrow:
        if "..." not in rhs and ell and any("..." in t for t in terms):
            raise ValueError(f"einsum: output subscripts of {equation!r} must contain '...' "
                             "when the operands do")
        out_subs = rhs.replace("...", ell)
    else:
        counts = {}
        for s in in_subs:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out_subs = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    if len(set(out_subs)) != len(out_subs):
        raise ValueError(f"einsum: output subscripts of {equation!r} contain a repeated letter")
    present = set("".join(in_subs))
    missing = [c for c in out_subs if c not in present]
    if missing:
        raise ValueError(f"einsum: output subscript {missing[0]!r} of {equation!r} does not "
                         "appear in any operand")
    return in_subs, out_subs


def _letter_sizes(equation, in_subs, operands):
    sizes = {}
    for i, (sub, x) in enumerate(zip(in_subs, operands)):
        seen = {}
        for c, n in zip(sub, x.shape):
            if c in seen and seen[c] != n:
                raise ValueError(f"einsum: operand {i} of shape {tuple(x.shape)} repeats "
                                 f"subscript {c!r} over dimensions of different sizes "
                                 f"in {equation!r}")
            seen[c] = n
            cur = sizes.get(c, 1)
            if n != 1 and cur != 1 and n != cur:
                raise ValueError(f"einsum: operand {i} of shape {tuple(x.shape)} has size {n} "
                                 f"for subscript {c!r}, but another operand has size {cur} "
                                 f"in {equation!r}")
            sizes[c] = max(cur, n)
    return sizes


@autocast_op
def einsum(equation, *operands):
    """Einstein summation (``'ij,jk->ik'``), with ellipsis, broadcasting and repeated indices."""
    if not isinstance(equation, str):
        equation, operands = _sublist_to_equation((equation,) + operands)
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum: must provide at least one operand")
    _check_tensor("einsum", *operands)
    in_subs, out_subs = _parse_einsum(equation, operands)
    sizes = _letter_sizes(equation, in_subs, operands)
    squeezed, subs = [], []
    for sub, x in zip(in_subs, operands):
        sq = tuple(ax for ax, (c, n) in enumerate(zip(sub, x.shape)) if n == 1 and sizes[c] != 1)
        squeezed.append(sq)
        subs.append("".join(c for ax, c in enumerate(sub) if ax not in sq))
    dt = operands[0].dtype
    for x in operands[1:]:
        dt = dtypes.promote_types(dt, x.dtype)
    operands = [to_dtype(x, dt) for x in operands]
    return Einsum.apply(tuple(subs), out_subs, tuple(squeezed), *operands)
