"""Sample builders shared by the op families."""
import numpy as np

from tests.opinfo import Sample


def randn(rng, *shape):
    """Standard normal float64 array (0-d arrays stay arrays)."""
    return np.asarray(rng.standard_normal(shape))


def positive(rng, *shape, low=0.5, high=2.0):
    """Float64 array bounded away from zero."""
    return np.asarray(rng.uniform(low, high, shape))


def noncontig(rng, *shape):
    """A non-contiguous float64 view (a transpose) of the given final shape."""
    return rng.standard_normal(shape[::-1]).T


def away_from(rng, *shape, points=(0.0,), margin=0.1):
    """Normal samples nudged at least ``margin`` away from kinks such as 0."""
    x = np.asarray(rng.standard_normal(shape))
    for p in points:
        close = np.abs(x - p) < margin
        x[close] = p + np.where(x[close] >= p, margin, -margin) * 2
    return x


def unary_samples(make=randn):
    """Scalar, vector, odd matrix, non-contiguous and size-0 inputs of one unary op."""
    def build(rng):
        return [Sample(make(rng), name="scalar"), Sample(make(rng, 5), name="vector"),
                Sample(make(rng, 3, 7), name="odd"),
                Sample(np.ascontiguousarray(make(rng, 4, 3)).T, name="noncontig"),
                Sample(make(rng, 0, 3), name="empty")]
    return build


def binary_samples(make_a=randn, make_b=randn):
    """Same-shape, broadcasting, scalar-tensor, non-contiguous and size-0 pairs."""
    def build(rng):
        return [Sample(make_a(rng, 3, 4), make_b(rng, 3, 4), name="same"),
                Sample(make_a(rng, 2, 3, 4), make_b(rng, 4), name="bcast_row"),
                Sample(make_a(rng, 3, 1), make_b(rng, 1, 5), name="bcast_outer"),
                Sample(make_a(rng), make_b(rng, 2, 3), name="zero_dim"),
                Sample(np.ascontiguousarray(make_a(rng, 4, 3)).T, make_b(rng, 3, 4),
                       name="noncontig"),
                Sample(make_a(rng, 0, 4), make_b(rng, 4), name="empty")]
    return build
