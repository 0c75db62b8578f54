"""The ``"nccl"`` backend: genesis collectives on CuPy's NCCL binding (``cupy.cuda.nccl``).

One GPU per process (``LOCAL_RANK`` picks it). NCCL's unique id travels over MPI when mpirun
started the processes, else over one TCP connection per rank to rank 0 at
``MASTER_ADDR:MASTER_PORT`` (the torchrun convention). Calls are enqueued on the current CuPy
stream, so they are ordered with the kernels around them, except ``all_reduce``: it runs on a
communication stream that first waits for the current one, so gradient buckets reduce while
backward kernels keep running; its ``Work.wait()`` makes the current stream wait for it.
"""
import os
import socket
import time

import numpy as np

from .process_group import launched_by_mpirun
from .work import Work

__all__ = ["NCCLBackend"]

_UID_BYTES = 128


def _import_nccl():
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as exc:
        raise RuntimeError("init_process_group(backend='nccl'): CuPy with NCCL is not installed; "
                           f"install genesis[cuda] ({exc})") from None
    if not getattr(nccl, "available", True):
        raise RuntimeError("init_process_group(backend='nccl'): this CuPy build has no NCCL")
    return cupy, nccl


def _recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise RuntimeError("init_process_group(backend='nccl'): rank 0 closed the rendezvous "
                               "connection before sending NCCL's unique id")
        data += chunk
    return data


def _tcp_exchange(uid, rank, world_size, timeout=300.0):
    """Rank 0 sends ``uid`` (bytes) to every other rank over TCP at MASTER_ADDR:MASTER_PORT."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port:
        raise ValueError("init_process_group(backend='nccl'): set MASTER_ADDR and MASTER_PORT "
                         "(torchrun does) or launch with mpirun")
    if rank == 0:
        with socket.create_server(("", int(port)), reuse_port=False) as server:
            server.settimeout(timeout)
            for _ in range(world_size - 1):
                conn, _ = server.accept()
                with conn:
                    conn.sendall(uid)
        return uid
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((addr, int(port)), timeout=timeout) as conn:
                return _recv_exact(conn, _UID_BYTES)
        except (ConnectionRefusedError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"init_process_group(backend='nccl'): rank {rank} could not "
                                   f"reach rank 0 at {addr}:{port}") from None
            time.sleep(0.1)


class NCCLBackend:
    """One NCCL communicator over all ranks, one GPU per rank."""

    name = "nccl"

    def __init__(self, rank, world_size, local_rank):
        self.cupy, self.nccl = cupy, nccl = _import_nccl()
        count = cupy.cuda.runtime.getDeviceCount()
        if count == 0:
            raise RuntimeError("init_process_group(backend='nccl'): no CUDA device is visible")
        self.device = cupy.cuda.Device(local_rank % count)
        self.device.use()
        self.rank, self.world_size = rank, world_size
        uid = bytes(np.array(nccl.get_unique_id(), dtype=np.int8).view(np.uint8)) \
            if rank == 0 else None
        if launched_by_mpirun() and world_size > 1:
            from .mpi_backend import _import_mpi
            uid = _import_mpi().COMM_WORLD.bcast(uid, root=0)
        elif world_size > 1:
            uid = _tcp_exchange(uid, rank, world_size)
        uid = tuple(int(b) for b in np.frombuffer(uid, dtype=np.uint8).view(np.int8))
        self.comm = nccl.NcclCommunicator(world_size, uid, rank)
        self.comm_stream = cupy.cuda.Stream(non_blocking=True)
        self._ops = {"sum": nccl.NCCL_SUM, "product": nccl.NCCL_PROD, "min": nccl.NCCL_MIN,
                     "max": nccl.NCCL_MAX}
        self._types = {np.dtype(np.int8): nccl.NCCL_INT8, np.dtype(np.uint8): nccl.NCCL_UINT8,
                       np.dtype(np.int32): nccl.NCCL_INT32, np.dtype(np.int64): nccl.NCCL_INT64,
                       np.dtype(np.float16): nccl.NCCL_FLOAT16,
                       np.dtype(np.float32): nccl.NCCL_FLOAT32,
                       np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def close(self):
        """Destroy the communicator."""
        self.comm.destroy()

    def _check(self, *arrays):
        for a in arrays:
            if isinstance(a, np.ndarray):
                raise RuntimeError("backend 'nccl': tensors must be on a CUDA device, got a CPU "
                                   "tensor; use backend='mpi' for CPU tensors")

    def _stream(self):
        return self.cupy.cuda.get_current_stream().ptr

    def _bytes(self, arr):
        return arr.reshape(-1).view(np.uint8)

    def barrier(self):
        """All processes reach this point before any leaves it."""
        token = self.cupy.zeros(1, dtype=np.float32)
        self.comm.allReduce(token.data.ptr, token.data.ptr, 1, self.nccl.NCCL_FLOAT32,
                            self.nccl.NCCL_SUM, self._stream())
        self.cupy.cuda.get_current_stream().synchronize()
        return Work()

    def gather_meta(self, vec):
        """All ranks' int64 vectors ``[L]`` stacked ``[world, L]`` (blocking)."""
        inp = self.cupy.asarray(np.ascontiguousarray(vec, dtype=np.int64))
        out = self.cupy.empty((self.world_size, inp.size), dtype=np.int64)
        self.comm.allGather(inp.data.ptr, out.data.ptr, inp.size, self.nccl.NCCL_INT64,
                            self._stream())
        return out.get()

    def broadcast(self, buf, src):
        """Rank ``src``'s ``buf`` into every rank's ``buf``."""
        self._check(buf)
        b = self._bytes(buf)
        self.comm.broadcast(b.data.ptr, b.data.ptr, b.size, self.nccl.NCCL_UINT8, src,
                            self._stream())
        return Work()

    def all_reduce(self, buf, op):
        """``buf`` reduced element-wise over ranks with ``op``, in place on every rank (on the
        communication stream; waiting orders the current stream after it)."""
        self._check(buf)
        cuda = self.cupy.cuda
        current = cuda.get_current_stream()
        ready = cuda.Event()
        ready.record(current)
        self.comm_stream.wait_event(ready)
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._types[buf.dtype],
                            self._ops[op], self.comm_stream.ptr)
        done = cuda.Event()
        done.record(self.comm_stream)
        work = Work(lambda: current.wait_event(done), lambda: done.done)
        work._keep = (buf,)
        return work

    def all_gather(self, out, inp):
        """Every rank's ``inp`` concatenated (rank order) into ``out``."""
        self._check(out, inp)
        bi, bo = self._bytes(inp), self._bytes(out)
        self.comm.allGather(bi.data.ptr, bo.data.ptr, bi.size, self.nccl.NCCL_UINT8,
                            self._stream())
        return Work()

    def reduce_scatter(self, out, inp, op):
        """Chunk ``rank`` of ``inp`` (``world`` equal chunks) reduced over ranks, into ``out``."""
        self._check(out, inp)
        self.comm.reduceScatter(inp.data.ptr, out.data.ptr, out.size, self._types[out.dtype],
                                self._ops[op], self._stream())
        return Work()

    def all_to_all(self, out, inp, send_counts, recv_counts):
        """Send ``send_counts[r]`` consecutive elements of ``inp`` to rank r; receive
        ``recv_counts[r]`` from rank r into consecutive parts of ``out`` (grouped send/recv)."""
        self._check(out, inp)
        item = inp.dtype.itemsize
        bi, bo = self._bytes(inp), self._bytes(out)
        stream, u8 = self._stream(), self.nccl.NCCL_UINT8
        send_off = recv_off = 0
        self.nccl.groupStart()
        try:
            for peer in range(self.world_size):
                ns, nr = int(send_counts[peer]) * item, int(recv_counts[peer]) * item
                if ns:
                    self.comm.send(bi.data.ptr + send_off, ns, u8, peer, stream)
                if nr:
                    self.comm.recv(bo.data.ptr + recv_off, nr, u8, peer, stream)
                send_off += ns
                recv_off += nr
        finally:
            self.nccl.groupEnd()
        return Work()
