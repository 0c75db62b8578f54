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

__all__ = ["run", "best_time", "matmul_rate", "train_step_flops", "train_step_fn"]

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


def best_time(fn, repeat, number):
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
        g = min(g, best_time(g_fn, 1, number))
        if t_fn is not None:
            t = min(t, best_time(t_fn, 1, number))
    return g, (t if t_fn is not None else None)


def matmul_rate(n=1024, repeat=5):
    """This machine's float32 matmul rate in GFLOP/s (NumPy's BLAS, its default threads)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    return 2 * n ** 3 / best_time(lambda: a @ a, repeat, 1) / 1e9


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


def train_step_fn(model, ids_np, torch=None):
    """A closure running one training step on the token ids ``ids_np`` (forward with the ids as
    labels, backward, AdamW at lr 1e-4) and returning the loss: of a genesis model, or of a
    transformers model when ``torch`` is given (with its router logits, so the auxiliary loss
    counts as in genesis)."""
    model.train()
    if torch is None:
        import genesis
        from .optim import AdamW
        opt = AdamW(model.parameters(), lr=1e-4)
        ids = genesis.tensor(ids_np)

        def forward():
            return model(ids, labels=ids)[0]
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ids = torch.tensor(ids_np)

        def forward():
            return model(ids, labels=ids, output_router_logits=True).loss

    def step():
        loss = forward()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def _train_row(size, torch, transformers, repeat, rate):
    model, hf = _models(size, torch, transformers)
    batch, seq = SIZES[size][7], SIZES[size][8]
    ids_np = np.random.default_rng(0).integers(0, model.config.vocab_size, (batch, seq))
    g_step = train_step_fn(model, ids_np)
    t_step = None if hf is None else train_step_fn(hf, ids_np, torch)
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


def memory_bandwidth(mib=256, repeat=5):
    """This machine's memory read rate in GB/s: a float32 matrix-vector product over ``mib`` MiB
    (far beyond the caches), NumPy's BLAS with its default threads."""
    cols = 4096
    w = np.ones((mib * 2 ** 20 // (4 * cols), cols), np.float32)
    x = np.ones(cols, np.float32)
    return w.nbytes / best_time(lambda: w @ x, repeat, 1) / 1e9


def decode_bytes_per_token(model):
    """Bytes of weights one decoding step reads: every parameter once, except the token
    embedding (one row; all of it when ``lm_head`` shares it) and the routed experts (the
    ``num_experts_per_tok`` share of them)."""
    from .models.transformers import MoEExperts
    embedding = model.get_input_embeddings().weight
    tied = embedding is model.get_output_embeddings().weight
    scale = {}
    for module in model.modules():
        if isinstance(module, MoEExperts):
            for p in module.parameters():
                scale[id(p)] = model.config.num_experts_per_tok / module.num_experts
    total, seen = 0.0, set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        nbytes = p._array.nbytes
        if p is embedding and not tied:
            nbytes //= p.shape[0]
        total += nbytes * scale.get(id(p), 1.0)
    return total


def _decode_models(size, path, torch, transformers):
    """(name, genesis model, HF model or None, notes) for the checkpoint at ``path`` or, without
    one, the bench model."""
    if path is None:
        model, hf = _models(size, torch, transformers)
        return "the bench model", model, hf, []
    from .models.transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(path)
    hf, notes = None, []
    if transformers is not None:
        try:
            hf = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except Exception as exc:  # noqa: BLE001  (reported, genesis is then timed alone)
            notes.append(f"transformers could not load {path} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); genesis timed alone")
    return os.path.basename(os.path.normpath(path)), model, hf, notes


def bench_decode(size, torch, transformers, repeat, model_path=None, new_tokens=64, prompt=8,
                 prefill=256):
    """Rows: greedy decoding with the KV cache (ms per decoded token: the time of ``new_tokens``
    tokens less that of the first, over ``new_tokens - 1``) and the prefill of a ``prefill``-token
    prompt (time to the first token), on the checkpoint at ``model_path`` or the bench model;
    a note with tokens/s against the memory-bandwidth bound (the weights are read once per
    token). No end-of-sequence stop on either side, so both generate every token."""
    import genesis
    name, model, hf, notes = _decode_models(size, model_path, torch, transformers)
    model.eval()
    rng = np.random.default_rng(1)
    vocab = model.config.vocab_size
    short, long = rng.integers(0, vocab, (1, prompt)), rng.integers(0, vocab, (1, prefill))
    out = {}

    def g_gen(ids, n):
        return lambda: out.__setitem__(("g", ids.shape[1], n), model.generate(
            genesis.tensor(ids), max_new_tokens=n, eos_token_id=[]).numpy())

    def t_gen(ids, n):
        if hf is None:
            return None

        def run():
            with torch.no_grad():
                out["t", ids.shape[1], n] = hf.generate(
                    torch.tensor(ids), max_new_tokens=n, do_sample=False, eos_token_id=None,
                    pad_token_id=0).numpy()
        return run

    if hf is not None:
        hf.eval()
    few = max(2, repeat // 2)
    g_n, t_n = _pair(g_gen(short, new_tokens), t_gen(short, new_tokens), few, 1)
    g_1, t_1 = _pair(g_gen(short, 1), t_gen(short, 1), few, 1)
    g_pre, t_pre = _pair(g_gen(long, 1), t_gen(long, 1), repeat, 1)

    def same(length, n):
        if hf is None:
            return ""
        return " (same tokens)" if np.array_equal(out["g", length, n], out["t", length, n]) \
            else " (tokens differ)"

    g_tok = (g_n - g_1) / (new_tokens - 1)
    t_tok = None if hf is None else (t_n - t_1) / (new_tokens - 1)
    rows = [(f"greedy decoding, KV cache: ms/token{same(prompt, new_tokens)}", g_tok * 1e3,
             None if t_tok is None else t_tok * 1e3, "ms", 0.5),
            (f"prefill, {prefill}-token prompt: time to first token{same(prefill, 1)}",
             g_pre * 1e3, None if t_pre is None else t_pre * 1e3, "ms", 0.8)]
    per_token = decode_bytes_per_token(model)
    bandwidth = memory_bandwidth()
    bound = bandwidth * 1e9 / per_token
    note = (f"decoding {name} ({new_tokens} tokens after {prompt}): genesis {1 / g_tok:.1f} "
            f"tokens/s = {1 / g_tok / bound:.0%} of the bandwidth bound {bound:.1f} tokens/s "
            f"({per_token / 1e6:.0f} MB of weights per token at {bandwidth:.1f} GB/s, matvec "
            "over 256 MiB)")
    if t_tok is not None:
        note += f"; PyTorch {1 / t_tok:.1f} tokens/s = {1 / t_tok / bound:.0%}"
    return rows, notes + [note]


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
        step = train_step_fn(_models(size, torch, transformers)[1], ids_np, torch)
    else:
        step = train_step_fn(_models(size, None, None)[0], ids_np)
    for _ in range(3):
        step()


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


def run(only=BENCHES, size="full", repeat=5, out=print, model_path=None):
    """Run the selected benchmarks and print the table; returns its rows. ``model_path``: a
    HF-style checkpoint directory the decoding rows use instead of the bench model."""
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
            r, n = bench_decode(size, torch, transformers, repeat, model_path)
            rows += r
            notes += n
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


def _checkpoint_dir(value):
    import argparse
    if not os.path.isfile(os.path.join(value, "config.json")):
        raise argparse.ArgumentTypeError(f"{value!r} is not a checkpoint directory (no "
                                         "config.json in it)")
    return value


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
    parser.add_argument("--model", type=_checkpoint_dir, default=None, metavar="PATH",
                        help="a HF-style checkpoint directory (Llama, Mixtral, Qwen2, ...) for "
                        "the decode benchmark instead of the bench model")


def main(args):
    """Run ``genesis bench`` from parsed arguments; returns the exit code."""
    from .backends import parallel
    if args.threads is not None:
        parallel.set_num_threads(args.threads)
    repeat = args.repeat or (2 if args.quick else 5)
    if args.model is not None and "decode" not in args.only:
        from .train.data import CLIError
        raise CLIError("--model is used by the decode benchmark only; add decode to --only")
    run(args.only, "quick" if args.quick else "full", repeat, model_path=args.model)
    return 0
