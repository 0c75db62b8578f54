"""Post-accumulate-grad hooks and end-of-backward callbacks (what DDP builds on)."""
import pytest

import genesis
from genesis.autograd import queue_callback


def test_post_accumulate_grad_hook_sees_accumulated_grad():
    w = genesis.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.tolist()))
    (w * 3).sum().backward()
    (w * 2).sum().backward()
    assert seen == [[3.0, 3.0], [5.0, 5.0]]
    handle.remove()
    (w * 1).sum().backward()
    assert len(seen) == 2


def test_post_accumulate_grad_hook_rejects_non_leaf():
    w = genesis.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(lambda p: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        genesis.tensor([1.0]).register_post_accumulate_grad_hook(lambda p: None)


def test_queued_callback_runs_once_after_all_leaves():
    a = genesis.tensor([1.0], requires_grad=True)
    b = genesis.tensor([2.0], requires_grad=True)
    events = []

    def hook(p):
        events.append(("leaf", p.grad.item()))
        if len(events) == 1:
            queue_callback(lambda: events.append(("end", a.grad.item(), b.grad.item())))
    a.register_post_accumulate_grad_hook(hook)
    b.register_post_accumulate_grad_hook(hook)
    (a * b).sum().backward()
    assert sorted(events[:2]) == [("leaf", 1.0), ("leaf", 2.0)]
    assert events[2] == ("end", 2.0, 1.0) and len(events) == 3


def test_queue_callback_outside_backward_raises():
    with pytest.raises(RuntimeError, match="no backward pass is running"):
        queue_callback(lambda: None)
