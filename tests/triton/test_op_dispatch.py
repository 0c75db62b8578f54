"""The ops' Triton branches (what CUDA tensors take) against their composite branches.

The dispatch is forced on for NumPy arrays so the kernels run in Triton's interpreter: this
checks each op's wiring (saved arrays, reshapes, gradients returned) on the CPU. The same
comparison on CUDA tensors is tests/test_fused_ops_cuda.py.
"""
import numpy as np
import pytest

from genesis.backends import triton as triton_backend
from tests.triton.conftest import ON_GPU
from tests.triton.fused_cases import CASES, DTYPES, adamw_run, run

pytestmark = pytest.mark.skipif(ON_GPU, reason="interpreter-only; on a GPU see "
                                "tests/test_fused_ops_cuda.py")


def _force_kernels(monkeypatch):
    """Turn the Triton branches on for NumPy arrays; returns the kernel families used."""
    used, load = [], triton_backend.kernels

    def kernels(family):
        used.append(family)
        return load(family)

    monkeypatch.setattr(triton_backend, "enabled",
                        lambda xp, *a: triton_backend.kernel_dtypes(a))
    monkeypatch.setattr(triton_backend, "kernels", kernels)
    return used


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_triton_branch_matches_composite(monkeypatch, case, dtype, tol):
    composite = run(case, dtype)
    used = _force_kernels(monkeypatch)
    fused = run(case, dtype)
    assert used, f"{case} did not take its Triton branch"
    for got, want in zip(fused, composite):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 8)


def test_adamw_triton_branch_matches_composite(monkeypatch):
    composite = adamw_run()
    used = _force_kernels(monkeypatch)
    np.testing.assert_allclose(adamw_run(), composite, rtol=1e-6, atol=1e-6)
    assert used == ["adamw"] * 3
