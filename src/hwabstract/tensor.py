"""Tensors: a dtype, a shape and strides over a buffer on a device.

Strides are in **elements** (as in DLPack and PyTorch), not bytes as in NumPy. Views
(basic indexing, ``T``, ``permute_dims``, ``broadcast_to``, contiguous ``reshape``) share
their base tensor's buffer; the buffer is freed when the last tensor using it is gone.
"""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import Operand
from .dtypes import DType
from .errors import DeviceError, InvalidIndexError, ShapeError

if TYPE_CHECKING:
    from .device import Device
    from .stream import Stream

__all__ = ["Storage", "Tensor", "contiguous_strides"]


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """C-order element strides for ``shape``."""
    strides = []
    acc = 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= max(d, 1)
    return tuple(reversed(strides))


class Storage:
    """One device allocation, shared by a tensor and its views. Freed when unreferenced.

    ``last_stream`` is the stream of the last command that wrote it, ``written`` that
    write's number on it; ``synced`` (weak references to) the streams already ordered after
    that write. Reading it on another stream first makes that stream wait for the write
    (see :meth:`order_before`).
    """

    __slots__ = ("__weakref__", "buffer", "device", "last_stream", "nbytes", "synced", "written")

    def __init__(self, device: Device, nbytes: int, buffer: Any = None) -> None:
        self.device = device
        self.nbytes = nbytes
        self.buffer = None
        self.last_stream: Stream | None = None
        self.written = 0
        self.synced: tuple[weakref.ref[Stream], ...] = ()
        self.buffer = device._impl.allocate(device.index, nbytes) if buffer is None else buffer

    def mark_written(self, stream: Stream) -> None:
        """Record that a command queued on ``stream`` writes this storage."""
        stream._writes += 1
        self.last_stream = stream
        self.written = stream._writes
        self.synced = ()

    def order_before(self, stream: Stream) -> None:
        """Make ``stream`` wait (on the device, not the host) for the last write to this
        storage if that write was queued on another stream. Read-after-write across streams
        is thus always ordered; write-after-read across streams remains the caller's to order
        with events, as in CUDA."""
        writer = self.last_stream
        if writer is None or writer is stream or any(r() is stream for r in self.synced):
            return
        if writer._finished >= self.written:
            pass  # a host wait saw the write finish: nothing to order
        elif writer.device._impl is stream.device._impl:
            # an event, not writer.query(): a query would report a failure of the writer's
            # -- once, so lost to the writer -- in the reader's call
            stream.wait(writer.record(timing=False))
        else:
            writer.synchronize()  # another backend: no device-side event orders them
        self.synced = (*self.synced, weakref.ref(stream))  # weak: must not pin streams

    def _release(self, _finalizing: Any = sys.is_finalizing) -> None:
        """Free the buffer (once); what ``__del__`` does. Where ``hwabstract._fastpath`` is
        in use, ``__del__`` is its compiled twin (``dispatch._configure_compiled``)."""
        buffer = self.buffer
        if buffer is not None:
            self.buffer = None
            # At interpreter shutdown the process's memory goes away anyway, and the backend
            # (its modules, its native library) may already be torn down: do not call it.
            if not _finalizing():
                self.device._impl.free(buffer)

    __del__ = _release


_ops: Any = None  #: ``hwabstract.operations`` (which imports this module), once loaded


def _kernels() -> Any:
    """The kernel functions the operators below call."""
    global _ops
    if _ops is None:
        import importlib

        _ops = importlib.import_module("hwabstract.operations")
    return _ops


# What an operator passes on to its kernel: tensors, Python and NumPy scalars, and NumPy
# arrays (so that ``x + np_array`` gets dispatch's "convert it with hw.asarray" error rather
# than NumPy's "operand does not support ufuncs").
_OPERANDS = (bool, int, float, complex, np.bool_, np.number, np.ndarray)


def _binary(fn: Any, a: Any, b: Any, *, reflected: bool = False) -> Any:
    other = a if reflected else b
    if not isinstance(other, (Tensor, *_OPERANDS)):
        return NotImplemented
    return fn(a, b)


def _inplace(fn: Any, target: Tensor, other: Any) -> Any:
    if not isinstance(other, (Tensor, *_OPERANDS)):
        return NotImplemented
    fn(target, other, out=target)
    return target


class Tensor:
    """An n-dimensional array on a device. Create with :func:`hwabstract.asarray`,
    :func:`hwabstract.zeros` and friends; compute with the kernel functions or operators."""

    __slots__ = ("__weakref__", "_dtype", "_offset", "_op", "_shape", "_storage", "_strides")

    _storage: Storage
    _dtype: DType
    _shape: tuple[int, ...]
    _strides: tuple[int, ...]
    _offset: int
    _op: Operand | None

    __array_ufunc__ = None  # NumPy must not silently compute on our tensors on the host
    __hash__ = None  # type: ignore[assignment]  # == is elementwise

    def __init__(self) -> None:
        raise TypeError("create tensors with hwabstract.asarray(), empty(), zeros(), ...")

    @classmethod
    def _wrap(
        cls,
        storage: Storage,
        dtype: DType,
        shape: tuple[int, ...],
        strides: tuple[int, ...] | None = None,
        offset: int = 0,
    ) -> Tensor:
        self = object.__new__(cls)
        self._storage = storage
        self._dtype = dtype
        self._shape = shape
        self._strides = contiguous_strides(shape) if strides is None else strides
        self._offset = offset
        self._op = None  # the Operand, built on first use (the metadata never changes)
        return self

    # -- metadata -----------------------------------------------------------------------------

    @property
    def device(self) -> Device:
        return self._storage.device

    @property
    def dtype(self) -> DType:
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def strides(self) -> tuple[int, ...]:
        """Element strides (not bytes)."""
        return self._strides

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return math.prod(self._shape)

    @property
    def nbytes(self) -> int:
        """Bytes the elements occupy (size x itemsize), not the size of the buffer."""
        return self.size * self._dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self._dtype.itemsize

    @property
    def is_contiguous(self) -> bool:
        return self._operand().is_contiguous

    def _operand(self, target: tuple[int, ...] | None = None) -> Operand:
        """The backend's view of this tensor, broadcast to ``target`` if given."""
        storage = self._storage
        if storage.buffer is None:
            raise DeviceError("this tensor's memory was released")
        if target is None or target == self._shape:
            op = self._op
            if op is None:
                op = self._op = Operand(
                    storage.buffer, self._dtype, self._shape, self._strides, self._offset
                )
            return op
        shape, strides = _broadcast_layout(self._shape, self._strides, target)
        return Operand(storage.buffer, self._dtype, shape, strides, self._offset)

    def _view(self, shape: tuple[int, ...], strides: tuple[int, ...], offset: int) -> Tensor:
        return Tensor._wrap(self._storage, self._dtype, shape, strides, offset)

    # -- host transfer ------------------------------------------------------------------------

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data; waits for the stream that last wrote this tensor."""
        out = np.empty(self._shape, dtype=self._dtype.numpy_dtype)
        storage = self._storage
        stream = storage.last_stream or storage.device.default_stream
        if out.size:
            storage.device._impl.copy_to_host(stream.handle, out, self._operand())
        stream.synchronize()
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError(
                "a hwabstract Tensor cannot be viewed by NumPy without a copy; "
                "use np.asarray(t) or t.numpy()"
            )
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    def item(self) -> Any:
        """The single element as a Python scalar (the tensor must have size 1)."""
        if self.size != 1:
            raise ShapeError(f"item() needs a tensor with one element, this one has {self.size}")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ShapeError(
                f"the truth value of a tensor with {self.size} elements is ambiguous; "
                "use hw.any() or hw.all()"
            )
        return bool(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())

    def __index__(self) -> int:
        if not self._dtype.is_integer:
            raise TypeError(f"only integer tensors can be used as an index, not {self._dtype}")
        return int(self.item())

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d tensor")
        return self._shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if not self._shape:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self._shape[0]):
            yield self[i]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
        return f"Tensor({body}, dtype={self._dtype.name}, device={self.device.name!r})"

    # -- movement and conversion --------------------------------------------------------------

    def to(self, device: Device | str, *, stream: Stream | None = None) -> Tensor:
        """This tensor on ``device`` (itself if already there). See :func:`hwabstract.to_device`."""
        from .operations import to_device

        return to_device(self, device, stream=stream)

    to_device = to

    def astype(self, dtype: Any, *, copy: bool = True, stream: Stream | None = None) -> Tensor:
        from .operations import astype

        return astype(self, dtype, copy=copy, stream=stream)

    def reshape(self, *shape: Any, copy: bool | None = None) -> Tensor:
        from .operations import reshape

        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape, copy=copy)

    @property
    def T(self) -> Tensor:  # the Array API name
        """Transpose of a 2-D tensor (a view)."""
        if self.ndim != 2:
            raise ShapeError(f".T needs a 2-D tensor, this one is {self.ndim}-D; use .mT")
        return self._view(self._shape[::-1], self._strides[::-1], self._offset)

    @property
    def mT(self) -> Tensor:  # the Array API name
        """Transpose of the last two dimensions (a view)."""
        if self.ndim < 2:
            raise ShapeError(f".mT needs at least 2 dimensions, this tensor has {self.ndim}")
        shape = self._shape[:-2] + self._shape[-2:][::-1]
        strides = self._strides[:-2] + self._strides[-2:][::-1]
        return self._view(shape, strides, self._offset)

    # -- indexing ------------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Tensor:
        """Basic indexing (integers, slices, ``...``, None) gives a view. A boolean tensor
        (the sole index) or integer tensors (with integers) select a copy, reading the
        number of selected elements back from the device for a mask (docs/array-api.md)."""
        if _has_tensor_index(key):
            from . import searching

            if searching.is_advanced(key):
                return searching.getitem(self, key)
        shape, strides, offset = _index_layout(self._shape, self._strides, self._offset, key)
        return self._view(shape, strides, offset)

    def __setitem__(self, key: Any, value: Any) -> None:
        """``x[key] = value`` for basic indices, and for a boolean mask with a scalar value
        (or one shaped like the elements each mask entry selects)."""
        from .operations import assign

        if _has_tensor_index(key):
            from . import searching

            if searching.is_advanced(key):
                searching.setitem(self, key, value)
                return
        assign(self[key], value)

    # -- operators (each calls the kernel function of the same meaning) ----------------------

    def __add__(self, other: Any) -> Tensor:
        return _binary(_kernels().add, self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _binary(_kernels().add, other, self, reflected=True)

    def __iadd__(self, other: Any) -> Tensor:
        return _inplace(_kernels().add, self, other)

    def __sub__(self, other: Any) -> Tensor:
        return _binary(_kernels().subtract, self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _binary(_kernels().subtract, other, self, reflected=True)

    def __isub__(self, other: Any) -> Tensor:
        return _inplace(_kernels().subtract, self, other)

    def __mul__(self, other: Any) -> Tensor:
        return _binary(_kernels().multiply, self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _binary(_kernels().multiply, other, self, reflected=True)

    def __imul__(self, other: Any) -> Tensor:
        return _inplace(_kernels().multiply, self, other)

    def __truediv__(self, other: Any) -> Tensor:
        return _binary(_kernels().divide, self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _binary(_kernels().divide, other, self, reflected=True)

    def __itruediv__(self, other: Any) -> Tensor:
        return _inplace(_kernels().divide, self, other)

    def __floordiv__(self, other: Any) -> Tensor:
        return _binary(_kernels().floor_divide, self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return _binary(_kernels().floor_divide, other, self, reflected=True)

    def __ifloordiv__(self, other: Any) -> Tensor:
        return _inplace(_kernels().floor_divide, self, other)

    def __mod__(self, other: Any) -> Tensor:
        return _binary(_kernels().remainder, self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return _binary(_kernels().remainder, other, self, reflected=True)

    def __imod__(self, other: Any) -> Tensor:
        return _inplace(_kernels().remainder, self, other)

    def __pow__(self, other: Any) -> Tensor:
        return _binary(_kernels().pow, self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _binary(_kernels().pow, other, self, reflected=True)

    def __ipow__(self, other: Any) -> Tensor:
        return _inplace(_kernels().pow, self, other)

    def __matmul__(self, other: Any) -> Tensor:
        return _binary(_kernels().matmul, self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _binary(_kernels().matmul, other, self, reflected=True)

    def __imatmul__(self, other: Any) -> Tensor:
        return _inplace(_kernels().matmul, self, other)

    def __and__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_and, self, other)

    def __rand__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_and, other, self, reflected=True)

    def __iand__(self, other: Any) -> Tensor:
        return _inplace(_kernels().bitwise_and, self, other)

    def __or__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_or, self, other)

    def __ror__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_or, other, self, reflected=True)

    def __ior__(self, other: Any) -> Tensor:
        return _inplace(_kernels().bitwise_or, self, other)

    def __xor__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_xor, self, other)

    def __rxor__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_xor, other, self, reflected=True)

    def __ixor__(self, other: Any) -> Tensor:
        return _inplace(_kernels().bitwise_xor, self, other)

    def __lshift__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_left_shift, self, other)

    def __rlshift__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_left_shift, other, self, reflected=True)

    def __ilshift__(self, other: Any) -> Tensor:
        return _inplace(_kernels().bitwise_left_shift, self, other)

    def __rshift__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_right_shift, self, other)

    def __rrshift__(self, other: Any) -> Tensor:
        return _binary(_kernels().bitwise_right_shift, other, self, reflected=True)

    def __irshift__(self, other: Any) -> Tensor:
        return _inplace(_kernels().bitwise_right_shift, self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _binary(_kernels().equal, self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _binary(_kernels().not_equal, self, other)

    def __lt__(self, other: Any) -> Tensor:
        return _binary(_kernels().less, self, other)

    def __le__(self, other: Any) -> Tensor:
        return _binary(_kernels().less_equal, self, other)

    def __gt__(self, other: Any) -> Tensor:
        return _binary(_kernels().greater, self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _binary(_kernels().greater_equal, self, other)

    def __neg__(self) -> Tensor:
        return _kernels().negative(self)

    def __pos__(self) -> Tensor:
        return _kernels().positive(self)

    def __abs__(self) -> Tensor:
        return _kernels().abs(self)

    def __invert__(self) -> Tensor:
        return _kernels().bitwise_invert(self)

    # -- DLPack --------------------------------------------------------------------------------

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        from .dlpack import export_tensor

        return export_tensor(
            self, stream=stream, max_version=max_version, dl_device=dl_device, copy=copy
        )

    def __dlpack_device__(self) -> tuple[int, int]:
        from .dlpack import tensor_device

        return tensor_device(self)

    # -- Array API namespace hook ---------------------------------------------------------------

    def __array_namespace__(self, *, api_version: str | None = None) -> Any:
        """The Array API namespace: the ``hwabstract`` module itself (2024.12 revision)."""
        import hwabstract

        if api_version is not None and api_version not in _API_VERSIONS:
            raise ValueError(
                f"hwabstract implements the Array API {hwabstract.__array_api_version__} "
                f"(and accepts requests for {', '.join(_API_VERSIONS)}), not {api_version!r}"
            )
        return hwabstract


#: The Array API revisions a consumer may ask ``__array_namespace__`` for: 2024.12 is a
#: superset of the earlier ones for every function this namespace has.
_API_VERSIONS = ("2021.12", "2022.12", "2023.12", "2024.12")


def _has_tensor_index(key: Any) -> bool:
    if isinstance(key, Tensor):
        return True
    return isinstance(key, tuple) and any(isinstance(k, Tensor) for k in key)


def _broadcast_layout(
    shape: tuple[int, ...], strides: tuple[int, ...], target: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    pad = len(target) - len(shape)
    if pad < 0:
        raise ShapeError(f"cannot broadcast shape {shape} to {target}")
    out = [0] * pad
    for d, s, t in zip(shape, strides, target[pad:]):
        if d == t:
            out.append(s)
        elif d == 1:
            out.append(0)
        else:
            raise ShapeError(f"cannot broadcast shape {shape} to {target}")
    return target, tuple(out)


def _index_layout(
    shape: tuple[int, ...], strides: tuple[int, ...], offset: int, key: Any
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Shape, strides and offset of ``tensor[key]`` for basic indexing."""
    if not isinstance(key, tuple):
        key = (key,)
    # identity tests only: ``k == Ellipsis`` would compare arrays elementwise
    ellipses = [i for i, k in enumerate(key) if k is Ellipsis]
    if len(ellipses) > 1:
        raise InvalidIndexError("an index can only have a single ellipsis ('...')")
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > len(shape):
        raise InvalidIndexError(
            f"too many indices: the tensor has {len(shape)} dimension(s), the index has {n_real}"
        )
    if not ellipses:
        ellipses = [len(key)]
        key = (*key, Ellipsis)
    after_ellipsis = sum(1 for k in key[ellipses[0] + 1 :] if k is not None)
    new_shape: list[int] = []
    new_strides: list[int] = []
    dim = 0
    for k in key:
        if k is Ellipsis:
            for _ in range(len(shape) - dim - after_ellipsis):
                new_shape.append(shape[dim])
                new_strides.append(strides[dim])
                dim += 1
        elif k is None:
            new_shape.append(1)
            new_strides.append(0)
        elif isinstance(k, slice):
            try:
                start, stop, step = k.indices(shape[dim])
            except (TypeError, ValueError) as exc:
                raise InvalidIndexError(
                    f"invalid slice {k!r} for dimension {dim}: {exc}. Slice bounds and steps "
                    "are integers (or None) and the step is not zero."
                ) from None
            n = len(range(start, stop, step))
            if n:
                offset += start * strides[dim]
            new_shape.append(n)
            new_strides.append(strides[dim] * step)
            dim += 1
        elif (isinstance(k, (int, np.integer)) and not isinstance(k, bool)) or (
            isinstance(k, Tensor) and k.ndim == 0 and k.dtype.is_integer
        ):
            i = int(k)
            size = shape[dim]
            if not -size <= i < size:
                raise InvalidIndexError(
                    f"index {i} is out of bounds for dimension {dim} with size {size}; "
                    f"valid indices are {-size} to {size - 1}"
                    if size
                    else f"index {i} is out of bounds for dimension {dim}, which is empty"
                )
            offset += (i % size) * strides[dim]
            dim += 1
        else:
            raise InvalidIndexError(
                f"unsupported index {k!r} of type {type(k).__name__}: hwabstract indexes "
                "with integers, slices, '...', None, a boolean tensor (the sole index) or "
                "integer tensors combined with integers. Convert host arrays and lists with "
                "hw.asarray(..., device=x.device) first."
            )
    return tuple(new_shape), tuple(new_strides), offset
