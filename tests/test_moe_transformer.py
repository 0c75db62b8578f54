"""MoEConfig, presets, the MoE model stack and MoEForCausalLM (loss, outputs, training, cache)."""
import json

import numpy as np
import pytest

import genesis
import genesis.optim
from genesis.models.transformers import (MoEConfig, MoEForCausalLM, MoEModel, get_moe_config,
                                         list_moe_configs)
from genesis.models.transformers import configuration_moe
from genesis.models.transformers.modeling_moe import DenseFFN, MoESparseBlock
from genesis.models.transformers.routing import sequence_load_balancing_loss


def tiny(**kw):
    """A 2-layer config small enough for sub-second tests."""
    base = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                num_experts_per_tok=2, moe_intermediate_size=24, max_position_embeddings=128)
    base.update(kw)
    return MoEConfig(**base)


def build(seed=0, **kw):
    genesis.manual_seed(seed)
    return MoEForCausalLM(tiny(**kw))


def ids(batch=2, seq=10, vocab=96, seed=0):
    return genesis.tensor(np.random.default_rng(seed).integers(0, vocab, (batch, seq)))


def _np(t):
    return t.detach().numpy()


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _softmax(x):
    return np.exp(_log_softmax(x.astype(np.float64)))


def manual_ce(logits, labels):
    """HF's shifted causal-LM cross entropy in NumPy (float64)."""
    lp = _log_softmax(logits[:, :-1].astype(np.float64))
    target = labels[:, 1:]
    keep = target != -100
    picked = np.take_along_axis(lp, np.where(keep, target, 0)[..., None], -1)[..., 0]
    return -(picked * keep).sum() / keep.sum()


# --------------------------------------------------------------------------- config
class TestMoEConfig:
    def test_defaults(self):
        c = MoEConfig()
        assert (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers,
                c.num_attention_heads) == (32000, 4096, 14336, 32, 32)
        assert c.num_key_value_heads == 32 and c.head_dim == 128
        assert not c.attention_bias and not c.mlp_bias
        assert (c.num_local_experts, c.num_experts_per_tok, c.num_shared_experts) == (8, 2, None)
        assert c.moe_intermediate_size == 14336 and c.router_aux_loss_coef == 0.01
        assert c.scoring_func == "softmax" and c.norm_topk_prob and c.capacity_factor is None
        assert c.use_moe_in_all_layers and c.moe_layer_interval == 1 and c.first_moe_layer == 0
        assert c.router_type == "topk" and c.model_type == "genesis_moe"
        assert c.aux_loss_type == "switch" and c.topk_method == "greedy"
        assert not c.output_router_logits

    @pytest.mark.parametrize("kwargs,field", [
        (dict(num_experts_per_tok=9), "num_experts_per_tok"),
        (dict(hidden_size=100, num_attention_heads=3), "hidden_size"),
        (dict(num_attention_heads=32, num_key_value_heads=5), "num_key_value_heads"),
        (dict(scoring_func="tanh"), "scoring_func"),
        (dict(router_type="mixtral"), "router_type"),
        (dict(hidden_act="swiglu"), "hidden_act"),
        (dict(topk_method="noaux_tc"), "topk_method"),
        (dict(topk_method="group_limited_greedy", n_group=3, topk_group=1), "n_group"),
        (dict(n_group=4, topk_group=5), "topk_group"),
        (dict(vocab_size=-1), "vocab_size"),
        (dict(num_hidden_layers=0), "num_hidden_layers"),
        (dict(capacity_factor=0), "capacity_factor"),
        (dict(router_aux_loss_coef=-0.1), "router_aux_loss_coef"),
        (dict(moe_layer_interval=2), "moe_layer_interval"),
        (dict(mlp_only_layers=[40]), "mlp_only_layers"),
        (dict(rope_scaling={"rope_type": "yarn", "factor": 4}), "rope_scaling"),
        (dict(shared_expert_gate=True), "shared_expert_gate"),
        (dict(aux_loss_type="entropy"), "aux_loss_type"),
        (dict(model_type="gpt2"), "model_type"),
    ])
    def test_validation_names_the_field(self, kwargs, field):
        with pytest.raises(ValueError, match=field):
            MoEConfig(**kwargs)

    def test_head_dim_allows_indivisible_hidden(self):
        c = MoEConfig(hidden_size=100, num_attention_heads=4, num_key_value_heads=2, head_dim=32)
        assert c.head_dim == 32

    def test_json_round_trip_keeps_unknown_fields(self, tmp_path):
        c = tiny(num_shared_experts=2, seq_aux=True, capacity_factor=1.25, my_custom_field=[1, 2])
        path = tmp_path / "cfg.json"
        c.to_json_file(path)
        back = MoEConfig.from_json_file(path)
        assert back == c and back.my_custom_field == [1, 2]
        assert back.shared_expert_intermediate_size == 48
        c.save_pretrained(tmp_path / "dir")
        assert MoEConfig.from_pretrained(tmp_path / "dir") == c
        assert MoEConfig.from_pretrained(tmp_path / "dir" / "config.json") == c
        assert json.loads((tmp_path / "dir" / "config.json").read_text())["model_type"] == \
            "genesis_moe"
        assert MoEConfig.from_dict(c.to_dict()) == c

    def test_layer_placement_aliases(self):
        qwen = MoEConfig(num_hidden_layers=6, decoder_sparse_step=2, mlp_only_layers=[3])
        assert qwen.moe_layer_indices() == [1, 5]
        deepseek = MoEConfig(num_hidden_layers=6, n_routed_experts=8, first_k_dense_replace=1,
                             moe_layer_freq=2, n_shared_experts=2, aux_loss_alpha=0.003)
        assert deepseek.moe_layer_indices() == [2, 4]
        assert (deepseek.num_local_experts, deepseek.num_shared_experts,
                deepseek.router_aux_loss_coef) == (8, 2, 0.003)
        genesis_style = MoEConfig(num_hidden_layers=5, use_moe_in_all_layers=False,
                                  moe_layer_interval=2, first_moe_layer=1)
        assert genesis_style.moe_layer_indices() == [1, 3]
        assert MoEConfig(num_local_experts=0).moe_layer_indices() == []

    def test_hf_config_mapping(self, tmp_path):
        transformers = pytest.importorskip("transformers")
        small = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2)
        cases = {
            "mixtral": transformers.MixtralConfig(num_local_experts=4, router_aux_loss_coef=0.02,
                                                  rope_theta=1e6, **small),
            "qwen2_moe": transformers.Qwen2MoeConfig(num_experts=6, num_experts_per_tok=2,
                                                     moe_intermediate_size=16,
                                                     shared_expert_intermediate_size=40,
                                                     decoder_sparse_step=2, mlp_only_layers=[3],
                                                     **small),
            "llama": transformers.LlamaConfig(tie_word_embeddings=True, **small),
            "qwen2": transformers.Qwen2Config(**small),
        }
        for name, hf in cases.items():
            hf.save_pretrained(tmp_path / name)
        mix = MoEConfig.from_pretrained(tmp_path / "mixtral")
        assert (mix.model_type, mix.num_local_experts, mix.router_aux_loss_coef,
                mix.rope_theta, mix.norm_topk_prob) == ("mixtral", 4, 0.02, 1e6, True)
        qwen = MoEConfig.from_pretrained(tmp_path / "qwen2_moe")
        assert (qwen.num_local_experts, qwen.num_shared_experts, qwen.shared_expert_gate,
                qwen.shared_expert_intermediate_size, qwen.attention_bias,
                qwen.norm_topk_prob) == (6, 1, True, 40, True, False)
        assert qwen.moe_layer_indices() == [1] and qwen.sliding_window is None
        llama = MoEConfig.from_pretrained(tmp_path / "llama")
        assert llama.num_local_experts == 0 and llama.tie_word_embeddings
        assert MoEConfig.from_pretrained(tmp_path / "qwen2").attention_bias
        deepseek = {"model_type": "deepseek", "n_routed_experts": 8, "n_shared_experts": 2,
                    "num_experts_per_tok": 3, "moe_intermediate_size": 16,
                    "first_k_dense_replace": 1, "moe_layer_freq": 1, "aux_loss_alpha": 0.001,
                    "seq_aux": True, "scoring_func": "softmax", "norm_topk_prob": False,
                    "pretraining_tp": 1, **small}
        (tmp_path / "deepseek.json").write_text(json.dumps(deepseek))
        ds = MoEConfig.from_pretrained(tmp_path / "deepseek.json")
        assert ds.moe_layer_indices() == [1, 2, 3] and ds.shared_expert_intermediate_size == 32
        assert ds.router_aux_loss_coef == 0.001 and ds.aux_loss_type == "seq"
        assert ds.pretraining_tp == 1
        for cfg in (mix, qwen, llama, ds):      # HF layout written back round-trips
            out = tmp_path / f"back_{cfg.model_type}"
            cfg.save_pretrained(out)
            assert MoEConfig.from_pretrained(out) == cfg
        hf_back = transformers.AutoConfig.from_pretrained(tmp_path / "back_qwen2_moe")
        assert (hf_back.num_experts, hf_back.decoder_sparse_step,
                hf_back.shared_expert_intermediate_size) == (6, 2, 40)

    def test_presets(self):
        names = list_moe_configs()
        assert {"moe-tiny", "moe-small", "mixtral-8x7b", "deepseek-moe-16b"} <= set(names)
        mix = get_moe_config("mixtral-8x7b")
        assert (mix.vocab_size, mix.hidden_size, mix.intermediate_size, mix.num_hidden_layers,
                mix.num_attention_heads, mix.num_key_value_heads, mix.num_local_experts,
                mix.num_experts_per_tok, mix.rope_theta, mix.max_position_embeddings,
                mix.rms_norm_eps) == (32000, 4096, 14336, 32, 32, 8, 8, 2, 1e6, 32768, 1e-5)
        assert round(mix.num_parameters() / 1e9, 1) == 46.7
        ds = get_moe_config("deepseek-moe-16b")
        assert (ds.vocab_size, ds.hidden_size, ds.num_hidden_layers, ds.num_attention_heads,
                ds.num_local_experts, ds.num_experts_per_tok, ds.num_shared_experts,
                ds.moe_intermediate_size, ds.intermediate_size) == \
            (102400, 2048, 28, 16, 64, 6, 2, 1408, 10944)
        assert ds.moe_layer_indices() == list(range(1, 28))
        assert round(ds.num_parameters() / 1e9, 1) == 16.4
        small = get_moe_config("moe-small")
        assert small.hidden_size == 768 and small.num_local_experts == 4
        assert small.num_parameters() < 150e6
        assert get_moe_config("moe-tiny", num_hidden_layers=3).num_hidden_layers == 3
        with pytest.raises(ValueError, match="unknown preset"):
            get_moe_config("gpt-5")

    def test_num_parameters_is_exact(self):
        for kw in (dict(), dict(num_shared_experts=1, shared_expert_gate=True,
                                attention_bias=True, first_moe_layer=1),
                   dict(tie_word_embeddings=True, num_local_experts=0, mlp_bias=True)):
            config = tiny(**kw)
            assert MoEForCausalLM(config).num_parameters() == config.num_parameters()

    def test_too_large_preset_fails_before_allocating(self, monkeypatch):
        monkeypatch.setattr(configuration_moe, "available_memory_bytes", lambda: 16 * 10 ** 9)
        monkeypatch.delenv("GENESIS_SKIP_MEMORY_CHECK", raising=False)
        with pytest.raises(MemoryError) as err:
            MoEForCausalLM.from_pretrained("mixtral-8x7b")
        msg = str(err.value)
        assert "46,702,792,704 parameters" in msg and "186.8 GB" in msg and "16.0 GB" in msg
        monkeypatch.setattr(configuration_moe, "available_memory_bytes", lambda: 10 ** 5)
        with pytest.raises(MemoryError):
            MoEForCausalLM(tiny())
        assert MoEForCausalLM(tiny(), check_memory=False).num_parameters() > 0
        monkeypatch.setenv("GENESIS_SKIP_MEMORY_CHECK", "1")
        assert MoEForCausalLM(tiny()).num_parameters() > 0


# --------------------------------------------------------------------------- model stack
class TestMoEModel:
    def test_moe_model_forward(self):
        genesis.manual_seed(0)
        base = MoEModel(tiny())
        out = base(ids(3, 7))
        assert tuple(out.last_hidden_state.shape) == (3, 7, 32)
        assert len(out.router_outputs) == 2
        logits = build()(ids(3, 7))
        assert tuple(logits.shape) == (3, 7, 96) and logits.dtype is genesis.float32

    def test_dense_and_moe_layer_placement(self):
        model = build(num_hidden_layers=4, use_moe_in_all_layers=False, moe_layer_interval=2,
                      first_moe_layer=1)
        kinds = [type(layer.mlp) for layer in model.model.layers]
        assert kinds == [DenseFFN, MoESparseBlock, DenseFFN, MoESparseBlock]
        ds = build(num_hidden_layers=3, first_moe_layer=1, num_shared_experts=2)
        assert [layer.is_moe_layer for layer in ds.model.layers] == [False, True, True]
        assert ds.model.layers[0].mlp.gate_proj.out_features == 48
        assert ds.model.layers[1].mlp.shared_experts.gate_proj.out_features == 48

    def test_mixed_layers_forward_backward(self):
        model = build(num_hidden_layers=3, mlp_only_layers=[1], num_shared_experts=1,
                      shared_expert_gate=True)
        loss, logits = model(ids(), labels=ids())
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert missing == []
        assert np.isfinite(loss.item())

    def test_parameter_names_follow_hf(self):
        model = build(num_shared_experts=1, shared_expert_gate=True, attention_bias=True,
                      first_moe_layer=1, tie_word_embeddings=True)
        names = set(model.state_dict())
        for key in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                    "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.down_proj.weight",
                    "model.layers.1.self_attn.q_proj.bias",
                    "model.layers.1.self_attn.o_proj.weight",
                    "model.layers.1.input_layernorm.weight",
                    "model.layers.1.post_attention_layernorm.weight",
                    "model.layers.1.mlp.gate.weight", "model.layers.1.mlp.experts.gate_up_proj",
                    "model.layers.1.mlp.experts.down_proj",
                    "model.layers.1.mlp.shared_experts.up_proj.weight",
                    "model.layers.1.mlp.shared_expert_gate.weight"):
            assert key in names, key
        assert "model.layers.1.self_attn.o_proj.bias" not in names
        assert not any("inv_freq" in n for n in names)
        experts = model.model.layers[1].mlp.experts
        assert tuple(experts.gate_up_proj.shape) == (4, 48, 32)
        assert tuple(experts.down_proj.shape) == (4, 32, 24)
        assert model.lm_head.weight is model.model.embed_tokens.weight

    def test_init_scheme(self):
        model = build(initializer_range=0.05, num_hidden_layers=1)
        w = model.model.layers[0].mlp.experts.gate_up_proj.detach().numpy()
        assert abs(w.std() - 0.05) < 0.005
        assert (model.model.norm.weight.detach().numpy() == 1).all()

    def test_every_weight_is_initialised_once_with_hf_scheme(self):
        model = build(initializer_range=0.05, num_hidden_layers=2, num_shared_experts=1,
                      shared_expert_gate=True, attention_bias=True)
        for name, p in model.named_parameters():
            w = p.detach().numpy()
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                assert (w == 1).all(), name
            elif name.endswith(".bias"):
                assert not w.any(), name
            elif w.size >= 32:
                assert abs(w.std() - 0.05) < 0.3 * 0.05 and abs(w.mean()) < 0.05, name

    def test_rmsnorm_and_rotary_match_formulas(self):
        model = build(num_hidden_layers=1)
        x = np.random.default_rng(0).standard_normal((2, 3, 32)).astype(np.float32)
        norm = model.model.norm
        with genesis.no_grad():
            norm.weight.copy_(genesis.tensor(np.linspace(0.5, 1.5, 32), dtype=genesis.float32))
        want = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * np.linspace(0.5, 1.5, 32)
        np.testing.assert_allclose(_np(norm(genesis.tensor(x))), want, rtol=1e-5)
        cos, sin = model.model.rotary_emb(genesis.tensor(x), genesis.tensor([[0, 1, 5]]))
        inv = 1 / 10000 ** (np.arange(0, 8, 2) / 8)
        ang = np.array([0, 1, 5])[:, None] * inv
        np.testing.assert_allclose(cos.numpy()[0], np.cos(np.concatenate([ang, ang], -1)),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sin.numpy()[0], np.sin(np.concatenate([ang, ang], -1)),
                                   rtol=1e-5, atol=1e-6)

    def test_kv_cache_matches_full_forward(self):
        model = build(num_key_value_heads=1).eval()
        x = ids(2, 9)
        full = _np(model(x))
        out = model(x[:, :5], use_cache=True)
        steps = [_np(out.logits)]
        cache = out.past_key_values
        for t in range(5, 9):
            out = model(x[:, t:t + 1], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            steps.append(_np(out.logits))
        np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-4, atol=1e-5)
        assert cache.get_seq_length() == 9

    def test_left_padding_leaves_real_tokens_unchanged(self):
        model = build().eval()
        x = ids(1, 6)
        alone = _np(model(x))
        padded = genesis.cat([genesis.zeros(1, 3, dtype=genesis.int64), x], dim=1)
        mask = genesis.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
        pos = genesis.tensor([[1, 1, 1, 0, 1, 2, 3, 4, 5]])
        out = _np(model(padded, attention_mask=mask, position_ids=pos))
        np.testing.assert_allclose(out[:, 3:], alone, rtol=1e-4, atol=1e-5)

    def test_sliding_window_limits_context(self):
        model = build(sliding_window=3).eval()
        a, b = ids(1, 8, seed=1), ids(1, 8, seed=2)
        mixed = genesis.cat([b[:, :3], a[:, 3:]], dim=1)      # 2 layers x window 3 reach back 4
        np.testing.assert_allclose(_np(model(mixed))[:, -1], _np(model(a))[:, -1], rtol=1e-5,
                                   atol=1e-6)

    def test_dense_model_without_experts(self):
        model = build(num_local_experts=0)
        assert not any(isinstance(layer.mlp, MoESparseBlock) for layer in model.model.layers)
        out = model(ids(), labels=ids(), return_dict=True, output_router_logits=True)
        assert out.aux_loss is None and out.router_logits == ()


# --------------------------------------------------------------------------- causal LM
class TestMoEForCausalLM:
    def test_return_conventions(self):
        model = build()
        x = ids()
        assert isinstance(model(x), genesis.Tensor)
        loss, logits = model(x, labels=x)
        assert loss.ndim == 0 and tuple(logits.shape) == (2, 10, 96)
        out = model(x, labels=x, return_dict=True)
        assert out["logits"] is out.logits and out.to_tuple()[0] is out.loss
        out = model(x, output_router_logits=True)
        assert len(out.router_logits) == 2 and tuple(out.router_logits[0].shape) == (20, 4)
        assert out.router_stats["active_experts_per_token"] == (2.0, 2.0)
        assert np.isclose(out.router_stats["expert_load"][0].sum(), 1.0)
        assert out.past_key_values is None
        assert model(x, use_cache=True).past_key_values.get_seq_length() == 10

    def test_loss_matches_shifted_ce_plus_aux(self):
        model = build(router_aux_loss_coef=0.1)
        x = ids()
        labels = ids(seed=5)
        model.train()
        out = model(x, labels=labels, output_router_logits=True)
        ce = manual_ce(_np(out.logits), labels.numpy())
        logits = np.concatenate([_np(l) for l in out.router_logits]).astype(np.float64)
        probs = _softmax(logits)
        top = np.argsort(-probs, -1)[:, :2]
        frac = np.array([(top == e).any(-1).mean() for e in range(4)])
        aux = 4 * (frac * probs.mean(0)).sum()
        assert out.aux_loss.item() == pytest.approx(aux, rel=1e-5)
        assert out.loss.item() == pytest.approx(ce + 0.1 * aux, rel=1e-5)
        model.eval()
        loss, logits = model(x, labels=labels)
        assert loss.item() == pytest.approx(manual_ce(_np(logits), labels.numpy()), rel=1e-5)

    def test_ignore_index_and_padding_aware_aux(self):
        model = build(router_aux_loss_coef=0.0)
        x = ids()
        labels = x.numpy().copy()
        labels[0, :4] = -100
        labels[1, 7:] = -100
        loss, logits = model(x, labels=genesis.tensor(labels))
        assert loss.item() == pytest.approx(manual_ce(_np(logits), labels), rel=1e-5)
        mask = np.ones((2, 10), dtype=np.int64)
        mask[0, :3] = 0
        out = model(x, attention_mask=genesis.tensor(mask), output_router_logits=True)
        kept = mask.reshape(-1).astype(bool)
        probs = _softmax(np.concatenate([_np(l)[kept] for l in out.router_logits]))
        top = np.argsort(-probs, -1)[:, :2]
        frac = np.array([(top == e).any(-1).mean() for e in range(4)])
        assert out.aux_loss.item() == pytest.approx(4 * (frac * probs.mean(0)).sum(), rel=1e-5)

    def test_seq_aux_and_z_loss(self):
        model = build(seq_aux=True, router_aux_loss_coef=0.01, router_z_loss_coef=0.001,
                      num_shared_experts=1)
        x, labels = ids(), ids(seed=3)
        out = model(x, labels=labels, output_router_logits=True)
        per_layer = []
        for layer_logits in out.router_logits:
            scores = genesis.softmax(layer_logits.detach().float(), dim=-1)
            top = genesis.topk(scores, 2, dim=-1).indices
            per_layer.append(sequence_load_balancing_loss(scores, top, 2, 4).item())
        assert out.aux_loss.item() == pytest.approx(sum(per_layer), rel=1e-5)
        lse = [np.log(np.exp(_np(l).astype(np.float64)).sum(-1)) for l in out.router_logits]
        z = np.mean(np.concatenate(lse) ** 2)
        assert out.z_loss.item() == pytest.approx(z, rel=1e-5)
        ce = manual_ce(_np(out.logits), labels.numpy())
        assert out.loss.item() == pytest.approx(ce + 0.01 * sum(per_layer) + 0.001 * z, rel=1e-5)

    def test_tiny_model_overfits_one_batch(self):
        model = build(seed=1, vocab_size=64)
        x = ids(4, 12, vocab=64, seed=7)
        opt = genesis.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
        first = None
        for _ in range(60):
            opt.zero_grad()
            loss, _ = model(x, labels=x)
            loss.backward()
            opt.step()
            first = loss.item() if first is None else first
        assert first > 3.5 and loss.item() < 0.3, (first, loss.item())

    def test_generate_with_and_without_cache_agree(self):
        model = build()
        prompt = ids(2, 4)
        a = model.generate(prompt, max_new_tokens=6, use_cache=True)
        b = model.generate(prompt, max_new_tokens=6, use_cache=False)
        assert tuple(a.shape) == (2, 10)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a.numpy()[:, :4], prompt.numpy())

    def test_from_pretrained_preset(self):
        model = MoEForCausalLM.from_pretrained("moe-tiny")
        assert model.config == get_moe_config("moe-tiny")
        assert tuple(model(ids(1, 5, vocab=128)).shape) == (1, 5, 128)
        assert model.training

    def test_input_errors(self):
        model = build()
        with pytest.raises(ValueError, match="input_ids"):
            model(genesis.randn(2, 5))
        with pytest.raises(ValueError, match="labels"):
            model(ids(), labels=ids(2, 9))
        with pytest.raises(ValueError, match="attention_mask"):
            model(ids(), attention_mask=genesis.ones(2, 4, dtype=genesis.int64))
        with pytest.raises(TypeError, match="config"):
            MoEForCausalLM({"hidden_size": 32})
