"""The pair dispatch and combine ops of expert parallelism against NumPy (one process)."""
import numpy as np

from genesis.models.transformers.expert_parallel import CombinePairs, DispatchPairs
from tests.opinfo import OpInfo, Sample

# Kept (token, slot) pairs of 5 tokens x top-2, sorted by expert: pairs 2 and 8 were dropped.
_ORDER = np.array([3, 0, 7, 1, 9, 4, 6, 5])
_K = 2


def _dispatch(hidden, order, k):
    return DispatchPairs.apply(hidden, order, k)


def _combine(y, weights, order):
    return CombinePairs.apply(y, weights, order)


def _combine_ref(y, weights, order):
    n, k = weights.shape
    out = np.zeros((n, y.shape[1]))
    for row, pair in enumerate(order):
        out[pair // k] += weights[pair // k, pair % k] * y[row]
    return out


def dispatch_samples(rng):
    """All pairs kept, and some dropped."""
    return [Sample(rng.standard_normal((5, 3)), _ORDER, _K, name="dropped"),
            Sample(rng.standard_normal((5, 3)), np.argsort(rng.random(10)), _K, name="all")]


def combine_samples(rng):
    return [Sample(rng.standard_normal((len(_ORDER), 3)), rng.random((5, _K)), _ORDER,
                   name="dropped")]


OPS = [OpInfo("expert_parallel.dispatch_pairs", _dispatch, lambda h, o, k: h[o // k],
              dispatch_samples, atol=1e-15, rtol=1e-15),
       OpInfo("expert_parallel.combine_pairs", _combine, _combine_ref, combine_samples,
              atol=1e-12, rtol=1e-12)]
