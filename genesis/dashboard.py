"""The routing dashboard: one self-contained HTML page showing which experts a text wakes up.

The page has no external resources (inline CSS, JavaScript and SVG; no server, no CDN): the
text with every token coloured by its top expert in the selected MoE layer and the number of
experts it visits as a subscript, a layer-by-token overview map, each layer's mean experts per
token, and, when the run logged ``metrics.jsonl``, each layer's expert load over training.
Without JavaScript the first MoE layer is shown; ``page.html#layer=N`` opens MoE layer ``N``.
"""
import html
import json
import os

import numpy as np

__all__ = ["routing_trace", "read_load_history", "build_page", "write_dashboard",
           "expert_color"]

_BASE_HUES = (210, 30, 120, 0, 270, 45, 180, 320, 90, 240)


def expert_color(expert, lightness=78):
    """A ``#rrggbb`` colour for expert ``expert`` (ten well-separated hues, then golden-angle
    steps); white for -1 (no expert)."""
    import colorsys
    if expert < 0:
        return "#ffffff"
    hue = _BASE_HUES[expert] if expert < len(_BASE_HUES) else (expert * 137.508) % 360
    rgb = colorsys.hls_to_rgb(hue / 360.0, lightness / 100.0, 0.7)
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def routing_trace(model, input_ids):
    """Routing of one sequence ``[1, S]`` (a genesis Tensor) through every MoE layer.

    Returns ``{"layers": [decoder layer index per MoE layer], "experts": [L][S][k] the
    experts that compute each token (-1 for a slot the router left unused or capacity
    dropped), "weights": [L][S][k], "top_expert": [L][S], "num_experts": slots}``.
    """
    import genesis
    if tuple(input_ids.shape[:1]) != (1,) or input_ids.ndim != 2:
        raise ValueError(f"routing_trace: input_ids must be one sequence [1, seq], got shape "
                         f"{tuple(input_ids.shape)}")
    was_training = model.training
    model.eval()
    try:
        with genesis.no_grad():
            routings = model.model(input_ids).router_outputs
    finally:
        model.train(was_training)
    layers = list(model.config.moe_layer_indices())
    if not routings:
        raise ValueError("routing_trace: the model has no MoE layers (a dense checkpoint); "
                         "convert it first with `genesis sparsify`")
    experts, weights, top = [], [], []
    for routing in routings:
        ids = np.asarray(routing.dispatch_ids().detach().cpu().numpy(), dtype=np.int64)
        w = np.asarray(routing.topk_weights.detach().cpu().numpy(), dtype=np.float64)
        used = ids >= 0
        w = np.where(used, w, -np.inf)
        top.append(ids[np.arange(ids.shape[0]), w.argmax(axis=1)].tolist())
        experts.append(ids.tolist())
        weights.append(np.where(used, w, 0.0).round(4).tolist())
    return {"layers": layers, "experts": experts, "weights": weights, "top_expert": top,
            "num_experts": int(model.config.num_expert_slots)}


def read_load_history(path):
    """``{"steps": [...], "load": [step][layer][expert]}`` from a ``metrics.jsonl`` (the file or
    a run folder, or a checkpoint folder inside one); None when no load was logged."""
    candidates = [path] if path.endswith(".jsonl") else \
        [os.path.join(path, "metrics.jsonl"), os.path.join(os.path.dirname(
            os.path.abspath(path)), "metrics.jsonl")]
    for candidate in candidates:
        if not os.path.isfile(candidate):
            continue
        steps, loads = [], []
        with open(candidate, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                record = json.loads(line)
                if record.get("expert_load"):
                    steps.append(record["step"])
                    loads.append(record["expert_load"])
        if steps:
            return {"steps": steps, "load": loads, "source": candidate}
    return None


def _esc(text):
    return html.escape(text, quote=True)


def _token_html(tokens, trace, layer):
    parts = []
    for t, token in enumerate(tokens):
        ids = [e for e in trace["experts"][layer][t] if e >= 0]
        top = trace["top_expert"][layer][t]
        weights = [w for e, w in zip(trace["experts"][layer][t], trace["weights"][layer][t])
                   if e >= 0]
        tip = f"token {t} {token!r}: experts " + ", ".join(
            f"{e} ({w:.2f})" for e, w in zip(ids, weights))
        parts.append(f'<span class="tok" data-t="{t}" style="background:{expert_color(top)}" '
                     f'title="{_esc(tip)}">{_esc(token)}<sub>{len(ids)}</sub></span>')
    return "".join(parts)


def _overview_svg(trace, n_tokens):
    """Rows = MoE layers, columns = tokens, cells coloured by the top expert."""
    rows = len(trace["layers"])
    cell = max(2.0, min(14.0, 900.0 / max(n_tokens, 1)))
    height = 12
    width = 70 + cell * n_tokens
    parts = [f'<svg id="overview" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
             f'height="{rows * height + 4}" role="img" aria-label="top expert per layer and '
             f'token">']
    for r, layer in enumerate(trace["layers"]):
        y = r * height + 2
        parts.append(f'<text x="0" y="{y + 9}" font-size="9">layer {layer}</text>')
        for t, e in enumerate(trace["top_expert"][r]):
            parts.append(f'<rect x="{70 + t * cell:.1f}" y="{y}" width="{cell:.1f}" '
                         f'height="{height - 1}" fill="{expert_color(e)}"><title>layer '
                         f'{layer}, token {t}: expert {e}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _load_svg(history, layer_pos, layer, num_experts):
    """One MoE layer's share of routed pairs per expert over training steps."""
    width, height, left, bottom = 640, 200, 44, 24
    steps = history["steps"]
    loads = [row[layer_pos] if layer_pos < len(row) else [] for row in history["load"]]
    top = max([max(v) for v in loads if v] + [1e-9])
    x0, x1 = min(steps), max(steps)
    span = max(x1 - x0, 1)

    def xy(step, value):
        x = left + (step - x0) / span * (width - left - 8)
        y = height - bottom - value / top * (height - bottom - 8)
        return f"{x:.1f},{y:.1f}"
    hidden = "" if layer_pos == 0 else ' style="display:none"'
    parts = [f'<svg class="loadplot" data-layer="{layer_pos}" xmlns="http://www.w3.org/2000/svg"'
             f' width="{width}" height="{height}"{hidden} role="img" aria-label="expert load '
             f'over training, layer {layer}">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 8}" y2="{height - bottom}" '
             f'stroke="#555"/><line x1="{left}" y1="8" x2="{left}" y2="{height - bottom}" '
             f'stroke="#555"/>',
             f'<text x="{left}" y="{height - 6}" font-size="10">step {x0}</text>',
             f'<text x="{width - 8}" y="{height - 6}" font-size="10" text-anchor="end">step '
             f'{x1}</text>',
             f'<text x="2" y="14" font-size="10">{top:.2f}</text>',
             f'<text x="2" y="{height - bottom}" font-size="10">0</text>']
    for e in range(num_experts):
        series = [(s, v[e]) for s, v in zip(steps, loads) if e < len(v)]
        if not any(value for _, value in series):
            continue
        points = " ".join(xy(s, v) for s, v in series)
        parts.append(f'<polyline fill="none" stroke="{expert_color(e, 45)}" stroke-width="1.5" '
                     f'points="{points}"><title>expert {e}</title></polyline>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
#text{line-height:2.1;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:14px;
border:1px solid #ddd;padding:12px;border-radius:6px}
.tok{border-radius:3px;padding:1px 0}
.tok sub{font-size:9px;color:#555;margin-left:1px}
.legend span{display:inline-block;padding:2px 8px;margin:2px;border-radius:3px;font-size:12px}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ddd;padding:2px 8px}
.note{color:#666;font-size:12px}
"""

_JS = """
(function(){
  var data = JSON.parse(document.getElementById('routing-data').textContent);
  var select = document.getElementById('layer');
  function render(pos){
    var spans = document.querySelectorAll('#text .tok');
    for (var t = 0; t < spans.length; t++){
      var ids = data.experts[pos][t].filter(function(e){ return e >= 0; });
      spans[t].style.background = data.colors[data.top_expert[pos][t] + 1];
      spans[t].querySelector('sub').textContent = ids.length;
    }
    var plots = document.querySelectorAll('.loadplot');
    for (var i = 0; i < plots.length; i++){
      plots[i].style.display = (+plots[i].getAttribute('data-layer') === pos) ? '' : 'none';
    }
    select.value = String(pos);
    document.body.setAttribute('data-layer', String(pos));
  }
  select.addEventListener('change', function(){ render(+select.value); });
  var m = /layer=(\\d+)/.exec(window.location.hash);
  var start = m ? Math.min(+m[1], data.layers.length - 1) : 0;
  render(start);
})();
"""


def build_page(tokens, trace, load_history=None, title="genesis routing", subtitle=""):
    """The dashboard as one HTML string (see the module docstring); ``tokens`` are the
    decoded text pieces of the routed sequence, ``trace`` comes from ``routing_trace``."""
    layers = trace["layers"]
    if not layers:
        raise ValueError("build_page: the trace has no MoE layers")
    n = len(tokens)
    if any(len(layer) != n for layer in trace["top_expert"]):
        raise ValueError(f"build_page: {n} tokens but the trace routes "
                         f"{[len(layer) for layer in trace['top_expert']]} per layer")
    num_experts = trace["num_experts"]
    used = sorted({e for layer in trace["experts"] for row in layer for e in row if e >= 0})
    options = "".join(f'<option value="{i}">MoE layer {i} (decoder layer {layer})</option>'
                      for i, layer in enumerate(layers))
    legend = "".join(f'<span style="background:{expert_color(e)}">expert {e}</span>'
                     for e in used)
    rows = []
    for i, layer in enumerate(layers):
        counts = [sum(1 for e in row if e >= 0) for row in trace["experts"][i]]
        share = np.bincount([e for e in trace["top_expert"][i] if e >= 0],
                            minlength=num_experts) / max(n, 1)
        busiest = int(share.argmax())
        rows.append(f"<tr><td>{i}</td><td>{layer}</td><td>{np.mean(counts):.2f}</td>"
                    f"<td>{len(set(trace['top_expert'][i]))}</td><td>expert {busiest} "
                    f"({share[busiest]:.0%})</td></tr>")
    if load_history:
        plots = "".join(_load_svg(load_history, i, layer, num_experts)
                        for i, layer in enumerate(layers))
        load_section = (f'<p class="note">share of routed (token, expert) pairs per expert, '
                        f'from {_esc(os.path.basename(load_history.get("source", "")))} '
                        f'({len(load_history["steps"])} steps); the selected layer is shown'
                        f'</p>{plots}')
    else:
        load_section = ('<p class="note" id="no-load">no expert-load history: the checkpoint '
                        'folder\'s run has no metrics.jsonl with expert_load records</p>')
    data = {"layers": layers, "experts": trace["experts"], "top_expert": trace["top_expert"],
            "colors": [expert_color(e) for e in range(-1, num_experts)]}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body data-layer=\"0\">"
        f"<h1>{_esc(title)}</h1><p class=\"note\">{_esc(subtitle)}</p>"
        f'<label>layer <select id="layer">{options}</select></label>'
        f'<div class="legend">{legend}</div>'
        f'<h2>Tokens coloured by their top expert (subscript: experts visited)</h2>'
        f'<div id="text">{_token_html(tokens, trace, 0)}</div>'
        f'<h2>All layers: top expert per token</h2>{_overview_svg(trace, n)}'
        f'<h2>Experts per token</h2><table><tr><th>MoE layer</th><th>decoder layer</th>'
        f'<th>mean experts / token</th><th>distinct top experts</th><th>busiest</th></tr>'
        f'{"".join(rows)}</table>'
        f'<h2>Expert load over training</h2>{load_section}'
        f'<script type="application/json" id="routing-data">{payload}</script>'
        f"<script>{_JS}</script></body></html>\n")


def write_dashboard(model, tokenizer, text, out_path, metrics_path=None, title=None):
    """Route ``text`` through ``model`` and write the page to ``out_path``; returns the path.

    ``tokenizer`` needs ``encode(text)`` and ``decode(ids)``; ``metrics_path`` is a
    ``metrics.jsonl`` or a run/checkpoint folder (see ``read_load_history``).
    """
    import genesis
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    if ids.size == 0:
        raise ValueError("write_dashboard: the text is empty")
    limit = model.config.max_position_embeddings
    if ids.size > limit:
        raise ValueError(f"write_dashboard: the text has {ids.size} tokens, more than "
                         f"max_position_embeddings {limit}")
    device = model.lm_head.weight.device
    trace = routing_trace(model, genesis.tensor(ids[None, :], device=device))
    tokens = [tokenizer.decode([int(i)]) for i in ids]
    history = read_load_history(metrics_path) if metrics_path else None
    config = model.config
    subtitle = (f"{len(tokens)} tokens; {len(trace['layers'])} MoE layers, "
                f"{config.num_local_experts} experts top-{config.num_experts_per_tok}, router "
                f"{config.router_type}")
    page = build_page(tokens, trace, history, title or "genesis routing dashboard", subtitle)
    tmp = f"{out_path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, out_path)
    return out_path
