"""Functions whose output shape depends on the data: ``nonzero``, the ``unique_*`` set
functions, and boolean-mask and integer-array indexing (``x[mask]``, ``x[idx]``), plus
``count_nonzero``.

They are compositions of standard kernels (``sort``/``argsort``, ``flatnonzero``, ``take``,
``cumulative_sum``, comparisons), so every device that declares those kernels gets them. The
number of results is read back from the device once per call (a ``sum``): that is the one
point where these functions wait for queued work, as ``nonzero`` does in CuPy and JAX (which
refuses it under ``jit``). ``__array_namespace_info__().capabilities()`` reports
"data-dependent shapes" and "boolean indexing" as supported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from . import dtypes as dt
from . import operations as _operations
from .errors import DTypeError, InvalidIndexError, ShapeError
from .operations import argsort, astype, concat, cumulative_sum, reshape, take, where
from .operations import require_tensor as _tensor
from .stream import Stream
from .tensor import Tensor

# The elementwise and reduction kernel functions are generated from their specs when
# hwabstract.operations loads, so type checkers cannot see them: bind them untyped.
_kernels: Any = _operations
add = _kernels.add
floor_divide = _kernels.floor_divide
less = _kernels.less
not_equal = _kernels.not_equal
remainder = _kernels.remainder
sum = _kernels.sum

__all__ = [
    "count_nonzero",
    "nonzero",
    "unique_all",
    "unique_counts",
    "unique_inverse",
    "unique_values",
]


def _truth(x: Tensor, stream: Stream | None) -> Tensor:
    """A bool tensor: ``x != 0`` (``x`` itself when already bool)."""
    return x if x.dtype.is_bool else not_equal(x, False if x.dtype.is_bool else 0, stream=stream)


def count_nonzero(
    x: Tensor, /, *, axis: int | Sequence[int] | None = None, keepdims: bool = False,
    stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """The number of nonzero elements (int64) over ``axis`` (all axes if None)."""
    _tensor("count_nonzero", x)
    return sum(_truth(x, stream), axis=axis, keepdims=keepdims, stream=stream)


def _flat_nonzero(x: Tensor, stream: Stream | None) -> Tensor:
    """The C-order linear indices of ``x``'s nonzero elements. Waits for the count."""
    from .dispatch import launch

    count = int(count_nonzero(x, stream=stream))
    return launch("flatnonzero", (x,), {"count": count}, stream=stream)


def _unravel(flat: Tensor, shape: tuple[int, ...], stream: Stream | None) -> tuple[Tensor, ...]:
    out = []
    for k, n in enumerate(shape):
        stride = math.prod(shape[k + 1 :])
        index = floor_divide(flat, stride, stream=stream) if stride > 1 else flat
        out.append(remainder(index, n, stream=stream) if n else index)
    return tuple(out)


def nonzero(x: Tensor, /, *, stream: Stream | None = None) -> tuple[Tensor, ...]:
    """The indices of ``x``'s nonzero elements: one int64 tensor per dimension, in C order.
    Reads the number of nonzeros back from the device."""
    _tensor("nonzero", x)
    if x.ndim == 0:
        raise ShapeError("nonzero() of a 0-d tensor is not defined; use x[None] (1-D) instead")
    return _unravel(_flat_nonzero(x, stream), x.shape, stream)


# -- set functions ------------------------------------------------------------------------------


class UniqueAllResult(NamedTuple):
    values: Tensor
    indices: Tensor
    inverse_indices: Tensor
    counts: Tensor


class UniqueCountsResult(NamedTuple):
    values: Tensor
    counts: Tensor


class UniqueInverseResult(NamedTuple):
    values: Tensor
    inverse_indices: Tensor


class _Groups(NamedTuple):
    flat: Tensor  #: x flattened
    order: Tensor  #: a stable argsort of ``flat``
    first: Tensor  #: per sorted position: whether a new value begins there (bool)
    starts: Tensor  #: positions in sorted order where a new value begins
    values: Tensor  #: the distinct values, ascending (each NaN its own value)


def _groups(name: str, x: Tensor, stream: Stream | None) -> _Groups:
    from .dispatch import launch

    _tensor(name, x)
    if x.dtype.is_complex:
        raise DTypeError(f"{name}() of complex tensors is not supported (no complex sort)")
    flat = reshape(x, (-1,), stream=stream)
    order = argsort(flat, stable=True, stream=stream)
    ordered = take(flat, order, axis=0, stream=stream)
    from .creation import full

    # a value starts a group where it differs from its predecessor; NaN != NaN, so every
    # NaN is its own group, and -0.0 == 0.0, so signed zeros share one (the standard's rule)
    head = full((min(flat.shape[0], 1),), True, dtype=dt.bool_, device=x.device, stream=stream)
    first = concat([head, not_equal(ordered[1:], ordered[:-1], stream=stream)], stream=stream)
    count = int(sum(first, stream=stream))
    starts = launch("flatnonzero", (first,), {"count": count}, stream=stream)
    return _Groups(flat, order, first, starts, take(ordered, starts, axis=0, stream=stream))


def _counts(g: _Groups, stream: Stream | None) -> Tensor:
    n = g.flat.shape[0]
    from .creation import full

    end = full((1,), n, dtype=dt.int64, device=g.flat.device, stream=stream)
    bounds = concat([g.starts, end], stream=stream)
    return bounds[1:] - bounds[:-1]


def _inverse(g: _Groups, shape: tuple[int, ...], stream: Stream | None) -> Tensor:
    # the group of each sorted position (a running count of group starts), then back to the
    # original order through the inverse permutation of ``order`` (itself an argsort)
    group = add(cumulative_sum(g.first, stream=stream), -1, stream=stream)
    back = argsort(g.order, stream=stream)
    return reshape(take(group, back, axis=0, stream=stream), shape, stream=stream)


def unique_values(x: Tensor, /, *, stream: Stream | None = None) -> Tensor:
    """The distinct values of ``x`` (1-D, ascending; every NaN is distinct)."""
    return _groups("unique_values", x, stream).values


def unique_counts(x: Tensor, /, *, stream: Stream | None = None) -> UniqueCountsResult:
    """The distinct values of ``x`` and how often each occurs."""
    g = _groups("unique_counts", x, stream)
    return UniqueCountsResult(g.values, _counts(g, stream))


def unique_inverse(x: Tensor, /, *, stream: Stream | None = None) -> UniqueInverseResult:
    """The distinct values of ``x`` and, per element of ``x``, the index of its value
    (shaped like ``x``), so ``values[inverse_indices]`` rebuilds ``x``."""
    g = _groups("unique_inverse", x, stream)
    return UniqueInverseResult(g.values, _inverse(g, x.shape, stream))


def unique_all(x: Tensor, /, *, stream: Stream | None = None) -> UniqueAllResult:
    """Distinct values, the flat index of each one's first occurrence, the inverse indices
    and the counts."""
    g = _groups("unique_all", x, stream)
    first = take(g.order, g.starts, axis=0, stream=stream)
    return UniqueAllResult(g.values, first, _inverse(g, x.shape, stream), _counts(g, stream))


# -- advanced indexing (Tensor.__getitem__ / __setitem__ with tensors in the key) ----------------


def is_advanced(key: Any) -> bool:
    """Whether ``key`` holds a tensor index that is not a 0-d integer (basic) one."""
    items = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, Tensor) and (k.ndim or k.dtype.is_bool) for k in items)


def _sole_mask(name: str, key: Any) -> Tensor | None:
    """The boolean tensor of ``key`` when it is the only index; None when ``key`` holds no
    boolean tensor; an error when one is combined with other indices."""
    items = key if isinstance(key, tuple) else (key,)
    masks = [k for k in items if isinstance(k, Tensor) and k.dtype.is_bool]
    if not masks:
        return None
    if len(items) != 1:
        raise InvalidIndexError(
            f"a boolean tensor index must be the only index ({name}); combine conditions "
            "with & and |, or index in two steps"
        )
    return masks[0]


def getitem(x: Tensor, key: Any) -> Tensor:
    """``x[key]`` for a boolean mask (the sole index) or integer tensors (with integers)."""
    mask = _sole_mask("x[mask]", key)
    if mask is not None:
        return _mask_select(x, mask)
    return _integer_select(x, key if isinstance(key, tuple) else (key,))


def setitem(x: Tensor, key: Any, value: Any) -> None:
    """``x[key] = value`` for a boolean mask (the sole index); integer tensors need a
    scatter, which is refused."""
    mask = _sole_mask("x[mask] = value", key)
    if mask is None:
        refuse_scatter()
    else:
        setitem_mask(x, mask, value)


def _mask_select(x: Tensor, mask: Tensor) -> Tensor:
    if mask.ndim > x.ndim or mask.shape != x.shape[: mask.ndim]:
        raise InvalidIndexError(
            f"a boolean index of shape {mask.shape} must match the leading dimensions of the "
            f"tensor, shape {x.shape}"
        )
    rest = x.shape[mask.ndim :]
    flat = _flat_nonzero(mask, None)
    rows = reshape(x, (math.prod(mask.shape), *rest))
    return take(rows, flat, axis=0)


def _integer_select(x: Tensor, items: Sequence[Any]) -> Tensor:
    if any(k is Ellipsis or k is None or isinstance(k, slice) for k in items):
        raise InvalidIndexError(
            "integer-tensor indices combine only with integers (x[i, j] with tensors i, j), "
            "not with slices, '...' or None; index in two steps"
        )
    if len(items) > x.ndim:
        raise InvalidIndexError(
            f"too many indices: the tensor has {x.ndim} dimension(s), the index has {len(items)}"
        )
    from .kernels.spec import broadcast_shapes

    tensors = []
    for k in items:
        if isinstance(k, Tensor):
            if not k.dtype.is_integer:
                raise InvalidIndexError(f"index tensors must be integer or bool, got {k.dtype}")
            if k.device is not x.device:
                raise InvalidIndexError(
                    f"the index is on {k.device.name} but the tensor is on {x.device.name}"
                )
            tensors.append(k)
    shape = broadcast_shapes(*(k.shape for k in tensors))
    lead = x.shape[: len(items)]
    rest = x.shape[len(items) :]
    linear: Any = 0
    for position, (k, n) in enumerate(zip(items, lead)):
        stride = math.prod(lead[position + 1 :])
        if isinstance(k, Tensor):
            k = astype(k, dt.int64, copy=False)
            k = where(less(k, 0), add(k, n), k)  # negative indices count from the end
        else:
            i = int(k)
            if not -n <= i < n:
                raise InvalidIndexError(f"index {i} is out of bounds for a dimension of size {n}")
            k = i % n
        term = k * stride
        linear = (
            add(linear, term)
            if isinstance(linear, Tensor) or isinstance(term, Tensor)
            else linear + term
        )
    rows = reshape(x, (math.prod(lead), *rest))
    picked = take(rows, reshape(linear, (-1,)), axis=0)
    return reshape(picked, (*shape, *rest))


def setitem_mask(x: Tensor, mask: Tensor, value: Any) -> None:
    """``x[mask] = value`` for a boolean mask and a value that broadcasts to the elements a
    mask entry selects (a scalar, or a tensor of ``x.shape[mask.ndim:]``)."""
    from .operations import assign

    if mask.ndim > x.ndim or mask.shape != x.shape[: mask.ndim]:
        raise InvalidIndexError(
            f"a boolean index of shape {mask.shape} must match the leading dimensions of the "
            f"tensor, shape {x.shape}"
        )
    if isinstance(value, Tensor) and value.ndim > x.ndim - mask.ndim:
        raise InvalidIndexError(
            f"x[mask] = value takes a scalar or a value of shape {x.shape[mask.ndim :]} "
            f"(broadcast to every selected element); got shape {value.shape}. Assigning one "
            "value per selected element needs a scatter, which is not implemented: use "
            "hw.where(mask, new_values, x) with new_values shaped like x"
        )
    expanded = mask._view(
        mask.shape + (1,) * (x.ndim - mask.ndim),
        mask.strides + (0,) * (x.ndim - mask.ndim),
        mask._offset,
    )
    if not isinstance(value, Tensor):
        from .dispatch import resolve_stream, scalar_tensor

        dt.check_scalar_fits(value, x.dtype)
        value = scalar_tensor(x.device, value, x.dtype, resolve_stream(x.device, None))
    assign(x, where(expanded, astype(value, x.dtype, copy=False), x))


def refuse_scatter() -> None:
    """``x[idx] = value`` with integer tensors is a scatter, which no standard kernel does."""
    raise InvalidIndexError(
        "assigning through integer-tensor indices (x[idx] = value) needs a scatter, which "
        "is not implemented; the Array API does not require it. Use a boolean mask "
        "(x[mask] = value) or hw.where()"
    )
