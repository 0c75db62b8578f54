"""`genesis train --dtype bf16` trains under bfloat16 autocast and tracks the fp32 run."""
import json
import os

from genesis.cli import build_parser, main

from .test_cli import TEXT, TINY


def _losses(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line)["loss"] for line in f if '"loss"' in line]


def test_train_bf16_tracks_fp32(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    runs = {}
    for dtype in ("fp32", "bf16"):
        out = tmp_path / dtype
        argv = ["train", "--config", str(tmp_path / "tiny.json"), "--data",
                str(tmp_path / "corpus.txt"), "--steps", "6", "--batch-size", "4", "--seq-len",
                "16", "--eval-every", "0", "--save-every", "0", "--eval-windows", "2", "--out",
                str(out), "--sample-tokens", "4", "--quiet", "--dtype", dtype]
        assert main(argv) == 0
        runs[dtype] = _losses(out)
    assert len(runs["bf16"]) == 6
    assert runs["bf16"] != runs["fp32"]  # bf16 matmuls round differently...
    assert max(abs(a - b) for a, b in zip(runs["bf16"], runs["fp32"])) < 0.05  # ...but track


def test_dtype_flag_defaults_to_fp32():
    assert build_parser().parse_args(["train"]).dtype == "fp32"
