"""Autocast: per-op dtype policies applied where an op is dispatched, as in ``torch.autocast``.

Each op that PyTorch's autocast lists carries ``@autocast_op`` on its public entry point, so the
cast happens before the op's own checks and before autograd records it (PyTorch's "option 2":
patch the Python-exposed surface). Which dtype an op runs in is decided by one table per device
type below, transcribed from PyTorch's ``aten/src/ATen/autocast_mode.{h,cpp}``:

- ``lower``: floating inputs (not float64) are cast to the autocast dtype (matmuls, attention).
- ``fp32``: floating inputs (not float64) are cast to float32 (losses, norms, exp/log...).
- ``fp32_opt_dtype``: the op runs with ``dtype=float32`` unless the caller passed a dtype
  (sum, prod, cumsum, softmax, log_softmax, norm on CUDA).
- ``promote``: floating inputs are cast to the widest floating dtype among them.

Casts are ordinary differentiable ``to_dtype`` ops, so gradients reach the float32 weights in
float32. Lower-precision casts of float32 leaf tensors that require grad are cached for the
duration of the outermost autocast region (the weight is cast once per forward), as in PyTorch.
"""
import functools
import inspect
import threading

from .. import dtypes

__all__ = ["autocast", "autocast_op", "is_autocast_enabled", "get_autocast_dtype",
           "POLICIES"]

_LOWER, _FP32, _FP32_OPT_DTYPE, _PROMOTE = "lower", "fp32", "fp32_opt_dtype", "promote"

# Policies of the genesis ops that PyTorch's autocast lists. ``moe_experts`` (grouped expert
# GEMMs) is genesis's own op; it follows the matmuls. ``rms_norm`` and ``cross_entropy`` are
# composite in PyTorch's CUDA autocast (their parts run in float32); genesis's fused ops run in
# float32 there. ``cat``/``stack`` (CPU ``promote``) already promote without autocast.
POLICIES = {
    "cuda": {
        **dict.fromkeys(("matmul", "mm", "bmm", "einsum", "linear", "merged_linear",
                         "scaled_dot_product_attention", "moe_experts"), _LOWER),
        **dict.fromkeys(("exp", "expm1", "log", "log2", "log10", "log1p", "reciprocal", "rsqrt",
                         "tan", "pow", "softplus", "layer_norm", "rms_norm", "normalize",
                         "nll_loss", "cross_entropy", "l1_loss", "mse_loss",
                         "binary_cross_entropy_with_logits", "logsumexp"), _FP32),
        **dict.fromkeys(("sum", "prod", "cumsum", "cumprod", "softmax", "log_softmax", "norm"),
                        _FP32_OPT_DTYPE),
        **dict.fromkeys(("dot", "scatter_add"), _PROMOTE),
    },
    "cpu": {
        **dict.fromkeys(("matmul", "mm", "bmm", "einsum", "linear", "merged_linear",
                         "scaled_dot_product_attention", "moe_experts"), _LOWER),
        **dict.fromkeys(("prod", "mse_loss", "nll_loss", "cross_entropy", "l1_loss",
                         "binary_cross_entropy_with_logits"), _FP32),
    },
}

_DEFAULT_DTYPE = {"cpu": dtypes.bfloat16, "cuda": dtypes.float16}
_LOW_DTYPES = (dtypes.bfloat16, dtypes.float16)
WRAPPED = set()


class _State(threading.local):
    """Per-thread autocast state: the dtype per enabled device type, nesting and the cast cache."""

    def __init__(self):
        self.dtype = {}
        self.active = False
        self.nesting = 0
        self.cache_enabled = True
        self.cache = {}


_state = _State()
_open_regions = 0  # autocast regions open in any thread: the ops' fast path reads only this
_regions_lock = threading.Lock()


def is_autocast_enabled(device_type="cuda"):
    """True inside an enabled ``autocast`` region for ``device_type``."""
    return device_type in _state.dtype


def get_autocast_dtype(device_type):
    """The dtype autocast uses for ``device_type`` (the default when no region is active)."""
    _check_device_type(device_type)
    return _state.dtype.get(device_type, _DEFAULT_DTYPE[device_type])


def _check_device_type(device_type):
    if device_type not in _DEFAULT_DTYPE:
        raise ValueError(f"autocast: device_type must be 'cpu' or 'cuda', got {device_type!r}")


class autocast:
    """Run listed ops in lower precision (matmuls) or float32 (reductions, norms, losses).

    ``with genesis.autocast("cuda", dtype=genesis.bfloat16): loss = model(x)``; also usable as a
    decorator. Only tensors on ``device_type`` are affected; backward needs no region (it runs
    in the dtypes chosen in forward).
    """

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        _check_device_type(device_type)
        dtype = _DEFAULT_DTYPE[device_type] if dtype is None else dtypes.as_dtype(dtype)
        if dtype not in _LOW_DTYPES:
            raise ValueError(f"autocast: dtype must be genesis.bfloat16 or genesis.float16, got "
                             f"{dtype}")
        self.device = device_type
        self.fast_dtype = dtype
        self._enabled = bool(enabled)
        self._cache_enabled = cache_enabled
        self._saved = []

    def __enter__(self):
        global _open_regions
        with _regions_lock:
            _open_regions += 1
        self._saved.append((_state.dtype.get(self.device), _state.cache_enabled))
        if self._enabled:
            _state.dtype[self.device] = self.fast_dtype
        else:
            _state.dtype.pop(self.device, None)
        if self._cache_enabled is not None:
            _state.cache_enabled = bool(self._cache_enabled)
        _state.active = bool(_state.dtype)
        _state.nesting += 1
        return self

    def __exit__(self, *exc):
        global _open_regions
        with _regions_lock:
            _open_regions -= 1
        previous, cache_enabled = self._saved.pop()
        if previous is None:
            _state.dtype.pop(self.device, None)
        else:
            _state.dtype[self.device] = previous
        _state.cache_enabled = cache_enabled
        _state.active = bool(_state.dtype)
        _state.nesting -= 1
        if _state.nesting == 0:
            _state.cache.clear()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return fn(*args, **kwargs)
        return wrapper


def _tensor_cls():
    from ..tensor import Tensor
    return Tensor


def _first_tensor(args, kwargs, tensor_cls):
    for a in (*args, *kwargs.values()):
        if isinstance(a, tensor_cls):
            return a
        if isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, tensor_cls):
                    return b
    return None


def _eligible(t, tensor_cls, device_type):
    return (isinstance(t, tensor_cls) and t.dtype.is_floating_point
            and t.dtype is not dtypes.float64 and t.device.type == device_type)


def _cached_cast(t, target, lower):
    """``t`` in ``target``; lower-precision casts of float32 leaf weights are cached."""
    from ..autograd import is_grad_enabled
    from ..ops.elementwise import to_dtype
    if t.dtype is target:
        return t
    cacheable = (lower and _state.cache_enabled and t.dtype is dtypes.float32 and t.requires_grad
                 and t.grad_fn is None and t._base is None and is_grad_enabled())
    if not cacheable:
        return to_dtype(t, target)
    hit = _state.cache.get(id(t))
    if hit is not None and hit[0] is t and hit[1].dtype is target:
        return hit[1]
    out = to_dtype(t, target)
    _state.cache[id(t)] = (t, out)
    return out


def _map_tensors(args, kwargs, fn):
    def one(a):
        if isinstance(a, (list, tuple)):
            return type(a)(fn(b) for b in a)
        return fn(a)
    return tuple(one(a) for a in args), {k: one(v) for k, v in kwargs.items()}


def _promote_dtype(args, kwargs, tensor_cls, device_type, low):
    wide = low
    for a in (*args, *kwargs.values()):
        for t in (a if isinstance(a, (list, tuple)) else (a,)):
            if _eligible(t, tensor_cls, device_type):
                wide = dtypes.promote_types(wide, t.dtype)
    return wide


def _run(fn, policy, dtype_pos, device_type, args, kwargs, tensor_cls):
    low = _state.dtype[device_type]
    if policy == _FP32_OPT_DTYPE:
        first = _first_tensor(args, kwargs, tensor_cls)
        given = kwargs.get("dtype") is not None or (dtype_pos is not None and len(args) > dtype_pos
                                                    and args[dtype_pos] is not None)
        if given or not _eligible(first, tensor_cls, device_type):
            return fn(*args, **kwargs)
        if dtype_pos is not None and len(args) > dtype_pos:
            args = args[:dtype_pos] + (dtypes.float32,) + args[dtype_pos + 1:]
        else:
            kwargs = dict(kwargs, dtype=dtypes.float32)
        return fn(*args, **kwargs)
    target = low if policy == _LOWER else dtypes.float32 if policy == _FP32 else \
        _promote_dtype(args, kwargs, tensor_cls, device_type, low)
    lower = target is low

    def cast(a):
        return _cached_cast(a, target, lower) if _eligible(a, tensor_cls, device_type) else a

    args, kwargs = _map_tensors(args, kwargs, cast)
    return fn(*args, **kwargs)


def autocast_op(fn):
    """Mark ``fn`` as the entry point of the op of its name: under autocast it follows
    ``POLICIES``. Ops that no device lists are returned unchanged (no overhead)."""
    name = fn.__name__
    policies = {dev: table[name] for dev, table in POLICIES.items() if name in table}
    if not policies:
        return fn
    params = inspect.signature(fn).parameters
    if _FP32_OPT_DTYPE in policies.values() and "dtype" not in params:
        raise TypeError(f"autocast_op: {name} has policy {_FP32_OPT_DTYPE} but no dtype argument")
    dtype_pos = list(params).index("dtype") if "dtype" in params and \
        params["dtype"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD else None
    tensor_cls = []

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not _open_regions:
            return fn(*args, **kwargs)
        state = _state
        if not state.active:
            return fn(*args, **kwargs)
        if not tensor_cls:
            tensor_cls.append(_tensor_cls())
        first = _first_tensor(args, kwargs, tensor_cls[0])
        device_type = None if first is None else first.device.type
        policy = policies.get(device_type)
        if policy is None or device_type not in state.dtype:
            return fn(*args, **kwargs)
        state.active = False
        try:
            return _run(fn, policy, dtype_pos, device_type, args, kwargs, tensor_cls[0])
        finally:
            state.active = True

    WRAPPED.add(name)
    return wrapper
