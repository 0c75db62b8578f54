"""Named MoE configurations: ``get_moe_config(name)`` and ``list_moe_configs()``.

``mixtral-8x7b`` and ``deepseek-moe-16b`` reproduce the published ``config.json`` files;
``moe-small`` trains on a laptop CPU; ``moe-tiny`` is for tests and examples.
"""
import copy

from .configuration_moe import MoEConfig

__all__ = ["PRESETS", "get_moe_config", "list_moe_configs"]

PRESETS = {
    "moe-tiny": dict(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        num_local_experts=4, num_experts_per_tok=2, moe_intermediate_size=64,
        rms_norm_eps=1e-6, rope_theta=10000.0),
    "moe-small": dict(
        vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=6,
        num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
        num_local_experts=4, num_experts_per_tok=2, moe_intermediate_size=1024,
        tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=10000.0),
    "mixtral-8x7b": dict(
        model_type="mixtral", vocab_size=32000, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-5, hidden_act="silu",
        num_local_experts=8, num_experts_per_tok=2, norm_topk_prob=True,
        router_aux_loss_coef=0.02, router_jitter_noise=0.0, sliding_window=None,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, dtype="bfloat16"),
    "deepseek-moe-16b": dict(
        model_type="deepseek", vocab_size=102400, hidden_size=2048, intermediate_size=10944,
        moe_intermediate_size=1408, num_hidden_layers=28, num_attention_heads=16,
        num_key_value_heads=16, num_local_experts=64, num_shared_experts=2,
        num_experts_per_tok=6, first_moe_layer=1, moe_layer_interval=1,
        norm_topk_prob=False, scoring_func="softmax", router_aux_loss_coef=0.001, seq_aux=True,
        max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6,
        bos_token_id=100000, eos_token_id=100001, tie_word_embeddings=False,
        attention_bias=False, dtype="bfloat16"),
}


def list_moe_configs():
    """Names of the preset configurations, for ``get_moe_config``/``from_pretrained``."""
    return list(PRESETS)


def get_moe_config(name, **overrides):
    """The preset ``MoEConfig`` called ``name``; keyword arguments override its fields."""
    if name not in PRESETS:
        raise ValueError(f"get_moe_config: unknown preset {name!r}; available presets: "
                         f"{list_moe_configs()}")
    fields = copy.deepcopy(PRESETS[name])
    fields.update(overrides)
    return MoEConfig(**fields)
