"""Reductions over any set of axes, with ``keepdims``.

The backend receives ``axes`` as a sorted tuple of non-negative ints (all axes when the user
gave ``axis=None``) and ``keepdims``; the output operand already has the reduced shape.
Floating reductions of 8- and 16-bit floats accumulate in float32 (as accelerators do) and
round once at the end; the reference does the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import ShapeError
from .elementwise import ANY, FLOATING, NUMERIC, REAL, REAL_FLOATING
from .spec import KernelSpec, check_kinds, normalize_axes, register


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _accumulator(x: np.ndarray) -> np.dtype[Any]:
    """The dtype floating reductions accumulate in (ml_dtypes floats have NumPy kind 'V',
    so ask our dtype system, not ``dtype.kind``)."""
    kind = dt.dtype(x.dtype).kind
    if kind == "f":
        return np.dtype(np.float64) if x.dtype.itemsize >= 8 else np.dtype(np.float32)
    return x.dtype


def _reduction(
    name: str,
    kinds: frozenset[DType],
    reference: Any,
    *,
    out: str = "same",
    empty_ok: bool = True,
    single_axis: bool = False,
    extra: Mapping[str, Any] | None = None,
    doc: str = "",
) -> KernelSpec:
    attributes: dict[str, Any] = {"axis": None, "keepdims": False, **(extra or {})}

    def dtype_rule(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
        src = dt.dtype(operands[0].dtype)
        requested = attrs.get("dtype")
        compute = dt.dtype(requested) if requested is not None else src
        check_kinds(name, compute, kinds)
        if out == "bool":
            return compute, (dt.bool_,)
        if out == "index":
            return compute, (dt.int64,)
        if out == "sum" and requested is None and compute.kind in "biu":
            return compute, (dt.uint64 if compute.kind == "u" else dt.int64,)
        return compute, (compute,)

    def shape_rule(
        shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]
    ) -> tuple[list[None], list[tuple[int, ...]], dict[str, Any]]:
        shape = shapes[0]
        axis = attrs.get("axis")
        if single_axis and axis is not None and not isinstance(axis, (int, np.integer)):
            raise ShapeError(f"{name}() takes a single int axis or None, got {axis!r}")
        axes = normalize_axes(axis, len(shape))
        keepdims = bool(attrs.get("keepdims", False))
        if not empty_ok and any(shape[a] == 0 for a in axes):
            raise ShapeError(
                f"{name}() of an empty dimension has no identity; the reduced axes of shape "
                f"{shape} include a zero-length one"
            )
        normalized = {k: v for k, v in attrs.items() if k != "axis"}
        normalized["axes"] = axes
        normalized["keepdims"] = keepdims
        return [None], [reduced_shape(shape, axes, keepdims)], normalized

    return register(
        KernelSpec(
            name=name,
            category="reduction",
            inputs=("x",),
            dtypes=kinds,
            dtype_rule=dtype_rule,
            shape_rule=shape_rule,
            reference=reference,
            attributes=attributes,
            doc=doc,
        )
    )


def _sum_like(fn: Any) -> Any:
    def reference(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool, dtype: Any) -> Any:
        target_dt = dt.dtype(dtype)
        target = target_dt.numpy_dtype
        acc = target
        if target_dt.kind == "f":
            acc = np.dtype(np.float64) if target.itemsize >= 8 else np.dtype(np.float32)
        return np.asarray(fn(x.astype(acc, copy=False), axis=axes, keepdims=keepdims)).astype(
            target, copy=False
        )

    return reference


def _minmax(fn: Any) -> Any:
    def reference(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> Any:
        with np.errstate(all="ignore"):
            return np.asarray(fn(x, axis=axes, keepdims=keepdims))

    return reference


def _count(x: np.ndarray, axes: tuple[int, ...]) -> int:
    return math.prod(x.shape[a] for a in axes)


def _mean(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> Any:
    # sum / N rather than np.mean: an empty reduction is NaN (0 / 0), without the
    # RuntimeWarning np.mean emits (which becomes an error under -W error).
    acc = _accumulator(x)
    with np.errstate(all="ignore"):
        total = np.sum(x.astype(acc, copy=False), axis=axes, keepdims=keepdims)
        return np.asarray(total / acc.type(_count(x, axes))).astype(x.dtype)


def _moment(sqrt: bool) -> Any:
    def reference(
        x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool, correction: float
    ) -> Any:
        # The Array API: with N elements reduced, the result is NaN when N - correction <= 0
        # (np.var would give inf, or NaN with a RuntimeWarning).
        acc = _accumulator(x)
        n = _count(x, axes)
        c = x.astype(acc, copy=False)
        with np.errstate(all="ignore"):
            mean = np.sum(c, axis=axes, keepdims=True) / acc.type(max(n, 1))
            squares = np.sum(np.square(c - mean), axis=axes, keepdims=keepdims)
            v = squares / acc.type(n - correction) if n - correction > 0 else squares * np.nan
            if sqrt:
                v = np.sqrt(v)
        return np.asarray(v).astype(x.dtype)

    return reference


def _arg(fn: Any) -> Any:
    def reference(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> Any:
        if len(axes) == x.ndim and x.ndim != 1:
            flat = np.asarray(fn(x.reshape(-1)), dtype=np.int64)
            return flat.reshape((1,) * x.ndim) if keepdims else flat
        if x.ndim == 0:
            return np.zeros((), np.int64)
        return np.asarray(fn(x, axis=axes[0], keepdims=keepdims), dtype=np.int64)

    return reference


def _logical(fn: Any) -> Any:
    def reference(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> Any:
        return np.asarray(fn(x, axis=axes, keepdims=keepdims))

    return reference


_reduction(
    "sum",
    NUMERIC | {dt.bool_},
    _sum_like(np.sum),
    out="sum",
    extra={"dtype": None},
    doc="Sum. Integer and bool inputs sum in int64 (uint64 for unsigned) by default.",
)
_reduction(
    "prod",
    NUMERIC | {dt.bool_},
    _sum_like(np.prod),
    out="sum",
    extra={"dtype": None},
    doc="Product. Integer and bool inputs multiply in int64 (uint64 for unsigned).",
)
_reduction("min", REAL, _minmax(np.min), empty_ok=False, doc="Minimum; NaN propagates.")
_reduction("max", REAL, _minmax(np.max), empty_ok=False, doc="Maximum; NaN propagates.")
_reduction("mean", FLOATING, _mean, doc="Arithmetic mean (NaN for an empty reduction).")
_reduction(
    "var",
    REAL_FLOATING,
    _moment(False),
    extra={"correction": 0.0},
    doc="Variance with `correction` degrees of freedom removed (NaN where the number "
    "of elements reduced minus `correction` is not positive).",
)
_reduction(
    "std",
    REAL_FLOATING,
    _moment(True),
    extra={"correction": 0.0},
    doc="Standard deviation with `correction` degrees of freedom removed (NaN where "
    "the number of elements reduced minus `correction` is not positive).",
)
_reduction(
    "argmin",
    REAL,
    _arg(np.argmin),
    out="index",
    empty_ok=False,
    single_axis=True,
    doc="Index of the first minimum (over the flattened tensor when axis is None).",
)
_reduction(
    "argmax",
    REAL,
    _arg(np.argmax),
    out="index",
    empty_ok=False,
    single_axis=True,
    doc="Index of the first maximum (over the flattened tensor when axis is None).",
)
_reduction("any", ANY, _logical(np.any), out="bool", doc="True if any element is nonzero.")
_reduction("all", ANY, _logical(np.all), out="bool", doc="True if every element is nonzero.")
