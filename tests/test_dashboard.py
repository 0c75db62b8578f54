"""The routing dashboard: page content, `genesis route`, and rendering in headless Chromium."""
import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import genesis
from genesis.cli import main
from genesis.dashboard import (build_page, expert_color, read_load_history, routing_trace,
                               write_dashboard)
from genesis.models.transformers import MoEConfig, MoEForCausalLM
from genesis.models.transformers import ByteTokenizer

TINY = dict(vocab_size=256, hidden_size=32, intermediate_size=64, moe_intermediate_size=32,
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
            num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=128,
            first_moe_layer=1)
TEXT = "Experts <b>&</b> routers"


def tiny(router_type="topk", **extra):
    genesis.manual_seed(0)
    model = MoEForCausalLM(MoEConfig(**TINY, router_type=router_type, **extra))
    model.eval()
    return model


def test_trace_matches_the_model_routing():
    model = tiny()
    ids = genesis.tensor(np.asarray(ByteTokenizer().encode(TEXT))[None, :])
    trace = routing_trace(model, ids)
    assert trace["layers"] == [1, 2]
    with genesis.no_grad():
        routings = model.model(ids).router_outputs
    for layer, routing in enumerate(routings):
        expected = routing.dispatch_ids().numpy()
        assert np.array_equal(np.asarray(trace["experts"][layer]), expected)
        weights = routing.topk_weights.numpy()
        top = expected[np.arange(len(expected)), weights.argmax(1)]
        assert trace["top_expert"][layer] == top.tolist()


def test_genesis_router_trace_marks_unused_slots():
    model = tiny("genesis", genesis_threshold=0.3)
    ids = genesis.tensor(np.asarray(ByteTokenizer().encode(TEXT))[None, :])
    trace = routing_trace(model, ids)
    assert trace["num_experts"] == model.config.num_expert_slots
    with genesis.no_grad():
        routings = model.model(ids).router_outputs
    counts = []
    for layer, routing in enumerate(routings):
        selected = routing.selected.numpy()
        for row, top, chosen in zip(trace["experts"][layer], trace["top_expert"][layer],
                                    selected):
            assert top in row and top >= 0
            assert [e >= 0 for e in row] == chosen.tolist()
            counts.append(int(chosen.sum()))
    assert min(counts) == 1 and max(counts) == 2   # adaptive: 1 or 2 experts per token


def _page(history=None):
    tokens = ["Hi", " <&>", " there"]
    trace = {"layers": [0, 2], "experts": [[[1, 2], [0, -1], [3, 1]], [[2, 0], [2, 1], [0, 3]]],
             "weights": [[[0.6, 0.4], [1.0, 0.0], [0.7, 0.3]],
                         [[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]],
             "top_expert": [[1, 0, 3], [2, 2, 3]], "num_experts": 4}
    return build_page(tokens, trace, history, title="t <1>"), tokens, trace


def test_page_shows_every_token_coloured_by_the_first_layer_top_expert():
    page, tokens, trace = _page()
    spans = re.findall(r'<span class="tok" data-t="(\d+)" style="background:([^"]+)" '
                       r'title="[^"]*">(.*?)<sub>(\d+)</sub></span>', page)
    assert [html.unescape(text) for _, _, text, _ in spans] == tokens
    assert [color for _, color, _, _ in spans] == [expert_color(e) for e in [1, 0, 3]]
    assert [int(count) for *_, count in spans] == [2, 1, 2]
    assert "t &lt;1&gt;" in page and "<1>" not in page


def test_page_is_self_contained_and_embeds_all_layers():
    page, _, trace = _page()
    assert not re.search(r'(src|href)=["\']?(https?:)?//', page)
    assert "<link" not in page and "@import" not in page
    payload = re.search(r'<script type="application/json" id="routing-data">(.*?)</script>',
                        page).group(1)
    data = json.loads(payload)
    assert data["top_expert"] == trace["top_expert"] and data["layers"] == [0, 2]
    assert page.count("<option") == 2
    assert page.count("<rect") == 6          # overview: 2 layers x 3 tokens
    assert "<td>0</td><td>0</td><td>1.67</td>" in page   # mean experts per token, layer 0
    assert 'id="no-load"' in page


def test_page_plots_load_history_per_layer():
    history = {"steps": [1, 2, 3], "source": "metrics.jsonl",
               "load": [[[0.5, 0.5, 0, 0], [0.25] * 4], [[0.4, 0.6, 0, 0], [0.25] * 4],
                        [[0.3, 0.7, 0, 0], [0.1, 0.2, 0.3, 0.4]]]}
    page, _, _ = _page(history)
    plots = re.findall(r'<svg class="loadplot" data-layer="(\d)".*?</svg>', page)
    assert plots == ["0", "1"]
    first = re.search(r'<svg class="loadplot" data-layer="0".*?</svg>', page).group(0)
    assert first.count("<polyline") == 2      # experts 2 and 3 never loaded in layer 0
    second = re.search(r'<svg class="loadplot" data-layer="1".*?</svg>', page).group(0)
    assert second.count("<polyline") == 4 and 'style="display:none"' in second


def test_build_page_rejects_mismatched_trace():
    _, tokens, trace = _page()
    with pytest.raises(ValueError, match=r"2 tokens but the trace routes \[3, 3\]"):
        build_page(tokens[:2], trace)


def test_load_history_found_next_to_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    records = [{"step": 1, "loss": 3.0, "expert_load": [[0.5, 0.5]]},
               {"step": 1, "val_loss": 2.9}, {"step": 2, "loss": 2.0, "expert_load": [[0.4, 0.6]]}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    history = read_load_history(str(run / "checkpoint"))
    assert history["steps"] == [1, 2] and history["load"][1] == [[0.4, 0.6]]
    assert read_load_history(str(tmp_path)) is None


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _route(tmp_path, model, capsys=None):
    ckpt = tmp_path / "run" / "checkpoint"
    model.save_pretrained(ckpt)
    ByteTokenizer().save_pretrained(str(ckpt))
    records = [{"step": s, "loss": 1.0, "expert_load": [[0.1 * s, 1 - 0.1 * s, 0, 0]] * 2}
               for s in range(1, 6)]
    (tmp_path / "run" / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "page.html"
    assert main(["route", "--checkpoint", str(ckpt), "--text", TEXT, "--out", str(out)]) == 0
    return out


def test_route_command_writes_the_page(tmp_path, capsys):
    out = _route(tmp_path, tiny())
    assert f"wrote {out}" in capsys.readouterr().out
    page = out.read_text()
    assert page.count('class="tok"') == len(TEXT.encode())
    assert page.count('class="loadplot"') == 2
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in "".join(re.findall(r">([^<]*)<sub>", page))


def test_route_command_errors_are_one_line(tmp_path, capsys):
    assert main(["route", "--checkpoint", str(tmp_path / "nope"), "--text", "x",
                 "--out", str(tmp_path / "p.html")]) == 2
    assert "checkpoint folder not found" in capsys.readouterr().err
    genesis.manual_seed(0)
    dense = MoEForCausalLM(MoEConfig(**{**TINY, "num_local_experts": 0}))
    dense.save_pretrained(tmp_path / "dense")
    assert main(["route", "--checkpoint", str(tmp_path / "dense"), "--text", "x",
                 "--out", str(tmp_path / "p.html")]) == 2
    assert "no MoE layers" in capsys.readouterr().err


def test_write_dashboard_is_what_the_trainer_calls(tmp_path):
    path = write_dashboard(tiny(), ByteTokenizer(), "abc", str(tmp_path / "r.html"))
    assert os.path.isfile(path) and open(path).read().count('class="tok"') == 3


def test_page_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium binary on PATH (apt-get install chromium)")
    out = _route(tmp_path, tiny())
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(base + ["--dump-dom", f"file://{out}#layer=1"], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-layer="1"' in dom.stdout.split("<body", 1)[1][:40]   # the script ran
    page = out.read_text()
    data = json.loads(re.search(r'id="routing-data">(.*?)</script>', page).group(1))
    colours = re.findall(r'<span class="tok" data-t="\d+" style="background: ?([^;"]+);?"',
                         dom.stdout)
    assert len(colours) == len(TEXT.encode())
    expected = [_rgb_tuple(expert_color(e)) for e in data["top_expert"][1]]
    assert [_rgb_tuple(c) for c in colours] == expected
    shot = tmp_path / "shot.png"
    run = subprocess.run(base + [f"--screenshot={shot}", "--window-size=1000,700",
                                 f"file://{out}"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int64)
    first = _rgb_tuple(expert_color(data["top_expert"][0][0]))
    assert (np.abs(pixels - np.array(first)).sum(-1) <= 6).sum() > 20   # token colours drawn
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def _rgb_tuple(colour):
    """(r, g, b) of a ``#rrggbb`` or ``rgb(r, g, b)`` CSS colour."""
    if colour.startswith("#"):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(v) for v in re.findall(r"\d+", colour)[:3])
