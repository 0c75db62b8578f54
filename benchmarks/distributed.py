"""Data- and expert-parallel training steps on CPU processes: scaling from 1 to N ranks.

Launches itself with ``mpiexec -n 1`` and ``mpiexec -n N`` (weak scaling: every rank trains
``--batch`` sequences per step, so N ranks process N times the tokens). Per configuration it
prints the median step time, the throughput in tokens/s and its ratio to one process, the
time rank 0 spends in gradient communication (the all-reduces timed alone, and the part left
exposed at the end of backward) as a share of the step, and the bytes moved per step against
the analytic count: DDP all-reduces every replicated gradient once (plus one used-flag per
parameter), expert parallelism sends each (token, slot) routed to another rank four times
(inputs and outputs forward, their gradients backward), ``N*k*(R-1)/R`` rows under uniform
routing. The reference, where torch and transformers are installed: transformers' Mixtral of
the same sizes under ``torch.nn.parallel.DistributedDataParallel`` (gloo), launched the same
way; the script prints the ratio of the two 1 -> N throughput scalings.

    python benchmarks/distributed.py [--nprocs 2 --steps 6 --batch 4 --seq 64 --hidden 128]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nprocs", type=int, default=2)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="sequences per rank per step")
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--experts", type=int, default=4)
    p.add_argument("--worker", choices=["dp", "ep", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args()


def worker(args):
    import genesis
    import genesis.distributed as dist
    from genesis.models.transformers import MoEConfig, MoEForCausalLM
    from genesis.models.transformers.expert_parallel import ExpertParallelExperts, shard_experts
    from genesis.nn.parallel import DistributedDataParallel as DDP
    from genesis.distributed.collectives import reduce_array
    from genesis.distributed.process_group import ReduceOp, default_backend

    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    config = MoEConfig(vocab_size=256, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                       moe_intermediate_size=2 * args.hidden, num_hidden_layers=args.layers,
                       num_attention_heads=4, num_local_experts=args.experts,
                       num_experts_per_tok=2, max_position_embeddings=2 * args.seq)
    genesis.manual_seed(0)
    model = MoEForCausalLM(config)
    if args.worker == "ep":
        shard_experts(model)
    ddp = DDP(model)
    wait = []
    finish = ddp._finish_backward

    def timed_finish():
        start = time.perf_counter()
        finish()
        wait.append(time.perf_counter() - start)
    object.__setattr__(ddp, "_finish_backward", timed_finish)
    opt = genesis.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(rank)

    def step():
        ids = genesis.tensor(rng.integers(0, 256, (args.batch, args.seq)))
        opt.zero_grad()
        loss, _ = ddp(ids, labels=ids)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    bytes0 = ddp.bytes_reduced
    experts = [m for m in model.modules() if isinstance(m, ExpertParallelExperts)]
    pairs0 = sum(e.pairs_sent_remote for e in experts)
    wait.clear()
    times = []
    for _ in range(args.steps):
        dist.barrier()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    backend = default_backend("benchmark")
    comm = []
    for _ in range(args.steps):
        dist.barrier()
        start = time.perf_counter()
        for bucket in ddp._buckets:
            flat = np.zeros(sum(p._array.size for p in bucket.params) + len(bucket.params),
                            dtype=bucket.params[0]._array.dtype)
            reduce_array(backend, flat, ReduceOp.SUM, np)[1].wait()
        comm.append(time.perf_counter() - start)
    replicated = [p for p in model.parameters() if not getattr(p, "expert_parallel", False)]
    analytic_dp = sum((p.numel() + 1) * p.element_size() for p in replicated)
    pairs = (sum(e.pairs_sent_remote for e in experts) - pairs0) / args.steps
    n_pairs = args.batch * args.seq * config.num_experts_per_tok * len(experts)
    result = dict(world=world, step_s=statistics.median(times),
                  tokens_per_s=world * args.batch * args.seq / statistics.median(times),
                  allreduce_s=statistics.median(comm), exposed_wait_s=statistics.median(wait),
                  dp_bytes=(ddp.bytes_reduced - bytes0) / args.steps, dp_bytes_analytic=analytic_dp,
                  ep_rows=pairs, ep_rows_uniform=n_pairs * (world - 1) / world,
                  ep_bytes=4 * pairs * args.hidden * 4)
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)
    dist.destroy_process_group()


def torch_worker(args):
    """The reference: transformers' Mixtral of the same sizes under torch DDP (gloo)."""
    import torch
    import torch.distributed as tdist
    import transformers
    from genesis.distributed.process_group import launcher_env

    rank, world, _, _ = launcher_env()
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank,
                             world_size=world)
    config = transformers.MixtralConfig(
        vocab_size=256, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
        num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=4,
        num_local_experts=args.experts, num_experts_per_tok=2,
        max_position_embeddings=2 * args.seq, output_router_logits=True)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(transformers.MixtralForCausalLM(config))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(rank)

    def step():
        ids = torch.randint(0, 256, (args.batch, args.seq), generator=gen)
        opt.zero_grad()
        model(ids, labels=ids).loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        tdist.barrier()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if rank == 0:
        med = statistics.median(times)
        print("RESULT " + json.dumps(dict(world=world, step_s=med,
                                          tokens_per_s=world * args.batch * args.seq / med)),
              flush=True)
    tdist.destroy_process_group()


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, nprocs, mode):
    from genesis.distributed.launch import clean_launch_env, mpiexec_command
    env = clean_launch_env()
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    argv = [a for a in sys.argv[1:]]
    cmd = mpiexec_command(nprocs) + [sys.executable, "-m", "mpi4py", os.path.abspath(__file__),
                                     *argv, "--worker", mode, "--port", str(_free_port())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main():
    args = parse()
    if args.worker == "torch":
        return torch_worker(args)
    if args.worker:
        return worker(args)
    sys.path.insert(0, ROOT)
    print(f"genesis.distributed benchmark: MoE hidden={args.hidden} layers={args.layers} "
          f"experts={args.experts} top-2, {args.batch}x{args.seq} tokens per rank per step, "
          f"{os.cpu_count()} CPU cores (timings on a shared machine are noisy)")
    for mode, title in (("dp", "data parallel (DDP)"),
                        ("ep", "data + expert parallel (experts sharded, DDP for the rest)")):
        base = launch(args, 1, mode)
        res = launch(args, args.nprocs, mode)
        print(f"\n{title}")
        print(f"{'ranks':>5} {'step ms':>9} {'tokens/s':>9} {'vs 1':>6} {'comm share':>10} "
              f"{'exposed':>8} {'DP bytes/step':>14} {'analytic':>10} {'EP rows':>8} "
              f"{'uniform':>8}")
        for r in (base, res):
            print(f"{r['world']:>5} {1e3 * r['step_s']:>9.1f} {r['tokens_per_s']:>9.0f} "
                  f"{r['tokens_per_s'] / base['tokens_per_s']:>6.2f} "
                  f"{r['allreduce_s'] / r['step_s']:>10.1%} "
                  f"{r['exposed_wait_s'] / r['step_s']:>8.1%} {r['dp_bytes']:>14.0f} "
                  f"{r['dp_bytes_analytic']:>10.0f} {r['ep_rows']:>8.0f} "
                  f"{r['ep_rows_uniform']:>8.0f}")
        if mode == "ep":
            print(f"expert-parallel bytes per step on rank 0 (4 crossings x rows x hidden x 4 B):"
                  f" {res['ep_bytes']:.0f}")
        else:
            dp_scaling = res["tokens_per_s"] / base["tokens_per_s"]
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        print("\ntorch/transformers not installed: no PyTorch DDP reference")
        return
    base = launch(args, 1, "torch")
    res = launch(args, args.nprocs, "torch")
    ref_scaling = res["tokens_per_s"] / base["tokens_per_s"]
    print(f"\nreference: transformers Mixtral (same sizes) under torch DDP (gloo), 1 thread per "
          f"rank: {1e3 * base['step_s']:.1f} ms/step on 1 rank, {1e3 * res['step_s']:.1f} ms/step "
          f"on {args.nprocs}; throughput x{ref_scaling:.2f}")
    print(f"scaling ratio genesis DDP / torch DDP = {dp_scaling / ref_scaling:.2f} "
          f"(x{dp_scaling:.2f} vs x{ref_scaling:.2f} from 1 to {args.nprocs} ranks)")


if __name__ == "__main__":
    main()
