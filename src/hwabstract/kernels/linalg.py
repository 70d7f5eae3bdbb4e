"""Linear algebra: ``matmul`` (batched, broadcasting batch dimensions).

The backend receives operands of at least two dimensions, ``(..., M, K)`` and
``(..., K, N)``, with the batch dimensions already broadcast to the output's (zero strides
where an operand is broadcast). One-dimensional operands are promoted and the result squeezed
by the core, as the Array API specifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import ShapeError
from .elementwise import NUMERIC
from .spec import KernelSpec, broadcast_shapes, check_kinds, promote, register


def _matmul_dtype(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
    compute = promote(operands, _matmul)
    check_kinds("matmul", compute, NUMERIC)
    return compute, (compute,)


def _matmul_shape(
    shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], Mapping[str, Any]]:
    a, b = shapes
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(f"matmul operands need at least 2 dimensions here, got {a} and {b}")
    if a[-1] != b[-2]:
        raise ShapeError(
            f"matmul shapes {a} and {b} do not match: the last dimension of the first "
            f"({a[-1]}) must equal the second-to-last of the second ({b[-2]})"
        )
    batch = broadcast_shapes(a[:-2], b[:-2])
    return [batch + a[-2:], batch + b[-2:]], [(*batch, a[-2], b[-1])], attrs


def _matmul_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if dt.dtype(a.dtype).kind == "f" and a.dtype.itemsize < 4:
        # accumulate in float32, round once, as accelerator matrix units do
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)
    return np.asarray(np.matmul(a, b))


_matmul = register(
    KernelSpec(
        name="matmul",
        category="linalg",
        inputs=("x1", "x2"),
        dtypes=NUMERIC,
        dtype_rule=_matmul_dtype,
        shape_rule=_matmul_shape,
        reference=_matmul_reference,
        doc="Matrix product with broadcasting batch dimensions; 8/16-bit floats accumulate "
        "in float32.",
    )
)
