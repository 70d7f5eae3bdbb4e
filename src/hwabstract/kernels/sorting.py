"""Sorting and searching: ``sort``, ``argsort`` and ``searchsorted``.

``sort`` and ``argsort`` work along one axis (the backend receives it non-negative, with
``descending`` and ``stable`` as bools). The order is the Array API's: ascending puts NaNs
last; ``descending=True`` is the exact reverse of an ascending sort of the reversed input, so
NaNs come first and, when ``stable``, equal elements keep their original relative order.
Signed zeros compare equal (-0.0 and +0.0 keep their relative order when stable). A backend
may always sort stably, since a stable result is a valid unstable one, but the reference is
stable and ``argsort`` is checked index for index only where ties cannot reorder.

``searchsorted(x1, x2)`` finds, for each element of ``x2``, the insertion index into the
sorted 1-D ``x1`` that keeps it sorted: the first such index with ``side="left"``, the last
with ``side="right"``. NaN sorts after every number (as in ``sort``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import ShapeError
from .elementwise import REAL
from .spec import KernelSpec, check_kinds, promote, register

Shape = tuple[int, ...]


def single_axis(name: str, axis: Any, ndim: int) -> int:
    """``axis`` (one int, negative counting from the end) made non-negative."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise ShapeError(f"{name}() takes a single int axis, got {axis!r}")
    if ndim == 0:
        raise ShapeError(f"{name}() needs a tensor of at least one dimension, got a 0-d one")
    if not -ndim <= axis < ndim:
        raise ShapeError(
            f"{name}() axis {axis} is out of range for a tensor with {ndim} dimension(s); "
            f"use -{ndim} to {ndim - 1}"
        )
    return int(axis) % ndim


def _sort_dtype(name: str, index_out: bool) -> Any:
    def rule(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
        d = dt.dtype(operands[0].dtype)
        check_kinds(name, d, REAL)
        return d, (dt.int64 if index_out else d,)

    return rule


def _sort_shape(name: str) -> Any:
    def rule(
        shapes: Sequence[Shape], attrs: Mapping[str, Any]
    ) -> tuple[list[None], list[Shape], dict[str, Any]]:
        (shape,) = shapes
        axis = single_axis(name, attrs.get("axis", -1), len(shape))
        return (
            [None],
            [shape],
            {
                "axis": axis,
                "descending": bool(attrs.get("descending", False)),
                "stable": bool(attrs.get("stable", True)),
            },
        )

    return rule


def _orderable(x: np.ndarray) -> np.ndarray:
    """``x`` in a dtype NumPy orders correctly: the ml_dtypes floats (bfloat16, float8) do
    not sort NaN last in NumPy, so narrow floats widen to float32 (exact, order-keeping)."""
    if dt.dtype(x.dtype).kind == "f" and x.dtype.itemsize < 4:
        return x.astype(np.float32)
    return x


def argsort_reference(x: np.ndarray, *, axis: int, descending: bool, stable: bool) -> np.ndarray:
    """Stable argsort; descending is the reverse of an ascending sort of the reversed input
    (so ties keep their order and NaNs come first)."""
    x = _orderable(x)
    if not descending:
        return np.argsort(x, axis=axis, kind="stable").astype(np.int64)
    n = x.shape[axis]
    rev = np.flip(x, axis=axis)
    idx = np.flip(np.argsort(rev, axis=axis, kind="stable"), axis=axis)
    return (n - 1 - idx).astype(np.int64)


def sort_reference(x: np.ndarray, *, axis: int, descending: bool, stable: bool) -> np.ndarray:
    idx = argsort_reference(x, axis=axis, descending=descending, stable=stable)
    return np.take_along_axis(x, idx, axis=axis)


_ATTRS = {"axis": -1, "descending": False, "stable": True}

for _name, _index_out, _reference, _doc in (
    ("sort", False, sort_reference,
     "The elements of x sorted along axis (NaNs last; descending reverses exactly)."),
    ("argsort", True, argsort_reference,
     "The indices (int64) that sort x along axis, as sort orders it."),
):  # fmt: skip
    register(
        KernelSpec(
            name=_name,
            category="sorting",
            inputs=("x",),
            dtypes=REAL,
            dtype_rule=_sort_dtype(_name, _index_out),
            shape_rule=_sort_shape(_name),
            reference=_reference,
            attributes=dict(_ATTRS),
            doc=_doc,
        )
    )


def _searchsorted_dtype(
    operands: Sequence[Any], attrs: Mapping[str, Any]
) -> tuple[DType, tuple[DType]]:
    compute = promote(operands, _searchsorted)
    check_kinds("searchsorted", compute, REAL)
    return compute, (dt.int64,)


def _searchsorted_shape(
    shapes: Sequence[Shape], attrs: Mapping[str, Any]
) -> tuple[list[None], list[Shape], dict[str, Any]]:
    x1, x2 = shapes
    if len(x1) != 1:
        raise ShapeError(f"searchsorted() needs a 1-D sorted x1, got shape {x1}")
    side = attrs.get("side", "left")
    if side not in ("left", "right"):
        raise ShapeError(f"searchsorted() side must be 'left' or 'right', got {side!r}")
    return [None, None], [x2], {"side": side}


def _searchsorted_reference(x1: np.ndarray, x2: np.ndarray, *, side: str) -> np.ndarray:
    found = np.searchsorted(_orderable(x1), _orderable(x2), side=side)  # type: ignore[call-overload]
    return np.asarray(found, dtype=np.int64)


_searchsorted = register(
    KernelSpec(
        name="searchsorted",
        category="sorting",
        inputs=("x1", "x2"),
        dtypes=REAL,
        dtype_rule=_searchsorted_dtype,
        shape_rule=_searchsorted_shape,
        reference=_searchsorted_reference,
        attributes={"side": "left"},
        doc="Insertion indices (int64) of x2's elements into the sorted 1-D x1.",
    )
)
