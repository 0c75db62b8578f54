"""Mixture-of-Experts decoder-only language models (Mixtral, Qwen2-MoE, DeepSeek-MoE, Llama).

One readable file in HuggingFace's layout and parameter names, so HF state dicts map directly:

    MoEForCausalLM
      model: MoEModel
        embed_tokens, layers[i]: MoEDecoderLayer(input_layernorm, self_attn,
        post_attention_layernorm, mlp = DenseFFN | MoESparseBlock), norm, rotary_emb
      lm_head

Pre-norm residual blocks, RoPE in the rotate-half convention, grouped-query attention through
``F.scaled_dot_product_attention``, SwiGLU FFNs and a sparse block whose experts run through the
fused sorted-dispatch op ``genesis.moe_experts`` (one matmul per active expert, DESIGN rule 4).
"""
import copy
import dataclasses
import os
from typing import Any, Optional

import numpy as np

from ... import backends, dtypes, ops
from ...creation import ones, rand, zeros
from ...nn import Embedding, Linear, Module, ModuleList, Parameter
from ...nn import functional as F
from ...nn import init
from ...ops.projection import pack_rows
from ...tensor import Tensor
from .configuration_moe import MoEConfig
from .configuration_moe import check_memory as _check_memory
from .generation import DynamicCache, GenerationMixin
from . import genesis_router  # noqa: F401  (registers router_type "genesis")
from .routing import Router, build_router, router_class, routing_metrics

__all__ = ["MoERMSNorm", "MoERotaryEmbedding", "MoEAttention", "DenseFFN", "MoEExperts",
           "MoESparseBlock", "MoEDecoderLayer", "MoEPreTrainedModel", "MoEModel",
           "MoEForCausalLM", "MoEModelOutput", "MoECausalLMOutput", "apply_rotary_pos_emb",
           "rotate_half"]


# --------------------------------------------------------------------------- outputs
class _Output:
    """HF ``ModelOutput`` behaviour: attribute and key access, ``to_tuple`` of set fields."""

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(f"{type(self).__name__} has no field {key!r} set; available: "
                               f"{self.keys()}")
            return getattr(self, key)
        return self.to_tuple()[key]

    def keys(self):
        """Names of the fields that are not None, in order."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def to_tuple(self):
        """The fields that are not None, in order (like HF's ``ModelOutput.to_tuple``)."""
        return tuple(getattr(self, k) for k in self.keys())


@dataclasses.dataclass
class MoEModelOutput(_Output):
    """``MoEModel`` output: final hidden states, the cache and each MoE layer's routing."""

    last_hidden_state: Tensor = None
    past_key_values: Any = None
    router_outputs: Optional[tuple] = None


@dataclasses.dataclass
class MoECausalLMOutput(_Output):
    """``MoEForCausalLM`` output (HF's ``MoeCausalLMOutputWithPast`` plus genesis metrics).

    ``router_logits``: one ``[B*S, E]`` tensor per MoE layer; ``router_stats``: metric name ->
    tuple with one entry per MoE layer, from ``routing.routing_metrics`` for every router
    (``expert_load``, ``active_experts_per_token``, ``dropped_fraction``, ``load_imbalance``,
    ``load_cv``, ``min_fair_share``, ``starved_fraction``, ``overflow_fraction``, ``ssi``,
    ``experts_alive``; the Genesis router adds ``energy`` and ``cost_potential_spread``). With
    the Genesis router ``aux_loss`` is the summed per-layer mean entropy energy.
    """

    loss: Optional[Tensor] = None
    logits: Tensor = None
    past_key_values: Any = None
    aux_loss: Optional[Tensor] = None
    z_loss: Optional[Tensor] = None
    router_logits: Optional[tuple] = None
    router_stats: Optional[dict] = None


# --------------------------------------------------------------------------- building blocks
class MoERMSNorm(Module):
    """RMSNorm as HF: normalise in float32 (eps inside the sqrt), cast back, times ``weight``."""

    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = Parameter(ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        """Normalise the last dimension."""
        return F.rms_norm(hidden_states, (hidden_states.shape[-1],), self.weight,
                          self.variance_epsilon)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class MoERotaryEmbedding(Module):
    """Default RoPE: ``inv_freq = 1 / theta^(2i/D)``; returns ``cos, sin [B, S, D]`` (no grad)."""

    def __init__(self, config):
        super().__init__()
        dim = config.head_dim
        exponents = np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)
        inv_freq = (1.0 / (np.float32(config.rope_theta) ** exponents)).astype(np.float32)
        self.register_buffer("inv_freq", Tensor._make(inv_freq), persistent=False)
        self.attention_scaling = 1.0

    def forward(self, x, position_ids):
        """cos/sin tables of ``position_ids [B, S]`` in ``x``'s dtype."""
        xp = backends.xp_for(x.device)
        pos = position_ids._array.astype(np.float32)
        freqs = pos[..., None] * xp.asarray(self.inv_freq._array)
        emb = xp.concatenate([freqs, freqs], axis=-1)
        npd = x.dtype.np
        cos = (xp.cos(emb) * self.attention_scaling).astype(npd)
        sin = (xp.sin(emb) * self.attention_scaling).astype(npd)
        return Tensor._make(cos, device=x.device), Tensor._make(sin, device=x.device)


def rotate_half(x):
    """``concat(-x[..., D/2:], x[..., :D/2])``: the half-split RoPE pairing of HF."""
    half = x.shape[-1] // 2
    return ops.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """Rotate queries and keys ``[B, H, S, D]`` by the positions' ``cos``/``sin [B, S, D]``."""
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    return ops.rotary_embedding(q, cos, sin), ops.rotary_embedding(k, cos, sin)


class MergedProjections:
    """Linear layers of one module that read the same input, run as one GEMM
    (``ops.merged_linear``: fused QKV, fused gate/up).

    The layers stay ordinary ``Linear`` children with HF names, so state dicts, checkpoints and
    optimizers see separate parameters; their weights (and biases) are packed as consecutive
    row blocks of one array, so the merged GEMM reads them without a copy and every in-place
    update (optimizer step, ``load_state_dict``, checkpoint loading) is seen at once. When a
    layer was replaced, carries hooks, or its parameters no longer hold the packed views, the
    layers run one by one or their current weights are concatenated: always the same result.
    """

    def __init__(self, owner, names):
        self.names = names
        self.weight_rows = self.bias_rows = None
        self.pack(owner)

    def _layers(self, owner):
        return [owner._modules[name] for name in self.names]

    def pack(self, owner):
        """Place the layers' weights (and biases) in one array each (their storage changes)."""
        layers = self._layers(owner)
        self.weight_rows = pack_rows([layer.weight for layer in layers])
        biases = [layer.bias for layer in layers]
        self.bias_rows = pack_rows(biases) if all(b is not None for b in biases) else None

    def converted(self, owner):
        """Whether every packed tensor now holds another array (``Module.to`` converted them
        all), so that packing them again aliases nothing anyone holds."""
        if self.weight_rows is None:
            return False
        layers = self._layers(owner)
        pairs = [(layer.weight, self.weight_rows) for layer in layers]
        if self.bias_rows is not None:
            pairs += [(layer.bias, self.bias_rows) for layer in layers]
        return all(t is not None and not any(t._array is v for v in rows.views)
                   for t, rows in pairs)

    def __deepcopy__(self, memo):
        new = copy.copy(self)
        new.weight_rows = new.bias_rows = None  # the copy's tensors are not views of a pack
        return new

    def __call__(self, owner, x):
        """``cat([layer(x) for layer in layers], dim=-1)``."""
        layers = self._layers(owner)
        weights, biases = [], []
        for m in layers:
            if type(m) is not Linear or m._forward_hooks or m._forward_pre_hooks:
                return ops.cat([m(x) for m in layers], dim=-1)
            params = m._parameters
            weights.append(params["weight"])
            biases.append(params["bias"])
        if any(b is None for b in biases):
            if any(b is not None for b in biases):  # some layers have a bias, others not
                return ops.cat([m(x) for m in layers], dim=-1)
            biases = None
        return ops.merged_linear(x, weights, biases, self.weight_rows, self.bias_rows)


class MoEAttention(Module):
    """Multi-head attention with grouped KV heads, RoPE, padding masks and a KV cache."""

    def __init__(self, config, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.scaling = self.head_dim ** -0.5
        self.attention_dropout = config.attention_dropout
        d, bias = config.hidden_size, config.attention_bias
        self.q_proj = Linear(d, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = Linear(d, self.num_key_value_heads * self.head_dim, bias=bias)
        self.v_proj = Linear(d, self.num_key_value_heads * self.head_dim, bias=bias)
        self.o_proj = Linear(self.num_heads * self.head_dim, d, bias=config.attention_out_bias)
        self.qkv = MergedProjections(self, ("q_proj", "k_proj", "v_proj"))

    def forward(self, hidden_states, position_embeddings, attention_mask=None, is_causal=True,
                past_key_values=None):
        """``[B, S, d]`` -> ``[B, S, d]``; ``position_embeddings``: RoPE ``(cos, sin)``, each
        ``[B, 1, S, D]`` (or HF's ``[B, S, D]``); ``attention_mask`` is additive ``[B, 1, S,
        KV]``.

        q, k and v come from one GEMM, and RoPE rotates the query and key heads in one op."""
        bsz, seq, _ = hidden_states.shape
        qkv = self.qkv(self, hidden_states).view(bsz, seq, -1, self.head_dim).transpose(1, 2)
        qk, v = qkv.split([self.num_heads + self.num_key_value_heads,
                           self.num_key_value_heads], dim=1)
        cos, sin = position_embeddings
        if cos.ndim == 3:  # HF's [B, S, D] tables
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q, k = ops.rotary_embedding(qk, cos, sin).split([self.num_heads,
                                                          self.num_key_value_heads], dim=1)
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_idx)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask, is_causal=is_causal and attention_mask is None,
            dropout_p=self.attention_dropout if self.training else 0.0, scale=self.scaling,
            enable_gqa=self.num_key_value_groups > 1)
        out = out.transpose(1, 2).reshape(bsz, seq, self.num_heads * self.head_dim)
        return self.o_proj(out)


_DENSE_ACTS = {"silu": F.silu, "swish": F.silu, "relu": ops.relu, "gelu": F.gelu,
               "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}


class DenseFFN(Module):
    """Gated FFN ``down(act(gate(x)) * up(x))`` (SwiGLU with silu: one fused node)."""

    def __init__(self, config, intermediate_size=None):
        super().__init__()
        d = config.hidden_size
        inter = config.intermediate_size if intermediate_size is None else intermediate_size
        self.hidden_act = config.hidden_act
        self.gate_proj = Linear(d, inter, bias=config.mlp_bias)
        self.up_proj = Linear(d, inter, bias=config.mlp_bias)
        self.down_proj = Linear(inter, d, bias=config.mlp_bias)
        self.gate_up = MergedProjections(self, ("gate_proj", "up_proj"))

    def forward(self, x):
        """Apply the FFN to the last dimension (gate and up projections as one GEMM)."""
        gate, up = self.gate_up(self, x).chunk(2, dim=-1)
        if self.hidden_act in ("silu", "swish"):
            return self.down_proj(F.silu_and_mul(gate, up))
        return self.down_proj(_DENSE_ACTS[self.hidden_act](gate) * up)


class MoEExperts(Module):
    """The routed experts, stacked: ``gate_up_proj [E, 2I, d]`` (gate rows first), ``down_proj
    [E, d, I]``, computed by the sorted-dispatch op ``genesis.moe_experts``. With the Genesis
    router ``E`` is ``config.num_expert_slots`` (slots for experts born by mitosis)."""

    def __init__(self, config):
        super().__init__()
        e, d, inter = config.num_expert_slots, config.hidden_size, config.moe_intermediate_size
        self.num_experts = e
        self.hidden_act = config.hidden_act
        self.gate_up_proj = Parameter(zeros(e, 2 * inter, d))
        self.down_proj = Parameter(zeros(e, d, inter))

    def forward(self, hidden_states, topk_ids, topk_weights):
        """``[N, d]`` tokens and their routing ``[N, k]`` -> the weighted expert sum ``[N, d]``."""
        return ops.moe_experts(hidden_states, topk_ids, topk_weights, self.gate_up_proj,
                               self.down_proj, self.hidden_act)


class MoESparseBlock(Module):
    """Router + routed experts (+ shared experts, sigmoid-gated for Qwen2-MoE)."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.jitter_noise = config.router_jitter_noise
        self.gate = build_router(config, layer_idx)
        self.experts = MoEExperts(config)
        self.shared_experts = DenseFFN(config, config.shared_expert_intermediate_size) \
            if config.num_shared_experts else None
        self.shared_expert_gate = Linear(config.hidden_size, 1, bias=False) \
            if config.shared_expert_gate else None

    def forward(self, hidden_states, attention_mask=None, compute_aux=False):
        """``[B, S, d]`` -> (``[B, S, d]``, the ``RouterOutput``)."""
        bsz, seq, d = hidden_states.shape
        if self.training and self.jitter_noise > 0:
            noise = rand(*hidden_states.shape, dtype=hidden_states.dtype,
                         device=hidden_states.device)
            hidden_states = hidden_states * (noise * (2 * self.jitter_noise)
                                             + (1.0 - self.jitter_noise))
        flat = hidden_states.reshape(bsz * seq, d)
        routing = self.gate(flat, attention_mask, bsz, compute_aux)
        out = self.experts(flat, routing.dispatch_ids(), routing.topk_weights)
        if self.shared_experts is not None:
            shared = self.shared_experts(flat)
            if self.shared_expert_gate is not None:
                shared = ops.sigmoid(self.shared_expert_gate(flat)) * shared
            out = out + shared
        return out.reshape(bsz, seq, d), routing


class MoEDecoderLayer(Module):
    """Pre-norm block: ``h = x + attn(norm(x)); out = h + mlp(norm(h))``."""

    def __init__(self, config, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.is_moe_layer = config.is_moe_layer(layer_idx)
        self.input_layernorm = MoERMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = MoEAttention(config, layer_idx)
        self.post_attention_layernorm = MoERMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = MoESparseBlock(config, layer_idx) if self.is_moe_layer else DenseFFN(config)

    def forward(self, hidden_states, position_embeddings, attention_mask=None, is_causal=True,
                past_key_values=None, token_mask=None, compute_aux=False):
        """Returns (hidden states, the layer's ``RouterOutput`` or None for dense layers)."""
        residual = hidden_states
        h = self.self_attn(self.input_layernorm(hidden_states), position_embeddings,
                           attention_mask, is_causal, past_key_values)
        hidden_states = residual + h
        h = self.post_attention_layernorm(hidden_states)
        routing = None
        if self.is_moe_layer:
            h, routing = self.mlp(h, token_mask, compute_aux)
        else:
            h = self.mlp(h)
        return hidden_states + h, routing


# --------------------------------------------------------------------------- models
class MoEPreTrainedModel(Module):
    """Weight init, presets, checkpoint I/O and parameter counting shared by the MoE models."""

    config_class = MoEConfig
    base_model_prefix = "model"

    def __init__(self, config, check_memory=True):
        if not isinstance(config, MoEConfig):
            raise TypeError(f"{type(self).__name__}: config must be a MoEConfig, got "
                            f"{type(config).__name__}")
        super().__init__()
        config.validate()
        if check_memory:
            _check_memory(config, what=type(self).__name__)
        self.config = config

    def _init_weights(self, module):
        """N(0, initializer_range) weights, zero biases, unit norms (HF's scheme)."""
        std = self.config.initializer_range
        if isinstance(module, (Linear, Embedding)):
            init.normal_(module.weight, 0.0, std)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
            if getattr(module, "padding_idx", None) is not None:
                module.weight._array[module.padding_idx] = 0
        elif isinstance(module, MoEExperts):
            init.normal_(module.gate_up_proj, 0.0, std)
            init.normal_(module.down_proj, 0.0, std)
        elif isinstance(module, MoERMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, Router):
            module.reset_parameters(std)

    def post_init(self):
        """Initialise every weight with ``_init_weights``."""
        self.apply(self._init_weights)

    def to(self, *args, **kwargs):
        """``Module.to``, then the merged projections whose weights it converted are packed
        again (``MergedProjections``), so the converted model keeps its fused GEMMs."""
        super().to(*args, **kwargs)
        for module in self.modules():
            for merged in vars(module).values():
                if isinstance(merged, MergedProjections) and merged.converted(module):
                    merged.pack(module)
        return self

    def update_router_state(self, optimizer=None, generator=None):
        """Call once after each ``optimizer.step()``: every router applies what the training
        forwards since the last call recorded (the Genesis router: cost potential, centroids,
        load, and mitosis every ``genesis_mitosis_interval`` calls, copying ``optimizer``'s
        state into born experts and drawing their noise from ``generator``, default genesis's
        seeded default generator; top-k routers have no state). Returns the births as
        ``[{"layer", "parent", "child"}]``."""
        births = []
        for module in self.modules():
            if isinstance(module, MoESparseBlock):
                experts = module.experts
                born = experts.update_router(module.gate, optimizer, generator) \
                    if getattr(experts, "expert_parallel", False) \
                    else module.gate.update_state(experts, optimizer, generator)
                if born is not None:
                    births.append({"layer": module.gate.layer_idx, "parent": born[0],
                                   "child": born[1]})
        return births

    def num_parameters(self, only_trainable=False, exclude_embeddings=False):
        """Number of (unique) parameters, like HF's ``num_parameters``."""
        seen = set()
        total = 0
        for name, p in self.named_parameters():
            if id(p) in seen or (only_trainable and not p.requires_grad):
                continue
            if exclude_embeddings and ("embed_tokens" in name or "lm_head" in name):
                continue
            seen.add(id(p))
            total += p.numel()
        return total

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, dtype=None, **kwargs):
        """A preset name builds a fresh random model (in ``dtype``); a directory loads an HF
        checkpoint through ``checkpoint.load_pretrained``."""
        from .presets import PRESETS, get_moe_config
        name = os.fspath(pretrained_model_name_or_path)
        if name in PRESETS and not os.path.exists(name):
            check = kwargs.pop("check_memory", True)
            config = get_moe_config(name, **kwargs)
            with dtypes.default_dtype(dtype):
                return cls(config, check_memory=check)
        from . import checkpoint
        return checkpoint.load_pretrained(cls, pretrained_model_name_or_path, dtype=dtype,
                                          **kwargs)

    def save_pretrained(self, save_directory, max_shard_size="50GB", **kwargs):
        """Write ``config.json`` + safetensors weights in the HF layout of the config's type."""
        from . import checkpoint
        return checkpoint.save_pretrained(self, save_directory, max_shard_size=max_shard_size,
                                          **kwargs)


class MoEModel(MoEPreTrainedModel):
    """The decoder stack: embeddings, ``num_hidden_layers`` decoder layers, final norm."""

    def __init__(self, config, check_memory=True):
        super().__init__(config, check_memory)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        with init.skip_init():  # post_init draws every weight once, with HF's scheme
            self.embed_tokens = Embedding(config.vocab_size, config.hidden_size,
                                          self.padding_idx)
            self.layers = ModuleList([MoEDecoderLayer(config, i)
                                      for i in range(config.num_hidden_layers)])
        self.norm = MoERMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = MoERotaryEmbedding(config)
        if type(self) is MoEModel:
            self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None,
                past_key_values=None, use_cache=False, inputs_embeds=None, compute_aux=False):
        """Hidden states ``[B, S, d]`` plus the cache and the MoE layers' routing outputs."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("MoEModel: pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            _check_ids(input_ids)
            inputs_embeds = self.embed_tokens(input_ids)
        bsz, seq = inputs_embeds.shape[:2]
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        xp = backends.xp_for(inputs_embeds.device)
        if position_ids is None:
            position_ids = Tensor._make(xp.arange(past, past + seq, dtype=np.int64)[None],
                                        device=inputs_embeds.device)
        mask, is_causal, token_mask = self._attention_mask(attention_mask, bsz, seq, past,
                                                           inputs_embeds)
        position_embeddings = tuple(t.unsqueeze(1)
                                    for t in self.rotary_emb(inputs_embeds, position_ids))
        hidden = inputs_embeds
        routings = []
        for layer in self.layers:
            hidden, routing = layer(hidden, position_embeddings, mask, is_causal,
                                    past_key_values, token_mask, compute_aux)
            if routing is not None:
                routings.append(routing)
        return MoEModelOutput(self.norm(hidden), past_key_values, tuple(routings))

    def _attention_mask(self, attention_mask, bsz, seq, past, like):
        """(additive mask ``[B, 1, S, KV]`` or None, is_causal, 2-D mask of the new tokens).

        Key ``j`` is visible to query ``i`` iff ``j <= past + i``, the 2-D mask keeps ``j`` and,
        with a sliding window ``W``, ``past + i - j < W`` (HF's mask, with dtype-min fill).
        """
        xp = backends.xp_for(like.device)
        kv = past + seq
        keep2d = None
        if attention_mask is not None:
            keep2d = attention_mask._array if isinstance(attention_mask, Tensor) else \
                xp.asarray(attention_mask)
            if keep2d.ndim != 2 or keep2d.shape[0] != bsz or keep2d.shape[1] < kv:
                raise ValueError(f"MoEModel: attention_mask must be [batch, past + seq] = "
                                 f"[{bsz}, {kv}], got {tuple(keep2d.shape)}")
            keep2d = keep2d[:, keep2d.shape[1] - kv:] != 0
        token_mask = None if keep2d is None else Tensor._make(keep2d[:, past:], device=like.device)
        window = self.config.sliding_window
        windowed = window is not None and kv > window
        if (keep2d is None or bool(keep2d.all())) and not windowed and (past == 0 or seq == 1):
            return None, past == 0, token_mask
        q_pos = xp.arange(past, kv)[:, None]
        k_pos = xp.arange(kv)[None, :]
        allowed = k_pos <= q_pos
        if windowed:
            allowed = allowed & (q_pos - k_pos < window)
        allowed = allowed[None] if keep2d is None else allowed[None] & keep2d[:, None, :]
        fill = _finfo(like.dtype.np).min
        additive = xp.where(allowed, 0.0, fill).astype(like.dtype.np)[:, None]
        return Tensor._make(additive, device=like.device), False, token_mask


class MoEForCausalLM(MoEPreTrainedModel, GenerationMixin):
    """``MoEModel`` + ``lm_head``: next-token logits, HF-convention LM loss with the router
    aux loss, and ``generate``.

    Forward returns ``logits``; with ``labels``, ``(loss, logits)``; with ``use_cache``,
    ``return_dict`` or ``output_router_logits``, a ``MoECausalLMOutput``. The router losses are
    computed when ``output_router_logits`` is set, and always in training mode when the
    router class says its config adds a loss term (``Router.has_training_loss``); the terms of
    ``Router.training_losses`` are added to the LM loss. Top-k routers: ``loss = CE +
    router_aux_loss_coef * aux + router_z_loss_coef * z``; the Genesis router: ``loss = CE +
    aux`` where ``aux`` sums each MoE layer's mean ``E_entropy``.
    """

    def __init__(self, config, check_memory=True):
        super().__init__(config, check_memory)
        with init.skip_init():  # post_init draws every weight once, with HF's scheme
            self.model = MoEModel(config, check_memory=False)
            self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        self.vocab_size = config.vocab_size
        self.post_init()
        self.tie_weights()

    def tie_weights(self):
        """Share ``lm_head.weight`` with ``model.embed_tokens.weight`` when configured."""
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def get_input_embeddings(self):
        """The token embedding module."""
        return self.model.embed_tokens

    def get_output_embeddings(self):
        """The output projection."""
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, position_ids=None,
                past_key_values=None, use_cache=False, labels=None, output_router_logits=None,
                return_dict=None, inputs_embeds=None, logits_to_keep=0):
        """Logits ``[B, S, V]``, ``(loss, logits)`` with labels, or a ``MoECausalLMOutput``."""
        config = self.config
        if output_router_logits is None:
            output_router_logits = config.output_router_logits
        has_moe = bool(config.moe_layer_indices())
        strategy = router_class(config)
        want_aux = has_moe and (output_router_logits or
                                (self.training and strategy.has_training_loss(config)))
        base = self.model(input_ids, attention_mask, position_ids, past_key_values, use_cache,
                          inputs_embeds, compute_aux=want_aux)
        hidden = base.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        aux_loss = z_loss = None
        terms = []
        if want_aux:
            token_mask = _current_tokens(attention_mask, base.last_hidden_state.shape[1])
            terms, aux_loss, z_loss = strategy.training_losses(config, base.router_outputs,
                                                               token_mask)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels, self.vocab_size)
            for term in terms:
                loss = loss + term
        if return_dict is None:
            return_dict = bool(use_cache or output_router_logits)
        if not return_dict and not (use_cache or output_router_logits):
            return logits if loss is None else (loss, logits)
        routings = base.router_outputs
        out = MoECausalLMOutput(
            loss=loss, logits=logits, past_key_values=base.past_key_values, aux_loss=aux_loss,
            z_loss=z_loss,
            router_logits=tuple(r.router_logits for r in routings) if output_router_logits
            else None,
            router_stats=_stats(routings, config) if output_router_logits else None)
        return out if return_dict else out.to_tuple()


def _current_tokens(attention_mask, seq):
    """The 2-D mask's last ``seq`` columns (the tokens of this forward), or None."""
    if attention_mask is None:
        return None
    data = attention_mask._array if isinstance(attention_mask, Tensor) \
        else np.asarray(attention_mask)
    return data[:, data.shape[1] - seq:]


def causal_lm_loss(logits, labels, vocab_size, ignore_index=-100):
    """HF ``ForCausalLMLoss``: float32 logits, labels shifted left by one, mean over kept."""
    if not isinstance(labels, Tensor) or labels.dtype.is_floating_point:
        raise TypeError(f"MoEForCausalLM: labels must be an integer Tensor, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    if tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"MoEForCausalLM: labels of shape {tuple(labels.shape)} must match "
                         f"input_ids' [batch, seq] = {tuple(logits.shape[:2])}")
    xp = backends.xp_for(labels.device)
    shifted = xp.full(labels.shape, ignore_index, dtype=np.int64)
    shifted[:, :-1] = labels._array[:, 1:]
    flat_logits = ops.to_dtype(logits, dtypes.float32).reshape(-1, vocab_size)
    return F.cross_entropy(flat_logits, Tensor._make(shifted.reshape(-1), device=labels.device),
                           ignore_index=ignore_index)


def _stats(routings, config):
    per_layer = [routing_metrics(r, config.num_expert_slots, config.capacity_factor)
                 for r in routings]
    keys = per_layer[0].keys() if per_layer else ()
    return {k: tuple(s[k] for s in per_layer) for k in keys}


def _finfo(npd):
    """``finfo`` that also knows ml_dtypes' bfloat16."""
    try:
        return np.finfo(npd)
    except ValueError:
        import ml_dtypes
        return ml_dtypes.finfo(npd)


def _check_ids(input_ids):
    if not isinstance(input_ids, Tensor):
        raise TypeError(f"MoEModel: input_ids must be a genesis Tensor, got "
                        f"{type(input_ids).__name__}")
    if input_ids.ndim != 2 or input_ids.dtype.is_floating_point:
        raise ValueError(f"MoEModel: input_ids must be an integer tensor [batch, seq], got "
                         f"shape {tuple(input_ids.shape)} and dtype {input_ids.dtype}")
