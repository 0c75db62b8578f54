"""The ``"mpi"`` backend: genesis collectives on mpi4py's non-blocking MPI calls.

Buffers arrive contiguous in a dtype MPI reduces natively (the caller converts); data-moving
collectives travel as bytes. CUDA arrays are staged through host memory (the pip MPI builds
are not CUDA-aware). Every call returns a ``Work``; its ``wait()`` completes the request and
copies staged results back.
"""
import numpy as np

from .work import Work

__all__ = ["MPIBackend"]


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError("init_process_group(backend='mpi'): mpi4py with an MPI library is not "
                           "installed; install it with pip install 'genesis[distributed]' "
                           f"(mpi4py and mpich) ({exc})") from None
    return MPI


def _bytes(arr):
    return arr.reshape(-1).view(np.uint8)


class MPIBackend:
    """One MPI communicator (a duplicate of ``COMM_WORLD``) behind the collective interface."""

    name = "mpi"

    def __init__(self):
        self.MPI = MPI = _import_mpi()
        self.comm = MPI.COMM_WORLD.Dup()
        self.rank = self.comm.Get_rank()
        self.world_size = self.comm.Get_size()
        self._ops = {"sum": MPI.SUM, "product": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX}

    def close(self):
        """Free the communicator."""
        self.comm.Free()

    def _stage(self, *arrays):
        """Host copies of ``arrays`` and a function writing host results back to the devices."""
        host = [a if isinstance(a, np.ndarray) else a.get() for a in arrays]

        def put_back(index):
            dev = arrays[index]
            if not isinstance(dev, np.ndarray):
                dev.set(host[index])
        return host, put_back

    def _start(self, request, keep, put_back=None):
        work = Work(request.Wait, request.Test)
        work._keep = keep
        if put_back is not None:
            work.then(put_back)
        return work

    def barrier(self):
        """All processes reach this point before any leaves it."""
        req = self.comm.Ibarrier()
        return self._start(req, ())

    def gather_meta(self, vec):
        """All ranks' int64 vectors ``[L]`` stacked ``[world, L]`` (blocking)."""
        out = np.empty((self.world_size, vec.size), dtype=np.int64)
        self.comm.Allgather(np.ascontiguousarray(vec, dtype=np.int64), out)
        return out

    def broadcast(self, buf, src):
        """Rank ``src``'s ``buf`` into every rank's ``buf``."""
        (h,), put_back = self._stage(buf)
        req = self.comm.Ibcast(_bytes(h), root=src)
        return self._start(req, (h,), lambda: put_back(0))

    def all_reduce(self, buf, op):
        """``buf`` reduced element-wise over ranks with ``op``, in place on every rank."""
        (h,), put_back = self._stage(buf)
        req = self.comm.Iallreduce(self.MPI.IN_PLACE, h, self._ops[op])
        return self._start(req, (h,), lambda: put_back(0))

    def all_gather(self, out, inp):
        """Every rank's ``inp`` concatenated (rank order) into ``out``."""
        (ho, hi), put_back = self._stage(out, inp)
        req = self.comm.Iallgather(_bytes(hi), _bytes(ho))
        return self._start(req, (ho, hi), lambda: put_back(0))

    def reduce_scatter(self, out, inp, op):
        """Chunk ``rank`` of ``inp`` (``world`` equal chunks) reduced over ranks, into ``out``."""
        (ho, hi), put_back = self._stage(out, inp)
        req = self.comm.Ireduce_scatter_block(hi.reshape(-1), ho.reshape(-1), self._ops[op])
        return self._start(req, (ho, hi), lambda: put_back(0))

    def all_to_all(self, out, inp, send_counts, recv_counts):
        """Send ``send_counts[r]`` consecutive elements of ``inp`` to rank r; receive
        ``recv_counts[r]`` from rank r into consecutive parts of ``out``."""
        (ho, hi), put_back = self._stage(out, inp)
        item = hi.dtype.itemsize
        sc = np.asarray(send_counts, dtype=np.int64) * item
        rc = np.asarray(recv_counts, dtype=np.int64) * item
        sd = np.concatenate([[0], np.cumsum(sc)[:-1]])
        rd = np.concatenate([[0], np.cumsum(rc)[:-1]])
        byte = self.MPI.BYTE
        req = self.comm.Ialltoallv([_bytes(hi), (sc.tolist(), sd.tolist()), byte],
                                   [_bytes(ho), (rc.tolist(), rd.tolist()), byte])
        return self._start(req, (ho, hi), lambda: put_back(0))
