"""Writing through a view: the differentiable write-back of an in-place op on a view.

A view remembers the chain of view ops that derives it from its base (``_view_replay``). An
in-place op on a view whose graph matters computes the new values of the view out of place,
then ``ViewScatter`` makes the new base: the old base with the view's elements replaced
(PyTorch's CopySlices). Gradients flow to the new values inside the view and to the old base
elsewhere.
"""
from ..autograd import Function, FunctionCtx


def view_of(xp, arr, replay):
    """The view of ``arr`` that ``replay`` (a chain of view ops) addresses."""
    ctx = FunctionCtx()
    ctx.xp = xp
    for step in replay:
        cls, rest, kwargs = step[:3]
        arr = cls.forward(ctx, arr, *rest, **kwargs)
        if len(step) == 4:
            arr = arr[step[3]]
    return arr


class ViewScatter(Function):
    """``base`` with the elements that ``replay`` addresses replaced by ``values``."""

    @staticmethod
    def forward(ctx, base, values, replay):
        ctx.replay = replay
        out = base.copy()
        view_of(ctx.xp, out, replay)[...] = values
        return out

    @staticmethod
    def backward(ctx, g):
        g_base = g.copy()
        region = view_of(ctx.xp, g_base, ctx.replay)
        g_values = region.copy()
        region[...] = 0
        return g_base, g_values, None
