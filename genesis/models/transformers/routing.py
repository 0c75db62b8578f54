"""Routers and their losses: which experts each token visits, with what weight, at what cost.

A router is a strategy (DESIGN rule 5): given hidden states ``[N, d]`` it returns a
``RouterOutput`` — ``topk_ids [N, k]`` (int64, -1 for pairs dropped by capacity),
``topk_weights [N, k]`` (float32), the raw ``router_logits [N, E]`` (model dtype), the float32
``scores`` and per-layer loss terms — and every router shares one dispatch path
(``genesis.moe_experts``). The load-balancing losses follow the published formulas:

* Switch / Mixtral (token level, pooled over all MoE layers, HF ``load_balancing_loss_func``):
  ``aux = E * sum_e f_e * P_e`` with ``f_e`` the fraction of rows choosing ``e`` in their
  top-k and ``P_e`` the mean softmax probability; ``aux = k`` under uniform routing.
* DeepSeek sequence level (``seq_aux``, per layer): ``alpha * mean_b sum_e ce[b,e] * P[b,e]``
  with ``ce = E / (S k) * count`` and ``P`` the mean score in the sequence; ``= alpha`` when
  routing is uniform.
* z-loss (ST-MoE): mean over tokens of ``logsumexp(logits)^2``.
"""
import dataclasses
import math
from typing import Optional

import numpy as np

from ... import backends, dtypes, ops
from ...autograd import no_grad
from ...creation import zeros
from ...nn import Module, Parameter
from ...tensor import Tensor

__all__ = ["RouterOutput", "MoERouter", "build_router", "switch_load_balancing_loss",
           "sequence_load_balancing_loss", "router_z_loss", "expert_capacity",
           "capacity_keep_mask", "group_limited_scores", "routing_stats"]


@dataclasses.dataclass
class RouterOutput:
    """What every router returns for ``N`` tokens and ``E`` experts."""

    topk_ids: Tensor                    # [N, k] int64; -1 marks a pair dropped by capacity
    topk_weights: Tensor                # [N, k] float32, differentiable
    router_logits: Tensor               # [N, E] raw gate logits in the model dtype
    scores: Tensor                      # [N, E] float32 softmax / sigmoid scores
    seq_aux_loss: Optional[Tensor] = None   # DeepSeek sequence-level aux of this layer
    entropy_loss: Optional[Tensor] = None   # Genesis: mean entropy energy of this layer
    metrics: Optional[dict] = None          # Genesis: this layer's routing metrics (see stats)


def _xp(t):
    return backends.xp_for(t.device)


def _const(arr, like):
    return Tensor._make(arr, device=like.device)


def _flat_mask(attention_mask, rows, like):
    """A float32 keep-mask of ``rows`` entries (ones without a mask)."""
    xp = _xp(like)
    if attention_mask is None:
        return xp.ones(rows, dtype=np.float32)
    m = attention_mask._array if isinstance(attention_mask, Tensor) else xp.asarray(attention_mask)
    m = m.reshape(-1).astype(np.float32)
    if m.shape[0] != rows:
        raise ValueError(f"routing: attention_mask with {m.shape[0]} entries does not match "
                         f"{rows} routed tokens")
    return m


# --------------------------------------------------------------------------- selection
def group_limited_scores(scores, n_group, topk_group):
    """Scores with every expert outside each token's ``topk_group`` best groups set to 0.0.

    A group's score is its best expert's score (DeepSeek-V2 ``group_limited_greedy``); masked
    experts get 0.0 rather than -inf, exactly as HF does.
    """
    xp = _xp(scores)
    s = scores._array
    n, e = s.shape
    group_scores = s.reshape(n, n_group, e // n_group).max(axis=-1)
    keep_groups = xp.argsort(-group_scores, axis=-1, kind="stable")[:, :topk_group]
    group_mask = xp.zeros((n, n_group), dtype=bool)
    group_mask[xp.arange(n)[:, None], keep_groups] = True
    expert_mask = xp.repeat(group_mask, e // n_group, axis=-1)
    return _const(xp.where(expert_mask, s, xp.zeros((), dtype=s.dtype)), scores)


def expert_capacity(num_tokens, num_experts, top_k, capacity_factor):
    """Rows each expert may take: ``ceil(capacity_factor * num_tokens * top_k / num_experts)``."""
    return int(math.ceil(capacity_factor * num_tokens * top_k / num_experts))


def capacity_keep_mask(topk_ids, num_experts, capacity):
    """Bool array ``[N, k]``: True for the pairs each expert keeps, first tokens first.

    Pairs are ranked per expert in order of token position (then slot); an expert keeps its
    first ``capacity`` pairs and the rest are dropped (Switch Transformer style).
    """
    xp = _xp(topk_ids)
    flat = topk_ids._array.reshape(-1)
    order = xp.argsort(flat, kind="stable")
    counts = xp.bincount(flat, minlength=num_experts)
    starts = xp.cumsum(counts) - counts
    rank_sorted = xp.arange(flat.shape[0]) - starts[flat[order]]
    rank = xp.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return (rank < capacity).reshape(topk_ids.shape)


# --------------------------------------------------------------------------- losses
def switch_load_balancing_loss(router_logits, num_experts, top_k, attention_mask=None):
    """Switch/Mixtral aux loss over all layers' logits (pooled, like HF); 0-d float32 Tensor.

    ``router_logits``: a tuple of ``[B*S, E]`` tensors, one per MoE layer; ``attention_mask``
    ``[B, S]`` (1 keep, 0 pad) excludes padding tokens from both fractions.
    """
    if not router_logits:
        return None
    logits = ops.cat([ops.to_dtype(l, dtypes.float32) for l in router_logits], dim=0)
    probs = ops.softmax(logits, dim=-1)
    xp = _xp(probs)
    rows_per_layer = router_logits[0].shape[0]
    mask = xp.tile(_flat_mask(attention_mask, rows_per_layer, probs), len(router_logits))
    total = max(float(mask.sum()), 1.0)
    picked = ops.topk(probs.detach(), top_k, dim=-1).indices._array
    counts = xp.bincount(picked.reshape(-1), weights=xp.repeat(mask, top_k),
                         minlength=num_experts)
    tokens_per_expert = _const((counts / total).astype(np.float32), probs)
    prob_per_expert = ops.sum(probs * _const(mask[:, None], probs), dim=0) / total
    return ops.sum(tokens_per_expert * prob_per_expert) * float(num_experts)


def sequence_load_balancing_loss(scores, topk_ids, batch_size, num_experts, alpha=1.0,
                                 attention_mask=None, normalize_scores=False):
    """DeepSeek's sequence-level aux loss of one layer: ``alpha * mean_b sum_e ce * P``.

    ``scores [B*S, E]`` (float32), ``topk_ids [B*S, k]`` the experts actually selected. With
    ``normalize_scores`` (sigmoid routers) scores are divided by their row sum first, as in
    DeepSeek-V3. Padding (``attention_mask`` 0) is excluded; gradients flow through ``scores``.
    """
    xp = _xp(scores)
    rows, e = scores.shape
    k = topk_ids.shape[1]
    seq = rows // batch_size
    if normalize_scores:
        scores = scores / ops.sum(scores, dim=-1, keepdim=True)
    mask = _flat_mask(attention_mask, rows, scores)
    ids = topk_ids._array
    batch_of = xp.repeat(xp.arange(rows) // seq, k)
    counts = xp.bincount(batch_of * e + ids.reshape(-1), weights=xp.repeat(mask, k),
                         minlength=batch_size * e).reshape(batch_size, e)
    n_b = xp.maximum(mask.reshape(batch_size, seq).sum(axis=1), 1.0)[:, None]
    ce = _const((counts * (e / k) / n_b).astype(np.float32), scores)
    masked = (scores * _const(mask[:, None], scores)).reshape(batch_size, seq, e)
    p = ops.sum(masked, dim=1) / _const(n_b.astype(np.float32), scores)
    return ops.mean(ops.sum(ce * p, dim=-1)) * float(alpha)


def router_z_loss(router_logits, attention_mask=None):
    """ST-MoE z-loss: mean of ``logsumexp(logits)^2`` over all (layer, token) rows."""
    if not router_logits:
        return None
    logits = ops.cat([ops.to_dtype(l, dtypes.float32) for l in router_logits], dim=0)
    lse = ops.logsumexp(logits, dim=-1)
    xp = _xp(logits)
    mask = xp.tile(_flat_mask(attention_mask, router_logits[0].shape[0], logits),
                   len(router_logits))
    return ops.sum(lse * lse * _const(mask, logits)) / max(float(mask.sum()), 1.0)


def routing_stats(topk_ids, num_experts):
    """Metrics of one layer's routing: expert load fractions, active experts per token, drops."""
    xp = _xp(topk_ids)
    ids = topk_ids._array
    kept = ids >= 0
    load = xp.bincount(ids[kept], minlength=num_experts).astype(np.float64)
    total = max(float(load.sum()), 1.0)
    load = load / total
    load_host = load if xp is np else xp.asnumpy(load)
    return {"expert_load": load_host,
            "active_experts_per_token": float(kept.sum(axis=1).mean()) if ids.size else 0.0,
            "dropped_fraction": float(1.0 - kept.mean()) if ids.size else 0.0,
            "load_imbalance": float(load_host.max() * num_experts) if ids.size else 0.0}


# --------------------------------------------------------------------------- routers
class MoERouter(Module):
    """Top-k router (Mixtral / Qwen2-MoE / DeepSeek): linear gate ``weight [E, d]`` + selection.

    Scores are softmax or sigmoid of the float32 logits; selection is greedy top-k or
    DeepSeek's group-limited top-k; weights are the selected scores, renormalised when
    ``norm_topk_prob``, times ``routed_scaling_factor``; ``capacity_factor`` drops the pairs an
    expert cannot take (weight 0, id -1).
    """

    def __init__(self, config):
        super().__init__()
        self.num_experts = config.num_local_experts
        self.top_k = config.num_experts_per_tok
        self.hidden_size = config.hidden_size
        self.scoring_func = config.scoring_func
        self.norm_topk_prob = config.norm_topk_prob
        self.routed_scaling_factor = config.routed_scaling_factor
        self.topk_method = config.topk_method
        self.n_group, self.topk_group = config.n_group, config.topk_group
        self.capacity_factor = config.capacity_factor
        self.seq_aux = config.seq_aux
        self.weight = Parameter(zeros(self.num_experts, self.hidden_size))

    def forward(self, hidden_states, attention_mask=None, batch_size=None, compute_aux=False):
        """Route ``[N, d]`` hidden states; ``compute_aux`` adds the sequence-level aux term."""
        logits = ops.linear(hidden_states, self.weight)
        scores = ops.to_dtype(logits, dtypes.float32)
        scores = ops.softmax(scores, dim=-1) if self.scoring_func == "softmax" \
            else ops.sigmoid(scores)
        if self.topk_method == "group_limited_greedy":
            with no_grad():
                choice = group_limited_scores(scores.detach(), self.n_group, self.topk_group)
            ids = ops.topk(choice, self.top_k, dim=-1).indices
            weights = ops.gather(scores, -1, ids)
        else:
            weights, ids = ops.topk(scores, self.top_k, dim=-1)
        if self.norm_topk_prob:
            weights = weights / ops.sum(weights, dim=-1, keepdim=True)
        if self.routed_scaling_factor != 1.0:
            weights = weights * float(self.routed_scaling_factor)
        seq_aux = None
        if compute_aux and self.seq_aux:
            seq_aux = sequence_load_balancing_loss(
                scores, ids, batch_size or 1, self.num_experts, 1.0, attention_mask,
                normalize_scores=self.scoring_func == "sigmoid")
        if self.capacity_factor is not None:
            ids, weights = self._apply_capacity(ids, weights)
        return RouterOutput(ids, weights, logits, scores, seq_aux)

    def _apply_capacity(self, ids, weights):
        cap = expert_capacity(ids.shape[0], self.num_experts, self.top_k, self.capacity_factor)
        keep = capacity_keep_mask(ids, self.num_experts, cap)
        xp = _xp(ids)
        ids = _const(xp.where(keep, ids._array, -1), ids)
        return ids, weights * _const(keep.astype(np.float32), weights)

    def extra_repr(self):
        return (f"num_experts={self.num_experts}, top_k={self.top_k}, "
                f"scoring_func={self.scoring_func!r}, topk_method={self.topk_method!r}")


def build_router(config, layer_idx=0):
    """The router strategy named by ``config.router_type`` for decoder layer ``layer_idx``."""
    if config.router_type == "genesis":
        from .genesis_router import GenesisRouter
        return GenesisRouter(config, layer_idx)
    return MoERouter(config)
