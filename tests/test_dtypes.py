"""The dtype system: conversion with ``dtype()``, the DType objects, and type promotion (the
Array API table inside each kind, plus the extensions documented in hwabstract.dtypes)."""

from __future__ import annotations

import itertools
import pickle

import ml_dtypes
import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.dtypes import DType, dtype, result_type
from hwabstract.errors import DTypeError

ALL = dt.all_dtypes()
SIGNED = [dt.int8, dt.int16, dt.int32, dt.int64]
UNSIGNED = [dt.uint8, dt.uint16, dt.uint32, dt.uint64]
REAL_FLOATS = [dt.float16, dt.float32, dt.float64]
COMPLEX = [dt.complex64, dt.complex128]
FLOAT8 = [dt.float8_e4m3fn, dt.float8_e5m2]


# -- the DType objects -----------------------------------------------------------------------------


def test_all_dtypes_lists_the_design_set_once_in_a_stable_order() -> None:
    names = [d.name for d in ALL]
    assert names == [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float8_e4m3fn",
        "float8_e5m2",
        "bfloat16",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ]
    assert all(getattr(hw, "bool" if n == "bool" else n) is d for n, d in zip(names, ALL))


@pytest.mark.parametrize("d", ALL, ids=str)
def test_dtype_properties_agree_with_numpy(d: DType) -> None:
    assert d.itemsize == d.numpy_dtype.itemsize == d.bits // 8
    assert d.is_bool == (d.kind == "b")
    assert d.is_integer == (d.kind in "iu")
    assert d.is_floating == (d.kind in "fc")
    assert d.is_complex == (d.kind == "c")
    assert d.is_float8 == (d in FLOAT8)
    assert dt.is_kind(d, d.kind) and not dt.is_kind(d, "".join(set("biufc") - {d.kind}))
    if d.kind in "iuc" or d in (dt.bool_, dt.float16, dt.float32, dt.float64):
        assert d.numpy_dtype.kind == d.kind  # ml_dtypes floats have NumPy kind 'V'
    assert str(d) == d.name
    assert repr(d) == f"hwabstract.{d.name}"


@pytest.mark.parametrize("d", ALL, ids=str)
def test_dtypes_are_singletons_that_compare_with_their_other_spellings(d: DType) -> None:
    assert dtype(d) is d
    assert pickle.loads(pickle.dumps(d)) is d
    assert d == d.name and d == d.numpy_dtype and d == d.numpy_dtype.type
    assert {d: 1}[dtype(d.name)] == 1  # DTypes hash by identity: convert names first
    others = [o for o in ALL if o is not d]
    assert all(d != o and d != o.name for o in others)
    assert d != "no such dtype" and d != 3 and d != object()


# -- dtype() ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", ALL, ids=str)
def test_dtype_accepts_hw_numpy_dtype_scalar_type_and_name(d: DType) -> None:
    assert dtype(d) is d
    assert dtype(d.name) is d
    assert dtype(d.numpy_dtype) is d
    assert dtype(d.numpy_dtype.type) is d
    assert dtype(np.dtype(d.numpy_dtype.type)) is d


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (bool, dt.bool_),
        ("bool_", dt.bool_),
        (np.bool_, dt.bool_),
        (int, dt.int64),
        (float, dt.float32),  # the default float, not NumPy's float64
        (complex, dt.complex64),
        (np.float64, dt.float64),
        (np.intc, dt.int32),
        ("f4", dt.float32),
        ("<i2", dt.int16),
        (ml_dtypes.bfloat16, dt.bfloat16),
        (np.dtype(ml_dtypes.float8_e4m3fn), dt.float8_e4m3fn),
        (ml_dtypes.float8_e5m2, dt.float8_e5m2),
    ],
)
def test_dtype_conversions(spec: object, expected: DType) -> None:
    assert dtype(spec) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    ["float128", "int4", "string", np.str_, object, 3, [1]],
    ids=repr,
)
def test_unknown_dtypes_are_a_dtype_error_listing_the_known_ones(spec: object) -> None:
    with pytest.raises(DTypeError, match=r"unknown dtype .*; use one of: bool, int8, .*bfloat16"):
        dtype(spec)  # type: ignore[arg-type]


def test_none_is_not_silently_float64() -> None:
    """np.dtype(None) is float64; hwabstract's default float is float32, so None must not
    convert at all."""
    with pytest.raises(DTypeError, match="dtype None is not a dtype; pass one of: bool"):
        dtype(None)  # type: ignore[arg-type]


# -- promotion: the Array API table inside each kind -----------------------------------------------


def _array_api_pairs() -> list[tuple[DType, DType]]:
    """Every pair the Array API defines: within bool, within the integers (signed and
    unsigned mixed, except uint64 with a signed type), within the real floats, within the
    complex floats, and real with complex floats."""
    ints = SIGNED + UNSIGNED
    floats = REAL_FLOATS + COMPLEX
    pairs = [(dt.bool_, dt.bool_)]
    pairs += [
        (a, b) for a in ints for b in ints if not ({a, b} & {dt.uint64} and {a, b} & set(SIGNED))
    ]
    pairs += [(a, b) for a in floats for b in floats]
    return pairs


@pytest.mark.parametrize(("a", "b"), _array_api_pairs(), ids=lambda d: d.name)
def test_array_api_promotion_matches_numpy(a: DType, b: DType) -> None:
    """Inside the Array API table NumPy 2 follows the standard, so it is an oracle here."""
    expected = dtype(np.result_type(a.numpy_dtype, b.numpy_dtype))
    assert result_type(a, b) is expected
    assert result_type(b, a) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # signed with unsigned: the smallest signed type holding both ranges
        ("int8", "uint8", "int16"),
        ("int8", "uint16", "int32"),
        ("int8", "uint32", "int64"),
        ("int16", "uint8", "int16"),
        ("int16", "uint16", "int32"),
        ("int16", "uint32", "int64"),
        ("int32", "uint8", "int32"),
        ("int32", "uint16", "int32"),
        ("int32", "uint32", "int64"),
        ("int64", "uint8", "int64"),
        ("int64", "uint16", "int64"),
        ("int64", "uint32", "int64"),
        # within a kind: the wider
        ("int8", "int64", "int64"),
        ("uint16", "uint32", "uint32"),
        ("float16", "float64", "float64"),
        ("complex64", "complex128", "complex128"),
        # real with complex: complex wide enough for both
        ("float64", "complex64", "complex128"),
        ("float32", "complex64", "complex64"),
        ("float16", "complex64", "complex64"),
        ("float32", "complex128", "complex128"),
    ],
)
def test_array_api_promotion_table(a: str, b: str, expected: str) -> None:
    assert result_type(dtype(a), dtype(b)) is dtype(expected)
    assert result_type(dtype(b), dtype(a)) is dtype(expected)


# -- promotion: the documented extensions ----------------------------------------------------------


@pytest.mark.parametrize("f", [d for d in ALL if d.kind in "fc"], ids=str)
@pytest.mark.parametrize("i", [d for d in ALL if d.kind in "biu"], ids=str)
def test_integer_or_bool_with_a_float_gives_the_float(i: DType, f: DType) -> None:
    assert result_type(i, f) is f
    assert result_type(f, i) is f


@pytest.mark.parametrize("d", [d for d in ALL if d.kind in "iu"], ids=str)
def test_bool_with_an_integer_gives_the_integer(d: DType) -> None:
    assert result_type(dt.bool_, d) is d and result_type(d, dt.bool_) is d


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("bfloat16", "float16", "float32"),
        ("bfloat16", "float32", "float32"),
        ("bfloat16", "float64", "float64"),
        ("bfloat16", "complex64", "complex64"),
        ("bfloat16", "complex128", "complex128"),
        ("float8_e4m3fn", "bfloat16", "bfloat16"),
        ("float8_e4m3fn", "float16", "float16"),
        ("float8_e5m2", "float32", "float32"),
        ("float8_e5m2", "float64", "float64"),
        ("float8_e4m3fn", "complex64", "complex64"),
        ("float8_e4m3fn", "float8_e4m3fn", "float8_e4m3fn"),
        ("float8_e5m2", "float8_e5m2", "float8_e5m2"),
    ],
)
def test_narrow_float_extensions(a: str, b: str, expected: str) -> None:
    assert result_type(dtype(a), dtype(b)) is dtype(expected)
    assert result_type(dtype(b), dtype(a)) is dtype(expected)


def test_the_two_float8_formats_do_not_combine() -> None:
    for a, b in itertools.permutations(FLOAT8):
        with pytest.raises(DTypeError, match=r"float8 formats do not promote.*astype"):
            result_type(a, b)


@pytest.mark.parametrize("s", SIGNED, ids=str)
def test_uint64_with_a_signed_integer_is_an_error(s: DType) -> None:
    for a, b in ((dt.uint64, s), (s, dt.uint64)):
        with pytest.raises(DTypeError, match=r"no integer dtype holds both ranges.*astype"):
            result_type(a, b)


@pytest.mark.parametrize(("a", "b"), list(itertools.product(ALL, ALL)), ids=lambda d: d.name)
def test_promotion_is_symmetric_and_never_narrows(a: DType, b: DType) -> None:
    try:
        forward = result_type(a, b)
    except DTypeError:
        with pytest.raises(DTypeError):
            result_type(b, a)
        return
    assert result_type(b, a) is forward
    if a.kind == b.kind:
        assert forward.bits >= max(a.bits, b.bits)
    assert result_type(a, a) is a


def test_result_type_of_several_operands_and_of_tensors() -> None:
    assert result_type(dt.int8, dt.uint8, dt.int32) is dt.int32
    assert result_type(dt.float16, dt.bfloat16, dt.float8_e4m3fn) is dt.float32
    x = hw.asarray(np.ones(2, np.int16))
    assert result_type(x, dt.uint8) is dt.int16
    assert result_type(np.ones(2, np.float16), 1) is dt.float16  # anything with a dtype
    assert result_type("int8", np.uint16) is dt.int32


# -- weak Python scalars ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "scalar", "expected"),
    [
        ("int8", 1, "int8"),
        ("uint8", 1, "uint8"),
        ("int16", True, "int16"),
        ("int8", 1.5, "float32"),
        ("uint64", 2.0, "float32"),  # the default float
        ("float16", 1.0, "float16"),
        ("bfloat16", 1, "bfloat16"),
        ("float8_e4m3fn", 0.5, "float8_e4m3fn"),
        ("float32", 1j, "complex64"),
        ("float64", 1j, "complex128"),
        ("float16", 1j, "complex64"),
        ("bfloat16", 1j, "complex64"),
        ("int8", 1j, "complex64"),
        ("complex128", 1.0, "complex128"),
        ("bool", True, "bool"),
        ("bool", 1, "int64"),
        ("bool", 1.5, "float32"),
        ("bool", 1j, "complex64"),
    ],
)
def test_python_scalars_are_weak(d: str, scalar: object, expected: str) -> None:
    assert result_type(dtype(d), scalar) is dtype(expected)
    assert result_type(scalar, dtype(d)) is dtype(expected)


@pytest.mark.parametrize(
    ("scalars", "expected"),
    [
        ((True,), "bool"),
        ((1,), "int64"),
        ((1.0,), "float32"),
        ((1j,), "complex64"),
        ((True, 2), "int64"),
        ((1, 2.0), "float32"),
        ((2.0, 1j), "complex64"),
    ],
)
def test_scalars_alone_take_the_default_of_the_widest_kind(
    scalars: tuple[object, ...], expected: str
) -> None:
    assert result_type(*scalars) is dtype(expected)


def test_numpy_scalars_are_strong() -> None:
    assert result_type(dt.float32, np.float64(1.0)) is dt.float64
    assert result_type(dt.int8, np.int32(1)) is dt.int32


def test_result_type_needs_an_operand() -> None:
    with pytest.raises(DTypeError, match="at least one operand"):
        result_type()


def test_check_scalar_fits() -> None:
    dt.check_scalar_fits(255, dt.uint8)
    dt.check_scalar_fits(-128, dt.int8)
    dt.check_scalar_fits(1e300, dt.float16)  # floats overflow to inf; not an error
    dt.check_scalar_fits(True, dt.uint8)
    with pytest.raises(DTypeError, match=r"256 is out of range for uint8 \[0, 255\]"):
        dt.check_scalar_fits(256, dt.uint8)
    with pytest.raises(DTypeError, match=r"-129 is out of range for int8"):
        dt.check_scalar_fits(-129, dt.int8)
    with pytest.raises(DTypeError, match="cannot use complex scalar"):
        dt.check_scalar_fits(1j, dt.int32)


def test_dtypes_of_kinds() -> None:
    assert dt.dtypes_of_kinds("u") == tuple(UNSIGNED)
    assert dt.dtypes_of_kinds("bc") == (dt.bool_, *COMPLEX)
    assert dt.dtypes_of_kinds("f", among=[dt.int8, dt.bfloat16]) == (dt.bfloat16,)
