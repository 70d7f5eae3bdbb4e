"""Manipulation kernels. These are *composite*: the core carries them out as views (new
strides over the same buffer) or as device-to-device copies, so a backend implements nothing
for them beyond ``Backend.copy``. Their specs still carry the shape rules the core validates
with and the NumPy references the suite checks against.

``permute_dims``, ``broadcast_to`` and ``flip`` always return views; ``reshape`` returns a
view when the strides allow it and copies otherwise (``copy=False`` makes that an error);
``concat`` and ``stack`` copy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import ShapeError
from .elementwise import ANY
from .spec import KernelSpec, broadcast_shapes, normalize_axes, register

Shape = tuple[int, ...]


def _same_dtype(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
    d = dt.dtype(operands[0].dtype)
    return d, (d,)


def _promoted(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
    d = dt.result_type(*operands)
    return d, (d,)


def permute_shape(shape: Shape, axes: Sequence[int]) -> tuple[int, ...]:
    """The permutation ``axes`` made non-negative (the new order of ``shape``'s axes)."""
    axes = tuple(axes)
    ndim = len(shape)
    if (
        len(axes) != ndim
        or not all(isinstance(a, (int, np.integer)) and -ndim <= a < ndim for a in axes)
        or sorted(int(a) % ndim for a in axes) != list(range(ndim))
    ):
        raise ShapeError(
            f"permute_dims axes {axes} must be a permutation of 0..{ndim - 1} "
            f"(negative axes count from the end)"
        )
    return tuple(int(a) % ndim for a in axes)


def _single_axis(name: str, axis: Any) -> None:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise ShapeError(f"{name}() takes a single int axis, got {axis!r}")


def reshape_target(shape: Shape, new_shape: Sequence[int]) -> Shape:
    new = tuple(int(d) for d in new_shape)
    size = math.prod(shape)
    unknown = [i for i, d in enumerate(new) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in new):
        raise ShapeError(f"reshape shape {new} may contain at most one -1 and no other negative")
    if unknown:
        known = math.prod(d for d in new if d != -1)
        if known == 0 or size % known:
            raise ShapeError(f"cannot reshape a tensor of shape {shape} ({size} elements) to {new}")
        new = tuple(size // known if d == -1 else d for d in new)
    if math.prod(new) != size:
        raise ShapeError(
            f"cannot reshape a tensor of shape {shape} ({size} elements) to {new} "
            f"({math.prod(new)} elements)"
        )
    return new


def concat_shape(shapes: Sequence[Shape], axis: int | None) -> tuple[Shape, int | None]:
    if not shapes:
        raise ShapeError("concat() needs at least one tensor")
    if axis is None:
        return (sum(math.prod(s) for s in shapes),), None
    _single_axis("concat", axis)
    ndim = len(shapes[0])
    if ndim == 0:
        raise ShapeError("concat() cannot join 0-d tensors along an axis; use stack()")
    (ax,) = normalize_axes(axis, ndim)
    for s in shapes:
        if len(s) != ndim or any(s[i] != shapes[0][i] for i in range(ndim) if i != ax):
            raise ShapeError(f"concat() shapes {list(shapes)} must match except along axis {ax}")
    out = list(shapes[0])
    out[ax] = sum(s[ax] for s in shapes)
    return tuple(out), ax


def stack_shape(shapes: Sequence[Shape], axis: int) -> tuple[Shape, int]:
    if not shapes:
        raise ShapeError("stack() needs at least one tensor")
    if any(s != shapes[0] for s in shapes):
        raise ShapeError(f"stack() needs tensors of one shape, got {list(shapes)}")
    _single_axis("stack", axis)
    (ax,) = normalize_axes(axis, len(shapes[0]) + 1)
    out = list(shapes[0])
    out.insert(ax, len(shapes))
    return tuple(out), ax


def _composite(
    name: str,
    inputs: tuple[str, ...],
    rule: Any,
    shape_rule: Any,
    reference: Any,
    attributes: Mapping[str, Any],
    doc: str,
) -> None:
    register(
        KernelSpec(
            name=name,
            category="manipulation",
            inputs=inputs,
            dtypes=ANY,
            dtype_rule=rule,
            shape_rule=shape_rule,
            reference=reference,
            attributes=attributes,
            composite=True,
            doc=doc,
        )
    )


def _permuted_shape(shape: Shape, axes: Sequence[int]) -> Shape:
    return tuple(shape[i] for i in permute_shape(shape, axes))


def _flip_attrs(shape: Shape, attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {**attrs, "axes": normalize_axes(attrs.get("axis"), len(shape))}


_composite(
    "permute_dims", ("x",), _same_dtype,
    lambda shapes, a: ([None], [_permuted_shape(shapes[0], a["axes"])], a),
    lambda x, *, axes: np.transpose(x, axes), {"axes": None},
    "Reorder dimensions (a view).",
)  # fmt: skip
_composite(
    "reshape", ("x",), _same_dtype,
    lambda shapes, a: ([None], [reshape_target(shapes[0], a["shape"])], a),
    lambda x, *, shape: np.reshape(x, shape), {"shape": None, "copy": None},
    "New shape, same elements in C order (a view when strides allow).",
)  # fmt: skip
_composite(
    "flip", ("x",), _same_dtype,
    lambda shapes, a: ([None], [shapes[0]], _flip_attrs(shapes[0], a)),
    lambda x, *, axis=None: np.flip(x, axis), {"axis": None},
    "Reverse the order of elements along axes (a view).",
)  # fmt: skip
_composite(
    "broadcast_to", ("x",), _same_dtype,
    lambda shapes, a: ([None], [_broadcast_to_shape(shapes[0], a["shape"])], a),
    lambda x, *, shape: np.broadcast_to(x, shape), {"shape": None},
    "Broadcast to a shape (a read-only view with zero strides).",
)  # fmt: skip
_composite(
    "concat", ("*tensors",), _promoted,
    lambda shapes, a: ([None] * len(shapes), [concat_shape(shapes, a.get("axis", 0))[0]], a),
    lambda *xs, axis=0: np.concatenate(xs, axis=axis), {"axis": 0},
    "Join tensors along an existing axis (None: flatten first).",
)  # fmt: skip
_composite(
    "stack", ("*tensors",), _promoted,
    lambda shapes, a: ([None] * len(shapes), [stack_shape(shapes, a.get("axis", 0))[0]], a),
    lambda *xs, axis=0: np.stack(xs, axis=axis), {"axis": 0},
    "Join tensors of one shape along a new axis.",
)  # fmt: skip


def _broadcast_to_shape(shape: Shape, target: Sequence[int]) -> Shape:
    target = tuple(int(d) for d in target)
    if (
        any(d < 0 for d in target)
        or len(target) < len(shape)
        or broadcast_shapes(shape, target) != target
    ):
        raise ShapeError(f"cannot broadcast a tensor of shape {shape} to {target}")
    return target
