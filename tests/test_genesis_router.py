"""The Genesis energy-aware router v2: each formula against NumPy, causal state updates, the
cost potential's load control, mitosis with multiplicity offsets, SSI, gradients, training,
checkpoints and config."""
import copy
import math

import numpy as np
import pytest

import genesis
from genesis.models.transformers import MoEConfig, MoEForCausalLM
from genesis.models.transformers.genesis_router import GenesisRouter
from genesis.models.transformers.modeling_moe import MoESparseBlock
from genesis.models.transformers.routing import routing_metrics, semantic_stability_index


def _config(**kw):
    base = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                num_experts_per_tok=2, moe_intermediate_size=8, router_type="genesis",
                genesis_max_new_experts=2)
    base.update(kw)
    return MoEConfig(**base)


def _block(seed=0, std=0.5, **kw):
    """A Genesis MoE block (router + experts) with an N(0, std) router and random experts."""
    genesis.manual_seed(seed)
    block = MoESparseBlock(_config(**kw))
    for p in (block.experts.gate_up_proj, block.experts.down_proj):
        genesis.nn.init.normal_(p, 0.0, 0.3)
    block.gate.reset_parameters(std)
    return block.eval()


def _router(seed=0, std=0.5, **kw):
    return _block(seed, std, **kw).gate


def _hidden(n=24, d=16, seed=1, dtype=genesis.float32):
    return genesis.tensor(np.random.default_rng(seed).standard_normal((n, d)), dtype=dtype)


def _np(t):
    return t.detach().numpy()


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _softmax(a):
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _set_state(router, b, omega):
    router.cost_potential._array[:len(b)] = b
    router.multiplicity_offset._array[:len(omega)] = omega


def _reference(router, x, mask=None):
    """The spec's routing steps in float64 NumPy, one token at a time where that reads clearer."""
    slots = np.nonzero(router.active.numpy())[0]
    w = _np(router.weight).astype(np.float64)[slots]
    c = router.centroids.numpy().astype(np.float64)[slots]
    b = router.cost_potential.numpy().astype(np.float64)[slots]
    omega = router.multiplicity_offset.numpy().astype(np.float64)[slots]
    n, k, e = x.shape[0], router.top_k, len(slots)
    mask = np.ones(n) if mask is None else mask.astype(np.float64)
    bind = -(x @ w.T + router.beta_bind * (_unit(x) @ c.T)) + omega
    h = bind + b
    q = _softmax(-bind / router.tau)
    p = _softmax(-h / router.tau)
    ids = np.zeros((n, k), dtype=np.int64)
    keep = np.zeros((n, k), dtype=bool)
    weights = np.zeros((n, k))
    for t in range(n):
        order = np.argsort(-p[t], kind="stable")[:k]
        m = 1
        while m < k and p[t, order[:m]].sum() < router.threshold:
            m += 1
        ids[t] = slots[order]
        keep[t, :m] = True
        kept = q[t, order[:m]]
        weights[t, :m] = kept / kept.sum() if router.renormalize else kept
    entropy = -(q * np.log(q)).sum(1) * router.lambda_entropy / math.log(e)
    energy = (((p * h).sum(1) + entropy) * mask).sum() / mask.sum()
    return dict(ids=ids, keep=keep, weights=weights, p=p, q=q, entropy=entropy,
                entropy_loss=(entropy * mask).sum() / mask.sum(), energy=energy, slots=slots,
                used=keep.sum(1))


# --------------------------------------------------------------------------- routing formulas
class TestRoutingFormulas:
    @pytest.mark.parametrize("renormalize", [True, False])
    def test_every_step_matches_numpy(self, renormalize):
        router = _router(std=0.2, genesis_lambda_entropy=0.3, genesis_beta_bind=2.0,
                         genesis_tau=0.7, genesis_threshold=0.7,
                         genesis_renormalize=renormalize)
        _set_state(router, [0.3, -0.2, 0.1, -0.2], [0.0, 0.1, 0.0, 0.1])
        x = _hidden()
        out = router(x, compute_aux=True)
        ref = _reference(router, x.numpy().astype(np.float64))
        assert set(ref["used"]) == {1, 2}       # adaptive activation is exercised
        assert not np.allclose(ref["p"], ref["q"])   # selection differs from binding
        np.testing.assert_array_equal(_np(out.topk_ids), ref["ids"])
        np.testing.assert_array_equal(_np(out.selected), ref["keep"])
        np.testing.assert_array_equal(_np(out.dispatched), ref["keep"])
        np.testing.assert_allclose(_np(out.topk_weights), ref["weights"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(_np(out.scores)[:, ref["slots"]], ref["p"], rtol=1e-5,
                                   atol=1e-7)
        assert out.entropy_loss.item() == pytest.approx(ref["entropy_loss"], rel=1e-5)
        assert out.metrics["energy"] == pytest.approx(ref["energy"], rel=1e-4, abs=1e-6)
        assert out.metrics["cost_potential_spread"] == pytest.approx(0.5)
        stats = routing_metrics(out, router.num_slots)
        assert stats["active_experts_per_token"] == pytest.approx(ref["used"].mean())
        sums = _np(out.topk_weights).sum(1)
        if renormalize:
            np.testing.assert_allclose(sums, 1.0, rtol=1e-6)
        else:
            assert (sums < 1).all()

    def test_unused_slots_are_valid_ids_not_selected_with_weight_zero(self):
        out = _router()(_hidden(), compute_aux=True)
        ids, w, sel = _np(out.topk_ids), _np(out.topk_weights), _np(out.selected)
        assert (ids >= 0).all() and (ids < 4).all()
        assert (~sel).any() and sel[:, 0].all()
        assert (w[~sel] == 0).all() and (w[sel] > 0).all()
        assert (_np(out.dispatch_ids())[~sel] == -1).all()     # the dispatch op's input only

    def test_inactive_slots_never_receive_tokens(self):
        router = _router(std=3.0)
        with genesis.no_grad():
            router.weight[4:] = 100.0      # would win every token if inactive slots counted
        out = router(_hidden(), compute_aux=True)
        assert _np(out.topk_ids).max() < 4
        assert (_np(out.scores)[:, 4:] == 0).all()

    def test_entropy_energy_is_normalised_to_lambda(self):
        lam = 0.25
        router = _router(std=0.0, genesis_beta_bind=0.0, genesis_lambda_entropy=lam)
        out = router(_hidden(), compute_aux=True)        # uniform q: the maximum
        assert out.entropy_loss.item() == pytest.approx(lam, rel=1e-6)
        for std in (0.3, 3.0, 30.0):
            value = _router(std=std, genesis_lambda_entropy=lam)(_hidden(),
                                                                 compute_aux=True).entropy_loss
            assert 0.0 <= value.item() <= lam
        assert _router(std=30.0, genesis_lambda_entropy=lam)(
            _hidden(), compute_aux=True).entropy_loss.item() < 0.1 * lam

    def test_confident_tokens_use_fewer_experts(self):
        router = _router(std=0.0, num_experts_per_tok=3, genesis_threshold=0.7)
        with genesis.no_grad():
            router.weight[:4] = genesis.tensor(np.eye(16)[:4] * 8.0, dtype=genesis.float32)
        rng = np.random.default_rng(0)
        confident = np.eye(16)[rng.integers(0, 4, 32)] * 2.0
        ambiguous = np.zeros((32, 16))
        ambiguous[:, 4:] = rng.standard_normal((32, 12))   # orthogonal to every expert
        used = {}
        for name, x in (("confident", confident), ("ambiguous", ambiguous)):
            out = router(genesis.tensor(x, dtype=genesis.float32))
            used[name] = _np(out.selected).sum(1).mean()
        assert used["confident"] == 1.0 and used["ambiguous"] == 3.0

    def test_cost_potential_steers_selection_never_mixing(self):
        router = _router(std=0.3)
        x = _hidden(64)
        base = router(x)
        _set_state(router, [2.0, -2.0 / 3, -2.0 / 3, -2.0 / 3], [0.0] * 4)
        steered = router(x)
        ids0, ids1 = _np(base.topk_ids), _np(steered.topk_ids)
        top1_0 = (ids0[:, 0] == 0).mean()
        assert top1_0 > 0.1 and (ids1[:, 0] == 0).mean() < top1_0      # expert 0 penalised
        p0, p1 = _np(base.scores)[:, :4], _np(steered.scores)[:, :4]
        assert (p1[:, 0] < p0[:, 0]).all()
        same = (ids0 == ids1).all(1) & (_np(base.selected) == _np(steered.selected)).all(1)
        assert same.any()
        np.testing.assert_allclose(_np(steered.topk_weights)[same], _np(base.topk_weights)[same],
                                   rtol=1e-6)                       # b never enters the weights

    def test_padding_is_excluded_from_losses_and_metrics(self):
        router = _router(genesis_lambda_entropy=0.5)
        x = _hidden(12)
        mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])
        out = router(x, genesis.tensor(mask), compute_aux=True)
        ref = _reference(router, x.numpy().astype(np.float64), mask.reshape(-1))
        np.testing.assert_array_equal(_np(out.topk_ids), ref["ids"])
        assert out.entropy_loss.item() == pytest.approx(ref["entropy_loss"], rel=1e-5)
        keep = mask.reshape(-1) == 1
        stats = routing_metrics(out, router.num_slots)
        assert stats["active_experts_per_token"] == pytest.approx(ref["used"][keep].mean())


# --------------------------------------------------------------------------- state updates
class TestStateUpdates:
    def test_training_forward_records_but_never_changes_routing_state(self):
        block = _block(genesis_eta_centroid=0.2, genesis_eta_load=0.1).train()
        router = block.gate
        before = {k: v.numpy().copy() for k, v in router.state_dict().items()}
        x = _hidden()
        first, second = router(x), router(x)
        np.testing.assert_array_equal(_np(first.topk_weights), _np(second.topk_weights))
        for key, value in router.state_dict().items():
            np.testing.assert_array_equal(value.numpy(), before[key], err_msg=key)

    def test_update_state_applies_potential_centroids_and_load(self):
        block = _block(genesis_eta_centroid=0.2, genesis_eta_load=0.1, genesis_eta_cost=0.05)
        router = block.gate
        _set_state(router, [0.1, -0.1, 0.05, -0.05], [0.0] * 4)
        x = _hidden(40)
        c0, load0 = router.centroids.numpy().astype(np.float64), router.load.numpy().copy()
        b0 = router.cost_potential.numpy().astype(np.float64)
        ref = _reference(router, x.numpy().astype(np.float64))
        router.train()
        router(x)
        assert router.update_state(block.experts) is None
        assert router.num_steps.item() == 1
        routed = ref["ids"][ref["keep"]]
        share = np.bincount(routed, minlength=6) / routed.size      # pairs after activation
        assert set(ref["used"]) == {1, 2}
        b = b0[:4] + 0.05 * np.sign(share[:4] - 0.25)
        np.testing.assert_allclose(router.cost_potential.numpy()[:4], b - b.mean(), atol=1e-7)
        assert (router.cost_potential.numpy()[4:] == 0).all()
        top1 = ref["ids"][:, 0]
        xu = _unit(x.numpy().astype(np.float64))
        want = c0.copy()
        for e in np.unique(top1):
            want[e] = _unit(0.8 * c0[e] + 0.2 * xu[top1 == e].mean(0))
        np.testing.assert_allclose(router.centroids.numpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(router.load.numpy(), 0.9 * load0 + 0.1 * share, rtol=1e-6)

    def test_forwards_between_steps_accumulate_and_eval_records_nothing(self):
        block = _block()
        router = block.gate
        x1, x2 = _hidden(20, seed=1), _hidden(20, seed=2)
        router(x1)                                           # eval: not recorded
        router.train()
        router(x1)
        router(x2)
        router.update_state(block.experts)
        joined = _block()
        joined.gate.train()
        joined.gate(genesis.cat([x1, x2]))
        joined.gate.update_state(joined.experts)
        for name in ("cost_potential", "centroids", "load"):
            np.testing.assert_allclose(getattr(router, name).numpy(),
                                       getattr(joined.gate, name).numpy(), rtol=1e-6,
                                       atol=1e-7)

    def test_initial_state(self):
        router = _router()
        assert isinstance(router, GenesisRouter)
        np.testing.assert_allclose(router.centroids.numpy(), _unit(_np(router.weight)),
                                   rtol=1e-6)
        np.testing.assert_allclose(router.load.numpy(), [0.25] * 4 + [0, 0])
        assert (router.cost_potential.numpy() == 0).all()
        assert (router.multiplicity_offset.numpy() == 0).all()
        assert router.active.numpy().tolist() == [True] * 4 + [False] * 2
        assert router.num_steps.item() == 0
        keys = [k for k, _ in MoEForCausalLM(_config()).state_dict().items()
                if k.startswith("model.layers.0.mlp.gate.")]
        assert sorted(k.rsplit(".", 1)[1] for k in keys) == [
            "active", "centroids", "cost_potential", "load", "multiplicity_offset",
            "num_steps", "weight"]

    @pytest.mark.parametrize("eta_cost", [0.05, 0.0])
    def test_cost_potential_brings_load_cv_down_on_a_skewed_stream(self, eta_cost):
        block = _block(std=0.0, genesis_eta_cost=eta_cost, genesis_max_new_experts=0,
                       genesis_eta_centroid=0.0)
        router = block.gate
        rng = np.random.default_rng(0)
        with genesis.no_grad():
            router.weight._array[:4] = np.eye(16)[:4] * np.array([1.5, 0.5, 0.3, 0.2])[:, None]
        router.reset_state()
        router.train()
        cvs = []
        for _ in range(150):
            x = np.abs(rng.standard_normal((64, 16))) + np.eye(16)[0] * 0.5   # skewed to 0
            out = router(genesis.tensor(x, dtype=genesis.float32))
            cvs.append(routing_metrics(out, router.num_slots)["load_cv"])
            router.update_state(block.experts)
        first, last = np.mean(cvs[:5]), np.mean(cvs[-20:])
        assert first > 0.8
        if eta_cost:
            assert last < 0.3 * first
        else:
            assert last > 0.9 * first               # without the potential nothing moves


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
        assert gate.update_state(block.experts) is None
        assert gate.update_state(block.experts) is None
        assert gate.update_state(block.experts) == (1, 4)           # step 3: the interval
        assert gate.num_steps.item() == 3
        assert gate.active.numpy().all()
        np.testing.assert_allclose(gate.load.numpy(), [0.2, 0.275, 0.15, 0.1, 0.275])
        gate.load._array[...] = [0.9, 0.025, 0.025, 0.025, 0.025]
        for _ in range(3):
            assert gate.update_state(block.experts) is None          # no free slot left
        block, _ = _confident_block()
        block.gate.load._array[...] = [0.2, 0.5, 0.2, 0.1, 0.0]    # 4 * 0.5 is not > 2.0
        assert [block.gate.update_state(block.experts) for _ in range(3)] == [None] * 3

    def test_child_copies_parent_potential_offsets_and_seeded_noise(self):
        results = []
        for seed in (7, 7, 8):
            block, x = _confident_block()
            gate = block.gate
            _set_state(gate, [0.1, -0.2, 0.3, -0.2], [0.0, 0.0, 0.05, 0.0])
            gate.load._array[...] = [0.1, 0.1, 0.7, 0.1, 0.0]
            gate.num_steps._array[...] = 2
            genesis.manual_seed(seed)                  # the run's generator draws the noise
            assert gate.update_state(block.experts) == (2, 4)
            results.append(block)
        a, b, c = results
        for name in ("gate_up_proj", "down_proj"):
            w = _np(getattr(a.experts, name))
            diff = w[4] - w[2]
            assert 0 < np.abs(diff).max() < 1e-2 * w[2].std()
            assert diff.std() == pytest.approx(1e-3 * w[2].std(), rel=0.2)
            np.testing.assert_array_equal(w, _np(getattr(b.experts, name)))      # seeded
            assert (w[4] != _np(getattr(c.experts, name))[4]).any()              # by the seed
        w = _np(a.gate.weight)
        assert 0 < np.abs(w[4] - w[2]).max() < 1e-2 * w[2].std()
        gate = a.gate
        assert gate.cost_potential.numpy()[4] == pytest.approx(0.3)
        offsets = gate.multiplicity_offset.numpy()
        assert offsets[2] == pytest.approx(0.05 + gate.tau * math.log(2)) == offsets[4]
        c = gate.centroids.numpy().astype(np.float64)
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
        gate.eta_load = 0.0
        gate.num_steps._array[...] = 2
        assert gate.update_state(block.experts) == (1, 4)
        c = gate.centroids.numpy()
        v = _unit(c[1] - c[4])
        assert abs(v[9]) > 0.99

    def test_child_optimizer_moments_are_the_parents(self):
        genesis.manual_seed(0)
        model = MoEForCausalLM(_config(genesis_mitosis_interval=1, genesis_split_ratio=0.5))
        opt = genesis.optim.AdamW(model.parameters(), lr=1e-2)
        ids = genesis.randint(0, 64, (2, 12))
        model.train()
        model(ids, labels=ids)[0].backward()
        opt.step()
        block = model.model.layers[0].mlp
        params = (block.experts.gate_up_proj, block.experts.down_proj, block.gate.weight)
        rng = np.random.default_rng(0)
        with genesis.no_grad():
            for p in params:
                for key in ("exp_avg", "exp_avg_sq"):
                    opt.state[p][key]._array[...] = np.abs(rng.standard_normal(p.shape))
        before = {id(p): {k: opt.state[p][k].numpy().copy() for k in ("exp_avg", "exp_avg_sq")}
                  for p in params}
        births = model.update_router_state(opt)
        assert [b["layer"] for b in births] == [0, 1]
        parent, child = births[0]["parent"], births[0]["child"]
        for p in params:
            for key in ("exp_avg", "exp_avg_sq"):
                state = opt.state[p][key].numpy()
                np.testing.assert_array_equal(state[child], before[id(p)][key][parent])
                others = np.delete(state, child, axis=0)
                np.testing.assert_array_equal(others, np.delete(before[id(p)][key], child, 0))

    def test_layer_output_unchanged_after_split_of_an_ordinarily_trained_router(
            self, trained_on_text, record_property):
        model, windows = trained_on_text
        model = copy.deepcopy(model)
        block = model.model.layers[0].mlp
        captured = []
        original = block.forward
        block.forward = lambda h, *a, **k: (captured.append(h), original(h, *a, **k))[1]
        model.eval()
        with genesis.no_grad():
            model(genesis.tensor(windows[:8]))
        block.forward = original
        h = captured[0]
        flat = h.reshape(-1, h.shape[-1])
        gate = block.gate
        with genesis.no_grad():
            before, routing = block(h)
            load = _np(genesis.tensor(routing_metrics(routing, 5)["expert_load"]))
            assert load[:4].max() < 0.6            # an ordinary router, not one expert
            gate.split_ratio = 1e-6                # force the split of the busiest expert
            gate.num_steps._array[...] = gate.mitosis_interval - 1
            genesis.manual_seed(0)
            offsets = gate.multiplicity_offset.numpy().copy()
            parent, child = gate.update_state(block.experts)
            after, routed = block(h)
            split_offsets = gate.multiplicity_offset.numpy().copy()
            gate.multiplicity_offset._array[...] = offsets          # a split without omega
            without_omega = _np(block(h)[0]).reshape(flat.shape)
            gate.multiplicity_offset._array[...] = split_offsets
        kept_before = _kept_sets(routing)
        kept_after = _kept_sets(routed)
        both = np.array([parent in s and a == s | {child}
                         for s, a in zip(kept_before, kept_after)])
        neither = np.array([parent not in s and a == s for s, a in zip(kept_before, kept_after)])
        other = ~(both | neither)
        y0 = _np(before).reshape(flat.shape)
        y1 = _np(after).reshape(flat.shape)
        change = np.linalg.norm(y1 - y0, axis=1) / np.linalg.norm(y0, axis=1)
        fraction = float(other.mean())
        no_omega = np.linalg.norm(without_omega - y0, axis=1) / np.linalg.norm(y0, axis=1)
        record_property("split_other_token_fraction", fraction)
        print(f"\nsplit of expert {parent} -> {child}: {both.sum()} tokens keep both copies, "
              f"{neither.sum()} neither, other tokens {fraction:.3f}; relative output change "
              f"max {change[~other].max():.2e} (both/neither), mean {change[other].mean():.2e} "
              f"(other); without omega offsets: mean {no_omega.mean():.2e}")
        assert both.sum() > 0 and neither.sum() > 0
        assert no_omega.mean() > 10 * change[~other].max()        # omega is what keeps it
        assert change[neither].max() < 1e-6                       # only the noise can move it
        assert change[both].max() < 0.03                           # centroid split + noise
        assert fraction < 0.5


def _kept_sets(routing):
    ids, sel = _np(routing.topk_ids), _np(routing.selected)
    return [set(row[m].tolist()) for row, m in zip(ids, sel)]


@pytest.fixture(scope="module")
def trained_on_text():
    """A small byte-level Genesis LM (one free slot, no mitosis during training) after 250
    steps on CPython's documentation, the trainer's default corpus; and held-out windows."""
    return _trained_byte_model(steps=250, genesis_max_new_experts=1,
                               genesis_mitosis_interval=10 ** 6)


def _trained_byte_model(steps, seed=0, **kw):
    """A small byte-level Genesis LM trained ``steps`` steps on real text; held-out windows."""
    from genesis.models.transformers import ByteTokenizer
    from genesis.train.data import default_corpus_text
    tokens = np.asarray(ByteTokenizer().encode(default_corpus_text()[:400_000]), dtype=np.int64)
    split = int(len(tokens) * 0.95)
    rng = np.random.default_rng(seed)
    seq, batch = 32, 16
    config = dict(vocab_size=ByteTokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                  num_local_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                  router_type="genesis", genesis_max_new_experts=0, tie_word_embeddings=True)
    config.update(kw)
    genesis.manual_seed(seed)
    model = MoEForCausalLM(MoEConfig(**config))
    opt = genesis.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        starts = rng.integers(0, split - seq, batch)
        ids = genesis.tensor(np.stack([tokens[s:s + seq] for s in starts]))
        loss = model(ids, labels=ids)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_router_state(opt)
    starts = np.arange(split, len(tokens) - seq, (len(tokens) - split) // 32)[:32]
    return model, np.stack([tokens[s:s + seq] for s in starts])


def test_no_expert_starves_after_hundreds_of_steps_on_real_text(trained_on_text):
    model, windows = trained_on_text
    model.eval()
    with genesis.no_grad():
        stats = model(genesis.tensor(windows), output_router_logits=True).router_stats
    for layer, load in enumerate(stats["expert_load"]):
        share = np.asarray(load)[:4] * 4
        print(f"layer {layer}: load / fair share {np.round(share, 2).tolist()}")
        assert share.min() >= 0.25, (layer, share)
    assert max(stats["starved_fraction"]) == 0.0
    assert np.mean(stats["active_experts_per_token"]) < 2.0


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
                     genesis_max_new_experts=1, genesis_lambda_entropy=0.5,
                     genesis_threshold=0.6)
    block = MoESparseBlock(config)
    block.to(genesis.float64)
    rng = np.random.default_rng(0)
    with genesis.no_grad():
        block.gate.weight._array[...] = 0.3 * rng.standard_normal((5, 8))
        block.experts.gate_up_proj._array[...] = 0.5 * rng.standard_normal((5, 16, 8))
        block.experts.down_proj._array[...] = 0.5 * rng.standard_normal((5, 8, 8))
    block.gate.reset_state()
    _set_state(block.gate, [0.2, -0.1, 0.0, -0.1], [0.0, 0.3, 0.0, 0.0])
    block.eval()
    x = genesis.tensor(rng.standard_normal((1, 10, 8)), dtype=genesis.float64)
    probe = rng.standard_normal((1, 10, 8))

    def objective():
        out, routing = block(x, compute_aux=True)
        return (out * genesis.tensor(probe)).sum() + routing.entropy_loss * 3.0, routing

    loss, routing = objective()
    used = _np(routing.selected)
    assert used.sum(1).min() == 1 and used.sum(1).max() == 2
    p = np.sort(_np(routing.scores), axis=1)[:, ::-1]
    assert np.abs(p[:, 0] - 0.6).min() > 1e-3          # adaptive selection far from its edge
    assert (p[:, 1] - p[:, 2]).min() > 1e-3            # and the ranking too
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
        births += model.update_router_state(opt)
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
    assert model.update_router_state()
    gate = model.model.layers[0].mlp.gate
    assert (gate.multiplicity_offset.numpy() != 0).any()
    assert (gate.cost_potential.numpy() != 0).any()
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
    ("genesis_beta_bind", -1.0), ("genesis_eta_cost", "1"), ("genesis_eta_cost", -0.1),
    ("genesis_lambda_entropy", -0.1), ("genesis_renormalize", 1),
    ("genesis_eta_centroid", 1.5), ("genesis_eta_load", -0.1), ("genesis_max_new_experts", -1),
    ("genesis_max_new_experts", 1.5), ("genesis_mitosis_interval", 0),
    ("genesis_split_ratio", 0.0), ("genesis_split_delta", -0.1), ("genesis_threshold", True),
    ("genesis_split_noise", -1e-3),
])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        _config(**{field: value})


def test_config_fields_serialise_and_genesis_needs_genesis_moe(tmp_path):
    config = _config(genesis_tau=0.5, genesis_max_new_experts=3, genesis_eta_cost=0.1,
                     genesis_renormalize=False, genesis_split_noise=2e-3)
    assert _config().genesis_eta_cost == 0.05 and _config().genesis_renormalize is True
    config.save_pretrained(tmp_path)
    again = MoEConfig.from_pretrained(tmp_path)
    assert again == config and again.genesis_tau == 0.5 and again.num_expert_slots == 7
    assert again.genesis_eta_cost == 0.1 and again.genesis_renormalize is False
    assert _config(router_type="topk").num_expert_slots == 4
    with pytest.raises(ValueError, match="router_type='genesis' needs model_type"):
        _config(model_type="mixtral")


def test_a_v1_config_with_lambda_cost_is_rejected_with_an_explanation(tmp_path):
    data = _config().to_dict()
    data["genesis_lambda_cost"] = 1.0
    (tmp_path / "config.json").write_text(__import__("json").dumps(data))
    with pytest.raises(ValueError, match="genesis_lambda_cost=1.0 belongs to the Genesis "
                                         "router v1.*genesis_eta_cost"):
        MoEConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="genesis_lambda_cost"):
        _config(genesis_lambda_cost=0.5)


def test_state_updates_mitosis_and_metrics_stay_on_the_device(monkeypatch):
    """On the CuPy stand-in (tests/fake_cupy.py, which refuses implicit device-to-host copies)
    a training step, update_router_state with a mitosis and the routing metrics match the CPU."""
    from tests.test_fake_device import fake_gpu
    results = {}
    for device in ("cpu", "cuda"):
        with monkeypatch.context() as patch:
            fixture = fake_gpu.__wrapped__(patch) if device == "cuda" else iter([None])
            next(fixture)
            genesis.manual_seed(0)
            model = MoEForCausalLM(_config(genesis_mitosis_interval=1,
                                           genesis_split_ratio=0.5)).to(device)
            opt = genesis.optim.AdamW(model.parameters(), lr=1e-2)
            ids = genesis.tensor(np.random.default_rng(0).integers(0, 64, (2, 12)),
                                 device=device)
            model.train()
            out = model(ids, labels=ids, return_dict=True, output_router_logits=True)
            out.loss.backward()
            opt.step()
            genesis.manual_seed(1)
            births = model.update_router_state(opt)
            assert model.model.layers[0].mlp.gate.cost_potential.device.type == device
            state = {k: v.cpu().numpy() for k, v in model.state_dict().items()}
            results[device] = (births, state, out.router_stats)
            next(fixture, None)
    (births_cpu, cpu, stats_cpu), (births_gpu, gpu, stats_gpu) = results["cpu"], results["cuda"]
    assert births_cpu == births_gpu and births_cpu
    for key in cpu:
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for key in ("load_cv", "ssi", "energy", "active_experts_per_token"):
        np.testing.assert_allclose(stats_gpu[key], stats_cpu[key], rtol=1e-5, err_msg=key)
