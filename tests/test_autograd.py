"""Autograd engine semantics: accumulation, graph freeing, hooks, grad mode, custom Functions."""
import numpy as np
import pytest

import genesis
from genesis.autograd import Function


def _leaf(*values):
    return genesis.tensor(list(values), dtype=genesis.float64, requires_grad=True)


def test_gradients_accumulate_across_backward_calls():
    x = _leaf(1.0, 2.0)
    (x * x).backward(genesis.ones(2, dtype=genesis.float64))
    (x * 3).backward(genesis.ones(2, dtype=genesis.float64))
    np.testing.assert_allclose(x.grad.numpy(), [2 + 3, 4 + 3])


def test_shared_subexpression_sums_both_paths():
    x = _leaf(3.0)
    y = x * x
    z = y * y + y  # dz/dx = (2y + 1) * 2x
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [(2 * 9 + 1) * 6])


def test_second_backward_through_freed_graph_raises():
    x = _leaf(1.0)
    y = (x * 2).exp()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = _leaf(1.0)
    y = (x * 2).exp()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4 * np.exp(2.0)])


def test_non_scalar_backward_needs_gradient():
    x = _leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        genesis.tensor([1.0]).backward()


def test_deep_chain_does_not_hit_recursion_limit():
    x = _leaf(0.5)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


def test_no_grad_context_and_decorator():
    x = _leaf(1.0)
    with genesis.no_grad():
        assert not (x * 2).requires_grad
        with genesis.enable_grad():
            assert (x * 2).requires_grad

    @genesis.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert (x * 2).requires_grad
    with genesis.set_grad_enabled(False):
        assert not genesis.is_grad_enabled()
    assert genesis.is_grad_enabled()


def test_autograd_grad_does_not_touch_dot_grad():
    x = _leaf(2.0)
    y = x * x * x
    (g,) = genesis.autograd.grad(y, x)
    np.testing.assert_allclose(g.numpy(), [12.0])
    assert x.grad is None


def test_autograd_grad_wrt_intermediate_and_unused():
    x = _leaf(2.0)
    h = x * 3
    out = h * h
    (gh,) = genesis.autograd.grad(out, h, retain_graph=True)
    np.testing.assert_allclose(gh.numpy(), [12.0])
    unused = _leaf(1.0)
    with pytest.raises(RuntimeError, match="not used"):
        genesis.autograd.grad(out, [x, unused], retain_graph=True)
    gx, gu = genesis.autograd.grad(out, [x, unused], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.numpy(), [36.0])


def test_leaf_hook_can_rewrite_gradient():
    x = _leaf(1.0, 2.0)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 10)
    (x * 2).backward(genesis.ones(2, dtype=genesis.float64))
    np.testing.assert_allclose(seen[0], [2.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 20.0])


def test_non_leaf_hook_and_retain_grad():
    x = _leaf(1.0, 2.0)
    h = x * 3
    h.retain_grad()
    h.register_hook(lambda g: g * 2)
    (h * h).backward(genesis.ones(2, dtype=genesis.float64))
    np.testing.assert_allclose(h.grad.numpy(), [12.0, 24.0])
    np.testing.assert_allclose(x.grad.numpy(), [36.0, 72.0])


def test_inplace_on_saved_tensor_raises_instead_of_wrong_gradient():
    x = _leaf(1.0, 2.0)
    y = x * 1.0
    z = y * y          # saves y
    with genesis.no_grad():
        y.mul_(5)       # modifies y after it was saved
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward(genesis.ones(2, dtype=genesis.float64))


def test_inplace_on_leaf_requiring_grad_raises():
    x = _leaf(1.0)
    with pytest.raises(RuntimeError, match="leaf"):
        x.add_(1)
    with genesis.no_grad():
        x.add_(1)
    np.testing.assert_allclose(x.detach().numpy(), [2.0])


def test_inplace_on_non_leaf_is_differentiable():
    x = _leaf(1.0, 2.0)
    y = x * 2
    y.add_(x)           # y = 3x
    y.mul_(x)           # y = 3x^2
    y.backward(genesis.ones(2, dtype=genesis.float64))
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 12.0])


def test_requires_grad_only_for_floating_point():
    with pytest.raises(RuntimeError, match="floating point"):
        genesis.tensor([1, 2], requires_grad=True)


def test_detach_cuts_graph_and_shares_data():
    x = _leaf(1.0)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None


def test_integer_outputs_do_not_require_grad():
    x = _leaf(1.0, -1.0)
    assert not (x > 0).requires_grad


def test_custom_function_is_public_api():
    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * grad_output

    x = _leaf(2.0)
    y = Cube.apply(x)
    assert y.grad_fn.name() == "CubeBackward"
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [12.0])


def test_needs_input_grad_reflects_inputs():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b):
            seen["needs"] = ctx.needs_input_grad
            return a + b

        @staticmethod
        def backward(ctx, g):
            return g, g

    Probe.apply(_leaf(1.0), genesis.tensor([1.0], dtype=genesis.float64))
    assert seen["needs"] == (True, False)


def test_multi_output_function_missing_grad_is_zero_filled():
    class Two(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, ga, gb):
            return ga * 2 + gb * 3

    x = _leaf(1.0)
    a, b = Two.apply(x)
    b.backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0])


def test_mismatched_devices_error_names_function():
    x = _leaf(1.0)
    y = genesis.Tensor._make(np.ones(1))
    y.device = genesis.device("cuda", 0)
    with pytest.raises(RuntimeError, match="same device"):
        x * y


def test_broadcast_mismatch_error_names_op_and_shapes():
    with pytest.raises(RuntimeError, match=r"Mul: the shapes \(2, 3\) and \(4, 5\) cannot be "
                                           "broadcast"):
        genesis.randn(2, 3) * genesis.randn(4, 5)


def test_augmented_assignment_through_index_matches_hand_gradient():
    leaf = genesis.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=genesis.float64, requires_grad=True)
    v = genesis.tensor([10.0, 20.0], dtype=genesis.float64, requires_grad=True)
    x = leaf * 1.0
    x[0] += v          # row 0 = leaf0 + v
    x[1] *= v          # row 1 = leaf1 * v
    x[:, 1] *= 2.0     # column 1 doubled
    assert x.tolist() == [[11.0, 44.0], [30.0, 160.0]]
    x.sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), [[1, 2], [10, 40]])
    np.testing.assert_allclose(v.grad.numpy(), [1 + 3, 2 + 8])


def test_augmented_assignment_through_index_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x0, v0, w0 = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal((3, 4))

    def run(lib, make):
        leaf, v, w = make(x0, True), make(v0, True), make(w0, False)
        x = leaf * 1.0
        x[0] += v
        x[1:, 1] *= 3.0
        x[2] -= 0.5 * v
        (x * w).sum().backward()
        return leaf.grad.numpy(), v.grad.numpy()

    got = run(genesis, lambda a, g: genesis.tensor(a, requires_grad=g))
    want = run(torch, lambda a, g: torch.tensor(a, requires_grad=g))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-12)


def test_saved_view_overwritten_through_its_base_raises_like_torch():
    leaf = genesis.randn(3, 4, dtype=genesis.float64, requires_grad=True)
    v = genesis.randn(4, dtype=genesis.float64, requires_grad=True)
    x = leaf * 1.0
    x[2] -= x[0] * v   # x[0] is saved by the product, then x is modified in place
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        x.sum().backward()


def test_augmented_assignment_into_leaf_requiring_grad_raises():
    leaf = _leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match="leaf"):
        leaf[0] += 1.0


def test_ctx_is_the_graph_node_and_backward_frees_what_forward_kept():
    import weakref
    kept = {}

    class Keep(Function):
        @staticmethod
        def forward(ctx, x):
            extra = np.ones(3)
            kept["extra"] = weakref.ref(extra)
            ctx.extra = extra
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            assert ctx.extra.shape == (3,)
            return g * 2

    x = _leaf(1.0, 2.0)
    y = Keep.apply(x)
    assert y.grad_fn.name() == "KeepBackward" and y.grad_fn.extra is not None
    assert y.grad_fn.next_functions[0][0] is x._grad_node()
    y.sum().backward()
    assert kept["extra"]() is None            # released with the ctx's state
    assert y.grad_fn.next_functions[0][0] is x._grad_node()   # the graph's edges stay
    with pytest.raises(RuntimeError, match="second time"):
        y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_needs_input_grad_is_all_false_without_grad_mode():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, scale, b):
            seen["needs"] = ctx.needs_input_grad
            return a * scale + b

        @staticmethod
        def backward(ctx, g):
            return g, None, g

    with genesis.no_grad():
        out = Probe.apply(_leaf(1.0), 2.0, _leaf(3.0))
    assert seen["needs"] == (False, False, False) and not out.requires_grad
    Probe.apply(_leaf(1.0), 2.0, genesis.tensor([3.0], dtype=genesis.float64))
    assert seen["needs"] == (True, False, False)
