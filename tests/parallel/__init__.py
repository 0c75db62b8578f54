"""Programs the distributed tests start under mpiexec, and the helper that launches them."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_mpi(nprocs, module, *args, timeout=240):
    """Run ``python -m module args`` on ``nprocs`` MPI ranks; fail with their output unless all
    exit 0. Returns the combined stdout."""
    pytest.importorskip("mpi4py")
    from genesis.distributed.launch import clean_launch_env, mpiexec_command
    env = clean_launch_env()
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = mpiexec_command(nprocs) + [sys.executable, "-m", "mpi4py", "-m", module,
                                      *map(str, args)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}\n--- stdout\n{proc.stdout}"
                    f"\n--- stderr\n{proc.stderr[-6000:]}")
    return proc.stdout
