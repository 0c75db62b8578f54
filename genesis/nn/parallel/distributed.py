"""``DistributedDataParallel``: data-parallel training over the default process group.

At wrap the parameter shapes are checked across ranks and rank 0's parameters and buffers are
broadcast. Gradients are averaged in buckets while backward runs: a post-accumulate-grad hook
marks each parameter ready; a full bucket is flattened and its all-reduce started
non-blocking, buckets launching in one fixed order on every rank (the order MPI needs), so
communication overlaps the rest of backward. When backward ends, a queued callback starts the
remaining buckets, waits for all and writes ``sum / world_size`` back into ``.grad``.

Each bucket also carries one used-flag per parameter, so a parameter that received no gradient
on some ranks (an expert no local token chose) gets the average of the others, and one unused
on every rank keeps ``grad = None`` exactly as in a single process. Parameters marked
``expert_parallel`` (sharded experts, see ``genesis.distributed.expert_parallel``) are not
all-reduced: their gradients already hold every rank's tokens and are only scaled by
``1 / world_size``.
"""
import contextlib
import zlib

import numpy as np

from ... import backends
from ...autograd import is_grad_enabled, queue_callback
from ...distributed.collectives import reduce_array
from ...distributed.process_group import ReduceOp, default_backend
from ...tensor import Tensor
from ..module import Module

__all__ = ["DistributedDataParallel"]


def _is_expert_parallel(param):
    return bool(getattr(param, "expert_parallel", False))


class _Bucket:
    """Parameters reduced together: one flat buffer of their gradients plus used-flags."""

    __slots__ = ("params", "pending", "buffer", "work", "launched")

    def __init__(self, params):
        self.params = params
        self.pending = len(params)
        self.buffer = self.work = None
        self.launched = False


class DistributedDataParallel(Module):
    """Wraps ``module`` so that backward averages gradients over all ranks (``.module`` is the
    wrapped model; ``no_sync()`` skips the reduction for gradient accumulation).

    Counters: ``bytes_reduced`` (bucket bytes all-reduced so far) and ``buckets_overlapped``
    (buckets started while backward was still running).

    Accepted for PyTorch compatibility but without effect: ``device_ids``, ``output_device``
    and ``dim`` (the module runs where its parameters are), ``find_unused_parameters`` (unused
    parameters are always handled, see the module docstring), ``check_reduction``,
    ``gradient_as_bucket_view`` and ``static_graph``."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0,
                 broadcast_buffers=True, process_group=None, bucket_cap_mb=25.0,
                 find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a genesis.nn.Module, got "
                            f"{type(module).__name__}")
        if process_group is not None:
            raise ValueError("DistributedDataParallel: only the default process group "
                             "(process_group=None) is supported")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got "
                             f"{bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        backend = default_backend("DistributedDataParallel")
        object.__setattr__(self, "_backend", backend)
        params = [p for p in module.parameters() if p.requires_grad]
        self._verify_shapes(backend, module)
        self._broadcast_state(backend, module)
        object.__setattr__(self, "_expert_params",
                           [p for p in params if _is_expert_parallel(p)])
        replicated = [p for p in params if not _is_expert_parallel(p)]
        object.__setattr__(self, "_buckets", self._make_buckets(replicated, bucket_cap_mb))
        object.__setattr__(self, "_bucket_of", {id(p): b for b in self._buckets
                                                for p in b.params})
        object.__setattr__(self, "_sync_enabled", True)
        object.__setattr__(self, "_armed", None)     # "sync" / "local" after a forward
        object.__setattr__(self, "_queued", False)
        object.__setattr__(self, "_next_bucket", 0)
        object.__setattr__(self, "bytes_reduced", 0)
        object.__setattr__(self, "buckets_overlapped", 0)
        for p in replicated:
            p.register_post_accumulate_grad_hook(self._grad_ready)

    # ------------------------------------------------------------------ wrap time
    @staticmethod
    def _verify_shapes(backend, module):
        """Every rank must wrap the same model: compare a digest of names, shapes and dtypes
        (expert-parallel shards compare their per-rank shapes, which also agree)."""
        desc = ";".join(f"{n}:{tuple(p.shape)}:{p.dtype}" for n, p in module.named_parameters())
        vec = np.array([len(desc), zlib.crc32(desc.encode())], dtype=np.int64)
        rows = backend.gather_meta(vec)
        if (rows != rows[0]).any():
            raise RuntimeError("DistributedDataParallel: the wrapped models differ across ranks "
                               "(parameter names, shapes or dtypes); every rank must build the "
                               f"same model (digests per rank: {rows.tolist()})")

    @staticmethod
    def _broadcast_state(backend, module):
        """Rank 0's replicated parameters and buffers to every rank (in place)."""
        tensors = [p for p in module.parameters() if not _is_expert_parallel(p)]
        tensors += list(module.buffers())
        for t in tensors:
            arr = t._array
            buf = arr if arr.flags.c_contiguous else backends.xp_for(t.device) \
                .ascontiguousarray(arr)
            backend.broadcast(buf, 0).wait()
            if buf is not arr:
                arr[...] = buf
            t._version[0] += 1

    @staticmethod
    def _make_buckets(params, cap_mb):
        """Reverse registration order (roughly the order backward produces gradients), split
        at ``cap_mb`` and wherever dtype or device changes."""
        cap = cap_mb * 1024 * 1024
        buckets, current, size = [], [], 0
        for p in reversed(params):
            if current and (size + p._array.nbytes > cap or p.dtype is not current[0].dtype
                            or p.device != current[0].device):
                buckets.append(_Bucket(current))
                current, size = [], 0
            current.append(p)
            size += p._array.nbytes
        if current:
            buckets.append(_Bucket(current))
        return buckets

    # ------------------------------------------------------------------ per step
    def forward(self, *args, **kwargs):
        """Run the wrapped module; arm the gradient reduction of the next backward."""
        sync = self._sync_enabled and is_grad_enabled()
        object.__setattr__(self, "_armed", "sync" if sync else "local")
        if sync:
            object.__setattr__(self, "_queued", False)
            object.__setattr__(self, "_next_bucket", 0)
            for b in self._buckets:
                b.pending, b.launched, b.buffer, b.work = len(b.params), False, None, None
        if self.broadcast_buffers and self._backend.world_size > 1:
            for buf in self.module.buffers():
                arr = buf._array
                if arr.flags.c_contiguous:
                    self._backend.broadcast(arr, 0).wait()
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Inside, backward accumulates gradients locally; the first backward after it (of a
        forward run outside) reduces the accumulated sum."""
        previous = self._sync_enabled
        object.__setattr__(self, "_sync_enabled", False)
        try:
            yield
        finally:
            object.__setattr__(self, "_sync_enabled", previous)

    def _grad_ready(self, param):
        if self._armed == "local":
            return
        if self._armed is None:
            raise RuntimeError(
                "DistributedDataParallel: a gradient arrived in a backward pass that no forward "
                "of the wrapper prepared (a second backward after one forward, or a backward "
                "through .module directly); it would not be averaged over the ranks. Run the "
                "forward through the wrapper first, or do the extra pass inside no_sync()")
        if not self._queued:
            queue_callback(self._finish_backward)
            object.__setattr__(self, "_queued", True)
        bucket = self._bucket_of[id(param)]
        bucket.pending -= 1
        self._launch_ready()
        for b in self._buckets[:self._next_bucket]:
            if b.work is not None:
                b.work.is_completed()      # lets MPI progress the reductions in flight

    def _launch_ready(self, force=False):
        """Start the buckets whose gradients are all ready, in bucket order."""
        while self._next_bucket < len(self._buckets):
            bucket = self._buckets[self._next_bucket]
            if bucket.pending > 0 and not force:
                return
            self._launch(bucket)
            object.__setattr__(self, "_next_bucket", self._next_bucket + 1)
            if not force:
                object.__setattr__(self, "buckets_overlapped", self.buckets_overlapped + 1)

    def _launch(self, bucket):
        first = bucket.params[0]
        xp = backends.xp_for(first.device)
        parts = []
        for p in bucket.params:
            g = p.grad
            parts.append(xp.zeros(p._array.size, dtype=p._array.dtype) if g is None
                         else g._array.reshape(-1).astype(p._array.dtype, copy=False))
        used = xp.asarray(np.array([p.grad is not None for p in bucket.params],
                                   dtype=first._array.dtype))
        flat = xp.concatenate(parts + [used])
        bucket.buffer, bucket.work = reduce_array(self._backend, flat, ReduceOp.SUM, xp)
        bucket.launched = True
        object.__setattr__(self, "bytes_reduced", self.bytes_reduced + flat.nbytes)

    def _finish_backward(self):
        """End of backward: launch what is left, wait, write the averaged gradients."""
        self._launch_ready(force=True)
        world = self._backend.world_size
        for bucket in self._buckets:
            bucket.work.wait()
            buf, offset = bucket.buffer, 0
            n = len(bucket.params)
            used = buf[buf.size - n:]
            used = used.get() if not isinstance(used, np.ndarray) else used
            for i, p in enumerate(bucket.params):
                size = p._array.size
                if float(used[i]) > 0:
                    avg = (buf[offset:offset + size] / world).reshape(p._array.shape)
                    if p.grad is None:
                        p.grad = Tensor._make(avg.astype(p._array.dtype), device=p.device)
                    else:
                        p.grad._array[...] = avg
                        p.grad._version[0] += 1
                offset += size
            bucket.buffer = bucket.work = None
        for p in self._expert_params:
            if p.grad is not None:
                p.grad._array[...] /= world
                p.grad._version[0] += 1
        object.__setattr__(self, "_armed", None)
