"""Neural-network ops: softmax family, losses, activations, norms, embedding, attention, pad."""
import math
import warnings

import numpy as np

import genesis
import genesis.nn.functional as F
from tests.opinfo import OpInfo, Sample
from tests.opinfos._samples import away_from, noncontig, positive, randn, unary_samples

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = TF = None


def _tf(name):
    """torch.nn.functional.<name> when torch is installed."""
    return getattr(TF, name) if TF is not None else None


def _tfn(fn):
    """``fn`` (which calls torch) when torch is installed."""
    return fn if torch is not None else None


# --------------------------------------------------------------------------- references
def _log_softmax_ref(x, dim):
    m = np.max(x, axis=dim, keepdims=True) if x.size else x
    s = x - m
    return s - np.log(np.sum(np.exp(s), axis=dim, keepdims=True))


def _softmax_ref(x, dim):
    return np.exp(_log_softmax_ref(x, dim))


def _reduce_ref(loss, reduction, denom=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    with np.errstate(invalid="ignore"):
        return loss.sum() / (loss.size if denom is None else denom)


def _class_axis_last(x):
    return x[None] if x.ndim == 1 else np.moveaxis(x, 1, -1)


def _cross_entropy_ref(x, target, weight=None, ignore_index=-100, reduction="mean",
                       label_smoothing=0.0):
    logp = _class_axis_last(_log_softmax_ref(x, 0 if x.ndim == 1 else 1))
    n_classes = logp.shape[-1]
    w = np.ones(n_classes) if weight is None else weight
    if target.dtype.kind == "f":
        tgt = _class_axis_last(target) * (1 - label_smoothing) + label_smoothing / n_classes
        loss = -(tgt * w * logp).sum(-1)
        loss = loss if x.ndim > 1 else loss[0]
        return _reduce_ref(loss, reduction)
    t = target.reshape(logp.shape[:-1])
    onehot = (np.arange(n_classes) == np.where(t == ignore_index, -1, t)[..., None])
    valid = (t != ignore_index)[..., None]
    coef = ((1 - label_smoothing) * onehot + label_smoothing / n_classes * valid) * w
    loss = -(coef * logp).sum(-1).reshape(target.shape)
    return _reduce_ref(loss, reduction, (onehot * w).sum())


def _nll_ref(x, target, weight=None, ignore_index=-100, reduction="mean"):
    rows = _class_axis_last(x)
    n_classes = rows.shape[-1]
    w = np.ones(n_classes) if weight is None else weight
    t = target.reshape(rows.shape[:-1])
    onehot = np.arange(n_classes) == np.where(t == ignore_index, -1, t)[..., None]
    loss = -(onehot * w * rows).sum(-1).reshape(target.shape)
    return _reduce_ref(loss, reduction, (onehot * w).sum())


def _sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


def _gelu_ref(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _softplus_ref(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(np.minimum(beta * x, threshold)))
                    / beta)


def _norm_ref(x, normalized_shape, weight, bias, eps, centered):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    c = x - x.mean(axis=axes, keepdims=True) if centered else x
    y = c / np.sqrt((c * c).mean(axis=axes, keepdims=True) + eps)
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


def _rms_norm_ref(x, normalized_shape, weight=None, eps=None):
    return _norm_ref(x, normalized_shape, weight, None,
                     np.finfo(np.float64).eps if eps is None else eps, False)


def _layer_norm_ref(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    return _norm_ref(x, normalized_shape, weight, bias, eps, True)


def _sdpa_ref(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              enable_gqa=False):
    if enable_gqa:
        rep = q.shape[-3] // k.shape[-3]
        k, v = np.repeat(k, rep, axis=-3), np.repeat(v, rep, axis=-3)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if is_causal:
        attn_mask = np.tril(np.ones(s.shape[-2:], dtype=bool))
    if attn_mask is not None:
        s = np.where(attn_mask, s, -np.inf) if attn_mask.dtype == bool else s + attn_mask
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isinf(m), 0, m))
    tot = e.sum(-1, keepdims=True)
    return (e / np.where(tot == 0, 1, tot)) @ v


def _pad_ref(x, pad, mode="constant", value=None):
    pairs = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        pairs[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    crop = tuple(slice(max(-b, 0), n - max(-a, 0)) for (b, a), n in zip(pairs, x.shape))
    pos = [(max(b, 0), max(a, 0)) for b, a in pairs]
    if mode == "constant":
        return np.pad(x[crop], pos, constant_values=0 if value is None else value)
    return np.pad(x, pos, mode={"reflect": "reflect", "replicate": "edge",
                                "circular": "wrap"}[mode])


def _bce_logits_ref(x, t, weight=None, reduction="mean", pos_weight=None):
    log_sig = -np.logaddexp(0, -x)
    log_one_minus = -np.logaddexp(0, x)
    pw = 1 if pos_weight is None else pos_weight
    loss = -(pw * t * log_sig + (1 - t) * log_one_minus)
    return _reduce_ref(loss if weight is None else loss * weight, reduction)


def _pointwise_ref(kind):
    def ref(x, t, reduction="mean", weight=None):
        d = x - t
        err = d * d if kind == "mse" else np.abs(d)
        if weight is None:
            return _reduce_ref(err, reduction)
        return _reduce_ref(err * weight, reduction, weight.sum())
    return ref


def _normalize_ref(x, p=2.0, dim=1, eps=1e-12):
    n = (np.abs(x) ** p).sum(axis=dim, keepdims=True) ** (1 / p)
    return x / np.maximum(n, eps)


# --------------------------------------------------------------------------- samples
def _targets(rng, n_classes, *shape):
    return rng.integers(0, n_classes, shape)


def _probs(rng, *shape):
    return _softmax_ref(randn(rng, *shape), 1 if len(shape) > 1 else 0)


def _softmax_samples(rng):
    return [Sample(randn(rng, 3, 5), dim=1, name="rows"),
            Sample(randn(rng, 3, 5), dim=0, name="cols"),
            Sample(randn(rng, 2, 3, 4), dim=-1, name="last"),
            Sample(randn(rng, 2, 3, 4), dim=1, name="middle"),
            Sample(randn(rng), dim=0, name="scalar"),
            Sample(randn(rng, 6), dim=0, name="vector"),
            Sample(noncontig(rng, 3, 4), dim=1, name="noncontig"),
            Sample(randn(rng, 3, 4) * 50, dim=1, name="large"),
            Sample(randn(rng, 0, 3), dim=1, name="empty")]


def _ce_samples(rng):
    t_ign = _targets(rng, 5, 6)
    t_ign[[1, 4]] = -100
    t_k = _targets(rng, 3, 2, 2, 2)
    t_k[0, 1, 0] = -100
    return [Sample(randn(rng, 4, 5), _targets(rng, 5, 4), name="basic"),
            Sample(randn(rng, 6, 5), t_ign, name="ignore_default"),
            Sample(randn(rng, 6, 5), t_ign, reduction="sum", name="ignore_sum"),
            Sample(randn(rng, 6, 5), t_ign, reduction="none", name="ignore_none"),
            Sample(randn(rng, 4, 3), np.array([0, 2, 2, 1]), ignore_index=2, name="ignore_2"),
            Sample(randn(rng, 4, 5), _targets(rng, 5, 4), positive(rng, 5), name="weight"),
            Sample(randn(rng, 6, 5), t_ign, positive(rng, 5), reduction="none",
                   name="weight_ignore_none"),
            Sample(randn(rng, 4, 5), _targets(rng, 5, 4), label_smoothing=0.1, name="smooth"),
            Sample(randn(rng, 6, 5), t_ign, positive(rng, 5), label_smoothing=0.2,
                   name="smooth_weight_ignore"),
            Sample(randn(rng, 6, 5), t_ign, positive(rng, 5), label_smoothing=0.2,
                   reduction="sum", name="smooth_weight_sum"),
            Sample(randn(rng, 6, 5), t_ign, label_smoothing=0.3, reduction="none",
                   name="smooth_none"),
            Sample(randn(rng, 2, 3, 2, 2), t_k, name="kdim"),
            Sample(randn(rng, 2, 3, 2, 2), t_k, positive(rng, 3), label_smoothing=0.1,
                   reduction="none", name="kdim_weight_smooth_none"),
            Sample(randn(rng, 5), np.array(3), name="unbatched"),
            Sample(randn(rng, 5), np.array(3), reduction="none", name="unbatched_none"),
            Sample(noncontig(rng, 4, 3), _targets(rng, 3, 4), name="noncontig"),
            Sample(randn(rng, 0, 3), _targets(rng, 3, 0), reduction="sum", name="empty")]


def _ce_prob_samples(rng):
    return [Sample(randn(rng, 4, 5), _probs(rng, 4, 5), name="probs"),
            Sample(randn(rng, 4, 5), _probs(rng, 4, 5), positive(rng, 5), name="weight"),
            Sample(randn(rng, 4, 5), _probs(rng, 4, 5), label_smoothing=0.2, name="smooth"),
            Sample(randn(rng, 4, 5), _probs(rng, 4, 5), positive(rng, 5), reduction="sum",
                   label_smoothing=0.1, name="weight_smooth_sum"),
            Sample(randn(rng, 4, 5), _probs(rng, 4, 5), reduction="none", name="none"),
            Sample(randn(rng, 2, 3, 2), _probs(rng, 2, 3, 2), name="kdim"),
            Sample(randn(rng, 5), _probs(rng, 5), name="unbatched")]


def _nll_samples(rng):
    t_ign = _targets(rng, 4, 5)
    t_ign[2] = -100
    return [Sample(randn(rng, 5, 4), _targets(rng, 4, 5), name="basic"),
            Sample(randn(rng, 5, 4), t_ign, name="ignore"),
            Sample(randn(rng, 5, 4), t_ign, positive(rng, 4), name="weight_ignore"),
            Sample(randn(rng, 5, 4), t_ign, positive(rng, 4), reduction="none", name="none"),
            Sample(randn(rng, 5, 4), t_ign, reduction="sum", name="sum"),
            Sample(randn(rng, 2, 3, 2), _targets(rng, 3, 2, 2), name="kdim"),
            Sample(randn(rng, 4), np.array(1), name="unbatched")]


def _silu_and_mul_ref(gate, up):
    return gate * _sigmoid_ref(gate) * up


def _pair_samples(rng):
    return [Sample(randn(rng, 3, 4), randn(rng, 3, 4), name="same"),
            Sample(randn(rng, 2, 3, 4), randn(rng, 4), name="bcast"),
            Sample(noncontig(rng, 3, 4), randn(rng, 3, 4), name="noncontig"),
            Sample(randn(rng), randn(rng), name="scalar"),
            Sample(randn(rng, 0, 4), randn(rng, 0, 4), name="empty")]


def _norm_samples(with_bias):
    def build(rng):
        def affine(*shape):
            return (randn(rng, *shape), randn(rng, *shape)) if with_bias else (randn(rng, *shape),)
        return [Sample(randn(rng, 3, 4), (4,), *affine(4), name="affine"),
                Sample(randn(rng, 3, 4), (4,), name="plain"),
                Sample(randn(rng, 2, 2, 3), (2, 3), *affine(2, 3), name="two_dims"),
                Sample(randn(rng, 3, 5), (5,), *affine(5), eps=1e-3, name="eps"),
                Sample(randn(rng, 2, 3, 4), [4], *affine(4), name="batched"),
                Sample(noncontig(rng, 3, 4), (4,), *affine(4), name="noncontig"),
                Sample(randn(rng, 0, 4), (4,), *affine(4), name="empty")]
    return build


def _embedding_samples(rng):
    return [Sample(_targets(rng, 5, 3, 4), randn(rng, 5, 3), name="matrix"),
            Sample(np.array([1, 3, 1, 0, 1]), randn(rng, 4, 2), name="repeated"),
            Sample(np.array(2), randn(rng, 3, 2), name="scalar_index"),
            Sample(np.zeros((0, 2), dtype=np.int64), randn(rng, 3, 2), name="empty")]


def _sdpa_samples(rng):
    keep = rng.random((3, 5)) > 0.4
    keep[:, 0] = True
    masked_row = keep.copy()
    masked_row[1] = False
    return [
        Sample(randn(rng, 2, 2, 3, 4), randn(rng, 2, 2, 5, 4), randn(rng, 2, 2, 5, 3),
               name="plain"),
        Sample(randn(rng, 1, 2, 3, 4), randn(rng, 1, 2, 5, 4), randn(rng, 1, 2, 5, 3), keep,
               name="bool_mask"),
        Sample(randn(rng, 1, 2, 3, 4), randn(rng, 1, 2, 5, 4), randn(rng, 1, 2, 5, 3),
               masked_row, name="fully_masked_row"),
        Sample(randn(rng, 2, 2, 3, 4), randn(rng, 2, 2, 5, 4), randn(rng, 2, 2, 5, 3),
               randn(rng, 2, 1, 3, 5), name="additive_mask"),
        Sample(randn(rng, 1, 2, 4, 3), randn(rng, 1, 2, 4, 3), randn(rng, 1, 2, 4, 3),
               is_causal=True, name="causal"),
        Sample(randn(rng, 1, 1, 3, 2), randn(rng, 1, 1, 5, 2), randn(rng, 1, 1, 5, 2),
               is_causal=True, name="causal_rect"),
        Sample(randn(rng, 1, 2, 3, 4), randn(rng, 1, 2, 5, 4), randn(rng, 1, 2, 5, 3),
               scale=0.3, name="scale"),
        Sample(randn(rng, 1, 4, 3, 2), randn(rng, 1, 2, 5, 2), randn(rng, 1, 2, 5, 2),
               enable_gqa=True, name="gqa"),
        Sample(randn(rng, 1, 4, 3, 2), randn(rng, 1, 2, 3, 2), randn(rng, 1, 2, 3, 2),
               is_causal=True, enable_gqa=True, name="gqa_causal"),
        Sample(randn(rng, 2, 6, 3, 2), randn(rng, 2, 2, 5, 2), randn(rng, 2, 2, 5, 3),
               randn(rng, 2, 6, 3, 5), enable_gqa=True, name="gqa_head_mask"),
        Sample(randn(rng, 1, 6, 3, 2), randn(rng, 1, 2, 5, 2), randn(rng, 1, 2, 5, 3),
               keep, enable_gqa=True, name="gqa_bool_mask"),
        Sample(noncontig(rng, 1, 6, 1, 4), randn(rng, 1, 2, 5, 4), randn(rng, 1, 2, 5, 4),
               enable_gqa=True, name="gqa_one_query"),
        Sample(randn(rng, 2, 3, 4), randn(rng, 1, 5, 4), randn(rng, 1, 5, 3),
               name="batch_bcast"),
        Sample(randn(rng, 3, 4), randn(rng, 5, 4), randn(rng, 5, 2), name="two_dim"),
        Sample(noncontig(rng, 3, 4), randn(rng, 5, 4), randn(rng, 5, 2), name="noncontig"),
    ]


def _linear_samples(rng):
    return [Sample(randn(rng, 3, 4), randn(rng, 5, 4), randn(rng, 5), name="bias"),
            Sample(randn(rng, 2, 3, 4), randn(rng, 2, 4), name="batched_no_bias"),
            Sample(randn(rng, 4), randn(rng, 3, 4), randn(rng, 3), name="vector"),
            Sample(noncontig(rng, 3, 4), randn(rng, 2, 4), randn(rng, 2), name="noncontig"),
            Sample(randn(rng, 0, 4), randn(rng, 3, 4), randn(rng, 3), name="empty")]


def _regression_samples(rng):
    return [Sample(randn(rng, 3, 4), away_from(rng, 3, 4), name="mean"),
            Sample(randn(rng, 3, 4), randn(rng, 3, 4), reduction="sum", name="sum"),
            Sample(randn(rng, 3, 4), randn(rng, 3, 4), reduction="none", name="none"),
            Sample(randn(rng), randn(rng), name="scalar"),
            Sample(noncontig(rng, 3, 4), randn(rng, 3, 4), name="noncontig")]


def _bce_samples(rng):
    def t(*s):
        return rng.uniform(0, 1, s)
    return [Sample(randn(rng, 3, 4), t(3, 4), name="mean"),
            Sample(randn(rng, 3, 4), t(3, 4), positive(rng, 3, 4), name="weight"),
            Sample(randn(rng, 3, 4), t(3, 4), positive(rng, 4), reduction="sum",
                   name="weight_bcast_sum"),
            Sample(randn(rng, 3, 4) * 30, t(3, 4), reduction="none", name="large_logits"),
            Sample(randn(rng), t(), name="scalar")]


def _bce_pos_weight_samples(rng):
    return [Sample(randn(rng, 3, 4), rng.uniform(0, 1, (3, 4)), positive(rng, 4), name="pw"),
            Sample(randn(rng, 2, 3), rng.uniform(0, 1, (2, 3)), positive(rng, 2, 3),
                   name="pw_full")]


def _pad_samples(rng):
    return [Sample(randn(rng, 2, 3), (1, 2), name="last"),
            Sample(randn(rng, 2, 3), (1, 0, 0, 2), value=1.5, name="two_dims_value"),
            Sample(randn(rng, 2, 4), (-1, 2), name="negative_crop"),
            Sample(randn(rng, 2, 3, 4), (0, 0, -1, -1, 1, 0), name="three_dims"),
            Sample(randn(rng, 1, 2, 4), (2, 3), mode="reflect", name="reflect"),
            Sample(randn(rng, 1, 2, 3), (2, 3), mode="replicate", name="replicate"),
            Sample(randn(rng, 1, 2, 3), (2, 3), mode="circular", name="circular"),
            Sample(randn(rng, 1, 3, 4), (1, 2, 2, 1), mode="reflect", name="reflect_2d"),
            Sample(randn(rng, 1, 2, 3), (1, 1, 2, 0), mode="replicate", name="replicate_2d"),
            Sample(noncontig(rng, 3, 4), (1, 1), name="noncontig"),
            Sample(randn(rng, 0, 3), (1, 1), name="empty")]


def _normalize_samples(rng):
    return [Sample(randn(rng, 3, 4), name="default"),
            Sample(randn(rng, 3, 4), dim=0, name="dim0"),
            Sample(away_from(rng, 3, 4), p=1.0, name="p1"),
            Sample(randn(rng, 2, 3, 4), p=3.0, dim=-1, name="p3"),
            Sample(noncontig(rng, 3, 4), name="noncontig")]


def _dropout_eval_samples(rng):
    return [Sample(randn(rng, 3, 4), 0.5, False, name="eval"),
            Sample(randn(rng, 3, 4), 0.0, True, name="p0")]


def _fwd(fn, *names):
    """A sample op calling ``fn`` with trailing positional arrays passed as keywords ``names``."""
    def op(*args, **kwargs):
        head = args[:len(args) - len(names)]
        kwargs.update(zip(names, args[len(head):]))
        return fn(*head, **kwargs)
    return op


def _quiet(fn):
    """``fn`` with the size-mismatch UserWarning of broadcasting losses silenced."""
    def op(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fn(*args, **kwargs)
    return op


OPS = [
    OpInfo("softmax", genesis.softmax, _softmax_ref, _softmax_samples, _tfn(torch.softmax)
           if torch else None),
    OpInfo("log_softmax", genesis.log_softmax, _log_softmax_ref, _softmax_samples,
           _tfn(torch.log_softmax) if torch else None),
    OpInfo("softmax_method", lambda x, dim: x.softmax(dim), _softmax_ref,
           lambda rng: [Sample(randn(rng, 2, 3), dim=-1)],
           (lambda x, dim: x.softmax(dim)) if torch else None),
    OpInfo("F_softmax", F.softmax, _softmax_ref, lambda rng: [Sample(randn(rng, 2, 3), dim=1)],
           _tf("softmax")),
    OpInfo("cross_entropy", F.cross_entropy, _cross_entropy_ref, _ce_samples,
           _tf("cross_entropy"), grad_args=(0,)),
    OpInfo("cross_entropy_probs", F.cross_entropy, _cross_entropy_ref, _ce_prob_samples,
           _tf("cross_entropy"), grad_args=(0, 1)),
    OpInfo("nll_loss", F.nll_loss, _nll_ref, _nll_samples, _tf("nll_loss"), grad_args=(0,)),
    OpInfo("silu", F.silu, lambda x: x * _sigmoid_ref(x), unary_samples(), _tf("silu")),
    OpInfo("gelu", F.gelu, _gelu_ref, unary_samples(), _tf("gelu")),
    OpInfo("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
           lambda x: _gelu_ref(x, "tanh"), unary_samples(),
           _tfn(lambda x: TF.gelu(x, approximate="tanh"))),
    OpInfo("leaky_relu", F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x),
           unary_samples(away_from), _tf("leaky_relu")),
    OpInfo("leaky_relu_slope", lambda x: F.leaky_relu(x, 0.2),
           lambda x: np.where(x > 0, x, 0.2 * x), unary_samples(away_from),
           _tfn(lambda x: TF.leaky_relu(x, 0.2))),
    OpInfo("softplus", F.softplus, _softplus_ref,
           unary_samples(lambda rng, *s: np.asarray(away_from(rng, *s) * 2)), _tf("softplus")),
    OpInfo("softplus_beta", lambda x: F.softplus(x, beta=2.0, threshold=3.0),
           lambda x: _softplus_ref(x, 2.0, 3.0),
           unary_samples(lambda rng, *s: np.asarray(away_from(rng, *s, points=(1.0,)) * 1.5)),
           _tfn(lambda x: TF.softplus(x, beta=2.0, threshold=3.0))),
    OpInfo("silu_and_mul", F.silu_and_mul, _silu_and_mul_ref, _pair_samples),
    OpInfo("rms_norm", F.rms_norm, _rms_norm_ref, _norm_samples(False), _tf("rms_norm")),
    OpInfo("layer_norm", F.layer_norm, _layer_norm_ref, _norm_samples(True), _tf("layer_norm")),
    OpInfo("normalize", F.normalize, _normalize_ref, _normalize_samples, _tf("normalize")),
    OpInfo("embedding", F.embedding, lambda idx, w, padding_idx=None: w[idx],
           _embedding_samples, _tf("embedding")),
    OpInfo("embedding_padding_idx", F.embedding, lambda idx, w, padding_idx: w[idx],
           lambda rng: [Sample(np.array([0, 2, 0, 1, 2]), randn(rng, 3, 3), padding_idx=0),
                        Sample(np.array([[0, 2], [1, 2]]), randn(rng, 3, 3), padding_idx=-1,
                               name="negative")],
           _tf("embedding"), grad=False),
    OpInfo("scaled_dot_product_attention", F.scaled_dot_product_attention, _sdpa_ref,
           _sdpa_samples, _tf("scaled_dot_product_attention")),
    OpInfo("dropout_eval", F.dropout, lambda x, p, training: x, _dropout_eval_samples,
           _tf("dropout")),
    OpInfo("linear", F.linear,
           lambda x, w, b=None: x @ w.T + (0 if b is None else b), _linear_samples,
           _tf("linear")),
    OpInfo("mse_loss", F.mse_loss, _pointwise_ref("mse"), _regression_samples, _tf("mse_loss")),
    OpInfo("l1_loss", F.l1_loss, _pointwise_ref("l1"),
           lambda rng: [s for s in _regression_samples(rng) if s.name != "scalar"],
           _tf("l1_loss")),
    OpInfo("mse_loss_weight", _fwd(F.mse_loss, "weight"),
           lambda x, t, w, **kw: _pointwise_ref("mse")(x, t, weight=w, **kw),
           lambda rng: [Sample(randn(rng, 3, 4), randn(rng, 3, 4), positive(rng, 3, 4)),
                        Sample(randn(rng, 3, 4), randn(rng, 3, 4), positive(rng, 3, 4),
                               reduction="none", name="none")],
           _tfn(_fwd(TF.mse_loss, "weight")) if torch else None),
    OpInfo("l1_loss_weight", _fwd(F.l1_loss, "weight"),
           lambda x, t, w, **kw: _pointwise_ref("l1")(x, t, weight=w, **kw),
           lambda rng: [Sample(randn(rng, 3, 4), away_from(rng, 3, 4), positive(rng, 3, 4),
                               reduction="sum")],
           _tfn(_fwd(TF.l1_loss, "weight")) if torch else None),
    OpInfo("mse_loss_bcast", _quiet(F.mse_loss), _pointwise_ref("mse"),
           lambda rng: [Sample(randn(rng, 3, 4), randn(rng, 4))],
           _tfn(_quiet(TF.mse_loss)) if torch else None),
    OpInfo("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
           _bce_logits_ref, _bce_samples, _tf("binary_cross_entropy_with_logits"),
           grad_args=(0, 1)),
    OpInfo("binary_cross_entropy_with_logits_pos_weight",
           _fwd(F.binary_cross_entropy_with_logits, "pos_weight"),
           lambda x, t, pw, **kw: _bce_logits_ref(x, t, pos_weight=pw, **kw),
           _bce_pos_weight_samples,
           _tfn(_fwd(TF.binary_cross_entropy_with_logits, "pos_weight")) if torch else None,
           grad_args=(0, 1)),
    OpInfo("pad", F.pad, _pad_ref, _pad_samples, _tf("pad")),
]
