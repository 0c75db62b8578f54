"""The same broadcasting mistake raises the same error everywhere: RuntimeError (as PyTorch),
naming the op and the shapes, with one shared explanation."""
import pytest

import genesis
import genesis.nn.functional as F

RULE = r"\(sizes must match or be 1, aligned from the right\)"


def _grad(*shape):
    return genesis.randn(*shape, requires_grad=True)


@pytest.mark.parametrize("call,pattern", [
    (lambda: genesis.randn(2, 3) * genesis.randn(4, 5),
     r"Mul: the shapes \(2, 3\) and \(4, 5\) cannot be broadcast together"),
    (lambda: F.silu_and_mul(genesis.randn(2, 3), genesis.randn(2, 4)),
     r"silu_and_mul: the shapes \(2, 3\) and \(2, 4\) cannot be broadcast together"),
    (lambda: F.mse_loss(genesis.randn(2, 3), genesis.randn(4)),
     r"mse_loss: input of shape \(2, 3\) and target of shape \(4,\) cannot be broadcast"),
    (lambda: F.binary_cross_entropy_with_logits(genesis.randn(2, 3), genesis.rand(2, 3),
                                                weight=genesis.rand(2, 2)),
     r"weight of shape \(2, 2\) cannot be broadcast to the input of shape \(2, 3\)"),
    (lambda: genesis.matmul(genesis.randn(2, 2, 3), genesis.randn(3, 3, 2)),
     r"matmul: batch dimensions of shapes \(2, 2, 3\) and \(3, 3, 2\) cannot be broadcast"),
    (lambda: F.scaled_dot_product_attention(genesis.randn(1, 2, 4, 8), genesis.randn(1, 2, 5, 8),
                                            genesis.randn(1, 2, 5, 8),
                                            attn_mask=genesis.randn(4, 4)),
     r"attn_mask of shape \(4, 4\) cannot be broadcast to the attention scores of shape"),
    (lambda: genesis.take_along_dim(genesis.randn(2, 3), genesis.zeros(3, 1, dtype=genesis.int64),
                                    dim=1),
     r"take_along_dim: input of shape \(2, 3\) and indices of shape \(3, 1\) apart from"),
    (lambda: genesis.zeros(3).__setitem__(slice(None), genesis.ones(2)),
     r"setitem: shape mismatch: value tensor of shape \(2,\) cannot be broadcast to indexing "
     r"result of shape \(3,\)"),
    (lambda: (_grad(3) * 1).__setitem__(slice(None), _grad(2)),
     r"shape mismatch: value tensor of shape \(2,\) cannot be broadcast"),
    (lambda: genesis.zeros(3).copy_(genesis.ones(2, 3)),
     r"copy_: source of shape \(2, 3\) cannot be broadcast to the destination of shape \(3,\)"),
], ids=["elementwise", "silu_and_mul", "loss", "loss-weight", "matmul", "sdpa-mask",
        "take_along_dim", "setitem", "setitem-grad", "copy_"])
def test_broadcast_mistakes_raise_runtime_error_with_one_message(call, pattern):
    with pytest.raises(RuntimeError, match=pattern) as info:
        call()
    assert "sizes must match or be 1, aligned from the right" in str(info.value)


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_torch_raises_runtime_error_for_the_same_mistakes():
    torch = pytest.importorskip("torch")
    for call in (lambda: torch.randn(2, 3) * torch.randn(4, 5),
                 lambda: torch.nn.functional.mse_loss(torch.randn(2, 3), torch.randn(4)),
                 lambda: torch.zeros(3).copy_(torch.ones(2, 3)),
                 lambda: torch.zeros(3).__setitem__(slice(None), torch.ones(2))):
        with pytest.raises(RuntimeError):
            call()
