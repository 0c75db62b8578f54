"""``inject_router``: turn the gated MLPs of a dense Llama/Qwen2-style model into MoE layers.

Each MLP ``down(act(gate(x)) * up(x))`` of intermediate width ``I`` is a sum over its ``I``
neurons, so splitting the neurons into groups splits the MLP exactly into experts: with every
expert active at weight 1 the MoE layer computes the dense MLP (up to float rounding). What a
good split looks like is learned from calibration tokens:

1. One dense forward records every MLP's input ``x_t`` and neuron activations
   ``a[t, j] = act(gate_j x_t) * up_j x_t``.
2. Neurons are clustered by their activation patterns (balanced k-means on the correlation of
   ``|a[:, j]|`` over tokens, equal-size groups), so neurons that fire on the same tokens share
   an expert and a token's activation mass concentrates on few experts. ``deepseek`` first keeps
   the most used neurons (largest mean ``|a|``) as one always-on shared expert.
3. Each router is fitted by least squares so that ``softmax(router logits)`` approximates each
   expert's share of the token's activation mass (target: centred log-shares); the Genesis
   router's centroids are the mean directions of the tokens each expert serves (top-1 by mass)
   and its weight is fitted to what the binding energy needs on top of the centroid term.

``mixtral`` and ``deepseek`` set ``norm_topk_prob`` and ``routed_scaling_factor = top_k`` so the
selected experts mix with weights summing to ``top_k`` (about 1 each, as in the dense MLP). The
Genesis router's mixing weights sum to 1 (the spec's renormalisation), so its converted layers
start with the kept experts' outputs scaled down; calibration tuning has to make up for it.
"""
import math

import numpy as np

from ... import backends, dtypes
from ...autograd import no_grad
from ...nn import init
from ...ops._special import erf
from ...tensor import Tensor
from .configuration_moe import MoEConfig
from .modeling_moe import DenseFFN, MoESparseBlock

__all__ = ["inject_router", "balanced_kmeans", "balanced_assignment", "neuron_activations",
           "SPARSIFY_MODES"]

SPARSIFY_MODES = ("genesis", "mixtral", "deepseek")
_EPS = 1e-12


def _host(arr):
    return arr if isinstance(arr, np.ndarray) else arr.get()


def _unit_rows(a):
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), _EPS)


def balanced_assignment(scores, capacity):
    """Assign each row of ``scores [n, E]`` to one column, each column taking exactly
    ``capacity`` rows (``n == E * capacity``), best scores first.

    Rounds of proposals: every unassigned row proposes to its best column with room left and
    each column accepts its highest-scoring proposers up to its remaining room. Every round
    fills a column or assigns every proposer, so there are at most ``E`` rounds.
    """
    n, e = scores.shape
    if n != e * capacity:
        raise ValueError(f"balanced_assignment: {n} rows cannot fill {e} columns of "
                         f"{capacity} exactly")
    labels = np.full(n, -1, dtype=np.int64)
    room = np.full(e, capacity, dtype=np.int64)
    pending = np.arange(n)
    while pending.size:
        s = np.where(room[None, :] > 0, scores[pending], -np.inf)
        choice = s.argmax(axis=1)
        best = s[np.arange(pending.size), choice]
        order = np.lexsort((-best, choice))
        chosen = choice[order]
        rank = np.arange(order.size) - np.searchsorted(chosen, chosen)
        accept = rank < room[chosen]
        labels[pending[order[accept]]] = chosen[accept]
        room -= np.bincount(chosen[accept], minlength=e)
        pending = pending[order[~accept]]
    return labels


def balanced_kmeans(features, num_clusters, iters=30, seed=0):
    """Equal-size clusters of the rows of ``features [n, m]`` by cosine similarity.

    k-means++-style seeding from a seeded generator, then alternating balanced assignment
    (``balanced_assignment``) and centroid updates until the labels stop changing.
    Returns the labels ``[n]`` (int64, each cluster exactly ``n / num_clusters`` rows).
    """
    n = features.shape[0]
    if n % num_clusters:
        raise ValueError(f"balanced_kmeans: {n} rows do not split into {num_clusters} equal "
                         f"clusters")
    x = _unit_rows(np.asarray(features, dtype=np.float32))
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(n)]]
    closest = x @ centroids[0]
    for _ in range(1, num_clusters):
        weight = np.maximum(1.0 - closest, 0.0) ** 2
        total = weight.sum()
        pick = rng.choice(n, p=weight / total) if total > 0 else rng.integers(n)
        centroids.append(x[pick])
        closest = np.maximum(closest, x @ x[pick])
    centroids = np.stack(centroids)
    labels = None
    for _ in range(iters):
        new = balanced_assignment(x @ centroids.T, n // num_clusters)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        onehot = labels[None, :] == np.arange(num_clusters)[:, None]
        centroids = _unit_rows(onehot.astype(np.float64) @ x)
    return labels


def neuron_activations(mlp, x):
    """``act(gate x) * up x`` of a gated ``DenseFFN`` for host rows ``x [T, d]`` (float64)."""
    gate = _host(mlp.gate_proj.weight._array).astype(np.float64)
    up = _host(mlp.up_proj.weight._array).astype(np.float64)
    g, u = x @ gate.T, x @ up.T
    act = mlp.hidden_act
    if act in ("silu", "swish"):
        return g / (1.0 + np.exp(-g)) * u
    if act == "relu":
        return np.maximum(g, 0.0) * u
    if act == "gelu":
        return 0.5 * g * (1.0 + erf(np, g / math.sqrt(2.0))) * u
    inner = math.sqrt(2.0 / math.pi) * (g + 0.044715 * g ** 3)
    return 0.5 * g * (1.0 + np.tanh(inner)) * u


def _calibration_rows(calibration_data):
    """Token ids ``[B, S]`` (int64 host array) from a Tensor, array or nested lists."""
    if calibration_data is None:
        raise ValueError("inject_router: calibration_data is required (token ids [batch, seq] "
                         "of text like the model will see)")
    data = calibration_data
    if isinstance(data, Tensor):
        data = _host(data._array)
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.size == 0 or not np.issubdtype(data.dtype, np.integer):
        raise ValueError(f"inject_router: calibration_data must be integer token ids of shape "
                         f"[batch, seq], got shape {data.shape} and dtype {data.dtype}")
    return data.astype(np.int64)


def _record_mlp_inputs(model, rows, tokens_per_forward):
    """One dense forward over ``rows``; each layer's MLP input as a host ``[T, d]`` array."""
    from ...creation import tensor
    layers = model.model.layers
    seen = [[] for _ in layers]
    handles = [layer.mlp.register_forward_pre_hook(
        lambda module, args, store=store: store.append(
            _host(args[0]._array).reshape(-1, args[0].shape[-1]).astype(np.float64)))
        for layer, store in zip(layers, seen)]
    was_training = model.training
    model.eval()
    per = max(1, tokens_per_forward // rows.shape[1])
    try:
        with no_grad():
            for i in range(0, rows.shape[0], per):
                model.model(tensor(rows[i:i + per], device=model.lm_head.weight.device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [np.concatenate(store) for store in seen]


def _neuron_features(acts, max_tokens):
    """Per-neuron activation patterns: centred, unit-norm ``|a|`` over (a subset of) tokens."""
    if acts.shape[0] > max_tokens:
        acts = acts[np.linspace(0, acts.shape[0] - 1, max_tokens).astype(np.int64)]
    f = np.abs(acts).T
    f = f - f.mean(axis=1, keepdims=True)
    return _unit_rows(f)


def _partition(acts, num_experts, num_shared, max_tokens, seed):
    """(shared neuron ids or None, routed neuron ids ``[E, I_e]``) of one MLP."""
    usage = np.abs(acts).mean(axis=0)
    order = np.argsort(-usage, kind="stable")
    shared = np.sort(order[:num_shared]) if num_shared else None
    routed = np.sort(order[num_shared:])
    labels = balanced_kmeans(_neuron_features(acts[:, routed], max_tokens), num_experts,
                             seed=seed)
    groups = np.stack([routed[labels == e] for e in range(num_experts)])
    return shared, groups


def _least_squares(x, y, ridge=1e-4):
    """``W [E, d]`` minimising ``|x W^T - y|^2 + ridge * mean(diag(x^T x)) * |W|^2``."""
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += ridge * float(np.trace(gram)) / gram.shape[0]
    return np.linalg.solve(gram, x.T @ y).T


def _router_targets(acts, groups):
    """Centred log-shares of each expert in a token's activation mass ``[T, E]`` and the mass."""
    mass = np.abs(acts)[:, groups].sum(axis=-1)
    share = mass / np.maximum(mass.sum(axis=1, keepdims=True), _EPS)
    logs = np.log(share + 1e-6)
    return logs - logs.mean(axis=1, keepdims=True), mass


def _router_init(mode, x, acts, groups, config):
    """(router weight ``[E, d]``, centroids ``[E, d]`` or None) fitted on calibration tokens."""
    target, mass = _router_targets(acts, groups)
    if mode != "genesis":
        return _least_squares(x, target), None
    x_unit = _unit_rows(x)
    top1 = mass.argmax(axis=1)
    onehot = (top1[:, None] == np.arange(groups.shape[0])[None, :]).astype(np.float64)
    weights = np.where(onehot.sum(axis=0)[:, None] > 0, onehot.T, mass.T)
    centroids = _unit_rows(weights @ x_unit)
    binding = float(config.genesis_tau) * target - float(config.genesis_beta_bind) * (
        x_unit @ centroids.T)
    return _least_squares(x, binding), centroids


def _moe_config(config, mode, num_experts, top_k, expert_size, shared_size, overrides):
    """The MoE config of the converted model (genesis_moe layout, every layer sparse)."""
    fields = config.to_dict()
    fields.update(model_type="genesis_moe", num_local_experts=num_experts,
                  num_experts_per_tok=top_k, moe_intermediate_size=expert_size,
                  use_moe_in_all_layers=True, moe_layer_interval=1, first_moe_layer=0,
                  mlp_only_layers=[], num_shared_experts=None,
                  shared_expert_intermediate_size=None, shared_expert_gate=False,
                  router_type="genesis" if mode == "genesis" else "topk",
                  scoring_func="softmax", topk_method="greedy", n_group=None, topk_group=None,
                  norm_topk_prob=True, routed_scaling_factor=float(top_k),
                  seq_aux=mode == "deepseek")
    if mode == "deepseek":
        fields.update(num_shared_experts=1, shared_expert_intermediate_size=shared_size,
                      router_aux_loss_coef=0.001)
    fields.update(overrides)
    return MoEConfig.from_dict(fields)


def _set(param, value):
    xp = backends.xp_for(param.device)
    param._array[...] = xp.asarray(value).astype(param._array.dtype)
    param._version[0] += 1


def _build_block(config, layer_idx, mlp, shared, groups, router_weight, centroids, like):
    """A ``MoESparseBlock`` holding the dense MLP's neurons split into experts."""
    gate = _host(mlp.gate_proj.weight._array)
    up = _host(mlp.up_proj.weight._array)
    down = _host(mlp.down_proj.weight._array)
    with dtypes.default_dtype(like.dtype), init.skip_init():
        block = MoESparseBlock(config, layer_idx)
    block.to(like.device)
    slots = block.experts.gate_up_proj.shape[0]
    e, size = groups.shape
    gate_up = np.zeros((slots, 2 * size, gate.shape[1]), dtype=np.float64)
    gate_up[:e] = np.concatenate([gate[groups], up[groups]], axis=1)
    down_stack = np.zeros((slots, down.shape[0], size), dtype=np.float64)
    down_stack[:e] = down[:, groups].transpose(1, 0, 2)
    weight = np.zeros((block.gate.weight.shape[0], gate.shape[1]), dtype=np.float64)
    weight[:e] = router_weight
    with no_grad():
        _set(block.experts.gate_up_proj, gate_up)
        _set(block.experts.down_proj, down_stack)
        _set(block.gate.weight, weight)
        if shared is not None:
            _set(block.shared_experts.gate_proj.weight, gate[shared])
            _set(block.shared_experts.up_proj.weight, up[shared])
            _set(block.shared_experts.down_proj.weight, down[:, shared])
        if centroids is not None:
            block.gate.reset_state()
            _set(block.gate.centroids, np.concatenate(
                [centroids, _host(block.gate.centroids._array)[e:]]))
    return block


def inject_router(model, mode="genesis", num_experts=8, top_k=2, calibration_data=None, *,
                  num_shared_neurons=None, max_cluster_tokens=4096, tokens_per_forward=2048,
                  seed=0, **config_overrides):
    """Convert every gated MLP of a dense genesis causal LM into an MoE layer, in place.

    ``mode``: ``"genesis"`` (energy router), ``"mixtral"`` (top-k softmax) or ``"deepseek"``
    (an always-on shared expert of the ``num_shared_neurons`` most used neurons, default the
    width that leaves ``num_experts`` equal routed experts of ``I // (num_experts + 1)``
    neurons, plus top-k routed experts). ``calibration_data``: token ids ``[batch, seq]``.
    ``config_overrides``: further ``MoEConfig`` fields of the converted model (e.g.
    ``genesis_threshold``). ``max_cluster_tokens`` caps the tokens whose activation patterns
    are clustered (evenly spaced); ``tokens_per_forward`` sizes the calibration forwards;
    ``seed`` seeds the clustering. Returns ``model`` (its ``config`` replaced by the MoE one).
    """
    config = model.config
    if mode not in SPARSIFY_MODES:
        raise ValueError(f"inject_router: mode must be one of {SPARSIFY_MODES}, got {mode!r}")
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not all(isinstance(layer.mlp, DenseFFN) for layer in layers):
        raise ValueError("inject_router: expected a dense genesis MoEForCausalLM (every "
                         "layer's mlp a DenseFFN); this model already has MoE layers or is not "
                         "a genesis causal LM")
    if config.mlp_bias:
        raise ValueError("inject_router: MLPs with biases (mlp_bias=True) are not supported: "
                         "the down projection's bias cannot be split among experts")
    inter = config.intermediate_size
    for name, value in (("num_experts", num_experts), ("top_k", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"inject_router: {name} must be an int >= 1, got {value!r}")
    if top_k > num_experts:
        raise ValueError(f"inject_router: top_k ({top_k}) cannot exceed num_experts "
                         f"({num_experts})")
    shared_size = 0
    if mode == "deepseek":
        shared_size = inter - num_experts * (inter // (num_experts + 1)) \
            if num_shared_neurons is None else num_shared_neurons
        if not (isinstance(shared_size, int) and 0 < shared_size < inter):
            raise ValueError(f"inject_router: num_shared_neurons must be an int in (0, {inter}),"
                             f" got {num_shared_neurons!r}")
    if (inter - shared_size) % num_experts:
        raise ValueError(f"inject_router: the {inter - shared_size} routed neurons of each MLP "
                         f"(intermediate_size {inter}, {shared_size} shared) do not split into "
                         f"{num_experts} equal experts")
    expert_size = (inter - shared_size) // num_experts
    rows = _calibration_rows(calibration_data)
    if rows.max() >= config.vocab_size or rows.min() < 0:
        raise ValueError(f"inject_router: calibration token ids must be in [0, "
                         f"{config.vocab_size}), got [{rows.min()}, {rows.max()}]")
    new_config = _moe_config(config, mode, num_experts, top_k, expert_size, shared_size,
                             config_overrides)
    inputs = _record_mlp_inputs(model, rows, tokens_per_forward)
    like = model.lm_head.weight
    for i, (layer, x) in enumerate(zip(layers, inputs)):
        acts = neuron_activations(layer.mlp, x)
        shared, groups = _partition(acts, num_experts, shared_size, max_cluster_tokens,
                                    seed + i)
        router_weight, centroids = _router_init(mode, x, acts, groups, new_config)
        layer.mlp = _build_block(new_config, i, layer.mlp, shared, groups, router_weight,
                                 centroids, like)
        layer.is_moe_layer = True
    model.config = new_config
    model.model.config = new_config
    model.train(model.training)
    return model
