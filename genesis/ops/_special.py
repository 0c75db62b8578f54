"""Special functions NumPy lacks (erf): float64-exact for float64, fast for lower precisions."""
import math

import numpy as np

_SERIES_TERMS = 60
_CF_TERMS = 80
_SWITCH = 2.5


# Chebyshev-fitted erfc (fractional error < 1.2e-7), for float32 and narrower inputs.
_ERFC_COEFFS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
                -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def erf(xp, x):
    """Error function; float64 inputs get the float64-accurate path, others a float32 one."""
    if xp is not np:
        from cupyx.scipy.special import erf as cupy_erf
        if x.dtype.itemsize < 4:  # cupyx kernels have no bfloat16 loop: compute in float32
            return cupy_erf(x.astype(np.float32)).astype(x.dtype)
        return cupy_erf(x)
    x = np.asarray(x)
    if x.dtype != np.float64:
        return _erf_float32(x).astype(x.dtype, copy=False)
    return _erf_float64(x)


# Maclaurin coefficients of erf(x) / x in powers of x^2, times 2/sqrt(pi), highest first
_SERIES32 = tuple(np.float32(2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)))
                  for n in range(8, -1, -1))


def _erf_float32(x):
    """Taylor series below 0.5, Chebyshev erfc above: absolute error below 2e-7. Both branches
    are computed on ``|x|`` in place (the series on ``min(|x|, 0.5)``, so it stays finite) and
    blended with a 0/1 mask (exact: one term is multiplied by 0, the other by 1) instead of a
    select on the data-dependent mask, which mispredicts branches; the sign is copied last."""
    work = x.astype(np.float32)
    z = np.abs(work)
    t = z * np.float32(0.5)
    t += 1
    np.divide(1, t, out=t)
    large = t * np.float32(_ERFC_COEFFS[-1])
    for c in _ERFC_COEFFS[-2:0:-1]:
        large += np.float32(c)
        large *= t
    large += np.float32(_ERFC_COEFFS[0])
    with np.errstate(over="ignore", under="ignore"):    # |x| > 1.8e19: exp(-inf) = 0, exact
        arg = np.square(z)
        np.subtract(large, arg, out=large)
        np.exp(large, out=large)
    large *= t
    np.subtract(1, large, out=large)            # erf(|x|) for |x| >= 0.5
    small = np.minimum(z, np.float32(0.5))
    np.square(small, out=arg)
    series = arg * _SERIES32[0]
    for c in _SERIES32[1:-1]:
        series += c
        series *= arg
    series += _SERIES32[-1]
    series *= small                             # erf(|x|) for |x| < 0.5
    keep = (z < 0.5).astype(np.float32)
    series *= keep
    np.subtract(1, keep, out=keep)
    large *= keep
    series += large
    return np.copysign(series, work, out=series)


def _erf_float64(x):
    """Maclaurin series for |x| < 2.5, continued fraction for erfc beyond."""
    work = x.astype(np.float64)
    a = np.abs(work)
    out = np.empty_like(work)
    small = a < _SWITCH
    if small.any():
        xs = work[small]
        x2 = xs * xs
        term = xs.copy()
        total = xs.copy()
        for n in range(1, _SERIES_TERMS):
            term = term * (-x2) / n
            total += term / (2 * n + 1)
        out[small] = total * (2.0 / math.sqrt(math.pi))
    large = ~small
    if large.any():
        xl = a[large]
        k = xl.copy()
        for n in range(_CF_TERMS, 0, -1):
            k = xl + (n / 2.0) / k
        erfc = np.exp(-xl * xl) / (math.sqrt(math.pi) * k)
        out[large] = np.sign(work[large]) * (1.0 - erfc)
    out[np.isnan(work)] = np.nan
    return out.astype(x.dtype, copy=False)
