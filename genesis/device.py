"""Devices: ``cpu`` (NumPy) and ``cuda[:n]`` (CuPy)."""


class device:
    """A device such as ``device('cpu')`` or ``device('cuda', 0)``, spelled like PyTorch."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, str) and ":" in type:
            type, idx = type.split(":", 1)
            if not idx.isdigit():
                raise ValueError(f"device: invalid device string {type}:{idx!r}; expected 'cpu' or 'cuda:N'")
            index = int(idx)
        if type not in ("cpu", "cuda"):
            raise ValueError(f"device: unknown device type {type!r}; expected 'cpu' or 'cuda'")
        if type == "cuda" and index is None:
            index = 0
        self.type = type
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")


def as_device(d):
    """Turn None, a string or a device into a device (None means CPU)."""
    if d is None:
        return CPU
    if isinstance(d, device):
        return d
    if isinstance(d, int):
        return device("cuda", d)
    return device(d)
