"""Division with rounding, modulus, predicates, logical and bitwise ops, nan_to_num, casts."""
import numpy as np

import genesis
from tests.opinfo import OpInfo, Sample
from tests.opinfos._samples import randn, unary_samples

try:
    import torch
except ImportError:
    torch = None


def _t(fn):
    """``fn(torch)`` when torch is installed."""
    return fn(torch) if torch is not None else None


def _quotient_pairs(rng):
    """Float pairs whose quotient stays 0.2 away from integers (rounding is locally constant)."""
    def pair(*shape):
        b = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
        q = rng.integers(-4, 4, shape) + rng.uniform(0.2, 0.8, shape)
        return np.asarray(q * b), np.asarray(b)
    a, b = pair(3, 4)
    a3, _ = pair(2, 3, 4)
    _, b4 = pair(4)
    b4 = np.abs(b4) + 3.0
    a3 = np.asarray(rng.uniform(0.2, 0.8, (2, 3, 4)) * 3.0 + rng.integers(-3, 3, (2, 3, 4)) * 4.0)
    return [Sample(a, b, name="same"), Sample(a3, np.full(4, 4.0), name="bcast_row"),
            Sample(a, 1.3, name="python_scalar")]


def _int_pairs(rng):
    a = rng.integers(-20, 20, (3, 4))
    b = rng.integers(1, 6, (3, 4)) * rng.choice([-1, 1], (3, 4))
    return [Sample(a, b, name="same"), Sample(a, np.array([3, -3, 7, -7]), name="bcast"),
            Sample(a, 4, name="python_scalar"), Sample(np.array([-7, 7, 0]), -2, name="signs")]


def _trunc_div_ref(a, b):
    return np.trunc(np.true_divide(a, b)).astype(np.result_type(a, b))


def _special_values(rng, *shape):
    x = randn(rng, *shape)
    flat = x.reshape(-1)
    if flat.size >= 3:
        flat[:3] = [np.nan, np.inf, -np.inf]
    return x


def _logic_samples(rng):
    return [Sample(rng.standard_normal((3, 4)) > 0, rng.standard_normal((3, 4)) > 0, name="bool"),
            Sample(rng.integers(0, 2, (3, 4)).astype(np.float64),
                   rng.integers(0, 2, (4,)).astype(np.float64), name="float_bcast"),
            Sample(rng.integers(-2, 3, (2, 3)), rng.integers(-2, 3, (2, 3)), name="int")]


def _bit_samples(rng):
    return [Sample(rng.integers(-50, 50, (3, 4)), rng.integers(-50, 50, (4,)), name="int"),
            Sample(rng.standard_normal((3, 4)) > 0, rng.standard_normal((3, 4)) > 0, name="bool"),
            Sample(rng.integers(0, 255, (5,)).astype(np.uint8), 0x0F, name="uint8_scalar")]


def _close_samples(rng):
    a = randn(rng, 3, 4)
    b = a + rng.choice([0.0, 1e-9, 1e-3], (3, 4))
    nan = np.array([np.nan, 1.0, np.inf])
    return [Sample(a, b, name="near"), Sample(a, a.copy(), name="equal"),
            Sample(a, b, rtol=1e-2, atol=0.0, name="loose_rtol"),
            Sample(nan, nan.copy(), name="nan"),
            Sample(nan, nan.copy(), equal_nan=True, name="nan_equal")]


def _equal_samples(rng):
    a = randn(rng, 3, 4)
    b = a.copy()
    b[1, 2] += 1e-12
    return [Sample(a, a.copy(), name="same"), Sample(a, b, name="differ"),
            Sample(a, a[:2].copy(), name="shapes_differ")]


OPS = [
    # torch's floor_divide raises in backward; genesis gives it the zero gradient of torch's
    # div(rounding_mode="floor"), which is therefore the torch oracle of both rows.
    OpInfo("floor_divide", genesis.floor_divide, np.floor_divide, _quotient_pairs,
           _t(lambda t: lambda a, b: t.div(a, b, rounding_mode="floor"))),
    OpInfo("floordiv_operator", lambda a, b: a // b, np.floor_divide, _quotient_pairs,
           _t(lambda t: lambda a, b: t.div(a, b, rounding_mode="floor"))),
    OpInfo("floor_divide_int", genesis.floor_divide, np.floor_divide, _int_pairs,
           _t(lambda t: t.floor_divide), grad=False),
    OpInfo("div_floor", lambda a, b: genesis.div(a, b, rounding_mode="floor"), np.floor_divide,
           _quotient_pairs, _t(lambda t: lambda a, b: t.div(a, b, rounding_mode="floor"))),
    OpInfo("div_trunc", lambda a, b: genesis.div(a, b, rounding_mode="trunc"), _trunc_div_ref,
           _quotient_pairs, _t(lambda t: lambda a, b: t.div(a, b, rounding_mode="trunc"))),
    OpInfo("div_floor_int", lambda a, b: genesis.div(a, b, rounding_mode="floor"),
           np.floor_divide, _int_pairs,
           _t(lambda t: lambda a, b: t.div(a, b, rounding_mode="floor")), grad=False),
    OpInfo("div_trunc_int", lambda a, b: genesis.div(a, b, rounding_mode="trunc"),
           _trunc_div_ref, _int_pairs,
           _t(lambda t: lambda a, b: t.div(a, b, rounding_mode="trunc")), grad=False),
    OpInfo("true_divide", genesis.true_divide, np.true_divide,
           lambda rng: [Sample(randn(rng, 3, 4), rng.uniform(0.5, 2, (4,))),
                        Sample(rng.integers(-9, 9, (3,)).astype(np.float64), 2.0, name="scalar")],
           _t(lambda t: t.true_divide)),
    OpInfo("fmod", genesis.fmod, np.fmod, _quotient_pairs, _t(lambda t: t.fmod)),
    OpInfo("fmod_int", genesis.fmod, np.fmod, _int_pairs, _t(lambda t: t.fmod), grad=False),
    OpInfo("remainder_int", genesis.remainder, np.remainder, _int_pairs,
           _t(lambda t: t.remainder), grad=False),
    OpInfo("mod_operator", lambda a, b: a % b, np.remainder, _quotient_pairs, lambda a, b: a % b),
    OpInfo("frac", genesis.frac, lambda x: x - np.trunc(x),
           unary_samples(lambda rng, *s: np.asarray(rng.integers(-3, 3, s)
                                                    + rng.uniform(0.1, 0.9, s))),
           _t(lambda t: t.frac)),
    OpInfo("nan_to_num", lambda x, **kw: genesis.nan_to_num(x, **kw),
           lambda x, **kw: np.nan_to_num(x, **kw),
           lambda rng: [Sample(_special_values(rng, 3, 4), nan=0.5, posinf=9.0, neginf=-9.0),
                        Sample(randn(rng, 5), name="finite")],
           _t(lambda t: t.nan_to_num)),
    OpInfo("nan_to_num_defaults", genesis.nan_to_num, np.nan_to_num,
           lambda rng: [Sample(_special_values(rng, 4)),
                        Sample(_special_values(rng, 4).astype(np.float32), name="float32")],
           _t(lambda t: t.nan_to_num), grad=False),
    OpInfo("isnan", genesis.isnan, np.isnan, unary_samples(_special_values), _t(lambda t: t.isnan),
           grad=False),
    OpInfo("isinf", genesis.isinf, np.isinf, unary_samples(_special_values), _t(lambda t: t.isinf),
           grad=False),
    OpInfo("isfinite", genesis.isfinite, np.isfinite, unary_samples(_special_values),
           _t(lambda t: t.isfinite), grad=False),
    OpInfo("isclose", lambda a, b, **kw: genesis.isclose(a, b, **kw),
           lambda a, b, **kw: np.isclose(a, b, **kw), _close_samples, _t(lambda t: t.isclose),
           grad=False),
    OpInfo("allclose", lambda a, b, **kw: genesis.allclose(a, b, **kw),
           lambda a, b, **kw: np.allclose(a, b, **kw), _close_samples, _t(lambda t: t.allclose),
           grad=False),
    OpInfo("equal", genesis.equal, np.array_equal, _equal_samples, _t(lambda t: t.equal),
           grad=False),
    OpInfo("logical_not", genesis.logical_not, np.logical_not,
           lambda rng: [Sample(s.args[0], name=s.name) for s in _logic_samples(rng)],
           _t(lambda t: t.logical_not), grad=False),
    OpInfo("clip", lambda x: genesis.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
           unary_samples(), _t(lambda t: lambda x: t.clip(x, -0.5, 0.5)), gradcheck=False),
    OpInfo("to_dtype", lambda x: genesis.to_dtype(genesis.to_dtype(x, genesis.float32),
                                                  genesis.float64),
           lambda x: x.astype(np.float32).astype(np.float64), unary_samples(),
           lambda x: x.to(torch.float32).to(torch.float64), atol=1e-6, rtol=1e-6,
           gradcheck=False),
    OpInfo("to_device", lambda x: genesis.to_device(genesis.to_device(x, "cpu"), x.device),
           np.copy, unary_samples(), lambda x: x.to("cpu").to(x.device)),
]
OPS += [OpInfo(name, getattr(genesis, name), getattr(np, name), _logic_samples,
               _t(lambda t, n=name: getattr(t, n)), grad=False)
        for name in ("logical_and", "logical_or", "logical_xor")]
OPS += [OpInfo(name, getattr(genesis, name), getattr(np, name), _bit_samples,
               _t(lambda t, n=name: getattr(t, n)), grad=False)
        for name in ("bitwise_and", "bitwise_or", "bitwise_xor")]
OPS.append(OpInfo("bitwise_not", genesis.bitwise_not, np.invert,
                  lambda rng: [Sample(s.args[0], name=s.name) for s in _bit_samples(rng)],
                  _t(lambda t: t.bitwise_not), grad=False))
