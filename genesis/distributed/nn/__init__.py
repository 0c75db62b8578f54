"""genesis.distributed.nn: collectives that autograd differentiates, as torch.distributed.nn."""
from . import functional

__all__ = ["functional"]
