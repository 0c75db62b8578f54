"""Reduction ops."""
import numpy as np

import genesis
from tests.opinfo import OpInfo, Sample
from tests.opinfos._samples import away_from, noncontig, positive, randn

try:
    import torch
except ImportError:
    torch = None


def _t(fn):
    """``fn`` when torch is installed, else None (parity is skipped)."""
    return fn if torch is not None else None


def _torch(name):
    """torch.<name> when torch is installed."""
    return getattr(torch, name) if torch is not None else None


def _axis(dim):
    return tuple(dim) if isinstance(dim, (tuple, list)) else dim


def _np_reduce(fn):
    """A NumPy reference taking PyTorch's ``dim`` / ``keepdim`` keywords."""
    def ref(x, dim=None, keepdim=False, **kwargs):
        axis = _axis(dim) if x.ndim else None
        return np.asarray(fn(x, axis=axis, keepdims=keepdim, **kwargs))
    return ref


def reduce_samples(make=randn):
    """dim None / int / negative / tuple, keepdim, 0-d, non-contiguous and empty inputs."""
    def build(rng):
        return [Sample(make(rng), name="scalar"),
                Sample(make(rng), dim=0, name="scalar_dim"),
                Sample(make(rng, 5), name="vector"),
                Sample(make(rng, 3, 4), dim=1, name="dim1"),
                Sample(make(rng, 3, 4), dim=-2, keepdim=True, name="neg_keepdim"),
                Sample(make(rng, 2, 3, 4), dim=(0, 2), name="tuple"),
                Sample(make(rng, 2, 3, 4), dim=(-1, 0), keepdim=True, name="tuple_keepdim"),
                Sample(make(rng, 2, 3, 1), dim=None, keepdim=True, name="all_keepdim"),
                Sample(np.ascontiguousarray(make(rng, 4, 3)).T, dim=0, name="noncontig"),
                Sample(make(rng, 0, 3), dim=1, name="empty_kept"),
                Sample(make(rng, 0, 3), dim=0, name="empty_reduced")]
    return build


def _nonempty(build):
    """Drop samples that reduce over an empty dimension (max-like ops reject them; NumPy's
    mean warns on them)."""
    def out(rng):
        return [s for s in build(rng) if s.name != "empty_reduced"]
    return out


def _with_zeros(rng):
    """Prod/cumprod inputs: no zero, one zero per row, two zeros in a row, all zeros."""
    a = positive(rng, 3, 4) * np.sign(randn(rng, 3, 4))
    one = a.copy()
    one[0, 1] = one[1, 3] = one[2, 0] = 0.0
    two = a.copy()
    two[1, 0] = two[1, 2] = 0.0
    two[2, 3] = 0.0
    return a, one, two


def _prod_samples(rng):
    a, one, two = _with_zeros(rng)
    return [Sample(positive(rng), name="scalar"), Sample(a, name="all"),
            Sample(a, dim=1, name="dim1"), Sample(one, dim=1, name="one_zero"),
            Sample(two, dim=-1, keepdim=True, name="two_zeros"), Sample(one, name="all_zero"),
            Sample(two.T, dim=0, name="noncontig_zeros"), Sample(randn(rng, 0, 3), dim=0,
                                                                 name="empty")]


def _cum_samples(zeros):
    def build(rng):
        a, one, two = _with_zeros(rng)
        samples = [Sample(randn(rng), 0, name="scalar"), Sample(randn(rng, 5), 0, name="vector"),
                   Sample(a, 1, name="dim1"), Sample(a, -2, name="neg"),
                   Sample(randn(rng, 2, 3, 4), 1, name="3d"),
                   Sample(noncontig(rng, 3, 4), 1, name="noncontig"),
                   Sample(randn(rng, 0, 3), 0, name="empty")]
        if zeros:
            samples += [Sample(one, 1, name="one_zero"), Sample(two, 1, name="two_zeros"),
                        Sample(two, 0, name="zeros_dim0")]
        return samples
    return build


def _var_samples(rng):
    return [Sample(randn(rng, 5), name="vector"),
            Sample(randn(rng, 3, 4), dim=1, name="dim1"),
            Sample(randn(rng, 3, 4), dim=0, keepdim=True, name="keepdim"),
            Sample(randn(rng, 2, 3, 4), dim=(0, 2), name="tuple"),
            Sample(randn(rng, 3, 4), dim=1, correction=0, name="correction0"),
            Sample(randn(rng, 3, 4), dim=1, correction=2, name="correction2"),
            Sample(randn(rng, 3, 4), dim=-1, unbiased=False, name="biased"),
            Sample(noncontig(rng, 4, 3), dim=0, name="noncontig")]


def _var_ref(fn):
    def ref(x, dim=None, keepdim=False, correction=None, unbiased=None):
        ddof = 1 if correction is None and unbiased is None else (
            correction if correction is not None else int(unbiased))
        return np.asarray(fn(x, axis=_axis(dim), keepdims=keepdim, ddof=ddof))
    return ref


def _ties(rng):
    """Exactly two tied extremes per row (central differences then give 1/2 each)."""
    x = randn(rng, 3, 4)
    x[:, 2] = x.max(axis=1) + 0.5
    x[:, 0] = x[:, 2]
    y = randn(rng, 3, 4)
    y[:, 1] = y.min(axis=1) - 0.5
    y[:, 3] = y[:, 1]
    return x, y


def _amax_tie_samples(rng):
    x, y = _ties(rng)
    return [Sample(x, dim=1, name="max_ties"), Sample(y, dim=1, name="min_ties")]


def _max_dim_samples(rng):
    return [Sample(randn(rng), 0, name="scalar"), Sample(randn(rng, 5), 0, name="vector"),
            Sample(randn(rng, 3, 4), 1, name="dim1"),
            Sample(randn(rng, 3, 4), -2, True, name="keepdim"),
            Sample(randn(rng, 2, 3, 4), 1, name="3d"),
            Sample(noncontig(rng, 3, 4), 0, name="noncontig"),
            Sample(randn(rng, 3, 0), 0, name="empty_kept")]


def _max_dim_ref(is_max):
    def ref(x, dim, keepdim=False):
        arg = np.argmax if is_max else np.argmin
        idx = np.expand_dims(arg(x, axis=dim), dim) if x.ndim else np.zeros((), np.int64)
        vals = np.take_along_axis(x, idx, dim) if x.ndim else x
        if not keepdim and x.ndim:
            idx, vals = idx.squeeze(dim), vals.squeeze(dim)
        return vals, idx
    return ref


def _max_all_samples(rng):
    x, _ = _ties(rng)
    return [Sample(randn(rng), name="scalar"), Sample(randn(rng, 3, 4), name="matrix"),
            Sample(x, name="ties"), Sample(noncontig(rng, 3, 4), name="noncontig")]


def _arg_samples(rng):
    return [Sample(randn(rng), name="scalar"), Sample(randn(rng, 3, 4), name="flat"),
            Sample(randn(rng, 3, 4), keepdim=True, name="flat_keepdim"),
            Sample(randn(rng, 3, 4), dim=1, name="dim1"),
            Sample(randn(rng, 2, 3, 4), dim=-2, keepdim=True, name="keepdim"),
            Sample(randn(rng, 3, 0), dim=0, name="empty_kept")]


def _arg_ref(fn):
    def ref(x, dim=None, keepdim=False):
        if dim is None:
            out = fn(x.reshape(-1))
            return np.asarray(out).reshape((1,) * x.ndim if keepdim else ())
        return fn(x, axis=dim, keepdims=keepdim) if x.ndim else np.zeros((), np.int64)
    return ref


def _lse_ref(x, dim=None, keepdim=False):
    m = np.max(x, axis=_axis(dim), keepdims=True) if x.size else 0.0
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(x - m).sum(axis=_axis(dim), keepdims=True)) + m
    return out if keepdim else out.reshape(np.sum(x, axis=_axis(dim)).shape)


def _lse_samples(rng):
    big = randn(rng, 3, 4) * 10 + 1000.0
    neg_inf = randn(rng, 3, 4)
    neg_inf[0, :2] = -np.inf
    return [Sample(randn(rng), dim=0, name="scalar"), Sample(randn(rng, 5), dim=0, name="vector"),
            Sample(randn(rng, 3, 4), dim=1, name="dim1"),
            Sample(randn(rng, 2, 3, 4), dim=(0, 2), keepdim=True, name="tuple_keepdim"),
            Sample(big, dim=-1, name="large"), Sample(-big, dim=0, name="very_negative"),
            Sample(neg_inf, dim=1, name="some_neg_inf"),
            Sample(noncontig(rng, 3, 4), dim=0, name="noncontig"),
            Sample(randn(rng, 0, 3), dim=0, name="empty_reduced")]


def _norm_ref(x, p="fro", dim=None, keepdim=False):
    axis = _axis(dim)
    a = np.abs(x)
    if p == "nuc":
        m = np.moveaxis(x, axis or (0, 1), (-2, -1))
        out = np.linalg.svd(m, compute_uv=False).sum(-1)
        if keepdim:
            out = np.expand_dims(out, axis)
        return out
    p = 2 if p == "fro" else p
    if p == np.inf:
        return a.max(axis=axis, keepdims=keepdim)
    if p == -np.inf:
        return a.min(axis=axis, keepdims=keepdim)
    if p == 0:
        return (a != 0).sum(axis=axis, keepdims=keepdim).astype(x.dtype)
    return (a ** p).sum(axis=axis, keepdims=keepdim) ** (1.0 / p)


def _norm_samples(rng):
    z = away_from(rng, 3, 4, margin=0.2)
    zero_row = randn(rng, 3, 4)
    zero_row[1] = 0.0
    return [Sample(randn(rng), name="scalar"), Sample(randn(rng, 5), name="vector"),
            Sample(randn(rng, 3, 4), dim=1, name="dim1"),
            Sample(randn(rng, 2, 3, 4), "fro", (0, 2), True, name="fro_tuple_keepdim"),
            Sample(zero_row, 2, 1, name="zero_row"),
            Sample(z, 1, -1, name="p1"), Sample(randn(rng, 3, 4), np.inf, 1, name="inf"),
            Sample(randn(rng, 3, 4), -np.inf, 0, name="neg_inf"),
            Sample(z, 0, 1, name="p0"), Sample(z, 3, 1, name="p3"),
            Sample(z, 1.5, None, name="p1.5"), Sample(z, 0.5, 0, name="p0.5"),
            Sample(noncontig(rng, 3, 4), 2, 0, name="noncontig"),
            Sample(randn(rng, 3, 4), "nuc", name="nuc"),
            Sample(randn(rng, 2, 3, 4), "nuc", (0, 2), True, name="nuc_batched_keepdim"),
            Sample(randn(rng, 0, 3), 2, 0, name="empty")]


def _logical_samples(rng):
    b = randn(rng, 3, 4) > 0
    return [Sample(b, name="all"), Sample(b, dim=1, name="dim1"),
            Sample(b, dim=0, keepdim=True, name="keepdim"),
            Sample(randn(rng, 3, 4) > -5, dim=(0, 1), name="tuple"),
            Sample(np.zeros((0, 3), bool), dim=0, name="empty"),
            Sample(rng.integers(0, 2, (3, 4)).astype(np.uint8), dim=1, name="uint8"),
            Sample(randn(rng, 3, 4), dim=1, name="float")]


OPS = [
    OpInfo("sum", genesis.sum, _np_reduce(np.sum), reduce_samples(), _torch("sum")),
    OpInfo("sum_int", genesis.sum, _np_reduce(np.sum),
           reduce_samples(lambda rng, *s: rng.integers(-5, 5, s)), _torch("sum"),
           grad=False),
    OpInfo("sum_dtype", lambda x: genesis.sum(x, 1, dtype=genesis.float64),
           lambda x: x.sum(axis=1, dtype=np.float64),
           lambda rng: [Sample(rng.integers(-5, 5, (3, 4)).astype(np.int32))],
           _t(lambda x: torch.sum(x, 1, dtype=torch.float64)), grad=False),
    OpInfo("mean", genesis.mean, _np_reduce(np.mean), _nonempty(reduce_samples()),
           _torch("mean")),
    OpInfo("prod", genesis.prod, _np_reduce(np.prod), _prod_samples,
           _t(lambda x, dim=None, keepdim=False: torch.prod(x) if dim is None
              else torch.prod(x, dim, keepdim))),
    OpInfo("var", genesis.var, _var_ref(np.var), _var_samples, _torch("var")),
    OpInfo("std", genesis.std, _var_ref(np.std), _var_samples, _torch("std")),
    OpInfo("amax", genesis.amax, _np_reduce(np.max), _nonempty(reduce_samples()),
           _t(lambda x, dim=(), keepdim=False: torch.amax(x, dim, keepdim))),
    OpInfo("amin", genesis.amin, _np_reduce(np.min), _nonempty(reduce_samples()),
           _t(lambda x, dim=(), keepdim=False: torch.amin(x, dim, keepdim))),
    OpInfo("amax_ties", genesis.amax, _np_reduce(np.max), _amax_tie_samples,
           _t(lambda x, dim=(), keepdim=False: torch.amax(x, dim, keepdim))),
    OpInfo("amin_ties", genesis.amin, _np_reduce(np.min), _amax_tie_samples,
           _t(lambda x, dim=(), keepdim=False: torch.amin(x, dim, keepdim))),
    OpInfo("max_all", genesis.max, np.max, _max_all_samples, _torch("max")),
    OpInfo("min_all", genesis.min, np.min, _max_all_samples, _torch("min")),
    OpInfo("max_dim", genesis.max, _max_dim_ref(True), _max_dim_samples,
           _torch("max")),
    OpInfo("min_dim", genesis.min, _max_dim_ref(False), _max_dim_samples,
           _torch("min")),
    OpInfo("max_binary", genesis.max, np.maximum,
           lambda rng: [Sample(randn(rng, 3, 4), randn(rng, 4), name="bcast")],
           _torch("max")),
    OpInfo("min_binary", genesis.min, np.minimum,
           lambda rng: [Sample(randn(rng, 3, 4), randn(rng, 4), name="bcast")],
           _torch("min")),
    OpInfo("argmax", genesis.argmax, _arg_ref(np.argmax), _arg_samples,
           _torch("argmax"), grad=False),
    OpInfo("argmin", genesis.argmin, _arg_ref(np.argmin), _arg_samples,
           _torch("argmin"), grad=False),
    OpInfo("logsumexp", genesis.logsumexp, _lse_ref, _lse_samples,
           _torch("logsumexp")),
    OpInfo("cumsum", genesis.cumsum, lambda x, d: np.cumsum(x, axis=d) if x.ndim else x,
           _cum_samples(False), _torch("cumsum")),
    OpInfo("cumprod", genesis.cumprod, lambda x, d: np.cumprod(x, axis=d) if x.ndim else x,
           _cum_samples(True), _torch("cumprod")),
    OpInfo("any", genesis.any, _np_reduce(np.any), _logical_samples,
           _t(lambda x, dim=None, keepdim=False: torch.any(x) if dim is None
              else torch.any(x, dim, keepdim)), grad=False),
    OpInfo("all", genesis.all, _np_reduce(np.all), _logical_samples,
           _t(lambda x, dim=None, keepdim=False: torch.all(x) if dim is None
              else torch.all(x, dim, keepdim)), grad=False),
    OpInfo("norm", genesis.norm, _norm_ref, _norm_samples, _torch("norm")),
]
