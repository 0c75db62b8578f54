"""Special functions NumPy lacks (erf), vectorised and accurate to float64 rounding."""
import math

import numpy as np

_SERIES_TERMS = 60
_CF_TERMS = 80
_SWITCH = 2.5


def erf(xp, x):
    """Error function: Maclaurin series for |x| < 2.5, continued fraction for erfc beyond."""
    if xp is not np:
        from cupyx.scipy.special import erf as cupy_erf
        return cupy_erf(x)
    x = np.asarray(x)
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
