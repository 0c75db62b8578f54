"""genesis.utils: activation checkpointing and data loading (``genesis.utils.data``)."""
from . import checkpoint, data

__all__ = ["checkpoint", "data"]
