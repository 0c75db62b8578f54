"""genesis.nn.parallel: ``DistributedDataParallel`` over genesis.distributed, as torch.nn.parallel."""
from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
