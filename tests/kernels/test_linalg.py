"""matmul against a Python oracle (exact integers; math.fsum of float64 products), for every
dtype the cpu backend declares, with batch broadcasting, 1-D operands, empty and strided
inputs."""

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

from .conftest import assert_close, declared, eps, python_values, sample, to_result, upload


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def oracle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The matrix product with the Array API's 1-D and broadcasting rules, each element an
    exact integer or an fsum of float64 (complex128) products."""
    va, vb = python_values(a), python_values(b)
    if a.ndim == 1:
        va = va[None, :]
    if b.ndim == 1:
        vb = vb[:, None]
    batch = np.broadcast_shapes(va.shape[:-2], vb.shape[:-2])
    va = np.broadcast_to(va, batch + va.shape[-2:])
    vb = np.broadcast_to(vb, batch + vb.shape[-2:])
    m, k, n = va.shape[-2], va.shape[-1], vb.shape[-1]
    out = np.empty((*batch, m, n), dtype=object)
    for index in np.ndindex(batch):
        for i in range(m):
            for j in range(n):
                terms = [va[(*index, i, t)] * vb[(*index, t, j)] for t in range(k)]
                out[(*index, i, j)] = _sum(terms)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


def _sum(terms: list[Any]) -> Any:
    if terms and isinstance(terms[0], complex):
        return complex(math.fsum(t.real for t in terms), math.fsum(t.imag for t in terms))
    if terms and isinstance(terms[0], float):
        return math.fsum(terms)
    return sum(terms)


def _atol(a: np.ndarray, b: np.ndarray, dtype: DType) -> float:
    """K products accumulated in float32 (8/16/32-bit floats) or float64: at most
    K * eps(acc) * max_ij sum_k |a_ik| |b_kj|."""
    if dtype.kind not in "fc":
        return 0.0
    k = a.shape[-1]
    mag = np.abs(a.astype(np.complex128)).max(initial=0) * np.abs(b.astype(np.complex128)).max(
        initial=0
    )
    acc = dt.float64 if dtype.bits in (64, 128) and dtype.name != "complex64" else dt.float32
    return 2 * k * eps(acc) * k * float(mag)


SHAPES = {
    "2d": ((3, 5), (5, 2)),
    "batched-broadcast": ((2, 1, 3, 4), (3, 4, 2)),
    "vector-matrix": ((4,), (4, 3)),
    "matrix-vector": ((3, 4), (4,)),
    "vector-vector": ((4,), (4,)),
    "vector-batch": ((4,), (2, 4, 3)),
    "batch-vector": ((2, 3, 4), (4,)),
    "k=0": ((3, 0), (0, 2)),
    "m=0": ((0, 4), (4, 2)),
}


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("case", list(SHAPES))
@pytest.mark.parametrize("dtype", declared("matmul"), ids=str)
def test_matmul(dtype: DType, case: str, layout: str) -> None:
    shape1, shape2 = SHAPES[case]
    rng = _rng(dtype.name, case, layout)
    a = sample(dtype, shape1, rng, low=-3, high=3)
    b = sample(dtype, shape2, rng, low=-3, high=3)
    result = hw.matmul(upload(a, layout), upload(b, "flipped" if layout == "strided" else layout))
    expected = to_result(oracle(a, b), dtype)
    assert result.dtype is dtype
    assert result.shape == np.matmul(np.zeros(shape1), np.zeros(shape2)).shape
    assert_close(result.numpy(), expected, dtype, atol=_atol(a, b, dtype), context=(a, b))


@pytest.mark.parametrize("dtype", [dt.bfloat16, dt.float16, dt.float8_e4m3fn], ids=str)
def test_narrow_floats_accumulate_in_float32(dtype: DType) -> None:
    """big + 1 + 1 + ... with the ulp of ``big`` at 4: accumulated in the narrow dtype every
    1 would be rounded away; in float32 they add up before the single final rounding."""
    k = 256
    big = 4 / eps(dtype)
    a = np.ones((1, k), np.float32)
    b = np.full((k, 1), 1.0, np.float32)
    b[0, 0] = big
    result = hw.matmul(upload(a.astype(dtype.numpy_dtype)), upload(b.astype(dtype.numpy_dtype)))
    exact = big + (k - 1)
    expected = np.array([[exact]]).astype(dtype.numpy_dtype)
    assert result.numpy().astype(np.float64).tolist() == expected.astype(np.float64).tolist()


def test_matmul_promotes_mixed_dtypes() -> None:
    a = upload(np.array([[1, 2], [3, 4]], np.int8))
    b = upload(np.array([[200, 0], [0, 200]], np.uint8))
    out = hw.matmul(a, b)
    assert out.dtype is dt.int16
    assert out.numpy().tolist() == [[200, 400], [600, 800]]
    f = hw.matmul(a, upload(np.eye(2, dtype=np.float16)))
    assert f.dtype is dt.float16
    assert f.numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_matmul_errors() -> None:
    m = upload(np.ones((2, 3), np.float32))
    with pytest.raises(
        ShapeError,
        match=r"last dimension of the first \(3\) must equal the "
        r"second-to-last of the second \(2\)",
    ):
        hw.matmul(m, m)
    with pytest.raises(ShapeError, match="does not take 0-d tensors"):
        hw.matmul(upload(np.float32(1.0)), m)
    with pytest.raises(ShapeError, match="do not broadcast"):
        hw.matmul(upload(np.ones((2, 2, 3), np.float32)), upload(np.ones((3, 3, 2), np.float32)))
    with pytest.raises(DTypeError, match=r"matmul\(\) is not defined for bool"):
        hw.matmul(upload(np.ones((2, 2), bool)), upload(np.ones((2, 2), bool)))
    with pytest.raises(DTypeError, match=r"matmul\(\) needs a hwabstract Tensor"):
        hw.matmul(m, 2)


def test_empty_views_with_offsets_reach_the_kernel_safely() -> None:
    """Views of empty tensors can carry an offset past their zero-byte buffer (here: rows
    1.. of a (3, 0) tensor); matmul with K == 0 still launches on them and must give 0."""
    a = hw.zeros((3, 0), dtype="float32")[1:]
    b = hw.flip(hw.zeros((0, 2), dtype="float32"))
    assert hw.matmul(a, b).numpy().tolist() == [[0.0, 0.0], [0.0, 0.0]]
