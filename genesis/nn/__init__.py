"""genesis.nn: modules, parameters, layers, initialisers and functional ops, as torch.nn."""
from . import functional, init, parallel, utils
from .activation import GELU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from .containers import Identity, ModuleDict, ModuleList, Sequential
from .dropout import Dropout
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss
from .module import Module
from .normalization import LayerNorm, RMSNorm
from .parameter import Parameter
from .sparse import Embedding

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Identity", "Linear",
           "Embedding", "LayerNorm", "RMSNorm", "Dropout", "ReLU", "GELU", "SiLU", "Tanh",
           "Sigmoid", "Softmax", "LogSoftmax", "CrossEntropyLoss", "MSELoss", "functional",
           "init", "parallel", "utils"]
