"""Routing strategies, load-balancing losses, capacity and the fused expert dispatch."""
import itertools
import math

import numpy as np
import pytest

import genesis
from genesis.models.transformers import MoEConfig, MoEForCausalLM
from genesis.models.transformers.modeling_moe import MoESparseBlock
from genesis.models.transformers import routing as routing_module
from genesis.models.transformers.routing import (MoERouter, Router, build_router,
                                                 capacity_keep_mask, expert_capacity,
                                                 group_limited_scores, router_z_loss,
                                                 routing_metrics, sequence_load_balancing_loss,
                                                 switch_load_balancing_loss)


def _config(**kw):
    base = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, num_local_experts=8,
                num_experts_per_tok=2, moe_intermediate_size=16)
    base.update(kw)
    return MoEConfig(**base)


def _router(seed=0, **kw):
    genesis.manual_seed(seed)
    router = MoERouter(_config(**kw))
    genesis.nn.init.normal_(router.weight, 0.0, 0.2)
    return router


def _hidden(n=24, d=32, seed=1):
    return genesis.tensor(np.random.default_rng(seed).standard_normal((n, d)),
                          dtype=genesis.float32)


def _np(t):
    return t.detach().numpy()


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- selection
class TestTopKSelection:
    def test_weights_sum_to_one_with_norm(self):
        out = _router(norm_topk_prob=True)(_hidden())
        np.testing.assert_allclose(_np(out.topk_weights).sum(-1), 1.0, rtol=1e-6)
        assert out.topk_weights.dtype is genesis.float32

    def test_topk_are_the_largest_scores(self):
        router = _router(norm_topk_prob=False, num_experts_per_tok=3)
        out = router(_hidden())
        logits = _np(out.router_logits)
        probs = _softmax(logits.astype(np.float64))
        ids = _np(out.topk_ids)
        assert ids.shape == (24, 3) and ids.dtype == np.int64
        for row, picked in zip(probs, ids):
            assert len(set(picked)) == 3
            assert set(picked) == set(np.argsort(-row)[:3])
        np.testing.assert_allclose(_np(out.topk_weights),
                                   np.take_along_axis(probs, ids, -1), rtol=1e-5)
        assert (_np(out.topk_weights).sum(-1) < 1).all()

    def test_sigmoid_scoring_and_scaling_factor(self):
        router = _router(scoring_func="sigmoid", routed_scaling_factor=2.5, norm_topk_prob=True)
        out = router(_hidden())
        np.testing.assert_allclose(_np(out.topk_weights).sum(-1), 2.5, rtol=1e-6)
        scores = 1 / (1 + np.exp(-_np(out.router_logits).astype(np.float64)))
        np.testing.assert_allclose(_np(out.scores), scores, rtol=1e-5)
        unnormed = _router(scoring_func="sigmoid", routed_scaling_factor=2.5,
                           norm_topk_prob=False)(_hidden())
        np.testing.assert_allclose(_np(unnormed.topk_weights),
                                   2.5 * np.take_along_axis(scores, _np(unnormed.topk_ids), -1),
                                   rtol=1e-5)

    @pytest.mark.parametrize("n_group,topk_group,k", [(4, 2, 3), (4, 1, 2), (2, 1, 2)])
    def test_group_limited_matches_brute_force(self, n_group, topk_group, k):
        router = _router(topk_method="group_limited_greedy", n_group=n_group,
                         topk_group=topk_group, num_experts_per_tok=k, norm_topk_prob=False)
        out = router(_hidden(40))
        scores = _np(out.scores)
        per = 8 // n_group
        for row, picked in zip(scores, _np(out.topk_ids)):
            best = max(itertools.combinations(range(n_group), topk_group),
                       key=lambda gs: sorted((row[g * per:(g + 1) * per].max() for g in gs)))
            allowed = [e for g in best for e in range(g * per, (g + 1) * per)]
            want = sorted(allowed, key=lambda e: -row[e])[:k]
            assert set(picked) == set(want)
        np.testing.assert_allclose(_np(out.topk_weights),
                                   np.take_along_axis(scores, _np(out.topk_ids), -1), rtol=1e-6)

    def test_group_mask_uses_zero_like_hf(self):
        scores = genesis.tensor([[0.9, 0.1, 0.2, 0.3]])
        masked = group_limited_scores(scores, 2, 1).numpy()
        np.testing.assert_allclose(masked, [[0.9, 0.1, 0.0, 0.0]], rtol=1e-6)

    def test_router_weight_gets_gradient(self):
        router = _router()
        out = router(_hidden())
        (out.topk_weights * genesis.tensor(np.arange(48.0).reshape(24, 2),
                                           dtype=genesis.float32)).sum().backward()
        assert router.weight.grad is not None and np.abs(router.weight.grad.numpy()).sum() > 0

    def test_genesis_router_type_builds_the_energy_router_with_expert_slots(self):
        from genesis.models.transformers.genesis_router import GenesisRouter
        config = _config(router_type="genesis", genesis_max_new_experts=3)
        model = MoEForCausalLM(config)
        block = model.model.layers[1].mlp
        assert isinstance(block.gate, GenesisRouter) and block.gate.layer_idx == 1
        assert tuple(block.gate.weight.shape) == (11, 32)
        assert block.experts.num_experts == config.num_expert_slots == 11
        assert model.num_parameters() == config.num_parameters()
        ids = model(genesis.randint(0, 64, (2, 5)), output_router_logits=True).router_stats
        assert len(ids["expert_load"][0]) == 11 and sum(ids["expert_load"][0][8:]) == 0


# --------------------------------------------------------------------------- losses
class TestAuxLosses:
    @pytest.mark.parametrize("experts,k,layers", [(8, 2, 1), (4, 1, 3), (6, 3, 2)])
    def test_switch_aux_is_k_under_uniform_routing(self, experts, k, layers):
        logits = tuple(genesis.zeros(10, experts) for _ in range(layers))
        aux = switch_load_balancing_loss(logits, experts, k)
        assert aux.item() == pytest.approx(k, rel=1e-6)
        mask = genesis.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
        assert switch_load_balancing_loss(logits, experts, k, mask).item() == \
            pytest.approx(k, rel=1e-6)

    def test_switch_aux_by_hand(self):
        probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]])
        logits = genesis.tensor(np.log(probs), dtype=genesis.float32)
        aux = switch_load_balancing_loss((logits,), 3, 1)
        # top-1 picks e0, e1, e2, e0: f = [.5, .25, .25]; mean probs = [.375, .325, .3]
        assert aux.item() == pytest.approx(3 * (0.5 * 0.375 + 0.25 * 0.325 + 0.25 * 0.3), rel=1e-6)

    def test_switch_aux_pools_layers_and_ignores_padding(self):
        rng = np.random.default_rng(3)
        a, b = (rng.standard_normal((6, 4)) for _ in range(2))
        mask = np.array([[1, 1, 0], [0, 1, 1]])
        got = switch_load_balancing_loss((genesis.tensor(a), genesis.tensor(b)), 4, 2,
                                         genesis.tensor(mask)).item()
        kept = mask.reshape(-1).astype(bool)
        pooled = _softmax(np.concatenate([a[kept], b[kept]]))
        top = np.argsort(-pooled, axis=-1)[:, :2]
        frac = np.array([(top == e).any(-1).mean() for e in range(4)])
        assert got == pytest.approx(4 * (frac * pooled.mean(0)).sum(), rel=1e-5)

    def test_seq_aux_is_alpha_under_uniform_routing(self):
        scores = genesis.full((12, 8), 1 / 8)
        ids = genesis.tensor(np.tile([[0, 1]], (12, 1)))
        assert sequence_load_balancing_loss(scores, ids, 3, 8, alpha=0.001).item() == \
            pytest.approx(0.001, rel=1e-6)
        router = _router(seq_aux=True)
        genesis.nn.init.zeros_(router.weight)
        out = router(_hidden(12), batch_size=3, compute_aux=True)
        assert out.seq_aux_loss.item() == pytest.approx(1.0, rel=1e-6)

    def test_seq_aux_by_hand(self):
        probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]])
        ids = genesis.tensor([[0], [1], [2], [0]])
        aux = sequence_load_balancing_loss(genesis.tensor(probs), ids, 2, 3, alpha=1.0)
        # ce = 3/2 * counts; batch 0: [1.5, 1.5, 0].[.3, .45, .25] = 1.125
        # batch 1: [1.5, 0, 1.5].[.45, .2, .35] = 1.2
        assert aux.item() == pytest.approx((1.125 + 1.2) / 2, rel=1e-6)

    def test_seq_aux_gradient_flows_to_scores_only(self):
        scores = genesis.tensor(np.full((4, 3), 1 / 3), requires_grad=True)
        aux = sequence_load_balancing_loss(scores, genesis.tensor([[0], [1], [2], [0]]), 2, 3)
        aux.backward()
        ce = np.array([[1.5, 1.5, 0], [1.5, 1.5, 0], [1.5, 0, 1.5], [1.5, 0, 1.5]])
        np.testing.assert_allclose(scores.grad.numpy(), ce / 2 / 2, rtol=1e-6)

    def test_z_loss(self):
        assert router_z_loss((genesis.zeros(5, 4),)).item() == pytest.approx(math.log(4) ** 2)
        logits = np.random.default_rng(0).standard_normal((6, 4))
        lse = np.log(np.exp(logits).sum(-1))
        assert router_z_loss((genesis.tensor(logits),)).item() == \
            pytest.approx((lse ** 2).mean(), rel=1e-6)


# --------------------------------------------------------------------------- capacity
class TestCapacity:
    def test_capacity_formula(self):
        assert expert_capacity(10, 4, 2, 1.0) == 5
        assert expert_capacity(10, 4, 2, 1.25) == 7

    def test_keep_mask_prefers_earlier_tokens(self):
        ids = genesis.tensor([[0, 1], [0, 2], [0, 1], [3, 0]])
        keep = capacity_keep_mask(ids, 4, 2)
        np.testing.assert_array_equal(keep, [[True, True], [True, True], [False, True],
                                             [True, False]])

    def test_router_respects_capacity(self):
        router = _router(capacity_factor=1.0, norm_topk_prob=True)
        genesis.nn.init.zeros_(router.weight)
        with genesis.no_grad():
            router.weight[3] = 5.0
        x = genesis.tensor(np.abs(np.random.default_rng(0).standard_normal((16, 32))),
                           dtype=genesis.float32)
        out = router(x)
        ids, w, sent = _np(out.topk_ids), _np(out.topk_weights), _np(out.dispatched)
        assert out.selected is None and (ids >= 0).all()      # every slot chosen, ids valid
        cap = expert_capacity(16, 8, 2, 1.0)
        counts = np.bincount(ids[sent], minlength=8)
        assert counts.max() <= cap and counts[3] == cap
        dropped = ~sent
        assert dropped.any() and (w[dropped] == 0).all()
        first_drop = np.nonzero(dropped.any(-1))[0].min()
        assert first_drop >= cap        # the first `cap` tokens keep their expert-3 slot
        stats = routing_metrics(out, 8)
        assert stats["dropped_fraction"] == pytest.approx(dropped.mean())
        assert stats["active_experts_per_token"] == pytest.approx(2 - dropped.sum() / 16)
        assert stats["expert_load"][3] == pytest.approx(cap / sent.sum())

    def test_dropped_pairs_contribute_nothing(self):
        genesis.manual_seed(0)
        config = _config(capacity_factor=0.5)
        block = MoESparseBlock(config)
        for p in block.parameters():
            genesis.nn.init.normal_(p, 0.0, 0.5)
        x = genesis.randn(2, 8, 32)
        y, routing = block(x)
        flat = x.reshape(16, 32)
        assert not _np(routing.dispatched).all()
        want = genesis.moe_experts(flat, routing.topk_ids, routing.topk_weights,
                                   block.experts.gate_up_proj, block.experts.down_proj)
        np.testing.assert_allclose(_np(y).reshape(16, 32), _np(want), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- dispatch
def _dense_reference(x, ids, w, gate_up, down):
    """Every expert on every token (genesis ops), masked by a dense routing matrix."""
    inter = gate_up.shape[1] // 2
    h = genesis.einsum("nd,eod->neo", x, gate_up)
    a = genesis.nn.functional.silu(h[..., :inter]) * h[..., inter:]
    y = genesis.einsum("nei,edi->ned", a, down)
    comb = genesis.scatter_add(genesis.zeros(x.shape[0], gate_up.shape[0], dtype=x.dtype), 1,
                               ids, w)
    return (comb.unsqueeze(-1) * y).sum(1)


class TestDispatch:
    def test_matches_dense_reference_forward_and_gradients(self):
        rng = np.random.default_rng(0)
        n, d, e, inter, k = 48, 12, 8, 10, 2
        ids = np.stack([rng.permutation(6)[:k] for _ in range(n)])    # experts 6, 7 idle
        arrays = [rng.standard_normal((n, d)), rng.uniform(0.1, 1, (n, k)),
                  rng.standard_normal((e, 2 * inter, d)) * 0.3,
                  rng.standard_normal((e, d, inter)) * 0.3]
        grads = []
        for fn in (genesis.moe_experts, _dense_reference):
            x, w, gu, dn = (genesis.tensor(a, requires_grad=True) for a in arrays)
            out = fn(x, genesis.tensor(ids), w, gu, dn)
            (out * genesis.tensor(np.cos(np.arange(n * d)).reshape(n, d))).sum().backward()
            grads.append([_np(out)] + [t.grad.numpy() for t in (x, w, gu, dn)])
        for got, want in zip(*grads):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        assert not grads[0][3][6:].any() and not grads[0][4][6:].any()

    def test_float32_and_errors(self):
        x = genesis.randn(4, 6)
        gu, dn = genesis.randn(3, 8, 6), genesis.randn(3, 6, 4)
        ids = genesis.tensor([[0, 1], [1, 2], [2, 0], [0, 1]])
        out = genesis.moe_experts(x, ids, genesis.ones(4, 2), gu, dn)
        assert out.dtype is genesis.float32 and tuple(out.shape) == (4, 6)
        with pytest.raises(ValueError, match="only 3 experts"):
            genesis.moe_experts(x, ids + 1, genesis.ones(4, 2), gu, dn)
        with pytest.raises(ValueError, match="gate_up_proj"):
            genesis.moe_experts(x, ids, genesis.ones(4, 2), genesis.randn(3, 8, 5), dn)
        with pytest.raises(ValueError, match="topk_ids"):
            genesis.moe_experts(x, ids[:3], genesis.ones(3, 2), gu, dn)
        with pytest.raises(TypeError, match="integer"):
            genesis.moe_experts(x, ids.float(), genesis.ones(4, 2), gu, dn)
        with pytest.raises(ValueError, match="activation"):
            genesis.moe_experts(x, ids, genesis.ones(4, 2), gu, dn, activation="tanh")

    def test_bfloat16_keeps_dtype(self):
        rng = np.random.default_rng(1)
        arrays = [rng.standard_normal((6, 8)), rng.standard_normal((3, 10, 8)) * 0.3,
                  rng.standard_normal((3, 8, 5)) * 0.3]
        ids = genesis.tensor([[0, 1], [1, 2], [2, 0], [0, 1], [1, 2], [2, 0]])
        w = genesis.full((6, 2), 0.5)
        x, gu, dn = (genesis.tensor(a, dtype=genesis.bfloat16, requires_grad=True)
                     for a in arrays)
        out = genesis.moe_experts(x, ids, w, gu, dn)
        assert out.dtype is genesis.bfloat16
        out.float().sum().backward()
        assert x.grad.dtype is gu.grad.dtype is dn.grad.dtype is genesis.bfloat16
        ref = genesis.moe_experts(*(genesis.tensor(a, dtype=genesis.float32) for a in arrays[:1]),
                                  ids, w, *(genesis.tensor(a, dtype=genesis.float32)
                                            for a in arrays[1:]))
        np.testing.assert_allclose(_np(out.float()), _np(ref), rtol=0.05, atol=0.05)

    def test_jitter_noise_only_in_training(self):
        genesis.manual_seed(0)
        block = MoESparseBlock(_config(router_jitter_noise=0.1))
        for p in block.parameters():
            genesis.nn.init.normal_(p, 0.0, 0.5)
        x = genesis.randn(1, 6, 32)
        block.eval()
        np.testing.assert_array_equal(_np(block(x)[0]), _np(block(x)[0]))
        block.train()
        assert not np.allclose(_np(block(x)[0]), _np(block(x)[0]))


# --------------------------------------------------------------------------- metrics
class TestRoutingMetrics:
    def test_by_hand(self):
        ids = genesis.tensor([[0, 1], [0, 2], [0, 1], [2, 0]])
        out = routing_module.RouterOutput(
            ids, genesis.ones(4, 2), genesis.zeros(4, 4), genesis.zeros(4, 4),
            selected=genesis.tensor([[True, True], [True, False], [True, True], [True, True]]),
            dispatched=genesis.tensor([[True, True], [True, False], [True, False],
                                       [True, True]]),
            live_experts=np.array([0, 1, 2]))
        m = routing_metrics(out, 4, capacity_factor=1.0)
        # dispatched pairs: e0 x3 (rows 0,1,2) + e0 (row 3) = 4, e1 x1, e2 x1 -> 6 pairs
        np.testing.assert_allclose(m["expert_load"], [4 / 6, 1 / 6, 1 / 6, 0])
        assert m["active_experts_per_token"] == pytest.approx(6 / 4)
        assert m["dropped_fraction"] == pytest.approx(1 / 7)     # 7 selected, 1 dropped
        live = np.array([4, 1, 1]) / 6
        assert m["load_cv"] == pytest.approx(live.std() / live.mean())
        assert m["load_imbalance"] == pytest.approx(3 * 4 / 6)
        assert m["min_fair_share"] == pytest.approx(3 / 6)
        assert m["starved_fraction"] == 0.0 and m["experts_alive"] == 3
        assert m["overflow_fraction"] == pytest.approx((4 - 3) / 6)     # cap = ceil(4*2/3)
        assert "ssi" not in m

    def test_every_router_reports_the_same_metrics(self):
        keys = None
        for router_type in ("topk", "genesis"):
            genesis.manual_seed(0)
            model = MoEForCausalLM(_config(router_type=router_type))
            stats = model(genesis.randint(0, 64, (2, 6)), output_router_logits=True).router_stats
            shared = {"expert_load", "active_experts_per_token", "dropped_fraction", "load_cv",
                      "load_imbalance", "min_fair_share", "starved_fraction",
                      "overflow_fraction", "ssi", "experts_alive"}
            assert shared <= set(stats)
            assert all(len(v) == 2 for v in stats.values())
            keys = set(stats) if keys is None else keys
        assert {"energy", "cost_potential_spread"} <= set(stats) - keys


# --------------------------------------------------------------------------- strategy interface
class _HalvingRouter(MoERouter):
    """A test strategy: top-k routing, a fixed loss term, and a counter of state updates."""

    updates = 0

    @classmethod
    def has_training_loss(cls, config):
        return True

    @classmethod
    def training_losses(cls, config, routings, token_mask=None):
        term = genesis.tensor(0.5)
        return [term], term, None

    def update_state(self, experts, optimizer=None, generator=None):
        type(self).updates += 1
        return (0, 1) if type(self).updates == 1 else None


class TestStrategyInterface:
    def test_one_place_builds_routers_and_unknown_types_fail(self):
        assert isinstance(build_router(_config()), MoERouter)
        config = _config()
        config.router_type = "nope"
        with pytest.raises(ValueError, match="unknown router_type 'nope'; registered"):
            build_router(config)

    def test_the_model_only_talks_to_the_router_interface(self, monkeypatch):
        monkeypatch.setitem(routing_module._ROUTERS, "topk", _HalvingRouter)
        genesis.manual_seed(0)
        model = MoEForCausalLM(_config())
        assert all(isinstance(layer.mlp.gate, _HalvingRouter) for layer in model.model.layers)
        ids = genesis.randint(0, 64, (2, 6))
        model.train()
        out = model(ids, labels=ids, return_dict=True)
        model.eval()
        plain = model(ids, labels=ids)[0]
        assert out.loss.item() == pytest.approx(plain.item() + 0.5, rel=1e-6)
        assert out.aux_loss.item() == 0.5
        births = model.update_router_state()
        assert births == [{"layer": 0, "parent": 0, "child": 1}] and _HalvingRouter.updates == 2
        assert isinstance(model.model.layers[0].mlp.gate, Router)


# --------------------------------------------------------------------------- causality
def _causal_model(router_type, seed=0):
    """A small model with sharp routing; the Genesis router gets a nonzero cost potential and
    multiplicity offsets so that its whole state takes part."""
    genesis.manual_seed(seed)
    model = MoEForCausalLM(_config(router_type=router_type, num_hidden_layers=2))
    rng = np.random.default_rng(seed)
    for layer in model.model.layers:
        gate = layer.mlp.gate
        genesis.nn.init.normal_(gate.weight, 0.0, 0.5)
        if router_type == "genesis":
            gate.reset_state()
            gate.cost_potential._array[:8] = rng.normal(0, 0.5, 8)
            gate.multiplicity_offset._array[:8] = rng.uniform(0, 0.5, 8)
    return model


def _routing(model, ids, **kw):
    with genesis.no_grad():
        out = model.model(ids, **kw)
    return [(_np(r.topk_ids), _np(r.topk_weights)) for r in out.router_outputs], out


@pytest.mark.parametrize("router_type", ["topk", "genesis"])
class TestCausality:
    @pytest.mark.parametrize("mode", ["train", "eval"])
    def test_later_tokens_never_change_earlier_logits_or_state(self, router_type, mode):
        model = _causal_model(router_type)
        getattr(model, mode)()
        state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        rng = np.random.default_rng(1)
        a = rng.integers(0, 64, (4, 24))
        b = a.copy()
        b[:, 12:] = rng.integers(0, 64, (4, 12))
        with genesis.no_grad():
            la = _np(model(genesis.tensor(a)))
            lb = _np(model(genesis.tensor(b)))
        assert np.abs(la[:, 12:] - lb[:, 12:]).max() > 1e-3        # the change is visible
        np.testing.assert_allclose(la[:, :12], lb[:, :12], rtol=0, atol=1e-5)
        ra, _ = _routing(model, genesis.tensor(a))
        rb, _ = _routing(model, genesis.tensor(b))
        for (ia, wa), (ib, wb) in zip(ra, rb):
            np.testing.assert_array_equal(ia[:4 * 24].reshape(4, 24, -1)[:, :12],
                                          ib.reshape(4, 24, -1)[:, :12])
        for key, value in model.state_dict().items():   # a forward never moves the state
            np.testing.assert_array_equal(value.numpy(), state[key], err_msg=key)

    def test_a_prompt_routes_the_same_alone_and_left_padded_in_a_batch(self, router_type):
        model = _causal_model(router_type).eval()
        rng = np.random.default_rng(2)
        prompt = rng.integers(1, 64, 7)
        alone, out_alone = _routing(model, genesis.tensor(prompt[None]))
        batch = np.zeros((2, 10), dtype=np.int64)
        batch[0, 3:] = prompt
        batch[1] = rng.integers(1, 64, 10)
        mask = np.ones((2, 10), dtype=np.int64)
        mask[0, :3] = 0
        positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
        padded, out_padded = _routing(model, genesis.tensor(batch),
                                      attention_mask=genesis.tensor(mask),
                                      position_ids=genesis.tensor(positions))
        for (ia, wa), (ip, wp) in zip(alone, padded):
            np.testing.assert_array_equal(ia, ip.reshape(2, 10, -1)[0, 3:])
            np.testing.assert_allclose(wa, wp.reshape(2, 10, -1)[0, 3:], atol=1e-5)
        np.testing.assert_allclose(_np(out_alone.last_hidden_state)[0],
                                   _np(out_padded.last_hidden_state)[0, 3:], atol=1e-4)

    def test_cached_and_uncached_generation_route_the_same(self, router_type):
        model = _causal_model(router_type).eval()
        prompt = genesis.tensor(np.random.default_rng(3).integers(1, 64, (1, 5)))
        cached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True)
        uncached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False)
        np.testing.assert_array_equal(_np(cached), _np(uncached))
        full, _ = _routing(model, cached)
        steps, out = _routing(model, cached[:, :5], use_cache=True)
        per_token = [steps]
        for i in range(5, cached.shape[1]):
            step, out = _routing(model, cached[:, i:i + 1], past_key_values=out.past_key_values,
                                 use_cache=True)
            per_token.append(step)
        for layer, (ids, weights) in enumerate(full):
            inc_ids = np.concatenate([p[layer][0] for p in per_token])
            inc_w = np.concatenate([p[layer][1] for p in per_token])
            np.testing.assert_array_equal(ids, inc_ids)
            np.testing.assert_allclose(weights, inc_w, atol=1e-5)
