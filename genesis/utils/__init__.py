"""genesis.utils: training utilities (activation checkpointing)."""
from . import checkpoint

__all__ = ["checkpoint"]
