"""hwabstract.searching: data-dependent shapes (nonzero, unique_*, x[mask], integer-tensor
indexing) against NumPy, including NaN, signed zeros, empty inputs, and the errors for the
forms that are not supported."""

from __future__ import annotations

import numpy as np
import pytest

import hwabstract as hw

X = np.array([[3.0, 1.0, np.nan], [1.0, -0.0, 0.0], [np.nan, 3.0, 2.0]], np.float32)


@pytest.fixture
def x() -> hw.Tensor:
    return hw.asarray(X, device="cpu")


def test_nonzero_and_count_nonzero(x: hw.Tensor) -> None:
    got = hw.nonzero(x)
    for g, e in zip(got, np.nonzero(X)):
        np.testing.assert_array_equal(g.numpy(), e)
        assert g.dtype is hw.int64
    assert hw.count_nonzero(x).item() == np.count_nonzero(X)
    np.testing.assert_array_equal(
        hw.count_nonzero(x, axis=0, keepdims=True).numpy(),
        np.count_nonzero(X, axis=0, keepdims=True),
    )
    empty = hw.nonzero(hw.zeros((2, 0)))
    assert [t.shape for t in empty] == [(0,), (0,)]
    with pytest.raises(hw.ShapeError, match="0-d"):
        hw.nonzero(hw.asarray(1.0))


def test_unique_functions_treat_each_nan_as_distinct_and_zeros_as_equal(x: hw.Tensor) -> None:
    values, indices, inverse, counts = hw.unique_all(x)
    e_values, e_index, e_inverse, e_counts = np.unique(
        X, return_index=True, return_inverse=True, return_counts=True, equal_nan=False
    )
    np.testing.assert_array_equal(values.numpy(), e_values)
    np.testing.assert_array_equal(indices.numpy(), e_index)
    np.testing.assert_array_equal(inverse.numpy(), e_inverse.reshape(X.shape))
    np.testing.assert_array_equal(counts.numpy(), e_counts)
    assert np.isnan(values.numpy()).sum() == 2
    assert hw.unique_values(x).shape == (6,)  # -0.0 == 0.0: one value; each NaN its own
    rebuilt = values.numpy()[inverse.numpy()]
    np.testing.assert_array_equal(rebuilt, X)
    v, c = hw.unique_counts(hw.asarray(np.array([2, 2, 7], np.int8)))
    assert v.tolist() == [2, 7] and c.tolist() == [2, 1] and c.dtype is hw.int64
    v, inv = hw.unique_inverse(hw.asarray(np.zeros((0, 3), np.int32)))
    assert v.shape == (0,) and inv.shape == (0, 3)


def test_boolean_mask_indexing_and_assignment(x: hw.Tensor) -> None:
    mask = X > 1
    np.testing.assert_array_equal(x[hw.asarray(mask)].numpy(), X[mask])
    rows = np.array([True, False, True])
    np.testing.assert_array_equal(x[hw.asarray(rows)].numpy(), X[rows])
    assert x[hw.asarray(True)].shape == (1, 3, 3)
    assert x[hw.asarray(False)].shape == (0, 3, 3)
    y = hw.asarray(X.copy())
    y[hw.asarray(mask)] = -5.0
    expected = X.copy()
    expected[mask] = -5.0
    np.testing.assert_array_equal(y.numpy(), expected)
    y[hw.asarray(rows)] = hw.asarray(np.array([7.0, 8.0, 9.0], np.float32))
    expected[rows] = [7.0, 8.0, 9.0]
    np.testing.assert_array_equal(y.numpy(), expected)


def test_integer_tensor_indexing(x: hw.Tensor) -> None:
    i = np.array([[0, 2], [-1, 1]])
    j = np.array([1, -3])
    np.testing.assert_array_equal(x[hw.asarray(i), hw.asarray(j)].numpy(), X[i, j])
    np.testing.assert_array_equal(x[hw.asarray(i)].numpy(), X[i])
    np.testing.assert_array_equal(x[1, hw.asarray(j)].numpy(), X[1, j])


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (lambda x: (hw.asarray(X > 1), 0), "boolean tensor index must be the only index"),
        (lambda x: hw.asarray(np.array([True, False])), "must match the leading dimensions"),
        (lambda x: (hw.asarray([0, 1]), slice(None)), "combine only with integers"),
        (lambda x: (hw.asarray([0]), 5), "index 5 is out of bounds"),
        (lambda x: hw.asarray([0.5]), "must be integer or bool"),
        (lambda x: (hw.asarray([0]),) * 4, "too many indices"),
    ],
)
def test_unsupported_or_bad_indices(x: hw.Tensor, key, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(hw.InvalidIndexError, match=message):
        x[key(x)]


def test_assignment_forms_that_need_a_scatter_are_refused(x: hw.Tensor) -> None:
    with pytest.raises(hw.InvalidIndexError, match="needs a scatter"):
        x[hw.asarray([0, 1])] = 1.0
    with pytest.raises(hw.InvalidIndexError, match="needs a scatter"):
        x[hw.asarray(X > 1)] = hw.zeros((4,))
    with pytest.raises(hw.InvalidIndexError, match="needs a scatter"):
        x[0, hw.asarray([0, 1])] = 1.0  # an integer before the tensor index
    with pytest.raises(hw.InvalidIndexError, match="must be the only index"):
        x[hw.asarray(np.array([True, False, True])), 0] = 1.0
    np.testing.assert_array_equal(x.numpy(), X)  # nothing was written


def test_out_of_range_take_is_a_kernel_error_on_cpu() -> None:
    t = hw.asarray([1.0, 2.0])
    with pytest.raises(hw.KernelError, match="out of bounds"):
        hw.take(t, hw.asarray([2])).numpy()
