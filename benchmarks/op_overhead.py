"""Per-op cost: microseconds per call for tiny tensors (Python overhead) and training-size
tensors, forward only and forward+backward, genesis next to PyTorch CPU measured in the same run.

    python benchmarks/op_overhead.py [--repeat 200]
"""
import argparse
import statistics
import time

import numpy as np

import genesis
import genesis.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
    torch.set_num_threads(max(1, torch.get_num_threads()))
except ImportError:
    torch = None


def _time(fn, repeat):
    fn()
    samples = []
    for _ in range(max(3, repeat // 20)):
        t0 = time.perf_counter()
        for _ in range(20):
            fn()
        samples.append((time.perf_counter() - t0) / 20)
    return statistics.median(samples) * 1e6


CASES = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "exp": (lambda a, b: a.exp(), lambda a, b: a.exp()),
    "sum": (lambda a, b: a.sum(), lambda a, b: a.sum()),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b),
    "softmax": (lambda a, b: F.softmax(a, dim=-1), lambda a, b: TF.softmax(a, dim=-1)),
    "reshape": (lambda a, b: a.reshape(-1), lambda a, b: a.reshape(-1)),
    "getitem": (lambda a, b: a[1:, :2], lambda a, b: a[1:, :2]),
}


def _inputs(lib, shape, grad):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape).astype(np.float32)
    if lib == "genesis":
        return (genesis.tensor(a, requires_grad=grad), genesis.tensor(b, requires_grad=grad))
    return (torch.tensor(a, requires_grad=grad), torch.tensor(b, requires_grad=grad))


def _bench(shape, mode, repeat):
    rows = []
    for name, (g_fn, t_fn) in CASES.items():
        cols = []
        for lib, fn in (("genesis", g_fn), ("torch", t_fn)):
            if lib == "torch" and torch is None:
                cols.append(float("nan"))
                continue
            grad = mode != "no-grad"
            a, b = _inputs(lib, shape, grad)
            if mode == "fwd+bwd":
                def step(fn=fn, a=a, b=b):
                    out = fn(a, b)
                    out.sum().backward()
            elif lib == "genesis" and mode == "no-grad":
                def step(fn=fn, a=a, b=b):
                    with genesis.no_grad():
                        fn(a, b)
            elif mode == "no-grad":
                def step(fn=fn, a=a, b=b):
                    with torch.no_grad():
                        fn(a, b)
            else:
                def step(fn=fn, a=a, b=b):
                    fn(a, b)
            cols.append(_time(step, repeat))
        rows.append((name, *cols))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    print(f"genesis {genesis.__version__}; torch {torch.__version__ if torch else 'not installed'}")
    for label, shape in (("tiny 4x4", (4, 4)), ("training-size 512x512", (512, 512))):
        for mode in ("no-grad", "grad fwd", "fwd+bwd"):
            print(f"\n{label}, {mode}: microseconds per call (median)")
            print(f"{'op':10s} {'genesis':>10s} {'torch':>10s} {'ratio':>7s}")
            for name, g, t in _bench(shape, mode, args.repeat):
                print(f"{name:10s} {g:10.1f} {t:10.1f} {g / t:7.2f}")


if __name__ == "__main__":
    main()
