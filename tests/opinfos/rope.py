"""Fused rotary position embedding."""
import numpy as np

import genesis
from tests.opinfo import OpInfo, Sample
from tests.opinfos._samples import randn


def _rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def _ref(x, cos, sin):
    return x * cos + _rotate_half(x) * sin


def _torch_ref(x, cos, sin):
    import torch
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def _samples(rng):
    angles = rng.uniform(0, 6.3, (1, 1, 5, 4))
    table = np.concatenate([angles, angles], axis=-1)
    return [Sample(randn(rng, 2, 3, 5, 8), np.cos(table), np.sin(table), name="heads_bcast"),
            Sample(randn(rng, 5, 8), np.cos(table[0, 0]), np.sin(table[0, 0]), name="plain"),
            Sample(np.ascontiguousarray(randn(rng, 2, 5, 3, 8)).transpose(0, 2, 1, 3),
                   np.cos(table), np.sin(table), name="noncontig")]


OPS = [OpInfo("rotary_embedding", genesis.rotary_embedding, _ref, _samples, _torch_ref)]
