"""Integer division by zero raises as in PyTorch; result dtypes and dtype errors of the
division, modulus, logical and bitwise ops."""
import numpy as np
import pytest

import genesis

A = [5, -5, 3, 0]
ZERO_AT_1 = [2, 0, 1, 3]

DIVIDE_BY_ZERO = {
    "floor_divide": lambda lib, a, b: lib.floor_divide(a, b),
    "floordiv_operator": lambda lib, a, b: a // b,
    "rfloordiv_operator": lambda lib, a, b: 7 // b,
    "div_floor": lambda lib, a, b: lib.div(a, b, rounding_mode="floor"),
    "div_trunc": lambda lib, a, b: lib.div(a, b, rounding_mode="trunc"),
    "remainder": lambda lib, a, b: lib.remainder(a, b),
    "mod_operator": lambda lib, a, b: a % b,
    "fmod": lambda lib, a, b: lib.fmod(a, b),
    "floor_divide_scalar": lambda lib, a, b: lib.floor_divide(a, 0),
    "fmod_scalar": lambda lib, a, b: lib.fmod(a, 0),
    "floor_divide_inplace": lambda lib, a, b: a.clone().floor_divide_(b),
    "div_inplace_trunc": lambda lib, a, b: a.clone().div_(b, rounding_mode="trunc"),
    "ifloordiv": lambda lib, a, b: a.clone().__ifloordiv__(b),
    "imod": lambda lib, a, b: a.clone().__imod__(b),
}


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8"])
@pytest.mark.parametrize("case", sorted(DIVIDE_BY_ZERO))
def test_integer_division_by_zero_raises(case, dtype):
    dt = getattr(genesis, dtype)
    a = genesis.tensor(A, dtype=dt).abs() if dtype == "uint8" else genesis.tensor(A, dtype=dt)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        DIVIDE_BY_ZERO[case](genesis, a, genesis.tensor(ZERO_AT_1, dtype=dt))


@pytest.mark.parametrize("case", sorted(DIVIDE_BY_ZERO))
def test_integer_division_by_zero_raises_like_torch(case):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        DIVIDE_BY_ZERO[case](torch, torch.tensor(A), torch.tensor(ZERO_AT_1))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        DIVIDE_BY_ZERO[case](genesis, genesis.tensor(A), genesis.tensor(ZERO_AT_1))


FLOAT_BY_ZERO = {
    "floor_divide": lambda lib, a, b: lib.floor_divide(a, b),
    "div_floor": lambda lib, a, b: lib.div(a, b, rounding_mode="floor"),
    "div_trunc": lambda lib, a, b: lib.div(a, b, rounding_mode="trunc"),
    "remainder": lambda lib, a, b: lib.remainder(a, b),
    "fmod": lambda lib, a, b: lib.fmod(a, b),
    "true_divide": lambda lib, a, b: lib.div(a, b),
}


@pytest.mark.parametrize("case", sorted(FLOAT_BY_ZERO))
def test_float_division_by_zero_gives_ieee_values_silently(case):
    import warnings
    a = genesis.tensor([1.0, -1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = FLOAT_BY_ZERO[case](genesis, a, genesis.tensor(0.0)).numpy()
    want = {"floor_divide": [np.inf, -np.inf, np.nan], "div_floor": [np.inf, -np.inf, np.nan],
            "div_trunc": [np.inf, -np.inf, np.nan], "remainder": [np.nan] * 3,
            "fmod": [np.nan] * 3, "true_divide": [np.inf, -np.inf, np.nan]}[case]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.float32))


@pytest.mark.parametrize("case", sorted(FLOAT_BY_ZERO))
def test_float_division_by_zero_matches_torch(case):
    torch = pytest.importorskip("torch")
    want = FLOAT_BY_ZERO[case](torch, torch.tensor([1.0, -1.0, 0.0]), torch.tensor(0.0))
    got = FLOAT_BY_ZERO[case](genesis, genesis.tensor([1.0, -1.0, 0.0]), genesis.tensor(0.0))
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_trunc_division_of_large_integers_is_exact():
    a = genesis.tensor([2 ** 62 + 1, -(2 ** 62 + 1)])
    q = genesis.div(a, 3, rounding_mode="trunc")
    assert q.tolist() == [(2 ** 62 + 1) // 3, -((2 ** 62 + 1) // 3)]


def test_rounded_division_gradient_is_zero():
    x = genesis.tensor([1.5, -2.5], requires_grad=True)
    y = genesis.tensor([0.7, 2.0], requires_grad=True)
    (genesis.floor_divide(x, y) + genesis.div(x, y, rounding_mode="trunc")).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0] and y.grad.tolist() == [0.0, 0.0]


RESULT_DTYPES = {
    "floor_divide_int": lambda lib: lib.floor_divide(lib.tensor([7, -7]), 2),
    "floor_divide_int_float": lambda lib: lib.floor_divide(lib.tensor([7, -7]), 2.0),
    "div_trunc_int32": lambda lib: lib.div(lib.tensor([7, -7], dtype=lib.int32), 2,
                                           rounding_mode="trunc"),
    "true_divide_int": lambda lib: lib.true_divide(lib.tensor([7, -7]), 2),
    "fmod_int": lambda lib: lib.fmod(lib.tensor([7, -7]), 3),
    "remainder_uint8": lambda lib: lib.remainder(lib.tensor([7, 200], dtype=lib.uint8), 3),
    "isnan_int": lambda lib: lib.isnan(lib.tensor([1, 2])),
    "isfinite_float": lambda lib: lib.isfinite(lib.tensor([1.0, float("inf")])),
    "nan_to_num_int": lambda lib: lib.nan_to_num(lib.tensor([1, 2])),
    "logical_and_float": lambda lib: lib.logical_and(lib.tensor([1.0, 0.0]),
                                                     lib.tensor([2.0, 3.0])),
    "logical_not_int": lambda lib: lib.logical_not(lib.tensor([0, 3])),
    "bitwise_and_bool": lambda lib: lib.bitwise_and(lib.tensor([True, False]),
                                                    lib.tensor([True, True])),
    "bitwise_xor_int": lambda lib: lib.bitwise_xor(lib.tensor([5, 6]), lib.tensor([3, 3])),
    "bitwise_not_int": lambda lib: lib.bitwise_not(lib.tensor([5, -6])),
    "and_operator_int": lambda lib: lib.tensor([12, 10]) & 6,
    "or_operator_bool": lambda lib: lib.tensor([True, False]) | lib.tensor([False, False]),
    "invert_bool": lambda lib: ~lib.tensor([True, False]),
    "isclose_int": lambda lib: lib.isclose(lib.tensor([1, 2]), lib.tensor([1, 3])),
}


@pytest.mark.parametrize("case", sorted(RESULT_DTYPES))
def test_values_and_dtype_match_torch(case):
    torch = pytest.importorskip("torch")
    want = RESULT_DTYPES[case](torch)
    got = RESULT_DTYPES[case](genesis)
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    assert got.tolist() == want.tolist()


def test_values_and_dtypes_hand_checked():
    got = genesis.div(genesis.tensor([7, -7, 6, -6, 0]), genesis.tensor([2, 2, -4, 4, 3]),
                      rounding_mode="trunc")
    assert got.dtype is genesis.int64 and got.tolist() == [3, -3, -1, -1, 0]
    got = genesis.floor_divide(genesis.tensor([7, -7]), 2)
    assert got.dtype is genesis.int64 and got.tolist() == [3, -4]
    got = genesis.fmod(genesis.tensor([7, -7]), 3)
    assert got.tolist() == [1, -1]
    assert genesis.remainder(genesis.tensor([7, -7]), 3).tolist() == [1, 2]
    assert (genesis.tensor([12, 10]) & 6).tolist() == [4, 2]
    assert genesis.bitwise_not(genesis.tensor([5, -6])).tolist() == [-6, 5]
    assert genesis.logical_xor(genesis.tensor([1.0, 0.0]), genesis.tensor([1.0, 1.0])).tolist() \
        == [False, True]
    assert genesis.equal(genesis.tensor([1.0]), genesis.tensor([1]))
    assert not genesis.equal(genesis.tensor([1.0, 1.0]), genesis.tensor([1.0]))


@pytest.mark.parametrize("op", ["bitwise_and", "bitwise_or", "bitwise_xor"])
def test_bitwise_rejects_floats(op):
    with pytest.raises(TypeError, match=op):
        getattr(genesis, op)(genesis.tensor([1.0]), genesis.tensor([1.0]))
    with pytest.raises(TypeError, match=op):
        getattr(genesis, op)(genesis.tensor([1]), 1.5)


def test_bitwise_not_and_frac_reject_wrong_dtypes():
    with pytest.raises(TypeError, match="bitwise_not"):
        genesis.bitwise_not(genesis.tensor([1.0]))
    with pytest.raises(TypeError, match="frac"):
        genesis.frac(genesis.tensor([1, 2]))


def test_floor_divide_rejects_bool():
    with pytest.raises(TypeError, match="floor_divide"):
        genesis.floor_divide(genesis.tensor([True]), genesis.tensor([True]))


def test_div_rejects_unknown_rounding_mode():
    with pytest.raises(ValueError, match="rounding_mode"):
        genesis.div(genesis.tensor([1.0]), 2, rounding_mode="round")


def test_nan_to_num_gradient_flows_only_where_finite():
    x = genesis.tensor([1.0, float("nan"), float("inf"), -2.0], requires_grad=True)
    genesis.nan_to_num(x, nan=0.0, posinf=5.0).mul(3.0).sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 0.0, 3.0]


def test_nan_to_num_inplace():
    x = genesis.tensor([float("nan"), float("-inf"), 1.0])
    alias = x.view(3)
    x.nan_to_num_(nan=7.0, neginf=-1.0)
    assert alias.tolist() == [7.0, -1.0, 1.0]


def test_to_device_accepts_strings_and_devices():
    x = genesis.tensor([1.0, 2.0], requires_grad=True)
    for dev in ("cpu", genesis.device("cpu")):
        y = genesis.to_device(x, dev)
        assert y.device == genesis.device("cpu") and y.tolist() == [1.0, 2.0]
        assert y._array is not x._array
    genesis.to_device(x, "cpu").sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
