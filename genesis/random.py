"""Random number generation: one seeded default generator makes every draw reproducible."""
import json

import numpy as np

__all__ = ["Generator", "manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state",
           "default_generator", "device_rng", "draw_normal", "draw_uniform"]


class Generator:
    """A seeded random source (PCG64), like ``torch.Generator``."""

    def __init__(self, device="cpu"):
        self.device = device
        self._seed = 0
        self._rng = np.random.Generator(np.random.PCG64(0))

    def manual_seed(self, seed):
        """Reseed; the same seed gives the same sequence of draws."""
        seed = int(seed)
        if seed < 0:
            seed += 1 << 64
        self._seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed))
        return self

    def seed(self):
        """Reseed from OS entropy and return the new seed."""
        s = int(np.random.SeedSequence().entropy % (1 << 63))
        self.manual_seed(s)
        return s

    def initial_seed(self):
        """The seed last set."""
        return self._seed

    def get_state(self):
        """The full generator state as a uint8 tensor (JSON bytes), for checkpoints."""
        from .tensor import Tensor
        blob = json.dumps({"seed": self._seed, "state": self._rng.bit_generator.state})
        return Tensor._make(np.frombuffer(blob.encode(), dtype=np.uint8).copy())

    def set_state(self, state):
        """Restore a state from ``get_state``."""
        arr = state.numpy() if hasattr(state, "numpy") else np.asarray(state)
        try:
            blob = json.loads(bytes(arr.astype(np.uint8)).decode())
            bg = np.random.PCG64()
            bg.state = blob["state"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"set_rng_state: not a genesis generator state ({exc})") from None
        self._seed = blob["seed"]
        self._rng = np.random.Generator(bg)
        return self

    @property
    def rng(self):
        return self._rng


default_generator = Generator()


class _CudaRng:
    """One GPU's random source (CuPy's cuRAND-backed RandomState) with NumPy Generator names."""

    def __init__(self, index, seed):
        from .backends import cuda
        cupy = cuda.xp()
        self.index = index
        with cupy.cuda.Device(index):
            self._rs = cupy.random.RandomState(seed)

    def _call(self, name, *args, **kwargs):
        from .backends import cuda
        with cuda.device_guard(self.index):
            return getattr(self._rs, name)(*args, **kwargs)

    def random(self, size=None, dtype=np.float64):
        return self._call("random_sample", size, dtype)

    def standard_normal(self, size=None, dtype=np.float64):
        return self._call("standard_normal", size, dtype)

    def integers(self, low, high=None, size=None, dtype=np.int64):
        return self._call("randint", low, high, size, dtype)

    def permutation(self, n):
        return self._call("permutation", n)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return self._call("normal", loc, scale, size)

    def uniform(self, low=0.0, high=1.0, size=None):
        return self._call("uniform", low, high, size)

    def exponential(self, scale=1.0, size=None):
        return self._call("exponential", scale, size)


class _CudaSeeds:
    """Seeds of the per-GPU generators; each generator is built from its seed on first use."""

    def __init__(self):
        self.seeds = {}
        self.seed_all = 0
        self.rngs = {}

    def seed(self, index, seed):
        self.seeds[index] = int(seed)
        self.rngs.pop(index, None)

    def seed_every(self, seed):
        self.seed_all = int(seed)
        self.seeds.clear()
        self.rngs.clear()

    def initial_seed(self, index):
        return self.seeds.get(index, self.seed_all)

    def rng(self, index):
        rng = self.rngs.get(index)
        if rng is None:
            rng = self.rngs[index] = _CudaRng(index, self.initial_seed(index) % (1 << 63))
        return rng


cuda_seeds = _CudaSeeds()


def manual_seed(seed):
    """Seed the default generator and every GPU's generator (as ``torch.manual_seed``)."""
    cuda_seeds.seed_every(seed)
    return default_generator.manual_seed(seed)


def device_rng(dev, generator=None):
    """The random source for draws on ``dev``: the GPU's own generator for CUDA devices.

    An explicit ``generator`` (a CPU ``Generator``) always draws on the host.
    """
    if generator is not None or dev is None or dev.type == "cpu":
        return _rng(generator)
    return cuda_seeds.rng(dev.index)


def seed():
    """Seed the default generator (and every GPU's) non-deterministically."""
    s = default_generator.seed()
    cuda_seeds.seed_every(s)
    return s


def initial_seed():
    """The default generator's seed."""
    return default_generator.initial_seed()


def get_rng_state():
    """The default generator's state as a uint8 tensor."""
    return default_generator.get_state()


def set_rng_state(state):
    """Restore the default generator's state."""
    default_generator.set_state(state)


def _rng(generator):
    return (generator or default_generator).rng


def _draw_dtype(np_dtype):
    return np.float64 if np_dtype == np.float64 else np.float32


def draw_normal(shape, np_dtype, mean=0.0, std=1.0, generator=None, device=None):
    """N(mean, std^2) samples on ``device``, drawn in float32 unless ``np_dtype`` is float64."""
    draw = device_rng(device, generator).standard_normal(shape, dtype=_draw_dtype(np_dtype))
    if std != 1.0:
        draw *= std
    if mean != 0.0:
        draw += mean
    return draw


def draw_uniform(shape, np_dtype, low=0.0, high=1.0, generator=None, device=None):
    """U(low, high) samples on ``device``, drawn in float32 unless ``np_dtype`` is float64."""
    draw = device_rng(device, generator).random(shape, dtype=_draw_dtype(np_dtype))
    if high - low != 1.0:
        draw *= (high - low)
    if low != 0.0:
        draw += low
    return draw
