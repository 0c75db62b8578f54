"""genesis: a self-contained deep-learning framework with PyTorch's API and MoE language models."""
from . import dtypes as _dtypes
from .dtypes import (dtype, bool_ as bool, uint8, int8, int16, int32, int64, float16, bfloat16,
                     float32, float64, half, float, double, short, int, long,
                     get_default_dtype, set_default_dtype, promote_types)
from .device import device
from .tensor import Tensor, Size
from . import ops as _ops
from . import _tensor_methods  # noqa: F401  (binds operators and methods onto Tensor)
from .ops import *  # noqa: F401,F403
from .creation import *  # noqa: F401,F403
from .random import manual_seed, seed, initial_seed, get_rng_state, set_rng_state, Generator
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled, inference_mode
from . import autograd
from .serialization import save, load
from . import nn, optim, utils  # noqa: E402  (genesis.nn / genesis.optim like torch.nn)
from . import amp
from .amp import autocast, get_autocast_dtype, is_autocast_enabled
from . import backends, cuda
from . import distributed  # noqa: E402  (loads no MPI/NCCL until init_process_group)

__version__ = "0.1.0"


def result_type(a, b):
    """The dtype PyTorch's promotion gives ``a op b`` (tensors or Python numbers)."""
    return _dtypes.result_type(a, b)


def is_tensor(obj):
    """True for genesis tensors."""
    return isinstance(obj, Tensor)

