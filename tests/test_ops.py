"""Every registered op: NumPy reference check of the forward, float64 gradcheck of the backward."""
import numpy as np
import pytest

from tests.opinfo import all_opinfos, flat_outputs, gradcheck, to_genesis

CASES = [(info, i, s) for info in all_opinfos()
         for i, s in enumerate(info.samples(np.random.default_rng(0)))]
IDS = [f"{info.name}-{i}-{s.name}" for info, i, s in CASES]


@pytest.mark.parametrize("info,idx,sample", CASES, ids=IDS)
def test_forward_matches_numpy(info, idx, sample):
    if info.ref is None:
        return
    got = flat_outputs(info.op(*to_genesis(sample.args), **sample.kwargs))
    want = flat_outputs(info.ref(*[a.copy() if isinstance(a, np.ndarray) else a
                                   for a in sample.args], **sample.kwargs))
    assert len(got) == len(want), f"{info.name}: {len(got)} outputs, reference has {len(want)}"
    for g, w in zip(got, want):
        assert g.shape == np.shape(w), f"{info.name}: shape {g.shape} != reference {np.shape(w)}"
        np.testing.assert_allclose(g, w, atol=info.atol, rtol=info.rtol)


GRAD_CASES = [c for c in CASES if c[0].grad and c[0].gradcheck]


@pytest.mark.parametrize("info,idx,sample", GRAD_CASES,
                         ids=[f"{c[0].name}-{c[1]}-{c[2].name}" for c in GRAD_CASES])
def test_gradcheck_float64(info, idx, sample):
    pairs = gradcheck(info, sample)
    assert pairs, f"{info.name}: sample has no differentiable input"
    for pos, analytic, numeric in pairs:
        np.testing.assert_allclose(analytic, numeric, atol=info.grad_atol, rtol=info.grad_rtol,
                                   err_msg=f"{info.name}: gradient of argument {pos}")


def test_stacked_matmul_hands_blas_transposed_views_and_copies_other_layouts():
    """Transposed views go to BLAS as they are (a copy costs more than BLAS's transposed
    read); broadcast or strided-column operands, which NumPy would multiply outside BLAS, are
    copied to C order."""
    from genesis.ops.linalg import _blas_layout
    x = np.ones((2, 3, 5, 4), np.float32)
    for view in (x, x.swapaxes(-1, -2), x[:, 1:]):
        assert _blas_layout(np, view) is view
    for odd in (x[..., ::2], np.broadcast_to(np.ones((1, 4), np.float32), (5, 4)),
                np.broadcast_to(x[:, :, :1], x.shape)):
        fixed = _blas_layout(np, odd)
        assert fixed.flags.c_contiguous and np.array_equal(fixed, odd)
