"""How ``genesis train`` runs under ``mpirun -n N``: data parallel, optionally expert parallel.

Every rank draws the same global batch (same seeded sampler) and trains on rows
``rank::N`` of it through ``DistributedDataParallel``, so N ranks follow the loss curve of one
process on the whole batch. With ``--expert-parallel`` each MoE layer's experts are sharded
over the ranks as well. Rank 0 alone writes checkpoints (full HF layout: shards gathered),
metrics and plots; a run resumes with the same N.
"""
import math

import numpy as np

import genesis

from .. import backends
from .data import CLIError

__all__ = ["ParallelContext", "NullMetrics"]


class ParallelContext:
    """This process's part in a run: ``world``, ``rank``, ``expert_parallel``; one process
    without a launcher and without ``--expert-parallel``."""

    def __init__(self, world=1, rank=0, expert_parallel=False, distributed=False, device="cpu"):
        self.world, self.rank = world, rank
        self.device = device
        self.expert_parallel = expert_parallel
        self.distributed = distributed

    @property
    def is_main(self):
        """True on the rank that writes files and logs."""
        return self.rank == 0

    @classmethod
    def start(cls, expert_parallel=False, device="cpu", batch_size=None):
        """Join the process group when launched by mpirun/torchrun (or asked for expert
        parallelism); one plain process otherwise. ``batch_size`` must split over the ranks."""
        from ..distributed import process_group as pg
        env = pg.launcher_env()
        if not expert_parallel and (env is None or env[1] == 1):
            return cls()
        if not pg.is_initialized():
            try:
                pg.init_process_group("nccl" if device.startswith("cuda") else "mpi")
            except (RuntimeError, ValueError) as exc:
                raise CLIError(f"cannot start distributed training: {exc}") from None
        ctx = cls(pg.get_world_size(), pg.get_rank(), expert_parallel, True, device)
        if batch_size is not None and batch_size % ctx.world:
            raise CLIError(f"--batch-size {batch_size} must be a multiple of the number of "
                           f"processes ({ctx.world})")
        return ctx

    def agree(self, fn):
        """``fn()`` on rank 0 (file checks and writes); the other ranks wait and, when it
        raised, exit with status 2 (rank 0 reports). Collective."""
        error = result = None
        if self.is_main:
            try:
                result = fn()
            except Exception as exc:     # re-raised below, after telling the other ranks
                error = exc
        if self.distributed and self.any(error is not None) and not self.is_main:
            raise SystemExit(2)
        if error is not None:
            raise error
        return result

    def barrier(self):
        """Wait for every rank (no-op in one process)."""
        if self.distributed:
            genesis.distributed.barrier()

    def check_config(self, config):
        """Expert parallelism needs the expert slots to divide over the N processes."""
        if not self.expert_parallel:
            return
        if not config.num_local_experts:
            raise CLIError("--expert-parallel: the model has no experts")
        if config.num_expert_slots % self.world:
            raise CLIError(f"--expert-parallel: {config.num_expert_slots} expert slots do not "
                           f"split over {self.world} processes")

    def wrap(self, model):
        """Shard the experts (``--expert-parallel``) and wrap in DistributedDataParallel."""
        if not self.distributed:
            return model
        from ..models.transformers.expert_parallel import shard_experts
        from ..nn.parallel import DistributedDataParallel
        if self.expert_parallel:
            shard_experts(model)
        return DistributedDataParallel(model)

    def local_rows(self, array):
        """This rank's rows of a global batch."""
        return array[self.rank::self.world] if self.distributed else array

    def mean(self, value):
        """The mean of a float over the ranks."""
        if not self.distributed:
            return float(value)
        t = genesis.tensor(np.array([float(value)], dtype=np.float64), device=self.device)
        genesis.distributed.all_reduce(t, op=genesis.distributed.ReduceOp.AVG)
        return float(t.item())

    def any(self, flag):
        """True when ``flag`` is set on some rank."""
        if not self.distributed:
            return bool(flag)
        t = genesis.tensor(np.array([1 if flag else 0], dtype=np.int64), device=self.device)
        genesis.distributed.all_reduce(t, op=genesis.distributed.ReduceOp.MAX)
        return bool(t.item())

    def clip_grad_norm_(self, parameters, max_norm):
        """Global-norm clipping over all ranks: expert shards' squares are summed over ranks
        (replicated gradients are equal everywhere), so every rank applies the same scale."""
        from ..nn.utils import clip_grad_norm_
        params = [p for p in parameters if p.grad is not None]
        if not self.expert_parallel:
            return clip_grad_norm_(params, max_norm)
        sq = {False: 0.0, True: 0.0}
        for p in params:
            g = p.grad._array.astype(np.float64)
            sq[bool(getattr(p, "expert_parallel", False))] += float((g * g).sum())
        total = math.sqrt(sq[False] + self.mean(sq[True]) * self.world)
        scale = max_norm / (total + 1e-6)
        if scale < 1.0:
            for p in params:
                p.grad._array[...] *= scale
                p.grad._version[0] += 1
        return genesis.tensor(total)

    def reduce_router_statistics(self, model):
        """Sum the routers' recorded statistics over ranks before their post-step update, so
        every rank updates (and splits experts) from the global batch alike."""
        if self.distributed:
            from ..models.transformers.expert_parallel import all_reduce_router_statistics
            all_reduce_router_statistics(model)

    # ------------------------------------------------------------------ checkpoints
    def full_model(self, model):
        """The model with every expert shard gathered (collective); on rank 0 a full
        ``MoEForCausalLM``, elsewhere None. Without expert parallelism: ``model``."""
        if not self.expert_parallel:
            return model
        from ..models.transformers import MoEForCausalLM
        from ..models.transformers.expert_parallel import full_state_dict
        state = full_state_dict(model)
        if not self.is_main:
            return None
        rng = genesis.get_rng_state()
        full = MoEForCausalLM(model.config, check_memory=False)
        genesis.set_rng_state(rng)
        if self.device != "cpu":
            full.to(self.device)
        full.load_state_dict(state)
        return full

    def _expert_windows(self, optimizer):
        """Per optimizer index of an expert shard: its parameter (slices move in and out)."""
        out, index = {}, {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), (len(index), p))
        for i, p in index.values():
            if getattr(p, "expert_parallel", False):
                out[i] = p
        return out

    def optimizer_state(self, optimizer):
        """``optimizer.state_dict()`` with expert-shard states gathered to full size
        (collective; the result is meaningful on rank 0)."""
        state = optimizer.state_dict()
        if not self.expert_parallel:
            return state
        from ..distributed.process_group import default_backend
        backend = default_backend("checkpoint")
        gathered = {}
        for i, p in self._expert_windows(optimizer).items():
            entry = dict(state["state"].get(i, {}))
            for name, value in entry.items():
                if isinstance(value, genesis.Tensor) and tuple(value.shape) == tuple(p.shape):
                    xp = backends.xp_for(value.device)
                    arr = xp.ascontiguousarray(value._array)
                    full = xp.empty((self.world,) + arr.shape, dtype=arr.dtype)
                    backend.all_gather(full, arr).wait()
                    entry[name] = genesis.Tensor._make(full.reshape((-1,) + arr.shape[1:]),
                                                       device=value.device)
            gathered[i] = entry
        state["state"] = {**state["state"], **gathered}
        return state

    def load_model_state(self, model, state):
        """Load a full checkpoint's ``state`` (expert shards take their slices)."""
        if self.expert_parallel:
            from ..models.transformers.expert_parallel import shard_state_dict
            state = shard_state_dict(model, state)
        model.load_state_dict(state)

    def load_optimizer_state(self, optimizer, state):
        """Load a checkpoint's optimizer state, taking this rank's slice of expert states."""
        if self.expert_parallel:
            for i, p in self._expert_windows(optimizer).items():
                local = p.shape[0]
                lo = self.rank * local
                entry = state["state"].get(i, state["state"].get(str(i)))
                for name, value in (entry or {}).items():
                    if isinstance(value, genesis.Tensor) and value.ndim == p.ndim and \
                            value.shape[0] == local * self.world:
                        entry[name] = genesis.Tensor._make(value._array[lo:lo + local].copy())
        optimizer.load_state_dict(state)



class NullMetrics:
    """What ranks other than 0 write metrics to: nothing."""

    def write(self, record):
        """Drop the record."""

    def sync(self):
        """Nothing to flush."""
