"""Cumulative kernels: ``cumulative_sum`` and ``cumulative_prod`` along one axis.

The output dtype follows ``sum``/``prod``: the ``dtype`` attribute when given, else the input's
dtype, except that bool and integer inputs accumulate in int64 (uint64 for unsigned). The core
casts the input to the output dtype first, so the backend's input and output share a dtype.
Floating outputs of 8 and 16 bits accumulate in float32 and round each output element once.
The backend receives ``dtype`` (the output dtype), ``axis`` (non-negative) and
``include_initial``: with it, the output is one longer along ``axis`` and starts with the
identity (0 or 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import ShapeError
from .elementwise import NUMERIC
from .sorting import single_axis
from .spec import KernelSpec, check_kinds, register

Shape = tuple[int, ...]


def _cumulative_dtype(name: str) -> Any:
    def rule(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
        src = dt.dtype(operands[0].dtype)
        requested = attrs.get("dtype")
        if requested is not None:
            out = dt.dtype(requested)
        elif src.kind == "b" or src.kind == "i":
            out = dt.int64
        elif src.kind == "u":
            out = dt.uint64
        else:
            out = src
        check_kinds(name, out, NUMERIC)
        return out, (out,)

    return rule


def _cumulative_shape(name: str) -> Any:
    def rule(
        shapes: Sequence[Shape], attrs: Mapping[str, Any]
    ) -> tuple[list[None], list[Shape], dict[str, Any]]:
        (shape,) = shapes
        axis = attrs.get("axis")
        if axis is None:
            if len(shape) > 1:
                raise ShapeError(
                    f"{name}() needs an axis for a {len(shape)}-D tensor (axis=None is for "
                    "1-D tensors)"
                )
            axis = 0
        axis = single_axis(name, axis, len(shape))
        initial = bool(attrs.get("include_initial", False))
        out = list(shape)
        out[axis] += 1 if initial else 0
        return (
            [None],
            [tuple(out)],
            {"axis": axis, "dtype": attrs.get("dtype"), "include_initial": initial},
        )

    return rule


def _cumulative_reference(fn: Any, identity: int) -> Any:
    def reference(x: np.ndarray, *, axis: int, dtype: Any, include_initial: bool) -> np.ndarray:
        target_dt = dt.dtype(dtype)
        target = target_dt.numpy_dtype
        acc = target
        if target_dt.kind == "f" and target.itemsize < 4:
            acc = np.dtype(np.float32)
        with np.errstate(all="ignore"):
            result = fn(x.astype(acc, copy=False), axis=axis).astype(target, copy=False)
        if include_initial:
            pad = list(result.shape)
            pad[axis] = 1
            result = np.concatenate([np.full(pad, identity, target), result], axis=axis)
        return np.asarray(result)

    return reference


for _name, _fn, _identity, _doc in (
    ("cumulative_sum", np.cumsum, 0, "Running sum along axis."),
    ("cumulative_prod", np.cumprod, 1, "Running product along axis."),
):
    register(
        KernelSpec(
            name=_name,
            category="cumulative",
            inputs=("x",),
            dtypes=NUMERIC,
            dtype_rule=_cumulative_dtype(_name),
            shape_rule=_cumulative_shape(_name),
            reference=_cumulative_reference(_fn, _identity),
            attributes={"axis": None, "dtype": None, "include_initial": False},
            doc=_doc + " Integer and bool inputs accumulate in int64 (uint64 if unsigned).",
        )
    )
