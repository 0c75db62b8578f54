"""Grad-mode objects in every form (call, context manager, decorator, generator) vs PyTorch."""
import pytest

import genesis

FORMS = {
    "no_grad": lambda lib: lib.no_grad(),
    "enable_grad": lambda lib: lib.enable_grad(),
    "set_grad_enabled_false": lambda lib: lib.set_grad_enabled(False),
    "set_grad_enabled_true": lambda lib: lib.set_grad_enabled(True),
    "inference_mode": lambda lib: lib.inference_mode(),
    "inference_mode_false": lambda lib: lib.inference_mode(False),
}
# Grad mode inside the block, whatever the mode outside.
INSIDE = {"no_grad": False, "enable_grad": True, "set_grad_enabled_false": False,
          "set_grad_enabled_true": True, "inference_mode": False, "inference_mode_false": True}


def _trace(lib, make, outer):
    """Grad mode seen at each point of each way of using ``make(lib)``."""
    seen = {}
    lib.set_grad_enabled(outer)
    with make(lib):
        seen["context_inside"] = lib.is_grad_enabled()
    seen["context_after"] = lib.is_grad_enabled()

    lib.set_grad_enabled(outer)
    fn = make(lib)(lambda: lib.is_grad_enabled())
    seen["after_decoration"] = lib.is_grad_enabled()
    lib.set_grad_enabled(not outer)
    seen["decorated_call"] = fn()
    seen["after_decorated_call"] = lib.is_grad_enabled()

    def steps():
        yield lib.is_grad_enabled()
        yield lib.is_grad_enabled()
    lib.set_grad_enabled(outer)
    gen = make(lib)(steps)()
    seen["generator_step_1"] = next(gen)
    seen["between_generator_steps"] = lib.is_grad_enabled()
    seen["generator_step_2"] = next(gen)
    lib.set_grad_enabled(True)
    return seen


@pytest.fixture(autouse=True)
def _restore_grad_mode():
    yield
    genesis.set_grad_enabled(True)


@pytest.mark.parametrize("outer", [True, False])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_grad_mode_forms_hand_checked(form, outer):
    seen = _trace(genesis, FORMS[form], outer)
    inside = INSIDE[form]
    assert seen == {"context_inside": inside, "context_after": outer,
                    "after_decoration": outer, "decorated_call": inside,
                    "after_decorated_call": not outer, "generator_step_1": inside,
                    "between_generator_steps": outer, "generator_step_2": inside}


@pytest.mark.parametrize("outer", [True, False])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_grad_mode_forms_match_torch(form, outer):
    torch = pytest.importorskip("torch")
    try:
        want = _trace(torch, FORMS[form], outer)
    finally:
        torch.set_grad_enabled(True)
    assert _trace(genesis, FORMS[form], outer) == want


def test_set_grad_enabled_decorator_does_not_change_mode_at_decoration():
    genesis.set_grad_enabled(True)

    @genesis.set_grad_enabled(False)
    def forward(x):
        return x * 2

    assert genesis.is_grad_enabled()
    x = genesis.ones(2, requires_grad=True)
    assert not forward(x).requires_grad
    assert (x * 2).requires_grad


def test_set_grad_enabled_as_call_sets_the_mode():
    genesis.set_grad_enabled(False)
    assert not genesis.is_grad_enabled()
    assert not (genesis.ones(2, requires_grad=True) * 2).requires_grad
    genesis.set_grad_enabled(True)
    assert (genesis.ones(2, requires_grad=True) * 2).requires_grad


@pytest.mark.parametrize("name", ["no_grad", "enable_grad", "inference_mode"])
def test_decorator_without_parentheses(name):
    outer = name == "no_grad"
    genesis.set_grad_enabled(outer)
    fn = getattr(genesis, name)(lambda: genesis.is_grad_enabled())
    assert genesis.is_grad_enabled() is outer
    assert fn() is (name == "enable_grad")
    assert genesis.is_grad_enabled() is outer


def test_mode_restored_when_the_block_raises():
    with pytest.raises(ValueError):
        with genesis.no_grad():
            raise ValueError("boom")
    assert genesis.is_grad_enabled()

    @genesis.no_grad()
    def fails():
        raise KeyError("x")
    with pytest.raises(KeyError):
        fails()
    assert genesis.is_grad_enabled()


def test_set_grad_enabled_rejects_non_bool():
    with pytest.raises(TypeError, match="set_grad_enabled"):
        genesis.set_grad_enabled(1)
