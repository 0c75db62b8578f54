"""genesis.distributed: multi-process training on MPI (mpi4py) and NCCL (CuPy), as
``torch.distributed``.

Launch N processes with ``mpirun -n N python train.py`` (or torchrun for ``"nccl"``), then
``init_process_group(backend="mpi")``. Importing this package loads neither mpi4py nor CuPy;
the backend is imported by ``init_process_group``. Only the default group (all processes)
exists: ``group`` arguments must be None.
"""
from . import nn
from .collectives import (all_gather, all_gather_into_tensor, all_reduce, all_to_all_single,
                          barrier, broadcast, reduce_scatter, reduce_scatter_tensor)
from .process_group import (Backend, ReduceOp, destroy_process_group, get_backend, get_rank,
                            get_world_size, init_process_group, is_available, is_initialized,
                            is_mpi_available, is_nccl_available)
from .work import Work

__all__ = ["Backend", "ReduceOp", "Work", "init_process_group", "destroy_process_group",
           "is_initialized", "is_available", "is_mpi_available", "is_nccl_available",
           "get_rank", "get_world_size", "get_backend", "barrier", "broadcast", "all_reduce",
           "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor",
           "all_to_all_single", "nn"]
