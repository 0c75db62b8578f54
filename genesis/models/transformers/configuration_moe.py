"""MoEConfig: the validated, serialisable description of a genesis MoE (or dense) language model.

One config class covers Mixtral, Qwen2-MoE, DeepSeek-MoE and the dense Llama/Qwen2 layouts:
``from_pretrained`` reads a HuggingFace ``config.json`` of those ``model_type``s and maps their
field names; unknown fields are kept as attributes and written back, as HuggingFace does
(except, in a ``genesis_moe`` config, a near miss of a known field: refused as a typo).
"""
import copy
import json
import math
import numbers
import os

from ... import dtypes
from ..._atomic import atomic_write
from .manifest import update_manifest

__all__ = ["MoEConfig", "available_memory_bytes", "check_memory", "format_bytes"]

CONFIG_NAME = "config.json"
HF_MODEL_TYPES = ("mixtral", "qwen2_moe", "deepseek", "llama", "qwen2")
MODEL_TYPES = ("genesis_moe",) + HF_MODEL_TYPES
SCORING_FUNCS = ("softmax", "sigmoid")
TOPK_METHODS = ("greedy", "group_limited_greedy")
ROUTER_TYPES = ("topk", "genesis")
HIDDEN_ACTS = ("silu", "swish", "gelu", "gelu_pytorch_tanh", "relu")
AUX_LOSS_TYPES = ("switch", "seq")

# Other spellings of genesis fields accepted by the constructor (HF / DeepSeek / Qwen names).
_ALIASES = {"num_experts": "num_local_experts", "n_routed_experts": "num_local_experts",
            "n_shared_experts": "num_shared_experts", "aux_loss_alpha": "router_aux_loss_coef",
            "qkv_bias": "attention_bias", "torch_dtype": "dtype",
            "first_k_dense_replace": "first_moe_layer"}
_LAYOUT_ALIASES = ("first_k_dense_replace", "decoder_sparse_step", "moe_layer_freq")
# A genesis-native key in a config.json overrides these HF spellings of the same field.
_NATIVE_OVER_ALIAS = {"num_local_experts": ("num_experts", "n_routed_experts"),
                      "num_shared_experts": ("n_shared_experts",),
                      "router_aux_loss_coef": ("aux_loss_alpha",),
                      "attention_bias": ("qkv_bias",), "dtype": ("torch_dtype",),
                      "first_moe_layer": _LAYOUT_ALIASES, "moe_layer_interval": _LAYOUT_ALIASES}


class MoEConfig:
    """Configuration of ``MoEModel`` / ``MoEForCausalLM`` (HuggingFace-style, validated).

    Layer ``i`` is a sparse MoE block when ``is_moe_layer(i)``: the model has experts, ``i`` is
    not in ``mlp_only_layers``, ``i >= first_moe_layer`` and either ``use_moe_in_all_layers`` or
    ``(i - first_moe_layer) % moe_layer_interval == 0``; other layers use a dense SwiGLU FFN of
    ``intermediate_size``. ``num_local_experts=0`` gives a dense (Llama/Qwen2) model.

    Aux loss: ``seq_aux=False`` is the Switch/Mixtral token-level loss pooled over all MoE layers
    (= ``num_experts_per_tok`` under uniform routing); ``seq_aux=True`` is DeepSeek's
    sequence-level loss summed over MoE layers (= 1 per layer under uniform routing). The model
    adds ``router_aux_loss_coef * aux`` (and ``router_z_loss_coef * z``) to the LM loss.

    ``router_type="genesis"`` selects the Genesis energy-aware router (``genesis_router.py``,
    genesis_moe models only); its own fields, with their defaults:

    * ``genesis_threshold`` 0.5: selection mass a token's kept experts must reach (1..k kept).
    * ``genesis_beta_bind`` 1.0: weight of the centroid cosine in the binding energy.
    * ``genesis_eta_cost`` 0.05: step of the cost potential's integral load control
      (``b_e += eta_cost * sign(f_e - 1/E_active)`` after each optimizer step).
    * ``genesis_lambda_entropy`` 0.01: weight of the normalised entropy energy, the only router
      term of the training loss (``router_aux_loss_coef``/``router_z_loss_coef`` are unused).
    * ``genesis_tau`` 1.0: Boltzmann temperature.
    * ``genesis_renormalize`` True: mixing weights = the kept binding weights renormalised to
      sum 1 (False keeps them raw, for ablations).
    * ``genesis_eta_centroid`` 0.05, ``genesis_eta_load`` 0.05: EMA rates of centroids and load.
    * ``genesis_max_new_experts`` 2: free expert slots for mitosis (``E_max = E + this``).
    * ``genesis_mitosis_interval`` 100: training steps between mitosis checks.
    * ``genesis_split_ratio`` 2.0: split when ``E_active * load[e] >`` this (times fair share).
    * ``genesis_split_delta`` 0.1: how far parent and child centroids move apart at a split.
    * ``genesis_split_noise`` 1e-3: the child's weight noise, in units of the parent's std.

    ``capacity_factor`` (None -> 1.0) only sets the reported overflow fraction of this router
    (it never drops tokens). The v1 field ``genesis_lambda_cost`` is rejected with an error.
    """

    model_type = "genesis_moe"

    def __init__(self, vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None,
                 head_dim=None, max_position_embeddings=4096, rope_theta=10000.0,
                 rope_scaling=None, rms_norm_eps=1e-6, hidden_act="silu", attention_bias=False,
                 attention_out_bias=False, mlp_bias=False, attention_dropout=0.0,
                 sliding_window=None, tie_word_embeddings=False, initializer_range=0.02,
                 num_local_experts=8, num_experts_per_tok=2, num_shared_experts=None,
                 moe_intermediate_size=None, shared_expert_intermediate_size=None,
                 shared_expert_gate=False, router_aux_loss_coef=0.01, router_z_loss_coef=0.0,
                 seq_aux=False, scoring_func="softmax", norm_topk_prob=True,
                 routed_scaling_factor=1.0, topk_method=None, n_group=None, topk_group=None,
                 capacity_factor=None, router_jitter_noise=0.0, router_type="topk",
                 use_moe_in_all_layers=True, moe_layer_interval=1, first_moe_layer=0,
                 mlp_only_layers=None, genesis_threshold=0.5, genesis_beta_bind=1.0,
                 genesis_eta_cost=0.05, genesis_lambda_entropy=0.01, genesis_tau=1.0,
                 genesis_renormalize=True, genesis_eta_centroid=0.05, genesis_eta_load=0.05,
                 genesis_max_new_experts=2, genesis_mitosis_interval=100,
                 genesis_split_ratio=2.0, genesis_split_delta=0.1, genesis_split_noise=1e-3,
                 output_router_logits=False, use_cache=True,
                 bos_token_id=None, eos_token_id=None, pad_token_id=None, dtype=None,
                 model_type="genesis_moe", **kwargs):
        self.model_type = model_type
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None \
            else num_key_value_heads
        self.head_dim = head_dim
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self.rms_norm_eps = rms_norm_eps
        self.hidden_act = hidden_act
        self.attention_bias = attention_bias
        self.attention_out_bias = attention_out_bias
        self.mlp_bias = mlp_bias
        self.attention_dropout = attention_dropout
        self.sliding_window = sliding_window
        self.tie_word_embeddings = tie_word_embeddings
        self.initializer_range = initializer_range
        self.num_local_experts = num_local_experts
        self.num_experts_per_tok = num_experts_per_tok
        self.num_shared_experts = num_shared_experts or None
        self.moe_intermediate_size = moe_intermediate_size
        self.shared_expert_intermediate_size = shared_expert_intermediate_size
        self.shared_expert_gate = shared_expert_gate
        self.router_aux_loss_coef = router_aux_loss_coef
        self.router_z_loss_coef = router_z_loss_coef
        self.seq_aux = seq_aux
        self.scoring_func = scoring_func
        self.norm_topk_prob = norm_topk_prob
        self.routed_scaling_factor = 1.0 if routed_scaling_factor is None else routed_scaling_factor
        self.topk_method = topk_method
        self.n_group = n_group
        self.topk_group = topk_group
        self.capacity_factor = capacity_factor
        self.router_jitter_noise = router_jitter_noise
        self.router_type = router_type
        self.use_moe_in_all_layers = use_moe_in_all_layers
        self.moe_layer_interval = moe_layer_interval
        self.first_moe_layer = first_moe_layer
        self.mlp_only_layers = list(mlp_only_layers or [])
        self.genesis_threshold = genesis_threshold
        self.genesis_beta_bind = genesis_beta_bind
        self.genesis_eta_cost = genesis_eta_cost
        self.genesis_lambda_entropy = genesis_lambda_entropy
        self.genesis_tau = genesis_tau
        self.genesis_renormalize = genesis_renormalize
        self.genesis_eta_centroid = genesis_eta_centroid
        self.genesis_eta_load = genesis_eta_load
        self.genesis_max_new_experts = genesis_max_new_experts
        self.genesis_mitosis_interval = genesis_mitosis_interval
        self.genesis_split_ratio = genesis_split_ratio
        self.genesis_split_delta = genesis_split_delta
        self.genesis_split_noise = genesis_split_noise
        self.output_router_logits = output_router_logits
        self.use_cache = use_cache
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.dtype = dtype
        unknown = self._apply_aliases(kwargs)
        if self.model_type == "genesis_moe":
            _reject_misspelled(unknown)
        for key, value in unknown.items():
            setattr(self, key, value)
        self._fill_derived()
        self.validate()

    # ----------------------------------------------------------------- construction helpers
    def _apply_aliases(self, kwargs):
        """Set fields given under another spelling (HF, DeepSeek, Qwen); return the rest."""
        kwargs = dict(kwargs)
        for alias, name in _ALIASES.items():
            if alias in kwargs:
                value = kwargs.pop(alias)
                setattr(self, name, value)
        aux_type = kwargs.pop("aux_loss_type", None)
        if aux_type is not None:
            if aux_type not in AUX_LOSS_TYPES:
                raise ValueError(f"MoEConfig: aux_loss_type must be one of {AUX_LOSS_TYPES}, got "
                                 f"{aux_type!r}")
            self.seq_aux = aux_type == "seq"
        step = kwargs.pop("decoder_sparse_step", None)
        if step is not None:       # Qwen2-MoE: layer i is sparse iff (i + 1) % step == 0
            self.moe_layer_interval = step
            valid = isinstance(step, numbers.Integral) and step > 0
            self.first_moe_layer = step - 1 if valid else 0
            self.use_moe_in_all_layers = step == 1
        freq = kwargs.pop("moe_layer_freq", None)
        if freq is not None:       # DeepSeek: sparse iff i >= first_k_dense_replace, i % freq == 0
            self.moe_layer_interval = freq
            if isinstance(freq, numbers.Integral) and freq > 0:
                self.first_moe_layer = -(-(self.first_moe_layer or 0) // freq) * freq
            self.use_moe_in_all_layers = freq == 1
        return kwargs

    def _fill_derived(self):
        """Resolve defaults that depend on other fields (head_dim, expert sizes, topk_method)."""
        self.num_local_experts = self.num_local_experts or 0
        self.num_shared_experts = self.num_shared_experts or None
        if self.dtype is not None and not isinstance(self.dtype, str):
            self.dtype = str(self.dtype)
        if isinstance(self.dtype, str):
            self.dtype = self.dtype.replace("torch.", "").replace("genesis.", "")
        for name in ("hidden_size", "num_attention_heads", "intermediate_size"):
            _check_int(self, name, 1)
        if self.head_dim is None and self.num_attention_heads:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(
                    f"MoEConfig: hidden_size ({self.hidden_size}) must be divisible by "
                    f"num_attention_heads ({self.num_attention_heads}), or set head_dim")
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.moe_intermediate_size is None:
            self.moe_intermediate_size = self.intermediate_size
        if self.shared_expert_intermediate_size is None and self.num_shared_experts:
            self.shared_expert_intermediate_size = self.moe_intermediate_size * \
                self.num_shared_experts
        if self.topk_method is None:
            grouped = self.n_group is not None and self.n_group > 1
            self.topk_method = "group_limited_greedy" if grouped else "greedy"

    # ----------------------------------------------------------------- validation
    def validate(self):
        """Raise ``ValueError`` naming the first invalid field or combination."""
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "head_dim",
                     "max_position_embeddings", "moe_intermediate_size", "moe_layer_interval"):
            _check_int(self, name, 1)
        for name in ("num_local_experts", "first_moe_layer"):
            _check_int(self, name, 0)
        if self.head_dim % 2:
            raise ValueError(f"MoEConfig: head_dim must be even for rotary embeddings, got "
                             f"{self.head_dim}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"MoEConfig: num_attention_heads ({self.num_attention_heads}) must "
                             f"be divisible by num_key_value_heads ({self.num_key_value_heads})")
        _check_choice(self, "hidden_act", HIDDEN_ACTS)
        _check_choice(self, "scoring_func", SCORING_FUNCS)
        _check_choice(self, "topk_method", TOPK_METHODS)
        _check_choice(self, "router_type", ROUTER_TYPES)
        _check_choice(self, "model_type", MODEL_TYPES)
        for name in ("rms_norm_eps", "rope_theta", "routed_scaling_factor"):
            check_real(self, name, 0.0, None, low_open=True)
        for name in ("router_aux_loss_coef", "router_z_loss_coef", "initializer_range"):
            check_real(self, name, 0.0, None)
        for name in ("attention_dropout", "router_jitter_noise"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not 0 <= value < 1:
                raise ValueError(f"MoEConfig: {name} must be in [0, 1), got {value!r}")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type")) \
                if isinstance(self.rope_scaling, dict) else self.rope_scaling
            if kind != "default":
                raise ValueError(f"MoEConfig: rope_scaling {self.rope_scaling!r} is not "
                                 "supported; genesis implements the default RoPE only")
        if self.sliding_window is not None:
            _check_int(self, "sliding_window", 1)
        if self.dtype is not None:
            try:
                dtypes.as_dtype(self.dtype)
            except TypeError:
                raise ValueError(f"MoEConfig: dtype {self.dtype!r} is not a genesis dtype "
                                 f"name") from None
        for i in self.mlp_only_layers:
            if not isinstance(i, numbers.Integral) or not 0 <= i < self.num_hidden_layers:
                raise ValueError(f"MoEConfig: mlp_only_layers entries must be layer indices in "
                                 f"[0, {self.num_hidden_layers}), got {self.mlp_only_layers}")
        if self.use_moe_in_all_layers and self.moe_layer_interval != 1:
            raise ValueError(f"MoEConfig: moe_layer_interval={self.moe_layer_interval} needs "
                             "use_moe_in_all_layers=False (True puts MoE in every layer)")
        self._validate_genesis()
        if self.num_local_experts:
            self._validate_experts()

    def _validate_genesis(self):
        """The Genesis router's fields (checked for every config, so config.json stays sane)."""
        if hasattr(self, "genesis_lambda_cost"):
            raise ValueError(
                f"MoEConfig: genesis_lambda_cost={self.genesis_lambda_cost!r} belongs to the "
                "Genesis router v1, whose batch-overflow cost let later tokens change earlier "
                "tokens' routing; router v2 has no such field and cannot reuse v1 router state. "
                "Its load control is the cost potential stepped by genesis_eta_cost (default "
                "0.05): drop genesis_lambda_cost (and retrain a v1 checkpoint) "
                "- see docs/genesis_routing.md")
        check_real(self, "genesis_threshold", 0.0, 1.0, low_open=True)
        check_real(self, "genesis_tau", 0.0, None, low_open=True)
        check_real(self, "genesis_split_ratio", 0.0, None, low_open=True)
        for name in ("genesis_beta_bind", "genesis_eta_cost", "genesis_lambda_entropy",
                     "genesis_split_delta", "genesis_split_noise"):
            check_real(self, name, 0.0, None)
        if not isinstance(self.genesis_renormalize, bool):
            raise ValueError(f"MoEConfig: genesis_renormalize must be True or False, got "
                             f"{self.genesis_renormalize!r}")
        for name in ("genesis_eta_centroid", "genesis_eta_load"):
            check_real(self, name, 0.0, 1.0)
        _check_int(self, "genesis_max_new_experts", 0)
        _check_int(self, "genesis_mitosis_interval", 1)
        if self.router_type == "genesis" and self.model_type != "genesis_moe":
            raise ValueError(f"MoEConfig: router_type='genesis' needs model_type='genesis_moe' "
                             f"(HF checkpoint types have no Genesis router state), got "
                             f"{self.model_type!r}")

    def _validate_experts(self):
        experts, k = self.num_local_experts, self.num_experts_per_tok
        _check_int(self, "num_experts_per_tok", 1)
        if k > experts:
            raise ValueError(f"MoEConfig: num_experts_per_tok ({k}) cannot be greater than "
                             f"num_local_experts ({experts})")
        if self.num_shared_experts is not None:
            _check_int(self, "num_shared_experts", 0)
            _check_int(self, "shared_expert_intermediate_size", 1)
        if self.shared_expert_gate and not self.num_shared_experts:
            raise ValueError("MoEConfig: shared_expert_gate=True needs num_shared_experts >= 1")
        if self.capacity_factor is not None and not (
                isinstance(self.capacity_factor, numbers.Real) and self.capacity_factor > 0):
            raise ValueError(f"MoEConfig: capacity_factor must be None (dropless) or a number "
                             f"> 0, got {self.capacity_factor!r}")
        if self.topk_method == "group_limited_greedy":
            if self.n_group is None or self.topk_group is None:
                raise ValueError("MoEConfig: topk_method='group_limited_greedy' needs n_group "
                                 "and topk_group")
            _check_int(self, "n_group", 1)
            _check_int(self, "topk_group", 1)
            if experts % self.n_group:
                raise ValueError(f"MoEConfig: n_group ({self.n_group}) must divide "
                                 f"num_local_experts ({experts})")
            if self.topk_group > self.n_group:
                raise ValueError(f"MoEConfig: topk_group ({self.topk_group}) cannot be greater "
                                 f"than n_group ({self.n_group})")
            if k > self.topk_group * (experts // self.n_group):
                raise ValueError(f"MoEConfig: num_experts_per_tok ({k}) exceeds the experts in "
                                 f"topk_group={self.topk_group} groups of "
                                 f"{experts // self.n_group}")

    # ----------------------------------------------------------------- derived views
    @property
    def aux_loss_type(self):
        """``"seq"`` (DeepSeek sequence-level) when ``seq_aux`` else ``"switch"`` (Mixtral)."""
        return "seq" if self.seq_aux else "switch"

    @property
    def first_k_dense_replace(self):
        """DeepSeek's name for ``first_moe_layer``."""
        return self.first_moe_layer

    @property
    def decoder_sparse_step(self):
        """Qwen2-MoE's name for ``moe_layer_interval``."""
        return self.moe_layer_interval

    @property
    def num_experts(self):
        """HF's short name for ``num_local_experts``."""
        return self.num_local_experts

    @property
    def num_expert_slots(self):
        """Routed expert slots per MoE layer: ``E_max = num_local_experts +
        genesis_max_new_experts`` with the Genesis router, else ``num_local_experts``."""
        if self.router_type == "genesis" and self.num_local_experts:
            return self.num_local_experts + self.genesis_max_new_experts
        return self.num_local_experts

    def is_moe_layer(self, layer_idx):
        """True when decoder layer ``layer_idx`` uses the sparse MoE block."""
        if not self.num_local_experts or layer_idx in self.mlp_only_layers:
            return False
        if layer_idx < self.first_moe_layer:
            return False
        return self.use_moe_in_all_layers or \
            (layer_idx - self.first_moe_layer) % self.moe_layer_interval == 0

    def moe_layer_indices(self):
        """Indices of the MoE layers, in order."""
        return [i for i in range(self.num_hidden_layers) if self.is_moe_layer(i)]

    def num_parameters(self):
        """Exact parameter count of ``MoEForCausalLM(config)``, computed without building it."""
        d, heads, kv, hd = self.hidden_size, self.num_attention_heads, \
            self.num_key_value_heads, self.head_dim
        qkv_bias = heads * hd + 2 * kv * hd if self.attention_bias else 0
        attn = d * heads * hd * 2 + 2 * d * kv * hd + qkv_bias
        attn += d if self.attention_out_bias else 0
        dense = _ffn_params(d, self.intermediate_size, self.mlp_bias)
        total = self.vocab_size * d * (1 if self.tie_word_embeddings else 2) + d
        for i in range(self.num_hidden_layers):
            total += 2 * d + attn
            if not self.is_moe_layer(i):
                total += dense
                continue
            total += self.num_expert_slots * (d + 3 * d * self.moe_intermediate_size)
            if self.num_shared_experts:
                total += _ffn_params(d, self.shared_expert_intermediate_size, self.mlp_bias)
                total += d if self.shared_expert_gate else 0
        return total

    def num_active_parameters(self):
        """Parameters used per token (routed experts counted ``num_experts_per_tok`` times)."""
        idle = self.num_expert_slots - self.num_experts_per_tok
        per_layer = idle * 3 * self.hidden_size * self.moe_intermediate_size
        return self.num_parameters() - per_layer * len(self.moe_layer_indices())

    # ----------------------------------------------------------------- serialisation
    def to_dict(self):
        """All fields (known and unknown) as a JSON-ready dict, with ``model_type``."""
        out = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if not k.startswith("_")}
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_json_string(self):
        """``to_dict`` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path):
        """Write ``to_dict`` to a JSON file (atomically and durably); returns its FileDigest."""
        return atomic_write(json_file_path, self.to_json_string())

    def to_hf_dict(self):
        """The config as HuggingFace writes it for ``model_type`` (plus the genesis fields)."""
        out = self.to_dict()
        if self.model_type == "genesis_moe":
            return out
        out["rope_parameters"] = {"rope_theta": self.rope_theta, "rope_type": "default"}
        mt = self.model_type
        if mt == "qwen2_moe":
            out.update(num_experts=self.num_local_experts, qkv_bias=self.attention_bias,
                       decoder_sparse_step=self.moe_layer_interval,
                       use_sliding_window=self.sliding_window is not None,
                       shared_expert_intermediate_size=self.shared_expert_intermediate_size or 0)
        elif mt == "deepseek":
            out.update(n_routed_experts=self.num_local_experts or None,
                       n_shared_experts=self.num_shared_experts,
                       first_k_dense_replace=self.first_moe_layer,
                       moe_layer_freq=self.moe_layer_interval,
                       aux_loss_alpha=self.router_aux_loss_coef)
        elif mt == "qwen2":
            out["use_sliding_window"] = self.sliding_window is not None
        defaults = _defaults()
        return {k: v for k, v in sorted(out.items())
                if not (v is None and defaults.get(k, object()) is None)}

    def save_pretrained(self, save_directory):
        """Write ``config.json`` (HF field names for HF model types) into ``save_directory``
        atomically; returns its FileDigest (SHA-256 and size, for checkpoint manifests)."""
        if os.path.isfile(save_directory):
            raise ValueError(f"MoEConfig.save_pretrained: {save_directory!r} is a file; expected "
                             "a directory")
        os.makedirs(save_directory, exist_ok=True)
        text = json.dumps(self.to_hf_dict(), indent=2, sort_keys=True) + "\n"
        digest = atomic_write(os.path.join(save_directory, CONFIG_NAME), text)
        update_manifest(save_directory, {CONFIG_NAME: digest})
        return digest

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """Build from a genesis dict or a HuggingFace ``config.json`` dict (by its model_type)."""
        d = dict(config_dict)
        d.update(kwargs)
        model_type = d.get("model_type", "genesis_moe")
        if model_type not in MODEL_TYPES:
            raise ValueError(f"MoEConfig: unsupported model_type {model_type!r}; supported: "
                             f"{MODEL_TYPES}")
        if model_type != "genesis_moe":
            d = _map_hf(d)
        return cls(**d)

    @classmethod
    def from_json_file(cls, json_file):
        """Read a config written by ``to_json_file`` or a HuggingFace ``config.json``."""
        with open(json_file, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"MoEConfig: {json_file} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"MoEConfig: {json_file} must hold a JSON object, got "
                             f"{type(data).__name__}")
        return cls.from_dict(data)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load ``config.json`` from a directory (or that file's path), or a preset by name."""
        path = os.fspath(pretrained_model_name_or_path)
        if os.path.isdir(path):
            path = os.path.join(path, CONFIG_NAME)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"MoEConfig.from_pretrained: no {CONFIG_NAME} in "
                                        f"{pretrained_model_name_or_path!r}")
        elif not os.path.isfile(path):
            from .presets import PRESETS, get_moe_config
            if path in PRESETS:
                return get_moe_config(path, **kwargs)
            raise FileNotFoundError(
                f"MoEConfig.from_pretrained: {path!r} is neither a directory with "
                f"{CONFIG_NAME}, a config file, nor a preset ({sorted(PRESETS)}); genesis does "
                "not download from the Hub")
        config = cls.from_json_file(path)
        return cls.from_dict(config.to_dict(), **kwargs) if kwargs else config

    # ----------------------------------------------------------------- python protocol
    def __eq__(self, other):
        return isinstance(other, MoEConfig) and self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self):
        return f"MoEConfig {self.to_json_string()}"


def _map_hf(d):
    """Prepare one HF ``config.json`` dict for the constructor (defaults of its model_type).

    HF spellings stay as constructor aliases; genesis-native keys (written back by
    ``save_pretrained``) win over the HF spellings of the same field.
    """
    d = dict(d)
    mt = d["model_type"]
    rope = d.pop("rope_parameters", None) or {}
    if "rope_theta" not in d and "rope_theta" in rope:
        d["rope_theta"] = rope["rope_theta"]
    if rope.get("rope_type", "default") != "default" and d.get("rope_scaling") is None:
        d["rope_scaling"] = rope
    if not d.pop("use_sliding_window", mt not in ("qwen2", "qwen2_moe")):
        d["sliding_window"] = None
    d.pop("transformers_version", None)
    if mt in ("llama", "qwen2"):
        d.setdefault("num_local_experts", 0)
        if mt == "qwen2":
            d.setdefault("attention_bias", True)
        else:
            d.setdefault("attention_out_bias", d.get("attention_bias", False))
    elif mt == "mixtral":
        d.setdefault("num_local_experts", 8)
        d.setdefault("norm_topk_prob", True)
    elif mt == "qwen2_moe":
        d.setdefault("num_experts", 60)
        d.setdefault("num_experts_per_tok", 4)
        d.setdefault("moe_intermediate_size", 1408)
        d.setdefault("qkv_bias", True)
        d.setdefault("norm_topk_prob", False)
        shared = d.get("shared_expert_intermediate_size", 5632) or None
        d["shared_expert_intermediate_size"] = shared
        d.setdefault("num_shared_experts", 1 if shared else None)
        d.setdefault("shared_expert_gate", bool(shared))
        d.setdefault("decoder_sparse_step", 1)
    elif mt == "deepseek":
        d.setdefault("n_routed_experts", None)
        d.setdefault("norm_topk_prob", False)
        d.setdefault("seq_aux", True)
        d.setdefault("aux_loss_alpha", 0.001)
        d.setdefault("moe_layer_freq", 1)
    for native, aliases in _NATIVE_OVER_ALIAS.items():
        if native in d:
            for alias in aliases:
                d.pop(alias, None)
    return d


def _ffn_params(d, inter, bias):
    return 3 * d * inter + ((2 * inter + d) if bias else 0)


def _check_int(config, name, low):
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"MoEConfig: {name} must be an int >= {low}, got {value!r}")


def check_real(config, name, low, high, low_open=False, owner="MoEConfig"):
    """``config.name`` is a finite real number in ``[low, high]`` (``(low, high]`` when
    ``low_open``; no upper bound when ``high`` is None), else ``ValueError`` naming
    ``owner`` and the field."""
    value = getattr(config, name)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        math.isfinite(value) and (value > low if low_open else value >= low) and \
        (high is None or value <= high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {'inf)' if high is None else f'{high}]'}"
        raise ValueError(f"{owner}: {name} must be a finite number in {bounds}, "
                         f"got {value!r}")


_RETIRED = {"genesis_lambda_cost"}   # removed fields: validation explains each one


def _reject_misspelled(unknown):
    """Raise ``ValueError`` for an unknown field that is a near miss of a known one (a typo
    would otherwise be kept as an inert attribute and the default used silently)."""
    import difflib
    known = set(_defaults()) | set(_ALIASES) | {"aux_loss_type", "decoder_sparse_step",
                                                 "moe_layer_freq"}
    for key in unknown:
        if key in _RETIRED:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
        if close:
            raise ValueError(f"MoEConfig: unknown field {key!r}; did you mean {close[0]!r}?")


def _check_choice(config, name, choices):
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"MoEConfig: unknown {name} {value!r}; expected one of {choices}")


def _defaults():
    import inspect
    sig = inspect.signature(MoEConfig.__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty}


# --------------------------------------------------------------------------- memory sizing
def available_memory_bytes():
    """Memory the OS can give this process now (MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n):
    """Human-readable decimal size, e.g. ``'93.4 GB'``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1000.0


def check_memory(config, dtype=None, what="MoEForCausalLM"):
    """Raise ``MemoryError`` before allocating when ``config``'s parameters cannot fit in RAM.

    Skipped when the environment sets ``GENESIS_SKIP_MEMORY_CHECK=1``.
    """
    if os.environ.get("GENESIS_SKIP_MEMORY_CHECK", "") not in ("", "0"):
        return
    dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    params = config.num_parameters()
    need = params * dt.itemsize
    have = available_memory_bytes()
    if have is not None and need > have:
        raise MemoryError(
            f"{what}: this config has {params:,} parameters ({params / 1e9:.2f}B), which need "
            f"{format_bytes(need)} ({need:,} bytes) in {dt.name}, but only {format_bytes(have)} "
            "of memory is available; use a smaller config (e.g. 'moe-small'), a smaller dtype, "
            "or pass check_memory=False / set GENESIS_SKIP_MEMORY_CHECK=1 to build it anyway")
