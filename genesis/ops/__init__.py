"""Every differentiable op, grouped by family; each family module lists its ops in ``__all__``."""
from .elementwise import *  # noqa: F401,F403
from .reduction import *  # noqa: F401,F403
from .movement import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .nn import *  # noqa: F401,F403
from .moe import *  # noqa: F401,F403
from .rope import *  # noqa: F401,F403
from .projection import *  # noqa: F401,F403
from . import (elementwise, reduction, movement, indexing, linalg, nn, moe, rope, projection,
               conversion)
from ._methods import install as _install
from ..autograd import set_device_copy as _set_device_copy

for _module in (elementwise, reduction, movement, indexing, linalg, nn, moe, rope, conversion):
    _install(_module)
_set_device_copy(elementwise.to_device)

__all__ = (elementwise.__all__ + reduction.__all__ + movement.__all__ + indexing.__all__
           + linalg.__all__ + nn.__all__ + moe.__all__ + rope.__all__ + projection.__all__)
