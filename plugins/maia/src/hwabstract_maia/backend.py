"""The ``maia`` backend: hwabstract's backend contract over libmaia, the Maia 200 emulator.

Every contract call maps onto one libmaia call through the cffi binding
``hwabstract_maia._maia`` (API mode: the GIL is released while C runs, and libmaia's worker
threads never call into Python):

* buffers are libmaia buffer handles (``maia_malloc`` / ``maia_free``; free is stream-ordered
  inside libmaia, so queued work keeps its memory);
* streams are hardware queues, events are timeline events;
* copies are ``maia_copy_h2d`` / ``d2h`` / ``d2d`` (peer copies too) and launches are
  ``maia_launch`` with the kernel's name, strided views and a ``maia_attrs`` struct.

Environment (read by libmaia when the backend probes): ``HWABSTRACT_MAIA_DEVICES`` (default
2), ``HWABSTRACT_MAIA_MEMORY`` (emulated HBM per device, default 1 GiB),
``HWABSTRACT_MAIA_THREADS``, ``HWABSTRACT_MAIA_TRACE_EVENTS`` (the timeline trace ring, see
``export_trace``) and the fault-injection variables of ``native/maia/README.md``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hwabstract import (
    API_LEVEL,
    Backend,
    BackendUnavailableError,
    Capabilities,
    DeviceError,
    DeviceInfo,
    DeviceLostError,
    DTypeError,
    DTypeSupport,
    Feature,
    KernelError,
    Limits,
    MemoryStats,
    Operand,
    OutOfMemoryError,
    ShapeError,
    StreamError,
    UnsupportedError,
)
from hwabstract.backend import BoundLaunch, TimelineEntry
from hwabstract.dtypes import DType, all_dtypes

__all__ = ["MaiaBackend", "MaiaBuffer", "MaiaEvent", "MaiaStream"]

#: libmaia's dtype codes (maia_kernels.h; part of its binary interface).
DTYPE_CODES: dict[str, int] = {
    "bool": 0,
    "int8": 1,
    "int16": 2,
    "int32": 3,
    "int64": 4,
    "uint8": 5,
    "uint16": 6,
    "uint32": 7,
    "uint64": 8,
    "float8_e4m3fn": 9,
    "float8_e5m2": 10,
    "bfloat16": 11,
    "float16": 12,
    "float32": 13,
}
#: libmaia's OCP MX format codes (``maia_mx_format`` in maia_kernels.h; binary interface),
#: by ``hwabstract.mx`` format name. libmaia runs all six in C: ``mx_quantize``,
#: ``mx_dequantize`` and ``mx_matmul``, bit-identical to ``hwabstract.mx.reference``.
MX_FORMAT_CODES: dict[str, int] = {
    "mxfp8_e4m3": 1,
    "mxfp8_e5m2": 2,
    "mxfp6_e3m2": 3,
    "mxfp6_e2m3": 4,
    "mxfp4_e2m1": 5,
    "mxint8": 6,
}
#: No 64-bit datapath appears in any public Maia figure: libmaia computes 64-bit integers on
#: its vector path and the model charges them at half the float32 rate.
EMULATED_DTYPES = frozenset({"int64", "uint64"})
#: Kernels the core carries out from views and copies; they never reach ``launch``.
COMPOSITE_KERNELS = frozenset(
    {"reshape", "concat", "stack", "flip", "permute_dims", "broadcast_to"}
)
MAX_DIMS = 32
MODELED_MEMORY = 216 * 10**9

_lock = threading.Lock()
_ffi: Any = None
_lib: Any = None

# status codes (maia.h)
_OK = 0
_NOT_READY = 1
_INVALID_ARGUMENT = 2
_OUT_OF_MEMORY = 6
_KERNEL_FAILED = 12
_HOST_OUT_OF_MEMORY = 13
_DEVICE_LOST = 17


def _load() -> tuple[Any, Any]:
    """Import the compiled binding and start libmaia once per process."""
    global _ffi, _lib
    with _lock:
        if _lib is None:
            from . import _maia  # type: ignore[attr-defined]  # compiled by cffi at install

            lib = _maia.lib
            if not lib.maia_is_initialized():
                status = lib.maia_init(_maia.ffi.NULL)
                if status != _OK:
                    message = _maia.ffi.string(lib.maia_last_error()).decode(errors="replace")
                    raise BackendUnavailableError(
                        "maia",
                        f"libmaia failed to start ({_status_name(lib, _maia.ffi, status)}): "
                        f"{message}. Fix the HWABSTRACT_MAIA_* variable it names, or unset it",
                    )
            _ffi, _lib = _maia.ffi, lib
    return _ffi, _lib


def _status_name(lib: Any, ffi: Any, status: int) -> str:
    return ffi.string(lib.maia_status_name(status)).decode()


#: maia_launch's operand limit (MAIA_MAX_OPERANDS in maia_kernels.h).
_MAX_OPERANDS = 4
#: Kernel names as the bytes maia_launch takes, encoded once each.
_KERNEL_NAMES: dict[str, bytes] = {}
#: Per-thread operand arrays that launches refill: maia_launch copies the views it is given
#: before returning, so they can be reused by the next launch on the same thread.
_scratch = threading.local()


_VIEWS_PER_BUFFER = 16
_UNSEEN = object()


def _launch_views(n_inputs: int, n_outputs: int) -> tuple[Any, Any]:
    """View arrays for a launch with ``n_inputs`` and ``n_outputs`` operands."""
    if n_inputs > _MAX_OPERANDS or n_outputs > _MAX_OPERANDS:
        # more than libmaia accepts: fresh arrays, and maia_launch reports the error
        return (
            _ffi.new("maia_buffer_view[]", max(1, n_inputs)),
            _ffi.new("maia_buffer_view[]", max(1, n_outputs)),
        )
    views = getattr(_scratch, "views", None)
    if views is None:
        views = _scratch.views = (
            _ffi.new("maia_buffer_view[]", _MAX_OPERANDS),
            _ffi.new("maia_buffer_view[]", _MAX_OPERANDS),
        )
    return views


def _mx_format_code(value: Any) -> int:
    """libmaia's code of an MX format: a ``hwabstract.mx`` name (``"mxfp8_e4m3"``; ``"mxfp4"``
    for ``"mxfp4_e2m1"``) or an ``MXFormat`` (its ``name``)."""
    name = getattr(value, "name", value)
    key = name.strip().lower() if isinstance(name, str) else None
    code = MX_FORMAT_CODES.get({"mxfp4": "mxfp4_e2m1"}.get(key, key)) if key else None
    if code is None:
        raise DTypeError(
            f"unknown MX format {value!r}; the OCP MX v1.0 formats are {', '.join(MX_FORMAT_CODES)}"
        )
    return code


def _mx_length(key: str, value: Any) -> int:
    """The ``n`` (mx_dequantize) or ``k`` (mx_matmul) attribute: a non-negative int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ShapeError(f"attribute {key} must be a non-negative integer, got {value!r}")
    if not 0 <= int(value) < 2**62:
        raise ShapeError(f"attribute {key} must be a non-negative integer, got {value}")
    return int(value)


class MaiaBuffer:
    """A libmaia buffer handle and the device that owns it."""

    __slots__ = ("device", "freed", "handle", "nbytes", "views")

    def __init__(self, device: int, handle: int, nbytes: int) -> None:
        self.device = device
        self.handle = handle
        self.nbytes = nbytes
        self.freed = False
        #: filled ``maia_buffer_view`` structs of this buffer, by (dtype, shape, strides,
        #: offset): a launch copies a cached struct instead of filling one field by field
        self.views: dict[tuple[Any, ...], Any] = {}

    def __repr__(self) -> str:
        return f"<MaiaBuffer maia:{self.device} {self.nbytes} B handle={self.handle:#x}>"


class MaiaStream:
    """A libmaia hardware queue.

    ``pinned`` keeps host arrays that queued device-to-host copies write into alive until
    the queue has passed them: (sequence number, array) pairs.
    """

    __slots__ = ("destroyed", "device", "handle", "lock", "pinned")

    def __init__(self, device: int, handle: int) -> None:
        self.device = device
        self.handle = handle
        self.destroyed = False
        self.pinned: list[tuple[int, np.ndarray]] = []
        self.lock = threading.Lock()


class MaiaEvent:
    """A libmaia timeline event (or user event); destroyed with this object."""

    __slots__ = ("__weakref__", "device", "handle", "stream", "timing")

    def __init__(self, handle: int, stream: MaiaStream | None, timing: bool) -> None:
        self.handle = handle
        self.stream = stream
        self.device = stream.device if stream is not None else None
        self.timing = timing

    def __del__(self) -> None:
        lib = _lib
        if lib is not None and self.handle:
            lib.maia_event_destroy(self.handle)  # status ignored: nothing to report to
            self.handle = 0


class MaiaBackend(Backend):
    """Microsoft Maia 200, emulated by libmaia (``native/maia``)."""

    name = "maia"
    api_level = API_LEVEL
    priority = 50
    environment = {
        "HWABSTRACT_MAIA_DEVICES": "emulated Maia devices, 1-64 (default 2)",
        "HWABSTRACT_MAIA_MEMORY": "emulated HBM per device, e.g. 1G (default 1 GiB)",
        "HWABSTRACT_MAIA_THREADS": "host threads one kernel may use (default: online CPUs)",
        "HWABSTRACT_MAIA_SPIN_US": "us a queue spins before sleeping (default 50; 0 = never)",
        "HWABSTRACT_MAIA_TRACE_EVENTS": "trace ring size per device (default 4096; 0 = off)",
        "HWABSTRACT_MAIA_FAIL_ALLOC": "fault injection: the Nth allocation fails",
        "HWABSTRACT_MAIA_FAIL_KERNEL": "fault injection: the next launch of this kernel fails",
        "HWABSTRACT_MAIA_QUEUE_DELAY_US": "fault injection: each command waits this long first",
    }

    def __init__(self) -> None:
        self._count = 0
        self._infos: dict[int, DeviceInfo] = {}
        self._caps: dict[int, Capabilities] = {}

    # -- errors ------------------------------------------------------------------------------

    def _message(self) -> str:
        return _ffi.string(_lib.maia_last_error()).decode(errors="replace")

    def _check(self, status: int, what: str, device: int | None, error: type = DeviceError) -> None:
        """Raise the SDK error for a failed libmaia call (``status`` != MAIA_OK)."""
        if status == _OK:
            return
        message = self._message()
        name = _status_name(_lib, _ffi, status)
        where = f"maia:{device}" if device is not None else "maia"
        if status == _KERNEL_FAILED:
            raise KernelError(
                f"queued command failed on {where}: {message}. Tensors it was writing hold "
                "undefined values; fix its inputs and queue it again -- the stream itself "
                "keeps working",
                vendor_message=f"{name}: {message}",
            )
        if status == _HOST_OUT_OF_MEMORY:
            raise OutOfMemoryError(where, 0, None, None, vendor_message=f"{name}: {message}")
        if status == _DEVICE_LOST:
            raise DeviceLostError(
                f"{what} failed: the Maia device is lost, with the data it held and the work "
                "queued on it; free its tensors and use another device",
                vendor_message=f"{name}: {message}",
            )
        raise error(f"{what} failed on {where}: {message} ({name})", vendor_message=message)

    # -- discovery ---------------------------------------------------------------------------

    def probe(self) -> None:
        try:
            ffi, lib = _load()
        except ImportError as exc:
            raise BackendUnavailableError(
                "maia",
                f"the compiled libmaia binding hwabstract_maia._maia cannot be imported ({exc}); "
                "reinstall hwabstract-maia so that it is built (needs a C11 compiler)",
            ) from exc
        count = ffi.new("int32_t *")
        self._check(lib.maia_device_count(count), "maia_device_count", None)
        self._count = int(count[0])

    def device_count(self) -> int:
        return self._count

    def _device(self, index: int) -> int:
        if not 0 <= index < self._count:
            raise DeviceError(f"maia:{index} does not exist; this host has {self._count}")
        return index

    def device_info(self, index: int) -> DeviceInfo:
        info = self._infos.get(index)
        if info is None:
            raw = _ffi.new("maia_device_info *")
            self._check(_lib.maia_device_get_info(self._device(index), raw), "device info", index)
            name = _ffi.string(raw.name).decode()
            info = self._infos[index] = DeviceInfo(
                name=name,
                vendor=_ffi.string(raw.vendor).decode(),
                model=_ffi.string(raw.model).decode(),
                memory_capacity=int(raw.memory_capacity),
                standin=True,
                standin_for="Microsoft Maia 200",
                modeled_memory_capacity=int(raw.modeled_memory_capacity),
                driver_version=f"libmaia {_ffi.string(_lib.maia_version_string()).decode()}",
                description="The libmaia C emulator of Maia 200 on the host: HBM arena, "
                "hardware queues on worker threads, C kernels, and a performance model "
                "reporting modeled Maia 200 time beside wall time.",
                extra={
                    "kernel_threads": str(int(raw.kernel_threads)),
                    "max_queues": str(int(raw.max_queues)),
                    "modeled_sram_bytes": str(int(raw.modeled_sram_bytes)),
                },
            )
        return info

    def capabilities(self, index: int) -> Capabilities:
        caps = self._caps.get(index)
        if caps is None:
            from hwabstract.kernels import all_specs

            dtypes = {
                d: DTypeSupport.EMULATED if d.name in EMULATED_DTYPES else DTypeSupport.NATIVE
                for d in all_dtypes()
                if d.name in DTYPE_CODES
            }
            kernels: dict[str, frozenset[DType]] = {}
            for spec in all_specs():
                if spec.name in COMPOSITE_KERNELS:
                    ok = frozenset(d for d in spec.dtypes if d in dtypes)
                else:
                    key = spec.name.encode()
                    ok = frozenset(
                        d
                        for d in spec.dtypes
                        if d in dtypes and _lib.maia_kernel_supports(key, DTYPE_CODES[d.name])
                    )
                if ok:
                    kernels[spec.name] = ok
            info = self.device_info(index)
            caps = self._caps[index] = Capabilities(
                dtypes=dtypes,
                kernels=kernels,
                features=frozenset(
                    {
                        Feature.CONCURRENT_STREAMS,
                        Feature.EVENT_TIMING,
                        Feature.PEER_COPY,
                        Feature.MODELED_TIME,
                        Feature.SUBNORMALS,
                        Feature.MX_FORMATS,
                    }
                ),
                limits=Limits(
                    memory_capacity=info.memory_capacity,
                    max_allocation=info.memory_capacity,
                    max_dims=MAX_DIMS,
                ),
                mx_formats={name: DTypeSupport.NATIVE for name in MX_FORMAT_CODES},
            )
        return caps

    # -- memory ------------------------------------------------------------------------------

    def _raw_stats(self, index: int) -> Any:
        raw = _ffi.new("maia_memory_stats *")
        self._check(_lib.maia_device_memory_stats(self._device(index), raw), "memory stats", index)
        return raw

    def allocate(self, index: int, nbytes: int) -> MaiaBuffer:
        self._device(index)
        if not 0 <= nbytes < 2**64:
            raise OutOfMemoryError(f"maia:{index}", nbytes, None, None)
        out = _ffi.new("uint64_t *")
        status = _lib.maia_malloc(index, nbytes, out)
        if status == _OUT_OF_MEMORY:
            message = self._message()
            raw = self._raw_stats(index)
            raise OutOfMemoryError(
                f"maia:{index}",
                nbytes,
                int(raw.free),
                int(raw.capacity),
                vendor_message=message,
            )
        self._check(status, "allocation", index)
        return MaiaBuffer(index, int(out[0]), nbytes)

    def free(self, buffer: MaiaBuffer) -> None:
        if buffer.freed:
            raise DeviceError(f"{buffer!r} was already freed")
        buffer.freed = True
        self._check(_lib.maia_free(buffer.device, buffer.handle), "free", buffer.device)

    def memory_stats(self, index: int) -> MemoryStats:
        raw = self._raw_stats(index)
        return MemoryStats(
            in_use=int(raw.in_use),
            peak=int(raw.peak),
            capacity=int(raw.capacity),
            free=int(raw.free),
            allocations=int(raw.live_allocations),
            largest_free_block=int(raw.largest_free_block),
            cached=0,
        )

    # -- streams and events ------------------------------------------------------------------

    def create_stream(self, index: int) -> MaiaStream:
        out = _ffi.new("uint64_t *")
        self._check(_lib.maia_queue_create(self._device(index), out), "queue creation", index)
        return MaiaStream(index, int(out[0]))

    def destroy_stream(self, stream: MaiaStream) -> None:
        if stream.destroyed:
            return
        stream.destroyed = True
        status = _lib.maia_queue_destroy(stream.handle)  # drains the queue first
        with stream.lock:
            stream.pinned.clear()
        # An unreported failure of a command nobody synchronized on is dropped with the
        # queue: destroy_stream runs from a finalizer, where nothing could catch it.
        if status != _KERNEL_FAILED:
            self._check(status, "queue destruction", stream.device, StreamError)

    def _live(self, stream: MaiaStream) -> int:
        if stream.destroyed:
            raise StreamError("the stream was destroyed; create a new one")
        return stream.handle

    def _unpin(self, stream: MaiaStream, everything: bool = False) -> None:
        """Drop host arrays of device-to-host copies the queue has passed."""
        if not stream.pinned:
            return
        if everything:
            with stream.lock:
                stream.pinned.clear()
            return
        info = _ffi.new("maia_queue_info *")
        if _lib.maia_queue_get_info(stream.handle, info) != _OK:
            return
        done = int(info.completed)
        with stream.lock:
            stream.pinned = [(seq, arr) for seq, arr in stream.pinned if seq > done]

    def stream_synchronize(self, stream: MaiaStream) -> None:
        status = _lib.maia_queue_synchronize(self._live(stream))
        self._unpin(stream, everything=True)
        self._check(status, "stream synchronize", stream.device, StreamError)

    def stream_query(self, stream: MaiaStream) -> bool:
        status = _lib.maia_queue_query(self._live(stream))
        if status == _NOT_READY:
            return False
        self._unpin(stream, everything=True)
        self._check(status, "stream query", stream.device, StreamError)
        return True

    def record_event(self, stream: MaiaStream, timing: bool) -> MaiaEvent:
        out = _ffi.new("uint64_t *")
        status = _lib.maia_event_record(self._live(stream), out)
        self._check(status, "event record", stream.device, StreamError)
        return MaiaEvent(int(out[0]), stream, timing)

    def stream_wait_event(self, stream: MaiaStream, event: MaiaEvent) -> None:
        status = _lib.maia_queue_wait_event(self._live(stream), event.handle)
        self._check(status, "stream wait", stream.device, StreamError)

    def event_query(self, event: MaiaEvent) -> bool:
        status = _lib.maia_event_query(event.handle)
        if status == _NOT_READY:
            return False
        self._check(status, "event query", event.device, StreamError)
        return True

    def event_synchronize(self, event: MaiaEvent) -> None:
        status = _lib.maia_event_synchronize(event.handle)
        if event.stream is not None:
            self._unpin(event.stream)
        self._check(status, "event synchronize", event.device, StreamError)

    def _elapsed(self, start: Any, end: Any) -> tuple[float, float]:
        start, end = getattr(start, "_handle", start), getattr(end, "_handle", end)
        wall = _ffi.new("double *")
        modeled = _ffi.new("double *")
        status = _lib.maia_event_elapsed(start.handle, end.handle, wall, modeled)
        if status == _NOT_READY:
            raise StreamError(
                "elapsed time needs both events reached; synchronize the end event first"
            )
        self._check(status, "event elapsed time", start.device, StreamError)
        return float(wall[0]), float(modeled[0])

    def event_elapsed_ms(self, start: MaiaEvent, end: MaiaEvent) -> float:
        return self._elapsed(start, end)[0]

    def event_modeled_elapsed_ms(self, start: MaiaEvent, end: MaiaEvent) -> float:
        """The contract's modeled time (``Event.modeled_elapsed_time``): Maia 200 time."""
        return self._elapsed(start, end)[1]

    def modeled_elapsed_ms(self, start: Any, end: Any) -> float:
        """Milliseconds Maia 200 would take between two reached events, by libmaia's
        performance model (``event_elapsed_ms`` gives the emulator's wall time). Takes
        ``hw.Event`` objects or this backend's event handles; reach it as
        ``device._impl.modeled_elapsed_ms(start, end)``."""
        return self._elapsed(start, end)[1]

    def device_counters(self, index: int) -> dict[str, float]:
        """libmaia's counters of device ``index``: commands, kernels, copies, bytes copied,
        failed commands, and modeled and wall busy time in nanoseconds."""
        raw = _ffi.new("maia_device_counters *")
        self._check(_lib.maia_device_get_counters(self._device(index), raw), "counters", index)
        return {
            "commands": int(raw.commands),
            "kernels": int(raw.kernels),
            "copies": int(raw.copies),
            "bytes_copied": int(raw.bytes_copied),
            "failed_commands": int(raw.failed_commands),
            "modeled_busy_ns": float(raw.modeled_busy_ns),
            "wall_busy_ns": float(raw.wall_busy_ns),
        }

    # -- user events and fault injection (for tests and tools) -------------------------------

    def create_user_event(self) -> MaiaEvent:
        """An event the host reaches with :meth:`signal_user_event` (like OpenCL's user
        events): ``stream_wait_event`` on it gates a stream deterministically."""
        out = _ffi.new("uint64_t *")
        self._check(_lib.maia_user_event_create(out), "user event creation", None)
        return MaiaEvent(int(out[0]), None, False)

    def signal_user_event(self, event: MaiaEvent) -> None:
        self._check(_lib.maia_user_event_signal(event.handle), "user event signal", None)

    def inject_kernel_fault(self, index: int, kernel: str | None) -> None:
        """The next launch of ``kernel`` on device ``index`` fails while executing (None
        disarms); it is reported by the stream's next synchronizing call."""
        name = _ffi.NULL if kernel is None else kernel.encode()
        self._check(_lib.maia_fault_fail_kernel(self._device(index), name), "fault", index)

    def inject_queue_delay(self, stream: MaiaStream, us: int) -> None:
        """Every command of ``stream`` waits ``us`` microseconds of host time before it
        runs (0: none): a slow queue."""
        if not 0 <= us < 2**32:
            raise ValueError(f"us must be 0..2**32-1 microseconds, got {us}")
        self._check(_lib.maia_fault_queue_delay(stream.handle, us), "fault", stream.device)

    def lose_device(self, index: int) -> None:
        """Device ``index`` is lost for the rest of the process, as after a hardware reset:
        queued work is dropped, every later use raises DeviceLostError, frees still work."""
        self._check(_lib.maia_fault_lose_device(self._device(index)), "fault", index)

    def inject_allocation_fault(self, index: int, nth: int) -> None:
        """The ``nth`` allocation from now on device ``index`` fails as out of memory."""
        if not 0 <= nth < 2**64:
            raise ValueError(f"nth must be a non-negative count, got {nth}")
        self._check(_lib.maia_fault_fail_allocation(self._device(index), nth), "fault", index)

    # -- timeline trace (libmaia's per-device ring of executed commands) ---------------------

    _TRACE_KINDS = ("kernel", "copy", "copy", "copy", "sync", "sync")

    @classmethod
    def _trace_kind(cls, kind: int) -> str:
        """``kernel``, ``copy`` or ``sync`` for libmaia's trace kind; ``other`` for a kind
        this binding does not know."""
        return cls._TRACE_KINDS[kind] if 0 <= kind < len(cls._TRACE_KINDS) else "other"

    def _devices(self, index: int | None) -> list[int]:
        return list(range(self._count)) if index is None else [self._device(index)]

    def set_trace_capacity(self, entries: int, index: int | None = None) -> None:
        """Size the trace ring of device ``index`` (every device when None) to ``entries``
        commands; 0 stops recording. Clears what was recorded. The initial size comes from
        ``HWABSTRACT_MAIA_TRACE_EVENTS`` (default 4096)."""
        if not 0 <= entries < 2**64:
            raise ValueError(f"entries must be a non-negative count, got {entries}")
        for i in self._devices(index):
            self._check(_lib.maia_trace_set_capacity(i, entries), "trace capacity", i)

    def clear_trace(self, index: int | None = None) -> None:
        """Forget the recorded commands of device ``index`` (every device when None)."""
        for i in self._devices(index):
            self._check(_lib.maia_trace_clear(i), "trace clear", i)

    def trace_info(self, index: int) -> dict[str, int]:
        """The trace ring of device ``index``: capacity, held, recorded and dropped entries."""
        raw = _ffi.new("maia_trace_info *")
        self._check(_lib.maia_trace_get_info(self._device(index), raw), "trace info", index)
        return {k: int(getattr(raw, k)) for k in ("capacity", "held", "recorded", "dropped")}

    def stream_queue_index(self, stream: MaiaStream) -> int:
        """The per-device queue number of a stream: its ``tid`` in an exported trace."""
        info = _ffi.new("maia_queue_info *")
        self._check(_lib.maia_queue_get_info(self._live(stream), info), "queue info", None)
        return int(info.index)

    def trace_entries(self, index: int | None = None) -> list[dict[str, Any]]:
        """The commands device ``index`` (every device when None) executed and still holds in
        its trace ring, oldest first per device, as dicts of libmaia's ``maia_trace_entry``
        fields (times in picoseconds modeled, nanoseconds wall). Entries appear when a command
        finishes: synchronize first to see everything submitted."""
        out: list[dict[str, Any]] = []
        for i in self._devices(index):
            held = self.trace_info(i)["held"]
            if not held:
                continue
            buf = _ffi.new("maia_trace_entry[]", held)
            count = _ffi.new("uint64_t *")
            dropped = _ffi.new("uint64_t *")
            self._check(_lib.maia_trace_read(i, buf, held, count, dropped), "trace read", i)
            for k in range(int(count[0])):
                e = buf[k]
                out.append(
                    {
                        "device": int(e.device),
                        "queue": int(e.queue),
                        "queue_index": int(e.queue_index),
                        "sequence": int(e.sequence),
                        "name": _ffi.string(e.name).decode(errors="replace"),
                        "kind": int(e.kind),
                        "status": "ok" if e.status == _OK else "failed",
                        "modeled_start_ps": int(e.modeled_start_ps),
                        "modeled_duration_ps": int(e.modeled_duration_ps),
                        "wall_start_ns": int(e.wall_start_ns),
                        "wall_duration_ns": int(e.wall_duration_ns),
                        "bytes": int(e.bytes),
                        "flops": float(e.flops),
                        "src_device": int(e.src_device),
                    }
                )
        return out

    # the contract's view of the same ring (Device.queue_timeline)

    def queue_timeline(self, index: int) -> list[TimelineEntry]:
        """The trace ring of device ``index`` on the modeled clock, as the contract's
        :class:`~hwabstract.backend.TimelineEntry` (``Device.queue_timeline()``)."""
        return [
            TimelineEntry(
                queue=e["queue_index"],
                name=e["name"],
                kind=self._trace_kind(e["kind"]),
                start_us=e["modeled_start_ps"] / 1e6,
                duration_us=e["modeled_duration_ps"] / 1e6,
                nbytes=e["bytes"],
                flops=e["flops"],
                failed=e["status"] != "ok",
            )
            for e in self.trace_entries(index)
        ]

    def clear_queue_timeline(self, index: int) -> None:
        self.clear_trace(index)

    def stream_queue_number(self, stream: MaiaStream) -> int:
        return self.stream_queue_index(stream)

    def export_trace(self, path: Any, *, clock: str = "modeled", index: int | None = None) -> int:
        """Write the recorded queue timelines as Chrome trace-event JSON (open it in
        https://ui.perfetto.dev or chrome://tracing) and return the number of commands written.

        One complete event (``"ph": "X"``) per executed command: ``pid`` = device, ``tid`` =
        queue number, ``name`` = the kernel or "copy h2d" / "copy d2h" / "copy d2d" / "wait" /
        "event", ``ts`` and ``dur`` in microseconds on ``clock``: ``"modeled"`` (each queue's
        Maia 200 timeline, starting at 0 when the queue was created) or ``"wall"`` (the host's
        monotonic clock, from the earliest command written). ``args`` carry the sequence number,
        bytes, flops, status and the other clock's duration. Device ``index`` only, or every
        device when None. Reach it as ``device._impl.export_trace(path)``; synchronize first.
        """
        if clock not in ("modeled", "wall"):
            raise ValueError(f"clock must be 'modeled' or 'wall', got {clock!r}")
        devices = self._devices(index)
        entries = self.trace_entries(index)
        wall0 = min((e["wall_start_ns"] for e in entries), default=0)
        events: list[dict[str, Any]] = []
        for i in devices:
            events.append(
                {
                    "ph": "M",
                    "name": "process_name",
                    "pid": i,
                    "tid": 0,
                    "args": {"name": f"maia:{i} (Maia 200, emulated)"},
                }
            )
            events.append(
                {
                    "ph": "M",
                    "name": "process_sort_index",
                    "pid": i,
                    "tid": 0,
                    "args": {"sort_index": i},
                }
            )
        queues = sorted({(e["device"], e["queue_index"]) for e in entries})
        for dev, q in queues:
            events.append(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": dev,
                    "tid": q,
                    "args": {"name": f"queue {q}"},
                }
            )
        for e in entries:
            modeled_us = e["modeled_duration_ps"] / 1e6
            wall_us = e["wall_duration_ns"] / 1e3
            if clock == "modeled":
                ts, dur = e["modeled_start_ps"] / 1e6, modeled_us
            else:
                ts, dur = (e["wall_start_ns"] - wall0) / 1e3, wall_us
            args: dict[str, Any] = {
                "sequence": e["sequence"],
                "status": e["status"],
                "bytes": e["bytes"],
                "flops": e["flops"],
                "modeled_us": modeled_us,
                "wall_us": wall_us,
            }
            if e["src_device"] != e["device"]:
                args["src_device"] = e["src_device"]
            events.append(
                {
                    "name": e["name"],
                    "cat": self._trace_kind(e["kind"]),
                    "ph": "X",
                    "ts": ts,
                    "dur": dur,
                    "pid": e["device"],
                    "tid": e["queue_index"],
                    "args": args,
                }
            )
        dropped = {f"maia:{i}": self.trace_info(i)["dropped"] for i in devices}
        doc = {
            "traceEvents": events,
            "displayTimeUnit": "ns",
            "otherData": {
                "clock": clock,
                "source": "libmaia (Maia 200 emulator)",
                "dropped": dropped,
            },
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        return len(entries)

    # -- data movement -----------------------------------------------------------------------

    @staticmethod
    def _fill_view(view: Any, op: Operand) -> None:
        ndim = len(op.shape)
        if ndim > MAX_DIMS:
            raise ShapeError(f"maia supports at most {MAX_DIMS} dimensions, got {ndim}")
        view.buffer = op.buffer.handle
        view.offset = op.offset * op.dtype.itemsize
        view.dtype = DTYPE_CODES[op.dtype.name]
        view.ndim = ndim
        if ndim:
            view.shape[0:ndim] = op.shape
            view.strides[0:ndim] = op.strides

    def _cached_view(self, array: Any, i: int, op: Operand) -> None:
        """Fill ``array[i]`` with the view of ``op``. A view seen a second time is cached on
        its buffer (a handful per buffer), and later launches copy the cached struct instead
        of filling it field by field; a fresh result, used once, is not worth caching."""
        self._buffer_view(array, i, op.buffer, op[1:], op)

    def _buffer_view(self, array: Any, i: int, buffer: Any, key: tuple[Any, ...],
                     op: Operand) -> None:  # fmt: skip
        """:meth:`_cached_view` of ``op``'s layout (``key``, its fields after the buffer)
        over ``buffer``, which may be another buffer than ``op``'s."""
        views = buffer.views
        view = views.get(key, _UNSEEN)
        if view is _UNSEEN or view is None:
            if op.buffer is not buffer:
                op = op._replace(buffer=buffer)
            if len(views) >= _VIEWS_PER_BUFFER:
                views.clear()
            if view is _UNSEEN:
                views[key] = None
                self._fill_view(array[i], op)
                return
            view = views[key] = self._view(op)
        array[i] = view[0]

    def _view(self, op: Operand) -> Any:
        view = _ffi.new("maia_buffer_view *")
        self._fill_view(view, op)
        return view

    @staticmethod
    def _host_pointer(array: np.ndarray) -> Any:
        if not array.flags.c_contiguous:
            raise ValueError("host arrays must be C-contiguous")
        return _ffi.cast("void *", array.ctypes.data)

    def copy_from_host(self, stream: MaiaStream, dst: Operand, src: np.ndarray) -> None:
        status = _lib.maia_copy_h2d(
            self._live(stream), self._view(dst), self._host_pointer(src), src.nbytes
        )
        self._check(status, "host-to-device copy", stream.device)

    def copy_to_host(self, stream: MaiaStream, dst: np.ndarray, src: Operand) -> None:
        handle = self._live(stream)
        self._unpin(stream)
        with stream.lock:  # the pin must name this copy's sequence number
            status = _lib.maia_copy_d2h(
                handle, self._host_pointer(dst), dst.nbytes, self._view(src)
            )
            if status == _OK:
                info = _ffi.new("maia_queue_info *")
                if _lib.maia_queue_get_info(handle, info) == _OK:
                    stream.pinned.append((int(info.submitted), dst))
                else:
                    stream.pinned.append((2**64, dst))  # kept until the next synchronize
        self._check(status, "device-to-host copy", stream.device)

    def copy(self, stream: MaiaStream, dst: Operand, src: Operand) -> None:
        status = _lib.maia_copy_d2d(self._live(stream), self._view(dst), self._view(src))
        self._check(status, "device-to-device copy", stream.device)

    def copy_peer(self, stream: MaiaStream, dst: Operand, src: Operand) -> None:
        status = _lib.maia_copy_d2d(self._live(stream), self._view(dst), self._view(src))
        self._check(status, f"peer copy from maia:{src.buffer.device}", stream.device)

    # -- kernels -----------------------------------------------------------------------------

    def launch(
        self,
        stream: MaiaStream,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> None:
        handle = self._live(stream)
        ins, outs = _launch_views(len(inputs), len(outputs))
        cached = self._cached_view
        for i, op in enumerate(inputs):
            cached(ins, i, op)
        for i, op in enumerate(outputs):
            cached(outs, i, op)
        # most launches have no attributes: libmaia reads NULL as all-zero attributes
        attrs = self._attrs(attributes) if attributes else _ffi.NULL
        name = _KERNEL_NAMES.get(kernel)
        if name is None:
            name = kernel.encode()
            if len(_KERNEL_NAMES) < 4096:  # kernel names are a small set; stay bounded
                _KERNEL_NAMES[kernel] = name
        status = _lib.maia_launch(handle, name, ins, len(inputs), outs, len(outputs), attrs)
        if status != _OK:
            self._check(status, f"launch of kernel {kernel!r}", stream.device, KernelError)

    def bind_launch(self, kernel: str, inputs: Sequence[Operand], outputs: Sequence[Operand],
                    attributes: Mapping[str, Any]) -> BoundLaunch | None:  # fmt: skip
        """:meth:`launch` with what the layouts and attributes decide done once -- the
        kernel's name, libmaia's attribute struct (which maia_launch copies), each operand's
        view key; per call, the buffers' views (cached per buffer, as launch caches them)
        and maia_launch."""
        n_in, n_out = len(inputs), len(outputs)
        if n_in > _MAX_OPERANDS or n_out > _MAX_OPERANDS:
            return None
        attrs = self._attrs(attributes) if attributes else _ffi.NULL
        name = kernel.encode()
        in_keys = [(op, op[1:]) for op in inputs]
        out_keys = [(op, op[1:]) for op in outputs]
        put = self._buffer_view
        this = self

        def bound(stream: MaiaStream, buffers: Sequence[Any], out_buffers: Sequence[Any]) -> None:
            handle = this._live(stream)
            ins, outs = _launch_views(n_in, n_out)
            for i, (buffer, (op, key)) in enumerate(zip(buffers, in_keys)):
                put(ins, i, buffer, key, op)
            for i, (buffer, (op, key)) in enumerate(zip(out_buffers, out_keys)):
                put(outs, i, buffer, key, op)
            status = _lib.maia_launch(handle, name, ins, n_in, outs, n_out, attrs)
            if status != _OK:
                this._check(status, f"launch of kernel {kernel!r}", stream.device, KernelError)

        return bound

    @staticmethod
    def _attrs(attributes: Mapping[str, Any]) -> Any:
        attrs = _ffi.new("maia_attrs *")
        for key, value in attributes.items():
            if key == "axes":
                mask = 0
                for ax in value:
                    mask |= 1 << ax
                attrs.axes_mask = mask
            elif key == "axis" and isinstance(value, int):
                attrs.axis = value
            elif key in ("keepdims", "has_min", "has_max", "has_weight", "has_bias"):
                setattr(attrs, key, 1 if value else 0)
            elif key == "eps":
                attrs.eps = float(value)
            elif key == "correction":
                attrs.correction = float(value)
            elif key == "approximate":
                attrs.approximate = 1 if value == "tanh" else 0
            elif key == "dtype" and value is not None:
                code = DTYPE_CODES.get(str(getattr(value, "name", "")))
                if code is None:
                    raise UnsupportedError(
                        f"dtype:{value}", f"maia has no dtype {value}; pick one of its dtypes"
                    )
                attrs.dtype = code
            elif key in ("format", "a_format"):
                attrs.mx_format = _mx_format_code(value)
            elif key == "b_format":
                attrs.mx_b_format = _mx_format_code(value)
            elif key in ("n", "k"):
                attrs.mx_n = _mx_length(key, value)
            elif key in ("descending", "stable", "include_initial"):
                setattr(attrs, key, 1 if value else 0)
            elif key == "side":
                attrs.side = 1 if value == "right" else 0
            elif key == "count":
                attrs.count = int(value)
            elif key in ("upper", "full_matrices"):
                setattr(attrs, key, 1 if value else 0)
            elif key == "mode":
                attrs.qr_complete = 1 if value == "complete" else 0
        return attrs
