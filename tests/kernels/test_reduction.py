"""Reductions against independent oracles, for every dtype the cpu backend declares.

Expected values are computed row by row in Python: ``math.fsum`` (exact, then rounded
once) for sums and means, two-pass fsum for var/std, Python ``min``/``max``/``any``/``all``,
exact integers for integer sums and products. Floating sums may differ from the exact value
by the accumulation bound of ``conftest.accumulation_atol``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

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
    accumulation_atol,
    assert_close,
    declared,
    python_values,
    sample,
    to_result,
    upload,
)

SHAPE = (2, 3, 4)
#: (axis, keepdims, layout) cases run for every reduction and dtype; "0-d" reduces a 0-d
#: tensor, every other layout a (2, 3, 4) one
CASES = [
    (None, False, "0-d"),
    (None, False, "contiguous"),
    (None, True, "strided"),
    (1, False, "strided"),
    (-1, True, "contiguous"),
    ((0, 2), False, "flipped"),
    ((), False, "contiguous"),
]
SINGLE_AXIS_CASES = [c for c in CASES if c[0] is None or isinstance(c[0], int)]


def _shape(layout: str) -> tuple[int, ...]:
    return () if layout == "0-d" else SHAPE


def _upload(host: np.ndarray, layout: str) -> hw.Tensor:
    return upload(host, "contiguous" if layout == "0-d" else layout)


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(a % ndim for a in ((axis,) if isinstance(axis, int) else axis)))


def reduce_rows(
    host: np.ndarray, axis: Any, keepdims: bool, fn: Callable[[list[Any]], Any]
) -> np.ndarray:
    """``fn`` applied to the Python values of each reduced row (in C order of the reduced
    axes), shaped as the reduction's result."""
    axes = _axes(axis, host.ndim)
    kept = [a for a in range(host.ndim) if a not in axes]
    values = python_values(host)
    rows = np.transpose(values, kept + list(axes)).reshape(
        [host.shape[a] for a in kept] + [math.prod(host.shape[a] for a in axes)]
    )
    out = np.empty(rows.shape[:-1], dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = fn(list(rows[index]))
    if keepdims:
        out = out.reshape([1 if a in axes else host.shape[a] for a in range(host.ndim)])
    return out


def _fsum(row: list[Any]) -> Any:
    if row and isinstance(row[0], complex):
        return complex(math.fsum(v.real for v in row), math.fsum(v.imag for v in row))
    if row and isinstance(row[0], float):
        return math.fsum(row)
    return sum(int(v) for v in row)


def _prod(row: list[Any]) -> Any:
    if row and isinstance(row[0], (float, complex)):
        result: Any = 1.0
        for v in row:
            result *= v
        return result
    return math.prod(int(v) for v in row)


def _mean(row: list[Any]) -> Any:
    return _fsum(row) / len(row) if row else math.nan


def _var(correction: float) -> Callable[[list[Any]], float]:
    def var(row: list[Any]) -> float:
        n = len(row)
        if n - correction <= 0:
            return math.nan
        mean = math.fsum(row) / n
        return math.fsum((v - mean) ** 2 for v in row) / (n - correction)

    return var


def _nan_aware(pick: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    def fn(row: list[Any]) -> Any:
        if any(isinstance(v, float) and math.isnan(v) for v in row):
            return math.nan
        return pick(row)

    return fn


def _first_index(pick: Callable[[list[Any]], Any]) -> Callable[[list[Any]], int]:
    return lambda row: row.index(pick(row))


def _sum_dtype(dtype: DType) -> DType:
    """The Array API default: integer sums/products in the widest integer of their kind."""
    if dtype.kind in "bi":
        return dt.int64
    if dtype.kind == "u":
        return dt.uint64
    return dtype


def _data(name: str, dtype: DType, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    if name == "prod":
        # stay far from overflow in the narrow floats: products of 24 values near 1
        return sample(
            dtype,
            shape,
            rng,
            low=0.5 if dtype.kind in "fc" else -2,
            high=1.5 if dtype.kind in "fc" else 2,
        )
    if name in ("argmin", "argmax", "min", "max") and dtype.kind in "iu":
        return sample(dtype, shape, rng, low=-3, high=3)  # ties: the first index must win
    return sample(dtype, shape, rng)


def _cases(names: Sequence[str], cases: list[tuple[Any, bool, str]]) -> list[Any]:
    return [
        pytest.param(
            name,
            d,
            axis,
            keepdims,
            layout,
            id=f"{name}-{d.name}-axis={axis}-keepdims={keepdims}-{layout}",
        )
        for name in names
        for d in declared(name)
        for axis, keepdims, layout in cases
    ]


@pytest.mark.parametrize(
    ("name", "dtype", "axis", "keepdims", "layout"), _cases(["sum", "prod", "mean"], CASES)
)
def test_sum_prod_mean(name: str, dtype: DType, axis: Any, keepdims: bool, layout: str) -> None:
    host = _data(name, dtype, _shape(layout), _rng(name, dtype.name, axis, layout))
    x = _upload(host, layout)
    result = getattr(hw, name)(x, axis=axis, keepdims=keepdims)
    out_dtype = _sum_dtype(dtype) if name != "mean" else dtype
    assert result.dtype is out_dtype
    fn = {"sum": _fsum, "prod": _prod, "mean": _mean}[name]
    expected = to_result(reduce_rows(host, axis, keepdims, fn), out_dtype)
    n = math.prod(host.shape[a] for a in _axes(axis, host.ndim))
    terms = python_values(host).reshape(-1).tolist()
    if name == "prod":
        atol = (
            n * 2 * np.finfo(np.float32).eps * float(np.max(np.abs(expected)))
            if (dtype.kind in "fc")
            else 0.0
        )
    else:
        atol = accumulation_atol(terms, n, dtype) / (n if name == "mean" else 1)
    assert_close(result.numpy(), expected, out_dtype, atol=atol, context=host)


@pytest.mark.parametrize(
    ("name", "dtype", "axis", "keepdims", "layout"), _cases(["var", "std"], CASES)
)
@pytest.mark.parametrize("correction", [0, 1])
def test_var_std(
    name: str, dtype: DType, axis: Any, keepdims: bool, layout: str, correction: int
) -> None:
    host = _data(name, dtype, _shape(layout), _rng(name, dtype.name, axis, layout))
    result = getattr(hw, name)(
        _upload(host, layout), axis=axis, keepdims=keepdims, correction=correction
    )
    assert result.dtype is dtype
    var = reduce_rows(host, axis, keepdims, _var(correction))
    expected = np.sqrt(var.astype(np.float64)) if name == "std" else var
    n = math.prod(host.shape[a] for a in _axes(axis, host.ndim))
    # two accumulations of n terms: the relative error of var is about 2 n eps(acc), and
    # std = sqrt(var) halves it
    acc_eps = float(np.finfo(np.float64 if dtype.bits == 64 else np.float32).eps)
    atol = 4 * n * acc_eps * float(np.max(np.abs(expected.astype(np.float64)), initial=0.0))
    assert_close(result.numpy(), to_result(expected, dtype), dtype, atol=atol, context=host)


@pytest.mark.parametrize(
    ("name", "dtype", "axis", "keepdims", "layout"), _cases(["min", "max"], CASES)
)
def test_min_max(name: str, dtype: DType, axis: Any, keepdims: bool, layout: str) -> None:
    host = _data(name, dtype, _shape(layout), _rng(name, dtype.name, axis, layout))
    result = getattr(hw, name)(_upload(host, layout), axis=axis, keepdims=keepdims)
    assert result.dtype is dtype
    expected = reduce_rows(host, axis, keepdims, min if name == "min" else max)
    assert_close(result.numpy(), to_result(expected, dtype), dtype, ulps=0, context=host)


@pytest.mark.parametrize(
    ("name", "dtype", "axis", "keepdims", "layout"),
    _cases(["argmin", "argmax"], SINGLE_AXIS_CASES),
)
def test_argmin_argmax(name: str, dtype: DType, axis: Any, keepdims: bool, layout: str) -> None:
    """Index of the first extreme along ``axis``; over the flattened tensor for None (with
    keepdims: shape (1, 1, 1))."""
    host = _data(name, dtype, _shape(layout), _rng(name, dtype.name, axis, layout))
    result = getattr(hw, name)(_upload(host, layout), axis=axis, keepdims=keepdims)
    assert result.dtype is dt.int64
    pick = min if name == "argmin" else max
    if axis is None:
        flat = python_values(host).reshape(-1).tolist()
        expected = np.array(flat.index(pick(flat))).reshape((1,) * host.ndim if keepdims else ())
    else:
        expected = reduce_rows(host, axis, keepdims, _first_index(pick))
    assert_close(result.numpy(), expected, dt.int64, context=host)


@pytest.mark.parametrize(
    ("name", "dtype", "axis", "keepdims", "layout"), _cases(["any", "all"], CASES[:4])
)
def test_any_all(name: str, dtype: DType, axis: Any, keepdims: bool, layout: str) -> None:
    rng = _rng(name, dtype.name, axis, layout)
    host = sample(dtype, _shape(layout), rng, low=0, high=1)
    if dtype.kind != "b":  # mostly nonzero, some zeros, so both answers occur
        zero = np.zeros((), dtype.numpy_dtype)
        host = np.where(rng.random(host.shape) < 0.15, zero, host + np.ones((), dtype.numpy_dtype))
        host = host.astype(dtype.numpy_dtype)
    result = getattr(hw, name)(_upload(host, layout), axis=axis, keepdims=keepdims)
    assert result.dtype is dt.bool_
    fn = any if name == "any" else all
    expected = reduce_rows(host, axis, keepdims, lambda row: fn(bool(v) for v in row))
    assert_close(result.numpy(), expected.astype(bool), dt.bool_, context=host)


# -- special values --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [d for d in declared("max") if d.kind == "f"], ids=str)
def test_nan_propagates_through_min_max_sum_and_mean(dtype: DType) -> None:
    host = np.array([[1.0, np.nan, 2.0], [1.0, -0.5, 2.0]]).astype(dtype.numpy_dtype)
    x = upload(host)
    for name in ("min", "max", "sum", "mean", "prod", "var"):
        out = getattr(hw, name)(x, axis=1).numpy().astype(np.float64)
        assert np.isnan(out[0]) and not np.isnan(out[1]), name
    # NaN is nonzero: any() sees it as true
    assert hw.any(upload(np.array([0.0, np.nan]).astype(dtype.numpy_dtype))).item() is True


@pytest.mark.parametrize(
    "dtype", [d for d in declared("sum") if d.kind == "f" and d is not dt.float8_e4m3fn], ids=str
)
def test_infinities_in_sums(dtype: DType) -> None:
    host = np.array([[np.inf, 1.0], [np.inf, -np.inf], [-np.inf, -1.0]]).astype(dtype.numpy_dtype)
    out = hw.sum(upload(host), axis=1).numpy().astype(np.float64)
    assert out[0] == math.inf and np.isnan(out[1]) and out[2] == -math.inf
    assert hw.max(upload(host)).numpy().astype(np.float64) == math.inf


# -- empty, 0-d, accumulators, dtype= --------------------------------------------------------------


@pytest.mark.parametrize("dtype", declared("sum"), ids=str)
def test_empty_reductions_give_the_identity(dtype: DType) -> None:
    x = upload(np.zeros((0, 3), dtype.numpy_dtype))
    total = hw.sum(x, axis=0)
    product = hw.prod(x, axis=0)
    assert total.shape == product.shape == (3,)
    assert total.numpy().astype(np.complex128).tolist() == [0, 0, 0]
    assert product.numpy().astype(np.complex128).tolist() == [1, 1, 1]
    assert hw.any(x, axis=0).numpy().tolist() == [False] * 3
    assert hw.all(x, axis=0).numpy().tolist() == [True] * 3
    # reducing only non-empty axes of an empty tensor gives an empty result
    assert hw.sum(x, axis=1).shape == (0,)


@pytest.mark.parametrize("dtype", declared("mean"), ids=str)
def test_mean_of_nothing_is_nan_without_a_warning(dtype: DType) -> None:
    """The Array API: the mean over zero elements is NaN. (np.mean warns, which fails the
    queued kernel under -W error; the reference must not.)"""
    out = hw.mean(upload(np.zeros((0, 2), dtype.numpy_dtype)), axis=0).numpy()
    assert out.shape == (2,)
    assert np.isnan(out.astype(np.complex128).real).all()


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("dtype", declared("var"), ids=str)
def test_var_std_are_nan_when_correction_leaves_no_degrees_of_freedom(
    name: str, dtype: DType
) -> None:
    """The Array API: NaN where N - correction <= 0 (np.var gives inf, or NaN with a
    warning)."""
    x = upload(np.array([[1.0, 2.0], [3.0, 5.0]]).astype(dtype.numpy_dtype))
    fn = getattr(hw, name)
    for correction in (2, 3):
        out = fn(x, axis=1, correction=correction).numpy().astype(np.float64)
        assert np.isnan(out).all(), correction
    assert np.isnan(fn(upload(np.zeros((0,), dtype.numpy_dtype))).numpy().astype(np.float64))
    ok = fn(x, axis=1, correction=1).numpy()  # N - correction = 1
    expected = [0.5, 2.0] if name == "var" else [math.sqrt(0.5), math.sqrt(2.0)]
    assert_close(ok, np.array(expected), dtype)


@pytest.mark.parametrize("name", ["min", "max", "argmin", "argmax"])
def test_reductions_without_identity_refuse_empty_axes(name: str) -> None:
    x = upload(np.zeros((0, 3), np.float32))
    with pytest.raises(ShapeError, match=f"{name}\\(\\) of an empty dimension has no identity"):
        getattr(hw, name)(x, axis=0)
    assert getattr(hw, name)(x, axis=1).shape == (0,)  # nothing reduced over the empty axis


@pytest.mark.parametrize(
    "name", ["sum", "prod", "min", "max", "mean", "var", "std", "argmin", "argmax", "any", "all"]
)
def test_reducing_a_0d_tensor(name: str) -> None:
    x = upload(np.array(2.5, np.float32))
    out = getattr(hw, name)(x)
    assert out.shape == ()
    expected = {"var": 0.0, "std": 0.0, "argmin": 0, "argmax": 0, "any": True, "all": True}
    assert out.item() == expected.get(name, 2.5)
    assert getattr(hw, name)(x, keepdims=True).shape == ()


@pytest.mark.parametrize("dtype", [dt.bfloat16, dt.float16, dt.float8_e5m2], ids=str)
def test_narrow_floats_accumulate_in_float32(dtype: DType) -> None:
    """Accumulating 4096 ones in the narrow dtype itself would stop at 256 (bfloat16), 2048
    (float16) or 8 (float8_e5m2)."""
    n = 4096
    ones = upload(np.ones(n, dtype.numpy_dtype))
    assert float(hw.sum(ones).item()) == n
    assert float(hw.mean(ones).item()) == 1.0
    x = upload(np.array([1.0, -1.0] * (n // 2)).astype(dtype.numpy_dtype))
    assert float(hw.var(x).item()) == 1.0


def test_sum_of_bools_counts_in_int64_and_prod_is_logical_and() -> None:
    x = upload(np.array([[True, False, True], [True, True, True]]))
    assert hw.sum(x, axis=1).numpy().tolist() == [2, 3]
    assert hw.sum(x).dtype is dt.int64
    assert hw.prod(x, axis=1).numpy().tolist() == [0, 1]
    assert hw.prod(x).dtype is dt.int64
    assert hw.any(x, axis=0).numpy().tolist() == [True, True, True]
    assert hw.all(x, axis=0).numpy().tolist() == [True, False, True]


@pytest.mark.parametrize("name", ["min", "max", "argmin", "argmax", "mean", "var"])
def test_reductions_refuse_bool(name: str) -> None:
    with pytest.raises(DTypeError, match=f"{name}\\(\\) is not defined for bool"):
        getattr(hw, name)(upload(np.array([True, False])))


def test_sum_and_prod_take_an_accumulation_dtype() -> None:
    small = upload(np.array([100, 100], np.int8))
    assert hw.sum(small).item() == 200
    assert hw.sum(small).dtype is dt.int64
    wrapped = hw.sum(small, dtype=hw.int8)
    assert wrapped.dtype is dt.int8 and wrapped.item() == -56  # 200 wraps modulo 256
    assert hw.sum(upload(np.array([200, 200], np.uint8))).dtype is dt.uint64
    x = upload(np.array([1e8, 1.0, -1e8], np.float32))
    as64 = hw.sum(x, dtype="float64")
    assert as64.dtype is dt.float64 and as64.item() == 1.0  # cast first, then summed
    assert hw.prod(upload(np.array([300, 300], np.uint16)), dtype=np.uint32).item() == 90000
    with pytest.raises(TypeError, match="unexpected keyword"):
        hw.max(small, dtype=hw.int64)


def test_axis_errors() -> None:
    x = upload(np.zeros((2, 3), np.float32))
    with pytest.raises(ShapeError, match="axis 2 is out of range"):
        hw.sum(x, axis=2)
    with pytest.raises(ShapeError, match="names the same dimension twice"):
        hw.sum(x, axis=(0, -2))
    with pytest.raises(ShapeError, match=r"argmax\(\) takes a single int axis or None"):
        hw.argmax(x, axis=(0, 1))
    with pytest.raises(ShapeError, match="must be an int"):
        hw.mean(x, axis=0.5)


def test_reduction_out_and_aliasing() -> None:
    x = upload(np.arange(6, dtype=np.float32).reshape(2, 3))
    out = hw.zeros((3,), dtype="float32")
    assert hw.sum(x, axis=0, out=out) is out
    assert out.numpy().tolist() == [3.0, 5.0, 7.0]
    # out= a view of the input: the result is computed into a temporary first
    hw.max(x, axis=0, out=x[0])
    assert x.numpy().tolist() == [[3.0, 4.0, 5.0], [3.0, 4.0, 5.0]]
    with pytest.raises(ShapeError, match=r"needs shape \(3,\)"):
        hw.sum(x, axis=0, out=hw.zeros((2,), dtype="float32"))
    with pytest.raises(DTypeError, match="needs dtype int64"):
        hw.argmax(x, axis=0, out=hw.zeros((3,), dtype="int32"))


def test_reductions_need_a_tensor() -> None:
    with pytest.raises(DTypeError, match=r"sum\(\) needs a hwabstract Tensor, got list"):
        hw.sum([1, 2, 3])


# -- property: random axes against NumPy -----------------------------------------------------------


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    host=hnp.arrays(
        np.int32,
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
        elements=st.integers(-1000, 1000),
    ),
    data=st.data(),
    keepdims=st.booleans(),
)
def test_integer_sum_and_max_over_random_axes_match_numpy(
    host: np.ndarray, data: st.DataObject, keepdims: bool
) -> None:
    axes = tuple(data.draw(st.sets(st.integers(0, max(host.ndim - 1, 0)), max_size=host.ndim)))
    axis: Any = data.draw(st.sampled_from([None, axes]))
    x = upload(host)
    total = hw.sum(x, axis=axis, keepdims=keepdims).numpy()
    expected = np.sum(host, axis=axis, keepdims=keepdims, dtype=np.int64)
    assert total.dtype == np.int64
    assert np.array_equal(total, expected)
    reduced = range(host.ndim) if axis is None else axes
    if all(host.shape[a] for a in reduced):
        largest = hw.max(x, axis=axis, keepdims=keepdims).numpy()
        assert np.array_equal(largest, np.max(host, axis=axis, keepdims=keepdims))
