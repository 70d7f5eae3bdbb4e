"""The one error hierarchy of hwabstract.

Every error the SDK raises derives from :class:`HwAbstractError`. Where a Python built-in
exception already names the category (``TypeError`` for a wrong dtype, ``ValueError`` for a
wrong shape, ``MemoryError`` for exhausted memory, ``NotImplementedError`` for a missing
capability), our class derives from it too, so generic ``except`` clauses keep working.

Messages say what was wrong *and* what to do about it. Errors raised by a vendor runtime are
mapped onto these classes by the backend, with the vendor's own message kept in
:attr:`HwAbstractError.vendor_message`.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "DLPackError",
    "DTypeError",
    "DeviceError",
    "DeviceLostError",
    "HwAbstractError",
    "InvalidIndexError",
    "KernelError",
    "OutOfMemoryError",
    "PluginError",
    "ShapeError",
    "StreamError",
    "UnsupportedError",
    "WaitTimeoutError",
]


class HwAbstractError(Exception):
    """Base class of every error raised by hwabstract.

    ``vendor_message`` keeps the text of the vendor error this one was mapped from, if any.
    """

    def __init__(self, message: str, *, vendor_message: str | None = None) -> None:
        super().__init__(message)
        self.vendor_message = vendor_message

    def __str__(self) -> str:
        text = super().__str__()
        if self.vendor_message:
            text += f" [vendor: {self.vendor_message}]"
        return text


class BackendUnavailableError(HwAbstractError):
    """A backend is installed but cannot be used here (no driver, no device, disabled, ...).

    ``backend`` names it and ``reason`` says why.
    """

    def __init__(self, backend: str, reason: str, *, vendor_message: str | None = None) -> None:
        super().__init__(
            f"backend {backend!r} is unavailable: {reason}. "
            "Run `hwabstract doctor` to see what every backend needs.",
            vendor_message=vendor_message,
        )
        self.backend = backend
        self.reason = reason


class PluginError(HwAbstractError):
    """A plugin failed to import, register or probe, or speaks another contract API level."""


class DeviceError(HwAbstractError):
    """An unknown device was named, or tensors on different devices were combined."""


class DeviceLostError(DeviceError):
    """The device is gone (a hardware reset, a removed card, a lost driver context): the
    data it held and the work queued on it are lost, and every later use of it raises this.
    Freeing its tensors still works. Use another device; a new process may find it again."""


class OutOfMemoryError(HwAbstractError, MemoryError):
    """An allocation did not fit in the device's memory.

    ``requested``, ``free`` and ``capacity`` are in bytes (``free`` and ``capacity`` may be
    ``None`` where the backend cannot tell).
    """

    def __init__(
        self,
        device: str,
        requested: int,
        free: int | None,
        capacity: int | None,
        *,
        vendor_message: str | None = None,
    ) -> None:
        def fmt(n: int | None) -> str:
            return "unknown" if n is None else f"{n:,} B"

        super().__init__(
            f"out of memory on {device}: requested {fmt(requested)}, free {fmt(free)}, "
            f"capacity {fmt(capacity)}. Free tensors you no longer need (del them), use "
            "smaller batches, or pick a device with more memory.",
            vendor_message=vendor_message,
        )
        self.device = device
        self.requested = requested
        self.free = free
        self.capacity = capacity


class UnsupportedError(HwAbstractError, NotImplementedError):
    """The device does not declare the capability an operation needs.

    ``capability`` names it, e.g. ``"kernel:matmul[float64]"``, ``"dtype:float64"`` or
    ``"feature:event_timing"``.
    """

    def __init__(self, capability: str, message: str) -> None:
        super().__init__(message)
        self.capability = capability


class KernelError(HwAbstractError):
    """A kernel is unknown, was called wrongly, or failed while executing on the device."""


class StreamError(HwAbstractError):
    """A stream or event was misused: wrong device, destroyed, or a queued command failed."""


class WaitTimeoutError(StreamError, TimeoutError):
    """A wait given a ``timeout`` (``Stream.synchronize``, ``Event.synchronize``,
    ``Device.synchronize``) ran out before the work finished. Nothing is lost: the work is
    still queued and a later wait can succeed."""


class DTypeError(HwAbstractError, TypeError):
    """A dtype is unknown, not allowed for an operation, or two dtypes cannot be combined."""


class ShapeError(HwAbstractError, ValueError):
    """Shapes do not broadcast or match, an axis is out of range, or an index is invalid."""


class InvalidIndexError(ShapeError, IndexError):
    """An index is out of bounds or of a kind hwabstract does not support."""


class DLPackError(UnsupportedError, BufferError):
    """A DLPack exchange cannot be done as asked (device, stream, copy or dtype).

    Derives from ``BufferError``, which the DLPack protocol prescribes for producers.
    """

    def __init__(self, message: str) -> None:
        super().__init__("feature:dlpack", message)
