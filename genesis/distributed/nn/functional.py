"""Differentiable collectives (``torch.distributed.nn.functional``): the backward of an
all-to-all is the all-to-all of the gradients with the split sizes swapped."""
from ...autograd import Function
from ...tensor import Tensor
from .. import collectives
from ..process_group import _group_backend

__all__ = ["all_to_all_single"]


class AllToAllSingle(Function):
    """Rows of the input sent to the ranks by ``send``, received by ``recv``, and back in
    backward (splits already agreed on every rank)."""

    @staticmethod
    def forward(ctx, inp, send, recv, backend):
        ctx.plan = (send, recv, backend)
        out, work = collectives.exchange_rows(backend, inp, send, recv, ctx.xp)
        work.wait()
        return out

    @staticmethod
    def backward(ctx, grad_out):
        send, recv, backend = ctx.plan
        grad, work = collectives.exchange_rows(backend, grad_out, recv, send, ctx.xp)
        work.wait()
        return grad, None, None, None


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                      group=None):
    """Differentiable ``all_to_all_single``: returns the exchanged tensor (also written into
    ``output``'s memory); gradients flow back to ``input`` through the reverse exchange."""
    backend = _group_backend(group, "all_to_all_single")
    send, recv = collectives.plan_all_to_all(backend, output, input, output_split_sizes,
                                             input_split_sizes)
    result = AllToAllSingle.apply(input, send, recv, backend)
    if isinstance(output, Tensor):
        output._array[...] = result._array
        output._version[0] += 1
    return result
