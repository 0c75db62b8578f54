"""OpInfo-style registry: each op's samples, NumPy reference and PyTorch equivalent.

Families live in ``tests/opinfos/<family>.py`` as ``OPS = [OpInfo(...), ...]``. Adding an op
means adding one entry; ``test_ops.py`` and ``test_ops_parity_torch.py`` pick it up.
"""
import dataclasses
import importlib
import pkgutil
from typing import Callable, Optional

import numpy as np

import genesis


class Sample:
    """Positional args (NumPy arrays become genesis tensors) and keyword args of one call."""

    def __init__(self, *args, name="", **kwargs):
        self.args = args
        self.kwargs = kwargs
        self.name = name

    def __repr__(self):
        shapes = [getattr(a, "shape", a) for a in self.args]
        return f"{self.name or 'sample'}{shapes}{self.kwargs or ''}"


@dataclasses.dataclass
class OpInfo:
    """One op under test."""

    name: str
    op: Callable                      # genesis callable; tensors where Sample has arrays
    ref: Optional[Callable]           # NumPy reference on the same arrays (None: parity only)
    samples: Callable[[np.random.Generator], list]
    torch_op: Optional[Callable] = None   # torch callable with the same positions, or None
    grad: bool = True                 # differentiable in its floating array inputs
    grad_args: Optional[tuple] = None  # positions to differentiate (default: all float arrays)
    gradcheck: bool = True            # finite differences meaningful (False for lossy casts)
    atol: float = 1e-7
    rtol: float = 1e-7
    grad_atol: float = 1e-5
    grad_rtol: float = 1e-4
    extra: dict = dataclasses.field(default_factory=dict)


def all_opinfos():
    """Every OpInfo from every family module in tests/opinfos."""
    from tests import opinfos
    out = []
    for mod in sorted(pkgutil.iter_modules(opinfos.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        out.extend(importlib.import_module(f"tests.opinfos.{mod.name}").OPS)
    return out


def to_genesis(args, requires_grad=False, grad_args=None, device=None):
    """Turn the NumPy arrays of a sample into genesis tensors (float ones may require grad)."""
    out = []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            t = genesis.Tensor._make(a) if device is None else genesis.tensor(a, device=device)
            want = requires_grad and a.dtype.kind == "f" and (grad_args is None or i in grad_args)
            if want:
                t.requires_grad = True
            out.append(t)
        elif isinstance(a, (list, tuple)) and a and all(isinstance(x, np.ndarray) for x in a):
            out.append(type(a)(to_genesis(a, requires_grad, None, device)))
        else:
            out.append(a)
    return out


def flat_outputs(out):
    """Outputs as a flat list of arrays (tensors, tuples, Python numbers)."""
    if isinstance(out, genesis.Tensor):
        return [np.asarray(out.detach().cpu().numpy())]
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(flat_outputs(o))
        return res
    try:
        import torch
        if isinstance(out, torch.Tensor):
            return [out.detach().numpy()]
    except ImportError:
        pass
    return [np.asarray(out)]


def float_outputs(out):
    """Differentiable (floating) genesis output tensors, flattened."""
    if isinstance(out, genesis.Tensor):
        return [out] if out.dtype.is_floating_point else []
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(float_outputs(o))
        return res
    return []


def grad_positions(info, sample):
    """Positions of the sample's arrays that are differentiated."""
    pos = [i for i, a in enumerate(sample.args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    if info.grad_args is not None:
        pos = [i for i in pos if i in info.grad_args]
    return pos


def weighted_sum(outputs, weights):
    """A scalar sum_i <w_i, y_i> that makes every output element matter to the gradient."""
    total = None
    for y, w in zip(outputs, weights):
        term = (y * genesis.tensor(w.astype(y._array.dtype), device=y.device)).sum()
        total = term if total is None else total + term
    return total


def gradcheck(info, sample, eps=1e-6):
    """Analytic gradients vs float64 central differences; returns (analytic, numeric) pairs."""
    positions = grad_positions(info, sample)
    args = to_genesis(sample.args, True, positions)
    out = info.op(*args, **sample.kwargs)
    outs = float_outputs(out)
    rng = np.random.default_rng(1234)
    weights = [rng.standard_normal(o.shape) for o in outs]
    loss = weighted_sum(outs, weights)
    loss.backward()
    pairs = []
    for p in positions:
        analytic = args[p].grad.numpy() if args[p].grad is not None else np.zeros_like(sample.args[p])
        base = sample.args[p]
        numeric = np.zeros(base.shape, dtype=np.float64)
        flat = numeric.reshape(-1)
        for j in range(base.size):
            vals = []
            for step in (eps, -eps):
                probe = [a.copy() if isinstance(a, np.ndarray) else a for a in sample.args]
                probe[p].reshape(-1)[j] += step
                with genesis.no_grad():
                    o = float_outputs(info.op(*to_genesis(probe), **sample.kwargs))
                vals.append(sum(float((oo.numpy() * w).sum()) for oo, w in zip(o, weights)))
            flat[j] = (vals[0] - vals[1]) / (2 * eps)
        pairs.append((p, analytic, numeric))
    return pairs
