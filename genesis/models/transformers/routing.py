"""Routers and their losses: which experts each token visits, with what weight, at what cost.

A router is a strategy (DESIGN rule 5): a ``Router`` subclass registered under its
``config.router_type`` (``register_router``; ``build_router`` is the one place that builds
one). Given hidden states ``[N, d]`` it returns a ``RouterOutput`` — ``topk_ids [N, k]`` (always
valid expert ids), ``topk_weights [N, k]``, the bool masks ``selected`` (the router chose the
pair; False = an unused slot) and ``dispatched`` (selected and accepted by the expert's
capacity; selected but not dispatched = dropped), the raw ``router_logits``, the ``scores`` and
per-layer loss terms — and every router shares one dispatch path (``genesis.moe_experts``).
The model asks the router class for its training losses (``training_losses``) and calls
``update_state`` after each optimizer step; it never looks at the router's type. Routing
metrics of every router come from one function, ``routing_metrics``.
The load-balancing losses follow the published formulas:

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
from typing import Any, Optional

import numpy as np

from ... import backends, dtypes, ops
from ...autograd import no_grad
from ...creation import zeros
from ...nn import Module, Parameter, init
from ...tensor import Tensor

__all__ = ["RouterOutput", "Router", "MoERouter", "register_router", "router_class",
           "build_router", "switch_load_balancing_loss", "sequence_load_balancing_loss",
           "router_z_loss", "expert_capacity", "capacity_keep_mask", "group_limited_scores",
           "routing_metrics", "semantic_stability_index"]

_EPS = 1e-12


@dataclasses.dataclass
class RouterOutput:
    """What every router returns for ``N`` tokens, ``k`` slots and ``E`` experts.

    Each value means one thing: ``topk_ids`` are always expert ids; ``selected`` says whether
    the router chose a slot (adaptive routers leave some unused), ``dispatched`` whether the
    expert computes it (capacity may drop a selected pair). ``None`` masks mean "every pair".
    Weights of pairs that are not dispatched are 0.
    """

    topk_ids: Tensor                    # [N, k] int64 expert ids, ranked by the router
    topk_weights: Tensor                # [N, k] mixing weights, differentiable; 0 if not sent
    router_logits: Tensor               # [N, E] raw gate logits in the model dtype
    scores: Tensor                      # [N, E] float32 selection probabilities / scores
    selected: Optional[Tensor] = None   # [N, k] bool: the router chose the pair
    dispatched: Optional[Tensor] = None  # [N, k] bool: selected and within capacity
    seq_aux_loss: Optional[Tensor] = None   # DeepSeek sequence-level aux of this layer
    entropy_loss: Optional[Tensor] = None   # Genesis: mean entropy energy of this layer
    metrics: Optional[dict] = None          # router-specific metrics (e.g. Genesis energy)
    hidden_states: Optional[Tensor] = None  # [N, d] the routed tokens (for SSI)
    token_mask: Optional[Any] = None        # [N] float keep-mask (1 = real token) or None
    live_experts: Optional[Any] = None      # int array of the experts that exist, or None

    def dispatch_ids(self):
        """``topk_ids`` with -1 where a pair is not dispatched: ``genesis.moe_experts``' input."""
        if self.dispatched is None:
            return self.topk_ids
        xp = _xp(self.topk_ids)
        return _const(xp.where(self.dispatched._array, self.topk_ids._array, -1), self.topk_ids)


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


def semantic_stability_index(unit_states, groups):
    """SSI ``= 1 - mean_e var(D_e)`` with ``D_e = 1 - X_e X_e^T`` over each group of >= 2 rows.

    ``unit_states [N, d]``: normalised hidden states (array); ``groups [N]``: each row's top-1
    expert. ``var(D) = var(G)`` for the Gram ``G = X X^T``, and ``mean(G) = |sum x|^2 / n^2``,
    ``mean(G^2) = ||X^T X||_F^2 / n^2``: one ``min(n, d)``-sized product per group, never the
    ``n x n`` matrix of distances. Returns 1.0 when no group has two members.
    """
    xp = backends.xp_for(backends.device_of_array(unit_states))
    x = unit_states.astype(np.float64)
    groups = groups.astype(np.int64)
    if groups.size == 0:
        return 1.0
    order = xp.argsort(groups, kind="stable")
    counts = xp.bincount(groups, minlength=int(groups.max()) + 1)
    bounds = np.concatenate([[0], np.cumsum(_host(counts))])
    x = x[order]
    variances = []
    for e in np.nonzero(np.diff(bounds) >= 2)[0].tolist():
        xe = x[bounds[e]:bounds[e + 1]]
        n = xe.shape[0]
        gram = xe.T @ xe if xe.shape[1] <= n else xe @ xe.T
        total = xe.sum(axis=0)
        mean_g = float(total @ total) / n ** 2
        mean_g2 = float((gram * gram).sum()) / n ** 2
        variances.append(max(mean_g2 - mean_g ** 2, 0.0))
    return 1.0 - float(np.mean(variances)) if variances else 1.0


def routing_metrics(routing, num_experts, capacity_factor=None):
    """One layer's routing metrics from its ``RouterOutput`` (host floats; padding excluded).

    ``expert_load [E]``: each expert's share of the dispatched (token, expert) pairs;
    ``active_experts_per_token``: dispatched pairs per token; ``dropped_fraction``: selected
    pairs dropped by capacity; over the live experts (``E_live``): ``load_imbalance`` =
    ``E_live * max load``, ``load_cv`` = std/mean of the loads, ``min_fair_share`` =
    ``E_live * min load``, ``starved_fraction`` = share of experts under a quarter of their
    fair share, ``overflow_fraction`` = pairs above ``ceil(capacity_factor * N * k / E_live)``
    (``capacity_factor`` None -> 1.0) per expert; ``ssi`` over top-1 groups (needs
    ``hidden_states``); ``experts_alive``. The router's own ``metrics`` are merged in.
    """
    xp = _xp(routing.topk_ids)
    ids = routing.topk_ids._array
    n, k = ids.shape
    mask = xp.ones(n, dtype=np.float32) if routing.token_mask is None else routing.token_mask
    selected = xp.ones((n, k), dtype=bool) if routing.selected is None \
        else routing.selected._array
    sent = selected if routing.dispatched is None else routing.dispatched._array
    live = np.arange(num_experts) if routing.live_experts is None \
        else _host(routing.live_experts).astype(np.int64)
    e_live = max(int(live.size), 1)
    tokens = max(float(mask.sum()), 1.0)
    pair_mask = xp.broadcast_to(mask[:, None], (n, k))
    counts = _host(xp.bincount(ids[sent], weights=pair_mask[sent], minlength=num_experts))
    total = max(float(counts.sum()), 1.0)
    load = counts / total
    live_load = load[live]
    mean = float(live_load.mean()) if live.size else 0.0
    chosen = max(float(pair_mask[selected].sum()), 1.0)
    cap = expert_capacity(tokens, e_live, k, 1.0 if capacity_factor is None else capacity_factor)
    out = {
        "expert_load": load,
        "active_experts_per_token": float((sent * pair_mask).sum()) / tokens,
        "dropped_fraction": float((pair_mask * (selected & ~sent)).sum()) / chosen,
        "load_imbalance": float(live_load.max()) * e_live if live.size else 0.0,
        "load_cv": float(live_load.std()) / mean if mean > 0 else 0.0,
        "min_fair_share": float(live_load.min()) * e_live if live.size else 0.0,
        "starved_fraction": float((live_load * e_live < 0.25).mean()) if live.size else 0.0,
        "overflow_fraction": float(np.maximum(counts[live] - cap, 0).sum()) / total,
        "experts_alive": int(live.size),
    }
    if routing.hidden_states is not None:
        x = routing.hidden_states._array.astype(np.float32)
        x = x / xp.maximum(xp.sqrt((x * x).sum(axis=-1, keepdims=True)), _EPS)
        real = mask > 0
        out["ssi"] = semantic_stability_index(x[real], ids[real, 0])
    out.update(routing.metrics or {})
    return out


def _host(arr):
    return arr if isinstance(arr, np.ndarray) else arr.get()


# --------------------------------------------------------------------------- routers
_ROUTERS = {}


def register_router(router_type):
    """Class decorator: make a ``Router`` subclass the strategy of ``config.router_type``."""
    def register(cls):
        _ROUTERS[router_type] = cls
        return cls
    return register


def router_class(config):
    """The ``Router`` subclass registered for ``config.router_type``."""
    cls = _ROUTERS.get(config.router_type)
    if cls is None:
        raise ValueError(f"build_router: unknown router_type {config.router_type!r}; "
                         f"registered: {sorted(_ROUTERS)}")
    return cls


def build_router(config, layer_idx=0):
    """The router strategy named by ``config.router_type`` for decoder layer ``layer_idx``."""
    return router_class(config)(config, layer_idx)


class Router(Module):
    """The router interface: ``forward`` -> ``RouterOutput``, the loss terms a model adds
    (``training_losses``), weight init and the state update after an optimizer step."""

    def forward(self, hidden_states, attention_mask=None, batch_size=None, compute_aux=False):
        """Route ``[N, d]`` tokens; ``compute_aux`` adds this layer's loss terms and metrics."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def reset_parameters(self, std):
        """Draw the gate weight from ``N(0, std)`` (HF's init) and reset any routing state."""
        init.normal_(self.weight, 0.0, std)

    def update_state(self, experts, optimizer=None, generator=None):
        """Apply what training forwards recorded, once per optimizer step. A stateless router
        has nothing to update: it returns None (stateful routers return an event or None)."""
        return None

    @classmethod
    def has_training_loss(cls, config):
        """Whether a training forward adds router terms to the loss under ``config``."""
        return config.router_aux_loss_coef > 0 or config.router_z_loss_coef > 0

    @classmethod
    def training_losses(cls, config, routings, token_mask=None):
        """``(terms, aux_loss, z_loss)``: the terms a model adds to the LM loss, in order, and
        the reported aux / z losses of all MoE layers' ``routings``."""
        raise NotImplementedError(f"{cls.__name__} must implement training_losses")


@register_router("topk")
class MoERouter(Router):
    """Top-k router (Mixtral / Qwen2-MoE / DeepSeek): linear gate ``weight [E, d]`` + selection.

    Scores are softmax or sigmoid of the float32 logits; selection is greedy top-k or
    DeepSeek's group-limited top-k; weights are the selected scores, renormalised when
    ``norm_topk_prob``, times ``routed_scaling_factor``; ``capacity_factor`` drops the pairs an
    expert cannot take (``dispatched`` False, weight 0).
    """

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.layer_idx = layer_idx
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
        dispatched = None
        if self.capacity_factor is not None:
            cap = expert_capacity(ids.shape[0], self.num_experts, self.top_k,
                                  self.capacity_factor)
            keep = capacity_keep_mask(ids, self.num_experts, cap)
            dispatched = _const(keep, ids)
            weights = weights * _const(keep.astype(np.float32), weights)
        mask = None if attention_mask is None else _flat_mask(attention_mask, ids.shape[0], ids)
        return RouterOutput(ids, weights, logits, scores, dispatched=dispatched,
                            seq_aux_loss=seq_aux, hidden_states=hidden_states.detach(),
                            token_mask=mask)

    @classmethod
    def training_losses(cls, config, routings, token_mask=None):
        """Switch aux pooled over layers (or the sum of DeepSeek's per-layer sequence aux) and
        the z-loss, each times its coefficient."""
        logits = tuple(r.router_logits for r in routings)
        if config.seq_aux:
            aux = routings[0].seq_aux_loss
            for r in routings[1:]:
                aux = aux + r.seq_aux_loss
        else:
            aux = switch_load_balancing_loss(logits, config.num_local_experts,
                                             config.num_experts_per_tok, token_mask)
        z = router_z_loss(logits, token_mask) if config.router_z_loss_coef > 0 else None
        terms = []
        if config.router_aux_loss_coef > 0:
            terms.append(aux * float(config.router_aux_loss_coef))
        if z is not None:
            terms.append(z * float(config.router_z_loss_coef))
        return terms, aux, z

    def extra_repr(self):
        return (f"num_experts={self.num_experts}, top_k={self.top_k}, "
                f"scoring_func={self.scoring_func!r}, topk_method={self.topk_method!r}")
