"""Layers, losses and nn utilities without torch: outputs and gradients worked out by hand."""
import math

import numpy as np
import pytest

import genesis
from genesis import nn
from genesis.nn import functional as F


def _set(param, values):
    with genesis.no_grad():
        param.copy_(genesis.tensor(values))


def test_linear_forward_and_grads():
    lin = nn.Linear(2, 2)
    _set(lin.weight, [[1.0, 2.0], [3.0, 4.0]])
    _set(lin.bias, [0.5, -0.5])
    x = genesis.tensor([[1.0, -1.0]], requires_grad=True)
    y = lin(x)
    assert y.tolist() == [[-0.5, -1.5]]             # [1-2+0.5, 3-4-0.5]
    y.sum().backward()
    assert lin.weight.grad.tolist() == [[1.0, -1.0], [1.0, -1.0]]
    assert lin.bias.grad.tolist() == [1.0, 1.0]
    assert x.grad.tolist() == [[4.0, 6.0]]
    assert nn.Linear(3, 2, bias=False).bias is None


def test_embedding_lookup_and_padding_gradient():
    emb = nn.Embedding(4, 2, padding_idx=0)
    assert emb.weight[0].tolist() == [0.0, 0.0]
    _set(emb.weight, [[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    ids = genesis.tensor([[1, 0, 1], [3, 3, 0]])
    out = emb(ids)
    assert out.tolist() == [[[1, 2], [0, 0], [1, 2]], [[5, 6], [5, 6], [0, 0]]]
    out.sum().backward()
    assert emb.weight.grad.tolist() == [[0, 0], [2, 2], [0, 0], [2, 2]]


def test_layer_norm_and_rms_norm_by_hand():
    x = genesis.tensor([[1.0, 2.0, 3.0]])
    ln = nn.LayerNorm(3, eps=0.0)
    want = [(v - 2.0) / math.sqrt(2.0 / 3.0) for v in (1.0, 2.0, 3.0)]
    np.testing.assert_allclose(ln(x).detach().numpy()[0], want, rtol=1e-6)
    _set(ln.weight, [2.0, 2.0, 2.0])
    _set(ln.bias, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(ln(x).detach().numpy()[0], [2 * w + 1 for w in want], rtol=1e-6)
    rms = nn.RMSNorm(2, eps=0.0)
    np.testing.assert_allclose(rms(genesis.tensor([3.0, 4.0])).detach().numpy(),
                               [3 / math.sqrt(12.5), 4 / math.sqrt(12.5)], rtol=1e-6)


@pytest.mark.parametrize("module,x,want", [
    (nn.ReLU(), [-1.0, 0.5], [0.0, 0.5]),
    (nn.SiLU(), [1.0, -2.0], [1 / (1 + math.exp(-1)), -2 / (1 + math.exp(2))]),
    (nn.GELU(), [1.0, -1.0], [0.5 * (1 + math.erf(1 / math.sqrt(2))),
                              -0.5 * (1 + math.erf(-1 / math.sqrt(2)))]),
    (nn.GELU(approximate="tanh"), [1.0], [0.5 * (1 + math.tanh(math.sqrt(2 / math.pi)
                                                              * (1 + 0.044715)))]),
    (nn.Tanh(), [0.5], [math.tanh(0.5)]),
    (nn.Sigmoid(), [0.0, 2.0], [0.5, 1 / (1 + math.exp(-2))]),
    (nn.Softmax(dim=-1), [0.0, math.log(3.0)], [0.25, 0.75]),
    (nn.LogSoftmax(dim=-1), [0.0, math.log(3.0)], [math.log(0.25), math.log(0.75)]),
])
def test_activations_by_hand(module, x, want):
    np.testing.assert_allclose(module(genesis.tensor(x)).numpy(), want, rtol=1e-6)


def test_cross_entropy_by_hand():
    logits = genesis.tensor([[0.0, 0.0], [0.0, math.log(3.0)]], requires_grad=True)
    target = genesis.tensor([0, 1])
    loss = nn.CrossEntropyLoss()(logits, target)
    np.testing.assert_allclose(loss.item(), (math.log(2) + math.log(4 / 3)) / 2, rtol=1e-6)
    loss.backward()
    # d/dlogits = (softmax - onehot) / batch
    np.testing.assert_allclose(logits.grad.numpy(), [[-0.25, 0.25], [0.125, -0.125]], rtol=1e-6)
    ignored = nn.CrossEntropyLoss(ignore_index=-100)(logits, genesis.tensor([0, -100]))
    np.testing.assert_allclose(ignored.item(), math.log(2), rtol=1e-6)
    summed = nn.CrossEntropyLoss(reduction="sum")(logits, target)
    np.testing.assert_allclose(summed.item(), math.log(2) + math.log(4 / 3), rtol=1e-6)
    smooth = nn.CrossEntropyLoss(label_smoothing=0.2)(logits[:1], target[:1])
    np.testing.assert_allclose(smooth.item(), math.log(2), rtol=1e-6)  # uniform logits


def test_mse_loss_by_hand():
    pred = genesis.tensor([1.0, 2.0], requires_grad=True)
    target = genesis.tensor([0.0, 0.0])
    loss = nn.MSELoss()(pred, target)
    assert loss.item() == 2.5
    loss.backward()
    assert pred.grad.tolist() == [1.0, 2.0]
    assert nn.MSELoss(reduction="sum")(pred, target).item() == 5.0
    assert nn.MSELoss(reduction="none")(pred, target).tolist() == [1.0, 4.0]


def test_dropout_modes():
    x = genesis.ones(1000)
    d = nn.Dropout(0.5)
    genesis.manual_seed(0)
    y = d(x).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 400 < (y == 0).sum() < 600
    d.eval()
    assert d(x).tolist() == x.tolist()
    assert nn.Dropout(0.0)(x).tolist() == x.tolist()


def test_clip_grad_norm_and_value_by_hand():
    a, b = nn.Parameter(genesis.zeros(1)), nn.Parameter(genesis.zeros(1))
    a.grad, b.grad = genesis.tensor([3.0]), genesis.tensor([4.0])
    total = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    np.testing.assert_allclose(total.item(), 5.0, rtol=1e-6)
    np.testing.assert_allclose([a.grad.item(), b.grad.item()], [0.6, 0.8], rtol=1e-5)
    a.grad, b.grad = genesis.tensor([3.0]), genesis.tensor([-4.0])
    nn.utils.clip_grad_norm_([a, b], max_norm=10.0)
    assert [a.grad.item(), b.grad.item()] == [3.0, -4.0]        # under the limit: untouched
    np.testing.assert_allclose(nn.utils.clip_grad_norm_([a, b], 1.0, norm_type=math.inf).item(),
                               4.0)
    a.grad, b.grad = genesis.tensor([3.0]), genesis.tensor([-4.0])
    nn.utils.clip_grad_value_([a, b], 2.5)
    assert [a.grad.item(), b.grad.item()] == [2.5, -2.5]


def test_parameters_to_vector_round_trip():
    lin = nn.Linear(2, 1)
    _set(lin.weight, [[1.0, 2.0]])
    _set(lin.bias, [3.0])
    vec = nn.utils.parameters_to_vector(lin.parameters())
    assert vec.tolist() == [1.0, 2.0, 3.0]
    nn.utils.vector_to_parameters(genesis.tensor([4.0, 5.0, 6.0]), lin.parameters())
    assert lin.weight.tolist() == [[4.0, 5.0]] and lin.bias.tolist() == [6.0]


def test_init_functions_by_hand():
    w = nn.Parameter(genesis.empty(2, 3))
    nn.init.constant_(w, 0.5)
    assert w.tolist() == [[0.5] * 3] * 2
    nn.init.zeros_(w)
    assert w.tolist() == [[0.0] * 3] * 2
    nn.init.ones_(w)
    assert w.tolist() == [[1.0] * 3] * 2
    big = nn.Parameter(genesis.empty(200, 300))
    genesis.manual_seed(0)
    nn.init.uniform_(big, -0.5, 0.5)
    assert -0.5 <= big.detach().numpy().min() and big.detach().numpy().max() < 0.5
    nn.init.normal_(big, 0.0, 0.02)
    assert abs(big.detach().numpy().std() - 0.02) < 0.001
    nn.init.xavier_uniform_(big)
    bound = math.sqrt(6 / (200 + 300))
    assert np.abs(big.detach().numpy()).max() <= bound
    assert abs(big.detach().numpy().std() - bound / math.sqrt(3)) < 0.002
    assert nn.init.calculate_gain("relu") == math.sqrt(2.0)


def test_functional_in_place_activation():
    x = genesis.tensor([-1.0, 2.0])
    alias = x.view(2)
    F.relu(x, inplace=True)
    assert alias.tolist() == [0.0, 2.0]
