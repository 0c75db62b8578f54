"""Every registered op on the GPU: forward against NumPy, gradients against the CPU backward.

The CPU backward is itself checked against float64 finite differences (test_ops.py), so equal
analytic gradients on both devices carry that check over to CUDA. Skipped without a GPU.
"""
import numpy as np
import pytest

import genesis
from tests.opinfo import flat_outputs, float_outputs, grad_positions, to_genesis, weighted_sum
from tests.test_ops import CASES, GRAD_CASES, IDS

GRAD_IDS = [f"{c[0].name}-{c[1]}-{c[2].name}" for c in GRAD_CASES]
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not genesis.cuda.is_available(),
                                 reason="needs an NVIDIA GPU with CuPy")]


def check_forward(info, sample):
    """The op on CUDA tensors: outputs stay on the GPU and match the NumPy reference."""
    out = info.op(*to_genesis(sample.args, device="cuda"), **sample.kwargs)
    for t in float_outputs(out):
        assert t.device.type == "cuda", f"{info.name}: output left the GPU"
    got = flat_outputs(out)
    want = flat_outputs(info.ref(*[a.copy() if isinstance(a, np.ndarray) else a
                                   for a in sample.args], **sample.kwargs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == np.shape(w)
        np.testing.assert_allclose(g, w, atol=info.atol, rtol=info.rtol)


def _analytic_grads(info, sample, device):
    positions = grad_positions(info, sample)
    args = to_genesis(sample.args, True, positions, device=device)
    outs = float_outputs(info.op(*args, **sample.kwargs))
    rng = np.random.default_rng(1234)
    weighted_sum(outs, [rng.standard_normal(o.shape) for o in outs]).backward()
    return [None if args[p].grad is None else args[p].grad.cpu().numpy() for p in positions]


def check_gradients(info, sample):
    """Analytic gradients on CUDA equal those on the CPU."""
    cpu = _analytic_grads(info, sample, None)
    gpu = _analytic_grads(info, sample, "cuda")
    for c, g in zip(cpu, gpu):
        assert (c is None) == (g is None)
        if c is not None:
            np.testing.assert_allclose(g, c, atol=info.grad_atol, rtol=info.grad_rtol)


@pytest.mark.parametrize("info,idx,sample", CASES, ids=IDS)
def test_forward_matches_numpy_on_cuda(info, idx, sample):
    if info.ref is None:
        pytest.skip(f"{info.name} has no NumPy reference (PyTorch parity only)")
    check_forward(info, sample)


@pytest.mark.parametrize("info,idx,sample", GRAD_CASES, ids=GRAD_IDS)
def test_gradients_match_cpu_on_cuda(info, idx, sample):
    check_gradients(info, sample)
