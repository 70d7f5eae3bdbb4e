"""hwabstract.manipulation: the Array API's composed manipulation functions against NumPy,
views where the standard allows them, and the errors bad arguments get."""

from __future__ import annotations

import numpy as np
import pytest

import hwabstract as hw

A = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


@pytest.fixture
def a() -> hw.Tensor:
    return hw.asarray(A, device="cpu")


def test_views_share_the_buffer(a: hw.Tensor) -> None:
    for view in (
        hw.expand_dims(a, axis=1),
        hw.squeeze(a[:, :1], axis=1),
        hw.moveaxis(a, 0, -1),
        hw.matrix_transpose(a),
        hw.unstack(a, axis=1)[2],
        hw.broadcast_arrays(a, hw.asarray([1.0, 2, 3, 4]))[0],
    ):
        assert view._storage is a._storage
    assert hw.tile(a, (1,))._storage is not a._storage  # copies stay copies


def test_shapes_and_values_match_numpy(a: hw.Tensor) -> None:
    np.testing.assert_array_equal(hw.expand_dims(a, axis=(0, -1)).numpy(), A[None, ..., None])
    np.testing.assert_array_equal(hw.squeeze(a[None], axis=0).numpy(), A)
    np.testing.assert_array_equal(
        hw.moveaxis(a, (0, 1), (2, 0)).numpy(), np.moveaxis(A, (0, 1), (2, 0))
    )
    np.testing.assert_array_equal(hw.roll(a, -2, axis=2).numpy(), np.roll(A, -2, axis=2))
    np.testing.assert_array_equal(hw.roll(a, 7).numpy(), np.roll(A, 7))
    np.testing.assert_array_equal(hw.repeat(a, 2, axis=0).numpy(), np.repeat(A, 2, axis=0))
    np.testing.assert_array_equal(hw.repeat(a, 2).numpy(), np.repeat(A, 2))
    counts = hw.asarray(np.array([2, 0, 1]))
    np.testing.assert_array_equal(
        hw.repeat(a, counts, axis=1).numpy(), np.repeat(A, [2, 0, 1], axis=1)
    )
    np.testing.assert_array_equal(hw.tile(a, (2, 1, 1, 2)).numpy(), np.tile(A, (2, 1, 1, 2)))
    np.testing.assert_array_equal(hw.diff(a, axis=1, n=2).numpy(), np.diff(A, n=2, axis=1))
    prepend = hw.asarray(np.zeros((2, 3, 1), np.float32))
    np.testing.assert_array_equal(
        hw.diff(a, prepend=prepend).numpy(), np.diff(A, prepend=np.zeros((2, 3, 1), np.float32))
    )
    np.testing.assert_array_equal(hw.tril(a, k=1).numpy(), np.tril(A, k=1))
    np.testing.assert_array_equal(hw.triu(a, k=-1).numpy(), np.triu(A, k=-1))
    np.testing.assert_allclose(
        hw.tensordot(a, a, axes=([0, 2], [0, 2])).numpy(), np.tensordot(A, A, axes=([0, 2], [0, 2]))
    )
    np.testing.assert_allclose(hw.vecdot(a, a[0]).numpy(), np.sum(A * A[0], axis=-1))
    x, y = hw.meshgrid(hw.arange(3), hw.arange(2), indexing="ij")
    ex, ey = np.meshgrid(np.arange(3), np.arange(2), indexing="ij")
    np.testing.assert_array_equal(x.numpy(), ex)
    np.testing.assert_array_equal(y.numpy(), ey)


def test_complex_vecdot_conjugates_the_first_operand() -> None:
    z = np.array([1 + 2j, 3 - 1j], np.complex64)
    got = hw.vecdot(hw.asarray(z), hw.asarray(z)).numpy()
    np.testing.assert_allclose(got, np.vdot(z, z))


def test_bool_diff_is_not_equal() -> None:
    b = np.array([True, True, False, True])
    np.testing.assert_array_equal(hw.diff(hw.asarray(b)).numpy(), b[1:] != b[:-1])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda a: hw.squeeze(a, axis=0), hw.ShapeError, "axis 0 has size 2, not 1"),
        (lambda a: hw.expand_dims(a, axis=5), hw.ShapeError, "out of range"),
        (lambda a: hw.moveaxis(a, (0, 1), 0), hw.ShapeError, "as many destinations"),
        (lambda a: hw.roll(a, (1, 2), axis=0), hw.ShapeError, "one shift per axis"),
        (lambda a: hw.repeat(a, -1), hw.DTypeError, "non-negative int"),
        (lambda a: hw.repeat(a, hw.asarray([1, 2]), axis=1), hw.ShapeError, "2 repeats"),
        (lambda a: hw.tile(a, (-1,)), hw.ShapeError, "non-negative"),
        (lambda a: hw.diff(a, n=-1), hw.ShapeError, "non-negative int"),
        (lambda a: hw.tensordot(a, a, axes=([0], [1])), hw.ShapeError, "sizes must match"),
        (lambda a: hw.tril(a[0, 0]), hw.ShapeError, "at least 2 dimensions"),
        (lambda a: hw.meshgrid(a), hw.ShapeError, "1-D tensors"),
        (lambda a: hw.meshgrid(hw.arange(2), hw.arange(2.0)), hw.DTypeError, "one dtype"),
        (lambda a: hw.expand_dims(A), hw.DTypeError, "needs a hwabstract Tensor"),
    ],
)
def test_bad_arguments_raise_clear_errors(a: hw.Tensor, call, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call(a)
