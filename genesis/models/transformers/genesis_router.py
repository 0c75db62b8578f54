"""The Genesis energy-aware router: routing as a physical system that seeks low energy.

For token ``x_t`` and active expert ``e`` (computed in float32, float64 for float64 models):

    z = W x,  s = cos(x, C),  E_bind = -(z + beta_bind * s)
    tentative top-k of -E_bind -> counts n_e (no gradient);  cap = ceil(cf * N * k / E_active)
    E_cost[e] = lambda_cost * max(0, n_e - cap) / cap              (a constant, no gradient)
    p = softmax(-(E_bind + E_cost) / tau)                          (Boltzmann weights)
    keep the fewest experts (1..k) whose sorted mass reaches genesis_threshold, weights = the
    kept p renormalised; unused slots get id -1 and weight 0 (one dispatch path for all routers)
    E_entropy = lambda_entropy * S(p) / log(E_active)              (the only training-loss term)

The layer's state is persistent so checkpoints and resumed runs are exact: the router
``weight [E_max, d]`` (trainable), unit ``centroids [E_max, d]``, the ``load`` EMA, the ``active``
slot mask and the ``num_steps`` counter. Training forwards update centroids (VQ-EMA over top-1
groups) and the load EMA; ``mitosis`` (once per optimizer step) splits an overloaded expert
into a free slot. ``E_max = num_local_experts + genesis_max_new_experts``.
"""
import math

import numpy as np

from ... import backends, dtypes, ops
from ...autograd import no_grad
from ...creation import tensor, zeros
from ...nn import Module, Parameter
from ...tensor import Tensor
from .routing import RouterOutput, _const, _flat_mask

__all__ = ["GenesisRouter", "semantic_stability_index"]

_NOISE_SCALE = 1e-3        # child weights = parent's + N(0, 1) * 1e-3 * std(parent's weights)
_POWER_ITERATIONS = 8      # for the main direction of the parent's recent tokens
_EPS = 1e-12


def _xp_of(arr):
    return backends.xp_for(backends.device_of_array(arr))


def _unit_rows(xp, a):
    return a / xp.maximum(xp.sqrt((a * a).sum(axis=-1, keepdims=True)), _EPS)


def semantic_stability_index(unit_states, groups):
    """SSI ``= 1 - mean_e var(D_e)`` with ``D_e = 1 - X_e X_e^T`` over each group of >= 2 rows.

    ``unit_states [N, d]``: normalised hidden states (array); ``groups [N]``: each row's top-1
    expert. ``var(D) = var(G)`` for the Gram ``G = X X^T``, and ``mean(G) = |sum x|^2 / n^2``,
    ``mean(G^2) = ||X^T X||_F^2 / n^2``: one ``min(n, d)``-sized product per group, never the
    ``n x n`` matrix of distances. Returns 1.0 when no group has two members.
    """
    xp = _xp_of(unit_states)
    x = unit_states.astype(np.float64)
    groups = groups.astype(np.int64)
    if groups.size == 0:
        return 1.0
    order = xp.argsort(groups, kind="stable")
    counts = xp.bincount(groups, minlength=int(groups.max()) + 1)
    bounds = np.concatenate([[0], np.cumsum(counts if xp is np else xp.asnumpy(counts))])
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


def _zero_optimizer_slot(optimizer, param, slot):
    """Zero ``slot`` of every per-parameter optimizer state array shaped like ``param``."""
    if optimizer is None:
        return
    for value in (optimizer.state.get(param) or {}).values():
        arr = value._array if isinstance(value, Tensor) else value
        if tuple(getattr(arr, "shape", ())) == tuple(param.shape):
            arr[slot] = 0


class GenesisRouter(Module):
    """Energy-aware router (see the module docstring): binding + cost + entropy energies,
    adaptive 1..k activation, centroid/load EMAs and expert mitosis into free slots."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_experts = config.num_local_experts
        self.num_slots = config.num_expert_slots
        self.top_k = config.num_experts_per_tok
        self.hidden_size = config.hidden_size
        self.capacity_factor = 1.0 if config.capacity_factor is None else config.capacity_factor
        self.threshold = config.genesis_threshold
        self.beta_bind = config.genesis_beta_bind
        self.lambda_cost = config.genesis_lambda_cost
        self.lambda_entropy = config.genesis_lambda_entropy
        self.tau = config.genesis_tau
        self.eta_centroid = config.genesis_eta_centroid
        self.eta_load = config.genesis_eta_load
        self.mitosis_interval = config.genesis_mitosis_interval
        self.split_ratio = config.genesis_split_ratio
        self.split_delta = config.genesis_split_delta
        self.weight = Parameter(zeros(self.num_slots, self.hidden_size))
        self.register_buffer("centroids", zeros(self.num_slots, self.hidden_size,
                                                dtype=dtypes.float32))
        self.register_buffer("load", zeros(self.num_slots, dtype=dtypes.float32))
        self.register_buffer("active", zeros(self.num_slots, dtype=dtypes.bool_))
        self.register_buffer("num_steps", tensor(0, dtype=dtypes.int64))
        self._recent = None
        self.reset_state()

    def reset_state(self):
        """Centroids = normalised router rows; load ``1/E`` and active on the first E slots."""
        xp = backends.xp_for(self.weight.device)
        with no_grad():
            w = self.weight._array.astype(np.float32)
            self.centroids._array[...] = _unit_rows(xp, w).astype(self.centroids._array.dtype)
            self.load._array[...] = 0
            self.load._array[:self.num_experts] = 1.0 / self.num_experts
            self.active._array[...] = False
            self.active._array[:self.num_experts] = True
            self.num_steps._array[...] = 0
        for buf in (self.centroids, self.load, self.active, self.num_steps):
            buf._version[0] += 1
        self._recent = None

    # ------------------------------------------------------------------ routing
    def forward(self, hidden_states, attention_mask=None, batch_size=None, compute_aux=False):
        """Route ``[N, d]`` tokens; ``compute_aux`` adds the entropy loss and the metrics."""
        xp = backends.xp_for(hidden_states.device)
        cdt = dtypes.float64 if hidden_states.dtype is dtypes.float64 else dtypes.float32
        n, k = hidden_states.shape[0], self.top_k
        slots = xp.nonzero(self.active._array)[0].astype(np.int64)
        e_act = int(slots.shape[0])
        x = ops.to_dtype(hidden_states, cdt)
        z_all = ops.linear(x, ops.to_dtype(self.weight, cdt))
        z = ops.index_select(z_all, 1, _const(slots, x))
        x_unit = ops.normalize(x, dim=-1)
        centroids = xp.ascontiguousarray(self.centroids._array[slots].astype(cdt.np).T)
        bind = -(z + ops.matmul(x_unit, _const(centroids, x)) * float(self.beta_bind))
        mask = _flat_mask(attention_mask, n, x)
        tentative = xp.argsort(bind._array, axis=1, kind="stable")[:, :k]
        counts = xp.bincount(tentative.reshape(-1), weights=xp.repeat(mask, k), minlength=e_act)
        cap = max(1, math.ceil(self.capacity_factor * float(mask.sum()) * k / e_act))
        cost = (self.lambda_cost * xp.maximum(counts - cap, 0) / cap).astype(cdt.np)
        energy = bind + _const(cost, x)
        logits = energy * (-1.0 / self.tau)
        p = ops.softmax(logits, dim=-1)
        vals, local = ops.topk(p, k, dim=-1)
        used = 1 + (xp.cumsum(vals._array, axis=1)[:, :-1] < self.threshold).sum(axis=1)
        keep = xp.arange(k)[None, :] < used[:, None]
        kept = vals * _const(keep.astype(cdt.np), x)
        weights = kept / ops.sum(kept, dim=-1, keepdim=True)
        ids = xp.where(keep, slots[local._array], -1)
        routed = xp.bincount(ids[keep], weights=xp.repeat(mask, k)[keep.reshape(-1)],
                             minlength=self.num_slots)
        entropy_loss = metrics = None
        if compute_aux:
            norm = math.log(e_act) if e_act > 1 else 1.0
            plogp = p * ops.log_softmax(logits, dim=-1)
            e_ent = ops.sum(plogp, dim=-1) * (-self.lambda_entropy / norm)
            entropy_loss = ops.sum(e_ent * _const(mask.astype(cdt.np), x)) / max(
                float(mask.sum()), 1.0)
            metrics = self._metrics(p._array, energy._array, e_ent._array, ids, used, routed, mask,
                                    cap, x_unit._array, slots)
        if self.training:
            self._update_state(x_unit._array, ids[:, 0], routed, mask)
        scores = xp.zeros((n, self.num_slots), dtype=cdt.np)
        scores[:, slots] = p._array
        return RouterOutput(_const(ids, x), weights, ops.to_dtype(z_all, hidden_states.dtype),
                            _const(scores, x), entropy_loss=entropy_loss, metrics=metrics)

    def _metrics(self, p, energy, e_ent, ids, used, routed, mask, cap, x_unit, slots):
        """Per-layer numbers of one forward, averaged over non-padding tokens (host floats)."""
        xp = _xp_of(p)
        tokens = max(float(mask.sum()), 1.0)
        live = routed[slots]
        total = max(float(live.sum()), 1.0)
        mean = float(live.mean())
        real = mask > 0
        load = routed / total
        return {
            "expert_load": load if xp is np else xp.asnumpy(load),
            "active_experts_per_token": float((used * mask).sum()) / tokens,
            "dropped_fraction": 0.0,
            "load_imbalance": float(load.max()) * int(slots.shape[0]),
            "energy": float(((p * energy).sum(axis=1) + e_ent) @ mask) / tokens,
            "overflow_fraction": float(xp.maximum(live - cap, 0).sum()) / total,
            "load_cv": float(live.std()) / mean if mean > 0 else 0.0,
            "ssi": semantic_stability_index(x_unit[real], ids[real, 0]),
            "experts_alive": int(slots.shape[0]),
        }

    # ------------------------------------------------------------------ state updates
    def _update_state(self, x_unit, top1, routed, mask):
        """Training only: centroid VQ-EMA over top-1 groups; load EMA of the share of routed
        (token, expert) pairs after adaptive activation (``routed``, ``E_max`` wide)."""
        xp = _xp_of(x_unit)
        real = mask > 0
        xu, top1 = x_unit[real], top1[real]
        onehot = (top1[:, None] == xp.arange(self.num_slots)[None, :]).astype(xu.dtype)
        members = onehot.sum(axis=0)
        target = (onehot.T @ xu) / xp.maximum(members, 1)[:, None]
        c = self.centroids._array.astype(xu.dtype)
        moved = _unit_rows(xp, (1 - self.eta_centroid) * c + self.eta_centroid * target)
        self.centroids._array[...] = xp.where(members[:, None] > 0, moved, c).astype(
            self.centroids._array.dtype)
        total = float(routed.sum())
        if total > 0:
            self.load._array[...] = ((1 - self.eta_load) * self.load._array.astype(np.float64)
                                   + self.eta_load * routed / total).astype(self.load._array.dtype)
        self.centroids._version[0] += 1
        self.load._version[0] += 1
        self._recent = (xu, top1)

    # ------------------------------------------------------------------ mitosis
    def mitosis(self, experts, optimizer=None):
        """Count one optimizer step; every ``genesis_mitosis_interval`` steps split the most
        loaded expert into the first free slot when ``E_active * load > genesis_split_ratio``.

        Returns ``(parent, child)`` or None. The child gets the parent's expert weights and
        router row plus seeded ``1e-3 * std`` noise, its ``optimizer`` state slots are zeroed,
        the centroids move apart along the main direction of the parent's recent tokens and the
        parent's load is halved between the two.
        """
        if experts.num_experts != self.num_slots:
            raise ValueError(f"GenesisRouter.mitosis: experts have {experts.num_experts} slots, "
                             f"the router has {self.num_slots}")
        self.num_steps._array[...] += 1
        self.num_steps._version[0] += 1
        step = int(self.num_steps._array)
        active = self.active._array
        free = np.nonzero(_host(~active))[0]
        if step % self.mitosis_interval or free.size == 0:
            return None
        live = np.nonzero(_host(active))[0]
        load = _host(self.load._array).astype(np.float64)
        parent = int(live[np.argmax(load[live])])
        if live.size * load[parent] <= self.split_ratio:
            return None
        child = int(free[0])
        rng = np.random.default_rng([self.layer_idx, step, child])
        with no_grad():
            for param in (experts.gate_up_proj, experts.down_proj, self.weight):
                self._copy_slot(param, parent, child, rng)
                _zero_optimizer_slot(optimizer, param, child)
            self._split_centroid(parent, child, rng)
            half = self.load._array[parent] / 2
            self.load._array[parent] = half
            self.load._array[child] = half
            self.active._array[child] = True
        for buf in (self.centroids, self.load, self.active):
            buf._version[0] += 1
        return parent, child

    @staticmethod
    def _copy_slot(param, parent, child, rng):
        xp = backends.xp_for(param.device)
        src = param._array[parent].astype(np.float64)
        noise = rng.standard_normal(src.shape) * (_NOISE_SCALE * float(src.std()))
        param._array[child] = (src + xp.asarray(noise)).astype(param._array.dtype)
        param._version[0] += 1

    def _split_centroid(self, parent, child, rng):
        """``C_parent, C_child = normalize(C +- delta v)``, ``v`` the parent's main direction."""
        xp = backends.xp_for(self.centroids.device)
        c = self.centroids._array[parent].astype(np.float64)
        v = xp.asarray(rng.standard_normal(c.shape[0]))
        if self._recent is not None:
            xu, top1 = self._recent
            residual = xu[top1 == parent].astype(np.float64) - c[None, :]
            for _ in range(_POWER_ITERATIONS if residual.shape[0] else 0):
                u = residual.T @ (residual @ v)
                norm = float(xp.sqrt(u @ u))
                if norm <= _EPS:
                    break
                v = u / norm
        v = v - (v @ c) * c
        norm = float(xp.sqrt(v @ v))
        if norm <= _EPS:
            v = xp.asarray(rng.standard_normal(c.shape[0]))
            v = v - (v @ c) * c
            norm = float(xp.sqrt(v @ v))
        v = v / norm
        pair = _unit_rows(xp, xp.stack([c + self.split_delta * v, c - self.split_delta * v]))
        self.centroids._array[parent] = pair[0].astype(self.centroids._array.dtype)
        self.centroids._array[child] = pair[1].astype(self.centroids._array.dtype)

    def extra_repr(self):
        return (f"num_experts={self.num_experts}, slots={self.num_slots}, top_k={self.top_k}, "
                f"threshold={self.threshold}, tau={self.tau}")


def _host(arr):
    return arr if isinstance(arr, np.ndarray) else arr.get()
