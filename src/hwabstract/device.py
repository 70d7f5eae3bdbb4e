"""Devices: one accelerator (or stand-in) driven by a backend."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from .backend import Backend, Capabilities, DeviceInfo, Feature, MemoryStats, TimelineEntry
from .stream import Stream

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["Device"]


class Device:
    """One device of a backend, named ``"backend:index"``.

    Obtain devices from :func:`hwabstract.device` or :func:`hwabstract.devices`; each exists
    once per process, so ``is`` and ``==`` agree.
    """

    __slots__ = (
        "__weakref__",
        "_caps",
        "_default_stream",
        "_impl",
        "_info",
        "_lock",
        "_memos",
        "_plans",
        "_registry",
        "_streams",
        "backend",
        "index",
        "name",
    )

    _registry: Registry
    _impl: Backend
    _info: DeviceInfo | None
    _caps: Capabilities | None
    _default_stream: Stream | None
    _streams: weakref.WeakSet[Stream]
    _lock: threading.Lock
    #: dispatch's validated plans for this device, by kernel signature (hwabstract.dispatch):
    #: kept here so that they, and what they refer to, go when the device goes
    _plans: dict[tuple[Any, ...], Any]
    #: the compiled kernel functions' memos of their last call's plan on this device
    #: (hwabstract._fastpath.KernelFunction), likewise kept here
    _memos: dict[Any, tuple[Any, ...]]
    backend: str  #: the backend's name
    index: int  #: the device's index within its backend
    name: str  #: ``"backend:index"``

    def __init__(self) -> None:
        raise TypeError("use hwabstract.device(...) to get a Device")

    @classmethod
    def _create(cls, registry: Registry, backend_name: str, impl: Backend, index: int) -> Device:
        self = object.__new__(cls)
        self._registry = registry
        self.backend = backend_name
        self._impl = impl
        self.index = index
        self.name = f"{backend_name}:{index}"
        self._info = None
        self._caps = None
        self._default_stream = None
        self._streams = weakref.WeakSet()
        self._lock = threading.Lock()
        self._plans = {}
        self._memos = {}
        return self

    @property
    def info(self) -> DeviceInfo:
        """What the device is (vendor, model, memory, stand-in flag, ...)."""
        if self._info is None:
            self._info = self._impl.device_info(self.index)
        return self._info

    @property
    def capabilities(self) -> Capabilities:
        """The device's capability manifest."""
        if self._caps is None:
            self._caps = self._impl.capabilities(self.index)
        return self._caps

    @property
    def default_stream(self) -> Stream:
        """The stream work goes to when no other stream is current."""
        stream = self._default_stream
        if stream is None:
            with self._lock:
                if self._default_stream is None:
                    self._default_stream = Stream(
                        self, self._impl.create_stream(self.index), is_default=True
                    )
                    self._streams.add(self._default_stream)
                stream = self._default_stream
        return stream

    def create_stream(self) -> Stream:
        """A new stream on this device."""
        stream = Stream(self, self._impl.create_stream(self.index))
        with self._lock:
            self._streams.add(stream)
        return stream

    def current_stream(self) -> Stream:
        """The stream current in this thread for this device."""
        from .stream import current_stream

        return current_stream(self)

    def memory_stats(self) -> MemoryStats:
        """A snapshot of this device's memory accounting."""
        return self._impl.memory_stats(self.index)

    def synchronize(self, timeout: float | None = None) -> None:
        """Block until the work queued on every stream of this device has finished; with
        ``timeout`` (seconds, for all the streams together), raise
        :class:`~hwabstract.errors.WaitTimeoutError` if it has not by then."""
        import time

        from .stream import check_timeout

        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            streams = list(self._streams)
        first_error: BaseException | None = None
        for stream in streams:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                stream.synchronize(timeout=left)
            except Exception as exc:  # keep waiting for the other streams, then report
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error

    def queue_timeline(self) -> list[TimelineEntry] | None:
        """What this device's queues executed on the clock of its performance model -- one
        :class:`~hwabstract.backend.TimelineEntry` per command, since the last
        :meth:`clear_queue_timeline` -- or None where the device models no time (only
        emulators do; see ``docs/backends/maia.md``). Waits for the device first, so every
        submitted command is in it. A modeled timeline, not a measurement of this host."""
        if not self.capabilities.has_feature(Feature.MODELED_TIME):
            return None  # (the contract: a backend with a timeline declares modeled time)
        self.synchronize()
        entries = self._impl.queue_timeline(self.index)
        return None if entries is None else list(entries)

    def clear_queue_timeline(self) -> None:
        """Start :meth:`queue_timeline` afresh (a no-op where the device models no time)."""
        self._impl.clear_queue_timeline(self.index)

    def __repr__(self) -> str:
        return f"<hwabstract.Device {self.name} ({self.info.name})>"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple[Any, ...]:
        from . import device

        return (device, (self.name,))
