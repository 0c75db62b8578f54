"""Energy meters: NVML's GPU energy counter, RAPL on the CPU, or None when neither is readable.

Energy is read from a real counter or reported as unavailable, never estimated.
"""
import glob
import os

__all__ = ["RAPLMeter", "NVMLMeter", "available_meter", "describe_meters", "EnergyWindow"]


class RAPLMeter:
    """Intel/AMD RAPL package energy via /sys/class/powercap (microjoule counters)."""

    name = "RAPL"

    def __init__(self, root="/sys/class/powercap"):
        self.zones = []
        for zone in sorted(glob.glob(os.path.join(root, "intel-rapl:*"))):
            if zone.count(":") != 1:
                continue  # sub-zones (core, uncore) are already inside their package
            energy = os.path.join(zone, "energy_uj")
            limit = os.path.join(zone, "max_energy_range_uj")
            if os.access(energy, os.R_OK):
                with open(limit) as f:
                    self.zones.append((energy, int(f.read())))
        if not self.zones:
            raise RuntimeError("RAPL: no readable /sys/class/powercap/intel-rapl:*/energy_uj")

    def read(self):
        """Counter values in microjoules, one per package."""
        out = []
        for path, _ in self.zones:
            with open(path) as f:
                out.append(int(f.read()))
        return out

    def joules(self, start, end):
        """Joules between two ``read()`` values, handling counter wrap-around."""
        total = 0
        for (s, e), (_, limit) in zip(zip(start, end), self.zones):
            total += e - s if e >= s else e + limit - s
        return total / 1e6


class NVMLMeter:
    """NVIDIA GPU total-energy counter (millijoules) through nvidia-ml-py."""

    name = "NVML"

    def __init__(self, index=0):
        try:
            import pynvml
        except ImportError:
            raise RuntimeError("NVML: nvidia-ml-py is not installed") from None
        self.index = int(index)
        try:
            pynvml.nvmlInit()
            self._handle = self._device_handle(pynvml, self.index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except pynvml.NVMLError as exc:
            raise RuntimeError(f"NVML: energy counter unavailable ({exc})") from None
        self._nvml = pynvml

    @staticmethod
    def _device_handle(pynvml, index):
        """NVML's handle of CUDA device ``index``, matched by PCI bus id (NVML numbers GPUs
        differently from CUDA under CUDA_VISIBLE_DEVICES); by index when CuPy is missing."""
        from .backends import cuda
        if cuda.is_available():
            bus_id = cuda.xp().cuda.Device(index).pci_bus_id
            return pynvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode())
        return pynvml.nvmlDeviceGetHandleByIndex(index)

    def read(self):
        """Counter value in millijoules (the metered GPU is synchronised first)."""
        from .backends import cuda
        if cuda.is_available():
            cuda.xp().cuda.Device(self.index).synchronize()
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)

    def joules(self, start, end):
        """Joules between two ``read()`` values."""
        return (end - start) / 1e3


def available_meter(device="cpu"):
    """An NVML meter of the GPU ``device`` names, RAPL for the CPU, or None when unreadable."""
    from .device import as_device
    dev = as_device(device)
    try:
        return NVMLMeter(dev.index) if dev.type == "cuda" else RAPLMeter()
    except RuntimeError:
        return None


def describe_meters():
    """One line saying which energy counters this machine exposes."""
    parts = []
    for cls in (RAPLMeter, NVMLMeter):
        try:
            cls()
            parts.append(f"{cls.name} readable")
        except RuntimeError as exc:
            reason = str(exc).split(": ", 1)[-1]
            parts.append(f"{cls.name} unavailable ({reason})")
    return "; ".join(parts)


class EnergyWindow:
    """``with EnergyWindow(meter) as w: ...`` then ``w.joules`` (None without a meter)."""

    def __init__(self, meter):
        self.meter = meter
        self.joules = None
        self._start = None

    def __enter__(self):
        if self.meter is not None:
            self._start = self.meter.read()
        return self

    def __exit__(self, *exc):
        if self.meter is not None:
            self.joules = self.meter.joules(self._start, self.meter.read())
        return False
