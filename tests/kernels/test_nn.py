"""ML primitives against float64 oracles written with Python's math module, for every dtype
the cpu backend declares. 8-, 16- and 32-bit floats compute in float32 and round once, so
the tolerance is the dtype's ulps plus a small float32 accumulation bound."""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.dtypes import DType
from hwabstract.errors import DTypeError, ShapeError

from .conftest import accumulator, assert_close, declared, eps, python_values, sample, upload


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _rows(values: np.ndarray, axis: int) -> np.ndarray:
    """``values`` (object array) with ``axis`` moved last."""
    return np.moveaxis(values, axis, -1)


def softmax_oracle(host: np.ndarray, axis: int, log: bool) -> np.ndarray:
    rows = _rows(python_values(host), axis)
    out = np.empty(rows.shape, dtype=object)
    for index in np.ndindex(rows.shape[:-1]):
        row = list(rows[index])
        top = max(row)
        total = math.fsum(math.exp(v - top) for v in row)
        out[index] = [
            (v - top - math.log(total)) if log else math.exp(v - top) / total for v in row
        ]
    return np.moveaxis(out, -1, axis).astype(np.float64)


def layer_norm_oracle(
    host: np.ndarray,
    axes: tuple[int, ...],
    eps_: float,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
) -> np.ndarray:
    values = python_values(host)
    lead = host.ndim - len(axes)
    rows = values.reshape((*host.shape[:lead], -1))
    out = np.empty(rows.shape, dtype=object)
    for index in np.ndindex(rows.shape[:-1]):
        row = list(rows[index])
        mean = math.fsum(row) / len(row)
        var = math.fsum((v - mean) ** 2 for v in row) / len(row)
        out[index] = [(v - mean) / math.sqrt(var + eps_) for v in row]
    y = out.reshape(host.shape).astype(np.float64)
    if weight is not None:
        y = y * weight.astype(np.float64)
    if bias is not None:
        y = y + bias.astype(np.float64)
    return y


def gelu(v: float) -> float:
    return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def gelu_tanh(v: float) -> float:
    return 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))


def silu(v: float) -> float:
    if v < 0:  # x * e**x / (1 + e**x): no overflow for large negative x
        return v * math.exp(v) / (1.0 + math.exp(v))
    return v / (1.0 + math.exp(-v))


def _elementwise(fn: Any, host: np.ndarray) -> np.ndarray:
    return np.asarray(np.frompyfunc(fn, 1, 1)(python_values(host)), dtype=np.float64)


def _acc_atol(dtype: DType, scale: float, terms: int = 1) -> float:
    """Error of computing in the accumulator dtype (float32 for <= 32 bits): a few ulps per
    term of that dtype at the data's scale. Beyond this the result dtype's own ulps apply."""
    return 8 * terms * eps(accumulator(dtype)) * scale


LAYOUTS = {
    "contiguous": (3, 5),
    "strided": (2, 3, 4),
    "flipped": (4, 6),
    "0-d": (),
    "empty": (0, 3),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", declared("gelu"), ids=str)
@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu", "relu"])
def test_activations(name: str, dtype: DType, layout: str) -> None:
    host = sample(dtype, LAYOUTS[layout], _rng(name, dtype.name, layout))
    x = upload(host, layout if layout in ("strided", "flipped") else "contiguous")
    tanh = name == "gelu_tanh"
    result = hw.gelu(x, approximate="tanh") if tanh else getattr(hw, name)(x)
    fn = {"gelu": gelu, "gelu_tanh": gelu_tanh, "silu": silu, "relu": lambda v: max(v, 0.0)}
    expected = _elementwise(fn[name], host)
    assert result.shape == host.shape
    atol = 0.0 if name == "relu" else _acc_atol(dtype, 4.0)
    assert_close(result.numpy(), expected, dtype, atol=atol, context=host)


@pytest.mark.parametrize("dtype", [d for d in declared("relu") if d.kind in "iu"], ids=str)
def test_relu_of_integers(dtype: DType) -> None:
    host = sample(dtype, (3, 4), _rng("relu", dtype.name), low=-50, high=50)
    result = hw.relu(upload(host, "strided"))
    assert result.dtype is dtype
    assert result.numpy().tolist() == np.where(host > 0, host, 0).tolist()


@pytest.mark.parametrize("dtype", declared("gelu"), ids=str)
def test_activation_special_values(dtype: DType) -> None:
    """relu keeps NaN and -0.0; gelu and silu tend to -0.0 at -inf and +inf at +inf (the
    limits, not the NaN of evaluating -inf * 0)."""
    host = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0]).astype(dtype.numpy_dtype)
    x = upload(host)
    has_inf = dtype is not dt.float8_e4m3fn
    inf_results = [np.inf, -0.0] if has_inf else [np.nan, np.nan]
    expected = np.array([np.nan, *inf_results, 0.0, -0.0])
    for result in (hw.gelu(x), hw.gelu(x, approximate="tanh"), hw.silu(x)):
        assert_close(result.numpy(), expected, dtype, zero_sign=True)
    relu_expected = np.array([np.nan, *([np.inf, 0.0] if has_inf else [np.nan, np.nan]), 0.0, -0.0])
    assert_close(hw.relu(x).numpy(), relu_expected, dtype, zero_sign=True)
    big = np.array([-1000.0, 1000.0]).astype(dtype.numpy_dtype)  # e4m3fn: NaN (no 1000)
    expected_big = (
        _elementwise(silu, big)
        if np.isfinite(big.astype(np.float64)).all()
        else (np.array([np.nan, np.nan]))
    )
    assert_close(hw.silu(upload(big)).numpy(), expected_big, dtype)


@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("dtype", declared("softmax"), ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(name: str, dtype: DType, layout: str, axis: int) -> None:
    host = sample(dtype, (3, 5), _rng(name, dtype.name, layout, axis))
    result = getattr(hw, name)(upload(host, layout), axis=axis)
    expected = softmax_oracle(host, axis, log=name == "log_softmax")
    assert result.dtype is dtype and result.shape == host.shape
    scale = 1.0 if name == "softmax" else 10.0
    assert_close(
        result.numpy(), expected, dtype, atol=_acc_atol(dtype, scale, terms=5), context=host
    )
    if name == "softmax":
        sums = result.numpy().astype(np.float64).sum(axis=axis)
        assert np.allclose(sums, 1.0, atol=host.shape[axis] * 2 * eps(dtype))


@pytest.mark.parametrize(
    "dtype", [d for d in declared("softmax") if d is not dt.float8_e4m3fn], ids=str
)
def test_softmax_masking_with_minus_infinity(dtype: DType) -> None:
    host = np.array([[0.0, -np.inf, 1.0], [2.0, 2.0, -np.inf]]).astype(dtype.numpy_dtype)
    probabilities = hw.softmax(upload(host)).numpy().astype(np.float64)
    assert probabilities[0, 1] == 0.0 and probabilities[1, 2] == 0.0
    assert_close(
        hw.softmax(upload(host)).numpy(),
        softmax_oracle(host, -1, log=False),
        dtype,
        atol=_acc_atol(dtype, 1.0, 3),
    )
    logs = hw.log_softmax(upload(host)).numpy().astype(np.float64)
    assert logs[0, 1] == -np.inf and logs[1, 2] == -np.inf
    assert np.isnan(
        hw.softmax(upload(np.array([np.nan, 1.0], dtype.numpy_dtype))).numpy().astype(np.float64)
    ).all()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_of_empty_and_errors(name: str) -> None:
    fn = getattr(hw, name)
    assert fn(upload(np.zeros((0, 3), np.float32)), axis=0).shape == (0, 3)
    assert fn(upload(np.zeros((2, 0), np.float32))).shape == (2, 0)
    with pytest.raises(ShapeError, match="at least one dimension"):
        fn(upload(np.float32(1.0)))
    with pytest.raises(ShapeError, match="axis must be an int"):
        fn(upload(np.zeros((2, 2), np.float32)), axis=(0, 1))
    with pytest.raises(ShapeError, match="axis 2 is out of range"):
        fn(upload(np.zeros((2, 2), np.float32)), axis=2)
    with pytest.raises(DTypeError, match=f"{name}\\(\\) is not defined for int32"):
        fn(upload(np.zeros(2, np.int32)))


@pytest.mark.parametrize(
    ("shape", "axis", "params"),
    [
        ((3, 8), -1, "none"),
        ((3, 8), -1, "both"),
        ((2, 3, 4), (-2, -1), "both"),
        ((2, 3, 4), (1, 2), "weight"),
        ((2, 3, 4), -1, "bias-broadcast"),
    ],
)
@pytest.mark.parametrize("dtype", declared("layer_norm"), ids=str)
def test_layer_norm(dtype: DType, shape: tuple[int, ...], axis: Any, params: str) -> None:
    rng = _rng("layer_norm", dtype.name, shape, axis, params)
    host = sample(dtype, shape, rng)
    axes = tuple(sorted(a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)))
    normalized = tuple(shape[a] for a in axes)
    weight = (
        sample(dtype, normalized, rng, low=0.5, high=2.0) if params in ("both", "weight") else None
    )
    bias = None
    if params == "both":
        bias = sample(dtype, normalized, rng, low=-1.0, high=1.0)
    elif params == "bias-broadcast":
        bias = sample(dtype, (1,), rng, low=-1.0, high=1.0)  # broadcasts to the normalized shape
    result = hw.layer_norm(
        upload(host, "strided"),
        None if weight is None else upload(weight),
        None if bias is None else upload(bias),
        axis=axis,
        eps=1e-5,
    )
    expected = layer_norm_oracle(host, axes, 1e-5, weight, bias)
    assert result.dtype is dtype and result.shape == shape
    n = int(np.prod(normalized))
    scale = float(np.max(np.abs(expected))) + 1.0
    assert_close(
        result.numpy(), expected, dtype, atol=_acc_atol(dtype, scale, terms=n), context=host
    )


def test_layer_norm_of_a_constant_row_is_the_bias() -> None:
    host = np.full((2, 4), 3.0, np.float32)
    bias = upload(np.array([0.5, -0.5, 1.0, 0.0], np.float32))
    out = hw.layer_norm(upload(host), None, bias).numpy()
    assert out.tolist() == [[0.5, -0.5, 1.0, 0.0]] * 2


def test_layer_norm_empty_and_errors() -> None:
    assert hw.layer_norm(upload(np.zeros((0, 3), np.float32))).shape == (0, 3)
    assert hw.layer_norm(upload(np.zeros((3, 0), np.float32))).shape == (3, 0)
    x = upload(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ShapeError, match="not a run of trailing axes"):
        hw.layer_norm(x, axis=0)
    with pytest.raises(ShapeError, match="not a run of trailing axes"):
        hw.layer_norm(upload(np.float32(1.0)))
    with pytest.raises(ShapeError, match=r"must broadcast to the normalized shape \(4,\)"):
        hw.layer_norm(x, upload(np.ones(3, np.float32)))
    with pytest.raises(DTypeError, match="parameters must have x's dtype float32"):
        hw.layer_norm(x, upload(np.ones(4, np.float16)))
    with pytest.raises(DTypeError, match=r"layer_norm\(\) is not defined for int32"):
        hw.layer_norm(upload(np.zeros((2, 2), np.int32)))


def test_gelu_rejects_unknown_approximations_and_integers() -> None:
    x = upload(np.zeros(2, np.float32))
    with pytest.raises(ShapeError, match="approximate must be 'none' or 'tanh'"):
        hw.gelu(x, approximate="erf")
    for fn in (hw.gelu, hw.silu):
        with pytest.raises(DTypeError, match="is not defined for int8"):
            fn(upload(np.zeros(2, np.int8)))
    with pytest.raises(DTypeError, match=r"relu\(\) is not defined for bool"):
        hw.relu(upload(np.zeros(2, bool)))
