"""The CPU attention paths: causal attention without autograd runs query blocks over only the
keys they see; it must equal the full score-matrix path that training uses."""
import numpy as np
import pytest

import genesis
import genesis.nn.functional as F
from genesis.ops.nn import CAUSAL_BLOCK
from tests.opinfos.nn import _sdpa_ref


@pytest.mark.parametrize("heads,kv_heads,rows,keys", [(6, 2, 2 * CAUSAL_BLOCK + 3, None),
                                                      (2, 2, 2 * CAUSAL_BLOCK, None),
                                                      (3, 1, 3 * CAUSAL_BLOCK, 2 * CAUSAL_BLOCK)])
def test_blocked_causal_inference_equals_full_path(heads, kv_heads, rows, keys):
    rng = np.random.default_rng(0)
    keys = rows if keys is None else keys
    q = rng.standard_normal((2, heads, rows, 8))
    k = rng.standard_normal((2, kv_heads, keys, 8))
    v = rng.standard_normal((2, kv_heads, keys, 5))
    gqa = heads != kv_heads
    expected = _sdpa_ref(q, k, v, is_causal=True, enable_gqa=gqa)
    with genesis.no_grad():
        blocked = F.scaled_dot_product_attention(genesis.tensor(q), genesis.tensor(k),
                                                 genesis.tensor(v), is_causal=True,
                                                 enable_gqa=gqa).numpy()
    tq = genesis.tensor(q, requires_grad=True)
    full = F.scaled_dot_product_attention(tq, genesis.tensor(k), genesis.tensor(v),
                                          is_causal=True, enable_gqa=gqa)
    np.testing.assert_allclose(blocked, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(full.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
