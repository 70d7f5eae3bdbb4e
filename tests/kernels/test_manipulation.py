"""Manipulation kernels (views and copies) for every dtype the cpu backend declares. They move
bits without arithmetic, so results must match NumPy's equivalent bit for bit, NaN and -0.0
included."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.dtypes import DType
from hwabstract.errors import ShapeError
from hwabstract.kernels import get_spec

from .conftest import declared, sample, specials, upload


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _data(dtype: DType, shape: tuple[int, ...], key: object) -> np.ndarray:
    host = sample(dtype, shape, _rng(dtype.name, shape, key), low=-100, high=100)
    if dtype.kind == "f" and host.size >= 4:
        flat = host.reshape(-1)
        flat[:4] = specials(dtype)[[0, 2, 4, 3]]  # NaN, -inf (NaN in e4m3fn), -0.0, +0.0
    return host


def assert_bits_equal(actual: hw.Tensor, expected: np.ndarray, dtype: DType) -> None:
    out = actual.numpy()
    assert actual.dtype is dtype
    assert out.dtype == dtype.numpy_dtype
    assert out.shape == expected.shape
    item = dtype.numpy_dtype.itemsize
    as_bits = f"u{item}" if dtype.kind != "c" else f"u{item // 2}"
    assert np.array_equal(
        np.ascontiguousarray(out).view(as_bits), np.ascontiguousarray(expected).view(as_bits)
    )


DTYPES = declared("reshape")


def test_every_manipulation_kernel_is_declared_for_every_dtype() -> None:
    for name in ("permute_dims", "reshape", "flip", "broadcast_to", "concat", "stack"):
        assert declared(name) == list(dt.all_dtypes()), name
        assert get_spec(name).composite


@pytest.mark.parametrize("layout", ["contiguous", "strided", "flipped"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_views(dtype: DType, layout: str) -> None:
    host = _data(dtype, (2, 3, 4), layout)
    x = upload(host, layout)
    cases: list[tuple[Callable[[hw.Tensor], hw.Tensor], np.ndarray]] = [
        (lambda t: hw.permute_dims(t, (2, 0, 1)), np.transpose(host, (2, 0, 1))),
        (lambda t: hw.permute_dims(t, (-1, -2, -3)), np.transpose(host, (2, 1, 0))),
        (lambda t: hw.flip(t), np.flip(host)),
        (lambda t: hw.flip(t, axis=1), np.flip(host, 1)),
        (lambda t: hw.flip(t, axis=(0, -1)), np.flip(host, (0, 2))),
        (
            lambda t: hw.broadcast_to(t[:, :1], (5, 2, 3, 4)),
            np.broadcast_to(host[:, :1], (5, 2, 3, 4)),
        ),
        (lambda t: hw.reshape(t, (4, -1)), np.reshape(host, (4, -1))),
        (lambda t: hw.reshape(t, (24,)), np.reshape(host, 24)),
        (lambda t: hw.reshape(t, (2, 1, 12, 1)), np.reshape(host, (2, 1, 12, 1))),
    ]
    for op, expected in cases:
        assert_bits_equal(op(x), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_views_share_memory_and_copies_do_not(dtype: DType) -> None:
    host = _data(dtype, (2, 3), "share")
    one = np.ones((), dtype.numpy_dtype)
    x = upload(host)
    permuted, flipped = hw.permute_dims(x, (1, 0)), hw.flip(x)
    dense = hw.reshape(x, (3, 2))
    copied = hw.reshape(permuted, (6,))  # not contiguous: a copy
    stacked = hw.stack([x])
    x[0, 0] = hw.asarray(one)
    assert permuted[0, 0].numpy() == one and flipped[1, 2].numpy() == one
    assert dense[0, 0].numpy() == one
    expected = np.transpose(host).reshape(-1)
    assert_bits_equal(copied, expected, dtype)  # taken before the write
    assert_bits_equal(stacked, host[None], dtype)
    with pytest.raises(ShapeError, match="copy=False"):
        hw.reshape(permuted, (6,), copy=False)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_concat_and_stack(dtype: DType) -> None:
    a, b = _data(dtype, (2, 3), "a"), _data(dtype, (1, 3), "b")
    c = _data(dtype, (2, 3), "c")
    ta, tb, tc = upload(a, "strided"), upload(b), upload(c, "flipped")
    assert_bits_equal(hw.concat([ta, tb, tc]), np.concatenate([a, b, c]), dtype)
    assert_bits_equal(hw.concat([ta, tc], axis=-1), np.concatenate([a, c], axis=-1), dtype)
    assert_bits_equal(hw.concat([ta, tb], axis=None), np.concatenate([a, b], axis=None), dtype)
    assert_bits_equal(hw.stack([ta, tc]), np.stack([a, c]), dtype)
    assert_bits_equal(hw.stack([ta, tc], axis=-1), np.stack([a, c], axis=-1), dtype)
    assert_bits_equal(hw.stack([ta, tc], axis=1), np.stack([a, c], axis=1), dtype)
    out = hw.empty((5, 3), dtype=dtype)
    assert hw.concat([ta, tb, tc], out=out) is out
    assert_bits_equal(out, np.concatenate([a, b, c]), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_empty_and_0d(dtype: DType) -> None:
    empty = np.zeros((0, 3), dtype.numpy_dtype)
    scalar = _data(dtype, (), "scalar")
    e, s = upload(empty), upload(scalar)
    assert_bits_equal(hw.permute_dims(e, (1, 0)), empty.T, dtype)
    assert_bits_equal(hw.flip(e), empty, dtype)
    assert_bits_equal(hw.reshape(e, (3, 0, 5)), empty.reshape(3, 0, 5), dtype)
    assert_bits_equal(hw.broadcast_to(e, (2, 0, 3)), np.zeros((2, 0, 3), dtype.numpy_dtype), dtype)
    assert_bits_equal(hw.concat([e, e]), empty, dtype)
    assert_bits_equal(hw.stack([e, e]), np.zeros((2, 0, 3), dtype.numpy_dtype), dtype)
    assert_bits_equal(hw.permute_dims(s, ()), scalar, dtype)
    assert_bits_equal(hw.flip(s), scalar, dtype)
    assert_bits_equal(hw.reshape(s, (1, 1)), scalar.reshape(1, 1), dtype)
    assert_bits_equal(hw.broadcast_to(s, (2, 2)), np.broadcast_to(scalar, (2, 2)), dtype)
    assert_bits_equal(hw.stack([s, s]), np.stack([scalar, scalar]), dtype)
    assert_bits_equal(hw.concat([s, s], axis=None), np.stack([scalar, scalar]), dtype)


def test_concat_and_stack_promote_mixed_dtypes() -> None:
    a = upload(np.array([1, 2], np.int8))
    b = upload(np.array([300], np.int16))
    f = upload(np.array([0.5], np.float16))
    joined = hw.concat([a, b])
    assert joined.dtype is dt.int16 and joined.numpy().tolist() == [1, 2, 300]
    mixed = hw.concat([a, f])
    assert mixed.dtype is dt.float16 and mixed.numpy().tolist() == [1.0, 2.0, 0.5]
    assert hw.stack([b, f]).dtype is dt.float16


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: hw.permute_dims(x, (0, 0, 1)), "must be a permutation"),
        (lambda x: hw.permute_dims(x, (0, 1)), "must be a permutation"),
        (lambda x: hw.permute_dims(x, (0, 1, 5)), "must be a permutation"),  # 5 % 3 == 2
        (lambda x: hw.permute_dims(x, (0, 1, -4)), "must be a permutation"),
        (lambda x: hw.reshape(x, (5, -1)), r"cannot reshape a tensor of shape \(2, 3, 4\)"),
        (lambda x: hw.reshape(x, (-1, -1)), "at most one -1"),
        (lambda x: hw.reshape(x, (7,)), r"\(24 elements\) to \(7,\) \(7 elements\)"),
        (lambda x: hw.flip(x, axis=3), "axis 3 is out of range"),
        (lambda x: hw.broadcast_to(x, (3, 4)), "cannot broadcast"),
        (lambda x: hw.broadcast_to(x, (2, 5, 4)), "do not broadcast|cannot broadcast"),
        (lambda x: hw.broadcast_to(x, (-1, 2, 3, 4)), "cannot broadcast"),
        (lambda x: hw.concat([x, x[:, :1, :1]]), "must match except along axis 0"),
        (lambda x: hw.concat([x, x], axis=(0, 1)), "takes a single int axis"),
        (lambda x: hw.concat([x[0, 0, 0], x[0, 0, 0]]), "cannot join 0-d tensors"),
        (lambda x: hw.concat([]), "at least one tensor"),
        (lambda x: hw.stack([x, x[0]]), "tensors of one shape"),
        (lambda x: hw.stack([x, x], axis=4), "axis 4 is out of range"),
        (lambda x: hw.stack([x, x], axis=(0,)), "takes a single int axis"),
        (lambda x: hw.concat([x, x], out=hw.empty((4, 3, 4), dtype="int32")), "needs shape"),
    ],
)
def test_errors(call: Callable[[hw.Tensor], Any], message: str) -> None:
    x = upload(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ShapeError, match=message):
        call(x)


def test_broadcast_view_strides_are_zero_where_broadcast() -> None:
    x = upload(np.arange(3, dtype=np.int32))
    b = hw.broadcast_to(x, (2, 3))
    assert b.shape == (2, 3) and b.strides == (0, 1)
    assert b.numpy().tolist() == [[0, 1, 2], [0, 1, 2]]


# -- out= and stream= on the view functions -------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda x, **kw: hw.permute_dims(x, (1, 0), **kw), lambda a: a.T),
        (lambda x, **kw: hw.reshape(x, (3, 2), **kw), lambda a: a.reshape(3, 2)),
        (lambda x, **kw: hw.reshape(x.T, (6,), **kw), lambda a: a.T.reshape(6)),
        (lambda x, **kw: hw.flip(x, axis=1, **kw), lambda a: a[:, ::-1]),
        (
            lambda x, **kw: hw.broadcast_to(x[0], (4, 3), **kw),
            lambda a: np.broadcast_to(a[0], (4, 3)),
        ),
    ],
)
def test_view_functions_copy_into_out_on_the_given_stream(call, expected) -> None:  # type: ignore[no-untyped-def]
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = hw.asarray(a)
    want = expected(a)
    out = hw.zeros(want.shape, dtype=hw.float32)
    stream = x.device.create_stream()
    result = call(x, out=out, stream=stream)
    assert result is out
    np.testing.assert_array_equal(out.numpy(), want)
    x[...] = 0  # out holds a copy, not a view
    np.testing.assert_array_equal(out.numpy(), want)


def test_view_function_out_is_checked() -> None:
    x = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(hw.ShapeError, match="needs shape"):
        hw.permute_dims(x, (1, 0), out=hw.zeros((2, 3)))
    with pytest.raises(hw.DTypeError, match="needs dtype float32"):
        hw.flip(x, out=hw.zeros((2, 3), dtype=hw.float64))
