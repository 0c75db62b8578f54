"""Mixed-precision training of a small MoE language model tracks the float32 loss curve."""
import numpy as np

import genesis
from genesis.models.transformers import MoEConfig, MoEForCausalLM

STEPS = 60


def _train(dtype=None, scaler=None):
    """Losses of STEPS AdamW steps on a learnable sequence task (autocast when ``dtype``)."""
    genesis.manual_seed(0)
    config = MoEConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                       num_experts_per_tok=2, moe_intermediate_size=24,
                       max_position_embeddings=64)
    model = MoEForCausalLM(config)
    opt = genesis.optim.AdamW(model.parameters(), lr=3e-3)
    start = np.random.default_rng(0).integers(0, 64, (4, 1))
    data = genesis.tensor((start + np.arange(17)[None, :] * 3) % 64)  # each token: previous + 3
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        with genesis.autocast("cpu", dtype=dtype or genesis.bfloat16, enabled=dtype is not None):
            logits = model(data[:, :-1])
            loss = genesis.nn.functional.cross_entropy(logits.reshape(-1, 64),
                                                       data[:, 1:].reshape(-1))
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        losses.append(loss.item())
    return np.array(losses), logits.dtype, model


def test_bf16_autocast_tracks_float32_loss_curve():
    fp32, fp32_dtype, _ = _train()
    bf16, bf16_dtype, model = _train(genesis.bfloat16)
    assert fp32_dtype is genesis.float32 and bf16_dtype is genesis.bfloat16
    assert all(p.dtype is genesis.float32 for p in model.parameters())
    assert fp32[-1] < 0.25 * fp32[0]  # the task is learned
    assert np.max(np.abs(bf16 - fp32)) < 0.03


def test_fp16_autocast_with_grad_scaler_tracks_float32():
    fp32, _, _ = _train()
    scaler = genesis.amp.GradScaler("cpu", growth_interval=20)
    fp16, fp16_dtype, _ = _train(genesis.float16, scaler)
    assert fp16_dtype is genesis.float16
    assert scaler.get_scale() >= 2.0 ** 16
    assert np.max(np.abs(fp16 - fp32)) < 0.03
