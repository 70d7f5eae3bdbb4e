"""The Array API's manipulation and linear-algebra functions that are compositions: views
(``expand_dims``, ``squeeze``, ``moveaxis``, ``unstack``, ``broadcast_arrays``,
``matrix_transpose``) and short programs of standard kernels (``roll``, ``repeat``, ``tile``,
``diff``, ``tensordot``, ``vecdot``, ``tril``, ``triu``, ``meshgrid``). A backend implements
nothing for them beyond the kernels they use, so every device that declares those kernels
gets them.

Each takes ``stream=`` (default: the current stream of the input's device) like every
kernel function, and returns without waiting for the device -- except ``repeat`` with a
tensor of repeats, whose output length depends on the data (it reads the total back).
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import dtypes as dt
from . import operations as _operations
from .errors import DTypeError, ShapeError
from .kernels.spec import broadcast_shapes, normalize_axes
from .operations import broadcast_to, concat, matmul, permute_dims, reshape, where
from .operations import require_tensor as _tensor
from .stream import Stream
from .tensor import Tensor

# The elementwise and reduction kernel functions are generated from their specs when
# hwabstract.operations loads, so type checkers cannot see them: bind them untyped.
_kernels: Any = _operations
conj = _kernels.conj
greater_equal = _kernels.greater_equal
less_equal = _kernels.less_equal
multiply = _kernels.multiply
subtract = _kernels.subtract
sum = _kernels.sum

__all__ = [
    "broadcast_arrays",
    "diff",
    "expand_dims",
    "matrix_transpose",
    "meshgrid",
    "moveaxis",
    "repeat",
    "roll",
    "squeeze",
    "tensordot",
    "tile",
    "tril",
    "triu",
    "unstack",
    "vecdot",
]


def _axes(name: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """One int or a tuple of ints, each in [-ndim, ndim), made non-negative and sorted."""
    return normalize_axes(axis, ndim, name=f"{name}() axis")


def expand_dims(x: Tensor, /, axis: int | Sequence[int] = 0) -> Tensor:
    """``x`` with a new dimension of size one at each of ``axis`` (positions in the
    result). A view."""
    _tensor("expand_dims", x)
    axes = _axes("expand_dims", axis, x.ndim + (1 if isinstance(axis, int) else len(axis)))
    shape, strides = list(x.shape), list(x.strides)
    for a in axes:
        shape.insert(a, 1)
        strides.insert(a, 0)
    return x._view(tuple(shape), tuple(strides), x._offset)


def squeeze(x: Tensor, /, axis: int | Sequence[int]) -> Tensor:
    """``x`` without the dimensions ``axis``, each of which must have size one. A view."""
    _tensor("squeeze", x)
    axes = _axes("squeeze", axis, x.ndim)
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(
                f"squeeze() axis {a} has size {x.shape[a]}, not 1 (tensor shape {x.shape})"
            )
    keep = [i for i in range(x.ndim) if i not in axes]
    return x._view(tuple(x.shape[i] for i in keep), tuple(x.strides[i] for i in keep), x._offset)


def moveaxis(x: Tensor, source: int | Sequence[int], destination: int | Sequence[int], /) -> Tensor:
    """``x`` with the axes ``source`` moved to the positions ``destination``. A view."""
    _tensor("moveaxis", x)
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise ShapeError(f"moveaxis() needs as many destinations as sources, got {src} and {dst}")
    src_n = [int(a) % x.ndim if -x.ndim <= a < x.ndim else None for a in src]
    dst_n = [int(a) % x.ndim if -x.ndim <= a < x.ndim else None for a in dst]
    if (
        None in src_n
        or None in dst_n
        or len(set(src_n)) != len(src_n)
        or len(set(dst_n)) != len(dst_n)
    ):
        raise ShapeError(
            f"moveaxis() source {src} and destination {dst} must be distinct axes of a "
            f"{x.ndim}-D tensor"
        )
    order = [i for i in range(x.ndim) if i not in src_n]
    for d, s in sorted(zip(dst_n, src_n)):  # (all ints: None was refused above)
        order.insert(int(d), int(s))  # type: ignore[arg-type]
    return permute_dims(x, order)


def matrix_transpose(x: Tensor, /) -> Tensor:
    """``x`` with its last two dimensions swapped (``x.mT``). A view."""
    return _tensor("matrix_transpose", x).mT


def unstack(x: Tensor, /, *, axis: int = 0) -> tuple[Tensor, ...]:
    """Views of ``x`` split along ``axis``, one per index."""
    _tensor("unstack", x)
    (a,) = _axes("unstack", axis, x.ndim)
    return tuple(x[(slice(None),) * a + (i,)] for i in range(x.shape[a]))


def broadcast_arrays(*arrays: Tensor) -> list[Tensor]:
    """The tensors broadcast against each other (views with zero strides)."""
    for t in arrays:
        _tensor("broadcast_arrays", t)
    shape = broadcast_shapes(*(t.shape for t in arrays))
    return [broadcast_to(t, shape) for t in arrays]


def _at(axis: int, index: Any) -> tuple[Any, ...]:
    """The key that applies ``index`` along ``axis`` and takes everything elsewhere."""
    return (*((slice(None),) * axis), index)


def roll(
    x: Tensor, /, shift: int | Sequence[int], *, axis: int | Sequence[int] | None = None,
    stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """Elements of ``x`` shifted by ``shift`` along ``axis`` (wrapping around); with
    ``axis=None``, over the flattened tensor, shape kept."""
    _tensor("roll", x)
    if axis is None:
        if not isinstance(shift, int):
            raise ShapeError("roll() with axis=None takes a single int shift")
        flat = reshape(x, (-1,), stream=stream)
        return reshape(roll(flat, shift, axis=0, stream=stream), x.shape, stream=stream)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    shifts = (shift,) * len(axes) if isinstance(shift, int) else tuple(shift)
    if len(shifts) != len(axes):
        raise ShapeError(f"roll() needs one shift per axis, got {shifts} for axes {axes}")
    result = x
    for s, a in zip(shifts, axes):
        (ax,) = _axes("roll", a, x.ndim)
        n = x.shape[ax]
        k = s % n if n else 0
        if k:
            tail, front = result[_at(ax, slice(n - k, None))], result[_at(ax, slice(0, n - k))]
            result = concat([tail, front], axis=ax, stream=stream)
    if result is x:  # nothing moved: still a new tensor, as the standard's functions return
        result = reshape(x, x.shape, copy=True, stream=stream)
    return result


def repeat(
    x: Tensor, repeats: int | Tensor, /, *, axis: int | None = None,
    stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """Each element of ``x`` repeated ``repeats`` times along ``axis`` (flattened first
    when ``axis`` is None). ``repeats`` is an int or a 1-D integer tensor with one count per
    element along ``axis``; with a tensor the result's length depends on the data, so this
    reads the total back from the device."""
    from .creation import arange
    from .operations import astype, cumulative_sum, searchsorted, take

    _tensor("repeat", x)
    if axis is None:
        x = reshape(x, (-1,), stream=stream)
        axis = 0
    (ax,) = _axes("repeat", axis, x.ndim)
    n = x.shape[ax]
    if isinstance(repeats, Tensor):
        if not repeats.dtype.is_integer or repeats.ndim > 1:
            raise DTypeError(
                f"repeat() repeats must be an int or a 1-D integer tensor, got "
                f"{repeats.dtype} of shape {repeats.shape}"
            )
        if repeats.ndim == 0 or repeats.shape[0] == 1:
            return repeat(x, int(repeats.reshape(())), axis=ax, stream=stream)
        if repeats.shape[0] != n:
            raise ShapeError(f"repeat() got {repeats.shape[0]} repeats for an axis of length {n}")
        ends = cumulative_sum(astype(repeats, dt.int64, stream=stream), stream=stream)
        total = int(ends[-1]) if n else 0
        if total < 0:
            raise ShapeError("repeat() repeats must not be negative")
        positions = arange(total, dtype=dt.int64, device=x.device, stream=stream)
        source = searchsorted(ends, positions, side="right", stream=stream)
        return take(x, source, axis=ax, stream=stream)
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 0:
        raise DTypeError(f"repeat() repeats must be a non-negative int, got {repeats!r}")
    r = int(repeats)
    expanded = expand_dims(x, ax + 1)
    target = (*x.shape[: ax + 1], r, *x.shape[ax + 1 :])
    out_shape = (*x.shape[:ax], n * r, *x.shape[ax + 1 :])
    return reshape(broadcast_to(expanded, target), out_shape, copy=True, stream=stream)


def tile(x: Tensor, repetitions: Sequence[int], /, *, stream: Stream | None = None) -> Tensor:
    """``x`` repeated ``repetitions[i]`` times along each dimension ``i`` (leading ones are
    added to whichever of the two is shorter)."""
    _tensor("tile", x)
    reps = tuple(int(r) for r in repetitions)
    if builtins.any(r < 0 for r in reps):
        raise ShapeError(f"tile() repetitions must be non-negative, got {reps}")
    ndim = builtins.max(x.ndim, len(reps))
    reps = (1,) * (ndim - len(reps)) + reps
    shape = (1,) * (ndim - x.ndim) + x.shape
    base = reshape(x, shape, stream=stream)
    interleaved = expand_dims(base, tuple(range(0, 2 * ndim, 2)))  # (1, d0, 1, d1, ...)
    target = tuple(v for pair in zip(reps, shape) for v in pair)
    out = tuple(r * d for r, d in zip(reps, shape))
    return reshape(broadcast_to(interleaved, target), out, copy=True, stream=stream)


def diff(
    x: Tensor, /, *, axis: int = -1, n: int = 1, prepend: Tensor | None = None,
    append: Tensor | None = None, stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """The ``n``-th forward difference along ``axis`` (``prepend``/``append`` joined to ``x``
    first)."""
    _tensor("diff", x)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ShapeError(f"diff() n must be a non-negative int, got {n!r}")
    (ax,) = _axes("diff", axis, x.ndim)
    parts = [t for t in (prepend, x, append) if t is not None]
    result = concat(parts, axis=ax, stream=stream) if len(parts) > 1 else x
    for _ in range(n):
        step = _kernels.not_equal if result.dtype.is_bool else subtract  # bool: a != b
        later, earlier = result[_at(ax, slice(1, None))], result[_at(ax, slice(None, -1))]
        result = step(later, earlier, stream=stream)
    if result is x:
        result = reshape(x, x.shape, copy=True, stream=stream)
    return result


def tensordot(
    x1: Tensor, x2: Tensor, /, *, axes: int | tuple[Sequence[int], Sequence[int]] = 2,
    stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """Sum of products over the last ``axes`` dimensions of ``x1`` and the first of ``x2``
    (or over the two given sequences of axes): a matrix product of the reshaped tensors."""
    _tensor("tensordot", x1)
    _tensor("tensordot", x2)
    if isinstance(axes, int):
        if axes < 0 or axes > builtins.min(x1.ndim, x2.ndim):
            raise ShapeError(f"tensordot() axes={axes} is out of range for {x1.shape}, {x2.shape}")
        a1 = tuple(range(x1.ndim - axes, x1.ndim))
        a2 = tuple(range(axes))
    else:
        first, second = axes
        a1 = tuple(int(a) % x1.ndim for a in first)
        a2 = tuple(int(a) % x2.ndim for a in second)
        if len(a1) != len(a2):
            raise ShapeError(f"tensordot() needs as many axes of x1 as of x2, got {axes}")
    for i, j in zip(a1, a2):
        if x1.shape[i] != x2.shape[j]:
            raise ShapeError(
                f"tensordot() contracts axis {i} of x1 (size {x1.shape[i]}) with axis {j} "
                f"of x2 (size {x2.shape[j]}); the sizes must match"
            )
    free1 = [i for i in range(x1.ndim) if i not in a1]
    free2 = [j for j in range(x2.ndim) if j not in a2]
    k = math.prod(x1.shape[i] for i in a1)
    left = reshape(permute_dims(x1, free1 + list(a1)),
                   (math.prod(x1.shape[i] for i in free1), k), stream=stream)  # fmt: skip
    right = reshape(permute_dims(x2, list(a2) + free2),
                    (k, math.prod(x2.shape[j] for j in free2)), stream=stream)  # fmt: skip
    product = matmul(left, right, stream=stream)
    shape = tuple(x1.shape[i] for i in free1) + tuple(x2.shape[j] for j in free2)
    return reshape(product, shape, stream=stream)


def vecdot(x1: Tensor, x2: Tensor, /, *, axis: int = -1, stream: Stream | None = None) -> Tensor:
    """Dot product of vectors along ``axis`` (of the broadcast shape), conjugating ``x1``."""
    _tensor("vecdot", x1)
    _tensor("vecdot", x2)
    shape = broadcast_shapes(x1.shape, x2.shape)
    (ax,) = _axes("vecdot", axis, len(shape))
    if x1.ndim and x2.ndim:
        n1 = x1.shape[ax - len(shape) + x1.ndim] if ax >= len(shape) - x1.ndim else 1
        n2 = x2.shape[ax - len(shape) + x2.ndim] if ax >= len(shape) - x2.ndim else 1
        if n1 != n2:
            raise ShapeError(
                f"vecdot() needs equal sizes along axis {axis}, got {x1.shape} and {x2.shape}"
            )
    left = conj(x1, stream=stream) if x1.dtype.is_complex else x1
    return sum(multiply(left, x2, stream=stream), axis=ax, stream=stream)


def _triangle(name: str, x: Tensor, k: int, lower: bool, stream: Stream | None) -> Tensor:
    from .creation import arange, zeros

    _tensor(name, x)
    if x.ndim < 2:
        raise ShapeError(f"{name}() needs at least 2 dimensions, got shape {x.shape}")
    m, n = x.shape[-2:]
    rows = reshape(arange(m, dtype=dt.int64, device=x.device, stream=stream), (m, 1))
    cols = arange(n, dtype=dt.int64, device=x.device, stream=stream)
    offset = subtract(cols, rows, stream=stream)  # j - i
    keep = (less_equal if lower else greater_equal)(offset, k, stream=stream)
    fill = zeros((), dtype=x.dtype, device=x.device, stream=stream)
    return where(keep, x, fill, stream=stream)


def tril(x: Tensor, /, *, k: int = 0, stream: Stream | None = None) -> Tensor:
    """``x`` with the elements above diagonal ``k`` set to zero (each matrix of a stack)."""
    return _triangle("tril", x, k, True, stream)


def triu(x: Tensor, /, *, k: int = 0, stream: Stream | None = None) -> Tensor:
    """``x`` with the elements below diagonal ``k`` set to zero (each matrix of a stack)."""
    return _triangle("triu", x, k, False, stream)


def meshgrid(*arrays: Tensor, indexing: str = "xy", stream: Stream | None = None) -> list[Tensor]:
    """Coordinate grids from 1-D tensors (``indexing='xy'``: Cartesian, the first two
    outputs' axes swapped; ``'ij'``: matrix). Each output is a new tensor."""
    if indexing not in ("xy", "ij"):
        raise ShapeError(f"meshgrid() indexing must be 'xy' or 'ij', got {indexing!r}")
    for t in arrays:
        _tensor("meshgrid", t)
        if t.ndim != 1:
            raise ShapeError(f"meshgrid() takes 1-D tensors, got shape {t.shape}")
    if not arrays:
        return []
    if len({t.dtype for t in arrays}) != 1:
        raise DTypeError("meshgrid() needs tensors of one dtype")
    sizes = [t.shape[0] for t in arrays]
    if indexing == "xy" and len(arrays) > 1:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    shape = tuple(sizes)
    out = []
    for i, t in enumerate(arrays):
        pos = i
        if indexing == "xy" and len(arrays) > 1 and i < 2:
            pos = 1 - i
        view = t._view(
            tuple(s if j == pos else 1 for j, s in enumerate(shape)),
            tuple(t.strides[0] if j == pos else 0 for j in range(len(shape))),
            t._offset,
        )
        out.append(reshape(broadcast_to(view, shape), shape, copy=True, stream=stream))
    return out
