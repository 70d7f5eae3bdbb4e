"""A TEST DOUBLE of the part of CuPy that ``hwabstract-nvidia`` uses -- host memory and
NumPy, not CUDA.

It lets the nvidia backend's own Python logic run on a machine without a GPU: views with
byte strides (negative and zero ones included), raw-pointer copies and their offset
arithmetic, peer copies, stream-ordered frees with fence events, memory accounting,
out-of-memory mapping and retry, CUDA error mapping, the ufunc fast path with ``out=``,
DLPack export and adoption, custom-kernel launches. It proves that logic, never CUDA: no
kernel here is compiled, no number here comes from a GPU.

Install it as ``cupy`` (and the submodules the backend imports) with :func:`install`;
:func:`reset` gives a fresh fake GPU (two devices by default) and returns its control
panel, a :class:`FakeGpu`.

Faithful to CuPy 14 (checked against its sources) where the backend depends on it:

* ``cupy.ndarray(shape, dtype, memptr=, strides=)`` takes byte strides of any sign: the view
  starts at ``memptr`` and elements may lie before it; ``strides`` without ``memptr`` is a
  ValueError; more than 64 dimensions are refused.
* ``MemoryPointer(mem, offset)``: ``ptr = mem.ptr + offset``; ``p + n``, ``n + p``, ``p - n``
  keep ``mem``; a null pointer takes no offset (an AssertionError, as in CuPy).
* The memory pool: per-device and per-stream arenas (memory freed goes back to the arena of
  the stream current when it was allocated), sizes rounded up to 512 bytes, ``malloc(0)``
  a null pointer, a block returned when its last ``MemoryPointer`` goes away; on a failed
  ``cudaMalloc`` it frees its cached blocks and retries (twice, the second time after
  ``gc.collect()``), then raises ``cupy.cuda.memory.OutOfMemoryError`` with CuPy's message.
* ``Stream.__enter__`` refuses a stream of another device than the current one
  (RuntimeError); ``Event.record`` on a stream of another device fails with
  ``cudaErrorInvalidResourceHandle``; ``get_elapsed_time`` fails with it for events
  recorded without timing (or never recorded) and with ``cudaErrorNotReady`` for events
  not reached; an event never recorded is ``done``.
* Errors: ``CUDARuntimeError(status)`` and ``CUDADriverError(status)`` with CUDA's names
  and texts; kernels (namespace functions, ``a[...] = b``, custom kernels) fail with
  *driver* errors, as CuPy launches them through ``cuLaunchKernel``; a sticky error
  (:meth:`FakeGpu.fail`) makes every later call touching the device fail.
* ``argsort``/``sort`` are stable and take no ``stable=`` keyword; ``take`` and
  ``take_along_axis`` wrap out-of-range indices around the axis (CuPy's integer-array
  indexing rule) instead of raising; ``cupy.linalg`` has CuPy's functions and signatures
  (no ``svdvals``, ``cholesky`` without ``upper=``), and where NumPy raises LinAlgError
  (a singular matrix, one not positive definite) returns NaNs, as cuSOLVER's invalid
  results come back under CuPy's default ``cupyx.errstate(linalg='ignore')``;
  ``cupy.fft`` has ``fft``, ``ifft``, ``rfft`` and ``irfft`` with CuPy's signatures.
* ``ndarray.__dlpack__`` follows CuPy's rules for ``stream``, ``dl_device`` and ``copy``
  (the consumer's stream waits for an event on the current stream; ``dl_device=(1, 0)``
  is a host copy) and hands out a capsule whose device is ``(kDLCUDA, id)`` -- so NumPy
  refuses it, as it refuses a real CuPy array's. ``from_dlpack`` follows CuPy's too,
  including ``DLPackMemory.size`` being ``itemsize * sum(shape)`` (CuPy's own quirk).

Where it differs (by necessity, or to be stricter than CUDA):

* Execution is synchronous: work is done when the call returns. Events and streams still
  report truthfully; with :attr:`FakeGpu.hold_fences` set, events recorded are *pending*
  (``done`` is False, and so is the stream's) until :meth:`FakeGpu.release_fences`, or until
  something synchronizes on them. Work itself never waits.
* Numbers are NumPy's: transcendental functions, reduction orders, float16 arithmetic,
  ``erfc`` (``math.erfc``), sorts, linear algebra (LAPACK, not cuSOLVER) and FFTs
  (pocketfft, not cuFFT) are not CUDA's.
* Capsules carry host pointers under a kDLCUDA device type; only this fake's
  ``from_dlpack`` can read them.
* Results of namespace functions live in NumPy-allocated host memory, registered as device
  memory of the current device when their ``.data`` is first asked for; only
  ``ndarray``/``empty``/``zeros``/``ones``/``full``/``*_like``/``asarray``/``array``/
  ``ascontiguousarray`` allocate from the pool (so pool statistics count those).
* Stricter than CUDA: a view or a copy reaching outside every live allocation, a
  misaligned view, a copy whose pointers do not match its direction, an overlapping
  device-to-device copy and arrays of another device in a kernel (CuPy allows those with
  peer access) are refused on the spot with an error saying so, instead of faulting or
  corrupting memory later. NumPy arrays are refused by ufuncs, as CuPy refuses them.
* The fake GPU reports ``total_memory`` (80 GiB, like an H100) but backs at most
  ``memory_limit`` bytes (4 GiB by default) with host memory; beyond, its ``cudaMalloc``
  fails with ``cudaErrorMemoryAllocation``, as a full GPU's would.
"""

from __future__ import annotations

import bisect
import ctypes
import gc
import itertools
import math
import sys
import threading
import time
import types
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__version__ = "14.2.0+fake"

# -- errors ----------------------------------------------------------------------------------------

_RUNTIME_ERRORS = {
    1: ("cudaErrorInvalidValue", "invalid argument"),
    2: ("cudaErrorMemoryAllocation", "out of memory"),
    21: ("cudaErrorInvalidMemcpyDirection", "invalid copy direction for memcpy"),
    101: ("cudaErrorInvalidDevice", "invalid device ordinal"),
    400: ("cudaErrorInvalidResourceHandle", "invalid resource handle"),
    600: ("cudaErrorNotReady", "device not ready"),
    700: ("cudaErrorIllegalAddress", "an illegal memory access was encountered"),
    710: ("cudaErrorAssert", "device-side assert triggered"),
    716: ("cudaErrorMisalignedAddress", "misaligned address"),
    719: ("cudaErrorLaunchFailure", "unspecified launch failure"),
    999: ("cudaErrorUnknown", "unknown error"),
}
_DRIVER_ERRORS = {
    1: ("CUDA_ERROR_INVALID_VALUE", "invalid argument"),
    2: ("CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
    200: ("CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"),
    400: ("CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"),
    500: ("CUDA_ERROR_NOT_FOUND", "named symbol not found"),
    700: ("CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"),
    710: ("CUDA_ERROR_ASSERT", "device-side assert triggered"),
    716: ("CUDA_ERROR_MISALIGNED_ADDRESS", "misaligned address"),
    719: ("CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"),
    999: ("CUDA_ERROR_UNKNOWN", "unknown error"),
}


def status_of(error: int | str) -> int:
    """A CUDA status code from a code or a runtime/driver error name."""
    if isinstance(error, int):
        return error
    for table in (_RUNTIME_ERRORS, _DRIVER_ERRORS):
        for code, (name, _) in table.items():
            if name == error:
                return code
    raise KeyError(f"fake cupy knows no CUDA error named {error!r}")


class CUDARuntimeError(RuntimeError):
    """``cupy_backends.cuda.api.runtime.CUDARuntimeError``: ``"name: text"``, ``.status``."""

    def __init__(self, status: int) -> None:
        self.status = status
        name, text = _RUNTIME_ERRORS.get(status, _RUNTIME_ERRORS[999])
        super().__init__(f"{name}: {text}")

    def __reduce__(self) -> Any:
        return (type(self), (self.status,))


class CUDADriverError(RuntimeError):
    """``cupy_backends.cuda.api.driver.CUDADriverError``: ``"NAME: text"``, ``.status``."""

    def __init__(self, status: int) -> None:
        self.status = status
        name, text = _DRIVER_ERRORS.get(status, _DRIVER_ERRORS[999])
        super().__init__(f"{name}: {text}")

    def __reduce__(self) -> Any:
        return (type(self), (self.status,))


class OutOfMemoryError(MemoryError):
    """``cupy.cuda.memory.OutOfMemoryError`` (size, allocated so far, limit)."""

    def __init__(self, size: int, total: int, limit: int = 0) -> None:
        self._size, self._total, self._limit = size, total, limit
        if limit == 0:
            msg = f"Out of memory allocating {size:,} bytes"
            if total != -1:
                msg += f" (allocated so far: {total:,} bytes)."
        else:
            msg = (
                f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes, "
                f"limit set to: {limit:,} bytes)."
            )
        super().__init__(msg)

    def __reduce__(self) -> Any:
        return (type(self), (self._size, self._total, self._limit))


class FakeCupyError(AssertionError):
    """Something CUDA would not report at once (a fault, corruption, undefined behaviour)
    that this fake refuses on the spot: a bug in the code under test."""


# -- the fake GPU ----------------------------------------------------------------------------------

GiB = 1 << 30


class _Allocation:
    """A range of "device" memory: a cudaMalloc'd block or host memory adopted as one."""

    __slots__ = ("device", "end", "host", "start")

    def __init__(self, start: int, host: np.ndarray, device: int) -> None:
        self.start = start
        self.end = start + host.nbytes
        self.host = host  # uint8, the whole range
        self.device = device


class FakeGpu:
    """The control panel of the fake GPU (and its "driver" state).

    * ``hold_fences``: while True, events recorded stay pending until
      :meth:`release_fences` (or until something synchronizes on them).
    * :meth:`fail`: inject a CUDA error on a device (sticky: every later call touching it
      fails, as after an illegal address; or reported once, by the next synchronizing call).
    * ``kernels``: name -> ``fn(grid, block, args, shared_mem)``, a Python emulation run
      when a custom kernel of that name is launched; ``launches`` records every launch.
    * ``malloc_calls``, ``memcpy_calls``, ``peer_copies``: what reached the "driver".
    """

    def __init__(
        self,
        device_count: int = 2,
        total_memory: int = 80 * GiB,
        memory_limit: int | None = 4 * GiB,
        name: str = "NVIDIA H100 80GB HBM3 (fake)",
        driver_version: int = 12080,
        runtime_version: int = 12090,
        multiprocessors: int = 132,
        capability: tuple[int, int] = (9, 0),
    ) -> None:
        self.device_count = device_count
        self.total_memory = total_memory
        self.memory_limit = (
            total_memory if memory_limit is None else min(memory_limit, total_memory)
        )
        self.name = name
        self.driver_version = driver_version
        self.runtime_version = runtime_version
        self.multiprocessors = multiprocessors
        self.capability = capability
        self.lock = threading.RLock()
        self.allocated = [0] * device_count  # bytes cudaMalloc'd per device
        self._starts: list[int] = []
        self._ranges: dict[int, _Allocation] = {}
        self.hold_fences = False
        self._held: list[Event] = []
        self.errors: dict[int, tuple[int, bool]] = {}
        self._ids = itertools.count(0x7F0000100000, 0x100)
        self.tls = threading.local()
        self.streams: weakref.WeakValueDictionary[int, Stream] = weakref.WeakValueDictionary()
        self.pool = MemoryPool()
        self.kernels: dict[str, Callable[..., None]] = {}
        self.launches: list[dict[str, Any]] = []
        #: cuBLAS handles (cupy.cuda.device.get_cublas_handle): handle -> its state
        self.cublas: dict[int, Any] = {}
        self.malloc_calls = 0
        self.memcpy_calls = 0
        self.peer_copies: list[tuple[int, int, int]] = []

    def next_id(self) -> int:
        return next(self._ids)

    # current device and streams (per host thread, as in CUDA)

    def current_device(self) -> int:
        return getattr(self.tls, "device", 0)

    def set_device(self, device: int) -> None:
        if not 0 <= device < self.device_count:
            raise CUDARuntimeError(101)
        self.tls.device = device

    def stream_stack(self, device: int) -> list[Stream]:
        stacks = getattr(self.tls, "streams", None)
        if stacks is None:
            stacks = self.tls.streams = {}
        return stacks.setdefault(device, [])

    def stream_at(self, ptr: int) -> Stream:
        """The stream a raw handle names: cudaErrorInvalidResourceHandle if none does."""
        if ptr in (0, 1, 2):
            return Stream.null
        found = self.streams.get(ptr)
        if found is None:
            raise CUDARuntimeError(400)
        return found

    # errors

    def fail(self, device: int, error: int | str = 700, *, sticky: bool = True) -> None:
        """Make ``device`` report CUDA error ``error`` (a code or a name such as
        ``"cudaErrorIllegalAddress"``): sticky, every later call touching the device fails
        with it (a real process would have to restart); otherwise the next synchronizing
        call (stream or event synchronize/query) reports it once."""
        self.errors[device] = (status_of(error), sticky)

    def clear_errors(self) -> None:
        """Forget injected errors (what only restarting the process does on a GPU)."""
        self.errors.clear()

    def check(self, device: int, *, sync: bool = False, driver: bool = False) -> None:
        err = self.errors.get(device)
        if err is None:
            return
        status, sticky = err
        if not sticky:
            if not sync:
                return
            del self.errors[device]
        raise (CUDADriverError if driver else CUDARuntimeError)(status)

    # fences

    def release_fences(self) -> None:
        """Let every pending event be reached."""
        with self.lock:
            held, self._held = self._held, []
        for event in held:
            event._reached = True

    def pending_events(self) -> int:
        return sum(1 for e in self._held if not e._reached)

    # memory ranges

    def register(self, host: np.ndarray, device: int) -> _Allocation:
        start = host.__array_interface__["data"][0]
        alloc = _Allocation(start, host, device)
        with self.lock:
            if start in self._ranges:  # (a zero-size range at a reused address)
                self._starts.remove(start)
            self._ranges[start] = alloc
            bisect.insort(self._starts, start)
        return alloc

    def unregister(self, alloc: _Allocation) -> None:
        with self.lock:
            if self._ranges.get(alloc.start) is alloc:
                del self._ranges[alloc.start]
                self._starts.remove(alloc.start)

    def find(self, ptr: int, nbytes: int = 1) -> _Allocation | None:
        """The allocation holding ``[ptr, ptr + nbytes)`` entirely, or None."""
        with self.lock:
            i = bisect.bisect_right(self._starts, ptr) - 1
            while i >= 0:
                alloc = self._ranges[self._starts[i]]
                if ptr + max(nbytes, 1) <= alloc.end or (nbytes == 0 and ptr == alloc.end):
                    return alloc
                if alloc.end > alloc.start:  # (zero-size ranges do not shadow earlier ones)
                    return None
                i -= 1
        return None

    def cuda_malloc(self, device: int, size: int) -> _Allocation:
        """cudaMalloc: 256-byte aligned host memory, within the device's ``memory_limit``."""
        self.check(device)
        with self.lock:
            if self.allocated[device] + size > self.memory_limit:
                raise CUDARuntimeError(2)
            self.allocated[device] += size
            self.malloc_calls += 1
        raw = np.empty(size + 256, np.uint8)
        skip = -raw.__array_interface__["data"][0] % 256
        return self.register(raw[skip : skip + size], device)

    def cuda_free(self, alloc: _Allocation) -> None:
        self.unregister(alloc)
        with self.lock:
            self.allocated[alloc.device] -= alloc.host.nbytes

    def properties(self, device: int) -> dict[str, Any]:
        if not 0 <= device < self.device_count:
            raise CUDARuntimeError(101)
        major, minor = self.capability
        return {
            "name": self.name.encode(),
            "totalGlobalMem": self.total_memory,
            "sharedMemPerBlock": 49152,
            "regsPerBlock": 65536,
            "warpSize": 32,
            "maxThreadsPerBlock": 1024,
            "maxThreadsDim": (1024, 1024, 64),
            "maxGridSize": (2147483647, 65535, 65535),
            "clockRate": 1980000,
            "totalConstMem": 65536,
            "major": major,
            "minor": minor,
            "multiProcessorCount": self.multiprocessors,
            "pciBusID": 0x18 + 0x1A * device,
            "pciDeviceID": 0,
            "pciDomainID": 0,
            "ECCEnabled": 1,
            "integrated": 0,
        }


def gpu() -> FakeGpu:
    """The fake GPU now installed."""
    return _gpu


def reset(**config: Any) -> FakeGpu:
    """A fresh fake GPU (the arguments of :class:`FakeGpu`), replacing the current one."""
    global _gpu
    old = _gpu
    old.release_fences()
    _gpu = FakeGpu(**config)
    Stream.null = Stream(null=True)
    return _gpu


# -- memory ----------------------------------------------------------------------------------------


class BaseMemory:
    """``cupy.cuda.memory.BaseMemory``: ``ptr``, ``size``, ``device_id``."""

    ptr: int = 0
    size: int = 0
    device_id: int = 0

    def __int__(self) -> int:
        return self.ptr

    @property
    def device(self) -> Device:
        return Device(self.device_id)

    def __repr__(self) -> str:
        return f"<fake {type(self).__name__} 0x{self.ptr:x} {self.size} B device={self.device_id}>"


class Memory(BaseMemory):
    """A cudaMalloc'd block (``Memory(0)`` is the null pointer, as in CuPy)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.device_id = _gpu.current_device()
        self._alloc: _Allocation | None = None
        self._gpu = _gpu
        if size > 0:
            self._alloc = _gpu.cuda_malloc(self.device_id, size)
            self.ptr = self._alloc.start

    def __del__(self) -> None:
        if self._alloc is not None and not sys.is_finalizing():
            self._gpu.cuda_free(self._alloc)


class UnownedMemory(BaseMemory):
    """Memory CuPy does not own, kept alive through ``owner``."""

    def __init__(self, ptr: int, size: int, owner: Any, device_id: int = -1) -> None:
        if device_id < 0:
            found = _gpu.find(ptr, 0)
            if found is None:
                raise CUDARuntimeError(1)
            device_id = found.device
        self.ptr, self.size, self.device_id, self._owner = ptr, size, device_id, owner


class PooledMemory(BaseMemory):
    """A block lent by the pool; back to its arena when the last reference goes."""

    def __init__(self, chunk: _Chunk, pool: _DevicePool) -> None:
        self.ptr, self.size, self.device_id = chunk.alloc.start, chunk.size, chunk.alloc.device
        self._chunk, self._pool = chunk, pool

    def __del__(self) -> None:
        if not sys.is_finalizing():
            self._pool.free(self._chunk)


class DLPackMemory(BaseMemory):
    """Memory of an imported DLPack tensor. As CuPy's: ``ptr`` is the tensor's ``data``
    pointer and ``size`` is ``bits * sum(shape) // 8`` -- CuPy 14 sums the shape where the
    element count would be its product, so ``size`` is not the tensor's size."""

    def __init__(self, ptr: int, size: int, device_id: int, owner: Any) -> None:
        self.ptr, self.size, self.device_id, self._owner = ptr, size, device_id, owner
        self._alloc: _Allocation | None = None


class MemoryPointer:
    """``cupy.cuda.MemoryPointer``: a place inside ``mem``."""

    __slots__ = ("__weakref__", "device_id", "mem", "ptr")

    def __init__(self, mem: BaseMemory, offset: int) -> None:
        assert mem.ptr != 0 or offset == 0  # (as CuPy's own check)
        self.ptr = mem.ptr + int(offset)
        self.device_id = mem.device_id
        self.mem = mem

    def __int__(self) -> int:
        return self.ptr

    @property
    def device(self) -> Device:
        return Device(self.device_id)

    def __add__(self, offset: int) -> MemoryPointer:
        if not isinstance(offset, (int, np.integer)) or isinstance(offset, bool):
            return NotImplemented
        assert self.ptr != 0 or offset == 0
        return MemoryPointer(self.mem, self.ptr - self.mem.ptr + int(offset))

    __radd__ = __add__

    def __sub__(self, offset: int) -> MemoryPointer:
        return self + -offset

    def __repr__(self) -> str:
        return f"<fake MemoryPointer 0x{self.ptr:x} device={self.device_id} mem={self.mem!r}>"


class _Chunk:
    __slots__ = ("alloc", "ident", "size")

    def __init__(self, alloc: _Allocation, size: int, ident: int) -> None:
        self.alloc, self.size, self.ident = alloc, size, ident


class _DevicePool:
    """``SingleDeviceMemoryPool``, without CuPy's splitting and merging of blocks: a freed
    block is reused for a request of the same rounded size on the same stream."""

    def __init__(self, device: int) -> None:
        self.device = device
        self.lock = threading.RLock()
        self.free_chunks: dict[tuple[int, int], list[_Chunk]] = {}
        self.in_use: dict[int, _Chunk] = {}
        self.total = 0
        self.limit = 0
        self.gpu = _gpu

    def malloc(self, size: int) -> MemoryPointer:
        if size == 0:
            return MemoryPointer(Memory(0), 0)
        rounded = (size + 511) // 512 * 512
        ident = get_current_stream().ptr
        with self.lock:
            free = self.free_chunks.get((ident, rounded))
            chunk = free.pop() if free else None
        if chunk is None:
            chunk = _Chunk(self._try_malloc(rounded), rounded, ident)
        with self.lock:
            self.in_use[chunk.alloc.start] = chunk
        return MemoryPointer(PooledMemory(chunk, self), 0)

    def _try_malloc(self, size: int) -> _Allocation:
        with self.lock:
            total = self.total + size
            if self.limit and self.limit < total:
                raise OutOfMemoryError(size, total - size, self.limit)
            self.total = total
        try:
            for attempt in range(3):
                try:
                    return self.gpu.cuda_malloc(self.device, size)
                except CUDARuntimeError as exc:
                    if exc.status != 2:
                        raise
                    if attempt == 1:
                        gc.collect()
                    self.free_all_blocks()
            raise OutOfMemoryError(size, total - size, self.limit)
        except BaseException:
            with self.lock:
                self.total -= size
            raise

    def free(self, chunk: _Chunk) -> None:
        with self.lock:
            if self.in_use.pop(chunk.alloc.start, None) is None:
                raise RuntimeError("Cannot free out-of-pool memory")
            self.free_chunks.setdefault((chunk.ident, chunk.size), []).append(chunk)

    def free_all_blocks(self, stream: Stream | None = None) -> None:
        with self.lock:
            keys = [k for k in self.free_chunks if stream is None or k[0] == stream.ptr]
            chunks = [c for k in keys for c in self.free_chunks.pop(k)]
            self.total -= sum(c.size for c in chunks)
        for chunk in chunks:
            self.gpu.cuda_free(chunk.alloc)

    def used_bytes(self) -> int:
        with self.lock:
            return sum(c.size for c in self.in_use.values())

    def free_bytes(self) -> int:
        with self.lock:
            return sum(c.size for cs in self.free_chunks.values() for c in cs)

    def n_free_blocks(self) -> int:
        with self.lock:
            return sum(len(cs) for cs in self.free_chunks.values())


class MemoryPool:
    """``cupy.cuda.MemoryPool``: one pool per device; each call acts on the current one."""

    def __init__(self) -> None:
        self._pools: dict[int, _DevicePool] = {}
        self._lock = threading.Lock()

    def _pool(self) -> _DevicePool:
        device = _gpu.current_device()
        with self._lock:
            pool = self._pools.get(device)
            if pool is None:
                pool = self._pools[device] = _DevicePool(device)
        return pool

    def malloc(self, size: int) -> MemoryPointer:
        return self._pool().malloc(int(size))

    def free_all_blocks(self, stream: Stream | None = None) -> None:
        self._pool().free_all_blocks(stream)

    def used_bytes(self) -> int:
        return self._pool().used_bytes()

    def free_bytes(self) -> int:
        return self._pool().free_bytes()

    def total_bytes(self) -> int:
        return self._pool().total

    def n_free_blocks(self) -> int:
        return self._pool().n_free_blocks()

    def set_limit(self, size: int | None = None, fraction: float | None = None) -> None:
        if fraction is not None:
            size = int(fraction * _gpu.total_memory)
        self._pool().limit = int(size or 0)

    def get_limit(self) -> int:
        return self._pool().limit


def get_default_memory_pool() -> MemoryPool:
    return _gpu.pool


def alloc(size: int) -> MemoryPointer:
    return _gpu.pool.malloc(size)


# -- devices, streams, events ----------------------------------------------------------------------


class Device:
    """``cupy.cuda.Device``: a context manager making ``id`` the current device."""

    def __init__(self, device: int | None = None) -> None:
        self.id = _gpu.current_device() if device is None else int(device)
        self._previous: list[int] = []

    def __enter__(self) -> Device:
        previous = _gpu.current_device()
        self._previous.append(previous)
        if self.id != previous:
            try:
                _gpu.set_device(self.id)
            except BaseException:
                self._previous.pop()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        _gpu.set_device(self._previous.pop())

    def use(self) -> None:
        _gpu.set_device(self.id)

    def synchronize(self) -> None:
        _gpu.check(self.id, sync=True)
        for stream in list(_gpu.streams.values()):
            if stream.device_id == self.id:
                stream._complete()

    @property
    def compute_capability(self) -> str:
        major, minor = _gpu.capability
        return f"{major}{minor}"

    def __int__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"<fake CUDA Device {self.id}>"


def get_device_id() -> int:
    return _gpu.current_device()


class Event:
    """``cupy.cuda.Event``. Reached when recorded, unless ``hold_fences`` holds it."""

    def __init__(
        self, block: bool = False, disable_timing: bool = False, interprocess: bool = False
    ) -> None:
        if interprocess and not disable_timing:
            raise ValueError("Timing must be disabled for interprocess events")
        self.device_id = _gpu.current_device()
        _gpu.check(self.device_id)
        self.ptr = _gpu.next_id()
        self.block = block
        self.disable_timing = disable_timing
        self._recorded = False
        self._reached = True
        self._after: tuple[Event, ...] = ()
        self._time_ns = 0

    def _is_reached(self) -> bool:
        return self._reached and all(e._is_reached() for e in self._after)

    def _complete(self) -> None:
        for e in self._after:
            e._complete()
        self._reached = True

    @property
    def done(self) -> bool:
        _gpu.check(self.device_id, sync=True)
        return self._is_reached()

    def record(self, stream: Stream | None = None) -> None:
        _gpu.check(self.device_id)
        s = get_current_stream() if stream is None else stream
        device = s.device_id if s.device_id >= 0 else _gpu.current_device()
        if device != self.device_id:
            raise CUDARuntimeError(400)  # the event and the stream belong to two devices
        self._recorded = True
        self._after = s._open()
        self._time_ns = time.perf_counter_ns()
        self._reached = not _gpu.hold_fences
        if not self._reached:
            with _gpu.lock:
                _gpu._held.append(self)
            s._pending.append(self)

    def synchronize(self) -> None:
        _gpu.check(self.device_id, sync=True)
        self._complete()

    def __repr__(self) -> str:
        return f"<fake Event 0x{self.ptr:x} device={self.device_id} done={self._is_reached()}>"


def get_elapsed_time(start_event: Event, end_event: Event) -> float:
    """Milliseconds between two reached timing events (host time at their recording)."""
    for event in (start_event, end_event):
        if event.disable_timing or not event._recorded:
            raise CUDARuntimeError(400)
    _gpu.check(start_event.device_id)
    if not (start_event._is_reached() and end_event._is_reached()):
        raise CUDARuntimeError(600)
    return (end_event._time_ns - start_event._time_ns) / 1e6


class Stream:
    """``cupy.cuda.Stream``. ``null`` is the legacy default stream (ptr 0, device -1)."""

    null: Stream

    def __init__(
        self,
        null: bool = False,
        non_blocking: bool = False,
        ptds: bool = False,
        priority: int | None = None,
    ) -> None:
        self._pending: list[Event] = []
        self.non_blocking = non_blocking
        if null or ptds:
            self.ptr = 0 if null else 2
            self.device_id = -1
            return
        self.device_id = _gpu.current_device()
        _gpu.check(self.device_id)
        self.ptr = _gpu.next_id()
        _gpu.streams[self.ptr] = self

    def _device(self) -> int:
        return self.device_id if self.device_id >= 0 else _gpu.current_device()

    def _open(self) -> tuple[Event, ...]:
        """Pending work on this stream (what a new command would come after)."""
        self._pending = [e for e in self._pending if not e._is_reached()]
        return tuple(self._pending)

    def _complete(self) -> None:
        for event in self._pending:
            event._complete()
        self._pending = []

    @property
    def done(self) -> bool:
        _gpu.check(self._device(), sync=True)
        return not self._open()

    def synchronize(self) -> None:
        _gpu.check(self._device(), sync=True)
        self._complete()

    def wait_event(self, event: Event) -> None:
        _gpu.check(self._device())
        if not event._is_reached():
            self._pending.append(event)

    def record(self, event: Event | None = None) -> Event:
        if event is None:
            event = Event()
        event.record(self)
        return event

    def _check_device(self) -> int:
        current = _gpu.current_device()
        device = self.device_id if self.device_id >= 0 else current
        if device != current:
            raise RuntimeError(
                f"The device that the stream is created on ({device}) does not match with "
                f"the current device ({current})"
            )
        return device

    def __enter__(self) -> Stream:
        _gpu.stream_stack(self._check_device()).append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        device = _gpu.current_device() if self.device_id < 0 else self.device_id
        stack = _gpu.stream_stack(device)
        if stack and stack[-1] is self:
            stack.pop()

    def use(self) -> Stream:
        stack = _gpu.stream_stack(self._check_device())
        if stack:
            stack[-1] = self
        else:
            stack.append(self)
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self) -> int:
        return self.ptr

    def __repr__(self) -> str:
        return f"<fake Stream {self.ptr:#x} (device {self.device_id})>"


Stream.null = Stream(null=True)


def ExternalStream(ptr: int, device_id: int = -1) -> Stream:
    """The stream a raw handle names (1 and 2: the legacy and per-thread default streams)."""
    if ptr in (0, 1, 2):
        return Stream.null
    return _gpu.stream_at(ptr)


def get_current_stream(device_id: int = -1) -> Stream:
    device = _gpu.current_device() if device_id < 0 else device_id
    stack = _gpu.stream_stack(device)
    return stack[-1] if stack else Stream.null


# -- the runtime -----------------------------------------------------------------------------------

memcpyHostToHost = 0
memcpyHostToDevice = 1
memcpyDeviceToHost = 2
memcpyDeviceToDevice = 3
memcpyDefault = 4
streamLegacy = 1
streamPerThread = 2
errorMemoryAllocation = 2
errorInvalidValue = 1
eventDefault = 0
eventBlockingSync = 1
eventDisableTiming = 2
eventInterprocess = 4


def runtimeGetVersion() -> int:
    return _gpu.runtime_version


def driverGetVersion() -> int:
    return _gpu.driver_version


def getDeviceCount() -> int:
    return _gpu.device_count


def getDevice() -> int:
    return _gpu.current_device()


def setDevice(device: int) -> None:
    _gpu.set_device(int(device))


def getDeviceProperties(device: int) -> dict[str, Any]:
    return _gpu.properties(int(device))


def memGetInfo() -> tuple[int, int]:
    device = _gpu.current_device()
    _gpu.check(device)
    return (max(0, _gpu.memory_limit - _gpu.allocated[device]), _gpu.total_memory)


def deviceSynchronize() -> None:
    Device().synchronize()


def _check_copy(dst: int, src: int, size: int, kind: int) -> None:
    d, s = _gpu.find(dst, size), _gpu.find(src, size)
    wanted = {
        memcpyHostToHost: (False, False),
        memcpyHostToDevice: (True, False),
        memcpyDeviceToHost: (False, True),
        memcpyDeviceToDevice: (True, True),
    }.get(kind)
    if kind == memcpyDefault:
        wanted = (d is not None, s is not None)
    if wanted is None:
        raise CUDARuntimeError(21)
    for name, ptr, alloc, device_side in (("dst", dst, d, wanted[0]), ("src", src, s, wanted[1])):
        if device_side and alloc is None:
            raise FakeCupyError(
                f"fake cupy: memcpy {name} 0x{ptr:x} (+{size} B) is not inside one live "
                "allocation of the fake GPU: on a GPU this is an illegal address"
            )
        if not device_side and alloc is not None:
            raise FakeCupyError(
                f"fake cupy: memcpy kind {kind} says {name} 0x{ptr:x} is host memory, but it "
                "is device memory of the fake GPU"
            )
        if alloc is not None:
            _gpu.check(alloc.device)
    if d is not None and s is not None and dst < src + size and src < dst + size:
        raise FakeCupyError("fake cupy: overlapping device-to-device memcpy (undefined in CUDA)")


def memcpyAsync(dst: int, src: int, size: int, kind: int, stream: int) -> None:
    _gpu.check(_gpu.current_device())
    _gpu.stream_at(stream)
    if size == 0:
        return
    _check_copy(dst, src, size, kind)
    ctypes.memmove(dst, src, size)
    _gpu.memcpy_calls += 1


def memsetAsync(ptr: int, value: int, size: int, stream: int) -> None:
    _gpu.check(_gpu.current_device())
    _gpu.stream_at(stream)
    if size == 0:
        return
    if _gpu.find(ptr, size) is None:
        raise CUDARuntimeError(1)  # cudaErrorInvalidValue
    ctypes.memset(ptr, value, size)


def memcpy(dst: int, src: int, size: int, kind: int) -> None:
    memcpyAsync(dst, src, size, kind, 0)


def memcpyPeerAsync(
    dst: int,
    dstDevice: int,
    src: int,
    srcDevice: int,
    size: int,
    stream: int,
) -> None:
    for device in (dstDevice, srcDevice):
        if not 0 <= device < _gpu.device_count:
            raise CUDARuntimeError(101)
        _gpu.check(device)
    _gpu.stream_at(stream)
    if size == 0:
        return
    for name, ptr, device in (("dst", dst, dstDevice), ("src", src, srcDevice)):
        alloc = _gpu.find(ptr, size)
        if alloc is None or alloc.device != device:
            where = "no live allocation" if alloc is None else f"memory of device {alloc.device}"
            raise FakeCupyError(
                f"fake cupy: memcpyPeer {name} 0x{ptr:x} (+{size} B) is {where}, not memory "
                f"of device {device}: on a GPU this reads or writes the wrong memory"
            )
    ctypes.memmove(dst, src, size)
    _gpu.peer_copies.append((dstDevice, srcDevice, size))


def memcpyPeer(
    dst: int,
    dstDevice: int,
    src: int,
    srcDevice: int,
    size: int,
) -> None:
    memcpyPeerAsync(dst, dstDevice, src, srcDevice, size, 0)


# -- arrays ----------------------------------------------------------------------------------------


def _extent(shape: Sequence[int], strides: Sequence[int], itemsize: int) -> tuple[int, int]:
    """Byte offsets, from element 0, of the lowest byte and one past the highest."""
    lo = sum(st * (d - 1) for d, st in zip(shape, strides) if st < 0)
    hi = sum(st * (d - 1) for d, st in zip(shape, strides) if st > 0)
    return lo, hi + itemsize


def _current_device_of(x: Any) -> int | None:
    return x.__dict__.get("_device") if isinstance(x, ndarray) else None


class ndarray(np.ndarray):
    """``cupy.ndarray`` over the fake GPU's host memory: a real ``numpy.ndarray`` whose
    ``data`` is a :class:`MemoryPointer` (``data.ptr`` is the address of element 0, as in
    CuPy) and whose arithmetic runs NumPy under CuPy's rules (no floating-point warnings,
    0-d results stay arrays, arrays of another device refused)."""

    def __new__(
        cls,
        shape: int | Sequence[int],
        dtype: Any = float,
        memptr: MemoryPointer | None = None,
        strides: Sequence[int] | None = None,
        order: str | None = "C",
    ) -> ndarray:
        dims = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(map(int, shape))
        if len(dims) > 64:
            raise ValueError(f"maximum supported dimension for an ndarray is 64, found {len(dims)}")
        if any(d < 0 for d in dims):
            raise ValueError("Negative dimensions are not allowed")
        if order not in (None, "C", "F", "c", "f"):
            raise TypeError(f"order not understood. order={order}")
        dt = np.dtype(dtype)
        if strides is not None:
            if memptr is None:
                raise ValueError("memptr is required if strides is given.")
            steps = tuple(int(s) for s in strides)
            if len(steps) != len(dims):
                raise ValueError("shape and strides must have the same length")
        else:
            steps = _contiguous(dims, dt.itemsize, fortran=order in ("F", "f"))
        if memptr is None:
            memptr = _gpu.pool.malloc(math.prod(dims) * dt.itemsize)
        return _view_at(memptr, dims, dt, steps)

    def __array_finalize__(self, obj: Any) -> None:
        if isinstance(obj, ndarray):
            self._device = obj.__dict__.get("_device")
            self._mem = obj.__dict__.get("_mem")  # (checked against the address when used)

    # -- what CuPy adds ------------------------------------------------------------------------

    @property
    def data(self) -> MemoryPointer:  # type: ignore[override]
        ptr = self.__array_interface__["data"][0]
        if self.size == 0:
            zero = self.__dict__.get("_zero")
            if zero is not None:
                return zero
        mem = self.__dict__.get("_mem")
        if mem is None or not (mem.ptr <= ptr <= mem.ptr + max(mem.size, 1) or _owns(mem, ptr)):
            mem = _adopt_numpy(self)
            self._mem = mem
        return MemoryPointer(mem, ptr - mem.ptr)

    @property
    def device(self) -> Device:  # type: ignore[override]
        return Device(self.data.device_id)

    def get(
        self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True
    ) -> Any:
        host = np.array(np.asarray(self), order=order)
        if out is not None:
            out[...] = host
            return out
        return host

    def __setitem__(self, key: Any, value: Any) -> None:
        _launch_check((self, value))
        with np.errstate(all="ignore"):
            np.ndarray.__setitem__(np.asarray(self), key, _plain(value))

    def astype(  # type: ignore[override]
        self,
        dtype: Any,
        order: str = "K",
        casting: Any = None,
        subok: Any = None,
        copy: bool = True,
    ) -> ndarray:
        if casting is not None:
            raise TypeError("casting is not supported yet")
        if subok is not None:
            raise TypeError("subok is not supported yet")
        _launch_check((self,))
        with np.errstate(all="ignore"):
            out = np.asarray(self).astype(dtype, order=order, copy=bool(copy))
        return self if out is np.asarray(self) else _wrap(out)

    def copy(self, order: str = "C") -> ndarray:  # type: ignore[override]
        return self.astype(self.dtype, order=order)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _call_ufunc(getattr(ufunc, method), inputs, kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self.data.device_id)

    def __dlpack__(
        self,
        *,
        stream: int | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: Any = None,
        copy: bool | None = None,
    ) -> Any:
        versioned = max_version is not None and max_version[0] >= 1
        to_cpu = False
        if dl_device is None or dl_device == self.__dlpack_device__():
            if copy is True:
                raise BufferError("copy=True only supported for copy to CPU.")
        elif dl_device == (1, 0):
            if copy is False:
                raise ValueError("GPU memory cannot be exported to CPU without copy.")
            to_cpu = True
        else:
            raise BufferError("unsupported device requested.")
        current = get_current_stream()
        current_ptr = current.ptr
        if not (to_cpu and stream is None):
            if stream is None:
                stream = streamLegacy
            elif not isinstance(stream, int) or stream < -1:
                raise ValueError(
                    "On CUDA, the valid stream for the DLPack protocol is -1, 1, 2, or any "
                    f"larger value, but {stream} was provided"
                )
            if stream == 0:
                warnings.warn(
                    "Stream 0 is passed from a library that you are converting to; CuPy "
                    "assumes 0 as a legacy default stream. Please report this problem to the "
                    "library as this violates the DLPack protocol.",
                    stacklevel=2,
                )
                stream = streamLegacy
            if current_ptr == 0:
                current_ptr = streamLegacy
        if stream is not None and stream >= 0 and stream != current_ptr:
            ExternalStream(stream).wait_event(current.record())
        plain = np.asarray(self)
        if to_cpu:
            host = np.array(plain, order="A")
            return host.__dlpack__(max_version=max_version) if versioned else host.__dlpack__()
        capsule = plain.__dlpack__(max_version=max_version) if versioned else plain.__dlpack__()
        _set_capsule_device(capsule, 2, self.data.device_id)
        return capsule


def _contiguous(shape: Sequence[int], itemsize: int, fortran: bool = False) -> tuple[int, ...]:
    strides: list[int] = []
    step = itemsize
    for d in shape if fortran else reversed(shape):
        strides.append(step)
        step *= max(d, 1)
    return tuple(strides if fortran else reversed(strides))


def _owns(mem: BaseMemory, ptr: int) -> bool:
    alloc = getattr(mem, "_alloc", None) or getattr(getattr(mem, "_chunk", None), "alloc", None)
    return alloc is not None and alloc.start <= ptr <= alloc.end


def _view_at(
    memptr: MemoryPointer, shape: tuple[int, ...], dtype: np.dtype, strides: tuple[int, ...]
) -> ndarray:
    """The array CuPy would make: ``shape``/``strides`` from element 0 at ``memptr``."""
    item = dtype.itemsize
    if math.prod(shape) == 0:
        out = np.empty(shape, dtype).view(ndarray)
        out._zero = memptr
    else:
        lo, hi = _extent(shape, strides, item)
        alloc = _gpu.find(memptr.ptr + lo, hi - lo)
        if alloc is None:
            raise FakeCupyError(
                f"fake cupy: an array of shape {shape}, strides {strides} at 0x{memptr.ptr:x} "
                f"spans [{lo}, {hi}) bytes around it, outside every live allocation of the "
                "fake GPU: on a GPU a kernel touching it would fault"
            )
        if memptr.ptr % min(item, 16):
            raise FakeCupyError(
                f"fake cupy: 0x{memptr.ptr:x} is not aligned for {dtype}: on a GPU a kernel "
                "reading it fails with cudaErrorMisalignedAddress"
            )
        plain = np.ndarray(
            shape, dtype, buffer=alloc.host, offset=memptr.ptr - alloc.start, strides=strides
        )
        out = plain.view(ndarray)
    out._mem = memptr.mem
    out._device = memptr.device_id
    return out


def _adopt_numpy(a: ndarray) -> BaseMemory:
    """The memory of an array NumPy allocated (a namespace function's result): registered
    as device memory of the array's device the first time its ``data`` is asked for."""
    ptr = a.__array_interface__["data"][0]
    device = a.__dict__.get("_device")
    if device is None:
        device = _gpu.current_device()
    found = _gpu.find(ptr, 0)
    if found is not None:
        return UnownedMemory(found.start, found.end - found.start, found, found.device)
    owner: np.ndarray = a
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    start = owner.__array_interface__["data"][0]
    lo, hi = _extent(owner.shape, owner.strides, owner.itemsize)
    if owner.size == 0:
        lo = hi = 0
    raw = (ctypes.c_uint8 * (hi - lo)).from_address(start + lo) if hi > lo else bytearray(0)
    host = np.frombuffer(raw, np.uint8)
    alloc = _gpu.register(host, device)
    mem = UnownedMemory(alloc.start, alloc.end - alloc.start, owner, device)
    gpu_now = _gpu
    weakref.finalize(owner, gpu_now.unregister, alloc)
    return mem


def _plain(x: Any) -> Any:
    return np.asarray(x) if isinstance(x, ndarray) else x


def _wrap(x: Any) -> Any:
    """NumPy results as CuPy's: arrays of the current device, 0-d arrays for scalars."""
    if isinstance(x, ndarray):
        return x
    if isinstance(x, np.ndarray):
        out = x.view(ndarray)
        out._device = _gpu.current_device()
        return out
    if isinstance(x, np.generic):
        return _wrap(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _launch_check(args: Iterable[Any], *, strict: bool = False, name: str = "") -> None:
    """What a kernel launch checks: the device's sticky error (a driver error, as CuPy
    launches kernels with cuLaunchKernel), arrays on the current device, and (``strict``,
    for ufuncs) no NumPy arrays."""
    device = _gpu.current_device()
    _gpu.check(device, driver=True)
    for a in args:
        if isinstance(a, (tuple, list)):
            _launch_check(a, strict=strict, name=name)
        elif isinstance(a, ndarray):
            where = a.__dict__.get("_device")
            if where is not None and where != device:
                raise ValueError(
                    f"The device where the array resides ({where}) is different from the "
                    f"current device ({device}). Peer access is unavailable between these "
                    "devices. (fake cupy refuses what CuPy allows with peer access)"
                )
        elif strict and isinstance(a, np.ndarray):
            raise TypeError(f"Unsupported type {type(a)}")


def _call_ufunc(fn: Callable[..., Any], inputs: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    out = kwargs.get("out")
    _launch_check((*inputs, out))
    if out is not None:
        kwargs["out"] = tuple(_plain(o) for o in out) if isinstance(out, tuple) else _plain(out)
    with np.errstate(all="ignore"):
        result = fn(*(_plain(x) for x in inputs), **kwargs)
    if out is not None:
        return out[0] if isinstance(out, tuple) and len(out) == 1 else out
    return _wrap(result)


class ufunc:
    """A CuPy ufunc: ``out``, ``dtype`` and ``casting`` keywords only; NumPy arrays refused."""

    def __init__(self, fn: Callable[..., Any], name: str, nin: int, nout: int = 1) -> None:
        self._fn, self.__name__, self.nin, self.nout = fn, name, nin, nout
        self.nargs = nin + nout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = kwargs.pop("out", None)
        dtype = kwargs.pop("dtype", None)
        casting = kwargs.pop("casting", "same_kind")
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        if len(args) not in (self.nin, self.nargs):
            raise TypeError(
                f"Wrong number of arguments for {self.__name__!r}. It must be either "
                f"{self.nin} or {self.nargs} (with outputs), but given {len(args)}."
            )
        _launch_check((*args, out), strict=True, name=self.__name__)
        if out is not None and not isinstance(out, ndarray):
            raise TypeError("Output arguments must be cupy.ndarray")
        extra: dict[str, Any] = {"casting": casting}
        if dtype is not None:
            extra["dtype"] = dtype
        if out is not None:
            extra["out"] = out
        return _call_ufunc(self._fn, args, extra)

    def __getattr__(self, name: str) -> Any:  # reduce, outer, ... (NumPy's)
        method = getattr(self._fn, name)
        return _function(method, f"{self.__name__}.{name}")

    def __repr__(self) -> str:
        return f"<fake cupy ufunc '{self.__name__}'>"


def _function(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        _launch_check((*args, *kwargs.values()), name=name)
        with np.errstate(all="ignore"):
            return _wrap(fn(*args, **kwargs))

    run.__name__ = run.__qualname__ = name
    run.__doc__ = f"fake cupy.{name}: NumPy's, on the fake GPU's memory"
    return run


# creation functions: memory from the pool of the current device


def empty(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return ndarray(shape, dtype=dtype, order=order)


def _filled(shape: Any, dtype: Any, value: Any) -> ndarray:
    out = empty(shape, dtype)
    out[...] = value
    return out


def zeros(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return _filled(shape, dtype, 0)


def ones(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return _filled(shape, dtype, 1)


def full(shape: Any, fill_value: Any, dtype: Any = None) -> ndarray:
    return _filled(shape, np.asarray(fill_value).dtype if dtype is None else dtype, fill_value)


def empty_like(
    a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None
) -> ndarray:
    return empty(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def zeros_like(
    a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None
) -> ndarray:
    return zeros(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def ones_like(
    a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None
) -> ndarray:
    return ones(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def array(
    obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", ndmin: int = 0
) -> ndarray:
    if isinstance(obj, ndarray):
        _launch_check((obj,))
    host = np.array(_plain(obj), dtype=dtype, ndmin=ndmin)
    out = empty(host.shape, host.dtype)
    out[...] = host
    return out


def asarray(a: Any, dtype: Any = None, order: Any = None) -> ndarray:
    if isinstance(a, ndarray) and a.__dict__.get("_device") in (None, _gpu.current_device()):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    return array(a, dtype=dtype)


def ascontiguousarray(a: Any, dtype: Any = None) -> ndarray:
    if isinstance(a, ndarray) and a.flags.c_contiguous and (dtype is None or a.dtype == dtype):
        _launch_check((a,))
        return a
    _launch_check((a,))
    out = empty(np.shape(a), a.dtype if dtype is None else dtype)
    out[...] = a
    return out


def asnumpy(
    a: Any, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True
) -> Any:
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


# -- DLPack ----------------------------------------------------------------------------------------

_GetPointer = ctypes.pythonapi.PyCapsule_GetPointer
_GetPointer.restype = ctypes.c_void_p
_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_IsValid = ctypes.pythonapi.PyCapsule_IsValid
_IsValid.restype = ctypes.c_int
_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _capsule_tensor(capsule: Any) -> tuple[int, bool]:
    """The address of the capsule's DLTensor, and whether it is versioned."""
    if _IsValid(capsule, b"dltensor_versioned"):
        # DLManagedTensorVersioned: version (8 B), manager_ctx, deleter, flags (8 B each)
        return _GetPointer(capsule, b"dltensor_versioned") + 32, True
    if _IsValid(capsule, b"dltensor"):
        return _GetPointer(capsule, b"dltensor"), False
    raise ValueError(
        "A DLPack tensor object cannot be consumed multiple times (or object was not a "
        f"DLPack capsule). Got: {capsule!r}"
    )


def _set_capsule_device(capsule: Any, device_type: int, device_id: int) -> None:
    tensor, _ = _capsule_tensor(capsule)
    ctypes.c_int32.from_address(tensor + 8).value = device_type
    ctypes.c_int32.from_address(tensor + 12).value = device_id


class _Producer:
    def __init__(self, capsule: Any) -> None:
        self.capsule = capsule

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


def _dlpack_to_array(capsule: Any) -> ndarray:
    tensor, versioned = _capsule_tensor(capsule)
    if versioned and ctypes.c_uint32.from_address(tensor - 32).value > 1:
        raise BufferError("DLPack exported too new major version.")
    device_type = ctypes.c_int32.from_address(tensor + 8).value
    device_id = ctypes.c_int32.from_address(tensor + 12).value
    if device_type not in (2, 13):
        raise RuntimeError(
            "CuPy is built against CUDA, different from the backend that backs the incoming "
            "DLPack tensor"
        )
    ndim = ctypes.c_int32.from_address(tensor + 16).value
    code = ctypes.c_uint8.from_address(tensor + 20).value
    bits = ctypes.c_uint8.from_address(tensor + 21).value
    lanes = ctypes.c_uint16.from_address(tensor + 22).value
    if lanes != 1:
        raise ValueError(f"vector dtypes (lanes={lanes}) is not supported")
    if code == 4:
        raise NotImplementedError("CuPy does not support bfloat16 yet")
    shape_ptr = ctypes.c_void_p.from_address(tensor + 24).value or 0
    shape = [ctypes.c_int64.from_address(shape_ptr + 8 * i).value for i in range(ndim)]
    data = ctypes.c_void_p.from_address(tensor).value or 0
    byte_offset = ctypes.c_uint64.from_address(tensor + 40).value
    # let NumPy parse (and own) the capsule: it reads host memory, which this fake's is
    _set_capsule_device(capsule, 1, 0)
    host = np.from_dlpack(_Producer(capsule))
    mem = DLPackMemory(data, bits * sum(shape) // 8, device_id, host)
    if host.size:
        lo, hi = _extent(host.shape, host.strides, host.itemsize)
        first = data + byte_offset
        found = _gpu.find(first + lo, hi - lo)
        if found is None:  # foreign memory: adopt its span as the device's
            span = (ctypes.c_uint8 * (hi - lo)).from_address(first + lo)
            mem._alloc = _gpu.register(np.frombuffer(span, np.uint8), device_id)
            weakref.finalize(mem, _gpu.unregister, mem._alloc)
        elif found.device != device_id:
            raise FakeCupyError(
                f"fake cupy: a DLPack tensor says device {device_id} but its memory is device "
                f"{found.device}'s"
            )
        else:
            mem._alloc = found  # (for .data: views may start outside the quirky size)
    return _view_at(MemoryPointer(mem, byte_offset), tuple(host.shape), host.dtype, host.strides)


def from_dlpack(array: Any, *, device: Any = None, copy: bool | None = None) -> ndarray:
    """``cupy.from_dlpack``: the producer orders its work before CuPy's current stream."""
    if not hasattr(array, "__dlpack_device__"):
        return _dlpack_to_array(array)
    device_type, device_id = array.__dlpack_device__()
    if device is not None:
        raise NotImplementedError("from_dlpack() does not support device yet.")
    if device_type in (2, 13):
        previous = getDevice()
        try:
            setDevice(device_id)
            stream = get_current_stream().ptr or streamLegacy
            try:
                capsule = array.__dlpack__(stream=stream, max_version=(1, 0), copy=copy)
            except TypeError:
                if copy is not None:
                    raise
                capsule = array.__dlpack__(stream=stream)
        finally:
            setDevice(previous)
    elif device_type == 1:
        raise TypeError(
            "CPU arrays cannot be directly imported to CuPy. Use "
            "`cupy.array(numpy.from_dlpack(input))` instead."
        )
    else:
        raise TypeError(f"Unsupported array type: {device_type}")
    return _dlpack_to_array(capsule)


# -- custom kernels --------------------------------------------------------------------------------


class Module:
    """``cupy.cuda.function.Module``: loads any image that names its kernels."""

    def __init__(self) -> None:
        self.ptr = 0
        self._image: bytes | None = None
        self._device = -1

    def load(self, image: bytes) -> None:
        self._device = _gpu.current_device()
        _gpu.check(self._device, driver=True)
        if not image:
            raise CUDADriverError(200)
        self._image = bytes(image)
        self.ptr = _gpu.next_id()

    def get_function(self, name: str) -> Function:
        if self._image is None:
            raise CUDADriverError(400)
        if name.encode() not in self._image:
            raise CUDADriverError(500)
        return Function(self, name)


class Function:
    """A loaded kernel: a launch is recorded in ``FakeGpu.launches`` and runs the Python
    emulation registered in ``FakeGpu.kernels`` under its name, if any."""

    def __init__(self, module: Module, name: str) -> None:
        self.module, self.name = module, name

    def __call__(
        self,
        grid: tuple[int, ...],
        block: tuple[int, ...],
        args: Sequence[Any],
        shared_mem: int = 0,
        stream: Stream | None = None,
        enable_cooperative_groups: bool = False,
    ) -> None:
        if not isinstance(grid, tuple) or not isinstance(block, tuple):
            raise TypeError("grid and block must be tuples")
        device = _gpu.current_device()
        _gpu.check(device, driver=True)
        if self.module._device != device:
            raise CUDADriverError(400)  # a function of another device's context
        if math.prod(block) > 1024 or not 1 <= len(block) <= 3 or not 1 <= len(grid) <= 3:
            raise CUDADriverError(1)
        s = get_current_stream() if stream is None else stream
        if s.device_id not in (-1, device):
            raise CUDADriverError(400)
        for a in args:
            if isinstance(a, ndarray):
                _launch_check((a,))
            elif not isinstance(a, (np.generic, int, float, complex, MemoryPointer)):
                # (CuPy 12 and later pass a MemoryPointer as its address)
                raise TypeError(f"Unsupported type {type(a)}")
        _gpu.launches.append(
            {"name": self.name, "grid": grid, "block": block, "args": tuple(args),
             "shared_mem": shared_mem, "stream": s, "device": device}
        )  # fmt: skip
        emulate = _gpu.kernels.get(self.name)
        if emulate is not None:
            with np.errstate(all="ignore"):
                emulate(grid, block, args, shared_mem)


# -- cuBLAS (cupy.cuda.cublas: the binding, column-major like cuBLAS itself) ---------------------

CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
CUBLAS_POINTER_MODE_HOST, CUBLAS_POINTER_MODE_DEVICE = 0, 1


class CUBLASError(RuntimeError):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"CUBLAS_STATUS_{status}")


class _CublasHandle:
    __slots__ = ("device", "pointer_mode", "stream")

    def __init__(self, device: int) -> None:
        self.device, self.stream, self.pointer_mode = device, 0, CUBLAS_POINTER_MODE_HOST


def get_cublas_handle() -> int:
    """The current device's handle (CuPy keeps one per thread and device)."""
    device = _gpu.current_device()
    for handle, state in _gpu.cublas.items():
        if state.device == device:
            return handle
    handle = _gpu.next_id()
    _gpu.cublas[handle] = _CublasHandle(device)
    return handle


def _handle(handle: int) -> _CublasHandle:
    state = _gpu.cublas.get(handle)
    if state is None:
        raise CUBLASError(7)  # CUBLAS_STATUS_INVALID_VALUE
    return state


def setStream(handle: int, stream: int) -> None:
    _handle(handle).stream = stream


def setPointerMode(handle: int, mode: int) -> None:
    _handle(handle).pointer_mode = mode


def getPointerMode(handle: int) -> int:
    return _handle(handle).pointer_mode


def _column_major(ptr: int, dtype: Any, rows: int, cols: int, ld: int) -> np.ndarray:
    """The ``rows`` x ``cols`` column-major matrix at ``ptr`` (leading dimension ``ld``), a
    view of the fake's memory (all ``ld * cols`` elements must be there)."""
    nbytes = ld * cols * dtype.itemsize
    alloc = _gpu.find(ptr, nbytes)
    if alloc is None:
        raise CUBLASError(14)  # CUBLAS_STATUS_EXECUTION_FAILED (an illegal address)
    start = ptr - alloc.start
    return alloc.host[start : start + nbytes].view(dtype).reshape(cols, ld).T[:rows]


def _gemm(dtype: Any, name: str) -> Callable[..., None]:
    dtype = np.dtype(dtype)

    def gemm(handle: int, transa: int, transb: int, m: int, n: int, k: int, alpha: int,
             A: int, lda: int, B: int, ldb: int, beta: int, C: int, ldc: int) -> None:  # fmt: skip
        h = _handle(handle)
        if h.device != _gpu.current_device():
            raise CUBLASError(7)
        _gpu.check(h.device)
        if h.pointer_mode != CUBLAS_POINTER_MODE_HOST:
            raise FakeCupyError("the fake reads alpha and beta from host memory only")
        if transa != CUBLAS_OP_N or transb != CUBLAS_OP_N or lda < m or ldb < k or ldc < m:
            raise CUBLASError(7)
        a = _column_major(A, dtype, m, k, lda)
        b = _column_major(B, dtype, k, n, ldb)
        c = _column_major(C, dtype, m, n, ldc)
        scale = np.frombuffer(ctypes.string_at(alpha, dtype.itemsize), dtype)[0]
        keep = np.frombuffer(ctypes.string_at(beta, dtype.itemsize), dtype)[0]
        result = scale * (a @ b) + (keep * c if keep else 0)
        _gpu.launches.append({"name": f"cublas.{name}", "args": (m, n, k), "stream":
                              _gpu.stream_at(h.stream), "device": h.device})  # fmt: skip
        with np.errstate(all="ignore"):
            c[...] = result.astype(dtype)

    return gemm


sgemm, dgemm = _gemm(np.float32, "sgemm"), _gemm(np.float64, "dgemm")


# -- cupyx.scipy.special.erfc ----------------------------------------------------------------------

_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _erfc(x: Any, out: Any = None, **kwargs: Any) -> Any:
    a = np.asarray(x)
    if a.dtype.kind == "c":
        raise TypeError(f"Wrong type (({a.dtype},)) of arguments for cupyx_scipy_special_erfc")
    target = a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)
    result = np.asarray(_ERFC(a.astype(np.float64))).astype(target)
    if out is not None:
        out[...] = result
        return out
    return result


# -- sorting and gathers, where CuPy's signatures or rules are not NumPy's -------------------------


def argsort(a: Any, axis: int | None = -1, kind: str | None = None) -> Any:
    """CuPy's argsort: always stable, ``kind`` None or 'stable', no ``stable=`` keyword."""
    if kind not in (None, "stable"):
        raise ValueError(f"fake cupy: argsort kind={kind!r}; CuPy's sort is stable only")
    return _function(np.argsort, "argsort")(a, axis=axis, kind="stable")


def sort(a: Any, axis: int | None = -1, kind: str | None = None) -> Any:
    if kind not in (None, "stable"):
        raise ValueError(f"fake cupy: sort kind={kind!r}; CuPy's sort is stable only")
    return _function(np.sort, "sort")(a, axis=axis, kind="stable")


def take(a: Any, indices: Any, axis: int | None = None, out: Any = None) -> Any:
    """CuPy's take: no ``mode``; out-of-range indices wrap around (``mode='wrap'``)."""
    if out is not None:
        raise TypeError("fake cupy: take(out=...) is not used by hwabstract")
    return _function(np.take, "take")(a, indices, axis=axis, mode="wrap")


def take_along_axis(a: Any, indices: Any, axis: int | None) -> Any:
    """CuPy's take_along_axis: integer-array indexing, whose out-of-range indices wrap."""
    if np.dtype(indices.dtype).kind not in "iu":
        raise IndexError("`indices` must be an integer array")
    n = a.size if axis is None else a.shape[axis]
    wrapped = np.mod(np.asarray(indices), n) if n else _plain(indices)
    return _function(np.take_along_axis, "take_along_axis")(a, wrapped, axis=axis)


# -- cupy.linalg and cupy.fft: CuPy's signatures on NumPy's numbers --------------------------------


def _invalid_on_failure(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``fn`` under CuPy's default ``cupyx.errstate(linalg='ignore')``: where NumPy raises
    LinAlgError (singular, not positive definite), cuSOLVER's results are invalid, not an
    error -- NaNs here."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except np.linalg.LinAlgError:
            shape = np.shape(args[-1])  # (inv, cholesky: a's; solve: b's)
            dtype = np.result_type(*(np.asarray(x).dtype for x in args), np.float32)
            return np.full(shape, np.nan, dtype)

    run.__name__ = name
    return run


def _linalg_functions() -> dict[str, Callable[..., Any]]:
    la = np.linalg

    def cholesky(a: Any) -> Any:  # (no upper=)
        return la.cholesky(a)

    def inv(a: Any) -> Any:
        return la.inv(a)

    def det(a: Any) -> Any:
        return la.det(a)

    def slogdet(a: Any) -> Any:
        return tuple(la.slogdet(a))

    def solve(a: Any, b: Any) -> Any:
        return la.solve(a, b)

    def qr(a: Any, mode: str = "reduced") -> Any:
        return tuple(la.qr(a, mode=mode))

    def eigh(a: Any, UPLO: str = "L") -> Any:
        return tuple(la.eigh(a, UPLO=UPLO))

    def eigvalsh(a: Any, UPLO: str = "L") -> Any:
        return la.eigvalsh(a, UPLO=UPLO)

    def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True) -> Any:
        out = la.svd(a, full_matrices=full_matrices, compute_uv=compute_uv)
        return tuple(out) if compute_uv else out

    functions = {f.__name__: f for f in (cholesky, inv, det, slogdet, solve, qr, eigh,
                                         eigvalsh, svd)}  # fmt: skip
    for name in ("cholesky", "inv", "solve"):
        functions[name] = _invalid_on_failure(functions[name], name)
    return {name: _function(f, f"linalg.{name}") for name, f in functions.items()}


def _fft_functions() -> dict[str, Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(a: Any, n: int | None = None, axis: int = -1, norm: str | None = None) -> Any:
            return fn(a, n=n, axis=axis, norm=norm)  # (complex64 in single, as cuFFT)

        return _function(run, f"fft.{fn.__name__}")

    return {name: wrap(getattr(np.fft, name)) for name in ("fft", "ifft", "rfft", "irfft")}


# -- the modules -----------------------------------------------------------------------------------

#: what ``cupy.<name>`` resolves to beyond the names defined here: NumPy's, wrapped
_NAMESPACE_CACHE: dict[str, Any] = {}


def _namespace(name: str) -> Any:
    found = _NAMESPACE_CACHE.get(name)
    if found is not None:
        return found
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        value = getattr(np, name)
    except AttributeError:
        raise AttributeError(f"module 'cupy' (fake) has no attribute {name!r}") from None
    if isinstance(value, np.ufunc):
        wrapped: Any = ufunc(value, name, value.nin, value.nout)
    elif isinstance(value, (type, np.dtype, types.ModuleType)) or not callable(value):
        wrapped = value
    else:
        wrapped = _function(value, name)
    _NAMESPACE_CACHE[name] = wrapped
    return wrapped


def _module(name: str, doc: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name, doc)
    mod.__dict__.update(attrs)
    return mod


def _build() -> dict[str, types.ModuleType]:
    this = sys.modules[__name__]
    runtime_names = [
        "CUDARuntimeError", "runtimeGetVersion", "driverGetVersion", "getDeviceCount",
        "getDevice", "setDevice", "getDeviceProperties", "memGetInfo", "memcpyAsync", "memcpy",
        "memsetAsync",
        "memcpyPeerAsync", "memcpyPeer", "deviceSynchronize", "memcpyHostToHost",
        "memcpyHostToDevice", "memcpyDeviceToHost", "memcpyDeviceToDevice", "memcpyDefault",
        "streamLegacy", "streamPerThread", "errorMemoryAllocation", "errorInvalidValue",
        "eventDefault", "eventBlockingSync", "eventDisableTiming", "eventInterprocess",
    ]  # fmt: skip
    runtime = _module(
        "cupy.cuda.runtime", "fake CUDA runtime", is_hip=False, _is_hip_environment=False,
        **{n: getattr(this, n) for n in runtime_names},
    )  # fmt: skip
    driver = _module("cupy.cuda.driver", "fake CUDA driver API", CUDADriverError=CUDADriverError)
    memory = _module(
        "cupy.cuda.memory", "fake CuPy memory",
        OutOfMemoryError=OutOfMemoryError, BaseMemory=BaseMemory, Memory=Memory,
        UnownedMemory=UnownedMemory, PooledMemory=PooledMemory, MemoryPointer=MemoryPointer,
        MemoryPool=MemoryPool, alloc=alloc, get_default_memory_pool=get_default_memory_pool,
    )  # fmt: skip
    function = _module("cupy.cuda.function", "fake kernels", Module=Module, Function=Function)
    stream = _module(
        "cupy.cuda.stream", "fake streams", Stream=Stream, Event=Event,
        ExternalStream=ExternalStream, get_current_stream=get_current_stream,
        get_elapsed_time=get_elapsed_time,
    )  # fmt: skip
    device = _module(
        "cupy.cuda.device", "fake devices", Device=Device, get_device_id=get_device_id,
        get_cublas_handle=get_cublas_handle,
    )  # fmt: skip
    cublas = _module(
        "cupy.cuda.cublas", "fake cuBLAS binding (NumPy's numbers)",
        CUBLASError=CUBLASError, CUBLAS_OP_N=CUBLAS_OP_N, CUBLAS_OP_T=CUBLAS_OP_T,
        CUBLAS_POINTER_MODE_HOST=CUBLAS_POINTER_MODE_HOST,
        CUBLAS_POINTER_MODE_DEVICE=CUBLAS_POINTER_MODE_DEVICE, setStream=setStream,
        setPointerMode=setPointerMode, getPointerMode=getPointerMode, sgemm=sgemm, dgemm=dgemm,
    )  # fmt: skip
    cuda = _module(
        "cupy.cuda", "fake cupy.cuda (a test double: no CUDA)",
        runtime=runtime, driver=driver, memory=memory, function=function, stream=stream,
        device=device, cublas=cublas, Device=Device, Stream=Stream, Event=Event,
        ExternalStream=ExternalStream,
        MemoryPointer=MemoryPointer, MemoryPool=MemoryPool, Memory=Memory,
        UnownedMemory=UnownedMemory, get_current_stream=get_current_stream,
        get_elapsed_time=get_elapsed_time, get_device_id=get_device_id, alloc=alloc,
        is_available=lambda: _gpu.device_count > 0,
    )  # fmt: skip
    cupy = _module(
        "cupy", "fake cupy (a test double over host memory and NumPy: no CUDA)",
        __version__=__version__, cuda=cuda, ndarray=ndarray, ufunc=ufunc, empty=empty,
        zeros=zeros, ones=ones, full=full, empty_like=empty_like, zeros_like=zeros_like,
        ones_like=ones_like, array=array, asarray=asarray, ascontiguousarray=ascontiguousarray,
        asnumpy=asnumpy, from_dlpack=from_dlpack, argsort=argsort, sort=sort, take=take,
        take_along_axis=take_along_axis, get_default_memory_pool=get_default_memory_pool,
        _fake=this,
    )  # fmt: skip
    cupy.__getattr__ = _namespace  # type: ignore[method-assign]
    linalg = _module("cupy.linalg", "fake cupy.linalg (NumPy's numbers)", **_linalg_functions())
    fft = _module("cupy.fft", "fake cupy.fft (NumPy's numbers)", **_fft_functions())
    cupy.linalg, cupy.fft = linalg, fft  # type: ignore[attr-defined]
    special = _module(
        "cupyx.scipy.special", "fake cupyx.scipy.special", erfc=ufunc(_erfc, "erfc", 1)
    )
    scipy = _module("cupyx.scipy", "fake cupyx.scipy", special=special)
    cupyx = _module("cupyx", "fake cupyx", scipy=scipy)
    mods = [cupy, cuda, runtime, driver, memory, function, stream, device, cublas, cupyx, scipy,
            special, linalg, fft]  # fmt: skip
    return {m.__name__: m for m in mods}


_gpu = FakeGpu()
MODULES = _build()


def install(monkeypatch: Any = None) -> types.ModuleType:
    """Put the fake in ``sys.modules`` as ``cupy`` (and ``cupy.cuda``, ..., ``cupyx.scipy
    .special``): through ``monkeypatch`` (undone after the test) or for good. Returns the
    fake ``cupy`` module."""
    for name, mod in MODULES.items():
        if monkeypatch is not None:
            monkeypatch.setitem(sys.modules, name, mod)
        else:
            sys.modules[name] = mod
    return MODULES["cupy"]
