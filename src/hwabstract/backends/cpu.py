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
  G, KiB, MiB, GiB allowed); default: the machine's physical memory.
"""

from __future__ import annotations

import itertools
import os
import platform
import queue
import threading
import time
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
from ..errors import DeviceError, KernelError, OutOfMemoryError, StreamError
from ..hookspecs import hookimpl

__all__ = ["CpuBackend", "hwabstract_backends"]

_UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}  # fmt: skip


def parse_bytes(text: str) -> int:
    """Parse ``"512MiB"``, ``"2G"`` or ``"1048576"`` into a byte count."""
    raw = text.strip().upper().replace(" ", "")
    if raw.endswith("B") and not raw.endswith("IB"):
        raw = raw[:-1]
    digits = raw.rstrip("KMGTI")
    unit = raw[len(digits) :]
    if unit not in _UNITS or not digits:
        raise ValueError(f"cannot parse byte count {text!r}; use e.g. 1073741824, 1GiB or 512M")
    return int(float(digits) * _UNITS[unit])


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


class CpuBuffer:
    """Host memory standing in for device memory."""

    __slots__ = ("array", "device", "freed", "nbytes")

    def __init__(self, device: int, array: np.ndarray) -> None:
        self.device = device
        self.array = array  # uint8, 1-D
        self.nbytes = int(array.nbytes)
        self.freed = False


class CpuEvent:
    __slots__ = ("done", "stream", "time")

    def __init__(self, stream: CpuStream) -> None:
        self.stream = stream
        self.done = threading.Event()
        self.time = 0.0


class CpuStream:
    """A worker thread executing queued commands in order."""

    def __init__(self, device: int, name: str) -> None:
        self.device = device
        self._queue: queue.SimpleQueue[tuple[Callable[[], None], str] | None] = (
            queue.SimpleQueue()
        )
        self._tickets = itertools.count(1)
        self.submitted = 0
        self.completed = 0
        self._error: tuple[str, BaseException] | None = None
        self._error_lock = threading.Lock()
        self.closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], None], label: str) -> None:
        if self.closed:
            raise StreamError("the stream was destroyed; create a new one")
        self.submitted = next(self._tickets)
        self._queue.put((fn, label))

    def _run(self) -> None:
        done = 0
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, label = item
            try:
                with np.errstate(all="ignore"):
                    fn()
            except BaseException as exc:
                with self._error_lock:
                    if self._error is None:
                        self._error = (label, exc)
            done += 1
            self.completed = done

    def idle(self) -> bool:
        return self.completed >= self.submitted

    def raise_pending(self) -> None:
        with self._error_lock:
            err, self._error = self._error, None
        if err is not None:
            label, exc = err
            raise KernelError(
                f"queued command {label} failed on cpu:{self.device}: "
                f"{type(exc).__name__}: {exc}",
                vendor_message=str(exc),
            ) from exc

    def synchronize(self) -> None:
        if not self.idle():
            marker = threading.Event()
            self.submit(marker.set, "synchronize")
            marker.wait()
        self.raise_pending()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put(None)


class _DeviceState:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self.allocations = 0
        self.lock = threading.Lock()


def _view(op: Operand) -> np.ndarray:
    """A NumPy view of an operand (no copy)."""
    dt = op.dtype.numpy_dtype
    item = dt.itemsize
    return np.ndarray(
        op.shape,
        dtype=dt,
        buffer=op.buffer.array,
        offset=op.offset * item,
        strides=tuple(s * item for s in op.strides),
    )


class CpuBackend(Backend):
    """NumPy on the host. The reference every other backend is checked against."""

    name = "cpu"
    priority = 0

    def __init__(self) -> None:
        count_text = os.environ.get("HWABSTRACT_CPU_DEVICES", "1")
        try:
            self._count = int(count_text)
        except ValueError:
            raise DeviceError(
                f"HWABSTRACT_CPU_DEVICES={count_text!r} is not an integer; set it to e.g. 2"
            ) from None
        if self._count < 1:
            raise DeviceError(f"HWABSTRACT_CPU_DEVICES={count_text!r} must be at least 1")
        mem_text = os.environ.get("HWABSTRACT_CPU_MEMORY")
        capacity = parse_bytes(mem_text) if mem_text else _physical_memory()
        self._devices = [_DeviceState(capacity) for _ in range(self._count)]
        self._caps: Capabilities | None = None
        self._stream_names = itertools.count()

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
                    }
                ),
                limits=Limits(
                    memory_capacity=self._devices[index].capacity,
                    max_allocation=self._devices[index].capacity,
                    max_dims=32,
                ),
            )
        return self._caps

    # -- memory ------------------------------------------------------------------------------

    def allocate(self, index: int, nbytes: int) -> CpuBuffer:
        state = self._devices[index]
        with state.lock:
            free = state.capacity - state.in_use
            if nbytes > free:
                raise OutOfMemoryError(f"cpu:{index}", nbytes, free, state.capacity)
            state.in_use += nbytes
            state.allocations += 1
            state.peak = max(state.peak, state.in_use)
        try:
            array = np.empty(nbytes, dtype=np.uint8)
        except MemoryError as exc:
            self._release(index, nbytes)
            raise OutOfMemoryError(
                f"cpu:{index}", nbytes, free, state.capacity, vendor_message=str(exc)
            ) from exc
        return CpuBuffer(index, array)

    def _release(self, index: int, nbytes: int) -> None:
        state = self._devices[index]
        with state.lock:
            state.in_use -= nbytes
            state.allocations -= 1

    def free(self, buffer: CpuBuffer) -> None:
        if buffer.freed:
            raise DeviceError("buffer was already freed")
        buffer.freed = True
        # Queued commands hold their own views of buffer.array, so memory stays valid
        # until they finish; only the accounting is released here.
        self._release(buffer.device, buffer.nbytes)

    def adopt_host_array(self, index: int, array: np.ndarray) -> CpuBuffer | None:
        flat = array.reshape(-1).view(np.uint8) if array.size else np.empty(0, np.uint8)
        state = self._devices[index]
        with state.lock:
            state.in_use += flat.nbytes
            state.allocations += 1
            state.peak = max(state.peak, state.in_use)
        return CpuBuffer(index, flat)

    def memory_stats(self, index: int) -> MemoryStats:
        state = self._devices[index]
        with state.lock:
            return MemoryStats(
                in_use=state.in_use,
                peak=state.peak,
                capacity=state.capacity,
                free=state.capacity - state.in_use,
                allocations=state.allocations,
                largest_free_block=None,
            )

    # -- streams -----------------------------------------------------------------------------

    def create_stream(self, index: int) -> CpuStream:
        return CpuStream(index, f"hwabstract-cpu{index}-stream{next(self._stream_names)}")

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

        stream.submit(reach, "record_event")
        return event

    def stream_wait_event(self, stream: CpuStream, event: CpuEvent) -> None:
        stream.submit(event.done.wait, "wait_event")

    def event_query(self, event: CpuEvent) -> bool:
        return event.done.is_set()

    def event_synchronize(self, event: CpuEvent) -> None:
        event.done.wait()
        event.stream.raise_pending()

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
        stream.submit(lambda: np.copyto(dst, source, casting="no"), "copy_to_host")

    def copy(self, stream: CpuStream, dst: Operand, src: Operand) -> None:
        target, source = _view(dst), _view(src)
        stream.submit(lambda: np.copyto(target, source, casting="no"), "copy")

    def copy_peer(self, stream: CpuStream, dst: Operand, src: Operand) -> None:
        self.copy(stream, dst, src)

    def host_view(self, operand: Operand) -> np.ndarray:
        return _view(operand)

    # -- kernels -----------------------------------------------------------------------------

    def launch(
        self,
        stream: CpuStream,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> None:
        from ..kernels import get_spec

        spec = get_spec(kernel)
        ins = [_view(op) for op in inputs]
        outs = [_view(op) for op in outputs]
        attrs = dict(attributes)
        ufunc = spec.ufunc
        if ufunc is not None and len(outs) == 1:
            out = outs[0]

            def run() -> None:
                ufunc(*ins, out=out, casting="unsafe")

        else:
            reference = spec.reference

            def run() -> None:
                result = reference(*ins, **attrs)
                if not isinstance(result, tuple):
                    result = (result,)
                for target, value in zip(outs, result):
                    np.copyto(target, value, casting="unsafe")

        stream.submit(run, f"kernel {kernel!r}")


@hookimpl
def hwabstract_backends() -> list[type[Backend]]:
    """The hook every plugin implements; here it provides the reference backend."""
    return [CpuBackend]
