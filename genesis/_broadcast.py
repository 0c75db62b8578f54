"""Broadcasting checks shared by every op: one rule, one message, one error type (RuntimeError,
as in PyTorch) for the same mistake wherever it is made."""
import numpy as np

__all__ = ["broadcast_error", "broadcast_shapes", "check_broadcast_to"]


def broadcast_error(op, what):
    """The RuntimeError for a broadcasting mistake: ``"{op}: {what} (sizes must match ...)"``."""
    return RuntimeError(f"{op}: {what} (sizes must match or be 1, aligned from the right)")


def broadcast_shapes(op, *shapes, what=None):
    """The broadcast of ``shapes``; a RuntimeError naming ``op`` and the shapes (or ``what``,
    e.g. "input of shape (2, 3) and target of shape (4,)") when they do not broadcast."""
    try:
        return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        what = what or "the shapes " + " and ".join(str(tuple(s)) for s in shapes)
        raise broadcast_error(op, f"{what} cannot be broadcast together") from None


def check_broadcast_to(op, shape, target, what, into):
    """RuntimeError unless ``shape`` broadcasts to ``target`` itself (a value written into it)."""
    shape, target = tuple(shape), tuple(target)
    try:
        fits = tuple(np.broadcast_shapes(shape, target)) == target
    except ValueError:
        fits = False
    if not fits:
        raise broadcast_error(op, f"{what} of shape {shape} cannot be broadcast to {into} of "
                                  f"shape {target}")
