"""`genesis bench`: the table it prints, its FLOP count and its argument errors."""
import subprocess
import sys

import pytest

from genesis import bench
from genesis.cli import main


def test_ops_and_large_rows_print_one_table_with_ratios():
    lines = []
    rows = bench.run(["ops", "large"], "quick", 1, out=lines.append)
    assert [r[0].split(":")[-1].strip() for r in rows] == [
        "add (4x4)", "mul (4x4)", "matmul (4x4)", "reshape (4x4)", "softmax (4x4)",
        "add", "sum", "softmax", "add", "sum", "softmax"]
    assert [r[0].split(" ")[0] for r in rows[5:]] == ["512x512"] * 3 + ["2048x2048"] * 3
    assert all(r[1] > 0 for r in rows)
    table = lines[-1].splitlines()
    assert table[0].split()[:4] == ["measure", "genesis", "PyTorch", "ratio"]
    assert len(table) == 1 + len(rows)
    if rows[0][2] is not None:
        assert all(f"{g / t:.2f}" in line for (_, g, t, _, _), line in zip(rows, table[1:]))


def test_train_step_flops_counts_the_active_matmuls():
    config = bench._config("quick")
    h, inter, layers, experts, heads, kv_heads, vocab, batch, seq = bench.SIZES["quick"]
    kv = kv_heads * h // heads
    params = layers * (2 * h * h + 2 * h * kv + 2 * 3 * h * inter + h * experts) + h * vocab
    tokens = batch * seq
    expected = 3 * (2 * params * tokens + layers * 4 * seq * h * tokens)
    assert bench.train_step_flops(config, batch, seq) == expected


def test_train_rows_cover_both_sizes_of_the_goal():
    """Full mode times h256/8 experts/4x128 tokens and h512/16 experts/4x256; quick stays small."""
    assert bench.TRAIN_SIZES == {"full": ("full", "large"), "quick": ("quick",)}
    h, inter, layers, experts, _, _, _, batch, seq = bench.SIZES["full"]
    assert (h, layers, experts, batch, seq) == (256, 4, 8, 4, 128)
    h, inter, layers, experts, _, _, _, batch, seq = bench.SIZES["large"]
    assert (h, inter, layers, experts, batch, seq) == (512, 1024, 4, 16, 4, 256)


def test_quick_train_row_names_its_model_and_share_of_the_matmul_rate(monkeypatch):
    monkeypatch.setattr(bench, "matmul_rate", lambda: 100.0)
    rows, notes = bench.bench_train("quick", None, None, 1)
    assert [r[0] for r in rows] == ["train step: Mixtral 2L h128 i256 4e top-2, 2x64 tok, AdamW"]
    assert rows[0][1] > 0 and rows[0][2] is None
    assert len(notes) == 1 and notes[0].startswith("h128: ")
    assert "matmul rate 100 GFLOP/s" in notes[0]


@pytest.mark.parametrize("argv, message", [
    (["bench", "--only", "ops,warp"], "unknown benchmark(s) warp"),
    (["bench", "--repeat", "0"], "argument --repeat: expected a finite integer >= 1, got 0"),
    (["bench", "--threads", "x"], "argument --threads: expected an integer, got 'x'"),
    (["bench", "--model", "no/such/dir"], "'no/such/dir' is not a checkpoint directory"),
    (["bench", "--only", "ops", "--model", "."], None),
])
def test_bad_bench_arguments_give_one_line_error(argv, message, tmp_path):
    if message is None:  # a real checkpoint directory, but no decode benchmark selected
        (tmp_path / "config.json").write_text("{}")
        argv = argv[:-1] + [str(tmp_path)]
        message = "--model is used by the decode benchmark only; add decode to --only"
    proc = subprocess.run([sys.executable, "-m", "genesis", *argv], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bench_command_runs_a_subset(capsys):
    assert main(["bench", "--quick", "--repeat", "1", "--only", "large"]) == 0
    out = capsys.readouterr().out
    assert "512x512 fwd+bwd: softmax" in out and "load average" in out


def test_moe_vs_dense_sweep_prints_break_even_and_plots(tmp_path, capsys):
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "moe_vs_dense.py")
    spec = importlib.util.spec_from_file_location("moe_vs_dense", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    png = tmp_path / "moe.png"
    rows = script.main(["--hidden", "16", "--expert-intermediate", "8", "--experts", "4,8",
                        "--tokens", "8", "--repeat", "1", "--plot", str(png)])
    assert [(r[1], r[2]) for r in rows] == [(4, "infer"), (4, "train"), (8, "infer"),
                                            (8, "train")]
    assert all(r[7] == 2 / r[1] and abs(r[8] - r[6] / r[3]) < 1e-12 for r in rows)
    out = capsys.readouterr().out
    assert "8 tokens, train: measured from" in out
    assert png.stat().st_size > 0


def _tiny(model_type, **extra):
    import genesis
    from genesis.models.transformers import MoEConfig, MoEForCausalLM
    genesis.manual_seed(0)
    return MoEForCausalLM(MoEConfig(model_type=model_type, vocab_size=50, hidden_size=16,
                                    intermediate_size=24, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2,
                                    max_position_embeddings=300, **extra))


@pytest.mark.parametrize("model_type, extra", [
    ("llama", {"tie_word_embeddings": True, "num_local_experts": 0}),
    ("llama", {"tie_word_embeddings": False, "num_local_experts": 0}),
    ("mixtral", {"num_local_experts": 4, "num_experts_per_tok": 2})])
def test_decode_bytes_per_token_counts_what_one_step_reads(model_type, extra):
    model = _tiny(model_type, **extra)
    embedding = model.model.embed_tokens.weight
    experts = [p for m in model.modules() if type(m).__name__ == "MoEExperts"
               for p in m.parameters()]
    unique = {id(p): p for p in model.parameters()}.values()
    full = sum(p.numel() * 4 for p in unique)
    expected = full - sum(p.numel() * 4 for p in experts) / 2
    if not extra.get("tie_word_embeddings", False):
        expected -= embedding.numel() * 4 - embedding.shape[1] * 4
    assert bench.decode_bytes_per_token(model) == pytest.approx(expected)


def test_decode_rows_use_the_given_checkpoint(tmp_path):
    _tiny("llama", tie_word_embeddings=True, num_local_experts=0).save_pretrained(tmp_path)
    torch, transformers = bench._torch()
    rows, notes = bench.bench_decode("quick", torch, transformers, 1, str(tmp_path),
                                     new_tokens=4, prompt=3, prefill=20)
    assert [r[0] for r in rows] == [
        f"greedy decoding, KV cache: ms/token{' (same tokens)' if torch else ''}",
        f"prefill, 20-token prompt: time to first token{' (same tokens)' if torch else ''}"]
    assert [r[4] for r in rows] == [0.5, 0.8] and all(r[1] > 0 for r in rows)
    assert notes[-1].startswith(f"decoding {tmp_path.name} (4 tokens after 3): genesis ")
    assert "of the bandwidth bound" in notes[-1]
