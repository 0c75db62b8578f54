"""genesis.models: model families built on genesis.nn (``genesis.models.transformers``)."""
from . import transformers

__all__ = ["transformers"]
