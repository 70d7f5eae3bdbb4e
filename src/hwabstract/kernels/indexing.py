"""Indexing kernels: ``take``, ``take_along_axis`` and ``flatnonzero``.

Indices are integer tensors of any integer dtype; a negative index counts from the end of
the axis (``-1`` is the last element; unsigned indices never do). An index outside
``[-n, n)`` is undefined in the Array API. No backend may read out of bounds for it: cpu and
maia raise :class:`~hwabstract.errors.KernelError` when the work runs (the reference raises);
backends that cannot check on the device without a round trip document what they produce
instead (the shared JAX/CuPy table: JAX fills, CuPy wraps -- see
:mod:`hwabstract.backends.array_kernels`). The core cannot check indices that live on the
device without waiting for them.

* ``take(x, indices, axis)``: ``indices`` is 1-D; the result has ``x``'s shape with ``axis``
  replaced by ``len(indices)``. The backend receives ``axis`` non-negative.
* ``take_along_axis(x, indices, axis)``: ``indices`` has ``x``'s number of dimensions; the
  other dimensions broadcast, so the backend receives ``x`` and ``indices`` already broadcast
  to the output's shape except along ``axis`` (zero strides where broadcast).
* ``flatnonzero(x, count)``: the C-order linear indices (int64) of ``x``'s nonzero elements,
  ``count`` of them. The core computes ``count`` first (a ``sum``, read back): the output's
  shape depends on the data, so functions built on it (``nonzero``, boolean-mask indexing,
  ``unique_*``) wait for the device once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import DTypeError, ShapeError
from .elementwise import ANY
from .sorting import single_axis
from .spec import KernelSpec, broadcast_shapes, register

Shape = tuple[int, ...]


def _check_indices(name: str, indices: Any) -> None:
    d = dt.dtype(indices.dtype)
    if d.kind not in "iu":
        raise DTypeError(f"{name}() indices must have an integer dtype, got {d}")


def _gather_dtype(name: str) -> Any:
    def rule(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
        x, indices = operands
        if not hasattr(indices, "dtype") or not hasattr(x, "dtype"):
            raise DTypeError(f"{name}() takes tensors for x and indices")
        _check_indices(name, indices)
        d = dt.dtype(x.dtype)
        return d, (d,)

    return rule


def _take_shape(
    shapes: Sequence[Shape], attrs: Mapping[str, Any]
) -> tuple[list[None], list[Shape], dict[str, Any]]:
    x, idx = shapes
    axis = attrs.get("axis")
    if axis is None:
        if len(x) != 1:
            raise ShapeError(
                f"take() needs an axis for a {len(x)}-D tensor (axis=None is 1-D only)"
            )
        axis = 0
    axis = single_axis("take", axis, len(x))
    if len(idx) != 1:
        raise ShapeError(f"take() needs 1-D indices, got shape {idx}")
    return [None, None], [x[:axis] + idx + x[axis + 1 :]], {"axis": axis}


def _wrapped(indices: np.ndarray, n: int, name: str) -> np.ndarray:
    if indices.dtype.kind == "u" and indices.size and int(indices.max()) >= n:
        bad = indices[indices >= n].flat[0]  # before the cast: 2**64 - 1 is not -1
        raise IndexError(f"{name}(): index {bad} is out of bounds for an axis of size {n}")
    idx = indices.astype(np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)][0]
        raise IndexError(f"{name}(): index {bad} is out of bounds for an axis of size {n}")
    return np.where(idx < 0, idx + n, idx)


def _take_reference(x: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
    return np.take(x, _wrapped(indices, x.shape[axis], "take"), axis=axis)


register(
    KernelSpec(
        name="take",
        category="indexing",
        inputs=("x", "indices"),
        dtypes=ANY,
        dtype_rule=_gather_dtype("take"),
        shape_rule=_take_shape,
        reference=_take_reference,
        attributes={"axis": None},
        promoted=(False, False),
        doc="Elements of x at 1-D indices along axis (negative indices count from the end).",
    )
)


def _take_along_shape(
    shapes: Sequence[Shape], attrs: Mapping[str, Any]
) -> tuple[list[Shape], list[Shape], dict[str, Any]]:
    x, idx = shapes
    if len(idx) != len(x):
        raise ShapeError(
            f"take_along_axis() needs indices with x's {len(x)} dimension(s), got shape {idx}"
        )
    axis = single_axis("take_along_axis", attrs.get("axis", -1), len(x))
    rest = broadcast_shapes(x[:axis] + x[axis + 1 :], idx[:axis] + idx[axis + 1 :])
    x_target = (*rest[:axis], x[axis], *rest[axis:])
    out = (*rest[:axis], idx[axis], *rest[axis:])
    return [x_target, out], [out], {"axis": axis}


def _take_along_reference(x: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
    idx = _wrapped(indices, x.shape[axis], "take_along_axis")
    return np.take_along_axis(x, idx, axis=axis)


register(
    KernelSpec(
        name="take_along_axis",
        category="indexing",
        inputs=("x", "indices"),
        dtypes=ANY,
        dtype_rule=_gather_dtype("take_along_axis"),
        shape_rule=_take_along_shape,
        reference=_take_along_reference,
        attributes={"axis": -1},
        promoted=(False, False),
        doc="Elements of x picked along axis by indices of x's rank (other axes broadcast).",
    )
)


def _flatnonzero_dtype(
    operands: Sequence[Any], attrs: Mapping[str, Any]
) -> tuple[DType, tuple[DType]]:
    return dt.dtype(operands[0].dtype), (dt.int64,)


def _flatnonzero_shape(
    shapes: Sequence[Shape], attrs: Mapping[str, Any]
) -> tuple[list[None], list[Shape], dict[str, Any]]:
    count = attrs.get("count")
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 0:
        raise ShapeError(f"flatnonzero() needs count, the number of nonzeros, got {count!r}")
    return [None], [(int(count),)], {"count": int(count)}


def _flatnonzero_reference(x: np.ndarray, *, count: int) -> np.ndarray:
    found = np.flatnonzero(x).astype(np.int64)
    if found.size != count:
        raise ValueError(f"flatnonzero(): count is {count} but the input has {found.size}")
    return found


register(
    KernelSpec(
        name="flatnonzero",
        category="indexing",
        inputs=("x",),
        dtypes=ANY,
        dtype_rule=_flatnonzero_dtype,
        shape_rule=_flatnonzero_shape,
        reference=_flatnonzero_reference,
        attributes={"count": None},
        doc="C-order linear indices (int64) of the count nonzero elements of x.",
    )
)
