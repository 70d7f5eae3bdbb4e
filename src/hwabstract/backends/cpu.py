"""The ``cpu`` reference backend: NumPy on the host, with real asynchrony.

It is registered through the same ``hwabstract_backends`` hook and entry-point group as any
third-party plugin. Every stream is a worker thread draining a queue, so launches return
before the work is done and stream/event semantics are exercised for real. Kernels execute
the NumPy reference of their :class:`~hwabstract.kernels.KernelSpec` (or its ufunc fast
path).

Environment:

* ``HWABSTRACT_CPU_DEVICES`` -- how many cpu devices to expose (default 1); more than one
  lets multi-device code paths run on any machine.
* ``HWABSTRACT_CPU_MEMORY`` -- the memory capacity of each device in bytes (suffixes K, M,
  G, T and KiB, MiB, GiB, TiB allowed); default: the machine's physical memory. Allocations
  beyond it raise :class:`~hwabstract.errors.OutOfMemoryError`.

An empty variable counts as unset. A value that cannot be used makes the backend
*unavailable*, with the reason naming the variable (see ``hwabstract doctor``).
"""

from __future__ import annotations

import collections
import itertools
import os
import platform
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..backend import (
    Backend,
    Capabilities,
    DeviceInfo,
    DTypeSupport,
    Feature,
    Limits,
    MemoryStats,
    Operand,
)
from ..dtypes import all_dtypes
from ..errors import (
    BackendUnavailableError,
    DeviceError,
    KernelError,
    OutOfMemoryError,
    StreamError,
)
from ..hookspecs import hookimpl

__all__ = ["CpuBackend", "InjectedFault", "hwabstract_backends"]

_UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
          "KI": 1024, "MI": 1024**2, "GI": 1024**3, "TI": 1024**4}  # fmt: skip
_BYTES = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([KMGT]I?)?B?")


def parse_bytes(text: str) -> int:
    """Parse ``"512MiB"``, ``"2G"``, ``"1.5GB"`` or ``"1048576"`` into a positive byte count.

    K, M, G, T are powers of 1000; KiB, MiB, GiB, TiB powers of 1024 (case-insensitive).
    """
    match = _BYTES.fullmatch(text.strip().upper().replace(" ", ""))
    if match is None:
        raise ValueError(f"cannot parse byte count {text!r}; use e.g. 1073741824, 1GiB or 512M")
    value = int(float(match.group(1)) * _UNITS[match.group(2) or ""])
    if value <= 0:
        raise ValueError(f"byte count {text!r} must be positive")
    return value


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


class InjectedFault(RuntimeError):
    """The failure :meth:`CpuBackend.inject_fault` plants in a queued kernel."""


class CpuBuffer:
    """Host memory standing in for device memory.

    ``block`` is the allocation (from the device's caching pool, or adopted host memory when
    ``pooled`` is false); ``array`` is its first ``nbytes`` bytes. ``views`` caches the NumPy
    views kernels took of it, since the same operands recur launch after launch.
    """

    __slots__ = ("array", "block", "device", "freed", "nbytes", "pooled", "views")

    def __init__(self, device: int, block: np.ndarray, nbytes: int, pooled: bool) -> None:
        self.device = device
        self.block = block  # uint8, 1-D
        self.array = block[:nbytes] if block.nbytes != nbytes else block
        self.nbytes = nbytes
        self.pooled = pooled
        self.freed = False
        self.views: dict[tuple[Any, ...], np.ndarray] = {}


class CpuEvent:
    """A marker queued on a stream: ``ticket`` is its place in the stream's order."""

    __slots__ = ("done", "stream", "ticket", "time")

    def __init__(self, stream: CpuStream) -> None:
        self.stream = stream
        self.done = threading.Event()
        self.time = 0.0
        self.ticket = 0


class CpuStream:
    """A worker thread executing queued commands in order.

    Each command gets a ticket (1, 2, ...) when it is queued. The first command that fails is
    remembered with its ticket and reported -- once -- by the next synchronizing call that
    covers it: ``synchronize`` and ``query`` cover everything queued, an event's
    ``synchronize`` covers what was queued before the event. The worker exits when the
    stream is closed, after finishing what was queued.
    """

    def __init__(self, device: int, name: str, backend: str = "cpu") -> None:
        self.device = device
        self.backend = backend  #: the backend's name, for messages
        self._queue: queue.SimpleQueue[tuple[Callable[[], None], str, int] | None] = (
            queue.SimpleQueue()
        )
        self._submit_lock = threading.Lock()
        self.submitted = 0  #: ticket of the last command queued
        self.completed = 0  #: ticket of the last command finished
        self._error: tuple[int, str, BaseException] | None = None
        self._error_lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[[], None], label: str) -> int:
        """Queue ``fn``; returns its ticket. Host threads may submit concurrently."""
        with self._submit_lock:
            if self.closed:
                raise StreamError("the stream was destroyed; create a new one")
            self.submitted += 1
            ticket = self.submitted
            self._queue.put((fn, label, ticket))
        return ticket

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, label, ticket = item
            del item  # hold no reference to the command (and its buffers) once it is done
            try:
                with np.errstate(all="ignore"):
                    fn()
            except BaseException as exc:
                with self._error_lock:
                    if self._error is None:
                        self._error = (ticket, label, exc)
            del fn
            self.completed = ticket

    def idle(self) -> bool:
        return self.completed >= self.submitted

    def raise_pending(self, up_to: int | None = None) -> None:
        """Raise (and forget) the failure of a command with ticket <= ``up_to`` (any
        command if None)."""
        with self._error_lock:
            err = self._error
            if err is None or (up_to is not None and err[0] > up_to):
                return
            self._error = None
        _, label, exc = err
        raise KernelError(
            f"queued command {label} failed on {self.backend}:{self.device} "
            f"({type(exc).__name__}). "
            "Tensors it was writing hold undefined values; fix its inputs and queue it "
            "again -- the stream itself keeps working",
            vendor_message=f"{type(exc).__name__}: {exc}",
        ) from exc

    def synchronize(self) -> None:
        if not self.idle():
            marker = threading.Event()
            ticket = self.submit(marker.set, "synchronize")
            marker.wait()
            # The worker records the marker as completed just after running it: wait for
            # that too, so that query() right after synchronize() says idle.
            while self.completed < ticket:
                time.sleep(0)
        self.raise_pending()

    def close(self) -> None:
        with self._submit_lock:
            if not self.closed:
                self.closed = True
                self._queue.put(None)


#: Alignment of every pooled block: a cache line, and what JAX requires to share a buffer
#: through DLPack instead of copying it (NumPy's own allocations are 16-byte aligned).
BLOCK_ALIGNMENT = 64


def _aligned_block(nbytes: int) -> np.ndarray:
    """``nbytes`` of host memory starting on a :data:`BLOCK_ALIGNMENT` boundary (a view into
    a slightly larger array, which it keeps alive)."""
    raw = np.empty(nbytes + BLOCK_ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % BLOCK_ALIGNMENT
    return raw[start : start + nbytes]


def size_class(nbytes: int) -> int:
    """The block size the pool hands out for ``nbytes``: a multiple of 512 bytes, and above
    4 KiB rounded up to 1/8 of the next power of two, so one block serves every request
    within 12.5% of it (the waste is bounded by that too)."""
    if nbytes <= 512:
        return 512
    step = max(512, 1 << max(0, nbytes.bit_length() - 4))
    return -(-nbytes // step) * step


class _DeviceState:
    """Accounting and the caching pool of one cpu device.

    Freed blocks are cached by size class and handed out again -- but only once every
    command that was queued, on any stream of the backend, when the block was freed has
    finished (stream-ordered reuse, as ``cudaFreeAsync`` with a memory pool). Until then they
    wait in ``pending`` with the ticket each busy stream had reached. Reusing memory instead
    of returning it to the C allocator matters: a fresh megabyte costs hundreds of page
    faults, which dominated large elementwise kernels before the pool existed.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self.allocations = 0
        #: injected faults, see :meth:`CpuBackend.inject_fault`: [kernel or None, remaining]
        self.faults: list[list[Any]] = []
        self.cached: dict[int, list[np.ndarray]] = {}
        self.cached_bytes = 0
        self.cache_limit = capacity // 4
        self.pending: collections.deque[tuple[np.ndarray, list[tuple[CpuStream, int]]]] = (
            collections.deque()
        )
        # Reentrant: the cyclic garbage collector may run in this very thread while the lock
        # is held (any allocation can trigger it) and collect a tensor, whose storage then
        # frees its buffer -- which takes this lock again.
        self.lock = threading.RLock()

    def take(self, cls: int) -> np.ndarray | None:
        """A cached block of size class ``cls``, if one is free to reuse. Holds the lock."""
        self.reap()
        blocks = self.cached.get(cls)
        if blocks:
            self.cached_bytes -= cls
            return blocks.pop()
        return None

    def give(self, block: np.ndarray, fences: list[tuple[CpuStream, int]]) -> None:
        """Return a freed block; reusable once each (stream, ticket) fence has passed."""
        if fences:
            self.pending.append((block, fences))
        else:
            self._cache(block)
        self.reap()

    def reap(self) -> None:
        while self.pending:
            block, fences = self.pending[0]
            if any(stream.completed < ticket for stream, ticket in fences):
                return
            self.pending.popleft()
            self._cache(block)

    def _cache(self, block: np.ndarray) -> None:
        cls = block.nbytes
        if self.cached_bytes + cls <= self.cache_limit:
            self.cached.setdefault(cls, []).append(block)
            self.cached_bytes += cls
        # else: dropped; the C allocator gets the memory back when the last view dies

    def trim(self) -> None:
        """Drop every cached block (under memory pressure)."""
        self.cached.clear()
        self.cached_bytes = 0


def _make_view(op: Operand) -> np.ndarray:
    """A new NumPy view of an operand (no copy)."""
    dt = op.dtype.numpy_dtype
    item = dt.itemsize
    if 0 in op.shape:
        # an empty view: its offset may point past a zero-byte buffer, and nothing is read
        return np.empty(op.shape, dtype=dt)
    return np.ndarray(
        op.shape,
        dtype=dt,
        buffer=op.buffer.array,
        offset=op.offset * item,
        strides=tuple(s * item for s in op.strides),
    )


def _view(op: Operand) -> np.ndarray:
    """A NumPy view of an operand for a queued command, cached on its buffer (the same
    operands recur launch after launch, and building a view costs microseconds)."""
    views = op.buffer.views
    key = (op.dtype.name, op.shape, op.strides, op.offset)
    view = views.get(key)
    if view is None:
        if len(views) >= 16:
            views.clear()
        view = views[key] = _make_view(op)
    return view


class CpuBackend(Backend):
    """NumPy on the host. The reference every other backend is checked against."""

    name = "cpu"
    priority = 0
    environment = {
        "HWABSTRACT_CPU_DEVICES": "how many cpu devices to expose (default 1)",
        "HWABSTRACT_CPU_MEMORY": "capacity of each cpu device (default: physical memory)",
    }

    def __init__(self) -> None:
        count_text = os.environ.get("HWABSTRACT_CPU_DEVICES") or "1"  # empty: unset
        try:
            self._count = int(count_text)
        except ValueError:
            self._count = 0
        if self._count < 1:
            raise BackendUnavailableError(
                "cpu",
                f"HWABSTRACT_CPU_DEVICES={count_text!r} is not a positive integer; set it to "
                "the number of cpu devices to expose (e.g. 2) or unset it for one",
            )
        mem_text = os.environ.get("HWABSTRACT_CPU_MEMORY")
        if mem_text:
            try:
                capacity = parse_bytes(mem_text)
            except ValueError as exc:
                raise BackendUnavailableError(
                    "cpu",
                    f"HWABSTRACT_CPU_MEMORY={mem_text!r} is not a usable memory size ({exc}); "
                    "set it to a positive byte count such as 512MiB or 2G, or unset it to "
                    "use the machine's physical memory",
                ) from None
        else:
            capacity = _physical_memory()
        self._devices = [_DeviceState(capacity) for _ in range(self._count)]
        self._caps: Capabilities | None = None
        self._stream_names = itertools.count()
        #: every live stream of the backend: freed blocks are fenced against all of them.
        #: (A list of weak references: iterating a WeakSet on every free is slower.) Replaced,
        #: never mutated, under ``_streams_lock``: threads create streams concurrently, and a
        #: stream missing from it would let a block its queued commands use be reused.
        self._streams: list[weakref.ref[CpuStream]] = []
        self._streams_lock = threading.Lock()
        #: per kernel name: (ufunc fast path or None, NumPy reference)
        self._kernels: dict[str, tuple[Any, Any]] = {}

    # -- discovery ---------------------------------------------------------------------------

    def device_count(self) -> int:
        return self._count

    def device_info(self, index: int) -> DeviceInfo:
        proc = platform.processor() or platform.machine()
        return DeviceInfo(
            name=f"host CPU ({proc}) via NumPy",
            vendor="hwabstract",
            model="NumPy reference",
            memory_capacity=self._devices[index].capacity,
            standin=False,
            driver_version=f"numpy {np.__version__}",
            description="The reference backend: NumPy kernels on the host, one worker "
            "thread per stream.",
            extra={"cores": str(os.cpu_count() or 1), "machine": platform.machine()},
        )

    def capabilities(self, index: int) -> Capabilities:
        if self._caps is None:
            from ..kernels import all_specs
            from ..mx.formats import FORMATS

            dtypes = all_dtypes()
            self._caps = Capabilities(
                dtypes={d: DTypeSupport.NATIVE for d in dtypes},
                kernels={spec.name: frozenset(spec.dtypes) for spec in all_specs()},
                features=frozenset(
                    {
                        Feature.CONCURRENT_STREAMS,
                        Feature.EVENT_TIMING,
                        Feature.PEER_COPY,
                        Feature.DLPACK,
                        Feature.SUBNORMALS,
                    }
                ),
                limits=Limits(
                    memory_capacity=self._devices[index].capacity,
                    max_allocation=self._devices[index].capacity,
                    max_dims=32,
                ),
                # every OCP MX format, run by its NumPy reference (hwabstract.mx.reference)
                mx_formats=dict.fromkeys(FORMATS, DTypeSupport.NATIVE),
            )
        return self._caps

    # -- memory ------------------------------------------------------------------------------

    def allocate(self, index: int, nbytes: int) -> CpuBuffer:
        state = self._devices[index]
        cls = size_class(nbytes)
        with state.lock:
            free = state.capacity - state.in_use
            if nbytes > free:
                raise OutOfMemoryError(f"{self.name}:{index}", nbytes, free, state.capacity)
            block = state.take(cls)
            if block is None and state.cached_bytes + state.in_use + cls > state.capacity:
                state.trim()  # make room: the cache gives way to live allocations
            state.in_use += nbytes
            state.allocations += 1
            state.peak = max(state.peak, state.in_use)
        if block is None:
            try:
                block = _aligned_block(cls)
            except MemoryError as exc:
                self._release(index, nbytes)
                raise OutOfMemoryError(
                    f"{self.name}:{index}", nbytes, free, state.capacity, vendor_message=str(exc)
                ) from exc
        return CpuBuffer(index, block, nbytes, pooled=True)

    def _release(self, index: int, nbytes: int) -> None:
        state = self._devices[index]
        with state.lock:
            state.in_use = max(0, state.in_use - nbytes)
            state.allocations = max(0, state.allocations - 1)

    def free(self, buffer: CpuBuffer) -> None:
        if buffer.freed:
            raise DeviceError("buffer was already freed")
        buffer.freed = True
        buffer.views.clear()
        state = self._devices[buffer.device]
        with state.lock:
            state.in_use = max(0, state.in_use - buffer.nbytes)
            state.allocations = max(0, state.allocations - 1)
            if buffer.pooled:
                # Commands already queued may still use the block (they hold their own
                # views of it): it is reused only after every stream passes its current
                # ticket.
                streams = [r() for r in self._streams]
                fences = [(s, s.submitted) for s in streams if s is not None and not s.idle()]
                state.give(buffer.block, fences)

    def adopt_host_array(self, index: int, array: np.ndarray) -> CpuBuffer | None:
        flat = array.reshape(-1).view(np.uint8) if array.size else np.empty(0, np.uint8)
        state = self._devices[index]
        with state.lock:
            state.in_use += flat.nbytes
            state.allocations += 1
            state.peak = max(state.peak, state.in_use)
        return CpuBuffer(index, flat, flat.nbytes, pooled=False)

    def memory_stats(self, index: int) -> MemoryStats:
        state = self._devices[index]
        with state.lock:
            in_use, peak, allocations = state.in_use, state.peak, state.allocations
            cached = state.cached_bytes
        return MemoryStats(
            in_use=in_use,
            peak=peak,
            capacity=state.capacity,
            free=max(0, state.capacity - in_use),
            allocations=allocations,
            largest_free_block=None,
            cached=cached,
        )

    # -- streams -----------------------------------------------------------------------------

    def create_stream(self, index: int) -> CpuStream:
        stream = CpuStream(
            index, f"hwabstract-{self.name}{index}-stream{next(self._stream_names)}", self.name
        )
        ref = weakref.ref(stream)
        with self._streams_lock:
            self._streams = [*(r for r in self._streams if r() is not None), ref]
        return stream

    def destroy_stream(self, stream: CpuStream) -> None:
        stream.close()

    def stream_synchronize(self, stream: CpuStream) -> None:
        stream.synchronize()

    def stream_query(self, stream: CpuStream) -> bool:
        if stream.idle():
            stream.raise_pending()
            return True
        return False

    def record_event(self, stream: CpuStream, timing: bool) -> CpuEvent:
        event = CpuEvent(stream)

        def reach() -> None:
            event.time = time.perf_counter()
            event.done.set()

        event.ticket = stream.submit(reach, "record_event")
        return event

    def stream_wait_event(self, stream: CpuStream, event: CpuEvent) -> None:
        done = event.done

        def wait() -> None:
            done.wait()

        stream.submit(wait, "wait_event")

    def event_query(self, event: CpuEvent) -> bool:
        return event.done.is_set()

    def event_synchronize(self, event: CpuEvent) -> None:
        event.done.wait()
        # report a failure of a command queued before the event, not of later ones
        event.stream.raise_pending(up_to=event.ticket)

    def event_elapsed_ms(self, start: CpuEvent, end: CpuEvent) -> float:
        return (end.time - start.time) * 1000.0

    # -- data movement ----------------------------------------------------------------------

    def copy_from_host(self, stream: CpuStream, dst: Operand, src: np.ndarray) -> None:
        target = _view(dst)
        if stream.idle():
            # Nothing queued can touch dst: copy now, which also satisfies "src may change
            # as soon as this returns" without staging.
            np.copyto(target, src, casting="no")
        else:
            staged = np.array(src, copy=True)
            stream.submit(lambda: np.copyto(target, staged, casting="no"), "copy_from_host")

    def copy_to_host(self, stream: CpuStream, dst: np.ndarray, src: Operand) -> None:
        source = _view(src)
        if stream.idle():
            # Nothing queued before it: copying now is in stream order, and spares the
            # caller the round trip through the worker thread when it synchronizes.
            np.copyto(dst, source, casting="no")
        else:
            stream.submit(lambda: np.copyto(dst, source, casting="no"), "copy_to_host")

    def copy(self, stream: CpuStream, dst: Operand, src: Operand) -> None:
        target, source = _view(dst), _view(src)
        stream.submit(lambda: np.copyto(target, source, casting="no"), "copy")

    def copy_peer(self, stream: CpuStream, dst: Operand, src: Operand) -> None:
        self.copy(stream, dst, src)

    def host_view(self, operand: Operand) -> np.ndarray:
        return _make_view(operand)  # uncached: it is handed to foreign code

    # -- fault injection ---------------------------------------------------------------------

    def inject_fault(self, index: int, kernel: str | None = None, count: int = 1) -> None:
        """Make the next ``count`` launches of ``kernel`` (any kernel if None) on device
        ``index`` fail while executing, as a faulting device would: the launch returns, the
        stream reports a :class:`~hwabstract.errors.KernelError` at its next synchronizing
        call, and the stream keeps working afterwards. For tests of error handling; reach it
        as ``device._impl.inject_fault(device.index, ...)``."""
        if count < 1:
            raise ValueError(f"inject_fault count must be at least 1, got {count}")
        state = self._devices[index]
        with state.lock:
            state.faults.append([kernel, count])

    @staticmethod
    def _take_fault(state: _DeviceState, kernel: str) -> bool:
        with state.lock:
            for fault in state.faults:
                if fault[0] in (None, kernel):
                    fault[1] -= 1
                    if fault[1] == 0:
                        state.faults.remove(fault)
                    return True
        return False

    # -- kernels -----------------------------------------------------------------------------

    def launch(
        self,
        stream: CpuStream,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> None:
        if kernel.startswith("mx_"):
            self._launch_mx(stream, kernel, inputs, outputs, attributes)
            return
        entry = self._kernels.get(kernel)
        if entry is None:
            from ..kernels import get_spec

            spec = get_spec(kernel)
            entry = self._kernels[kernel] = (spec.ufunc, spec.reference)
        ufunc, reference = entry
        ins = [_view(op) for op in inputs]
        outs = [_view(op) for op in outputs]
        state = self._devices[outputs[0].buffer.device] if outputs else None
        if state is not None and state.faults and self._take_fault(state, kernel):

            def fail() -> None:
                raise InjectedFault(f"fault injected into kernel {kernel!r} (inject_fault)")

            stream.submit(fail, f"kernel {kernel!r}")
            return
        if ufunc is not None and len(outs) == 1:
            out = outs[0]

            def run() -> None:
                ufunc(*ins, out=out, casting="unsafe")

        else:
            attrs = dict(attributes)

            def run() -> None:
                result = reference(*ins, **attrs)
                if not isinstance(result, tuple):
                    result = (result,)
                for target, value in zip(outs, result):
                    np.copyto(target, value, casting="unsafe")

        stream.submit(run, f"kernel {kernel!r}")

    def _launch_mx(self, stream: CpuStream, kernel: str, inputs: Sequence[Operand],
                   outputs: Sequence[Operand], attributes: Mapping[str, Any]) -> None:  # fmt: skip
        """The MX kernels (docs/plugins.md), run by the NumPy reference itself."""
        from ..mx import reference as mxr
        from ..mx.formats import mx_format

        ins = [_view(op) for op in inputs]
        outs = [_view(op) for op in outputs]
        if kernel == "mx_quantize":
            fmt = mx_format(attributes["format"])

            def run() -> None:
                m = mxr.quantize(ins[0], fmt, axis=1)
                np.copyto(outs[0], m.elements)
                np.copyto(outs[1], m.scales)

        elif kernel == "mx_dequantize":
            fmt = mx_format(attributes["format"])
            n = int(attributes["n"])

            def run() -> None:
                m = mxr.MXArrays(ins[0], ins[1], (ins[0].shape[0], n), 1)
                np.copyto(outs[0], mxr.dequantize(m, fmt, outs[0].dtype))

        elif kernel == "mx_matmul":
            a_fmt, b_fmt = mx_format(attributes["a_format"]), mx_format(attributes["b_format"])
            k = int(attributes["k"])

            def run() -> None:
                a = mxr.MXArrays(ins[0], ins[1], (ins[0].shape[0], k), 1)
                b = mxr.MXArrays(ins[2], ins[3], (ins[2].shape[0], k), 1)  # N-major
                b_values = mxr.dequantize(b, b_fmt, np.float64).T
                out = mxr.matmul(a, b_values, outs[0].dtype, a_fmt=a_fmt)
                np.copyto(outs[0], out)

        else:
            raise KernelError(f"unknown MX kernel {kernel!r}")
        stream.submit(run, f"kernel {kernel!r}")


@hookimpl
def hwabstract_backends() -> list[type[Backend]]:
    """The hook every plugin implements; here it provides the reference backend."""
    return [CpuBackend]
