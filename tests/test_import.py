"""`import genesis` must stay light: no torch, cupy or triton on the CPU path."""
import subprocess
import sys


def test_import_genesis_loads_no_heavy_backends():
    code = ("import sys, genesis, genesis.nn, genesis.optim, genesis.models.transformers; "
            "print(','.join(m for m in ('torch', 'cupy', 'triton', 'transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import genesis pulled in: {out.stdout.strip()}"
