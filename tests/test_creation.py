"""Creation functions: asarray (default dtypes, copy semantics), empty/zeros/ones/full,
arange, linspace, eye and the *_like forms, with device=, dtype= and stream=, for every
dtype."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

import hwabstract as hw

Gate = Callable[[hw.Stream], threading.Event]

ALL = hw.all_dtypes()
NUMERIC = [d for d in ALL if d is not hw.bool]


def ids(d: hw.DType) -> str:
    return d.name


# -- asarray --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "dtype", "expected"),
    [
        ([1.0, 2.0], hw.float32, [1.0, 2.0]),
        ([1, 2], hw.int64, [1, 2]),
        ([1, 2.5], hw.float32, [1.0, 2.5]),
        ([1j, 2], hw.complex64, [1j, 2]),
        ([True, False], hw.bool, [True, False]),
        (3.5, hw.float32, 3.5),
        (3, hw.int64, 3),
        (False, hw.bool, False),
        (2j, hw.complex64, 2j),
        ([[1, 2], [3, 4]], hw.int64, [[1, 2], [3, 4]]),
        ([], hw.float32, []),
    ],
    ids=repr,
)
def test_asarray_default_dtypes(obj: object, dtype: hw.DType, expected: object) -> None:
    x = hw.asarray(obj)
    assert x.dtype is dtype
    assert x.tolist() == expected


@pytest.mark.parametrize("dtype", ALL, ids=ids)
def test_asarray_keeps_a_numpy_dtype(dtype: hw.DType) -> None:
    host = np.arange(6).reshape(2, 3).astype(dtype.numpy_dtype)
    x = hw.asarray(host)
    assert x.dtype is dtype and x.shape == (2, 3)
    np.testing.assert_array_equal(x.numpy(), host)
    scalar = hw.asarray(host[1, 2])  # a NumPy scalar keeps its dtype too
    assert scalar.dtype is dtype and scalar.shape == ()


@pytest.mark.parametrize("dtype", ALL, ids=ids)
def test_asarray_with_dtype(dtype: hw.DType) -> None:
    for spec in (dtype, dtype.name, dtype.numpy_dtype):
        x = hw.asarray([0, 1], dtype=spec)
        assert x.dtype is dtype
        np.testing.assert_array_equal(x.numpy(), np.array([0, 1]).astype(dtype.numpy_dtype))


def test_asarray_of_non_contiguous_and_float64_numpy() -> None:
    host = np.arange(12.0).reshape(3, 4)[::-1, ::2]
    x = hw.asarray(host)
    assert x.dtype is hw.float64  # NumPy data keeps its dtype; only Python floats become f32
    np.testing.assert_array_equal(x.numpy(), host)


def test_asarray_rejects_what_is_not_numbers() -> None:
    with pytest.raises(hw.DTypeError, match="NumPy dtype <U1"):
        hw.asarray(["a"])
    with pytest.raises(hw.DTypeError, match="cannot convert"):
        hw.asarray([300], dtype="uint8")
    with pytest.raises(hw.DTypeError, match="unknown dtype"):
        hw.asarray([1], dtype="int128")


def test_asarray_copy_semantics_for_host_data() -> None:
    host = np.arange(4, dtype=np.int32)
    copied = hw.asarray(host)  # None: copies host data
    shared = hw.asarray(host, copy=False)  # the cpu backend can share host memory
    forced = hw.asarray(host, copy=True)
    host[0] = 100
    assert copied.tolist() == [0, 1, 2, 3]
    assert forced.tolist() == [0, 1, 2, 3]
    assert shared.tolist() == [100, 1, 2, 3]
    shared[1] = -1  # queued
    shared.device.synchronize()
    assert host[1] == -1  # writes go to the same memory
    with pytest.raises(hw.DTypeError, match=r"copy=False\) cannot avoid a copy"):
        hw.asarray([1, 2], copy=False)
    with pytest.raises(hw.DTypeError, match=r"copy=False\) cannot avoid a copy"):
        hw.asarray(host, dtype="int64", copy=False)
    with pytest.raises(hw.ShapeError, match="C-contiguous"):
        hw.asarray(host[::2], copy=False)


def test_asarray_copy_semantics_for_tensors(two_cpus: tuple[hw.Device, hw.Device]) -> None:
    d0, d1 = two_cpus
    x = hw.asarray([1, 2, 3], device=d0)
    assert hw.asarray(x) is x
    assert hw.asarray(x, copy=False) is x
    assert hw.asarray(x, dtype="int64", device="cpu:0") is x
    fresh = hw.asarray(x, copy=True)
    assert fresh is not x and fresh._storage is not x._storage
    fresh[0] = 50
    assert x.tolist() == [1, 2, 3]
    converted = hw.asarray(x, dtype="float32")
    assert converted.dtype is hw.float32 and converted.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(hw.DTypeError, match=r"copy=False\) cannot change dtype int64 to float32"):
        hw.asarray(x, dtype="float32", copy=False)
    moved = hw.asarray(x, device=d1)
    assert moved.device is d1 and moved.tolist() == [1, 2, 3]
    with pytest.raises(hw.DeviceError, match=r"copy=False\) cannot move a tensor from cpu:0"):
        hw.asarray(x, device=d1, copy=False)


def test_asarray_on_a_stream_reads_the_host_data_at_once(gate: Gate) -> None:
    stream = hw.device("cpu").create_stream()
    release = gate(stream)
    host = np.arange(5, dtype=np.float32)
    x = hw.asarray(host, stream=stream)
    host[:] = -1  # allowed as soon as asarray returns
    assert not stream.query()
    release.set()
    np.testing.assert_array_equal(x.numpy(), np.arange(5))


# -- filled tensors -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL, ids=ids)
def test_filled_tensors_in_every_dtype(dtype: hw.DType) -> None:
    npd = dtype.numpy_dtype
    shape = (2, 3)
    assert hw.empty(shape, dtype=dtype).dtype is dtype
    np.testing.assert_array_equal(hw.zeros(shape, dtype=dtype).numpy(), np.zeros(shape, npd))
    np.testing.assert_array_equal(hw.ones(shape, dtype=dtype).numpy(), np.ones(shape, npd))
    full = hw.full(shape, True if dtype.is_bool else 2, dtype=dtype)
    assert full.dtype is dtype
    np.testing.assert_array_equal(full.numpy(), np.full(shape, 2).astype(npd))
    eye = hw.eye(3, 4, k=1, dtype=dtype)
    np.testing.assert_array_equal(eye.numpy(), np.eye(3, 4, k=1).astype(npd))
    like = hw.ones_like(full)
    assert like.dtype is dtype and like.shape == shape


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids)
def test_arange_in_every_numeric_dtype(dtype: hw.DType) -> None:
    x = hw.arange(1, 11, 3, dtype=dtype)
    assert x.dtype is dtype
    np.testing.assert_array_equal(x.numpy(), np.arange(1, 11, 3).astype(dtype.numpy_dtype))


@pytest.mark.parametrize("dtype", [d for d in ALL if d.is_floating], ids=ids)
def test_linspace_in_every_floating_dtype(dtype: hw.DType) -> None:
    x = hw.linspace(0, 2, 5, dtype=dtype)
    assert x.dtype is dtype
    expected = np.linspace(0, 2, 5).astype(dtype.numpy_dtype)
    np.testing.assert_array_equal(x.numpy(), expected)


def test_default_dtypes_of_the_filled_forms() -> None:
    assert hw.empty(2).dtype is hw.float32
    assert hw.zeros((2, 2)).dtype is hw.float32
    assert hw.ones(3).dtype is hw.float32
    assert hw.eye(2).dtype is hw.float32
    assert hw.full(2, 7).dtype is hw.int64
    assert hw.full(2, 7.0).dtype is hw.float32
    assert hw.full(2, False).dtype is hw.bool
    assert hw.full(2, 1j).dtype is hw.complex64
    assert hw.full(2, np.float16(1)).dtype is hw.float16
    assert hw.arange(3).dtype is hw.int64
    assert hw.arange(0, 1, 0.25).dtype is hw.float32
    assert hw.linspace(0, 1, 3).dtype is hw.float32
    assert hw.zeros(2, dtype=np.dtype("int16")).dtype is hw.int16
    assert hw.zeros(2, dtype=np.uint8).dtype is hw.uint8


def test_shapes_and_values() -> None:
    assert hw.zeros(()).shape == ()
    assert hw.zeros(0).shape == (0,)
    assert hw.ones((2, 0, 3)).size == 0
    assert hw.full((2,), -1.5).tolist() == [-1.5, -1.5]
    assert hw.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert hw.arange(5, 0, -2).tolist() == [5, 3, 1]
    assert hw.arange(3, 1).tolist() == []
    assert hw.arange(0, 1, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert hw.linspace(0, 1, 4, endpoint=False).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert hw.linspace(0, 1j, 3).dtype is hw.complex64
    assert hw.linspace(1, 2, 0).shape == (0,)
    np.testing.assert_array_equal(hw.eye(3, k=-1).numpy(), np.eye(3, k=-1))
    np.testing.assert_array_equal(hw.eye(2, 5, k=9).numpy(), np.zeros((2, 5)))


def test_creation_errors() -> None:
    with pytest.raises(hw.ShapeError, match="negative dimension"):
        hw.zeros((2, -1))
    with pytest.raises(hw.ShapeError, match="a shape is an int or a sequence of ints"):
        hw.ones(None)  # type: ignore[arg-type]
    with pytest.raises(hw.ShapeError, match="step must not be zero"):
        hw.arange(0, 5, 0)
    with pytest.raises(hw.DTypeError, match="cannot make a bool tensor"):
        hw.arange(3, dtype="bool")
    with pytest.raises(hw.DTypeError, match="real start, stop and step"):
        hw.arange(1j)
    with pytest.raises(hw.ShapeError, match="num must be non-negative"):
        hw.linspace(0, 1, -1)
    with pytest.raises(hw.DTypeError, match="out of range for uint8"):
        hw.full(3, 300, dtype="uint8")
    with pytest.raises(hw.DTypeError, match="take a hwabstract Tensor, got ndarray"):
        hw.zeros_like(np.zeros(3))  # type: ignore[arg-type]


# -- device= and stream= --------------------------------------------------------------------------


def test_device_and_stream_arguments(two_cpus: tuple[hw.Device, hw.Device], gate: Gate) -> None:
    d0, d1 = two_cpus
    s1 = d1.create_stream()
    release = gate(s1)
    made = [
        hw.asarray([1.0, 2.0], device="cpu:1", stream=s1),
        hw.empty(2, device=d1, stream=s1),
        hw.zeros(2, device=d1, stream=s1),
        hw.ones(2, device="cpu:1", stream=s1),
        hw.full(2, 4.0, device=d1, stream=s1),
        hw.arange(2, device=d1, stream=s1),
        hw.linspace(0, 1, 2, device=d1, stream=s1),
        hw.eye(2, device=d1, stream=s1),
    ]
    assert all(t.device is d1 for t in made)
    assert not s1.query()  # their uploads and fills wait behind the gate, on s1
    release.set()
    s1.synchronize()
    assert made[3].tolist() == [1.0, 1.0]
    assert made[4].tolist() == [4.0, 4.0]
    assert made[7].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    for make in (
        lambda: hw.zeros(2, device=d0, stream=s1),
        lambda: hw.empty(2, device=d0, stream=s1),
        lambda: hw.asarray([1], device=d0, stream=s1),
        lambda: hw.arange(3, device=d0, stream=s1),
    ):
        with pytest.raises(hw.StreamError, match="the stream belongs to cpu:1"):
            make()


def test_like_forms_inherit_and_override(two_cpus: tuple[hw.Device, hw.Device]) -> None:
    d0, d1 = two_cpus
    x = hw.asarray(np.arange(6, dtype=np.int16).reshape(2, 3), device=d1)
    for fn, value in [(hw.zeros_like, 0), (hw.ones_like, 1)]:
        y = fn(x)
        assert (y.shape, y.dtype, y.device) == ((2, 3), hw.int16, d1)
        assert y.numpy().tolist() == [[value] * 3] * 2
    e = hw.empty_like(x, dtype="float64", device=d0)
    assert (e.shape, e.dtype, e.device) == ((2, 3), hw.float64, d0)
    f = hw.full_like(x, 7, dtype=np.float32)
    assert f.dtype is hw.float32 and f.device is d1 and f.tolist() == [[7.0] * 3] * 2
    z = hw.zeros_like(x, device="cpu:0")
    assert z.device is d0 and z.dtype is hw.int16
