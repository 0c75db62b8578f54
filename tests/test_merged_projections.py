"""Fused QKV and gate/up projections: one GEMM over weights packed as row blocks of one array,
never stale (loading, optimizer steps, rebinding, dtype conversion, copies), same logits and
gradients as the separate layers."""
import copy

import numpy as np
import pytest

import genesis
from genesis.models.transformers import MoEConfig, MoEForCausalLM
from genesis.models.transformers.modeling_moe import MergedProjections
from genesis.nn import Linear
from genesis.ops.projection import pack_rows


def _config(model_type="llama", **extra):
    return MoEConfig(model_type=model_type, vocab_size=61, hidden_size=24, intermediate_size=40,
                     num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                     max_position_embeddings=64, initializer_range=0.3, **extra)


def _model(model_type="llama", seed=0, dtype=None, **extra):
    genesis.manual_seed(seed)
    with genesis.dtypes.default_dtype(dtype):
        return MoEForCausalLM(_config(model_type, **extra))


def _merged(model):
    """Every (owner module, MergedProjections) pair of the model."""
    return [(m, v) for m in model.modules() for v in vars(m).values()
            if isinstance(v, MergedProjections)]


def _separate(owner, merged, x):
    return genesis.cat([owner._modules[n](x) for n in merged.names], dim=-1)


def _unfuse(model):
    """Force every merged projection onto its per-layer path (a hook on each first layer)."""
    for owner, merged in _merged(model):
        owner._modules[merged.names[0]].register_forward_hook(lambda m, args, out: None)


def _assert_packed(model):
    """Each packed array is exactly the concatenation of the current weights (not stale)."""
    for owner, merged in _merged(model):
        weights = [owner._modules[n].weight._array for n in merged.names]
        assert merged.weight_rows.concat(np, weights) is merged.weight_rows.array
        np.testing.assert_array_equal(merged.weight_rows.array, np.concatenate(weights))


def _ids():
    return genesis.tensor(np.random.default_rng(3).integers(0, 61, (2, 7)))


def test_pack_rows_shares_memory_and_falls_back_when_rebound():
    ts = [genesis.randn(3, 4), genesis.randn(2, 4)]
    before = np.concatenate([t.numpy() for t in ts])
    rows = pack_rows(ts)
    np.testing.assert_array_equal(rows.array, before)
    with genesis.no_grad():
        ts[1].mul_(2.0)
    assert rows.concat(np, [t._array for t in ts]) is rows.array
    np.testing.assert_array_equal(rows.array[3:], 2 * before[3:])
    ts[0].data = genesis.zeros(3, 4)
    fresh = rows.concat(np, [t._array for t in ts])
    assert fresh is not rows.array
    np.testing.assert_array_equal(fresh[:3], 0)


@pytest.mark.parametrize("model_type,extra", [("llama", {}), ("qwen2", {"attention_bias": True})])
def test_fused_logits_and_gradients_equal_separate_layers(model_type, extra):
    fused = _model(model_type, dtype=genesis.float64, **extra)
    plain = copy.deepcopy(fused)
    _unfuse(plain)
    ids = _ids()
    losses = []
    for model in (fused, plain):
        loss, logits = model(ids, labels=ids)
        loss.backward()
        losses.append((loss, logits))
    np.testing.assert_allclose(losses[0][1].detach().numpy(), losses[1][1].detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_fused_float32_logits_match_separate_layers():
    fused = _model()
    plain = copy.deepcopy(fused)
    _unfuse(plain)
    with genesis.no_grad():
        np.testing.assert_allclose(fused(_ids()).numpy(), plain(_ids()).numpy(), rtol=1e-5,
                                   atol=1e-5)


def test_not_stale_after_load_state_dict():
    model, other = _model(seed=0), _model(seed=1)
    model.load_state_dict(other.state_dict())
    _assert_packed(model)
    with genesis.no_grad():
        np.testing.assert_array_equal(model(_ids()).numpy(), other(_ids()).numpy())


@pytest.mark.parametrize("optimizer", ["SGD", "AdamW"])
def test_not_stale_after_optimizer_steps(optimizer):
    model = _model()
    opt = getattr(genesis.optim, optimizer)(model.parameters(), lr=0.1)
    ids = _ids()
    for _ in range(2):
        loss, _ = model(ids, labels=ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _assert_packed(model)
    plain = copy.deepcopy(model)
    _unfuse(plain)
    with genesis.no_grad():
        np.testing.assert_allclose(model(ids).numpy(), plain(ids).numpy(), rtol=1e-5, atol=1e-5)


def _rebind_q(attn):
    attn.q_proj.weight.data = genesis.randn(24, 24)


def _replace_k(attn):
    attn.k_proj = Linear(24, 8, bias=False)


def _hook_v(attn):
    attn.v_proj.register_forward_hook(lambda m, args, out: out * 2)


@pytest.mark.parametrize("change", [_rebind_q, _replace_k, _hook_v])
def test_rebound_replaced_and_hooked_layers_are_honoured(change):
    model = _model()
    attn = model.model.layers[0].self_attn
    x = genesis.randn(1, 3, 24)
    change(attn)
    with genesis.no_grad():
        got = attn.qkv(attn, x).numpy()
        q, k, v = (x.numpy() @ getattr(attn, n).weight.detach().numpy().T
                   for n in ("q_proj", "k_proj", "v_proj"))
    if change is _hook_v:
        v = 2 * v
    np.testing.assert_allclose(got, np.concatenate([q, k, v], -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("convert", [lambda m: m.to(genesis.float64), lambda m: m.double()])
def test_dtype_conversion_packs_again(convert):
    model = _model()
    ids = _ids()
    with genesis.no_grad():
        expected = model(ids).numpy().astype(np.float64)
    convert(model)
    _assert_packed(model)
    for owner, merged in _merged(model):
        assert merged.weight_rows.array.dtype == np.float64
    with genesis.no_grad():
        np.testing.assert_allclose(model(ids).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_deepcopy_is_independent_and_correct():
    model = _model()
    clone = copy.deepcopy(model)
    attn, clone_attn = model.model.layers[0].self_attn, clone.model.layers[0].self_attn
    with genesis.no_grad():
        clone_attn.v_proj.weight.add_(1.0)
    x = genesis.randn(1, 2, 24)
    with genesis.no_grad():
        for owner in (attn, clone_attn):
            np.testing.assert_allclose(owner.qkv(owner, x).numpy(),
                                       _separate(owner, owner.qkv, x).numpy(), rtol=1e-5,
                                       atol=1e-6)
        assert not np.allclose(attn.qkv(attn, x).numpy(), clone_attn.qkv(clone_attn, x).numpy())


def test_merged_linear_errors():
    x = genesis.randn(2, 4)
    with pytest.raises(ValueError, match="at least one weight"):
        genesis.merged_linear(x, [])
    with pytest.raises(RuntimeError, match=r"weights\[1\]"):
        genesis.merged_linear(x, [genesis.randn(3, 4), genesis.randn(3, 5)])
    with pytest.raises(ValueError, match="2 biases for 1 weights"):
        genesis.merged_linear(x, [genesis.randn(3, 4)], [genesis.randn(3), genesis.randn(3)])
    with pytest.raises(RuntimeError, match=r"biases\[1\] of shape \(2,\)"):
        genesis.merged_linear(x, [genesis.randn(3, 4)] * 2, [genesis.randn(3), genesis.randn(2)])
    with pytest.raises(TypeError, match=r"biases\[0\]"):
        genesis.merged_linear(x, [genesis.randn(3, 4)], [None])


def test_attention_accepts_hf_and_broadcast_rope_tables():
    model = _model()
    attn = model.model.layers[0].self_attn
    x = genesis.randn(8, 3, 24)  # batch 8 = query + key heads: [B, S, D] would broadcast
    positions = np.arange(24).reshape(8, 3)
    cos, sin = model.model.rotary_emb(x, genesis.tensor(positions))
    with genesis.no_grad():
        hf_layout = attn(x, (cos, sin), None, True, None).numpy()
        ours = attn(x, (cos.unsqueeze(1), sin.unsqueeze(1)), None, True, None).numpy()
    np.testing.assert_array_equal(hf_layout, ours)
