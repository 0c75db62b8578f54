"""The default process group: ``init_process_group`` and its queries, with PyTorch's names.

Processes are started by a launcher: ``mpirun``/``mpiexec`` (Open MPI or MPICH) or
``torchrun``-style tools that set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``. The ``"mpi"`` backend runs on mpi4py (rank and size come from MPI itself and
must agree with the launcher's variables); ``"nccl"`` runs on CuPy's NCCL binding with one GPU
per process, exchanging NCCL's unique id over MPI when launched by mpirun, else over TCP at
``MASTER_ADDR:MASTER_PORT``.
"""
import os

__all__ = ["ReduceOp", "Backend", "init_process_group", "destroy_process_group",
           "is_initialized", "is_available", "is_mpi_available", "is_nccl_available",
           "get_rank", "get_world_size", "get_backend"]


class ReduceOp:
    """Reduction operators of ``all_reduce`` and ``reduce_scatter``."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"

    ALL = (SUM, AVG, PRODUCT, MIN, MAX)


class Backend:
    """Backend names accepted by ``init_process_group``."""

    MPI = "mpi"
    NCCL = "nccl"


_LAUNCHERS = (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
              ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
              ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def launcher_env():
    """``(rank, world_size, local_rank, variable names)`` announced by mpirun or torchrun, or
    None when the process was not started by a launcher."""
    for rank_var, size_var, local_var in _LAUNCHERS:
        if rank_var in os.environ and size_var in os.environ:
            try:
                rank, size = int(os.environ[rank_var]), int(os.environ[size_var])
                local = int(os.environ.get(local_var, rank))
            except ValueError:
                raise ValueError(f"init_process_group: {rank_var}={os.environ[rank_var]!r} and "
                                 f"{size_var}={os.environ[size_var]!r} must be integers") from None
            return rank, size, local, (rank_var, size_var)
    return None


def launched_by_mpirun():
    """True when an MPI launcher (Open MPI or MPICH's Hydra) started this process."""
    return any(r in os.environ for r, _, _ in _LAUNCHERS[:2])


class _State:
    backend = None      # the backend object of the default group, None when not initialised


_state = _State()


def is_available():
    """True: genesis.distributed is always importable (backends load on demand)."""
    return True


def is_mpi_available():
    """True when mpi4py (and an MPI library) can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_nccl_available():
    """True when CuPy with its NCCL binding can be imported."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return False
    return bool(getattr(nccl, "available", True))


def _check_args(backend_name, rank, world_size, got_rank, got_size, source):
    if world_size not in (-1, None) and world_size != got_size:
        raise ValueError(f"init_process_group(backend={backend_name!r}): world_size={world_size} "
                         f"but {source} reports {got_size} processes")
    if rank not in (-1, None) and rank != got_rank:
        raise ValueError(f"init_process_group(backend={backend_name!r}): rank={rank} but "
                         f"{source} reports rank {got_rank}")


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", device_id=None):
    """Join the default process group of all launched processes (``"mpi"`` or ``"nccl"``).

    ``init_method`` may be None or ``"env://"``: the rendezvous always comes from the launcher's
    environment. ``timeout``, ``store`` and ``group_name`` are not supported (they must keep
    their defaults). ``rank``/``world_size``, when given, must match the launcher's.
    """
    if _state.backend is not None:
        raise RuntimeError("init_process_group: trying to initialize the default process group "
                           "twice; call destroy_process_group() first")
    name = Backend.MPI if backend is None else str(backend).lower()
    if name not in (Backend.MPI, Backend.NCCL):
        raise ValueError(f"init_process_group: unknown backend {backend!r}; expected 'mpi' or "
                         "'nccl'")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_process_group: init_method={init_method!r} is not supported; the "
                         "rendezvous comes from the launcher's environment (None or 'env://')")
    if timeout is not None or store is not None or group_name:
        raise ValueError("init_process_group: timeout, store and group_name are not supported "
                         "by genesis; leave them at their defaults")
    env = launcher_env()
    if name == Backend.MPI:
        from .mpi_backend import MPIBackend
        impl = MPIBackend()
        if env is not None:
            _check_args(name, env[0], env[1], impl.rank, impl.world_size,
                        f"MPI (launched with {env[3][0]}/{env[3][1]})")
        _check_args(name, rank, world_size, impl.rank, impl.world_size, "MPI")
    else:
        if env is None:
            if rank in (-1, None) or world_size in (-1, None):
                raise ValueError("init_process_group(backend='nccl'): no launcher environment "
                                 "found; start the processes with mpirun or torchrun (RANK, "
                                 "WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or pass rank and "
                                 "world_size")
            env = (rank, world_size, rank, ("rank", "world_size"))
        _check_args(name, rank, world_size, env[0], env[1], "the launcher")
        from .nccl_backend import NCCLBackend
        impl = NCCLBackend(env[0], env[1], env[2] if device_id is None else device_id)
    _state.backend = impl


def destroy_process_group(group=None):
    """Leave the default process group (MPI itself stays initialised until the process exits)."""
    if group is not None:
        raise ValueError("destroy_process_group: only the default group (group=None) exists")
    if _state.backend is None:
        raise RuntimeError("destroy_process_group: the default process group is not initialized")
    backend, _state.backend = _state.backend, None
    backend.close()


def is_initialized():
    """True between ``init_process_group`` and ``destroy_process_group``."""
    return _state.backend is not None


def default_backend(what):
    """The backend of the default group; RuntimeError naming ``what`` when not initialised."""
    if _state.backend is None:
        raise RuntimeError(f"{what}: the default process group has not been initialized; call "
                           "genesis.distributed.init_process_group() first")
    return _state.backend


def _group_backend(group, what):
    if group is not None:
        raise ValueError(f"{what}: only the default group (group=None) is supported, got "
                         f"{group!r}")
    return default_backend(what)


def get_rank(group=None):
    """This process's rank in the default group."""
    return _group_backend(group, "get_rank").rank


def get_world_size(group=None):
    """Number of processes in the default group."""
    return _group_backend(group, "get_world_size").world_size


def get_backend(group=None):
    """Name of the default group's backend: ``"mpi"`` or ``"nccl"``."""
    return _group_backend(group, "get_backend").name
