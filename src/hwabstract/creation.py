"""Creation functions: ``asarray``, ``empty``, ``zeros``, ``ones``, ``full``, ``arange``,
``linspace``, ``eye`` and the ``*_like`` forms. Each takes ``device=``, ``dtype=`` and
``stream=``.

Default dtypes: a Python ``float`` becomes ``float32`` (most accelerators have no native
float64), an ``int`` becomes ``int64``, a ``complex`` becomes ``complex64``. NumPy arrays keep
their dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import dtypes as dt
from .dispatch import allocate, copy_into, resolve_stream, scalar_tensor
from .dtypes import DType
from .errors import DeviceError, DTypeError, ShapeError
from .stream import Stream
from .tensor import Storage, Tensor

__all__ = [
    "arange",
    "asarray",
    "empty",
    "empty_like",
    "eye",
    "full",
    "full_like",
    "linspace",
    "ones",
    "ones_like",
    "zeros",
    "zeros_like",
]


def _device(device: Any) -> Any:
    from .registry import get_registry

    return get_registry().device(device)


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        out = tuple(int(d) for d in shape)
    except TypeError:
        raise ShapeError(f"a shape is an int or a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in out):
        raise ShapeError(f"shape {out} has a negative dimension")
    return out


def _scalar_dtype(value: Any) -> DType:
    if isinstance(value, np.generic):
        return dt.dtype(value.dtype)
    if isinstance(value, Tensor):
        return value.dtype
    return dt.result_type(value)


def _upload(host: np.ndarray, device: Any, stream: Stream | None) -> Tensor:
    dtype = dt.dtype(host.dtype)
    tensor = allocate(device, host.shape, dtype)
    s = resolve_stream(device, stream)
    if tensor.size:
        device._impl.copy_from_host(s.handle, tensor._operand(), np.ascontiguousarray(host))
    tensor._storage.mark_written(s)
    return tensor


def _host_array(obj: Any, dtype: DType | None) -> np.ndarray:
    if dtype is not None:
        try:
            return np.asarray(obj, dtype=dtype.numpy_dtype)
        except (OverflowError, ValueError) as exc:
            raise DTypeError(f"cannot convert {obj!r} to {dtype}: {exc}") from exc
    from_numpy = isinstance(obj, (np.ndarray, np.generic))
    arr = np.asarray(obj)
    if not from_numpy:
        if arr.dtype == np.float64:
            arr = arr.astype(dt.default_float.numpy_dtype)
        elif arr.dtype == np.complex128:
            arr = arr.astype(dt.default_complex.numpy_dtype)
    try:
        dt.dtype(arr.dtype)
    except DTypeError:
        raise DTypeError(
            f"cannot make a tensor from data of NumPy dtype {arr.dtype}; hwabstract holds "
            "bools and numbers (see hwabstract.all_dtypes())"
        ) from None
    return arr


def asarray(
    obj: Any,
    /,
    *,
    dtype: Any = None,
    device: Any = None,
    copy: bool | None = None,
    stream: Stream | None = None,
) -> Tensor:
    """A tensor from a Tensor, a NumPy array, a DLPack producer, a nested sequence or a
    scalar.

    ``copy=True`` always copies; ``copy=False`` never does (an error if it must, e.g. a dtype
    change, or host data on a device that cannot address host memory); ``None`` copies only
    when needed.
    """
    target_dtype = None if dtype is None else dt.dtype(dtype)
    if isinstance(obj, Tensor):
        dev = obj.device if device is None else _device(device)
        if copy is False and dev is not obj.device:
            raise DeviceError(
                f"asarray(copy=False) cannot move a tensor from {obj.device.name} to "
                f"{dev.name} without copying; pass copy=None (or use .to({dev.name!r}))"
            )
        result = obj.to(dev, stream=stream) if dev is not obj.device else obj
        if target_dtype is not None and target_dtype is not result.dtype:
            if copy is False:
                raise DTypeError(
                    f"asarray(copy=False) cannot change dtype {result.dtype} to {target_dtype}"
                )
            return result.astype(target_dtype, stream=stream)
        if copy and result is obj:
            fresh = allocate(dev, obj.shape, obj.dtype)
            copy_into(fresh, obj, resolve_stream(dev, stream))
            return fresh
        return result
    if hasattr(obj, "__dlpack__") and not isinstance(obj, (np.ndarray, np.generic)):
        from .dlpack import from_dlpack

        result = from_dlpack(obj, device=device, copy=copy)
        if target_dtype is not None and target_dtype is not result.dtype:
            return result.astype(target_dtype, stream=stream)
        return result
    dev = _device(device)
    host = _host_array(obj, target_dtype)
    if copy is False:
        if host is not obj and not (isinstance(obj, np.ndarray) and np.shares_memory(host, obj)):
            raise DTypeError("asarray(copy=False) cannot avoid a copy for this input")
        return _adopt(host, dev)
    return _upload(host, dev, stream)


def _adopt(host: np.ndarray, device: Any) -> Tensor:
    if not host.flags.c_contiguous:
        raise ShapeError("asarray(copy=False) needs a C-contiguous array")
    if not host.flags.writeable:
        raise DTypeError(
            "asarray(copy=False) cannot share a read-only array: tensors are writable, so "
            "writes through the tensor would fail on the device. Pass copy=None to copy it."
        )
    dtype = dt.dtype(host.dtype)
    buffer = device._impl.adopt_host_array(device.index, host)
    if buffer is None:
        raise DTypeError(
            f"asarray(copy=False): {device.name} cannot address host memory, so a copy is "
            "needed; pass copy=None"
        )
    return Tensor._wrap(Storage(device, host.nbytes, buffer), dtype, host.shape)


def empty(shape: int | Sequence[int], *, dtype: Any = None, device: Any = None,
          stream: Stream | None = None) -> Tensor:  # fmt: skip
    """An uninitialized tensor."""
    dev = _device(device)
    if stream is not None:
        resolve_stream(dev, stream)  # checks the stream belongs to the device
    return allocate(dev, _shape(shape), dt.dtype(dt.default_float if dtype is None else dtype))


def full(shape: int | Sequence[int], fill_value: Any, *, dtype: Any = None, device: Any = None,
         stream: Stream | None = None) -> Tensor:  # fmt: skip
    """A tensor filled with ``fill_value`` (dtype inferred from it when not given)."""
    dev = _device(device)
    d = dt.dtype(dtype) if dtype is not None else _scalar_dtype(fill_value)
    tensor = allocate(dev, _shape(shape), d)
    s = resolve_stream(dev, stream)
    copy_into(tensor, scalar_tensor(dev, fill_value, d, s), s)
    return tensor


def zeros(shape: int | Sequence[int], *, dtype: Any = None, device: Any = None,
          stream: Stream | None = None) -> Tensor:  # fmt: skip
    """A tensor of zeros (default dtype float32)."""
    d = dt.dtype(dt.default_float if dtype is None else dtype)
    return full(shape, False if d.is_bool else 0, dtype=d, device=device, stream=stream)


def ones(shape: int | Sequence[int], *, dtype: Any = None, device: Any = None,
         stream: Stream | None = None) -> Tensor:  # fmt: skip
    """A tensor of ones (default dtype float32)."""
    d = dt.dtype(dt.default_float if dtype is None else dtype)
    return full(shape, True if d.is_bool else 1, dtype=d, device=device, stream=stream)


def _like(x: Tensor, dtype: Any, device: Any) -> tuple[Any, Any]:
    if not isinstance(x, Tensor):
        raise DTypeError(f"the *_like functions take a hwabstract Tensor, got {type(x).__name__}")
    return (x.dtype if dtype is None else dtype), (x.device if device is None else device)


def empty_like(x: Tensor, /, *, dtype: Any = None, device: Any = None,
               stream: Stream | None = None) -> Tensor:  # fmt: skip
    """An uninitialized tensor with ``x``'s shape (and dtype and device unless given)."""
    d, dev = _like(x, dtype, device)
    return empty(x.shape, dtype=d, device=dev, stream=stream)


def zeros_like(x: Tensor, /, *, dtype: Any = None, device: Any = None,
               stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Zeros with ``x``'s shape (and dtype and device unless given)."""
    d, dev = _like(x, dtype, device)
    return zeros(x.shape, dtype=d, device=dev, stream=stream)


def ones_like(x: Tensor, /, *, dtype: Any = None, device: Any = None,
              stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Ones with ``x``'s shape (and dtype and device unless given)."""
    d, dev = _like(x, dtype, device)
    return ones(x.shape, dtype=d, device=dev, stream=stream)


def full_like(x: Tensor, /, fill_value: Any, *, dtype: Any = None, device: Any = None,
              stream: Stream | None = None) -> Tensor:  # fmt: skip
    """``fill_value`` with ``x``'s shape (and dtype and device unless given)."""
    d, dev = _like(x, dtype, device)
    return full(x.shape, fill_value, dtype=d, device=dev, stream=stream)


def arange(start: Any, /, stop: Any = None, step: Any = 1, *, dtype: Any = None,
           device: Any = None, stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Evenly spaced values in ``[start, stop)``. Computed on the host, then uploaded."""
    if stop is None:
        start, stop = 0, start
    if any(np.iscomplexobj(v) for v in (start, stop, step)):
        raise DTypeError("arange() takes real start, stop and step; use linspace() for complex")
    if step == 0:
        raise ShapeError("arange() step must not be zero")
    d = dt.dtype(dtype) if dtype is not None else dt.result_type(start, stop, step)
    if d.is_bool:
        raise DTypeError(
            "arange() cannot make a bool tensor (it would count past True); make an integer "
            "range and compare it, e.g. hw.arange(n) > 0"
        )
    n = max(0, math.ceil((stop - start) / step))
    host = start + step * np.arange(n, dtype=np.float64 if d.is_floating else np.int64)
    return _upload(host.astype(d.numpy_dtype), _device(device), stream)


def linspace(start: Any, stop: Any, /, num: int, *, dtype: Any = None, device: Any = None,
             endpoint: bool = True, stream: Stream | None = None) -> Tensor:  # fmt: skip
    """``num`` evenly spaced values from ``start`` to ``stop`` (computed in float64 on the
    host, then converted and uploaded)."""
    if num < 0:
        raise ShapeError(f"linspace() num must be non-negative, got {num}")
    d = dt.dtype(dtype) if dtype is not None else dt.result_type(start, stop, 1.0)
    work = np.complex128 if d.is_complex else np.float64
    host = np.linspace(start, stop, num, endpoint=endpoint, dtype=work)
    return _upload(host.astype(d.numpy_dtype), _device(device), stream)


def eye(n_rows: int, n_cols: int | None = None, /, *, k: int = 0, dtype: Any = None,
        device: Any = None, stream: Stream | None = None) -> Tensor:  # fmt: skip
    """A 2-D tensor with ones on diagonal ``k`` and zeros elsewhere (built on the device:
    zeros, then a strided view of the diagonal is filled)."""
    cols = n_rows if n_cols is None else n_cols
    d = dt.dtype(dt.default_float if dtype is None else dtype)
    result = zeros((n_rows, cols), dtype=d, device=device, stream=stream)
    length = max(0, min(n_rows - max(-k, 0), cols - max(k, 0)))
    if length:
        start = max(-k, 0) * cols + max(k, 0)
        diag = result._view((length,), (cols + 1,), start)
        s = resolve_stream(result.device, stream)
        copy_into(diag, scalar_tensor(result.device, True if d.is_bool else 1, d, s), s)
    return result
