"""AutoConfig / AutoModelForCausalLM pick the class by model_type, as HuggingFace users write."""
import json

import numpy as np
import pytest

import genesis
from genesis.models.transformers import (AutoConfig, AutoModelForCausalLM, MoEConfig,
                                         MoEForCausalLM, get_moe_config)

TINY = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)


def test_from_config_and_round_trip_without_torch(tmp_path):
    config = AutoConfig.for_model("mixtral", num_local_experts=4, num_experts_per_tok=2, **TINY)
    assert isinstance(config, MoEConfig) and config.model_type == "mixtral"
    genesis.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    assert type(model) is MoEForCausalLM and model.config.num_local_experts == 4
    model.save_pretrained(tmp_path)
    loaded_config = AutoConfig.from_pretrained(tmp_path)
    assert loaded_config == MoEConfig.from_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is MoEForCausalLM and loaded.config.model_type == "mixtral"
    ids = genesis.tensor([[1, 5, 9, 3]])
    with genesis.no_grad():
        np.testing.assert_array_equal(loaded(ids).numpy(), model.eval()(ids).numpy())


def test_dtype_and_overrides(tmp_path):
    config = AutoConfig.for_model("llama", **TINY)
    model = AutoModelForCausalLM.from_config(config, dtype=genesis.float64)
    assert model.lm_head.weight.dtype is genesis.float64
    assert genesis.get_default_dtype() is genesis.float32
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, torch_dtype=genesis.bfloat16)
    assert loaded.lm_head.weight.dtype is genesis.bfloat16
    assert AutoConfig.from_pretrained(tmp_path, rms_norm_eps=1e-3).rms_norm_eps == 1e-3
    with pytest.raises(ValueError, match="both dtype"):
        AutoModelForCausalLM.from_pretrained(tmp_path, dtype=genesis.float32,
                                             torch_dtype=genesis.float64)


def test_presets():
    assert AutoConfig.from_pretrained("moe-tiny") == get_moe_config("moe-tiny")
    model = AutoModelForCausalLM.from_pretrained("moe-tiny")
    assert type(model) is MoEForCausalLM


@pytest.mark.parametrize("config_json,match", [({"model_type": "bert"}, "unrecognized model_type"),
                                               ({"hidden_size": 8}, "model_type")])
def test_unknown_or_missing_model_type(tmp_path, config_json, match):
    (tmp_path / "config.json").write_text(json.dumps(config_json))
    with pytest.raises(ValueError, match=match):
        AutoConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=match):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not download"):
        AutoModelForCausalLM.from_pretrained("some-org/some-model")
    with pytest.raises(EnvironmentError):
        AutoConfig()
    with pytest.raises(ValueError, match="unrecognized model_type"):
        AutoConfig.for_model("bert")
    with pytest.raises(TypeError, match="config="):
        AutoModelForCausalLM.from_pretrained("moe-tiny", config=get_moe_config("moe-tiny"))
    with pytest.raises(ValueError, match="already registered"):
        AutoConfig.register("mixtral", MoEConfig)


def test_register_a_new_model_type(tmp_path):
    from genesis.models.transformers import auto

    class MyConfig(MoEConfig):
        model_type = "my_moe"

    class MyModel(MoEForCausalLM):
        pass

    try:
        AutoModelForCausalLM.register(MyConfig, MyModel)
        assert auto.MODEL_FOR_CAUSAL_LM_MAPPING["my_moe"] is MyModel
    finally:
        auto.MODEL_FOR_CAUSAL_LM_MAPPING.pop("my_moe", None)


# --------------------------------------------------------------------------- HF checkpoints
HF_KINDS = ["mixtral", "qwen2_moe_norm", "llama_tied", "qwen2"]


@pytest.fixture(scope="module", params=HF_KINDS)
def hf_checkpoint(request, tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.test_hf_parity import CASES, hf_model
    spec = dict(CASES[request.param])
    kind = spec.pop("kind")
    hf = hf_model(kind, **spec)
    path = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(path, safe_serialization=True)
    return kind, hf, path


def test_auto_classes_load_hf_checkpoints(hf_checkpoint):
    import torch
    import transformers
    kind, hf, path = hf_checkpoint
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == transformers.AutoConfig.from_pretrained(path).model_type == kind
    model = AutoModelForCausalLM.from_pretrained(path)
    assert type(model) is MoEForCausalLM
    ids = np.random.default_rng(0).integers(3, 97, (2, 7))
    with torch.no_grad():
        ref = transformers.AutoModelForCausalLM.from_pretrained(
            path, attn_implementation="eager").float().eval()(torch.tensor(ids)).logits.numpy()
        np.testing.assert_allclose(ref, hf(torch.tensor(ids)).logits.numpy(), atol=1e-6)
    with genesis.no_grad():
        got = model(genesis.tensor(ids)).numpy()
    assert np.abs(got - ref).max() < 1e-5


def test_from_config_matches_hf_architecture(hf_checkpoint):
    kind, hf, path = hf_checkpoint
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    assert type(model) is MoEForCausalLM
    assert model.num_parameters() == hf.num_parameters()
    assert model.state_dict()["model.embed_tokens.weight"].shape == \
        tuple(hf.state_dict()["model.embed_tokens.weight"].shape)
