"""A tour of genesis.models.transformers: build, configure, train and sample MoE language models.

Sections: 1) basic model + forward, 2) presets, 3) DeepSeek style (shared experts),
4) Mixtral style, 5) mixed dense/MoE layers, 6) a short training loop, 7) generation (and a
save/load round trip). Runs on a laptop CPU in well under two minutes:

    python examples/moe_transformer_example.py
"""
import tempfile
import time

import numpy as np

import genesis
from genesis.models.transformers import (MoEConfig, MoEForCausalLM, get_moe_config,
                                         list_moe_configs)
from genesis.nn.utils import clip_grad_norm_
from genesis.optim import AdamW

VOCAB = 64
STEPS = 50


def section(title):
    """Print a section header."""
    print(f"\n=== {title} " + "=" * max(0, 66 - len(title)))


def small_config(**fields):
    """A laptop-sized config; keyword arguments override any field."""
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                num_local_experts=4, num_experts_per_tok=2, moe_intermediate_size=64)
    base.update(fields)
    return MoEConfig(**base)


def basic_forward():
    """1) Build a model from a config and run a forward pass."""
    section("1) basic model + forward")
    config = small_config(num_local_experts=8, num_experts_per_tok=2)
    model = MoEForCausalLM(config)
    input_ids = genesis.randint(0, config.vocab_size, (2, 16))
    logits = model(input_ids)
    print(f"logits {tuple(logits.shape)}; {model.num_parameters():,} parameters, "
          f"{config.num_active_parameters():,} active per token")
    labels = input_ids
    loss, logits = model(input_ids, labels=labels)
    print(f"loss with labels: {loss.item():.4f} (about ln(vocab) = {np.log(VOCAB):.4f} at init)")


def presets():
    """2) Named presets: sizes are computed from the config without building the model."""
    section("2) presets")
    for name in list_moe_configs():
        config = get_moe_config(name)
        print(f"{name:>18}: {config.num_parameters() / 1e6:10.1f}M params, "
              f"{config.num_local_experts} experts top-{config.num_experts_per_tok}, "
              f"{config.num_hidden_layers} layers, hidden {config.hidden_size}")
    tiny = MoEForCausalLM.from_pretrained("moe-tiny")
    print(f"MoEForCausalLM.from_pretrained('moe-tiny'): {tiny.num_parameters():,} parameters")


def deepseek_style():
    """3) DeepSeek-MoE: fine-grained routed experts + always-on shared experts, dense layer 0."""
    section("3) DeepSeek style (shared experts)")
    config = small_config(num_hidden_layers=3, num_local_experts=16, num_experts_per_tok=4,
                          moe_intermediate_size=32, num_shared_experts=2, first_moe_layer=1,
                          norm_topk_prob=False, seq_aux=True, router_aux_loss_coef=0.001)
    model = MoEForCausalLM(config)
    out = model(genesis.randint(0, VOCAB, (2, 12)), output_router_logits=True)
    print(f"MoE layers {config.moe_layer_indices()}, shared expert intermediate "
          f"{config.shared_expert_intermediate_size}")
    print(f"sequence-level aux loss {out.aux_loss.item():.4f} (1 per MoE layer when uniform), "
          f"active experts/token {out.router_stats['active_experts_per_token']}")


def mixtral_style():
    """4) Mixtral: 8 experts, top-2 softmax routing renormalised, Switch aux loss."""
    section("4) Mixtral style")
    config = small_config(num_local_experts=8, num_experts_per_tok=2, norm_topk_prob=True,
                          router_aux_loss_coef=0.02)
    model = MoEForCausalLM(config)
    ids = genesis.randint(0, VOCAB, (2, 12))
    out = model(ids, labels=ids, output_router_logits=True, return_dict=True)
    print(f"loss {out.loss.item():.4f} = CE + 0.02 * aux; aux {out.aux_loss.item():.4f} "
          f"(= top_k = 2 under uniform routing)")
    print(f"router logits per MoE layer: {[tuple(r.shape) for r in out.router_logits]}")
    load = out.router_stats["expert_load"][0]
    print(f"layer-0 expert load fractions: {np.round(load, 3).tolist()}")


def mixed_layers():
    """5) Mixed dense/MoE stacks: MoE every second layer."""
    section("5) mixed dense/MoE layers")
    config = small_config(num_hidden_layers=4, use_moe_in_all_layers=False, moe_layer_interval=2)
    model = MoEForCausalLM(config)
    kinds = [type(layer.mlp).__name__ for layer in model.model.layers]
    print(f"layer FFNs: {kinds}")
    print(f"logits {tuple(model(genesis.randint(0, VOCAB, (1, 8))).shape)}")


def counting_batch(rng, batch=16, seq=24):
    """Sequences that count upwards modulo VOCAB from a random start: a learnable rule."""
    starts = rng.integers(0, VOCAB, (batch, 1))
    return genesis.tensor((starts + np.arange(seq)) % VOCAB)


def train():
    """6) Train a small Mixtral-style model with AdamW until the loss falls."""
    section("6) training loop")
    genesis.manual_seed(0)
    model = MoEForCausalLM(small_config())
    model.train()
    optimizer = AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for step in range(1, STEPS + 1):
        ids = counting_batch(rng)
        loss, _ = model(ids, labels=ids)
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step == 1 or step % 10 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")
    print(f"{STEPS} steps in {time.perf_counter() - start:.1f}s")
    return model


def generate(model):
    """7) Greedy and sampled generation, batched with left padding; save and reload."""
    section("7) generation")
    prompt = genesis.tensor([[0, 0, 10, 11, 12], [40, 41, 42, 43, 44]])
    mask = genesis.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    greedy = model.generate(prompt, attention_mask=mask, max_new_tokens=8, pad_token_id=0)
    print(f"greedy (should keep counting): {greedy[:, 5:].tolist()}")
    genesis.manual_seed(0)
    sampled = model.generate(prompt, attention_mask=mask, max_new_tokens=8, do_sample=True,
                             temperature=0.8, top_k=5, top_p=0.9, pad_token_id=0)
    print(f"sampled (T=0.8, top-k 5, top-p 0.9): {sampled[:, 5:].tolist()}")
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        reloaded = MoEForCausalLM.from_pretrained(directory)
        again = reloaded.generate(prompt, attention_mask=mask, max_new_tokens=8, pad_token_id=0)
    print(f"reloaded checkpoint generates the same tokens: "
          f"{again.tolist() == greedy.tolist()}")


def main():
    """Run every section."""
    start = time.perf_counter()
    genesis.manual_seed(0)
    basic_forward()
    presets()
    deepseek_style()
    mixtral_style()
    mixed_layers()
    model = train()
    generate(model)
    print(f"\ndone in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
