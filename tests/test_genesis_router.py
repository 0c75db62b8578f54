"""The Genesis energy-aware router: each formula against NumPy, state updates, mitosis, SSI,
gradients, training and checkpoints."""
import math

import numpy as np
import pytest

import genesis
from genesis.models.transformers import MoEConfig, MoEForCausalLM
from genesis.models.transformers.genesis_router import GenesisRouter, semantic_stability_index
from genesis.models.transformers.modeling_moe import MoESparseBlock


def _config(**kw):
    base = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                num_experts_per_tok=2, moe_intermediate_size=8, router_type="genesis",
                genesis_max_new_experts=2)
    base.update(kw)
    return MoEConfig(**base)


def _router(seed=0, std=0.5, **kw):
    genesis.manual_seed(seed)
    router = GenesisRouter(_config(**kw))
    genesis.nn.init.normal_(router.weight, 0.0, std)
    router.reset_state()
    return router.eval()


def _hidden(n=24, d=16, seed=1, dtype=genesis.float32):
    return genesis.tensor(np.random.default_rng(seed).standard_normal((n, d)), dtype=dtype)


def _np(t):
    return t.detach().numpy()


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _reference(router, x, mask=None):
    """The spec's steps 1-7 in float64 NumPy, one token at a time where that reads clearer."""
    cfg = router
    slots = np.nonzero(router.active.numpy())[0]
    w = _np(router.weight).astype(np.float64)[slots]
    c = router.centroids.numpy().astype(np.float64)[slots]
    n, k, e = x.shape[0], cfg.top_k, len(slots)
    mask = np.ones(n) if mask is None else mask.astype(np.float64)
    z = x @ w.T
    s = _unit(x) @ c.T
    bind = -(z + cfg.beta_bind * s)
    counts = np.zeros(e)
    for t in range(n):
        for j in np.argsort(bind[t], kind="stable")[:k]:
            counts[j] += mask[t]
    cap = max(1, math.ceil(cfg.capacity_factor * mask.sum() * k / e))
    cost = cfg.lambda_cost * np.maximum(counts - cap, 0) / cap
    h = bind + cost
    a = -h / cfg.tau
    p = np.exp(a - a.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ids = np.full((n, k), -1)
    weights = np.zeros((n, k))
    used = np.zeros(n, dtype=int)
    for t in range(n):
        order = np.argsort(-p[t], kind="stable")[:k]
        m = 1
        while m < k and p[t, order[:m]].sum() < cfg.threshold:
            m += 1
        used[t] = m
        ids[t, :m] = slots[order[:m]]
        weights[t, :m] = p[t, order[:m]] / p[t, order[:m]].sum()
    entropy = -(p * np.log(p)).sum(1) * cfg.lambda_entropy / math.log(e)
    energy = (((p * h).sum(1) + entropy) * mask).sum() / mask.sum()
    return dict(ids=ids, weights=weights, p=p, counts=counts, cap=cap, cost=cost, used=used,
                entropy=entropy, entropy_loss=(entropy * mask).sum() / mask.sum(),
                energy=energy, slots=slots, bind=bind)


# --------------------------------------------------------------------------- routing formulas
class TestRoutingFormulas:
    def test_every_step_matches_numpy(self):
        router = _router(std=0.2, genesis_lambda_entropy=0.3, genesis_beta_bind=2.0,
                         genesis_tau=0.7, genesis_lambda_cost=1.5, capacity_factor=0.8,
                         genesis_threshold=0.7)
        x = _hidden()
        out = router(x, compute_aux=True)
        ref = _reference(router, x.numpy().astype(np.float64))
        assert (ref["cost"] > 0).any()          # the capacity term is exercised
        assert set(ref["used"]) == {1, 2}       # adaptive activation is exercised
        np.testing.assert_array_equal(_np(out.topk_ids), ref["ids"])
        np.testing.assert_allclose(_np(out.topk_weights), ref["weights"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(_np(out.scores)[:, ref["slots"]], ref["p"], rtol=1e-5,
                                   atol=1e-7)
        assert out.entropy_loss.item() == pytest.approx(ref["entropy_loss"], rel=1e-5)
        assert out.metrics["energy"] == pytest.approx(ref["energy"], rel=1e-4, abs=1e-6)
        assert out.metrics["active_experts_per_token"] == pytest.approx(ref["used"].mean())

    def test_unused_slots_have_id_minus_one_and_weight_zero(self):
        out = _router()(_hidden(), compute_aux=True)
        ids, w = _np(out.topk_ids), _np(out.topk_weights)
        assert ((ids < 0) == (w == 0)).all() and (ids[:, 0] >= 0).all()
        np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)

    def test_inactive_slots_never_receive_tokens(self):
        router = _router(std=3.0)
        with genesis.no_grad():
            router.weight[4:] = 100.0      # would win every token if inactive slots counted
        out = router(_hidden(), compute_aux=True)
        assert _np(out.topk_ids).max() < 4
        assert (_np(out.scores)[:, 4:] == 0).all()

    def test_entropy_energy_is_normalised_to_lambda(self):
        lam = 0.25
        router = _router(std=0.0, genesis_beta_bind=0.0, genesis_lambda_entropy=lam,
                         genesis_lambda_cost=0.0)
        out = router(_hidden(), compute_aux=True)        # uniform p: the maximum
        assert out.entropy_loss.item() == pytest.approx(lam, rel=1e-6)
        for std in (0.3, 3.0, 30.0):
            value = _router(std=std, genesis_lambda_entropy=lam)(_hidden(),
                                                                 compute_aux=True).entropy_loss
            assert 0.0 <= value.item() <= lam
        assert _router(std=30.0, genesis_lambda_entropy=lam)(
            _hidden(), compute_aux=True).entropy_loss.item() < 0.1 * lam

    def test_confident_tokens_use_fewer_experts(self):
        router = _router(std=0.0, num_experts_per_tok=3, genesis_threshold=0.7,
                         genesis_lambda_cost=0.0)
        rows = np.eye(16)[:4] * 8.0
        with genesis.no_grad():
            router.weight[:4] = genesis.tensor(rows, dtype=genesis.float32)
        rng = np.random.default_rng(0)
        confident = np.eye(16)[rng.integers(0, 4, 32)] * 2.0
        ambiguous = np.zeros((32, 16))
        ambiguous[:, 4:] = rng.standard_normal((32, 12))   # orthogonal to every expert
        used = {}
        for name, x in (("confident", confident), ("ambiguous", ambiguous)):
            out = router(genesis.tensor(x, dtype=genesis.float32), compute_aux=True)
            used[name] = out.metrics["active_experts_per_token"]
        assert used["confident"] == 1.0 and used["ambiguous"] == 3.0

    def test_capacity_overflow_raises_the_cost(self):
        free = _router(std=0.1, genesis_lambda_cost=0.0)
        costly = _router(std=0.1, genesis_lambda_cost=4.0)
        x = genesis.tensor(np.abs(np.random.default_rng(0).standard_normal((16, 16))),
                           dtype=genesis.float32)
        for router in (free, costly):
            with genesis.no_grad():
                router.weight[0] = 0.3     # every token's tentative top-k includes expert 0
        ref = _reference(costly, x.numpy().astype(np.float64))
        assert ref["counts"][0] == 16 and ref["cap"] == 8
        assert ref["cost"][0] == pytest.approx(4.0 * (16 - 8) / 8)
        p_free = _np(free(x, compute_aux=True).scores)[:, 0]
        out = costly(x, compute_aux=True)
        p_costly = _np(out.scores)[:, 0]
        assert (p_costly < p_free).all()
        np.testing.assert_allclose(p_costly, ref["p"][:, 0], rtol=1e-5)
        assert out.metrics["overflow_fraction"] < free(x, compute_aux=True).metrics[
            "overflow_fraction"]

    def test_padding_is_excluded_from_counts_losses_and_metrics(self):
        router = _router(genesis_lambda_entropy=0.5, capacity_factor=0.5)
        x = _hidden(12)
        mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])
        out = router(x, genesis.tensor(mask), compute_aux=True)
        ref = _reference(router, x.numpy().astype(np.float64), mask.reshape(-1))
        np.testing.assert_array_equal(_np(out.topk_ids), ref["ids"])
        assert out.entropy_loss.item() == pytest.approx(ref["entropy_loss"], rel=1e-5)
        keep = mask.reshape(-1) == 1
        assert out.metrics["active_experts_per_token"] == pytest.approx(ref["used"][keep].mean())


# --------------------------------------------------------------------------- state updates
class TestStateUpdates:
    def test_centroid_and_load_ema_in_training_only(self):
        router = _router(genesis_eta_centroid=0.2, genesis_eta_load=0.1)
        x = _hidden()
        c0, load0 = router.centroids.numpy().copy(), router.load.numpy().copy()
        out = router(x)                                   # eval: no update
        np.testing.assert_array_equal(router.centroids.numpy(), c0)
        ref = _reference(router, x.numpy().astype(np.float64))
        router.train()
        router(x)
        top1 = _np(out.topk_ids)[:, 0]
        xu = _unit(x.numpy().astype(np.float64))
        want = c0.astype(np.float64).copy()
        for e in np.unique(top1):
            want[e] = _unit(0.8 * c0[e] + 0.2 * xu[top1 == e].mean(0))
        np.testing.assert_allclose(router.centroids.numpy(), want, rtol=1e-5, atol=1e-6)
        ids = ref["ids"][ref["ids"] >= 0]
        share = np.bincount(ids, minlength=6) / ids.size      # routed pairs, after activation
        assert set(ref["used"]) == {1, 2}
        np.testing.assert_allclose(router.load.numpy(), 0.9 * load0 + 0.1 * share, rtol=1e-6)

    def test_initial_state(self):
        router = _router()
        np.testing.assert_allclose(router.centroids.numpy(), _unit(_np(router.weight)),
                                   rtol=1e-6)
        np.testing.assert_allclose(router.load.numpy(), [0.25] * 4 + [0, 0])
        assert router.active.numpy().tolist() == [True] * 4 + [False] * 2
        assert router.num_steps.item() == 0
        keys = [k for k, _ in MoEForCausalLM(_config()).state_dict().items()
                if k.startswith("model.layers.0.mlp.gate.")]
        assert sorted(k.rsplit(".", 1)[1] for k in keys) == ["active", "centroids", "load",
                                                             "num_steps", "weight"]


# --------------------------------------------------------------------------- mitosis
def _confident_block(seed=0, **kw):
    """A genesis MoE block whose tokens are routed with a wide margin (one dominant expert)."""
    genesis.manual_seed(seed)
    config = _config(genesis_mitosis_interval=3, genesis_max_new_experts=1, **kw)
    block = MoESparseBlock(config)
    for p in (block.experts.gate_up_proj, block.experts.down_proj):
        genesis.nn.init.normal_(p, 0.0, 0.3)
    rng = np.random.default_rng(seed)
    with genesis.no_grad():
        block.gate.weight._array[...] = 0
        block.gate.weight._array[:4] = np.eye(16, dtype=np.float32)[:4] * 8.0
    block.gate.reset_state()
    x = np.eye(16)[rng.integers(0, 4, 40)] * 2.0 + 0.05 * rng.standard_normal((40, 16))
    return block, genesis.tensor(x[None], dtype=genesis.float32)


class TestMitosis:
    def test_split_conditions(self):
        block, _ = _confident_block()
        gate = block.gate
        gate.load._array[...] = [0.2, 0.55, 0.15, 0.1, 0.0]        # 4 * 0.55 > 2.0
        assert gate.mitosis(block.experts) is None and gate.mitosis(block.experts) is None
        assert gate.mitosis(block.experts) == (1, 4)           # step 3: the interval
        assert gate.num_steps.item() == 3
        assert gate.active.numpy().all()
        np.testing.assert_allclose(gate.load.numpy(), [0.2, 0.275, 0.15, 0.1, 0.275])
        gate.load._array[...] = [0.9, 0.025, 0.025, 0.025, 0.025]
        for _ in range(3):
            assert gate.mitosis(block.experts) is None          # no free slot left
        block, _ = _confident_block()
        block.gate.load._array[...] = [0.2, 0.5, 0.2, 0.1, 0.0]    # 4 * 0.5 is not > 2.0
        assert [block.gate.mitosis(block.experts) for _ in range(3)] == [None] * 3

    def test_child_copies_parent_with_small_seeded_noise(self):
        results = []
        for _ in range(2):
            block, x = _confident_block()
            block.train()
            block(x)
            block.gate.load._array[...] = [0.1, 0.1, 0.7, 0.1, 0.0]
            for _ in range(3):
                block.gate.mitosis(block.experts)
            results.append(block)
        a, b = results
        for name in ("gate_up_proj", "down_proj"):
            w = _np(getattr(a.experts, name))
            diff = w[4] - w[2]
            assert 0 < np.abs(diff).max() < 1e-2 * w[2].std()
            assert diff.std() == pytest.approx(1e-3 * w[2].std(), rel=0.2)
            np.testing.assert_array_equal(w, _np(getattr(b.experts, name)))      # seeded
        w = _np(a.gate.weight)
        assert 0 < np.abs(w[4] - w[2]).max() < 1e-2 * w[2].std()
        c = a.gate.centroids.numpy().astype(np.float64)
        np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-6)
        direction = c[2] - c[4]
        assert np.linalg.norm(direction) == pytest.approx(2 * 0.1 / math.sqrt(1.01), rel=1e-4)
        assert abs((c[2] + c[4]) @ direction) < 1e-5          # a symmetric split

    def test_split_direction_is_the_main_direction_of_the_parents_tokens(self):
        block, x = _confident_block()
        gate = block.gate
        rng = np.random.default_rng(5)
        spread = np.zeros(16)
        spread[9] = 1.0
        tokens = np.eye(16)[[1] * 30] * 2.0 + np.outer(rng.choice([-1.0, 1.0], 30), spread)
        gate.train()
        gate(genesis.tensor(tokens + 0.01 * rng.standard_normal((30, 16)), dtype=genesis.float32))
        gate.load._array[...] = [0.1, 0.7, 0.1, 0.1, 0.0]
        gate.num_steps._array[...] = 2
        assert gate.mitosis(block.experts) == (1, 4)
        c = gate.centroids.numpy()
        v = _unit(c[1] - c[4])
        assert abs(v[9]) > 0.99

    def test_output_unchanged_after_split_up_to_the_noise(self):
        block, x = _confident_block()
        block.eval()
        before = _np(block(x)[0])
        assigned = _np(block.gate(x.reshape(40, 16)).topk_ids)[:, 0]
        parent = int(np.bincount(assigned).argmax())
        load = np.full(5, 0.1)
        load[parent], load[4] = 0.6, 0.0
        block.gate.load._array[...] = load
        block.gate.num_steps._array[...] = 2
        assert block.gate.mitosis(block.experts) == (parent, 4)
        routing = block.gate(x.reshape(40, 16))
        after = _np(block(x)[0])
        ids = _np(routing.topk_ids)
        assert (ids == 4).any(axis=1)[assigned == parent].all()   # the child takes tokens
        scale = np.abs(before).max()
        np.testing.assert_allclose(after, before, atol=3e-3 * scale)
        assert 0 < np.abs(after - before).max()

    def test_optimizer_state_of_the_child_slot_is_zeroed(self):
        genesis.manual_seed(0)
        model = MoEForCausalLM(_config(genesis_mitosis_interval=1, genesis_split_ratio=0.5))
        opt = genesis.optim.AdamW(model.parameters(), lr=1e-2)
        ids = genesis.randint(0, 64, (2, 12))
        model.train()
        model(ids, labels=ids)[0].backward()
        opt.step()
        block = model.model.layers[0].mlp
        params = (block.experts.gate_up_proj, block.experts.down_proj, block.gate.weight)
        with genesis.no_grad():
            for p in params:
                for key in ("exp_avg", "exp_avg_sq"):
                    opt.state[p][key]._array[...] = 1.0
        before = {id(p): {k: opt.state[p][k].numpy().copy() for k in ("exp_avg", "exp_avg_sq")}
                  for p in params}
        births = model.genesis_mitosis(opt)
        assert [b["layer"] for b in births] == [0, 1]
        child = births[0]["child"]
        for p in params:
            for key in ("exp_avg", "exp_avg_sq"):
                state = opt.state[p][key].numpy()
                assert (state[child] == 0).all()
                others = np.delete(state, child, axis=0)
                np.testing.assert_array_equal(others, np.delete(before[id(p)][key], child, 0))


# --------------------------------------------------------------------------- SSI
class TestSSI:
    def test_identical_vectors_give_one(self):
        x = np.tile(_unit(np.arange(1.0, 5.0)), (6, 1))
        assert semantic_stability_index(x, np.array([0, 0, 0, 1, 1, 1])) == pytest.approx(1.0)

    def test_matches_the_distance_matrix_definition(self):
        rng = np.random.default_rng(0)
        x = _unit(rng.standard_normal((30, 5)))
        groups = rng.integers(0, 4, 30)
        groups[groups == 3] = 2
        groups[0] = 5                              # a single-member group is ignored
        variances = []
        for e in np.unique(groups):
            xe = x[groups == e]
            if len(xe) >= 2:
                variances.append((1 - xe @ xe.T).var())
        assert semantic_stability_index(x, groups) == pytest.approx(1 - np.mean(variances),
                                                                    rel=1e-10)
        wide = _unit(rng.standard_normal((6, 40)))              # n < d uses the n x n Gram
        want = 1 - np.mean([(1 - g @ g.T).var() for g in (wide[:3], wide[3:])])
        assert semantic_stability_index(wide, np.array([0, 0, 0, 1, 1, 1])) == \
            pytest.approx(want, rel=1e-10)

    def test_no_group_with_two_members(self):
        assert semantic_stability_index(np.eye(3), np.array([0, 1, 2])) == 1.0


# --------------------------------------------------------------------------- gradients
def test_float64_gradcheck_of_router_weight_through_routed_output():
    genesis.manual_seed(3)
    config = _config(hidden_size=8, num_attention_heads=2, num_key_value_heads=1,
                     genesis_max_new_experts=1, genesis_lambda_entropy=0.5, capacity_factor=0.7,
                     genesis_threshold=0.6)
    block = MoESparseBlock(config)
    block.to(genesis.float64)
    rng = np.random.default_rng(0)
    with genesis.no_grad():
        block.gate.weight._array[...] = 0.3 * rng.standard_normal((5, 8))
        block.experts.gate_up_proj._array[...] = 0.5 * rng.standard_normal((5, 16, 8))
        block.experts.down_proj._array[...] = 0.5 * rng.standard_normal((5, 8, 8))
    block.gate.reset_state()
    block.eval()
    x = genesis.tensor(rng.standard_normal((1, 10, 8)), dtype=genesis.float64)
    probe = rng.standard_normal((1, 10, 8))

    def objective():
        out, routing = block(x, compute_aux=True)
        return (out * genesis.tensor(probe)).sum() + routing.entropy_loss * 3.0, routing

    loss, routing = objective()
    used = _np(routing.topk_ids) >= 0
    assert used.sum(1).min() == 1 and used.sum(1).max() == 2
    p = np.sort(_np(routing.scores), axis=1)[:, ::-1]
    assert np.abs(p[:, 0] - 0.6).min() > 1e-3          # adaptive selection far from its edge
    ref = _reference(block.gate, x.numpy().reshape(10, 8))
    assert (ref["cost"] > 0).any()
    bind = np.sort(ref["bind"], axis=1)
    assert (bind[:, 2] - bind[:, 1]).min() > 1e-3      # tentative top-2 (counts) stable too
    block.gate.weight.grad = None
    loss.backward()
    analytic = block.gate.weight.grad.numpy()
    eps, numeric = 1e-6, np.zeros((5, 8))
    w = block.gate.weight._array
    for idx in np.ndindex(5, 8):
        old = w[idx]
        w[idx] = old + eps
        up = objective()[0].item()
        w[idx] = old - eps
        down = objective()[0].item()
        w[idx] = old
        numeric[idx] = (up - down) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    assert np.abs(analytic[:4]).min() > 0 and (analytic[4] == 0).all()   # slot 4 inactive


# --------------------------------------------------------------------------- model level
def test_training_lowers_loss_with_entropy_term_and_mitosis():
    genesis.manual_seed(0)
    config = _config(genesis_mitosis_interval=5, genesis_split_ratio=1.0,
                     genesis_lambda_entropy=0.05)
    model = MoEForCausalLM(config)
    opt = genesis.optim.AdamW(model.parameters(), lr=1e-2)
    ids = genesis.tensor(np.tile(np.arange(16), (4, 2)))
    model.train()
    losses, births = [], []
    for _ in range(40):
        out = model(ids, labels=ids, return_dict=True, output_router_logits=True)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        births += model.genesis_mitosis(opt)
        losses.append(out.loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert births and out.router_stats["experts_alive"] == (6, 6)
    assert out.aux_loss.item() > 0 and out.z_loss is None
    model.eval()
    with genesis.no_grad():
        plain = model(ids, labels=ids)[0].item()
        full = model(ids, labels=ids, return_dict=True, output_router_logits=True)
    assert full.loss.item() == pytest.approx(plain + full.aux_loss.item(), rel=1e-6)


def test_checkpoint_round_trip_keeps_router_state_and_expert_slots(tmp_path):
    genesis.manual_seed(0)
    model = MoEForCausalLM(_config(genesis_mitosis_interval=1, genesis_split_ratio=0.5))
    ids = genesis.randint(0, 64, (2, 10))
    model.train()
    model(ids, labels=ids)[0].backward()
    assert model.genesis_mitosis()
    model.save_pretrained(tmp_path)
    loaded = MoEForCausalLM.from_pretrained(tmp_path)
    want, got = model.state_dict(), loaded.state_dict()
    assert list(want) == list(got)
    for key in want:
        assert want[key].dtype is got[key].dtype, key
        np.testing.assert_array_equal(want[key].numpy(), got[key].numpy(), err_msg=key)
    assert loaded.model.layers[0].mlp.gate.num_steps.item() == 1
    model.eval()
    with genesis.no_grad():
        np.testing.assert_array_equal(model(ids).numpy(), loaded(ids).numpy())


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("field,value", [
    ("genesis_threshold", 0.0), ("genesis_threshold", 1.5), ("genesis_tau", 0.0),
    ("genesis_beta_bind", -1.0), ("genesis_lambda_cost", "1"), ("genesis_lambda_entropy", -0.1),
    ("genesis_eta_centroid", 1.5), ("genesis_eta_load", -0.1), ("genesis_max_new_experts", -1),
    ("genesis_max_new_experts", 1.5), ("genesis_mitosis_interval", 0),
    ("genesis_split_ratio", 0.0), ("genesis_split_delta", -0.1), ("genesis_threshold", True),
])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        _config(**{field: value})


def test_config_fields_serialise_and_genesis_needs_genesis_moe(tmp_path):
    config = _config(genesis_tau=0.5, genesis_max_new_experts=3)
    config.save_pretrained(tmp_path)
    again = MoEConfig.from_pretrained(tmp_path)
    assert again == config and again.genesis_tau == 0.5 and again.num_expert_slots == 7
    assert _config(router_type="topk").num_expert_slots == 4
    with pytest.raises(ValueError, match="router_type='genesis' needs model_type"):
        _config(model_type="mixtral")
