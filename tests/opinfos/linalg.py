"""Linear algebra: matmul broadcasting cases, mm, bmm, dot, outer, einsum."""
import numpy as np

import genesis
from tests.opinfo import OpInfo, Sample
from tests.opinfos._samples import noncontig, randn

try:
    import torch
except ImportError:
    torch = None


def _t(name):
    """torch.<name> when torch is installed."""
    return getattr(torch, name) if torch is not None else None


def _matmul_samples(rng):
    return [
        Sample(randn(rng, 4), randn(rng, 4), name="dot_1d"),
        Sample(randn(rng, 3), randn(rng, 3, 5), name="vec_mat"),
        Sample(randn(rng, 3, 4), randn(rng, 4), name="mat_vec"),
        Sample(randn(rng, 3, 4), randn(rng, 4, 2), name="mat_mat"),
        Sample(randn(rng, 2, 3, 4), randn(rng, 4, 2), name="batch_mat"),
        Sample(randn(rng, 3, 4), randn(rng, 2, 4, 2), name="mat_batch"),
        Sample(randn(rng, 2, 1, 2, 3), randn(rng, 3, 3, 2), name="bcast_batch"),
        Sample(randn(rng, 4), randn(rng, 2, 4, 3), name="vec_batch"),
        Sample(randn(rng, 2, 3, 4), randn(rng, 4), name="batch_vec"),
        Sample(noncontig(rng, 3, 4), noncontig(rng, 4, 2), name="noncontig"),
        Sample(randn(rng, 2, 4, 3).swapaxes(-1, -2), randn(rng, 2, 5, 4).swapaxes(-1, -2),
               name="batch_transposed"),
        Sample(noncontig(rng, 2, 3, 4), randn(rng, 2, 4, 6)[..., ::2], name="batch_strided"),
        Sample(randn(rng, 0, 3), randn(rng, 3, 2), name="empty_rows"),
        Sample(randn(rng, 2, 0), randn(rng, 0, 3), name="empty_inner"),
    ]


def _einsum_samples(rng):
    return [
        Sample("ij,jk->ik", randn(rng, 2, 3), randn(rng, 3, 4), name="matmul"),
        Sample("bij,bjk->bik", randn(rng, 2, 2, 3), randn(rng, 2, 3, 2), name="bmm"),
        Sample("i,i->", randn(rng, 5), randn(rng, 5), name="dot"),
        Sample("i,j->ij", randn(rng, 3), randn(rng, 4), name="outer"),
        Sample("ij->ji", randn(rng, 3, 4), name="transpose"),
        Sample("ij->", randn(rng, 3, 4), name="sum_all"),
        Sample("ij->i", randn(rng, 3, 4), name="row_sum"),
        Sample("ii->i", randn(rng, 4, 4), name="diagonal"),
        Sample("ii", randn(rng, 4, 4), name="trace_implicit"),
        Sample("iij->ij", randn(rng, 3, 3, 2), name="partial_diagonal"),
        Sample("ba", randn(rng, 2, 3), name="implicit_order"),
        Sample("...ij,...jk->...ik", randn(rng, 2, 1, 2, 3), randn(rng, 3, 3, 2),
               name="ellipsis_bcast"),
        Sample("b...,b->...", randn(rng, 2, 3, 2), randn(rng, 2), name="ellipsis_middle"),
        Sample("...ij,jk", randn(rng, 2, 2, 3), randn(rng, 3, 2), name="ellipsis_implicit"),
        Sample("bij,bjk->bik", randn(rng, 2, 2, 3), randn(rng, 1, 3, 2), name="size1_bcast"),
        Sample("ij,jk,kl->il", randn(rng, 2, 3), randn(rng, 3, 2), randn(rng, 2, 2),
               name="three_operands"),
        Sample("bhld,bhsd->bhls", randn(rng, 1, 2, 3, 2), randn(rng, 1, 2, 2, 2),
               name="attention_scores"),
        Sample("ij,ij->ij", noncontig(rng, 3, 4), randn(rng, 3, 4), name="noncontig_hadamard"),
        Sample("ij,jk->ik", randn(rng, 0, 3), randn(rng, 3, 2), name="empty"),
    ]


OPS = [
    OpInfo("matmul", genesis.matmul, np.matmul, _matmul_samples, _t("matmul")),
    OpInfo("matmul_operator", lambda a, b: a @ b, lambda a, b: a @ b,
           lambda rng: [Sample(randn(rng, 2, 3, 4), randn(rng, 4, 2))],
           (lambda a, b: a @ b) if torch else None),
    OpInfo("mm", genesis.mm, np.matmul,
           lambda rng: [Sample(randn(rng, 3, 4), randn(rng, 4, 5)),
                        Sample(noncontig(rng, 2, 3), randn(rng, 3, 2), name="noncontig"),
                        Sample(randn(rng, 0, 2), randn(rng, 2, 3), name="empty")],
           _t("mm")),
    OpInfo("bmm", genesis.bmm, np.matmul,
           lambda rng: [Sample(randn(rng, 2, 3, 4), randn(rng, 2, 4, 2)),
                        Sample(randn(rng, 1, 1, 3), randn(rng, 1, 3, 1), name="ones"),
                        Sample(randn(rng, 0, 2, 3), randn(rng, 0, 3, 2), name="empty")],
           _t("bmm")),
    OpInfo("dot", genesis.dot, np.dot,
           lambda rng: [Sample(randn(rng, 5), randn(rng, 5)),
                        Sample(randn(rng, 0), randn(rng, 0), name="empty")],
           _t("dot")),
    OpInfo("outer", genesis.outer, np.outer,
           lambda rng: [Sample(randn(rng, 3), randn(rng, 4)),
                        Sample(randn(rng, 1), randn(rng, 5), name="single"),
                        Sample(randn(rng, 0), randn(rng, 2), name="empty")],
           _t("outer")),
    OpInfo("einsum", genesis.einsum, lambda eq, *ops: np.einsum(eq, *ops), _einsum_samples,
           _t("einsum")),
    OpInfo("einsum_list_operands", lambda eq, a, b: genesis.einsum(eq, [a, b]),
           lambda eq, a, b: np.einsum(eq, a, b),
           lambda rng: [Sample("ij,jk->ik", randn(rng, 2, 3), randn(rng, 3, 2))],
           (lambda eq, a, b: torch.einsum(eq, [a, b])) if torch else None),
    OpInfo("einsum_sublist", lambda a, b: genesis.einsum(a, [0, 1], b, [1, 2], [0, 2]),
           lambda a, b: a @ b,
           lambda rng: [Sample(randn(rng, 2, 3), randn(rng, 3, 4))],
           (lambda a, b: torch.einsum(a, [0, 1], b, [1, 2], [0, 2])) if torch else None),
]
