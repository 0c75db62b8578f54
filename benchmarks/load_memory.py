"""Peak resident memory (RSS) of loading a ~135M-parameter Llama (SmolLM2-135M's shape) from
safetensors with ``from_pretrained``, each measurement in a fresh process, against the bytes
of the loaded model; transformers' own load measured the same way where it is installed.

    python benchmarks/load_memory.py [--dir /tmp/load-memory]

The checkpoints (random weights, float32 and bfloat16 files) are written once into ``--dir``.
"""
import argparse
import json
import os
import subprocess
import sys

CONFIG = dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
              num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
              max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
              tie_word_embeddings=True)

CHILD = r"""
import json, os, sys
def status(field):  # VmRSS now, VmHWM its peak (per process, unlike ru_maxrss which a child
    with open("/proc/self/status") as f:  # inherits from its parent)
        line = next(l for l in f if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024
def rss():
    return status("VmRSS")
kind, path, dtype = sys.argv[1:4]
if kind == "genesis":
    import genesis
    from genesis.models.transformers import MoEForCausalLM
    base = rss()
    model = MoEForCausalLM.from_pretrained(path, dtype=getattr(genesis, dtype))
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
else:
    import torch, transformers
    base = rss()
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
peak = status("VmHWM")
print(json.dumps({"base": base, "peak": peak, "after": rss(), "model": nbytes}))
"""


def _write_checkpoints(directory):
    import genesis
    from genesis.models.transformers import MoEConfig, MoEForCausalLM
    paths = {}
    for dtype in ("float32", "bfloat16"):
        path = os.path.join(directory, dtype)
        paths[dtype] = path
        if os.path.isfile(os.path.join(path, "model.safetensors")):
            continue
        genesis.manual_seed(0)
        model = MoEForCausalLM(MoEConfig.from_dict(CONFIG), check_memory=False)
        model.to(getattr(genesis, dtype)).save_pretrained(path)
        del model
    return paths


def _measure(kind, path, dtype):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", CHILD, kind, path, dtype], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    """Write the checkpoints if needed, then measure each (library, file, dtype) load."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/genesis-load-memory")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    paths = _write_checkpoints(args.dir)
    try:
        import transformers  # noqa: F401
        kinds = ("genesis", "transformers")
    except ImportError:
        kinds = ("genesis",)
    mib = 2 ** -20
    print(f"SmolLM2-135M shape, random weights; RSS in MiB (peak minus RSS after imports)")
    print(f"{'loader':14s}{'file':10s}{'into':10s}{'model':>9s}{'file size':>11s}"
          f"{'peak-base':>11s}{'overhead':>10s}{'ratio':>7s}")
    for file_dtype, path in paths.items():
        size = os.path.getsize(os.path.join(path, "model.safetensors"))
        for kind in kinds:
            for dtype in ("float32", "bfloat16"):
                r = _measure(kind, path, dtype)
                grown = r["peak"] - r["base"]
                print(f"{kind:14s}{file_dtype:10s}{dtype:10s}{r['model'] * mib:9.1f}"
                      f"{size * mib:11.1f}{grown * mib:11.1f}"
                      f"{(grown - r['model']) * mib:10.1f}{grown / r['model']:7.2f}")


if __name__ == "__main__":
    main()
