"""On a GPU, the ops that take Triton kernels match their CPU composites (skipped without one)."""
import numpy as np
import pytest

import genesis
from tests.triton.fused_cases import CASES, DTYPES, adamw_run, run

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not genesis.cuda.is_available(),
                                 reason="needs an NVIDIA GPU with CuPy")]


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_op_on_cuda_matches_cpu(case, dtype, tol):
    for got, want in zip(run(case, dtype, "cuda"), run(case, dtype)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 8)


def test_fused_adamw_on_cuda_matches_cpu():
    np.testing.assert_allclose(adamw_run("cuda"), adamw_run(), rtol=1e-6, atol=1e-6)
