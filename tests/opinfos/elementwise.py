"""Elementwise ops."""
import math

import numpy as np

import genesis
from tests.opinfo import OpInfo, Sample
from tests.opinfos._samples import away_from, binary_samples, positive, randn, unary_samples

try:
    import torch
except ImportError:
    torch = None


def _t(name):
    """torch.<name> when torch is installed."""
    return getattr(torch, name) if torch is not None else None


def _erf_ref(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


_UNARY = [
    ("exp", np.exp, randn), ("log", np.log, positive), ("log1p", np.log1p, positive),
    ("sqrt", np.sqrt, positive), ("rsqrt", lambda x: 1 / np.sqrt(x), positive),
    ("abs", np.abs, away_from), ("neg", np.negative, randn), ("sin", np.sin, randn),
    ("cos", np.cos, randn), ("tanh", np.tanh, randn), ("sigmoid", _sigmoid_ref, randn),
    ("erf", _erf_ref, randn), ("relu", lambda x: np.maximum(x, 0), away_from),
    ("exp2", np.exp2, randn), ("expm1", np.expm1, randn), ("log2", np.log2, positive),
    ("log10", np.log10, positive), ("tan", np.tan, lambda rng, *s: rng.uniform(-1, 1, s)),
    ("square", np.square, randn), ("reciprocal", np.reciprocal, positive),
]

OPS = [OpInfo(name, getattr(genesis, name), ref, unary_samples(make), _t(name))
       for name, ref, make in _UNARY]

OPS += [
    OpInfo("sign", genesis.sign, np.sign, unary_samples(away_from), _t("sign"), grad=False),
    OpInfo("floor", genesis.floor, np.floor, unary_samples(away_from), _t("floor"), grad=False),
    OpInfo("ceil", genesis.ceil, np.ceil, unary_samples(away_from), _t("ceil"), grad=False),
    OpInfo("round", genesis.round, np.round, unary_samples(away_from), _t("round"), grad=False),
    OpInfo("trunc", genesis.trunc, np.trunc, unary_samples(away_from), _t("trunc"), grad=False),
]

_BINARY = [
    ("add", np.add, randn, randn), ("sub", np.subtract, randn, randn),
    ("mul", np.multiply, randn, randn), ("div", np.divide, randn, positive),
    ("pow", np.power, positive, randn), ("maximum", np.maximum, randn, randn),
    ("minimum", np.minimum, randn, randn),
]
OPS += [OpInfo(name, getattr(genesis, name), ref, binary_samples(ma, mb), _t(name))
        for name, ref, ma, mb in _BINARY]
OPS.append(OpInfo("remainder", genesis.remainder, np.remainder,
                  binary_samples(lambda rng, *s: np.asarray(rng.uniform(0.1, 0.9, s)
                                                            + rng.integers(-3, 3, s)),
                                 lambda rng, *s: np.asarray(rng.uniform(1.05, 1.95, s))),
                  _t("remainder")))


def _scalar_samples(rng):
    return [Sample(randn(rng, 3, 4), 2.5, name="tensor_float"),
            Sample(randn(rng, 3, 4), 3, name="tensor_int"),
            Sample(positive(rng, 5), 0.5, name="fractional")]


OPS += [
    OpInfo("add_scalar", lambda a, s: a + s, lambda a, s: a + s, _scalar_samples,
           lambda a, s: a + s),
    OpInfo("rsub_scalar", lambda a, s: s - a, lambda a, s: s - a, _scalar_samples,
           lambda a, s: s - a),
    OpInfo("rtruediv_scalar", lambda a, s: s / a, lambda a, s: s / a,
           lambda rng: [Sample(positive(rng, 3, 4), 2.0)], lambda a, s: s / a),
    OpInfo("pow_scalar", lambda a, s: a ** s, lambda a, s: a ** s,
           lambda rng: [Sample(positive(rng, 3, 4), 2.5, name="float_exp"),
                        Sample(randn(rng, 3, 4), 3, name="int_exp_negative_base"),
                        Sample(positive(rng, 5), 0.5, name="sqrt")],
           lambda a, s: a ** s),
    OpInfo("rpow_scalar", lambda a, s: s ** a, lambda a, s: s ** a,
           lambda rng: [Sample(randn(rng, 3, 4), 2.0)], lambda a, s: s ** a),
    OpInfo("add_alpha", lambda a, b: genesis.add(a, b, alpha=0.5), lambda a, b: a + 0.5 * b,
           binary_samples(), (lambda a, b: torch.add(a, b, alpha=0.5)) if torch else None),
    OpInfo("clamp", lambda x: genesis.clamp(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7),
           unary_samples(lambda rng, *s: away_from(rng, *s, points=(-0.5, 0.7), margin=0.05)),
           (lambda x: torch.clamp(x, -0.5, 0.7)) if torch else None),
    OpInfo("clamp_min", lambda x: genesis.clamp(x, min=0.1), lambda x: np.maximum(x, 0.1),
           unary_samples(lambda rng, *s: away_from(rng, *s, points=(0.1,), margin=0.05)),
           (lambda x: torch.clamp(x, min=0.1)) if torch else None),
    OpInfo("where", lambda c, a, b: genesis.where(c, a, b), lambda c, a, b: np.where(c, a, b),
           lambda rng: [Sample(randn(rng, 3, 4) > 0, randn(rng, 3, 4), randn(rng, 3, 4)),
                        Sample(randn(rng, 3, 1) > 0, randn(rng, 4), randn(rng, 3, 4),
                               name="bcast")],
           (lambda c, a, b: torch.where(c, a, b)) if torch else None),
    OpInfo("masked_fill", lambda x, m: genesis.masked_fill(x, m, -2.0),
           lambda x, m: np.where(m, -2.0, x),
           lambda rng: [Sample(randn(rng, 3, 4), randn(rng, 3, 4) > 0),
                        Sample(randn(rng, 2, 3, 4), randn(rng, 1, 4) > 0, name="bcast")],
           (lambda x, m: x.masked_fill(m, -2.0)) if torch else None),
    OpInfo("lerp", genesis.lerp, lambda a, b, w: a + w * (b - a),
           lambda rng: [Sample(randn(rng, 3, 4), randn(rng, 3, 4), randn(rng, 3, 4))],
           _t("lerp")),
    OpInfo("to_float32_and_back", lambda x: x.float().double(),
           lambda x: x.astype(np.float32).astype(np.float64),
           unary_samples(), (lambda x: x.float().double()) if torch else None,
           atol=1e-6, rtol=1e-6, gradcheck=False),
    OpInfo("clone", genesis.clone, np.copy, unary_samples(), _t("clone")),
]

_CMP = ["eq", "ne", "lt", "le", "gt", "ge"]
OPS += [OpInfo(name, getattr(genesis, name), getattr(np, {"eq": "equal", "ne": "not_equal",
                                                          "lt": "less", "le": "less_equal",
                                                          "gt": "greater",
                                                          "ge": "greater_equal"}[name]),
               lambda rng: [Sample(rng.integers(0, 3, (3, 4)).astype(float),
                                   rng.integers(0, 3, (4,)).astype(float))],
               _t(name), grad=False) for name in _CMP]
