"""Elementwise kernels against independent oracles, for every dtype the cpu backend declares.

Oracles are Python's ``math``/``cmath`` on float64/complex128 values and exact Python
integers (wrapped to the result dtype); the special-values tests use NumPy's float64 loops,
whose IEEE special cases are exact. See ``conftest.py`` for the tolerance policy.
"""

from __future__ import annotations

import cmath
import math
import operator
import zlib
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.dtypes import DType
from hwabstract.errors import DTypeError, ShapeError

from .conftest import (
    apply,
    assert_close,
    declared,
    python_values,
    sample,
    specials,
    to_result,
    upload,
)

Fn = Callable[..., Any]


@attrs.frozen
class Oracle:
    """How to compute a kernel's expected values.

    ``real``/``integer``/``complex_`` act on Python floats / ints (and bools) / complex
    numbers; ``domain`` is where the accuracy tests draw float inputs (per operand for
    binary kernels); ``special`` is a NumPy float64 function for the special-values test
    (None: no such test); ``zero_sign`` says whether the sign of a zero result is specified.
    """

    real: Fn | None = None
    integer: Fn | None = None
    complex_: Fn | None = None
    domain: tuple[tuple[float, float], ...] = ((-4.0, 4.0),)
    away_from_zero: tuple[float, ...] = (0.0,)
    int_domain: tuple[tuple[int, int], ...] = ((-8, 8),)
    special: Fn | None = None
    zero_sign: bool = True
    complex_ulps: int | None = None


def _float(fn: Fn) -> Fn:
    return lambda *a: float(fn(*a))


def _sign(v: Any) -> Any:
    if isinstance(v, complex):
        return 0j if v == 0 else v / abs(v)
    if isinstance(v, float) and math.isnan(v):
        return v
    return (v > 0) - (v < 0)


def _round(v: Any) -> Any:
    if isinstance(v, complex):
        return complex(round(v.real), round(v.imag))
    return float(round(v)) if isinstance(v, float) else v


def _logaddexp(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi))


UNARY: dict[str, Oracle] = {
    "abs": Oracle(abs, abs, abs, special=np.abs),
    "acos": Oracle(math.acos, None, cmath.acos, ((-0.99, 0.99),), special=np.arccos),
    "acosh": Oracle(math.acosh, None, cmath.acosh, ((1.05, 4.0),), special=np.arccosh),
    "asin": Oracle(math.asin, None, cmath.asin, ((-0.99, 0.99),), special=np.arcsin),
    "asinh": Oracle(math.asinh, None, cmath.asinh, special=np.arcsinh),
    "atan": Oracle(math.atan, None, cmath.atan, special=np.arctan),
    "atanh": Oracle(math.atanh, None, cmath.atanh, ((-0.95, 0.95),), special=np.arctanh),
    "cos": Oracle(math.cos, None, cmath.cos, special=np.cos),
    "cosh": Oracle(math.cosh, None, cmath.cosh, special=np.cosh),
    "exp": Oracle(math.exp, None, cmath.exp, special=np.exp),
    "expm1": Oracle(math.expm1, None, lambda z: cmath.exp(z) - 1, special=np.expm1),
    "log": Oracle(math.log, None, cmath.log, ((0.05, 8.0),), special=np.log),
    "log1p": Oracle(math.log1p, None, lambda z: cmath.log(1 + z), ((-0.9, 8.0),), special=np.log1p),
    "log2": Oracle(
        math.log2, None, lambda z: cmath.log(z) / math.log(2), ((0.05, 8.0),), special=np.log2
    ),
    "log10": Oracle(math.log10, None, cmath.log10, ((0.05, 8.0),), special=np.log10),
    "sin": Oracle(math.sin, None, cmath.sin, special=np.sin),
    "sinh": Oracle(math.sinh, None, cmath.sinh, special=np.sinh),
    "sqrt": Oracle(math.sqrt, None, cmath.sqrt, ((0.0, 8.0),), special=np.sqrt),
    "tan": Oracle(math.tan, None, cmath.tan, ((-1.4, 1.4),), special=np.tan),
    "tanh": Oracle(math.tanh, None, cmath.tanh, special=np.tanh),
    "reciprocal": Oracle(
        lambda v: 1.0 / v, None, lambda z: 1 / z, away_from_zero=(0.25,), special=np.reciprocal
    ),
    "bitwise_invert": Oracle(None, lambda v: (not v) if isinstance(v, bool) else ~v),
    "ceil": Oracle(_float(math.ceil), lambda v: v, special=np.ceil),
    "floor": Oracle(_float(math.floor), lambda v: v, special=np.floor),
    "trunc": Oracle(_float(math.trunc), lambda v: v, special=np.trunc),
    "round": Oracle(_round, _round, _round, special=np.rint),
    "conj": Oracle(lambda v: v, lambda v: v, lambda z: z.conjugate(), special=np.conjugate),
    "real": Oracle(lambda v: v, lambda v: v, lambda z: z.real, special=np.real),
    "imag": Oracle(lambda v: 0.0, lambda v: 0, lambda z: z.imag),
    "isfinite": Oracle(math.isfinite, lambda v: True, cmath.isfinite, special=np.isfinite),
    "isinf": Oracle(math.isinf, lambda v: False, cmath.isinf, special=np.isinf),
    "isnan": Oracle(math.isnan, lambda v: False, cmath.isnan, special=np.isnan),
    "logical_not": Oracle(None, operator.not_),
    "negative": Oracle(operator.neg, operator.neg, operator.neg, special=np.negative),
    "positive": Oracle(operator.pos, operator.pos, operator.pos, special=np.positive),
    "sign": Oracle(_sign, _sign, _sign, special=np.sign),
    "signbit": Oracle(lambda v: math.copysign(1.0, v) < 0, special=np.signbit),
    "square": Oracle(lambda v: v * v, lambda v: v * v, lambda z: z * z, special=np.square),
}


def _nextafter(dtype: DType) -> Fn:
    """nextafter in ``dtype`` computed from bit patterns: the neighbour of ``a`` towards
    ``b`` is one step along the sign-magnitude integer line."""
    np_dtype = dtype.numpy_dtype
    uint = np.dtype(f"u{np_dtype.itemsize}")
    sign = 1 << (dtype.bits - 1)

    def step(a: float, b: float) -> float:
        if math.isnan(a) or math.isnan(b):
            return math.nan
        if a == b:
            return b
        bits = int(np.array(a, dtype=np.float64).astype(np_dtype).view(uint))
        ordinal = -(bits & (sign - 1)) if bits & sign else bits
        ordinal += 1 if b > a else -1
        raw = (-ordinal | sign) if ordinal < 0 else ordinal
        return float(np.array(raw, dtype=uint).view(np_dtype).astype(np.float64))

    return step


def _int_pow(a: int, b: int) -> int:
    return a**b


BINARY: dict[str, Oracle] = {
    "add": Oracle(operator.add, operator.add, operator.add, special=np.add),
    "subtract": Oracle(operator.sub, operator.sub, operator.sub, special=np.subtract),
    "multiply": Oracle(operator.mul, operator.mul, operator.mul, special=np.multiply),
    "divide": Oracle(
        operator.truediv,
        operator.truediv,
        operator.truediv,
        ((-4.0, 4.0), (-4.0, 4.0)),
        (0.0, 0.25),
        ((-8, 8), (-8, 8)),
        special=np.divide,
    ),
    "floor_divide": Oracle(
        operator.floordiv,
        operator.floordiv,
        None,
        ((-4.0, 4.0), (-4.0, 4.0)),
        (0.0, 0.25),
        ((-8, 8), (-8, 8)),
        special=np.floor_divide,
    ),
    "remainder": Oracle(
        operator.mod,
        operator.mod,
        None,
        ((-4.0, 4.0), (-4.0, 4.0)),
        (0.0, 0.25),
        ((-8, 8), (-8, 8)),
        special=np.remainder,
    ),
    # complex pow is exp(x2 * log(x1)): the rounding error of log(x1) is amplified by
    # |x2 * log(x1)| (up to ~4 with this data), hence 16 eps instead of 4
    "pow": Oracle(
        math.pow,
        _int_pow,
        operator.pow,
        ((0.1, 4.0), (-3.0, 3.0)),
        (0.0, 0.0),
        ((-4, 4), (0, 4)),
        special=np.power,
        complex_ulps=16,
    ),
    "atan2": Oracle(math.atan2, special=np.arctan2),
    "hypot": Oracle(math.hypot, special=np.hypot),
    "copysign": Oracle(math.copysign, special=np.copysign),
    "logaddexp": Oracle(_logaddexp, special=np.logaddexp),
    "nextafter": Oracle(None),  # per dtype, see _binary_oracle
    "maximum": Oracle(max, max, special=np.maximum, zero_sign=False),
    "minimum": Oracle(min, min, special=np.minimum, zero_sign=False),
    "equal": Oracle(operator.eq, operator.eq, operator.eq, special=np.equal),
    "not_equal": Oracle(operator.ne, operator.ne, operator.ne, special=np.not_equal),
    "greater": Oracle(operator.gt, operator.gt, special=np.greater),
    "greater_equal": Oracle(operator.ge, operator.ge, special=np.greater_equal),
    "less": Oracle(operator.lt, operator.lt, special=np.less),
    "less_equal": Oracle(operator.le, operator.le, special=np.less_equal),
    "logical_and": Oracle(None, lambda a, b: a and b),
    "logical_or": Oracle(None, lambda a, b: a or b),
    "logical_xor": Oracle(None, operator.xor),
    "bitwise_and": Oracle(None, operator.and_),
    "bitwise_or": Oracle(None, operator.or_),
    "bitwise_xor": Oracle(None, operator.xor),
    "bitwise_left_shift": Oracle(None, operator.lshift, int_domain=((-8, 8), (0, 7))),
    "bitwise_right_shift": Oracle(None, operator.rshift, int_domain=((-100, 100), (0, 7))),
}

NAMES = set(UNARY) | set(BINARY)


def test_every_generated_elementwise_kernel_has_an_oracle() -> None:
    generated = {
        s.name
        for s in hw.kernels.all_specs()
        if s.category == "elementwise" and s.name not in ("where", "clip", "astype")
    }
    assert generated == NAMES


def _result_dtype(name: str, dtype: DType) -> DType:
    spec = hw.kernels.get_spec(name)
    if name in (
        "equal",
        "not_equal",
        "greater",
        "greater_equal",
        "less",
        "less_equal",
        "isfinite",
        "isinf",
        "isnan",
        "signbit",
    ):
        return dt.bool_
    if name == "divide" and dtype.kind in "iu":
        return dt.default_float  # integer true division computes in the default float
    if name in ("abs", "real", "imag") and dtype.kind == "c":
        return dt.float32 if dtype is dt.complex64 else dt.float64
    assert dtype in spec.dtypes
    return dtype


def _pick(oracle: Oracle, dtype: DType) -> Fn:
    fn = {
        "b": oracle.integer,
        "i": oracle.integer,
        "u": oracle.integer,
        "f": oracle.real,
        "c": oracle.complex_,
    }[dtype.kind]
    assert fn is not None, f"no oracle for {dtype}"
    return fn


def _binary_oracle(name: str, dtype: DType) -> Fn:
    if name == "nextafter":
        return _nextafter(dtype)
    return _pick(BINARY[name], dtype)


def _operand(
    oracle: Oracle, dtype: DType, shape: tuple[int, ...], i: int, rng: np.random.Generator
) -> np.ndarray:
    if dtype.kind in "iu":
        low, high = oracle.int_domain[min(i, len(oracle.int_domain) - 1)]
        if dtype.kind == "u":
            low = max(low, 0)
        return sample(dtype, shape, rng, low=low, high=high, away_from_zero=_nonzero(oracle, i))
    low_f, high_f = oracle.domain[min(i, len(oracle.domain) - 1)]
    away = oracle.away_from_zero[min(i, len(oracle.away_from_zero) - 1)]
    if dtype.kind == "c":
        return sample(dtype, shape, rng, low=-2.0, high=2.0, away_from_zero=0.5)
    return sample(dtype, shape, rng, low=low_f, high=high_f, away_from_zero=away)


def _nonzero(oracle: Oracle, i: int) -> float:
    return oracle.away_from_zero[min(i, len(oracle.away_from_zero) - 1)]


def _rng(*key: object) -> np.random.Generator:
    """A generator seeded from the test's parameters (stable across runs and processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _cases(table: dict[str, Oracle]) -> list[Any]:
    return [
        pytest.param(name, d, id=f"{name}-{d.name}")
        for name in sorted(table)
        for d in declared(name)
    ]


UNARY_LAYOUTS = {
    "contiguous": (3, 4),
    "strided": (3, 4),
    "flipped": (2, 3),
    "empty": (0, 4),
    "0-d": (),
}


@pytest.mark.parametrize("layout", list(UNARY_LAYOUTS))
@pytest.mark.parametrize(("name", "dtype"), _cases(UNARY))
def test_unary(name: str, dtype: DType, layout: str) -> None:
    rng = _rng(name, dtype, layout)
    oracle = UNARY[name]
    host = _operand(oracle, dtype, UNARY_LAYOUTS[layout], 0, rng)
    x = upload(host, "contiguous" if layout in ("empty", "0-d") else layout)
    assert x.shape == host.shape
    result = getattr(hw, name)(x)
    out_dtype = _result_dtype(name, dtype)
    assert result.dtype is out_dtype
    assert result.shape == host.shape
    expected = to_result(apply(_pick(oracle, dtype), host), out_dtype)
    assert_close(result.numpy(), expected, out_dtype, context=host)


BINARY_LAYOUTS = {
    "contiguous": ((3, 4), (3, 4)),
    "broadcast": ((2, 1, 4), (3, 1)),
    "strided": ((3, 4), (3, 4)),
    "empty": ((0, 4), (4,)),
    "0-d": ((), ()),
    "python-scalar": ((2, 3), None),
}


@pytest.mark.parametrize("layout", list(BINARY_LAYOUTS))
@pytest.mark.parametrize(("name", "dtype"), _cases(BINARY))
def test_binary(name: str, dtype: DType, layout: str) -> None:
    rng = _rng(name, dtype, layout)
    oracle = BINARY[name]
    shape1, shape2 = BINARY_LAYOUTS[layout]
    a = _operand(oracle, dtype, shape1, 0, rng)
    b = _operand(oracle, dtype, shape2 if shape2 is not None else (), 1, rng)
    x1 = upload(a, "strided" if layout == "strided" else "contiguous")
    x2: Any
    if layout == "python-scalar":
        x2 = python_values(b).item()  # a weak scalar: the tensor's dtype wins
    else:
        x2 = upload(b, "flipped" if layout == "strided" else "contiguous")
    result = getattr(hw, name)(x1, x2)
    out_dtype = _result_dtype(name, dtype)
    assert result.dtype is out_dtype
    expected = to_result(apply(_binary_oracle(name, dtype), a, b), out_dtype)
    assert result.shape == np.broadcast_shapes(a.shape, b.shape)
    ulps = oracle.complex_ulps if dtype.kind == "c" else None
    assert_close(result.numpy(), expected, out_dtype, ulps=ulps, context=(a, b))


# -- special values --------------------------------------------------------------------------------


def _special_cases(table: dict[str, Oracle]) -> list[Any]:
    return [
        pytest.param(name, d, id=f"{name}-{d.name}")
        for name in sorted(table)
        if table[name].special is not None or name == "nextafter"
        for d in declared(name)
        if d.kind == "f"
    ]


@pytest.mark.parametrize(("name", "dtype"), _special_cases(UNARY))
def test_unary_special_values(name: str, dtype: DType) -> None:
    """NaN, +-inf and +-0 follow IEEE 754 (NumPy's float64 loops), in every float dtype."""
    oracle = UNARY[name]
    host = specials(dtype)
    result = getattr(hw, name)(upload(host))
    out_dtype = _result_dtype(name, dtype)
    assert oracle.special is not None
    with np.errstate(all="ignore"):
        expected = np.asarray(oracle.special(host.astype(np.float64)))
    assert_close(result.numpy(), expected, out_dtype, zero_sign=oracle.zero_sign, context=host)


@pytest.mark.parametrize(("name", "dtype"), _special_cases(BINARY))
def test_binary_special_values(name: str, dtype: DType) -> None:
    """Every pair of special values, in every float dtype."""
    oracle = BINARY[name]
    values = specials(dtype)[:9]
    a, b = np.meshgrid(values, values, indexing="ij")
    result = getattr(hw, name)(upload(a), upload(b))
    out_dtype = _result_dtype(name, dtype)
    if name == "nextafter":
        expected = to_result(apply(_nextafter(dtype), a, b), out_dtype)
    else:
        assert oracle.special is not None
        with np.errstate(all="ignore"):
            expected = np.asarray(oracle.special(a.astype(np.float64), b.astype(np.float64)))
    assert_close(result.numpy(), expected, out_dtype, zero_sign=oracle.zero_sign, context=(a, b))


@pytest.mark.parametrize("dtype", [dt.complex64, dt.complex128], ids=str)
def test_complex_classification_and_abs_of_non_finite_values(dtype: DType) -> None:
    nan, inf = math.nan, math.inf
    host = np.array(
        [
            complex(nan, 0),
            complex(0, nan),
            complex(inf, 0),
            complex(0, -inf),
            complex(inf, nan),
            complex(1, 2),
            complex(-0.0, 0),
        ],
        dtype=dtype.numpy_dtype,
    )
    x = upload(host)
    assert hw.isnan(x).numpy().tolist() == [True, True, False, False, True, False, False]
    assert hw.isinf(x).numpy().tolist() == [False, False, True, True, True, False, False]
    assert hw.isfinite(x).numpy().tolist() == [False, False, False, False, False, True, True]
    # |z| is +inf if either component is infinite, even when the other is NaN
    magnitude = hw.abs(x).numpy()
    assert np.isnan(magnitude[:2]).all()
    assert magnitude[2:5].tolist() == [inf, inf, inf]
    assert magnitude[5] == pytest.approx(math.sqrt(5), rel=1e-6)


# -- integer corner cases --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [d for d in dt.all_dtypes() if d.kind in "iu"], ids=str)
def test_integer_arithmetic_wraps_at_the_limits(dtype: DType) -> None:
    info = np.iinfo(dtype.numpy_dtype)
    lo, hi = int(info.min), int(info.max)
    a = np.array([hi, lo, hi, lo, 0, 1], dtype=dtype.numpy_dtype)
    b = np.array([1, 1, hi, 2, lo, hi], dtype=dtype.numpy_dtype)
    x1, x2 = upload(a), upload(b)
    for name, op in [("add", operator.add), ("subtract", operator.sub), ("multiply", operator.mul)]:
        expected = to_result(apply(op, a, b), dtype)  # exact, then wrapped modulo 2**bits
        assert getattr(hw, name)(x1, x2).numpy().tolist() == expected.tolist(), name
    assert hw.negative(x1).numpy().tolist() == to_result(apply(operator.neg, a), dtype).tolist()


@pytest.mark.parametrize("dtype", [d for d in dt.all_dtypes() if d.kind == "i"], ids=str)
def test_integer_pow_with_negative_exponents_is_defined(dtype: DType) -> None:
    """NumPy raises for an integer to a negative integer power (which would fail the queued
    kernel); ours is 1 / x1**-x2 truncated toward zero, as documented in the spec."""
    base = np.array([1, -1, -1, 2, -3, 0, 5, 2], dtype=dtype.numpy_dtype)
    exponent = np.array([-3, -3, -2, -1, -2, -1, 0, 3], dtype=dtype.numpy_dtype)
    result = hw.pow(upload(base), upload(exponent))
    assert result.dtype is dtype
    assert result.numpy().tolist() == [1, -1, 1, 0, 0, 0, 1, 8]
    assert (upload(base) ** -1).numpy().tolist() == [1, -1, -1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("dtype", [d for d in dt.all_dtypes() if d.kind in "iu"], ids=str)
def test_integer_division_by_zero_does_not_fail_the_kernel(dtype: DType) -> None:
    """The Array API leaves the value unspecified; the kernel must still complete."""
    a = np.array([7, 0, 5], dtype=dtype.numpy_dtype)
    b = np.array([0, 0, 2], dtype=dtype.numpy_dtype)
    for name in ("floor_divide", "remainder"):
        result = getattr(hw, name)(upload(a), upload(b)).numpy()
        assert result.dtype == dtype.numpy_dtype
        assert result[2] == (2 if name == "floor_divide" else 1)


def test_sign_of_zero_is_positive_zero_in_every_float_dtype() -> None:
    for dtype in (d for d in dt.all_dtypes() if d.kind == "f"):
        host = np.array([-0.0, 0.0], dtype=np.float64).astype(dtype.numpy_dtype)
        out = hw.sign(upload(host)).numpy().astype(np.float64)
        assert out.tolist() == [0.0, 0.0]
        assert not np.signbit(out).any(), dtype


# -- mixed dtypes, errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "result"),
    [
        ("int8", "uint8", "int16"),
        ("int16", "uint32", "int64"),
        ("uint8", "uint32", "uint32"),
        ("int32", "float16", "float16"),
        ("bool", "int8", "int8"),
        ("bfloat16", "float16", "float32"),
        ("float8_e4m3fn", "bfloat16", "bfloat16"),
        ("float32", "complex64", "complex64"),
        ("float64", "complex64", "complex128"),
        ("uint16", "float8_e5m2", "float8_e5m2"),
    ],
)
def test_mixed_dtypes_promote_and_cast_before_the_kernel(
    left: str, right: str, result: str
) -> None:
    rng = np.random.default_rng(7)
    a = sample(dt.dtype(left), (2, 3), rng, low=0, high=3)
    b = sample(dt.dtype(right), (3,), rng, low=0, high=3)
    out = hw.add(upload(a), upload(b))
    out_dtype = dt.dtype(result)
    assert out.dtype is out_dtype
    expected = to_result(apply(operator.add, a, b), out_dtype)
    assert_close(out.numpy(), expected, out_dtype, context=(a, b))


def test_kernels_refuse_dtypes_they_are_not_defined_for() -> None:
    b = upload(np.array([True, False]))
    i = upload(np.array([1, 2], np.int32))
    c = upload(np.array([1j], np.complex64))
    with pytest.raises(DTypeError, match="add\\(\\) is not defined for bool"):
        hw.add(b, b)
    with pytest.raises(DTypeError, match="sqrt\\(\\) is not defined for int32"):
        hw.sqrt(i)
    with pytest.raises(DTypeError, match="less\\(\\) is not defined for complex64"):
        hw.less(c, c)
    with pytest.raises(DTypeError, match="logical_and\\(\\) is not defined for int32"):
        hw.logical_and(i, i)
    with pytest.raises(DTypeError, match="float8 formats do not promote"):
        hw.add(
            upload(np.ones(2, dt.float8_e4m3fn.numpy_dtype)),
            upload(np.ones(2, dt.float8_e5m2.numpy_dtype)),
        )


def test_shapes_that_do_not_broadcast_are_a_shape_error() -> None:
    with pytest.raises(ShapeError, match="do not broadcast"):
        hw.add(upload(np.ones((2, 3), np.float32)), upload(np.ones((4,), np.float32)))


def test_python_scalar_out_of_range_for_the_tensor_dtype_is_refused() -> None:
    with pytest.raises(DTypeError, match=r"300 is out of range for uint8 \[0, 255\]"):
        hw.add(upload(np.ones(2, np.uint8)), 300)


def test_float_scalar_beyond_the_dtype_range_becomes_infinity_without_a_warning() -> None:
    assert hw.add(upload(np.ones(1, np.float16)), 1e6).numpy().tolist() == [math.inf]
    big = hw.add(upload(np.ones(1, dt.bfloat16.numpy_dtype)), 2**200)
    assert big.numpy().astype(np.float64).tolist() == [math.inf]


# -- property: broadcasting against NumPy ----------------------------------------------------------


_PROPERTY_KERNELS = {
    "add": np.add,
    "multiply": np.multiply,
    "maximum": np.maximum,
    "subtract": np.subtract,
}


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    name=st.sampled_from(sorted(_PROPERTY_KERNELS)),
    dtype=st.sampled_from([np.int16, np.uint8, np.float32, np.float64]),
    data=st.data(),
)
def test_broadcasting_binary_kernels_match_numpy(
    shapes: Any, name: str, dtype: Any, data: st.DataObject
) -> None:
    """For same-dtype IEEE/integer arithmetic NumPy's loops are exact (correctly rounded), so
    the cpu result must equal NumPy's bit for bit, whatever the broadcast."""
    elements = (
        st.integers(0, 15)
        if dtype is np.uint8
        else st.integers(-100, 100)
        if dtype is np.int16
        else st.floats(-1e3, 1e3, width=32)
    )
    a = data.draw(hnp.arrays(dtype, shapes.input_shapes[0], elements=elements))
    b = data.draw(hnp.arrays(dtype, shapes.input_shapes[1], elements=elements))
    result = getattr(hw, name)(upload(a), upload(b)).numpy()
    expected = _PROPERTY_KERNELS[name](a, b)
    assert result.shape == shapes.result_shape
    assert result.dtype == expected.dtype
    assert np.array_equal(result, expected)
