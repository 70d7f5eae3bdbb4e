"""THE CONTRACT a backend plugin implements.

A backend is a subclass of :class:`Backend`, returned from the plugin's
``hwabstract_backends`` hook (see :mod:`hwabstract.hookspecs`). It is a *driver-level*
interface: buffers, streams, events, copies and kernel launches by name. Everything a user
sees -- tensors, dtype promotion, broadcasting, output allocation, error messages -- lives
once in the core, which hands the backend **normalized** requests:

* every tensor operand is an :class:`Operand`: a buffer plus dtype, shape, element strides
  (possibly zero, for broadcast dimensions, or negative) and an element offset;
* elementwise inputs are already cast to the kernel's compute dtype and broadcast to the
  output shape;
* attributes are validated and normalized (e.g. reduction axes are a sorted tuple of
  non-negative ints);
* the device has *declared* the kernel for the dtype in its :class:`Capabilities`, so a
  backend is never asked for something it did not claim.

Every queued operation is asynchronous with respect to the host and ordered within its
stream. A failure while executing a queued command is reported by the next synchronizing
call on that stream (``stream_synchronize``, ``event_synchronize``, ``stream_query``) as a
:class:`~hwabstract.errors.KernelError` naming the command.

The contract has an API level, :data:`API_LEVEL`; a backend states the level it implements
in :attr:`Backend.api_level`. A backend whose level the core does not speak is listed as
failed at discovery and never called.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import attrs
import numpy as np

from .dtypes import DType
from .errors import UnsupportedError

__all__ = [
    "API_LEVEL",
    "SUPPORTED_API_LEVELS",
    "Backend",
    "BoundLaunch",
    "Capabilities",
    "DTypeSupport",
    "DeviceInfo",
    "Feature",
    "Limits",
    "MemoryStats",
    "Operand",
    "TimelineEntry",
]

#: The contract level this core implements.
API_LEVEL = 1
#: Levels a plugin may state and still be loaded.
SUPPORTED_API_LEVELS = frozenset({1})


class DTypeSupport(enum.Enum):
    """How a device supports a dtype."""

    NATIVE = "native"  #: the hardware computes in it
    EMULATED = "emulated"  #: offered in software (e.g. float64 on a TPU), slower


class Feature(str, enum.Enum):
    """Optional device features a manifest can declare."""

    CONCURRENT_STREAMS = "concurrent_streams"  #: streams may execute concurrently
    EVENT_TIMING = "event_timing"  #: Event.elapsed_time works
    PEER_COPY = "peer_copy"  #: direct copies between devices of this backend
    MX_FORMATS = "mx_formats"  #: OCP microscaling block formats
    CUSTOM_KERNELS = "custom_kernels"  #: user-supplied kernels can be compiled and launched
    DLPACK = "dlpack"  #: tensors can be exchanged through DLPack without a host round trip
    #: events also report the time the *modeled* hardware would take (emulators, simulators)
    MODELED_TIME = "modeled_time"
    #: floats keep subnormal values (IEEE 754 gradual underflow). Without it, the device may
    #: flush subnormal inputs and results to zero of the same sign, as many accelerators do
    #: (the conformance suite then accepts, per element, the flushed or the exact result)
    SUBNORMALS = "subnormals"


@attrs.frozen
class Limits:
    """Numeric limits of a device."""

    memory_capacity: int  #: bytes this device can allocate in total
    max_allocation: int  #: bytes one allocation may have
    max_dims: int = 32  #: the most dimensions a tensor may have


@attrs.frozen
class DeviceInfo:
    """What a device is. Frozen; safe to cache and to put in reports.

    ``standin`` is true when the device executes on something other than the hardware it
    models (an emulator, or JAX's CPU client standing in for a TPU); ``standin_for`` then
    names the modeled hardware and ``name`` must say so too.
    """

    name: str
    vendor: str
    model: str
    memory_capacity: int
    standin: bool = False
    standin_for: str | None = None
    modeled_memory_capacity: int | None = None
    driver_version: str | None = None
    description: str = ""
    extra: Mapping[str, str] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class MemoryStats:
    """A snapshot of a device's memory accounting, in bytes."""

    in_use: int
    peak: int
    capacity: int
    free: int
    allocations: int  #: live allocations
    largest_free_block: int | None = None
    #: bytes the backend's allocator keeps cached for reuse (not in use, counted in ``free``)
    cached: int = 0


@attrs.frozen
class Capabilities:
    """The declarative manifest of what a device can do.

    ``kernels`` maps a kernel name to the dtypes it is implemented for. The dtype a kernel is
    keyed by is its *compute dtype*: the promoted dtype of its inputs (for ``astype``, the
    source dtype). Dispatch refuses anything not declared here with
    :class:`~hwabstract.errors.UnsupportedError` before the backend is called.
    """

    dtypes: Mapping[DType, DTypeSupport] = attrs.field(hash=False)
    kernels: Mapping[str, frozenset[DType]] = attrs.field(hash=False)
    features: frozenset[Feature]
    limits: Limits
    #: OCP MX formats (``hwabstract.mx`` names, e.g. ``"mxfp8_e4m3"``) and how the device
    #: supports them: NATIVE -- the backend runs the MX kernels (``mx_quantize``,
    #: ``mx_dequantize``, ``mx_matmul``; see docs/plugins.md) itself; EMULATED -- the core
    #: composes them from the device's standard kernels. Absent: not supported.
    mx_formats: Mapping[str, DTypeSupport] = attrs.field(factory=dict, hash=False)

    def has_feature(self, feature: Feature | str) -> bool:
        return Feature(feature) in self.features

    def supports_dtype(self, dt: DType) -> bool:
        return dt in self.dtypes

    def supports_kernel(self, name: str, dt: DType) -> bool:
        return dt in self.kernels.get(name, ())


@attrs.frozen
class TimelineEntry:
    """One command a device's queue executed, on the clock of the backend's performance
    model (see :meth:`Backend.queue_timeline`). Not a measurement: what the modeled hardware
    would have taken."""

    queue: int  #: the backend's number of the queue (``Stream.queue_number``)
    name: str  #: the kernel's name, or what the command was ("copy h2d", "wait", ...)
    kind: str  #: ``"kernel"``, ``"copy"``, ``"sync"`` (waits, events) or ``"other"``
    start_us: float  #: modeled start, microseconds on the queue's modeled clock
    duration_us: float  #: modeled duration, microseconds
    nbytes: int = 0  #: bytes the command moved
    flops: float = 0.0  #: floating-point operations it performed
    failed: bool = False  #: the command failed (its error went to the stream)

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("kernel", "copy", "sync", "other"):
            raise ValueError(
                f"TimelineEntry.kind must be kernel, copy, sync or other, got {self.kind!r}"
            )


class Operand(NamedTuple):
    """A tensor as a backend sees it: a view into one of its buffers.

    The element at index ``(i0, i1, ...)`` lives at element ``offset + sum(ik * strides[k])``
    of ``buffer``, where elements have ``dtype.itemsize`` bytes. Strides may be zero
    (broadcast) or negative (reversed views). Immutable; ``op._replace(...)`` derives one.
    (A named tuple rather than an attrs class: one is built per operand per launch, and
    tuple construction is several times cheaper.)
    """

    buffer: Any
    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def is_contiguous(self) -> bool:
        """True for C-contiguous layout (which also covers size-0 and size-1 tensors)."""
        expected = 1
        for dim, stride in zip(reversed(self.shape), reversed(self.strides)):
            if dim == 0:
                return True
            if dim != 1 and stride != expected:
                return False
            expected *= dim
        return True


#: What :meth:`Backend.bind_launch` returns: called as ``bound(stream, input_buffers,
#: output_buffers)``.
BoundLaunch = Callable[[Any, Sequence[Any], Sequence[Any]], None]


class Backend(abc.ABC):
    """Base class of every backend. One instance drives all devices of the backend.

    Handles (buffers, streams, events) are opaque objects of the backend's choosing; the core
    only passes them back. Device-indexed methods take ``index`` in ``range(device_count())``.

    Class attributes:

    * ``name`` -- the backend's name, used in device specs (``"maia:0"``).
    * ``api_level`` -- the contract level implemented (see :data:`API_LEVEL`).
    * ``priority`` -- higher wins when the user asks for the default device.
    * ``environment`` -- the environment variables the backend reads, each with what it
      does; ``hwabstract doctor`` lists them with their current values.
    * ``conformance_expectations`` -- the backend's known conformance failures: a TOML file
      (a path relative to the module defining the class) the conformance suite reads; see
      ``docs/conformance.md``. None: no known failures.
    """

    name: ClassVar[str]
    api_level: ClassVar[int] = API_LEVEL
    priority: ClassVar[int] = 0
    environment: ClassVar[Mapping[str, str]] = {}
    conformance_expectations: ClassVar[str | None] = None

    # -- discovery -------------------------------------------------------------------------

    def probe(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Check the backend can run here; raise
        :class:`~hwabstract.errors.BackendUnavailableError` with the reason if not.

        Called once, before any other method. Must not crash the process; should be quick.
        Heavy vendor imports belong here or later, never at plugin import time.
        """

    @abc.abstractmethod
    def device_count(self) -> int:
        """How many devices this backend drives (after a successful probe)."""

    @abc.abstractmethod
    def device_info(self, index: int) -> DeviceInfo:
        """The :class:`DeviceInfo` of device ``index``."""

    @abc.abstractmethod
    def capabilities(self, index: int) -> Capabilities:
        """The :class:`Capabilities` manifest of device ``index``."""

    # -- memory ----------------------------------------------------------------------------

    @abc.abstractmethod
    def allocate(self, index: int, nbytes: int) -> Any:
        """Allocate ``nbytes`` (may be 0) on device ``index`` and return a buffer handle.

        Raise :class:`~hwabstract.errors.OutOfMemoryError` with the figures when it does not
        fit.
        """

    @abc.abstractmethod
    def free(self, buffer: Any) -> None:
        """Release ``buffer``. The core calls this once, when no tensor refers to it.

        Commands already queued that use the buffer must still see valid memory: release is
        ordered after them (like ``cudaFreeAsync``), or deferred by holding a reference.
        """

    @abc.abstractmethod
    def memory_stats(self, index: int) -> MemoryStats:
        """Current :class:`MemoryStats` of device ``index``."""

    # -- streams and events ----------------------------------------------------------------

    @abc.abstractmethod
    def create_stream(self, index: int) -> Any:
        """Create a stream (an in-order queue of commands) on device ``index``."""

    def destroy_stream(self, stream: Any) -> None:  # noqa: B027 - optional hook
        """Release a stream after the work queued on it has finished. Optional."""

    @abc.abstractmethod
    def stream_synchronize(self, stream: Any) -> None:
        """Block until everything queued on ``stream`` has finished; raise
        :class:`~hwabstract.errors.KernelError` if a queued command failed."""

    @abc.abstractmethod
    def stream_query(self, stream: Any) -> bool:
        """True if everything queued on ``stream`` has finished (raises like synchronize)."""

    @abc.abstractmethod
    def record_event(self, stream: Any, timing: bool) -> Any:
        """Queue an event on ``stream`` and return its handle. With ``timing`` the event
        captures the device time at which it is reached."""

    @abc.abstractmethod
    def stream_wait_event(self, stream: Any, event: Any) -> None:
        """Make later work on ``stream`` wait until ``event`` is reached. Must not block the
        host. ``event`` may come from another stream (or another device of this backend)."""

    @abc.abstractmethod
    def event_query(self, event: Any) -> bool:
        """True if the event has been reached."""

    @abc.abstractmethod
    def event_synchronize(self, event: Any) -> None:
        """Block until the event has been reached; raise like ``stream_synchronize``."""

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        """Milliseconds between two reached timing events. Only called when the device
        declares :attr:`Feature.EVENT_TIMING`."""
        raise UnsupportedError(
            f"feature:{Feature.EVENT_TIMING.value}",
            f"backend {self.name!r} does not implement event timing",
        )

    def event_modeled_elapsed_ms(self, start: Any, end: Any) -> float:
        """Milliseconds the modeled hardware would take between two reached timing events
        (an emulator's performance model, not the host's time). Only called when the device
        declares :attr:`Feature.MODELED_TIME`."""
        raise UnsupportedError(
            f"feature:{Feature.MODELED_TIME.value}",
            f"backend {self.name!r} does not model hardware time",
        )

    # -- data movement ---------------------------------------------------------------------

    @abc.abstractmethod
    def copy_from_host(self, stream: Any, dst: Operand, src: np.ndarray) -> None:
        """Copy the C-contiguous host array ``src`` (same shape and dtype) into ``dst``.

        Ordered on ``stream``. The host array may be changed by the caller as soon as this
        returns, so the backend must have read it (or staged a copy) by then -- the
        semantics of ``cudaMemcpyAsync`` from pageable memory.
        """

    @abc.abstractmethod
    def copy_to_host(self, stream: Any, dst: np.ndarray, src: Operand) -> None:
        """Queue a copy of ``src`` into the C-contiguous host array ``dst`` on ``stream``.

        ``dst`` is valid once the stream is synchronized.
        """

    @abc.abstractmethod
    def copy(self, stream: Any, dst: Operand, src: Operand) -> None:
        """Queue a device-to-device copy on one device: same dtype and shape, any strides
        (``src`` may have zero strides, which broadcasts it)."""

    def copy_peer(self, stream: Any, dst: Operand, src: Operand) -> None:
        """Queue a copy from a buffer on another device of this backend into ``dst`` (whose
        device owns ``stream``). Only called when both devices declare
        :attr:`Feature.PEER_COPY`; otherwise the core stages through the host."""
        raise UnsupportedError(
            f"feature:{Feature.PEER_COPY.value}",
            f"backend {self.name!r} does not implement peer copies",
        )

    # -- kernels ---------------------------------------------------------------------------

    @abc.abstractmethod
    def launch(
        self,
        stream: Any,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> None:
        """Queue kernel ``kernel`` (a name from :mod:`hwabstract.kernels`) on ``stream``.

        Operands are normalized as the module docstring describes; outputs are allocated and
        never alias inputs unless the kernel spec says so. Must return without waiting for
        the kernel to run.
        """

    def bind_launch(
        self,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> BoundLaunch | None:
        """Optional: :meth:`launch` of ``kernel`` specialized to these operands' layouts, or
        None (the default), and the core calls :meth:`launch` every time.

        The core asks once per call signature it caches, after a successful :meth:`launch`
        with these very operands. From then on, for a launch whose operands have the same
        dtypes, shapes, strides and offsets, in the same order, and the same attributes, it
        calls ``bound(stream, input_buffers, output_buffers)``: only the buffers differ, and
        each output buffer is newly allocated, of the size the bound output had. The bound
        function must do exactly what :meth:`launch` would with those operands, errors
        included -- it skips re-deriving what the layouts determine, nothing else. What it
        specialized on that is a property of a buffer rather than of the layout (an input
        buffer's size, the dtype its contents were written as) it checks on every call, and
        it takes :meth:`launch`'s path where that differs.
        """
        return None

    # -- host visibility (optional) --------------------------------------------------------

    def host_view(self, operand: Operand) -> np.ndarray | None:
        """A NumPy view of the operand's memory if the host can address it directly, else
        None. Used for zero-copy DLPack export to CPU consumers."""
        return None

    # -- queue timeline of a performance model (optional) ----------------------------------

    def queue_timeline(self, index: int) -> Sequence[TimelineEntry] | None:
        """The commands device ``index`` has executed since the timeline was last cleared,
        oldest first within each queue, on the modeled clock of the backend's performance
        model; None (the default) when the backend models no time. A backend implementing
        it declares :attr:`Feature.MODELED_TIME` and implements :meth:`clear_queue_timeline`
        and :meth:`stream_queue_number`. Called after the device was synchronized."""
        return None

    def clear_queue_timeline(self, index: int) -> None:  # noqa: B027 - optional hook
        """Forget what :meth:`queue_timeline` of device ``index`` would return so far."""

    def stream_queue_number(self, stream: Any) -> int | None:
        """The queue number :class:`TimelineEntry` uses for ``stream``'s commands, or None."""
        return None

    # -- DLPack on device memory (optional) -------------------------------------------------

    def dlpack_device(self, operand: Operand) -> tuple[int, int] | None:
        """The DLPack ``(device_type, device_id)`` of the operand's memory when the backend
        can export device memory itself (``(2, i)`` for CUDA GPU ``i``), else None. A
        backend returning a device implements :meth:`dlpack_export`."""
        return None

    def dlpack_export(self, writer: Any, operand: Operand, **kwargs: Any) -> Any:
        """A DLPack capsule over the operand's device memory. ``writer`` is the stream that
        last wrote it; ``kwargs`` are the consumer's ``__dlpack__`` keywords (``stream``,
        ``max_version``, ``dl_device``, ``copy``), whose stream rules the backend applies:
        the consumer's stream must not run ahead of ``writer``'s work."""
        raise UnsupportedError(
            f"feature:{Feature.DLPACK.value}",
            f"backend {self.name!r} does not export device memory through DLPack",
        )

    def adopt_dlpack(
        self, index: int, producer: Any, device: tuple[int, int], stream: Any
    ) -> tuple[Any, np.dtype[Any], tuple[int, ...], tuple[int, ...], int] | None:
        """Share the device memory of a DLPack ``producer`` whose ``__dlpack_device__`` is
        ``device``, as a buffer of device ``index``: returns the buffer (which keeps the
        producer's memory alive), the NumPy dtype, and the shape, element strides and
        element offset of the data in the buffer; None when ``device`` is not memory this
        device can address. The producer's pending writes must be ordered before
        ``stream`` (hand it to the producer as DLPack's ``stream``): the core records
        ``stream`` as the new tensor's writer."""
        return None

    def adopt_host_array(self, index: int, array: np.ndarray) -> Any | None:
        """Wrap existing host memory as a buffer of device ``index`` without copying, or
        return None if the device cannot address host memory. Used by zero-copy
        ``from_dlpack``. The buffer must keep ``array`` alive."""
        return None
