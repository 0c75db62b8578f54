"""``genesis bench``: genesis against PyTorch on this machine, measured in the same run.

Runs the train-step, per-op, large-op, optimizer, decoding and memory benchmarks and prints
one table of times and ratios (genesis / PyTorch; below 1 means genesis is faster). PyTorch
and transformers are used where installed; without them genesis is timed alone. Each time is
the best of several repeats, genesis and PyTorch alternating, so a machine shared with other
work disturbs both sides alike (the absolute numbers still move with the load).
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

__all__ = ["run", "matmul_rate", "train_step_flops"]

SIZES = {  # (hidden, intermediate, layers, experts, heads, kv heads, vocab, batch, seq)
    "full": (256, 512, 4, 8, 8, 4, 8000, 4, 128),
    "large": (512, 1024, 4, 16, 8, 4, 8000, 4, 256),
    "quick": (128, 256, 2, 4, 4, 2, 2000, 2, 64),
}
TRAIN_SIZES = {"full": ("full", "large"), "quick": ("quick",)}  # the train-step rows per mode
BENCHES = ("train", "ops", "large", "adamw", "decode", "memory")


def _torch():
    try:
        import torch
        import transformers
    except ImportError:
        return None, None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return torch, transformers


def _best(fn, repeat, number):
    """Seconds per call of ``fn``: the best mean over ``repeat`` runs of ``number`` calls."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def _pair(g_fn, t_fn, repeat, number):
    """Best times of genesis and PyTorch, measured alternately (``t_fn`` None: genesis only)."""
    g = t = float("inf")
    for _ in range(repeat):
        g = min(g, _best(g_fn, 1, number))
        if t_fn is not None:
            t = min(t, _best(t_fn, 1, number))
    return g, (t if t_fn is not None else None)


def matmul_rate(n=1024, repeat=5):
    """This machine's float32 matmul rate in GFLOP/s (NumPy's BLAS, its default threads)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    return 2 * n ** 3 / _best(lambda: a @ a, repeat, 1) / 1e9


def _config(size):
    from .models.transformers import MoEConfig
    h, inter, layers, experts, heads, kv, vocab, _, seq = SIZES[size]
    return MoEConfig(model_type="mixtral", vocab_size=vocab, hidden_size=h,
                     intermediate_size=inter, num_hidden_layers=layers,
                     num_attention_heads=heads, num_key_value_heads=kv,
                     num_local_experts=experts, num_experts_per_tok=2,
                     max_position_embeddings=max(2 * seq, 256), rope_theta=1e6, rms_norm_eps=1e-5,
                     router_aux_loss_coef=0.02, initializer_range=0.02)


def train_step_flops(config, batch, seq):
    """Matmul FLOPs of one training step (forward + backward = 3x forward; attention scores
    counted in full, as a non-fused kernel computes them)."""
    h, inter = config.hidden_size, config.intermediate_size
    head_dim = h // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    per_layer = (2 * h * h + 2 * h * kv + config.num_experts_per_tok * 3 * h * inter
                 + h * config.num_local_experts)
    params = config.num_hidden_layers * per_layer + h * config.vocab_size
    tokens = batch * seq
    attention = config.num_hidden_layers * 4 * seq * h * tokens
    return 3 * (2 * params * tokens + attention)


def _models(size, torch, transformers):
    import genesis
    from .models.transformers import MoEForCausalLM
    genesis.manual_seed(0)
    model = MoEForCausalLM(_config(size))
    if transformers is None:
        return model, None
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        hf = transformers.MixtralForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return model, hf


def bench_train(size, torch, transformers, repeat):
    """Rows: the Mixtral-style training step at each of ``TRAIN_SIZES[size]`` and their shares
    of the matmul rate."""
    rate = matmul_rate()
    rows, notes = [], []
    for train_size in TRAIN_SIZES.get(size, (size,)):
        row, note = _train_row(train_size, torch, transformers, repeat, rate)
        rows.append(row)
        notes.append(note)
    return rows, notes


def _train_row(size, torch, transformers, repeat, rate):
    import genesis
    from .optim import AdamW
    model, hf = _models(size, torch, transformers)
    batch, seq = SIZES[size][7], SIZES[size][8]
    ids_np = np.random.default_rng(0).integers(0, model.config.vocab_size, (batch, seq))
    ids = genesis.tensor(ids_np)
    model.train()
    opt = AdamW(model.parameters(), lr=1e-4)

    def g_step():
        loss, _ = model(ids, labels=ids)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t_step = None
    if hf is not None:
        hf.train()
        t_opt = torch.optim.AdamW(hf.parameters(), lr=1e-4)
        t_ids = torch.tensor(ids_np)

        def t_step():
            out = hf(t_ids, labels=t_ids, output_router_logits=True)
            t_opt.zero_grad()
            out.loss.backward()
            t_opt.step()

    g, t = _pair(g_step, t_step, repeat, 1)
    flops = train_step_flops(model.config, batch, seq)
    c = model.config
    name = (f"train step: Mixtral {c.num_hidden_layers}L h{c.hidden_size} "
            f"i{c.intermediate_size} {c.num_local_experts}e top-2, {batch}x{seq} tok, AdamW")
    share = f"h{c.hidden_size}: {flops / 1e9:.1f} GFLOP/step; matmul rate {rate:.0f} " \
            f"GFLOP/s: genesis {flops / g / 1e9 / rate:.0%} of it"
    if t is not None:
        share += f", PyTorch {flops / t / 1e9 / rate:.0%}"
    return (name, g * 1e3, None if t is None else t * 1e3, "ms", 0.8), share


def _op_cases(torch):
    import genesis.nn.functional as F
    cases = {
        "add": (lambda a, b: a + b,) * 2,
        "mul": (lambda a, b: a * b,) * 2,
        "matmul": (lambda a, b: a @ b,) * 2,
        "reshape": (lambda a, b: a.reshape(-1),) * 2,
        "sum": (lambda a, b: a.sum(),) * 2,
        "softmax": (lambda a, b: F.softmax(a, dim=-1),
                    (lambda a, b: torch.softmax(a, dim=-1)) if torch else None),
    }
    return cases


def _inputs(shape, torch):
    import genesis
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    g = [genesis.tensor(a, requires_grad=True) for a in arrays]
    t = [torch.tensor(a, requires_grad=True) for a in arrays] if torch else None
    return g, t


def bench_ops(torch, repeat, names=("add", "mul", "matmul", "reshape", "softmax")):
    """Rows: grad-mode forward of one op on 4x4 tensors (Python and dispatch overhead)."""
    cases = _op_cases(torch)
    (ga, gb), t_in = _inputs((4, 4), torch)
    rows = []
    for name in names:
        g_fn, t_fn = cases[name]
        t_call = (lambda f=t_fn, a=t_in[0], b=t_in[1]: f(a, b)) if torch else None
        g, t = _pair(lambda f=g_fn: f(ga, gb), t_call, repeat, 2000)
        rows.append((f"tiny op, grad forward: {name} (4x4)", g * 1e6,
                     None if t is None else t * 1e6, "us", 1.0))
    return rows


def bench_large(torch, repeat, sizes=(512, 2048), names=("add", "sum", "softmax")):
    """Rows: forward + backward of one op on n x n float32 tensors (``op(a, b).sum()``); at
    2048x2048 the work is large enough for genesis' thread pool to pay off (its wake-up costs
    tens of microseconds, about what a 512x512 elementwise op takes on one core)."""
    cases = _op_cases(torch)
    rows = []

    def step(f, a, b):
        a.grad = b.grad = None
        f(a, b).sum().backward()

    for n in sizes:
        (ga, gb), t_in = _inputs((n, n), torch)
        number = max(1, 20 * 512 * 512 // (n * n))
        for name in names:
            g_fn, t_fn = cases[name]
            t_call = (lambda f=t_fn: step(f, *t_in)) if torch else None
            g, t = _pair(lambda f=g_fn: step(f, ga, gb), t_call, repeat, number)
            rows.append((f"{n}x{n} fwd+bwd: {name}", g * 1e6, None if t is None else t * 1e6,
                         "us", 1.0))
    return rows


def bench_adamw(size, torch, transformers, repeat):
    """Row: one AdamW step over the train-step model's parameters (gradients set)."""
    import genesis
    from .optim import AdamW
    model, hf = _models(size, torch, transformers)
    params = list(model.parameters())
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    for p, g in zip(params, grads):
        p.grad = genesis.tensor(g)
    opt = AdamW(params, lr=1e-4)
    t_step = None
    if hf is not None:
        for p in hf.parameters():
            p.grad = torch.randn_like(p)
        t_step = torch.optim.AdamW(hf.parameters(), lr=1e-4).step
    g, t = _pair(opt.step, t_step, repeat, 1)
    n = sum(p.numel() for p in params) / 1e6
    return [(f"AdamW step, {n:.1f}M parameters", g * 1e3, None if t is None else t * 1e3,
             "ms", 1.0)]


def bench_decode(size, torch, transformers, repeat, new_tokens=32, prompt=16):
    """Row: greedy decoding with the KV cache (tokens/s shown as ms per token)."""
    import genesis
    model, hf = _models(size, torch, transformers)
    model.eval()
    ids = np.random.default_rng(1).integers(0, model.config.vocab_size, (1, prompt))
    out = {}

    def g_run():
        with genesis.no_grad():
            out["g"] = model.generate(genesis.tensor(ids), max_new_tokens=new_tokens).numpy()

    t_run = None
    if hf is not None:
        hf.eval()

        def t_run():
            with torch.no_grad():
                out["t"] = hf.generate(torch.tensor(ids), max_new_tokens=new_tokens,
                                       do_sample=False, pad_token_id=0).numpy()

    g, t = _pair(g_run, t_run, max(1, repeat // 2), 1)
    same = "" if t is None else (" (same tokens)" if np.array_equal(out["g"], out["t"]) else
                                 " (tokens differ)")
    return [(f"greedy decoding, KV cache, {new_tokens} tokens: ms/token{same}",
             g / new_tokens * 1e3, None if t is None else t / new_tokens * 1e3, "ms", 0.5)]


_MEMORY_CHILD = """
import sys
from genesis import bench
torch, transformers = bench._torch() if sys.argv[2] == "torch" else (None, None)
import genesis
if transformers is not None:
    transformers.MixtralForCausalLM
base = bench._rss_kib("VmRSS")
bench._memory_steps(sys.argv[1], sys.argv[2], torch, transformers)
print(base, bench._rss_kib("VmHWM"))
"""


def _rss_kib(field):
    """``VmRSS`` (now) or ``VmHWM`` (peak, reset at exec unlike ru_maxrss, which Linux carries
    over from the parent process) of this process in KiB; ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _memory_steps(size, lib, torch, transformers):
    """Three training steps of the train-step model in ``lib`` (run in a child process)."""
    batch, seq = SIZES[size][7], SIZES[size][8]
    ids_np = np.random.default_rng(0).integers(0, SIZES[size][6], (batch, seq))
    if lib == "torch":
        with tempfile.TemporaryDirectory() as directory:
            _models(size, None, None)[0].save_pretrained(directory)
            hf = transformers.MixtralForCausalLM.from_pretrained(directory, dtype=torch.float32)
        hf.train()
        opt = torch.optim.AdamW(hf.parameters(), lr=1e-4)
        ids = torch.tensor(ids_np)
        for _ in range(3):
            out = hf(ids, labels=ids, output_router_logits=True)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        return
    import genesis
    from .optim import AdamW
    model = _models(size, None, None)[0]
    model.train()
    opt = AdamW(model.parameters(), lr=1e-4)
    ids = genesis.tensor(ids_np)
    for _ in range(3):
        loss, _ = model(ids, labels=ids)
        opt.zero_grad()
        loss.backward()
        opt.step()


def bench_memory(size, torch):
    """Rows: peak RSS of three train steps, each library in its own process (MiB), in all and
    above the process's RSS once the libraries are imported."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def peak(lib):
        done = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, size, lib], env=env,
                              capture_output=True, text=True, check=True)
        base, top = (int(v) / 1024 for v in done.stdout.split()[-2:])
        return top, top - base

    g, g_step = peak("genesis")
    t, t_step = peak("torch") if torch is not None else (None, None)
    return [("train peak RSS, own process (incl. libraries)", g, t, "MiB", 1.0),
            ("train peak RSS above the RSS after imports (model + step)", g_step, t_step, "MiB",
             1.0)]


def _table(rows, notes):
    lines = [f"{'measure':<66} {'genesis':>10} {'PyTorch':>10} {'ratio':>6} {'goal':>6}"]
    for name, g, t, unit, goal in rows:
        ratio = "" if t is None else f"{g / t:.2f}"
        ts = "-" if t is None else f"{t:.1f}"
        mark = "" if t is None else (" ok" if g / t <= goal else "")
        lines.append(f"{name:<66} {g:>7.1f} {unit:<2} {ts:>7} {unit:<2} {ratio:>6} "
                     f"{'<=' + str(goal):>6}{mark}")
    return "\n".join(lines + [f"  {n}" for n in notes])


def run(only=BENCHES, size="full", repeat=5, out=print):
    """Run the selected benchmarks and print the table; returns its rows."""
    import genesis
    from .backends import parallel
    torch, transformers = _torch()
    if torch is not None:
        torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out(f"genesis {genesis.__version__}, numpy {np.__version__}"
        + (f", PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"
           if torch is not None else ", PyTorch not installed (genesis timed alone)")
        + f"; {os.cpu_count()} CPUs, genesis CPU threads {parallel.num_threads()}, "
        f"load average {load:.1f}")
    rows, notes = [], []
    for name in only:
        if name == "train":
            r, n = bench_train(size, torch, transformers, repeat)
            rows += r
            notes += n
        elif name == "ops":
            rows += bench_ops(torch, repeat)
        elif name == "large":
            rows += bench_large(torch, repeat)
        elif name == "adamw":
            rows += bench_adamw(size, torch, transformers, repeat)
        elif name == "decode":
            rows += bench_decode(size, torch, transformers, repeat)
        elif name == "memory":
            rows += bench_memory(size, torch)
    out(_table(rows, notes))
    return rows


def _bench_list(value):
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in BENCHES]
    if bad or not names:
        import argparse
        found = ", ".join(bad) or repr(value)
        raise argparse.ArgumentTypeError(f"unknown benchmark(s) {found}; choose from "
                                         f"{', '.join(BENCHES)}")
    return names


def add_arguments(parser):
    """The ``genesis bench`` options."""
    parser.add_argument("--only", type=_bench_list, default=list(BENCHES),
                        help="comma-separated subset of: " + ", ".join(BENCHES))
    parser.add_argument("--quick", action="store_true",
                        help="a smaller model and fewer repeats (a smoke run, not a figure)")
    from .train.command import number
    parser.add_argument("--repeat", type=number(int, 1), default=None, help="repeats per "
                        "measure (best kept; default 5, 2 with --quick)")
    parser.add_argument("--threads", type=number(int, 1), default=None,
                        help="genesis CPU threads for chunked ops (default: BLAS threads)")


def main(args):
    """Run ``genesis bench`` from parsed arguments; returns the exit code."""
    from .backends import parallel
    if args.threads is not None:
        parallel.set_num_threads(args.threads)
    repeat = args.repeat or (2 if args.quick else 5)
    run(args.only, "quick" if args.quick else "full", repeat)
    return 0
