"""The Genesis energy-aware router (v2): routing as a physical system that seeks low energy.

For token ``x_t`` and active expert ``e`` (float32, float64 for float64 models):

    z = W x,  s = cos(x, C),  E_bind = -(z + beta_bind * s) + omega     (inactive: +inf)
    q = softmax(-E_bind / tau)                  binding weights: they carry the gradient
    H = E_bind + b,  p = softmax(-H / tau)      selection weights (b: cost potential, constant)
    keep the fewest experts (1..k) whose sorted p-mass reaches genesis_threshold; mixing
    weights = the kept q, renormalised to sum 1 (genesis_renormalize) or raw
    E_entropy = lambda_entropy * S(q) / log(E_active)   the only training-loss term

A token's routing depends on that token and the layer's state alone, never on the batch, so
a causal LM sees no future through its router. Training forwards only *record* statistics;
``update_state`` (once per optimizer step, after it) applies them: the cost potential's
integral control ``b_e += eta_cost * sign(f_e - 1/E_active)`` (then centred), the centroid
VQ-EMA, the load EMA and, every ``genesis_mitosis_interval`` steps, a split of an overloaded
expert into a free slot with multiplicity offsets ``omega += tau ln 2`` on both copies (the
family keeps its probability mass). ``E_max = num_local_experts + genesis_max_new_experts``
slots are allocated up front. See docs/genesis_routing.md.
"""
import math

import numpy as np

from ... import backends, dtypes, ops
from ...autograd import no_grad
from ...creation import tensor, zeros
from ...nn import Parameter, init
from ...random import draw_normal
from ...tensor import Tensor
from .routing import Router, RouterOutput, _const, _flat_mask, _host, register_router

__all__ = ["GenesisRouter"]

_POWER_ITERATIONS = 8      # for the main direction of the parent's recent tokens
_EPS = 1e-12


def _xp_of(arr):
    return backends.xp_for(backends.device_of_array(arr))


def _unit_rows(xp, a):
    return a / xp.maximum(xp.sqrt((a * a).sum(axis=-1, keepdims=True)), _EPS)


def _copy_optimizer_slot(optimizer, param, parent, child):
    """Copy ``parent``'s slot of every per-parameter optimizer state array shaped like
    ``param`` (Adam's moments) into ``child``: the child starts as the parent's copy."""
    if optimizer is None:
        return
    for value in (optimizer.state.get(param) or {}).values():
        arr = value._array if isinstance(value, Tensor) else value
        if tuple(getattr(arr, "shape", ())) == tuple(param.shape):
            arr[child] = arr[parent]


@register_router("genesis")
class GenesisRouter(Router):
    """Energy-aware router v2 (see the module docstring): binding, cost-potential and entropy
    energies, adaptive 1..k activation, causal state updates and expert mitosis."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_experts = config.num_local_experts
        self.num_slots = config.num_expert_slots
        self.top_k = config.num_experts_per_tok
        self.hidden_size = config.hidden_size
        self.capacity_factor = config.capacity_factor
        self.threshold = config.genesis_threshold
        self.beta_bind = config.genesis_beta_bind
        self.eta_cost = config.genesis_eta_cost
        self.lambda_entropy = config.genesis_lambda_entropy
        self.tau = config.genesis_tau
        self.renormalize = config.genesis_renormalize
        self.eta_centroid = config.genesis_eta_centroid
        self.eta_load = config.genesis_eta_load
        self.mitosis_interval = config.genesis_mitosis_interval
        self.split_ratio = config.genesis_split_ratio
        self.split_delta = config.genesis_split_delta
        self.split_noise = config.genesis_split_noise
        self.weight = Parameter(zeros(self.num_slots, self.hidden_size))
        f32 = dtypes.float32
        self.register_buffer("centroids", zeros(self.num_slots, self.hidden_size, dtype=f32))
        self.register_buffer("cost_potential", zeros(self.num_slots, dtype=f32))
        self.register_buffer("multiplicity_offset", zeros(self.num_slots, dtype=f32))
        self.register_buffer("load", zeros(self.num_slots, dtype=f32))
        self.register_buffer("active", zeros(self.num_slots, dtype=dtypes.bool_))
        self.register_buffer("num_steps", tensor(0, dtype=dtypes.int64))
        self._pending = None
        self.reset_state()

    def reset_parameters(self, std):
        """``N(0, std)`` router rows, then ``reset_state`` (centroids follow the rows)."""
        init.normal_(self.weight, 0.0, std)
        self.reset_state()

    def reset_state(self):
        """Centroids = normalised router rows; ``b = omega = 0``; load ``1/E`` and active on the
        first E slots; no recorded statistics."""
        xp = backends.xp_for(self.weight.device)
        with no_grad():
            w = self.weight._array.astype(np.float32)
            self.centroids._array[...] = _unit_rows(xp, w).astype(self.centroids._array.dtype)
            self.cost_potential._array[...] = 0
            self.multiplicity_offset._array[...] = 0
            self.load._array[...] = 0
            self.load._array[:self.num_experts] = 1.0 / self.num_experts
            self.active._array[...] = False
            self.active._array[:self.num_experts] = True
            self.num_steps._array[...] = 0
        self._bump(self.centroids, self.cost_potential, self.multiplicity_offset, self.load,
                   self.active, self.num_steps)
        self._pending = None

    @staticmethod
    def _bump(*buffers):
        for buf in buffers:
            buf._version[0] += 1

    # ------------------------------------------------------------------ routing
    def forward(self, hidden_states, attention_mask=None, batch_size=None, compute_aux=False):
        """Route ``[N, d]`` tokens; ``compute_aux`` adds the entropy loss and the energy."""
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
        omega = self.multiplicity_offset._array[slots].astype(cdt.np)
        bind = _const(omega, x) - (z + ops.matmul(x_unit, _const(centroids, x))
                                   * float(self.beta_bind))
        q_logits = bind * (-1.0 / self.tau)
        q = ops.softmax(q_logits, dim=-1)
        energy = bind._array + self.cost_potential._array[slots].astype(cdt.np)
        p = _softmax(xp, energy * (-1.0 / self.tau))
        local = xp.argsort(-p, axis=1, kind="stable")[:, :k]
        p_kept = xp.take_along_axis(p, local, axis=1)
        used = 1 + (xp.cumsum(p_kept, axis=1)[:, :-1] < self.threshold).sum(axis=1)
        keep = xp.arange(k)[None, :] < used[:, None]
        kept = ops.gather(q, -1, _const(local, x)) * _const(keep.astype(cdt.np), x)
        weights = kept / ops.sum(kept, dim=-1, keepdim=True) if self.renormalize else kept
        ids = slots[local]
        mask = _flat_mask(attention_mask, n, x)
        entropy_loss = metrics = None
        if compute_aux:
            norm = math.log(e_act) if e_act > 1 else 1.0
            e_ent = ops.sum(q * ops.log_softmax(q_logits, dim=-1), dim=-1) * (
                -self.lambda_entropy / norm)
            tokens = max(float(mask.sum()), 1.0)
            entropy_loss = ops.sum(e_ent * _const(mask.astype(cdt.np), x)) / tokens
            live_b = self.cost_potential._array[slots]
            metrics = {"energy": float(((p * energy).sum(axis=1) + e_ent._array) @ mask) / tokens,
                       "cost_potential_spread": float(live_b.max() - live_b.min())}
        if self.training:
            self._record(x_unit._array, ids, keep, mask)
        scores = xp.zeros((n, self.num_slots), dtype=cdt.np)
        scores[:, slots] = p
        keep_t = _const(keep, x)
        return RouterOutput(_const(ids, x), weights, ops.to_dtype(z_all, hidden_states.dtype),
                            _const(scores, x), selected=keep_t, dispatched=keep_t,
                            entropy_loss=entropy_loss, metrics=metrics,
                            hidden_states=hidden_states.detach(),
                            token_mask=None if attention_mask is None else mask,
                            live_experts=slots)

    def _record(self, x_unit, ids, keep, mask):
        """Training forward: add this batch's routed pairs and top-1 groups to the statistics
        ``update_state`` applies after the optimizer step (routing itself never reads them)."""
        xp = _xp_of(x_unit)
        pair_w = xp.repeat(mask, ids.shape[1]).reshape(ids.shape)
        routed = xp.bincount(ids[keep], weights=pair_w[keep], minlength=self.num_slots)
        real = mask > 0
        xu, top1 = x_unit[real].astype(np.float64), ids[real, 0]
        onehot = (top1[:, None] == xp.arange(self.num_slots)[None, :]).astype(np.float64)
        sums, members = onehot.T @ xu, onehot.sum(axis=0)
        if self._pending is None:
            self._pending = {"routed": routed, "sums": sums, "members": members}
        else:
            for key, value in (("routed", routed), ("sums", sums), ("members", members)):
                self._pending[key] = self._pending[key] + value
        self._pending["recent"] = (xu, top1)

    # ------------------------------------------------------------------ state updates
    def update_state(self, experts, optimizer=None, generator=None):
        """Once per optimizer step, after it: apply the recorded statistics (cost potential,
        centroids, load) and, every ``genesis_mitosis_interval`` steps, try a mitosis.

        Returns ``(parent, child)`` when an expert split, else None. ``optimizer``: its state
        slots of the child are copied from the parent; ``generator``: the seeded source of the
        child's noise (default: genesis's default generator).
        """
        if experts.num_experts != self.num_slots:
            raise ValueError(f"GenesisRouter.update_state: experts have {experts.num_experts} "
                             f"slots, the router has {self.num_slots}")
        pending, self._pending = self._pending, None
        recent = None
        if pending is not None:
            self._apply(pending)
            recent = pending["recent"]
        self.num_steps._array[...] += 1
        self._bump(self.num_steps)
        if int(self.num_steps._array) % self.mitosis_interval:
            return None
        return self.mitosis(experts, optimizer, generator, recent)

    def _apply(self, pending):
        """``b += eta_cost * sign(f - 1/E_active)`` centred over the active experts; centroid
        VQ-EMA over top-1 groups; load EMA of the routed pairs' shares."""
        xp = _xp_of(self.load._array)
        slots = xp.nonzero(self.active._array)[0]
        routed = pending["routed"]
        total = float(routed.sum())
        if total > 0:
            share = routed / total
            b = self.cost_potential._array.astype(np.float64)
            b[slots] += self.eta_cost * xp.sign(share[slots] - 1.0 / slots.shape[0])
            b[slots] -= b[slots].mean()
            self.cost_potential._array[...] = b.astype(self.cost_potential._array.dtype)
            self.load._array[...] = ((1 - self.eta_load) * self.load._array.astype(np.float64)
                                     + self.eta_load * share).astype(self.load._array.dtype)
        members = pending["members"]
        target = pending["sums"] / xp.maximum(members, 1)[:, None]
        c = self.centroids._array.astype(np.float64)
        moved = _unit_rows(xp, (1 - self.eta_centroid) * c + self.eta_centroid * target)
        self.centroids._array[...] = xp.where(members[:, None] > 0, moved, c).astype(
            self.centroids._array.dtype)
        self._bump(self.cost_potential, self.load, self.centroids)

    # ------------------------------------------------------------------ mitosis
    def mitosis(self, experts, optimizer=None, generator=None, recent=None):
        """Split the most loaded expert into the first free slot when ``E_active * load >
        genesis_split_ratio``; returns ``(parent, child)`` or None.

        The child copies the parent's expert weights and router row (plus seeded noise of
        ``genesis_split_noise * std``), its cost potential, multiplicity offset and optimizer
        state; both copies get ``omega += tau ln 2`` so the family keeps its mass. Centroids
        move apart along the main direction of the parent's ``recent`` tokens
        (``(unit states, top-1 ids)``); the parent's load is halved between the two.
        """
        active = _host(self.active._array)
        free = np.nonzero(~active)[0]
        if free.size == 0:
            return None
        live = np.nonzero(active)[0]
        load = _host(self.load._array).astype(np.float64)
        parent = int(live[np.argmax(load[live])])
        if live.size * load[parent] <= self.split_ratio:
            return None
        child = int(free[0])
        with no_grad():
            for param in (experts.gate_up_proj, experts.down_proj, self.weight):
                self._copy_slot(param, parent, child, generator)
                _copy_optimizer_slot(optimizer, param, parent, child)
            self._split_centroid(parent, child, recent, generator)
            offset = self.multiplicity_offset._array
            offset[parent] += self.tau * math.log(2.0)
            offset[child] = offset[parent]
            self.cost_potential._array[child] = self.cost_potential._array[parent]
            half = self.load._array[parent] / 2
            self.load._array[parent] = half
            self.load._array[child] = half
            self.active._array[child] = True
        self._bump(self.centroids, self.load, self.active, self.cost_potential,
                   self.multiplicity_offset)
        return parent, child

    def _copy_slot(self, param, parent, child, generator):
        xp = backends.xp_for(param.device)
        src = param._array[parent].astype(np.float64)
        noise = draw_normal(src.shape, np.float64, std=self.split_noise * float(src.std()),
                            generator=generator)
        param._array[child] = (src + xp.asarray(noise)).astype(param._array.dtype)
        param._version[0] += 1

    def _split_centroid(self, parent, child, recent, generator):
        """``C_parent, C_child = normalize(C +- delta v)``, ``v`` the parent's main direction."""
        xp = backends.xp_for(self.centroids.device)
        c = self.centroids._array[parent].astype(np.float64)
        v = xp.asarray(draw_normal(c.shape, np.float64, generator=generator))
        if recent is not None:
            xu, top1 = recent
            residual = xu[top1 == parent] - c[None, :]
            for _ in range(_POWER_ITERATIONS if residual.shape[0] else 0):
                u = residual.T @ (residual @ v)
                norm = float(xp.sqrt(u @ u))
                if norm <= _EPS:
                    break
                v = u / norm
        v = v - (v @ c) * c
        norm = float(xp.sqrt(v @ v))
        if norm <= _EPS:
            v = xp.asarray(draw_normal(c.shape, np.float64, generator=generator))
            v = v - (v @ c) * c
            norm = float(xp.sqrt(v @ v))
        v = v / norm
        pair = _unit_rows(xp, xp.stack([c + self.split_delta * v, c - self.split_delta * v]))
        self.centroids._array[parent] = pair[0].astype(self.centroids._array.dtype)
        self.centroids._array[child] = pair[1].astype(self.centroids._array.dtype)

    # ------------------------------------------------------------------ losses
    @classmethod
    def has_training_loss(cls, config):
        """The entropy energy is the only router term: on when ``genesis_lambda_entropy > 0``."""
        return config.genesis_lambda_entropy > 0

    @classmethod
    def training_losses(cls, config, routings, token_mask=None):
        """The summed per-layer mean entropy energies (added as is; no z-loss)."""
        aux = routings[0].entropy_loss
        for r in routings[1:]:
            aux = aux + r.entropy_loss
        return [aux], aux, None

    def extra_repr(self):
        return (f"num_experts={self.num_experts}, slots={self.num_slots}, top_k={self.top_k}, "
                f"threshold={self.threshold}, tau={self.tau}, eta_cost={self.eta_cost}")


def _softmax(xp, a):
    e = xp.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
