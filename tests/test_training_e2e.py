"""End to end: genesis.nn models learn interleaved spirals; checkpoints reproduce predictions."""
import math

import numpy as np

import genesis
from genesis import nn, optim
from genesis.nn import functional as F
from genesis.optim.lr_scheduler import get_cosine_schedule_with_warmup

CLASSES = 5


def spirals(n_per_class, seed, noise=0.15):
    """Five interleaved 2-D spiral arms, one class each (float32 features, int64 labels)."""
    rng = np.random.default_rng(seed)
    r = np.sqrt(rng.uniform(0.02, 1.0, (CLASSES, n_per_class)))
    theta = 7.0 * r + 2 * math.pi * np.arange(CLASSES)[:, None] / CLASSES
    theta = theta + rng.normal(0, noise, theta.shape) * (1 - r / 2)
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], -1).reshape(-1, 2)
    y = np.repeat(np.arange(CLASSES), n_per_class)
    return genesis.tensor(x.astype(np.float32) * 2), genesis.tensor(y)


class MoE(nn.Module):
    """Top-2 softmax-gated mixture of small MLP experts (dense masking: test-only simplicity)."""

    def __init__(self, dim, hidden, num_experts=4, top_k=2):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList([nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(),
                                                    nn.Linear(hidden, dim))
                                      for _ in range(num_experts)])

    def forward(self, x):
        probs = F.softmax(self.gate(x), dim=-1)
        top_w, top_i = probs.topk(self.top_k, dim=-1)
        top_w = top_w / top_w.sum(dim=-1, keepdim=True)
        weights = genesis.zeros_like(probs).scatter(-1, top_i, top_w)
        self.last_choice = top_i
        outs = genesis.stack([expert(x) for expert in self.experts], dim=1)
        return (weights.unsqueeze(-1) * outs).sum(dim=1)


class MoEClassifier(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.embed = nn.Linear(2, dim)
        self.moe = MoE(dim, 32)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x):
        h = F.gelu(self.embed(x), approximate="tanh")
        h = h + self.moe(self.norm(h))
        return self.head(h)


def _train(model, x, y, steps, lr):
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = get_cosine_schedule_with_warmup(opt, steps // 20, steps, min_lr_ratio=0.1)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        first = loss.item() if first is None else first
    return first, loss.item()


def _accuracy(model, x, y):
    model.eval()
    with genesis.no_grad():
        pred = model(x).argmax(dim=-1)
    model.train()
    return float((pred == y).float().mean())


def test_task_is_not_linearly_separable():
    genesis.manual_seed(0)
    x, y = spirals(200, seed=0)
    linear = nn.Linear(2, CLASSES)
    _train(linear, x, y, steps=200, lr=0.02)
    assert _accuracy(linear, *spirals(200, seed=1)) < 0.5


def test_mlp_learns_interleaved_spirals(tmp_path):
    genesis.manual_seed(0)
    x, y = spirals(200, seed=0)
    x_test, y_test = spirals(200, seed=1)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.GELU("tanh"),
                          nn.Dropout(0.0), nn.Linear(64, CLASSES))
    first, last = _train(model, x, y, steps=400, lr=0.02)
    assert last < 0.2 * first
    assert _accuracy(model, x_test, y_test) >= 0.95
    genesis.save({"model": model.state_dict(), "classes": CLASSES}, tmp_path / "mlp.st")
    clone = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.GELU("tanh"),
                          nn.Dropout(0.0), nn.Linear(64, CLASSES))
    ckpt = genesis.load(tmp_path / "mlp.st")
    clone.load_state_dict(ckpt["model"])
    assert ckpt["classes"] == CLASSES
    assert np.array_equal(clone(x_test)._array, model(x_test)._array)


def test_top2_moe_of_mlp_experts_learns_interleaved_spirals():
    genesis.manual_seed(0)
    x, y = spirals(200, seed=2)
    x_test, y_test = spirals(200, seed=3)
    model = MoEClassifier()
    first, last = _train(model, x, y, steps=400, lr=0.02)
    assert last < 0.2 * first
    assert _accuracy(model, x_test, y_test) >= 0.95
    used = np.unique(model.moe.last_choice._array)
    assert len(used) >= 2, f"routing collapsed onto experts {used.tolist()}"
    assert all(p.grad is not None for p in model.moe.experts.parameters())
