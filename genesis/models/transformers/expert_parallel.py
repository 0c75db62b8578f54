"""Expert parallelism: the routed experts of each MoE layer sharded over the ranks.

Rank r holds experts ``[r * E/R, (r + 1) * E/R)``. After routing, each (token, slot) pair is
sent to the rank owning its expert with ``all_to_all_single`` (pairs sorted by expert, so by
rank), the owner runs its experts through the same sorted-dispatch op as one process
(``genesis.moe_experts``), the outputs travel back by the reverse all-to-all and are weighted
and summed over the k slots where the token lives. Both exchanges are differentiable: the
backward pass sends output gradients to the experts and input gradients back. Routing is
untouched, so every router (top-k softmax, DeepSeek, Genesis) works; dropped pairs (id -1)
are never sent. The Genesis router's post-step update runs on the full slots (gathered only
when a birth happens) with the routing statistics of all ranks; each rank keeps its part.

The expert shards are parameters flagged ``expert_parallel``: ``DistributedDataParallel``
does not all-reduce them (their gradients already hold every rank's tokens) and only scales
them by ``1 / world_size`` like the averaged replicated gradients.
"""
import numpy as np

from ... import backends, ops
from ...autograd import Function
from ...creation import ones, zeros
from ...distributed import collectives
from ...distributed.nn.functional import AllToAllSingle
from ...distributed.process_group import default_backend
from ...nn import Module, Parameter
from ...tensor import Tensor

__all__ = ["ExpertParallelExperts", "shard_experts", "full_state_dict", "shard_state_dict",
           "all_reduce_router_statistics"]


class DispatchPairs(Function):
    """Rows ``hidden[order // k]``: the token of each kept (token, slot) pair in sorted order.
    Backward sums the pairs' gradients per token by a reshape (deterministic, no scatter-add)."""

    @staticmethod
    def forward(ctx, hidden, order, k):
        ctx.plan = (order, k, hidden.shape[0])
        return hidden[order // k]

    @staticmethod
    def backward(ctx, grad_pairs):
        order, k, n = ctx.plan
        full = ctx.xp.zeros((n * k, grad_pairs.shape[1]), dtype=grad_pairs.dtype)
        full[order] = grad_pairs
        return full.reshape(n, k, -1).sum(axis=1), None, None


class CombinePairs(Function):
    """``out[t] = sum_j w[t, j] * y[pair(t, j)]`` for expert outputs ``y`` of the kept pairs in
    sorted order (dropped pairs add nothing), with gradients for ``y`` and ``w``."""

    @staticmethod
    def forward(ctx, y, weights, order):
        n, k = weights.shape
        w = weights.reshape(-1)[order][:, None]
        full = ctx.xp.zeros((n * k, y.shape[1]), dtype=y.dtype)
        full[order] = y * w
        ctx.save_for_backward(y, weights)
        ctx.order = order
        return full.reshape(n, k, -1).sum(axis=1)

    @staticmethod
    def backward(ctx, grad_out):
        y, weights = ctx.saved_tensors
        order = ctx.order
        n, k = weights.shape
        g = grad_out[order // k]
        grad_y = g * weights.reshape(-1)[order][:, None] if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            flat = ctx.xp.zeros(n * k, dtype=grad_out.dtype)
            flat[order] = (g * y).sum(axis=-1)
            grad_w = flat.reshape(n, k).astype(weights.dtype, copy=False)
        return grad_y, grad_w, None


class ExpertParallelExperts(Module):
    """Drop-in for ``MoEExperts`` holding this rank's ``E / world_size`` experts; ``forward``
    takes the same ``(hidden_states [N, d], topk_ids [N, k], topk_weights [N, k])``.

    ``pairs_sent_remote`` counts the (token, slot) rows sent to other ranks so far (each row
    crosses the network four times per training step: input and output forward, their
    gradients backward)."""

    expert_parallel = True

    def __init__(self, experts):
        super().__init__()
        backend = default_backend("ExpertParallelExperts")
        world, rank = backend.world_size, backend.rank
        total = experts.num_experts
        if total % world:
            raise ValueError(f"ExpertParallelExperts: {total} experts do not split evenly over "
                             f"{world} ranks; use a world size dividing the number of experts")
        self.num_experts = total
        self.num_local_experts = local = total // world
        self.expert_offset = rank * local
        self.hidden_act = experts.hidden_act
        window = slice(self.expert_offset, self.expert_offset + local)
        self.gate_up_proj = Parameter(Tensor._make(experts.gate_up_proj._array[window].copy()))
        self.down_proj = Parameter(Tensor._make(experts.down_proj._array[window].copy()))
        for p in (self.gate_up_proj, self.down_proj):
            p.expert_parallel = True
        self.pairs_sent_remote = 0

    def extra_repr(self):
        return (f"experts {self.expert_offset}..{self.expert_offset + self.num_local_experts - 1}"
                f" of {self.num_experts}")

    def update_router(self, router, optimizer=None, generator=None):
        """``router.update_state`` on the full expert slots (collective): every rank applies the
        statistics of all ranks' tokens, so all take the same decisions; a born expert's
        weights and optimizer moments (copied from its parent, wherever that lives) land on
        the rank owning the child slot. Returns ``(parent, child)`` or None."""
        all_reduce_router_statistics(router)
        view = _AllSlots(self)
        born = router.update_state(view, optimizer, generator)
        if born is not None:
            self._adopt(view, born, optimizer)
        return born

    def _adopt(self, view, born, optimizer):
        parent, child = born
        lo, n = self.expert_offset, self.num_local_experts
        parent_owner, mine = parent // n, lo <= child < lo + n
        rank = default_backend("update_router").rank
        for name in ("gate_up_proj", "down_proj"):
            local = getattr(self, name)
            if mine:
                local._array[child - lo] = getattr(view, name)._array[child]
                local._version[0] += 1
            state = optimizer.state.get(local) if optimizer is not None else None
            for key in sorted(state or {}):
                value = state[key]
                arr = value._array if isinstance(value, Tensor) else value
                if tuple(getattr(arr, "shape", ())) != tuple(local.shape):
                    continue
                xp = backends.xp_for(local.device)
                row = arr[parent - lo].copy() if rank == parent_owner else \
                    xp.zeros(arr.shape[1:], dtype=arr.dtype)
                collectives.broadcast(Tensor._make(row, device=local.device), parent_owner)
                if mine:
                    arr[child - lo] = row

    def forward(self, hidden_states, topk_ids, topk_weights):
        """The weighted sum of each token's experts, computed on the ranks that own them."""
        backend = default_backend("ExpertParallelExperts")
        world = backend.world_size
        xp = backends.xp_for(hidden_states.device)
        n, k = topk_ids.shape
        d = hidden_states.shape[1]
        flat = topk_ids._array.reshape(-1).astype(np.int64)
        order = xp.argsort(flat, kind="stable")
        order = order[int((flat < 0).sum()):]            # drop pairs marked -1
        expert = flat[order]
        owner = expert // self.num_local_experts
        send = xp.bincount(owner, minlength=world)
        recv = zeros(world, dtype=send.dtype, device=hidden_states.device)
        collectives.all_to_all_single(recv, Tensor._make(send, device=hidden_states.device))
        send, recv = _host_list(send), _host_list(recv._array)
        self.pairs_sent_remote += sum(send) - send[backend.rank]
        local_ids, work = collectives.exchange_rows(
            backend, expert - owner * self.num_local_experts, send, recv, xp)
        x_send = DispatchPairs.apply(hidden_states, order, k)
        x_recv = AllToAllSingle.apply(x_send, send, recv, backend)
        work.wait()
        rows = x_recv.shape[0]
        y_recv = ops.moe_experts(x_recv, Tensor._make(local_ids.reshape(rows, 1),
                                                      device=hidden_states.device),
                                 ones(rows, 1, dtype=hidden_states.dtype,
                                      device=hidden_states.device),
                                 self.gate_up_proj, self.down_proj, self.hidden_act)
        y_pairs = AllToAllSingle.apply(y_recv, recv, send, backend)
        return CombinePairs.apply(y_pairs, topk_weights.to(hidden_states.dtype), order)

class _AllSlots:
    """What a router's mitosis sees of sharded experts: ``num_experts`` and, gathered from
    every rank on first access (all ranks decide alike, so all gather), the full stacked
    ``gate_up_proj`` / ``down_proj``."""

    def __init__(self, shards):
        self._shards = shards
        self.num_experts = shards.num_experts
        self._full = {}

    def _gather(self, name):
        if name not in self._full:
            shard = getattr(self._shards, name)
            backend = default_backend("mitosis")
            xp = backends.xp_for(shard.device)
            arr = xp.ascontiguousarray(shard._array)
            full = xp.empty((backend.world_size,) + arr.shape, dtype=arr.dtype)
            backend.all_gather(full, arr).wait()
            self._full[name] = Parameter(Tensor._make(full.reshape((-1,) + arr.shape[1:]),
                                                      device=shard.device))
        return self._full[name]

    gate_up_proj = property(lambda self: self._gather("gate_up_proj"))
    down_proj = property(lambda self: self._gather("down_proj"))


def shard_state_dict(model, state):
    """A full state dict with each sharded block's expert tensors cut to this rank's slice
    (to load a full checkpoint into a sharded model)."""
    state = dict(state)
    for name, block in _sharded_blocks(model):
        experts = block.experts
        if not isinstance(experts, ExpertParallelExperts):
            continue
        window = slice(experts.expert_offset, experts.expert_offset + experts.num_local_experts)
        for pname in ("gate_up_proj", "down_proj"):
            key = f"{name}.experts.{pname}" if name else f"experts.{pname}"
            if key in state:
                state[key] = Tensor._make(state[key]._array[window].copy(),
                                          device=state[key].device)
    return state


def all_reduce_router_statistics(module):
    """Sum over ranks the routing statistics every stateful router (Genesis) recorded in the
    training forwards since its last ``update_state``, so each rank applies those of the
    global batch, as one process would. Collective; call it before ``update_router_state``
    (``ExpertParallelExperts.update_router`` does); a second call before the update is a
    no-op."""
    from ...distributed import all_reduce
    for router in module.modules():
        if not hasattr(router, "_pending") or not hasattr(router, "centroids"):
            continue
        pending = router._pending
        if pending is not None and pending.get("global"):
            continue
        if pending is None:
            xp = backends.xp_for(router.centroids.device)
            slots, d = router.centroids.shape
            pending = {"routed": xp.zeros(slots), "sums": xp.zeros((slots, d)),
                       "members": xp.zeros(slots), "recent": None}
        for key in ("routed", "sums", "members"):
            total = Tensor._make(backends.xp_for(router.centroids.device)
                                 .ascontiguousarray(pending[key]), device=router.centroids.device)
            all_reduce(total)
            pending[key] = total._array
        pending["global"] = True
        router._pending = pending


def _host_list(arr):
    return [int(v) for v in (arr if isinstance(arr, np.ndarray) else arr.get()).tolist()]


def _sharded_blocks(model):
    return [(name, m) for name, m in model.named_modules()
            if hasattr(m, "experts") and hasattr(m, "gate") and isinstance(m.experts, Module)]


def shard_experts(model):
    """Replace every MoE block's experts by this rank's ``ExpertParallelExperts`` shard (after
    the full model has been built or loaded identically on every rank); returns ``model``."""
    blocks = _sharded_blocks(model)
    if not blocks:
        raise ValueError(f"shard_experts: {type(model).__name__} has no MoE block with experts")
    for _, block in blocks:
        if not isinstance(block.experts, ExpertParallelExperts):
            block.experts = ExpertParallelExperts(block.experts)
    return model


def full_state_dict(model):
    """``model.state_dict()`` with every expert shard all-gathered back to the full
    ``[E, ...]`` tensors (collective: call it on every rank)."""
    state = model.state_dict()
    backend = default_backend("full_state_dict")
    for name, block in _sharded_blocks(model):
        if not isinstance(block.experts, ExpertParallelExperts):
            continue
        for pname in ("gate_up_proj", "down_proj"):
            key = f"{name}.experts.{pname}" if name else f"experts.{pname}"
            shard = getattr(block.experts, pname)
            xp = backends.xp_for(shard.device)
            arr = xp.ascontiguousarray(shard._array)
            full = xp.empty((backend.world_size,) + arr.shape, dtype=arr.dtype)
            backend.all_gather(full, arr).wait()
            state[key] = Tensor._make(full.reshape((-1,) + arr.shape[1:]), device=shard.device)
    return state
