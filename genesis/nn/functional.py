"""``genesis.nn.functional``: the functional forms of layers, spelled as ``torch.nn.functional``."""
import warnings

from .. import ops
from ..ops.elementwise import sigmoid, tanh
from ..ops.loss import binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss, nll_loss
from ..ops.nn import (embedding, gelu, layer_norm, linear, normalize, pad, rms_norm,
                      scaled_dot_product_attention, silu_and_mul, softplus)

__all__ = ["linear", "embedding", "relu", "gelu", "silu", "leaky_relu", "sigmoid", "tanh",
           "softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss", "l1_loss",
           "binary_cross_entropy_with_logits", "layer_norm", "rms_norm", "dropout", "one_hot",
           "pad", "scaled_dot_product_attention", "silu_and_mul", "softplus", "normalize"]


def _apply_inplace(input, result, inplace):
    """Write ``result`` into ``input`` when ``inplace`` (PyTorch's ``inplace=True``)."""
    return input.copy_(result) if inplace else result


def relu(input, inplace=False):
    """``max(input, 0)``; ``inplace=True`` overwrites ``input``."""
    return input.relu_() if inplace else ops.relu(input)


def silu(input, inplace=False):
    """``x * sigmoid(x)``; ``inplace=True`` overwrites ``input``."""
    return _apply_inplace(input, ops.silu(input), inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` where positive, else ``negative_slope * x``; ``inplace=True`` overwrites ``input``."""
    return _apply_inplace(input, ops.leaky_relu(input, negative_slope), inplace)


def dropout(input, p=0.5, training=True, inplace=False):
    """Inverted dropout: zero with probability ``p``, scale survivors by ``1 / (1 - p)``."""
    out = ops.dropout(input, p, training)
    return input if out is input else _apply_inplace(input, out, inplace)


def _implicit_dim(op, ndim, stacklevel):
    """PyTorch's legacy choice of softmax dim when none is given (with its warning)."""
    warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the call to "
                  "include dim=X as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """Softmax along ``dim`` (optionally computed in ``dtype``)."""
    if dim is None:
        dim = _implicit_dim("softmax", input.ndim, _stacklevel)
    return ops.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """Log-softmax along ``dim`` (optionally computed in ``dtype``)."""
    if dim is None:
        dim = _implicit_dim("log_softmax", input.ndim, _stacklevel)
    return ops.log_softmax(input, dim, dtype=dtype)


def one_hot(tensor, num_classes=-1):
    """One-hot int64 encoding of class indices (``num_classes=-1``: max + 1)."""
    return ops.one_hot(tensor, num_classes)
