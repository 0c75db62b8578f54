"""Where does genesis' CPU thread pool pay off on this machine?

Times the pool's wake-up (an empty job on every thread) and, for square float32 arrays of
growing size, three kinds of work on one thread and split over the pool: a memory-bound
ufunc (add), a transcendental one (exp) and row-wise softmax forward + backward. It prints
each time, the speed-up, and the break-even size ``2 * wake-up / (ns per element)`` that
``genesis/backends/parallel.py``'s ``MIN_PARALLEL`` (ufuncs) and ``MIN_PARALLEL_ROWS``
(row-wise softmax work) are chosen from. Run it on an idle machine: other processes on the
cores make the split look worse than it is.

    python benchmarks/parallel_thresholds.py [--sizes 256,512,1024,2048] [--threads 2]
"""
import argparse

import numpy as np

from genesis.backends import parallel
from genesis.bench import best_time
from genesis.ops import _nn_common


def split(fn, size, threads):
    """``fn(start, stop)`` over ``range(size)`` on ``threads`` threads (1: inline)."""
    if threads == 1:
        fn(0, size)
    else:
        parallel.parallel_for(size, fn, grain=1)


def cases(n):
    """name -> (callable taking a thread count, elements) for n x n float32 inputs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(np.float32)
    g = rng.standard_normal((n, n)).astype(np.float32)
    xf, out = x.reshape(-1), np.empty(n * n, np.float32)
    y = _nn_common.softmax(np, x, 1)
    o2 = np.empty_like(x)

    def softmax(threads):
        def rows(s, e):
            _nn_common._softmax_into(np, o2[s:e], x[s:e], 1)
            _nn_common._softmax_grad_into(np, o2[s:e], y[s:e], g[s:e], 1)
        split(rows, n, threads)

    return {
        "add": lambda t: split(lambda s, e: np.add(xf[s:e], xf[s:e], out=out[s:e]), n * n, t),
        "exp": lambda t: split(lambda s, e: np.exp(xf[s:e], out=out[s:e]), n * n, t),
        "softmax fwd+bwd": softmax,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024,2048")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args(argv)
    parallel.set_num_threads(args.threads)
    wake = best_time(lambda: parallel.parallel_for(args.threads, lambda s, e: None, grain=1),
                     args.repeat, 200)
    print(f"pool wake-up (empty job on {args.threads} threads): {wake * 1e6:.1f} us")
    print(f"{'work':<18}{'n x n':>11}{'1 thread us':>13}{'split us':>10}{'speed-up':>10}"
          f"{'ns/elem':>9}{'break-even elems':>18}")
    for n in [int(s) for s in args.sizes.split(",")]:
        number = max(1, 50 * 512 * 512 // (n * n))
        for name, fn in cases(n).items():
            one = best_time(lambda: fn(1), args.repeat, number)
            many = best_time(lambda: fn(args.threads), args.repeat, number)
            per = one / (n * n) * 1e9
            print(f"{name:<18}{n:>5}x{n:<5}{one * 1e6:>13.1f}{many * 1e6:>10.1f}"
                  f"{one / many:>10.2f}{per:>9.3f}{2 * wake * 1e9 / per:>18.0f}")


if __name__ == "__main__":
    main()
