"""MoE language models with HuggingFace-style APIs: configs, presets, models, generation, I/O,
tokenizers."""
from .auto import AutoConfig, AutoModelForCausalLM
from .configuration_moe import MoEConfig
from .modeling_moe import (DenseFFN, MoEAttention, MoECausalLMOutput, MoEDecoderLayer,
                           MoEExperts, MoEForCausalLM, MoEModel, MoEModelOutput,
                           MoEPreTrainedModel, MoERMSNorm, MoERotaryEmbedding, MoESparseBlock)
from .generation import DynamicCache, GenerationMixin
from .presets import get_moe_config, list_moe_configs
from .routing import MoERouter, RouterOutput
from .sparsify import inject_router
from .tokenization import AutoTokenizer, ByteTokenizer, PreTrainedTokenizerFast

__all__ = ["AutoConfig", "AutoModelForCausalLM", "MoEConfig", "MoEForCausalLM", "MoEModel",
           "MoEPreTrainedModel", "get_moe_config",
           "list_moe_configs", "MoECausalLMOutput", "MoEModelOutput", "MoERMSNorm",
           "MoERotaryEmbedding", "MoEAttention", "DenseFFN", "MoEExperts", "MoESparseBlock",
           "MoEDecoderLayer", "MoERouter", "RouterOutput", "DynamicCache", "GenerationMixin",
           "AutoTokenizer", "ByteTokenizer", "PreTrainedTokenizerFast", "inject_router"]
