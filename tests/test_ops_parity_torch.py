"""Parity with PyTorch (float64): forward values and gradients of every op that torch has."""
import numpy as np
import pytest

from tests.opinfo import all_opinfos, flat_outputs, float_outputs, grad_positions, to_genesis, \
    weighted_sum

torch = pytest.importorskip("torch")

CASES = [(info, i, s) for info in all_opinfos() if info.torch_op is not None
         for i, s in enumerate(info.samples(np.random.default_rng(0)))]


def _to_torch(args, positions):
    out = []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            t = torch.from_numpy(a.copy())
            if i in positions:
                t.requires_grad_(True)
            out.append(t)
        elif isinstance(a, (list, tuple)) and a and all(isinstance(x, np.ndarray) for x in a):
            out.append(type(a)(torch.from_numpy(x.copy()).requires_grad_(x.dtype.kind == "f"
                                                                          and bool(positions))
                               for x in a))
        else:
            out.append(a)
    return out


def _torch_float_outputs(out):
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _torch_float_outputs(o)]
    return []


@pytest.mark.parametrize("info,idx,sample", CASES,
                         ids=[f"{c[0].name}-{c[1]}-{c[2].name}" for c in CASES])
def test_parity_with_torch(info, idx, sample):
    positions = grad_positions(info, sample) if info.grad else []
    g_args = to_genesis(sample.args, bool(positions), positions)
    t_args = _to_torch(sample.args, positions)
    g_out = info.op(*g_args, **sample.kwargs)
    t_out = info.torch_op(*t_args, **sample.kwargs)
    got, want = flat_outputs(g_out), flat_outputs(t_out)
    assert len(got) == len(want), f"{info.name}: {len(got)} outputs, torch has {len(want)}"
    for g, w in zip(got, want):
        assert g.shape == w.shape, f"{info.name}: shape {g.shape} != torch {w.shape}"
        np.testing.assert_allclose(g, w, atol=max(info.atol, 1e-10), rtol=max(info.rtol, 1e-9))
    if not positions:
        return
    rng = np.random.default_rng(99)
    g_outs = float_outputs(g_out)
    weights = [rng.standard_normal(o.shape) for o in g_outs]
    weighted_sum(g_outs, weights).backward()
    t_outs = _torch_float_outputs(t_out)
    sum((o * torch.from_numpy(w).to(o.dtype)).sum() for o, w in zip(t_outs, weights)).backward()
    for p in positions:
        tg = t_args[p].grad
        gg = g_args[p].grad
        tg = np.zeros(sample.args[p].shape) if tg is None else tg.numpy()
        gg = np.zeros(sample.args[p].shape) if gg is None else gg.numpy()
        np.testing.assert_allclose(gg, tg, atol=1e-9, rtol=1e-7,
                                   err_msg=f"{info.name}: gradient of argument {p}")
