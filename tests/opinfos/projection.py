"""Merged linear projections (fused QKV / gate-up) against separate linears."""
import numpy as np

import genesis
from tests.opinfo import OpInfo, Sample
from tests.opinfos._samples import noncontig, randn


def _split(params, biased):
    n = len(params) // 2 if biased else len(params)
    return params[:n], params[n:]


def _op(x, *params, biased=False):
    weights, biases = _split(params, biased)
    return genesis.merged_linear(x, weights, biases or None)


def _ref(x, *params, biased=False):
    weights, biases = _split(params, biased)
    biases = biases or (0,) * len(weights)
    return np.concatenate([x @ w.T + b for w, b in zip(weights, biases)], axis=-1)


def _torch_ref(x, *params, biased=False):
    import torch
    weights, biases = _split(params, biased)
    biases = biases or (None,) * len(weights)
    return torch.cat([torch.nn.functional.linear(x, w, b) for w, b in zip(weights, biases)],
                     dim=-1)


def _samples(rng):
    return [
        Sample(randn(rng, 4, 6), randn(rng, 3, 6), randn(rng, 5, 6), name="two"),
        Sample(randn(rng, 2, 3, 6), randn(rng, 3, 6), randn(rng, 2, 6), randn(rng, 4, 6),
               randn(rng, 3), randn(rng, 2), randn(rng, 4), biased=True, name="qkv_bias"),
        Sample(randn(rng, 6), randn(rng, 3, 6), name="one_vector"),
        Sample(noncontig(rng, 5, 6), noncontig(rng, 2, 6), randn(rng, 2, 6),
               name="noncontig"),
    ]


OPS = [OpInfo("merged_linear", _op, _ref, _samples, _torch_ref)]
