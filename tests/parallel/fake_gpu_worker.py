"""Expert parallelism and DDP on the CuPy stand-in (tests/fake_cupy.py) over MPI.

The device arrays refuse implicit host conversion and host/device mixes, so this proves the
distributed code keeps GPU data on the device except where it stages through host memory on
purpose (the MPI backend's ``.get()``/``.set()``); results are compared with the same
computation on the CPU in one process.
"""
import copy
import os

import numpy as np

import genesis
import genesis.distributed as dist
from genesis.backends import cuda as cuda_backend
from genesis.models.transformers.expert_parallel import ExpertParallelExperts
from genesis.nn.parallel import DistributedDataParallel as DDP
from tests import fake_cupy
from tests.parallel.expert_parallel_worker import D, TOKENS, build_block, config, inputs


def install_fake_gpu():
    import sys
    os.environ["GENESIS_TRITON"] = "0"
    cuda_backend._cupy[:] = [fake_cupy.FakeCupy()]
    cuda_backend.device_count = lambda: 1
    for name, module in fake_cupy.cupyx_modules().items():
        sys.modules[name] = module


def host(t):
    return t.detach().cpu().numpy()


def close(a, b, what):
    if a.shape != b.shape or not np.allclose(a, b, rtol=1e-11, atol=1e-12):
        raise AssertionError(f"rank {dist.get_rank()} {what} on the stand-in GPU differs")


def check_expert_parallel(rank, world):
    cfg = config(scoring_func="sigmoid", num_shared_experts=1,
                 shared_expert_intermediate_size=6)
    ref = build_block(cfg)
    ep = copy.deepcopy(ref).to("cuda")
    ep.experts = ExpertParallelExperts(ep.experts)
    x, g, share = inputs(rank, world)
    xr = genesis.tensor(x, requires_grad=True)
    out_ref, _ = ref(xr.reshape(1, TOKENS, D))
    (out_ref.reshape(TOKENS, D) * genesis.tensor(g)).sum().backward()
    xe = genesis.tensor(x[share], device="cuda").requires_grad_()
    out_ep, _ = ep(xe.reshape(1, -1, D))
    assert out_ep.device.type == "cuda"
    (out_ep.reshape(-1, D) * genesis.tensor(g[share], device="cuda")).sum().backward()
    close(host(out_ep).reshape(-1, D), host(out_ref).reshape(TOKENS, D)[share], "EP output")
    close(host(xe.grad), host(xr.grad)[share], "EP input grad")
    lo, n = ep.experts.expert_offset, ep.experts.num_local_experts
    close(host(ep.experts.down_proj.grad), host(ref.experts.down_proj.grad)[lo:lo + n],
          "EP down_proj grad")
    router = ep.gate.weight.grad.detach().clone()
    dist.all_reduce(router)
    close(host(router), host(ref.gate.weight.grad), "EP router grad (summed)")


def check_ddp(rank, world):
    genesis.manual_seed(1)
    ref = genesis.nn.Sequential(genesis.nn.Linear(4, 8), genesis.nn.SiLU(),
                                genesis.nn.Linear(8, 2)).double()
    model = DDP(copy.deepcopy(ref).to("cuda"), bucket_cap_mb=100 / 2 ** 20)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    mine = slice(rank * 6 // world, (rank + 1) * 6 // world)
    ((model(genesis.tensor(x[mine], device="cuda")) - genesis.tensor(y[mine], device="cuda"))
     ** 2).mean().backward()
    ((ref(genesis.tensor(x)) - genesis.tensor(y)) ** 2).mean().backward()
    for (name, p), q in zip(model.module.named_parameters(), ref.parameters()):
        close(host(p.grad), host(q.grad), f"DDP grad of {name}")


def main():
    install_fake_gpu()
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    check_expert_parallel(rank, world)
    check_ddp(rank, world)
    print(f"rank {rank} fake gpu ok")


if __name__ == "__main__":
    main()
