"""inject_router: dense gated MLPs -> MoE layers (exactness, partition, routers, round trip)."""
import numpy as np
import pytest

import genesis
from genesis.models.transformers import MoEConfig, MoEForCausalLM, inject_router
from genesis.models.transformers.sparsify import (balanced_assignment, balanced_kmeans,
                                                  neuron_activations)

DENSE = dict(model_type="llama", vocab_size=61, hidden_size=32, intermediate_size=48,
             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64, num_local_experts=0, tie_word_embeddings=True)
MODES = ("genesis", "mixtral", "deepseek")
CALIB = np.random.default_rng(1).integers(0, 61, (6, 24))
IDS = genesis.tensor(np.random.default_rng(2).integers(0, 61, (2, 9)))


def dense_model(tmp_path, dtype=None):
    """A tiny random Llama saved as an HF checkpoint and loaded back, like a hub model."""
    genesis.manual_seed(0)
    MoEForCausalLM(MoEConfig(**DENSE)).save_pretrained(tmp_path / "dense")
    return MoEForCausalLM.from_pretrained(tmp_path / "dense", dtype=dtype)


def logits(model, ids=IDS):
    with genesis.no_grad():
        return model(ids).numpy()


def force_all_experts(model):
    """Every token visits every real expert with weight 1 (replaces the router's choice)."""
    num_experts = model.config.num_local_experts
    for layer in model.model.layers:
        experts = layer.mlp.experts
        original = experts.forward

        def forward(hidden, topk_ids, topk_weights, original=original):
            n = hidden.shape[0]
            ids = genesis.tensor(np.tile(np.arange(num_experts), (n, 1)))
            ones = genesis.ones(n, num_experts, dtype=genesis.float32)
            return original(hidden, ids, ones)
        experts.forward = forward


@pytest.mark.parametrize("mode", MODES)
def test_all_experts_at_weight_one_reproduce_the_dense_model(tmp_path, mode):
    dense = dense_model(tmp_path, dtype="float64")
    reference = logits(dense)
    model = inject_router(dense, mode, num_experts=4, top_k=2, calibration_data=CALIB)
    assert model is dense
    assert all(layer.is_moe_layer for layer in model.model.layers)
    force_all_experts(model)
    np.testing.assert_allclose(logits(model), reference, rtol=1e-10, atol=1e-10)


def test_float32_conversion_matches_to_float32_tolerance(tmp_path):
    dense = dense_model(tmp_path)
    reference = logits(dense)
    force_all_experts(inject_router(dense, "mixtral", 4, 2, CALIB))
    np.testing.assert_allclose(logits(dense), reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_converted_checkpoint_round_trips(tmp_path, mode):
    model = inject_router(dense_model(tmp_path), mode, 4, 2, CALIB)
    model.eval()
    model.save_pretrained(tmp_path / "moe")
    loaded = MoEForCausalLM.from_pretrained(tmp_path / "moe")
    assert loaded.config == model.config
    np.testing.assert_array_equal(logits(loaded), logits(model))
    assert loaded.config.num_local_experts == 4 and loaded.config.num_experts_per_tok == 2
    assert loaded.config.router_type == ("genesis" if mode == "genesis" else "topk")


@pytest.mark.parametrize("mode", MODES)
def test_every_neuron_lands_in_exactly_one_equal_sized_expert(tmp_path, mode):
    dense = dense_model(tmp_path)
    gate = [layer.mlp.gate_proj.weight.detach().numpy().copy() for layer in dense.model.layers]
    inject_router(dense, mode, 4, 2, CALIB)
    for layer, dense_gate in zip(dense.model.layers, gate):
        stacked = layer.mlp.experts.gate_up_proj.detach().numpy()[:4]
        size = stacked.shape[1] // 2
        rows = [stacked[:, :size].reshape(-1, 32)]
        if mode == "deepseek":
            assert layer.mlp.shared_experts is not None
            rows.append(layer.mlp.shared_experts.gate_proj.weight.detach().numpy())
        assert size == (9 if mode == "deepseek" else 12)
        got = np.concatenate(rows)
        assert got.shape == dense_gate.shape
        order = np.lexsort(got.T[::-1])
        np.testing.assert_array_equal(got[order], dense_gate[np.lexsort(dense_gate.T[::-1])])


def test_deepseek_shared_expert_holds_the_most_used_neurons(tmp_path):
    dense = dense_model(tmp_path)
    calib = genesis.tensor(CALIB)
    inputs = []
    handle = dense.model.layers[0].mlp.register_forward_pre_hook(
        lambda m, args: inputs.append(args[0].numpy().reshape(-1, 32).astype(np.float64)))
    with genesis.no_grad():
        dense(calib)
    handle.remove()
    mlp = dense.model.layers[0].mlp
    usage = np.abs(neuron_activations(mlp, inputs[0])).mean(0)
    top = np.argsort(-usage)[:12]
    expected = mlp.gate_proj.weight.detach().numpy()[np.sort(top)]
    inject_router(dense, "deepseek", 4, 2, CALIB)
    shared = dense.model.layers[0].mlp.shared_experts.gate_proj.weight.detach().numpy()
    np.testing.assert_array_equal(shared, expected)


def test_balanced_assignment_is_exact_and_prefers_high_scores():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((40, 4))
    labels = balanced_assignment(scores, 10)
    assert np.bincount(labels, minlength=4).tolist() == [10, 10, 10, 10]
    mean_score = scores[np.arange(40), labels].mean()
    random_labels = rng.permutation(np.repeat(np.arange(4), 10))
    assert mean_score > scores[np.arange(40), random_labels].mean() + 0.5
    clear = np.eye(4)[np.repeat(np.arange(4), 10)]
    np.testing.assert_array_equal(balanced_assignment(clear, 10), np.repeat(np.arange(4), 10))
    with pytest.raises(ValueError, match="cannot fill"):
        balanced_assignment(scores, 9)


def test_balanced_kmeans_recovers_planted_groups():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 50))
    truth = rng.permutation(np.repeat(np.arange(4), 16))
    features = centres[truth] + 0.3 * rng.standard_normal((64, 50))
    labels = balanced_kmeans(features, 4, seed=1)
    assert np.bincount(labels).tolist() == [16] * 4
    for group in range(4):
        assert len(set(labels[truth == group])) == 1


def test_routers_prefer_the_expert_holding_most_activation_mass(tmp_path):
    dense = dense_model(tmp_path)
    calib = genesis.tensor(CALIB)
    inputs = []
    handle = dense.model.layers[1].mlp.register_forward_pre_hook(
        lambda m, args: inputs.append(args[0].numpy().reshape(-1, 32).astype(np.float64)))
    with genesis.no_grad():
        dense(calib)
    handle.remove()
    acts = np.abs(neuron_activations(dense.model.layers[1].mlp, inputs[0]))
    inject_router(dense, "mixtral", 4, 2, CALIB)
    block = dense.model.layers[1].mlp
    gate_rows = block.experts.gate_up_proj.detach().numpy()[:, :12]
    dense_gate = MoEForCausalLM.from_pretrained(tmp_path / "dense").model.layers[1] \
        .mlp.gate_proj.weight.detach().numpy()
    owner = np.empty(48, dtype=np.int64)
    for e in range(4):
        for row in gate_rows[e]:
            owner[np.flatnonzero((dense_gate == row).all(axis=1))] = e
    mass = np.stack([acts[:, owner == e].sum(1) for e in range(4)], axis=1)
    router = inputs[0] @ block.gate.weight.detach().numpy().astype(np.float64).T
    agree = (router.argmax(1) == mass.argmax(1)).mean()
    assert agree > 0.6, agree     # chance is 0.25


def test_genesis_centroids_are_unit_mean_directions_and_state_is_fresh(tmp_path):
    model = inject_router(dense_model(tmp_path), "genesis", 4, 2, CALIB)
    gate = model.model.layers[0].mlp.gate
    c = gate.centroids.detach().numpy()[:4]
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-6)
    assert gate.active.detach().numpy().tolist()[:4] == [True] * 4
    assert not gate.active.detach().numpy()[4:].any()
    np.testing.assert_allclose(gate.load.detach().numpy()[:4], 0.25)
    assert not np.any(model.model.layers[0].mlp.experts.gate_up_proj.detach().numpy()[4:])


def test_config_overrides_reach_the_converted_config(tmp_path):
    model = inject_router(dense_model(tmp_path), "genesis", 4, 2, CALIB, genesis_threshold=0.8)
    assert model.config.genesis_threshold == 0.8
    assert model.config.model_type == "genesis_moe"


class TestErrors:
    def test_bad_mode(self, tmp_path):
        with pytest.raises(ValueError, match="mode must be one of"):
            inject_router(dense_model(tmp_path), "switch", 4, 2, CALIB)

    def test_missing_calibration(self, tmp_path):
        with pytest.raises(ValueError, match="calibration_data is required"):
            inject_router(dense_model(tmp_path), "mixtral", 4, 2)

    def test_float_calibration(self, tmp_path):
        with pytest.raises(ValueError, match="integer token ids"):
            inject_router(dense_model(tmp_path), "mixtral", 4, 2, CALIB.astype(float))

    def test_out_of_vocab_calibration(self, tmp_path):
        with pytest.raises(ValueError, match=r"must be in \[0, 61\)"):
            inject_router(dense_model(tmp_path), "mixtral", 4, 2, CALIB + 100)

    def test_indivisible_width(self, tmp_path):
        with pytest.raises(ValueError, match="do not split into 5 equal experts"):
            inject_router(dense_model(tmp_path), "mixtral", 5, 2, CALIB)

    def test_top_k_above_experts(self, tmp_path):
        with pytest.raises(ValueError, match="top_k"):
            inject_router(dense_model(tmp_path), "mixtral", 4, 6, CALIB)

    def test_already_sparse(self, tmp_path):
        model = inject_router(dense_model(tmp_path), "mixtral", 4, 2, CALIB)
        with pytest.raises(ValueError, match="already has MoE layers"):
            inject_router(model, "mixtral", 4, 2, CALIB)


@pytest.mark.parametrize("act", ["silu", "gelu", "gelu_pytorch_tanh", "relu"])
def test_neuron_activations_sum_to_the_dense_mlp(act):
    from genesis.models.transformers import DenseFFN
    genesis.manual_seed(0)
    with genesis.no_grad():
        mlp = DenseFFN(MoEConfig(**{**DENSE, "hidden_act": act})).double()
        x = np.random.default_rng(0).standard_normal((5, 32))
        expected = mlp(genesis.tensor(x)).numpy()
    acts = neuron_activations(mlp, x)
    np.testing.assert_allclose(acts @ mlp.down_proj.weight.detach().numpy().T, expected,
                               rtol=1e-10, atol=1e-12)


def test_gelu_gated_mlps_convert_exactly_too(tmp_path):
    genesis.manual_seed(0)
    config = MoEConfig(**{**DENSE, "hidden_act": "gelu_pytorch_tanh"})
    MoEForCausalLM(config).save_pretrained(tmp_path / "gelu")
    dense = MoEForCausalLM.from_pretrained(tmp_path / "gelu", dtype="float64")
    reference = logits(dense)
    force_all_experts(inject_router(dense, "deepseek", 4, 2, CALIB))
    np.testing.assert_allclose(logits(dense), reference, rtol=1e-10, atol=1e-10)
