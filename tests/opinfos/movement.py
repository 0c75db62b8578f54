"""Movement ops: reshapes, permutations, expansion, slicing, joining and splitting."""
import numpy as np

import genesis
from tests.opinfo import OpInfo, Sample
from tests.opinfos._samples import noncontig, randn

try:
    import torch
except ImportError:
    torch = None


def _t(fn):
    """``fn`` when torch is installed, else None (parity is skipped)."""
    return fn if torch is not None else None


def _method(name):
    """``x.<name>(*args, **kwargs)``: the same call on genesis, torch (and NumPy-free refs)."""
    return lambda x, *args, **kwargs: getattr(x, name)(*args, **kwargs)


def _reshape_samples(rng):
    return [Sample(randn(rng), (1,), name="scalar"), Sample(randn(rng, 1), (), name="to_scalar"),
            Sample(randn(rng, 3, 4), (4, 3), name="matrix"),
            Sample(randn(rng, 3, 4), (2, -1, 3), name="infer"),
            Sample(randn(rng, 2, 3, 4), (-1,), name="flat"),
            Sample(noncontig(rng, 3, 4), (6, 2), name="noncontig"),
            Sample(np.ascontiguousarray(randn(rng, 3, 6))[:, 1:5], (3, 2, 2), name="sliced"),
            Sample(randn(rng, 0, 3), (3, 0), name="empty")]


def _view_samples(rng):
    return [Sample(randn(rng, 3, 4), 4, 3, name="ints"),
            Sample(randn(rng, 3, 4), (2, 2, -1), name="tuple"),
            Sample(randn(rng, 3, 4), -1, name="flat"), Sample(randn(rng), 1, 1, name="scalar")]


def _dims_samples(rng):
    return [Sample(randn(rng, 3, 4), 0, 1, name="matrix"),
            Sample(randn(rng, 2, 3, 4), -1, 0, name="3d"),
            Sample(randn(rng, 2, 3), 1, 1, name="same"),
            Sample(noncontig(rng, 3, 4), 0, -1, name="noncontig"),
            Sample(randn(rng), 0, -1, name="scalar")]


def _np_swap(x, a, b):
    return np.swapaxes(x, a, b) if x.ndim else x


def _permute_samples(rng):
    return [Sample(randn(rng, 2, 3, 4), (2, 0, 1), name="tuple"),
            Sample(randn(rng, 2, 3, 4), 1, -1, 0, name="varargs"),
            Sample(noncontig(rng, 3, 4), (1, 0), name="noncontig"),
            Sample(randn(rng), (), name="scalar"), Sample(randn(rng, 0, 2), (1, 0), name="empty")]


def _movedim_samples(rng):
    return [Sample(randn(rng, 2, 3, 4), 0, 2, name="int"),
            Sample(randn(rng, 2, 3, 4), (0, 1), (2, 0), name="tuple"),
            Sample(randn(rng, 2, 3, 4, 1), (-1, 0), (0, -1), name="neg")]


def _unsqueeze_samples(rng):
    return [Sample(randn(rng), 0, name="scalar"), Sample(randn(rng, 3, 4), 1, name="middle"),
            Sample(randn(rng, 3, 4), -1, name="last"), Sample(randn(rng, 3, 4), -3, name="first"),
            Sample(noncontig(rng, 3, 4), 1, name="noncontig")]


def _squeeze_samples(rng):
    return [Sample(randn(rng, 1, 3, 1), name="all"), Sample(randn(rng, 1, 3, 1), 0, name="int"),
            Sample(randn(rng, 1, 3, 1), 1, name="not_one"),
            Sample(randn(rng, 1, 3, 1), (0, -1), name="tuple"),
            Sample(randn(rng), name="scalar"), Sample(randn(rng, 1, 0), name="empty")]


def _expand_samples(rng):
    return [Sample(randn(rng, 3, 1), 3, 4, name="ints"),
            Sample(randn(rng, 3, 1), (2, -1, 5), name="lead"),
            Sample(randn(rng), (2, 3), name="scalar"),
            Sample(randn(rng, 1, 4), -1, 4, name="keep"),
            Sample(randn(rng, 1, 3).T, 2, 3, 4, name="noncontig"),
            Sample(randn(rng, 1, 3), 0, 3, name="to_empty")]


def _np_expand(x, *sizes):
    if len(sizes) == 1 and isinstance(sizes[0], tuple):
        sizes = sizes[0]
    lead = len(sizes) - x.ndim
    shape = [x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes)]
    return np.broadcast_to(x, shape)


def _repeat_samples(rng):
    return [Sample(randn(rng, 2, 3), 2, 2, name="ints"),
            Sample(randn(rng, 2, 3), (2, 1, 3), name="lead"),
            Sample(randn(rng), (3,), name="scalar"), Sample(noncontig(rng, 2, 3), 1, 2,
                                                            name="noncontig"),
            Sample(randn(rng, 2, 3), 0, 1, name="zero")]


def _np_repeat(x, *sizes):
    if len(sizes) == 1 and isinstance(sizes[0], tuple):
        sizes = sizes[0]
    return np.tile(x, sizes)


def _interleave_samples(rng):
    return [Sample(randn(rng, 2, 3), 2, name="flat"),
            Sample(randn(rng, 2, 3), 3, dim=1, name="int_dim"),
            Sample(randn(rng, 3, 2), np.array([1, 0, 3]), dim=0, name="tensor"),
            Sample(randn(rng, 2, 3), np.array([2]), dim=-1, name="tensor_one"),
            Sample(randn(rng, 2, 3), np.array([0, 0]), dim=0, name="all_zero"),
            Sample(randn(rng), 3, name="scalar")]


def _np_interleave(x, repeats, dim=None):
    if dim is None:
        return np.repeat(x.reshape(-1), repeats)
    return np.repeat(x, repeats, axis=dim)


def _flatten_samples(rng):
    return [Sample(randn(rng, 2, 3, 4), name="all"), Sample(randn(rng, 2, 3, 4), 1, name="start"),
            Sample(randn(rng, 2, 3, 4, 2), 1, 2, name="middle"),
            Sample(noncontig(rng, 3, 4), name="noncontig"), Sample(randn(rng), name="scalar")]


def _np_flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


def _unflatten_samples(rng):
    return [Sample(randn(rng, 2, 6), 1, (2, 3), name="last"),
            Sample(randn(rng, 6, 2), 0, (3, -1), name="infer"),
            Sample(randn(rng, 2, 6, 1), -2, (6,), name="single")]


def _np_unflatten(x, dim, sizes):
    d = dim % x.ndim
    return x.reshape(x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def _flip_samples(rng):
    return [Sample(randn(rng, 3, 4), (0,), name="one"), Sample(randn(rng, 2, 3, 4), (0, -1),
                                                                name="two"),
            Sample(noncontig(rng, 3, 4), (1,), name="noncontig"),
            Sample(randn(rng, 0, 2), (0,), name="empty")]


def _roll_samples(rng):
    return [Sample(randn(rng, 3, 4), 2, name="flat"), Sample(randn(rng, 3, 4), 1, 1, name="dim"),
            Sample(randn(rng, 2, 3, 4), (1, -5), (0, 2), name="multi"),
            Sample(noncontig(rng, 3, 4), -1, 0, name="noncontig"),
            Sample(randn(rng, 0, 2), 1, 1, name="empty")]


def _narrow_samples(rng):
    return [Sample(randn(rng, 4, 5), 1, 1, 3, name="middle"),
            Sample(randn(rng, 4, 5), 0, -2, 2, name="neg_start"),
            Sample(randn(rng, 4, 5), -1, 5, 0, name="empty"),
            Sample(noncontig(rng, 4, 5), 0, 0, 4, name="noncontig")]


def _np_narrow(x, dim, start, length):
    start = start + x.shape[dim] if start < 0 else start
    return np.take(x, np.arange(start, start + length), axis=dim)


def _cat_samples(rng):
    return [Sample(randn(rng, 2, 3), randn(rng, 4, 3), name="dim0"),
            Sample(randn(rng, 2, 3), randn(rng, 2, 1), randn(rng, 2, 2), dim=1, name="three"),
            Sample(randn(rng, 2, 3), noncontig(rng, 2, 3), dim=-1, name="noncontig"),
            Sample(randn(rng, 2, 3), rng.integers(-3, 3, (1, 3)), name="promote"),
            Sample(randn(rng, 2, 3), randn(rng, 0, 3), name="empty_part"),
            Sample(randn(rng, 2, 3), randn(rng, 0), name="legacy_empty")]


def _stack_samples(rng):
    return [Sample(randn(rng, 2, 3), randn(rng, 2, 3), name="dim0"),
            Sample(randn(rng, 2, 3), randn(rng, 2, 3), randn(rng, 2, 3), dim=2, name="last"),
            Sample(randn(rng, 2, 3), noncontig(rng, 2, 3), dim=-2, name="neg"),
            Sample(randn(rng), randn(rng), name="scalars"),
            Sample(randn(rng, 2, 3), rng.integers(-3, 3, (2, 3)), dim=1, name="promote")]


def _np_cat(*xs, dim=0):
    xs = [x for x in xs if x.shape != (0,)]
    return np.concatenate(xs, axis=dim)


def _split_samples(rng):
    return [Sample(randn(rng, 5, 2), 2, name="size"),
            Sample(randn(rng, 2, 6), 3, 1, name="even"),
            Sample(randn(rng, 2, 6), [1, 0, 5], -1, name="sections"),
            Sample(noncontig(rng, 4, 3), 3, name="noncontig"),
            Sample(randn(rng, 0, 3), 2, name="empty")]


def _np_split(x, split_size_or_sections, dim=0):
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if n == 0:
            return (x,)
        sections = [min(size, n - i) for i in range(0, n, size)]
    else:
        sections = split_size_or_sections
    return tuple(np.split(x, np.cumsum(sections)[:-1], axis=dim))


def _chunk_samples(rng):
    return [Sample(randn(rng, 5, 2), 3, name="uneven"), Sample(randn(rng, 2, 6), 4, 1,
                                                               name="fewer"),
            Sample(randn(rng, 2, 6), 2, -1, name="even"), Sample(randn(rng, 0, 2), 3, name="empty")]


def _np_chunk(x, chunks, dim=0):
    n = x.shape[dim]
    if n == 0:
        return (x,) * chunks
    return _np_split(x, -(-n // chunks), dim)


def _unbind_samples(rng):
    return [Sample(randn(rng, 3, 2), name="dim0"), Sample(randn(rng, 2, 3, 2), 1, name="dim1"),
            Sample(randn(rng, 4), -1, name="vector"),
            Sample(noncontig(rng, 2, 3), 1, name="noncontig")]


def _np_unbind(x, dim=0):
    return tuple(np.moveaxis(x, dim, 0))


def _same(name, ref, samples, grad=True):
    """An op callable as ``genesis.<name>`` and ``torch.<name>`` with the same arguments."""
    return OpInfo(name, getattr(genesis, name), ref, samples,
                  getattr(torch, name) if torch is not None else None, grad=grad)


OPS = [
    _same("reshape", np.reshape, _reshape_samples),
    OpInfo("view", _method("view"), lambda x, *s: x.reshape(*s), _view_samples,
           _t(_method("view"))),
    OpInfo("view_as", genesis.Tensor.view_as, lambda x, o: x.reshape(o.shape),
           lambda rng: [Sample(randn(rng, 3, 4), randn(rng, 2, 6))], _t(_method("view_as")),
           grad_args=(0,)),
    OpInfo("reshape_as", genesis.Tensor.reshape_as, lambda x, o: x.reshape(o.shape),
           lambda rng: [Sample(noncontig(rng, 3, 4), randn(rng, 12))],
           _t(_method("reshape_as")), grad_args=(0,)),
    _same("transpose", _np_swap, _dims_samples),
    _same("swapaxes", _np_swap, _dims_samples),
    OpInfo("permute", _method("permute"),
           lambda x, *d: np.transpose(x, d[0] if len(d) == 1 else d), _permute_samples,
           _t(_method("permute"))),
    _same("t", lambda x: x.T, lambda rng: [Sample(randn(rng, 3, 4)), Sample(randn(rng, 5)),
                                           Sample(randn(rng))]),
    _same("movedim", np.moveaxis, _movedim_samples),
    _same("unsqueeze", np.expand_dims, _unsqueeze_samples),
    OpInfo("squeeze", genesis.squeeze,
           lambda x, dim=None: np.squeeze(x, tuple(d for d in np.atleast_1d(dim) if
                                                   x.shape[d] == 1) if dim is not None else None),
           _squeeze_samples, _t(torch.squeeze if torch else None)),
    OpInfo("expand", _method("expand"), _np_expand, _expand_samples, _t(_method("expand"))),
    OpInfo("expand_as", genesis.Tensor.expand_as, lambda x, o: np.broadcast_to(x, o.shape),
           lambda rng: [Sample(randn(rng, 3, 1), randn(rng, 2, 3, 4))], _t(_method("expand_as")),
           grad_args=(0,)),
    OpInfo("repeat", _method("repeat"), _np_repeat, _repeat_samples, _t(_method("repeat"))),
    _same("repeat_interleave", _np_interleave, _interleave_samples),
    _same("flatten", _np_flatten, _flatten_samples),
    _same("unflatten", _np_unflatten, _unflatten_samples),
    _same("flip", np.flip, _flip_samples),
    OpInfo("flip_varargs", _method("flip"), lambda x, *d: np.flip(x, d),
           lambda rng: [Sample(randn(rng, 3, 4), 0, 1)], _t(_method("flip"))),
    _same("roll", lambda x, s, d=None: np.roll(x, s, d), _roll_samples),
    _same("narrow", _np_narrow, _narrow_samples),
    OpInfo("cat", lambda *xs, dim=0: genesis.cat(list(xs), dim=dim), _np_cat, _cat_samples,
           _t(lambda *xs, dim=0: torch.cat(list(xs), dim=dim))),
    OpInfo("concat", lambda *xs, dim=0: genesis.concat(xs, dim=dim), _np_cat, _cat_samples,
           _t(lambda *xs, dim=0: torch.concat(xs, dim=dim))),
    OpInfo("stack", lambda *xs, dim=0: genesis.stack(list(xs), dim=dim),
           lambda *xs, dim=0: np.stack(xs, axis=dim), _stack_samples,
           _t(lambda *xs, dim=0: torch.stack(list(xs), dim=dim))),
    _same("split", _np_split, _split_samples),
    _same("chunk", _np_chunk, _chunk_samples),
    _same("unbind", _np_unbind, _unbind_samples),
    OpInfo("split_used_once", lambda x: genesis.split(x, 2)[1] * 2,
           lambda x: np.split(x, [2, 4])[1] * 2, lambda rng: [Sample(randn(rng, 5, 3))],
           _t(lambda x: torch.split(x, 2)[1] * 2)),
    OpInfo("unbind_used_once", lambda x: genesis.unbind(x, 1)[0].sum(),
           lambda x: x[:, 0].sum(), lambda rng: [Sample(randn(rng, 2, 3))],
           _t(lambda x: torch.unbind(x, 1)[0].sum())),
]
