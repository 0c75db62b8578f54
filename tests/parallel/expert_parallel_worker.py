"""Expert-parallel MoE on R ranks against the single-process layer (float64).

Every rank builds the same full layer, keeps a copy as the reference and shards the other.
The batch of tokens is split over the ranks; the loss is ``sum(out * G)`` summed over ranks,
so gradients add up: the reference runs the whole batch, the expert-parallel layer runs each
rank's share. Compared: outputs (per token), input gradients (per token), expert gradients
(each shard against its slice of the full gradient) and replicated gradients (router, shared
experts: summed over ranks).
Part 1 runs whole sparse blocks whose routers route each token on its own (top-k softmax with
group-limited selection, DeepSeek sigmoid with shared experts). Part 2 runs the experts alone on
routing outputs produced once for the whole batch (Genesis router, capacity drops with id -1),
checking the routing-weight gradients too. Part 3 runs Genesis mitosis across shards.
"""
import copy

import numpy as np

import genesis
import genesis.distributed as dist
from genesis.models.transformers import MoEConfig
from genesis.models.transformers.expert_parallel import (ExpertParallelExperts,
                                                         all_reduce_router_statistics,
                                                         full_state_dict, shard_experts)
from genesis.models.transformers.modeling_moe import MoEExperts, MoEForCausalLM, MoESparseBlock

TOKENS, D = 12, 8


def config(**kw):
    base = dict(vocab_size=32, hidden_size=D, intermediate_size=16, moe_intermediate_size=6,
                num_hidden_layers=1, num_attention_heads=2, num_local_experts=4,
                num_experts_per_tok=2, max_position_embeddings=32, dtype="float64")
    base.update(kw)
    return MoEConfig(**base)


def close(a, b, what, rank):
    a = a.detach().numpy() if isinstance(a, genesis.Tensor) else a
    b = b.detach().numpy() if isinstance(b, genesis.Tensor) else b
    if a.shape != b.shape or not np.allclose(a, b, rtol=1e-11, atol=1e-12):
        diff = np.abs(a - b).max() if a.shape == b.shape else f"shapes {a.shape} {b.shape}"
        raise AssertionError(f"rank {rank} {what}: differs ({diff})")


def summed(t):
    """The gradient summed over ranks (loss is the sum of the ranks' losses)."""
    g = t.grad.detach().clone()
    dist.all_reduce(g)
    return g


def inputs(rank, world):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((TOKENS, D))
    g = rng.standard_normal((TOKENS, D))
    share = slice(rank * TOKENS // world, (rank + 1) * TOKENS // world)
    return x, g, share


def build_block(cfg):
    genesis.manual_seed(0)
    model = MoEForCausalLM(cfg).double()
    return model.model.layers[0].mlp


def check_block(cfg, rank, world, what):
    ref = build_block(cfg)
    ep = copy.deepcopy(ref)
    ep.experts = ExpertParallelExperts(ep.experts)
    x, g, share = inputs(rank, world)
    xr = genesis.tensor(x, requires_grad=True)
    out_ref, _ = ref(xr.reshape(1, TOKENS, D))
    (out_ref.reshape(TOKENS, D) * genesis.tensor(g)).sum().backward()
    xe = genesis.tensor(x[share], requires_grad=True)
    out_ep, _ = ep(xe.reshape(1, -1, D))
    (out_ep.reshape(-1, D) * genesis.tensor(g[share])).sum().backward()
    close(out_ep.reshape(-1, D), out_ref.reshape(TOKENS, D)[share], f"{what} output", rank)
    close(xe.grad, xr.grad[share], f"{what} input grad", rank)
    lo, n = ep.experts.expert_offset, ep.experts.num_local_experts
    for name in ("gate_up_proj", "down_proj"):
        close(getattr(ep.experts, name).grad, getattr(ref.experts, name).grad[lo:lo + n],
              f"{what} {name} grad", rank)
    reference = dict(ref.named_parameters())
    for name, p in ep.named_parameters():
        if not name.startswith("experts."):
            close(summed(p), reference[name].grad, f"{what} {name} grad (summed over ranks)",
                  rank)


def check_experts_on_routing(cfg, rank, world, what):
    block = build_block(cfg)
    x, g, share = inputs(rank, world)
    routing = block.gate(genesis.tensor(x), None, 1, False)
    ids = routing.dispatch_ids().detach()
    weights = routing.topk_weights.detach().numpy().astype(np.float64)
    ep = ExpertParallelExperts(block.experts)
    xr, wr = genesis.tensor(x, requires_grad=True), genesis.tensor(weights, requires_grad=True)
    out_ref = block.experts(xr, ids, wr)
    (out_ref * genesis.tensor(g)).sum().backward()
    xe = genesis.tensor(x[share], requires_grad=True)
    we = genesis.tensor(weights[share], requires_grad=True)
    out_ep = ep(xe, ids[share], we)
    (out_ep * genesis.tensor(g[share])).sum().backward()
    close(out_ep, out_ref[share], f"{what} output", rank)
    close(xe.grad, xr.grad[share], f"{what} input grad", rank)
    close(we.grad, wr.grad[share], f"{what} routing-weight grad", rank)
    lo, n = ep.expert_offset, ep.num_local_experts
    for name in ("gate_up_proj", "down_proj"):
        close(getattr(ep, name).grad, getattr(block.experts, name).grad[lo:lo + n],
              f"{what} {name} grad", rank)
    return int((ids.numpy() < 0).sum())


def check_mitosis(rank, world):
    """The Genesis router's post-step update on sharded experts equals the update on the full
    experts given the same (global) statistics: same split, the parent's weights plus the
    seeded noise reach the child slot on the rank that owns it, with the parent's optimizer
    moments copied across ranks."""
    cfg = config(router_type="genesis", genesis_max_new_experts=2, genesis_mitosis_interval=1)
    ep = build_block(cfg)
    ep.experts = ExpertParallelExperts(ep.experts)
    opt = genesis.optim.Adam(ep.parameters(), lr=0.1)
    x, g, share = inputs(rank, world)
    out, _ = ep(genesis.tensor(x[share]).reshape(1, -1, D))
    (out.reshape(-1, D) * genesis.tensor(g[share])).sum().backward()
    opt.step()
    all_reduce_router_statistics(ep)
    ref = copy.deepcopy(ep)                      # the same state, experts unsharded
    ref.experts = MoEExperts(cfg).double()
    state = full_state_dict(ep)
    ref.experts.load_state_dict({k[len("experts."):]: v for k, v in state.items()
                                 if k.startswith("experts.")})
    for block in (ref, ep):
        block.gate.load._array[...] = np.array([0.1, 0.1, 0.1, 0.7, 0.0, 0.0])
    moments = genesis.zeros(world, *ep.experts.gate_up_proj.shape, dtype=genesis.float64)
    dist.all_gather_into_tensor(moments, opt.state[ep.experts.gate_up_proj]["exp_avg"])
    born_ref = ref.gate.update_state(ref.experts, None, genesis.Generator().manual_seed(11))
    born_ep = ep.experts.update_router(ep.gate, opt, genesis.Generator().manual_seed(11))
    assert born_ref == born_ep == (3, 4), (born_ref, born_ep)
    lo, n = ep.experts.expert_offset, ep.experts.num_local_experts
    for name in ("gate_up_proj", "down_proj"):
        close(getattr(ep.experts, name), getattr(ref.experts, name)[lo:lo + n],
              f"mitosis {name}", rank)
    if lo <= 4 < lo + n:
        close(opt.state[ep.experts.gate_up_proj]["exp_avg"][4 - lo],
              moments.reshape(-1, *moments.shape[2:])[3], "child's optimizer moments", rank)
    close(ep.gate.weight, ref.gate.weight, "mitosis router weight", rank)


def main():
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    check_block(config(topk_method="group_limited_greedy", n_group=2, topk_group=1),
                rank, world, "top-k softmax (group-limited)")
    check_block(config(scoring_func="sigmoid", num_shared_experts=1,
                       shared_expert_intermediate_size=6, routed_scaling_factor=2.5),
                rank, world, "DeepSeek sigmoid + shared experts")
    check_experts_on_routing(config(router_type="genesis", genesis_max_new_experts=0),
                             rank, world, "Genesis router")
    dropped = check_experts_on_routing(config(capacity_factor=0.5), rank, world,
                                       "capacity drops")
    assert dropped > 0, "the capacity case must drop pairs"
    check_mitosis(rank, world)
    genesis.manual_seed(0)
    model = shard_experts(MoEForCausalLM(config(num_hidden_layers=2)))
    assert all(isinstance(layer.mlp.experts, ExpertParallelExperts)
               for layer in model.model.layers)
    assert isinstance(model.model.layers[0].mlp, MoESparseBlock)
    dist.destroy_process_group()
    print(f"rank {rank} expert parallel ok")


if __name__ == "__main__":
    main()
