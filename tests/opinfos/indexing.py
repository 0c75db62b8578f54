"""Indexing ops: getitem/setitem, gather/scatter family, masks, sorting, triangles, counting."""
import numpy as np

import genesis
from tests.opinfo import OpInfo, Sample
from tests.opinfos._samples import noncontig, randn

try:
    import torch
except ImportError:
    torch = None

_S = slice


def _t(fn):
    """``fn`` when torch is installed, else None."""
    return fn if torch is not None else None


def _ints(rng, high, *shape):
    """int64 index array with values in [0, high)."""
    return rng.integers(0, high, shape).astype(np.int64)


def _perm_rows(rng, n, k, rows):
    """int64 array (rows, k): each row k distinct values from range(n) (no scatter collisions)."""
    return np.stack([rng.permutation(n)[:k] for _ in range(rows)]).astype(np.int64)


# --------------------------------------------------------------------------- getitem
def _getitem_basic_samples(rng):
    return [Sample(randn(rng, 5), index=2, name="int"),
            Sample(randn(rng, 5), index=-1, name="neg_int"),
            Sample(randn(rng, 3, 4, 5), index=(1, _S(None, None, 2), -2), name="int_step"),
            Sample(randn(rng, 3, 4, 5), index=(_S(1, None), None, Ellipsis, _S(4, 0)),
                   name="none_ellipsis_empty"),
            Sample(randn(rng, 3, 4, 5), index=(Ellipsis, _S(-3, None, 2)), name="ellipsis_neg"),
            Sample(randn(rng), index=(None, Ellipsis, None), name="scalar"),
            Sample(randn(rng), index=(), name="scalar_empty_tuple"),
            Sample(noncontig(rng, 4, 6), index=(_S(None, None, 3), 1), name="noncontig"),
            Sample(randn(rng, 0, 3), index=(_S(None), 2), name="empty"),
            Sample(randn(rng, 2, 3, 4), index=(1, 2, 3), name="all_ints")]


def _getitem_adv_samples(rng):
    return [Sample(randn(rng, 5, 3), np.array([0, 4, 4, -1, 2]), name="dup_neg"),
            Sample(randn(rng, 5, 3), np.array([[0, 1], [1, 1]]), name="2d_index"),
            Sample(randn(rng, 4), np.array(2), name="0d_index"),
            Sample(randn(rng, 4, 3), np.zeros(0, dtype=np.int64), name="empty_index"),
            Sample(noncontig(rng, 4, 3), np.array([3, 3, 0]), name="noncontig")]


def _two_index_samples(rng):
    return [Sample(randn(rng, 3, 4, 5), np.array([0, 2, 2]), np.array([1, -1, 4]), name="same"),
            Sample(randn(rng, 3, 4, 5), np.array([[0], [2]]), np.array([1, 3, 4]),
                   name="bcast")]


def _mask_samples(rng):
    return [Sample(randn(rng, 3, 4), randn(rng, 3, 4) > 0, name="full"),
            Sample(randn(rng, 3, 4), np.array([True, False, True]), name="rows"),
            Sample(randn(rng, 2, 3), np.zeros((2, 3), dtype=bool), name="none_selected"),
            Sample(randn(rng), np.array(True), name="scalar")]


OPS = [
    OpInfo("getitem_basic", lambda x, index: x[index], lambda x, index: x[index],
           _getitem_basic_samples, _t(lambda x, index: x[index])),
    OpInfo("getitem_adv", lambda x, i: x[i], lambda x, i: x[i], _getitem_adv_samples,
           _t(lambda x, i: x[i])),
    OpInfo("getitem_adv_adjacent", lambda x, i, j: x[:, i, j], lambda x, i, j: x[:, i, j],
           _two_index_samples, _t(lambda x, i, j: x[:, i, j])),
    OpInfo("getitem_adv_separated", lambda x, i, j: x[i, 1:3, j],
           lambda x, i, j: x[i, 1:3, j], _two_index_samples, _t(lambda x, i, j: x[i, 1:3, j])),
    # PyTorch applies integers first, so x[1, :, i] is x[1][:, i] (NumPy would move dims).
    OpInfo("getitem_int_then_adv", lambda x, i, j: x[1, :, i], lambda x, i, j: x[1][:, i],
           _two_index_samples, _t(lambda x, i, j: x[1, :, i])),
    OpInfo("getitem_mask", lambda x, m: x[m], lambda x, m: x[m], _mask_samples,
           _t(lambda x, m: x[m])),
    OpInfo("getitem_mask_and_slice", lambda x, m: x[None, m, 1:],
           lambda x, m: x[None, m, 1:],
           lambda rng: [Sample(randn(rng, 3, 4), np.array([True, False, True]))],
           _t(lambda x, m: x[None, m, 1:])),
]


# --------------------------------------------------------------------------- setitem
def _assign(clone, index_of):
    """``y = clone(x); y[index] = v; return y`` with the index built from the extra args."""
    def op(x, v, *rest, **kw):
        y = clone(x)
        y[index_of(*rest, **kw)] = v
        return y
    return op


def _np_clone(x):
    return x.copy()


def _setitem_infos():
    cases = [
        ("setitem_basic", lambda index: index,
         lambda rng: [Sample(randn(rng, 3, 4), randn(rng, 4), index=1, name="row_bcast"),
                      Sample(randn(rng, 3, 4, 2), randn(rng, 2, 1), index=(_S(None, None, 2), 0),
                             name="strided"),
                      Sample(randn(rng, 3, 4), randn(rng, 1), index=(Ellipsis, _S(1, 2)),
                             name="ellipsis"),
                      Sample(randn(rng, 3, 4), 2.5, index=(_S(1, None), -1), name="scalar_value"),
                      Sample(randn(rng, 3, 4), randn(rng), index=(2, 3), name="element"),
                      Sample(noncontig(rng, 4, 3), randn(rng, 3), index=0, name="noncontig")]),
        ("setitem_adv", lambda i: i,
         lambda rng: [Sample(randn(rng, 5, 3), randn(rng, 3, 3), np.array([4, 0, 2]),
                             name="rows"),
                      Sample(randn(rng, 5, 3), randn(rng, 3), np.array([[1], [3]]),
                             name="bcast_value")]),
        ("setitem_adv_with_slice", lambda i: (_S(None), i),
         lambda rng: [Sample(randn(rng, 3, 5), randn(rng, 3, 2), np.array([4, -5]))]),
        ("setitem_mask", lambda m: m,
         lambda rng: [Sample(randn(rng, 3, 4), 0.0, randn(rng, 3, 4) > 0, name="scalar"),
                      Sample(randn(rng, 3, 4), randn(rng, 4), np.array([True, False, True]),
                             name="rows")]),
    ]
    infos = []
    for name, index_of, samples in cases:
        op = _assign(genesis.clone, index_of)
        ref = _assign(_np_clone, index_of)
        tor = _t(_assign(lambda x: x.clone(), index_of))
        infos.append(OpInfo(name, op, ref, samples, tor))
    return infos


OPS += _setitem_infos()


# --------------------------------------------------------------------------- gather / scatter
def _indices_for(index, dim):
    """NumPy advanced index equivalent to gather/scatter's ``index`` along ``dim``."""
    grids = list(np.indices(index.shape, sparse=True))
    grids[dim] = index
    return tuple(grids)


def _gather_ref(x, dim, index):
    return x[_indices_for(index, dim % x.ndim)]


def _gather_samples(rng):
    return [Sample(randn(rng, 3, 4), 1, _ints(rng, 4, 3, 6), name="dim1_repeat"),
            Sample(randn(rng, 3, 4), 0, _ints(rng, 3, 2, 2), name="dim0_smaller"),
            Sample(randn(rng, 2, 3, 4), -1, _ints(rng, 4, 2, 1, 3), name="neg_dim"),
            Sample(noncontig(rng, 4, 3), 0, _ints(rng, 4, 4, 3), name="noncontig"),
            Sample(randn(rng, 3, 4), 1, _ints(rng, 4, 3, 0), name="empty")]


def _take_along_dim_ref(x, index, dim=None):
    if dim is None:
        return x.reshape(-1)[index.reshape(-1)]
    return np.take_along_axis(x, index, axis=dim)


def _take_along_dim_samples(rng):
    return [Sample(randn(rng, 3, 4), _ints(rng, 4, 3, 2), dim=1, name="dim1"),
            Sample(randn(rng, 3, 4), _ints(rng, 3, 1, 4), dim=0, name="bcast_index"),
            Sample(randn(rng, 1, 4), _ints(rng, 4, 3, 2), dim=1, name="bcast_input"),
            Sample(randn(rng, 3, 4), _ints(rng, 12, 5), name="flat")]


def _scatter_ref(x, dim, index, src):
    out = x.copy()
    values = src if np.isscalar(src) else src[tuple(slice(0, n) for n in index.shape)]
    out[_indices_for(index, dim % x.ndim)] = values
    return out


def _scatter_samples(rng):
    return [Sample(randn(rng, 3, 5), 1, _perm_rows(rng, 5, 3, 3), randn(rng, 3, 3), name="dim1"),
            Sample(randn(rng, 3, 5), -1, _perm_rows(rng, 5, 2, 2), 1.5, name="value")]


def _scatter_src_larger_samples(rng):
    return [Sample(randn(rng, 4, 3), 0, _perm_rows(rng, 4, 2, 3).T.copy(), randn(rng, 3, 4))]


def _scatter_add_ref(x, dim, index, src):
    out = x.copy()
    np.add.at(out, _indices_for(index, dim % x.ndim),
              src[tuple(slice(0, n) for n in index.shape)])
    return out


def _scatter_add_samples(rng):
    return [Sample(randn(rng, 3, 5), 1, _ints(rng, 5, 3, 6), randn(rng, 3, 6), name="dup"),
            Sample(noncontig(rng, 3, 4), -1, _ints(rng, 4, 3, 0), randn(rng, 3, 0),
                   name="empty")]


def _scatter_multiply_ref(x, dim, index, src):
    out = x.copy()
    np.multiply.at(out, _indices_for(index, dim % x.ndim),
                   src[tuple(slice(0, n) for n in index.shape)])
    return out


def _scatter_reduce(reduce):
    def op(x, dim, index, src):
        return genesis.scatter(x, dim, index, src, reduce=reduce)
    return op


OPS += [
    OpInfo("gather", genesis.gather, _gather_ref, _gather_samples, _t(lambda *a: torch.gather(*a))),
    OpInfo("take_along_dim", genesis.take_along_dim, _take_along_dim_ref,
           _take_along_dim_samples, _t(lambda *a, **k: torch.take_along_dim(*a, **k))),
    OpInfo("scatter", genesis.scatter, _scatter_ref, _scatter_samples,
           _t(lambda *a: torch.scatter(*a))),
    OpInfo("scatter_add", genesis.scatter_add, _scatter_add_ref, _scatter_add_samples,
           _t(lambda *a: torch.scatter_add(*a))),
    # torch's backward rejects src larger than index, so these only check NumPy + gradcheck.
    OpInfo("scatter_src_larger", genesis.scatter, _scatter_ref, _scatter_src_larger_samples),
    OpInfo("scatter_add_src_larger", genesis.scatter_add, _scatter_add_ref,
           _scatter_src_larger_samples),
    OpInfo("scatter_reduce_add", _scatter_reduce("add"), _scatter_add_ref,
           _scatter_add_samples),
    OpInfo("scatter_reduce_multiply", _scatter_reduce("multiply"),
           _scatter_multiply_ref, _scatter_add_samples,
           _t(lambda x, dim, index, src: torch.scatter_reduce(x, dim, index, src, "prod")),
           grad=False),
]


# --------------------------------------------------------------------------- index_*
def _index_select_samples(rng):
    return [Sample(randn(rng, 3, 4), 1, np.array([3, 0, 3]), name="dim1_dup"),
            Sample(randn(rng, 4, 2, 3), 0, np.array([2, 1]), name="dim0"),
            Sample(randn(rng, 3, 4), -2, np.array(1), name="0d_index"),
            Sample(noncontig(rng, 3, 4), 1, np.zeros(0, dtype=np.int64), name="empty")]


def _index_select_ref(x, dim, index):
    return np.take(x, index.reshape(-1), axis=dim)


def _index_add_ref(x, dim, index, source, alpha=1):
    out = x.copy()
    np.add.at(out, (slice(None),) * (dim % x.ndim) + (index,), alpha * source)
    return out


def _index_add_samples(rng):
    return [Sample(randn(rng, 3, 4), 1, np.array([3, 0, 3]), randn(rng, 3, 3), name="dup"),
            Sample(randn(rng, 4, 2), 0, np.array([2, 1]), randn(rng, 2, 2), alpha=-0.5,
                   name="alpha"),
            Sample(noncontig(rng, 3, 4), -1, np.array([0]), randn(rng, 3, 1), name="noncontig")]


def _index_fill_ref(x, dim, index, value):
    out = x.copy()
    out[(slice(None),) * (dim % x.ndim) + (index,)] = value
    return out


def _index_fill_samples(rng):
    return [Sample(randn(rng, 3, 4), 1, np.array([3, 0, 3]), -1.5, name="dup"),
            Sample(randn(rng, 4, 2), 0, np.array([2]), randn(rng), name="tensor_value"),
            Sample(randn(rng, 2, 3), -1, np.zeros(0, dtype=np.int64), 2.0, name="empty")]


OPS += [
    OpInfo("index_select", genesis.index_select, _index_select_ref, _index_select_samples,
           _t(lambda *a: torch.index_select(*a))),
    OpInfo("index_add", genesis.index_add, _index_add_ref, _index_add_samples,
           _t(lambda *a, **k: torch.index_add(*a, **k))),
    OpInfo("index_fill", genesis.index_fill, _index_fill_ref, _index_fill_samples,
           _t(lambda *a: torch.index_fill(*a))),
]


# --------------------------------------------------------------------------- masks
def _masked_select_ref(x, m):
    shape = np.broadcast_shapes(x.shape, m.shape)
    return np.broadcast_to(x, shape)[np.broadcast_to(m, shape)]


def _masked_select_samples(rng):
    return [Sample(randn(rng, 3, 4), randn(rng, 3, 4) > 0, name="same"),
            Sample(randn(rng, 3, 1), randn(rng, 2, 3, 4) > 0, name="bcast_input"),
            Sample(randn(rng, 2, 3, 4), randn(rng, 4) > 0, name="bcast_mask"),
            Sample(randn(rng), np.array(True), name="scalar"),
            Sample(randn(rng, 0, 2), np.ones(2, dtype=bool), name="empty")]


def _nonzero_samples(rng):
    return [Sample(rng.integers(-1, 2, (3, 4)).astype(float), name="2d"),
            Sample(rng.integers(0, 2, (2, 2, 3)).astype(bool), name="3d_bool"),
            Sample(np.array(5.0), name="scalar"),
            Sample(np.zeros((0, 3)), name="empty")]


OPS += [
    OpInfo("masked_select", genesis.masked_select, _masked_select_ref, _masked_select_samples,
           _t(lambda *a: torch.masked_select(*a))),
    OpInfo("nonzero", genesis.nonzero, np.argwhere, _nonzero_samples,
           _t(lambda *a: torch.nonzero(*a)), grad=False),
    OpInfo("nonzero_as_tuple", lambda x: genesis.nonzero(x, as_tuple=True),
           lambda x: np.nonzero(np.atleast_1d(x)), _nonzero_samples,
           _t(lambda x: torch.nonzero(x, as_tuple=True)), grad=False),
]


# --------------------------------------------------------------------------- ordering
def _sort_ref(x, dim=-1, descending=False, stable=False):
    if x.ndim == 0:
        return x.copy(), np.array(0)
    if descending:
        # NaN counts as the largest value: first when descending (lexsort: last key is primary).
        order = np.lexsort((-x, ~np.isnan(x)), axis=dim)
    else:
        order = np.argsort(x, axis=dim, kind="stable")
    return np.take_along_axis(x, order, axis=dim), order


def _sort_samples(rng):
    return [Sample(randn(rng, 3, 5), name="last"),
            Sample(randn(rng, 4, 3), dim=0, descending=True, name="dim0_desc"),
            Sample(noncontig(rng, 3, 4), dim=-2, name="noncontig"),
            Sample(randn(rng), name="scalar"),
            Sample(randn(rng, 0, 3), dim=0, name="empty")]


def _sort_ties_samples(rng):
    ties = np.array([[1.0, 0.5, 1.0, 0.5, 2.0], [0.0, 0.0, -1.0, 3.0, np.nan]])
    return [Sample(ties, stable=True, name="stable"),
            Sample(ties, descending=True, stable=True, name="stable_desc"),
            Sample(ties.T.copy(), dim=0, descending=True, stable=True, name="stable_dim0")]


def _topk_ref(x, k, dim=-1, largest=True, sorted=True):
    vals, order = _sort_ref(x, dim, descending=largest)
    if x.ndim == 0:
        return vals, order
    idx = np.take(order, np.arange(k), axis=dim)
    return np.take_along_axis(x, idx, axis=dim), idx


def _topk_samples(rng):
    return [Sample(randn(rng, 3, 6), 2, name="largest"),
            Sample(randn(rng, 5, 3), 3, dim=0, largest=False, name="smallest_dim0"),
            Sample(randn(rng, 4), 4, name="k_eq_n"),
            Sample(randn(rng, 2, 4), 0, name="k0"),
            Sample(noncontig(rng, 3, 5), 1, dim=-1, name="noncontig"),
            Sample(randn(rng), 1, name="scalar")]


def _argsort_ref(x, dim=-1, descending=False, stable=False):
    return _sort_ref(x, dim, descending, stable)[1]


OPS += [
    OpInfo("sort", genesis.sort, _sort_ref, _sort_samples,
           _t(lambda *a, **k: torch.sort(*a, **k))),
    # Ties are not differentiable points: forward only (values, stable order, NaN placement).
    OpInfo("sort_ties", genesis.sort, _sort_ref, _sort_ties_samples,
           _t(lambda *a, **k: torch.sort(*a, **k)), grad=False),
    OpInfo("argsort", genesis.argsort, _argsort_ref, _sort_samples,
           _t(lambda *a, **k: torch.argsort(*a, **k)), grad=False),
    OpInfo("topk", genesis.topk, _topk_ref, _topk_samples,
           _t(lambda *a, **k: torch.topk(*a, **k))),
]


# --------------------------------------------------------------------------- triangles, counts
def _tri_samples(rng):
    return [Sample(randn(rng, 4, 4), name="square"),
            Sample(randn(rng, 3, 5), diagonal=1, name="wide_diag1"),
            Sample(randn(rng, 2, 5, 3), diagonal=-1, name="batched_diag_neg"),
            Sample(noncontig(rng, 4, 3), diagonal=-5, name="noncontig_all_zero"),
            Sample(randn(rng, 0, 3), name="empty")]


def _one_hot_samples(rng):
    return [Sample(_ints(rng, 4, 5), name="infer"),
            Sample(_ints(rng, 3, 2, 3), num_classes=5, name="2d"),
            Sample(np.array(2, dtype=np.int64), num_classes=3, name="scalar"),
            Sample(np.zeros(0, dtype=np.int64), num_classes=2, name="empty")]


def _one_hot_ref(x, num_classes=-1):
    n = int(x.max()) + 1 if num_classes == -1 else num_classes
    return (x[..., None] == np.arange(n)).astype(np.int64)


def _bincount_samples(rng):
    return [Sample(_ints(rng, 5, 12), name="plain"),
            Sample(_ints(rng, 3, 6), minlength=6, name="minlength"),
            Sample(_ints(rng, 4, 7), randn(rng, 7), name="weights"),
            Sample(np.zeros(0, dtype=np.int64), name="empty")]


def _bincount_ref(x, weights=None, minlength=0):
    out = np.bincount(x, weights=weights, minlength=minlength)
    return out if weights is not None else out.astype(np.int64)


OPS += [
    OpInfo("tril", genesis.tril, lambda x, diagonal=0: np.tril(x, diagonal), _tri_samples,
           _t(lambda *a, **k: torch.tril(*a, **k))),
    OpInfo("triu", genesis.triu, lambda x, diagonal=0: np.triu(x, diagonal), _tri_samples,
           _t(lambda *a, **k: torch.triu(*a, **k))),
    OpInfo("one_hot", genesis.one_hot, _one_hot_ref, _one_hot_samples,
           _t(lambda *a, **k: torch.nn.functional.one_hot(*a, **k)), grad=False),
    OpInfo("bincount", genesis.bincount, _bincount_ref, _bincount_samples,
           _t(lambda *a, **k: torch.bincount(*a, **k)), grad=False),
]
