"""Streams and events: in-order command queues and the markers that order them.

Every device has a default stream; ``with stream:`` makes another one current for the
calling thread (per device) until the block ends. Work on one stream runs in order; work on
different streams may overlap unless ordered with :meth:`Stream.wait`.

Like CUDA, hwabstract does not track hazards between streams: if stream B reads what stream
A writes, record an event on A and make B wait for it. Two conveniences go beyond CUDA:
``Tensor.numpy()`` and DLPack export wait for the stream that last wrote the tensor.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backend import Feature
from .errors import StreamError, UnsupportedError, WaitTimeoutError

if TYPE_CHECKING:
    from collections import OrderedDict

    from .device import Device

__all__ = ["Event", "Stream", "current_stream"]

_tls = threading.local()
#: one entry per ``with stream:`` block open in any thread (list.append and list.pop are
#: atomic): while it is empty, no thread has a current stream other than its devices'
#: default streams, and the compiled launch skips the thread-local lookup
_entered: list[None] = []

#: the first and the longest sleep between two polls of a timed wait, in seconds
_POLL_FIRST, _POLL_MAX = 20e-6, 2e-3


def check_timeout(timeout: float | None) -> float | None:
    """``timeout`` validated: None (wait for ever) or a finite number of seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise StreamError(
            f"timeout must be a number of seconds or None, got {type(timeout).__name__}"
        )
    if not math.isfinite(timeout) or timeout < 0:
        raise StreamError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
    return float(timeout)


def timed_wait(
    reached: Callable[[], bool], block: Callable[[], None], timeout: float | None, what: str
) -> None:
    """Wait for ``what``: ``block()`` at once without a timeout; with one, poll
    ``reached()`` (sleeping 20 µs, doubling up to 2 ms) until it is true, then ``block()``
    -- which returns at once and reports a failed command exactly as an untimed wait
    would -- or raise :class:`WaitTimeoutError` at the deadline. Needs nothing from the
    backend beyond its query, so every backend's waits accept a timeout."""
    timeout = check_timeout(timeout)
    if timeout is None:
        block()
        return
    deadline = time.monotonic() + timeout
    pause = _POLL_FIRST
    while not reached():
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeoutError(
                f"{what} did not finish within {round(timeout, 3):g} s. Nothing is lost: the "
                "work is still queued; wait again (with a longer timeout or none), or look for "
                "a stream waiting on an event that is never reached"
            )
        time.sleep(min(pause, left))
        pause = min(pause * 2, _POLL_MAX)
    block()


def _stacks() -> dict[Device, list[Stream]]:
    stacks = getattr(_tls, "stacks", None)
    if stacks is None:
        stacks = _tls.stacks = {}
    return stacks


def current_stream(device: Device) -> Stream:
    """The stream work on ``device`` goes to in this thread: the innermost ``with stream:``
    for that device, else its default stream."""
    stack = _stacks().get(device)
    if stack:
        return stack[-1]
    return device.default_stream


class Stream:
    """An in-order queue of commands on one device. Create with ``device.create_stream()``."""

    __slots__ = (
        "__weakref__",
        "_finalizer",
        "_finished",
        "_handle",
        "_last_scalar",
        "_scalars",
        "_writes",
        "device",
        "is_default",
    )

    def __init__(self, device: Device, handle: Any, *, is_default: bool = False) -> None:
        #: writes queued on this stream so far, and how many of them a host wait has seen
        #: finish: a read on another stream needs no event for a write the host waited for
        self._writes = 0
        self._finished = 0
        #: this stream's cache of 0-d tensors for Python scalars (dispatch.scalar_tensor)
        self._scalars: OrderedDict[tuple[Any, ...], Any] | None = None
        #: the last of them asked for: (dtype, the value object, the tensor)
        self._last_scalar: tuple[Any, Any, Any] | None = None
        self.device = device
        self._handle = handle
        self.is_default = is_default
        self._finalizer = weakref.finalize(self, device._impl.destroy_stream, handle)

    @property
    def handle(self) -> Any:
        """The backend's own stream handle (for interoperating with the vendor runtime)."""
        return self._handle

    @property
    def queue_number(self) -> int | None:
        """The number this stream's commands carry in :meth:`Device.queue_timeline
        <hwabstract.Device.queue_timeline>`, or None where the device keeps no timeline."""
        return self.device._impl.stream_queue_number(self._handle)

    def record(self, *, timing: bool | None = None) -> Event:
        """Queue an event on this stream and return it. ``timing`` defaults to whether the
        device declares event timing."""
        caps = self.device.capabilities
        can_time = caps.has_feature(Feature.EVENT_TIMING)
        if timing is None:
            timing = can_time
        elif timing and not can_time:
            raise UnsupportedError(
                f"feature:{Feature.EVENT_TIMING.value}",
                f"{self.device.name} does not declare event timing; record(timing=False)",
            )
        handle = self.device._impl.record_event(self._handle, timing)
        return Event(self, handle, timing)

    def wait(self, event: Event) -> None:
        """Make work queued on this stream from now on wait for ``event``. Returns at once."""
        if not isinstance(event, Event):
            raise StreamError(
                f"Stream.wait() takes an Event, got {type(event).__name__}; record one with "
                "other_stream.record()"
            )
        if event.device.backend != self.device.backend:
            raise StreamError(
                f"cannot make a {self.device.name} stream wait on an event from "
                f"{event.device.name}: events only order streams of the same backend. "
                "Synchronize the event on the host instead (event.synchronize())."
            )
        self.device._impl.stream_wait_event(self._handle, event._handle)

    def synchronize(self, timeout: float | None = None) -> None:
        """Block until all work queued on this stream has finished; with ``timeout``
        (seconds), raise :class:`~hwabstract.errors.WaitTimeoutError` if it has not by
        then (the work stays queued)."""
        impl, handle = self.device._impl, self._handle
        writes = self._writes
        if timeout is None:  # (timed_wait's first branch, without building its arguments)
            impl.stream_synchronize(handle)
        else:
            timed_wait(
                lambda: bool(impl.stream_query(handle)),
                lambda: impl.stream_synchronize(handle),
                timeout,
                f"the work queued on {self!r}",
            )
        if writes > self._finished:
            self._finished = writes

    def query(self) -> bool:
        """True if all work queued on this stream has finished."""
        return bool(self.device._impl.stream_query(self._handle))

    def __enter__(self) -> Stream:
        _entered.append(None)  # (first: the count may be too high, never too low)
        _stacks().setdefault(self.device, []).append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        stacks = _stacks()
        stack = stacks.get(self.device)
        if not stack or stack[-1] is not self:
            innermost = f"{stack[-1]!r} is" if stack else "no stream is"
            raise StreamError(
                f"stream contexts were exited out of order: leaving {self!r}, but {innermost} "
                f"the innermost current stream of {self.device.name} in this thread. Nest "
                "`with stream:` blocks (or call __enter__/__exit__ in reverse order)."
            )
        stack.pop()
        _entered.pop()
        if not stack:
            del stacks[self.device]  # the thread-local table must not keep devices alive

    def __repr__(self) -> str:
        kind = "default stream" if self.is_default else "stream"
        return f"<hwabstract {kind} on {self.device.name} at {id(self):#x}>"


#: :meth:`Stream.synchronize` as written above. Where ``hwabstract._fastpath`` runs,
#: dispatch replaces the method with its compiled twin, which takes a call without arguments
#: itself and hands any other (a ``timeout``) to this function.
synchronize_py = Stream.synchronize


class Event:
    """A marker in a stream. Reached once everything queued before it has finished."""

    __slots__ = ("_handle", "stream", "timing")

    def __init__(self, stream: Stream, handle: Any, timing: bool) -> None:
        self.stream = stream
        self._handle = handle
        self.timing = timing

    @property
    def device(self) -> Device:
        return self.stream.device

    def query(self) -> bool:
        """True if the event has been reached."""
        return bool(self.device._impl.event_query(self._handle))

    def synchronize(self, timeout: float | None = None) -> None:
        """Block until the event has been reached; with ``timeout`` (seconds), raise
        :class:`~hwabstract.errors.WaitTimeoutError` if it has not been by then."""
        impl, handle = self.device._impl, self._handle
        timed_wait(
            lambda: bool(impl.event_query(handle)),
            lambda: impl.event_synchronize(handle),
            timeout,
            f"the work before an event of {self.stream!r}",
        )

    def elapsed_time(self, end: Event) -> float:
        """Milliseconds of device time from this event to ``end`` (both are waited for).

        Needs a device that declares event timing and both events recorded with timing.
        """
        self._check_pair(end, "elapsed_time", Feature.EVENT_TIMING, "event timing")
        return float(self.device._impl.event_elapsed_ms(self._handle, end._handle))

    def modeled_elapsed_time(self, end: Event) -> float:
        """Milliseconds the *modeled* hardware would take from this event to ``end``: what an
        emulator's performance model says the real chip would need (the Maia emulator
        reports Maia 200 time), beside :meth:`elapsed_time`'s host time. Needs a device that
        declares :attr:`Feature.MODELED_TIME`; both events are waited for."""
        self._check_pair(end, "modeled_elapsed_time", Feature.MODELED_TIME, "modeled time")
        return float(self.device._impl.event_modeled_elapsed_ms(self._handle, end._handle))

    def _check_pair(self, end: Event, what: str, feature: Feature, label: str) -> None:
        if not isinstance(end, Event):
            raise StreamError(
                f"{what}() takes an Event, got {type(end).__name__}; record one with "
                "stream.record()"
            )
        if not self.device.capabilities.has_feature(feature):
            raise UnsupportedError(
                f"feature:{feature.value}", f"{self.device.name} does not declare {label}"
            )
        if end.device is not self.device:
            raise StreamError(
                f"{what}() needs two events on one device; got {self.device.name} and "
                f"{end.device.name}"
            )
        if not (self.timing and end.timing):
            raise StreamError(
                f"{what}() needs both events recorded with timing=True (the default on "
                "devices that declare event timing)"
            )
        self.synchronize()
        end.synchronize()

    def __repr__(self) -> str:
        return f"<hwabstract event on {self.device.name} at {id(self):#x}>"
