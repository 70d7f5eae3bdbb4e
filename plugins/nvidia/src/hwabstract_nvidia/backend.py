"""The ``nvidia`` backend: the contract mapped directly onto CUDA, through CuPy.

* **Buffers** come from CuPy's memory pool (``cupy.get_default_memory_pool()``), so memory
  cached by CuPy code in the same process is shared, not duplicated. A buffer is a box
  around a ``cupy.cuda.MemoryPointer``; an operand is a ``cupy.ndarray`` view of it (element
  strides become byte strides, negative and zero strides included), cached per buffer.
* **Streams** are CUDA streams (``cupy.cuda.Stream(non_blocking=True)``), **events** CUDA
  events, with timing when asked (``cudaEventElapsedTime``). A cross-stream wait is
  ``cudaStreamWaitEvent``: it never blocks the host.
* **Kernels**: the standard set from :mod:`hwabstract.backends.array_kernels` with CuPy as
  the array module, run under the stream; elementwise ufuncs write straight into the
  output view, and a kernel with several outputs (``slogdet``, ``qr``, ``eigh``, ``svd``)
  writes each result into its own. CuPy compiles each elementwise kernel once (NVRTC,
  cached on disk by CuPy). What CuPy does with an out-of-range gather index or a singular
  matrix, which no kernel can report: see the table's docstring. Custom CUDA C++ kernels:
  :class:`hwabstract_nvidia.CudaKernel`.
* **Free is stream-ordered**: a freed buffer's memory goes back to the pool only once an
  event recorded on every stream that used it has been reached, so a later allocation can
  never be handed memory a queued kernel still reads (what ``cudaFreeAsync`` guarantees).
  Buffers used by one stream alone (the common case) share their fence: they wait in a
  per-stream batch, which one event covers once it holds ``FENCE_BATCH`` buffers or
  ``FENCE_BYTES`` bytes, and which goes back to the pool at once when the stream is
  synchronized. (An event per freed temporary cost more than the kernel it followed.)
* **Errors**: CUDA's out-of-memory becomes :class:`~hwabstract.errors.OutOfMemoryError`
  with the requested, free and total figures (after CuPy's cached blocks were released and
  the allocation retried once); a fault inside a kernel surfaces at the next synchronizing
  call as :class:`~hwabstract.errors.KernelError` with CUDA's error name. CUDA's *sticky*
  errors (an illegal address, say) leave the context unusable for the rest of the process:
  they are :class:`~hwabstract.errors.DeviceLostError`, and the message says so.

Environment:

* ``HWABSTRACT_NVIDIA_MEMORY`` -- cap each device's capacity (bytes, or 512MiB, 8G, ...);
  allocations beyond it raise OutOfMemoryError before CUDA is asked. Default: the GPU's
  total memory.
* ``CUDA_VISIBLE_DEVICES`` -- CUDA's own: which GPUs the process sees.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from hwabstract import dtypes as dt
from hwabstract.backend import (
    Backend,
    BoundLaunch,
    Capabilities,
    DeviceInfo,
    DTypeSupport,
    Feature,
    Limits,
    MemoryStats,
    Operand,
)
from hwabstract.errors import (
    BackendUnavailableError,
    DeviceError,
    DeviceLostError,
    KernelError,
    OutOfMemoryError,
    StreamError,
)

from . import direct
from .profiles import profile_for

__all__ = [
    "NvidiaBackend",
    "NvidiaBuffer",
    "NvidiaEvent",
    "NvidiaStream",
    "driver_present",
    "unavailable_reason",
]

#: dtypes CuPy computes in (CuPy has no bfloat16 or float8 dtype)
CUPY_DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)  # fmt: skip

#: CUDA errors after which the context cannot be used again (the process must restart)
STICKY = (
    "cudaErrorIllegalAddress", "cudaErrorLaunchFailure", "cudaErrorIllegalInstruction",
    "cudaErrorMisalignedAddress", "cudaErrorInvalidPc", "cudaErrorHardwareStackError",
    "cudaErrorAssert", "cudaErrorECCUncorrectable",
    "CUDA_ERROR_ILLEGAL_ADDRESS", "CUDA_ERROR_LAUNCH_FAILED", "CUDA_ERROR_ASSERT",
    "CUDA_ERROR_ILLEGAL_INSTRUCTION", "CUDA_ERROR_MISALIGNED_ADDRESS",
)  # fmt: skip

_INSTALL = (
    "install hwabstract-nvidia[cuda12] or hwabstract-nvidia[cuda13], the one matching the "
    "CUDA version `nvidia-smi` reports for your driver"
)


def _cuda_version(encoded: int) -> str:
    """CUDA's integer version (12040) as text (12.4)."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def driver_present() -> bool:
    """Whether an NVIDIA driver looks installed: its library (libcuda) or its tool
    (nvidia-smi) can be found. A cheap look, without loading either."""
    import ctypes.util
    import shutil

    return bool(ctypes.util.find_library("cuda") or shutil.which("nvidia-smi"))


def unavailable_reason(cupy: Any) -> tuple[str, str | None] | None:
    """Why CUDA cannot be used through ``cupy`` here (the reason, and CUDA's own message),
    or None when at least one GPU is usable. Distinguishes no driver, a driver older than
    CuPy's CUDA runtime, and no visible device."""
    runtime = cupy.cuda.runtime
    try:
        built_for = _cuda_version(runtime.runtimeGetVersion())
    except Exception:  # (the runtime library itself failed to load)
        built_for = "unknown"
    try:
        driver = runtime.driverGetVersion()
    except Exception as exc:
        return (f"the NVIDIA driver could not be queried ({type(exc).__name__})", str(exc))
    if driver == 0:
        return (
            "no NVIDIA driver is installed (libcuda.so was not found): this machine has no "
            f"usable GPU. CuPy {cupy.__version__} is installed, built for CUDA {built_for}",
            None,
        )
    try:
        count = runtime.getDeviceCount()
    except Exception as exc:
        text = str(exc)
        if "InsufficientDriver" in text:
            return (
                f"the NVIDIA driver supports CUDA up to {_cuda_version(driver)}, older than "
                f"the CUDA {built_for} CuPy was built for: update the driver, or install "
                "the hwabstract-nvidia extra for your driver's CUDA major version",
                text,
            )
        if "NoDevice" in text:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            hint = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
            return (f"the driver sees no NVIDIA GPU{hint}", text)
        return (f"CUDA failed to initialize ({type(exc).__name__})", text)
    if count == 0:
        return ("the driver sees no NVIDIA GPU", None)
    return None


class NvidiaBuffer:
    """A box around device memory: ``mem`` (a ``cupy.cuda.MemoryPointer``), or the array
    of adopted foreign memory (DLPack) that keeps it alive. ``streams`` lists the streams
    that used it (fenced when it is freed); ``views`` caches the operands' array views."""

    __slots__ = ("device", "freed", "mem", "nbytes", "owner", "streams", "views")

    def __init__(self, device: int, nbytes: int, mem: Any, owner: Any = None) -> None:
        self.device = device
        self.nbytes = nbytes
        self.mem = mem
        self.owner = owner
        self.freed = False
        self.streams: list[NvidiaStream] = []
        self.views: dict[tuple[Any, ...], Any] = {}

    def __repr__(self) -> str:
        state = "freed" if self.freed else f"0x{self.mem.ptr:x}"
        return f"<NvidiaBuffer nvidia:{self.device} {self.nbytes} B at {state}>"


class NvidiaStream:
    """A CUDA stream of one device; ``scratch``: its scratch area for direct reductions
    (see :meth:`NvidiaBackend._scratch`), made on first use."""

    __slots__ = ("__weakref__", "cuda", "destroyed", "device", "scratch")

    def __init__(self, device: int, cuda: Any) -> None:
        self.device = device
        self.cuda = cuda
        self.destroyed = False
        self.scratch: tuple[Any, Any] | None = None


class NvidiaEvent:
    """A CUDA event recorded on ``stream``."""

    __slots__ = ("cuda", "stream", "timing")

    def __init__(self, cuda: Any, stream: NvidiaStream, timing: bool) -> None:
        self.cuda = cuda
        self.stream = stream
        self.timing = timing


#: a stream's batch of freed single-stream buffers is fenced by one event at this many
#: buffers, or at this many bytes, whichever comes first
FENCE_BATCH = 32
FENCE_BYTES = 256 << 20


class _DeviceState:
    """Accounting of one GPU, and the frees waiting for their fences."""

    def __init__(self, capacity: int, total: int) -> None:
        self.capacity = capacity  #: what hwabstract may allocate (HWABSTRACT_NVIDIA_MEMORY)
        self.total = total  #: the GPU's memory
        self.in_use = 0
        self.peak = 0
        self.allocations = 0
        #: freed memory held until every fence event is reached
        self.pending: collections.deque[tuple[Any, list[Any]]] = collections.deque()
        #: freed memory used by one stream only, not fenced yet: stream -> [memory], bytes
        self.unfenced: dict[NvidiaStream, tuple[list[Any], int]] = {}
        self.lock = threading.RLock()  # (re-entered when the GC frees a tensor mid-call)


_NOTHING = contextlib.nullcontext()


class NvidiaBackend(Backend):
    """NVIDIA GPUs through CuPy. See the module docstring."""

    name = "nvidia"
    priority = 30
    #: CuPy's and CUDA's numerics where they differ from the reference, found on an H200
    conformance_expectations = "conformance-expectations.toml"
    environment: ClassVar[Mapping[str, str]] = {
        "HWABSTRACT_NVIDIA_MEMORY": "cap each GPU's capacity for hwabstract (default: all)",
        "HWABSTRACT_NVRTC_CACHE": "where compiled CUDA C++ kernels are cached ('off': none)",
        "HWABSTRACT_NVIDIA_DIRECT": "0: no direct launches of the backend's own kernels "
        "(CuPy runs every kernel); all: the ones not yet checked on a GPU too",
        "CUDA_VISIBLE_DEVICES": "CUDA's own: which GPUs the process sees",
    }

    def __init__(self) -> None:
        self._cp: Any = None
        self._states: list[_DeviceState] = []
        self._props: list[dict[str, Any]] = []
        self._caps: dict[int, Capabilities] = {}
        self._functions: dict[Any, Any] = {}
        self._ufuncs: dict[str, Any] = {}
        self._module: Any = None
        self._pool: Any = None
        #: CuPy's CUDA errors: the runtime API's, and the driver API's (CuPy launches its
        #: kernels with cuLaunchKernel, so a kernel launch fails with CUDADriverError)
        self._cuda_errors: tuple[type[BaseException], ...] = ()
        self._direct_errors: tuple[type[BaseException], ...] = ()
        #: (kernel name, device) -> the loaded direct kernel (see :mod:`.direct`)
        self._direct: dict[tuple[str, int], Any] = {}
        #: the kernels launched directly where their layouts allow: HWABSTRACT_NVIDIA_DIRECT's
        #: choice, less those that could not be built (the two statuses say why)
        self.direct_kernels: frozenset[str] = direct.VERIFIED
        #: "on", or why direct launches are off
        self.direct_status = "on"
        #: "on", or why direct matmul (through cuBLAS) is off
        self.direct_blas_status = "on"

    # -- discovery ---------------------------------------------------------------------------

    def probe(self) -> None:
        try:
            import cupy
        except ImportError as exc:
            if not driver_present():
                raise BackendUnavailableError(
                    "nvidia",
                    "no NVIDIA driver on this machine (neither libcuda nor nvidia-smi was "
                    "found), and CuPy is not installed: where a GPU is, install the driver, "
                    f"then {_INSTALL}",
                    vendor_message=str(exc),
                ) from None
            raise BackendUnavailableError(
                "nvidia", f"CuPy is not installed: {_INSTALL}", vendor_message=str(exc)
            ) from None
        except Exception as exc:  # a broken CuPy install (missing shared libraries, ...)
            raise BackendUnavailableError(
                "nvidia",
                f"CuPy failed to import ({type(exc).__name__}); reinstall it: {_INSTALL}",
                vendor_message=str(exc),
            ) from None
        why = unavailable_reason(cupy)
        if why is not None:
            raise BackendUnavailableError("nvidia", why[0], vendor_message=why[1])
        from hwabstract.backends.array_kernels import cupy_module

        runtime = cupy.cuda.runtime
        cap_text = os.environ.get("HWABSTRACT_NVIDIA_MEMORY") or ""
        cap = None
        if cap_text:
            from hwabstract.backends.cpu import parse_bytes

            try:
                cap = parse_bytes(cap_text)
            except ValueError as exc:
                raise BackendUnavailableError(
                    "nvidia",
                    f"HWABSTRACT_NVIDIA_MEMORY={cap_text!r} is not a usable memory size "
                    f"({exc}); set it to e.g. 8GiB, or unset it to use the whole GPU",
                ) from None
        self._cp = cupy
        self._cuda_errors = (runtime.CUDARuntimeError, cupy.cuda.driver.CUDADriverError)
        # what a direct launch that CUDA or cuBLAS refuses raises (it then takes CuPy's path)
        cublas_error = getattr(getattr(cupy.cuda, "cublas", None), "CUBLASError", None)
        self._direct_errors = self._cuda_errors + ((cublas_error,) if cublas_error else ())
        self._pool = cupy.get_default_memory_pool()
        self._module = cupy_module()
        choice = os.environ.get("HWABSTRACT_NVIDIA_DIRECT", "").strip().lower()
        if choice in ("0", "off", "no"):
            self.direct_status = "off: HWABSTRACT_NVIDIA_DIRECT=0"
            self.direct_kernels = frozenset()
        elif choice == "all":
            self.direct_kernels = direct.VERIFIED | direct.UNVERIFIED
        for index in range(runtime.getDeviceCount()):
            props = dict(runtime.getDeviceProperties(index))
            total = int(props["totalGlobalMem"])
            self._props.append(props)
            self._states.append(_DeviceState(min(cap, total) if cap else total, total))

    def device_count(self) -> int:
        return len(self._states)

    def _gpu_name(self, index: int) -> str:
        name = self._props[index].get("name", b"NVIDIA GPU")
        return name.decode(errors="replace") if isinstance(name, bytes) else str(name)

    def compute_capability(self, index: int) -> tuple[int, int]:
        """The device's (major, minor) compute capability, e.g. (9, 0) for an H100."""
        props = self._props[index]
        return int(props["major"]), int(props["minor"])

    def device_info(self, index: int) -> DeviceInfo:
        cp = self._cp
        props = self._props[index]
        gpu = self._gpu_name(index)
        major, minor = self.compute_capability(index)
        runtime = cp.cuda.runtime
        extra = {
            "compute_capability": f"{major}.{minor}",
            "multiprocessors": str(props.get("multiProcessorCount", "unknown")),
            "cupy": cp.__version__,
            "cuda_runtime": _cuda_version(runtime.runtimeGetVersion()),
            "pci_bus_id": f"{props.get('pciDomainID', 0):04x}:{props.get('pciBusID', 0):02x}:"
            f"{props.get('pciDeviceID', 0):02x}",
            # the kernels launched as the backend's own where their layouts allow
            # (HWABSTRACT_NVIDIA_DIRECT; docs/backends/nvidia.md, "Direct launches")
            "direct_kernels": ", ".join(sorted(self.direct_kernels))
            or "none (HWABSTRACT_NVIDIA_DIRECT=0)",
        }
        profile = profile_for(gpu)
        if profile is not None:
            extra["profile"] = profile.name
            extra["hbm_bandwidth_GBps"] = f"{profile.hbm_bandwidth / 1e9:g}"
            for dtype, ops in profile.peak_ops.items():
                extra[f"peak_{dtype}_TOPS"] = f"{ops / 1e12:g}"
        else:
            extra["profile"] = "none matches this GPU: datasheet peaks unknown"
        return DeviceInfo(
            name=gpu,
            vendor="NVIDIA",
            model=f"{gpu} (sm_{major}{minor})",
            memory_capacity=self._states[index].capacity,
            driver_version=f"CUDA driver {_cuda_version(runtime.driverGetVersion())}",
            description=f"{gpu} through CUDA {extra['cuda_runtime']} via CuPy {cp.__version__}",
            extra=extra,
        )

    def capabilities(self, index: int) -> Capabilities:
        caps = self._caps.get(index)
        if caps is None:
            from hwabstract.backends.array_kernels import implemented
            from hwabstract.kernels import all_specs

            dtypes = {dt.dtype(n): DTypeSupport.NATIVE for n in CUPY_DTYPES}
            known = implemented(self._module)
            kernels = {}
            for spec in all_specs():
                ok = frozenset(d for d in spec.dtypes if d in dtypes)
                if ok and (spec.composite or spec.name in known):
                    kernels[spec.name] = ok
            features = {
                Feature.CONCURRENT_STREAMS,
                Feature.EVENT_TIMING,
                Feature.CUSTOM_KERNELS,
                Feature.DLPACK,
                # not SUBNORMALS: CuPy's float32 kernels flush subnormals to zero (seen on
                # an H200 with CuPy 14.2 / CUDA 13: abs(1e-45) == 0)
            }
            if len(self._states) > 1:
                features.add(Feature.PEER_COPY)
            state = self._states[index]
            caps = Capabilities(
                dtypes=dtypes,
                kernels=kernels,
                features=frozenset(features),
                limits=Limits(
                    memory_capacity=state.capacity, max_allocation=state.capacity, max_dims=32
                ),
            )
            # every OCP MX format, composed by the core from the standard kernels (no CUDA MX
            # kernels here yet), where the integer kernels that takes are declared
            from hwabstract.mx.emulated import MX_FORMAT_NAMES, missing

            if not missing(caps):
                mx = dict.fromkeys(MX_FORMAT_NAMES, DTypeSupport.EMULATED)
                caps = attrs.evolve(caps, mx_formats=mx)
            self._caps[index] = caps
        return caps

    # -- memory ------------------------------------------------------------------------------

    def _on(self, index: int) -> Any:
        """A context making ``index`` CUDA's current device (nothing to do where the
        process sees one GPU: it is always the current one)."""
        if len(self._states) == 1:
            return _NOTHING
        return self._cp.cuda.Device(index)

    def allocate(self, index: int, nbytes: int) -> NvidiaBuffer:
        state = self._states[index]
        with state.lock:
            self._reap(state)
            free = state.capacity - state.in_use
            if nbytes > free:
                raise OutOfMemoryError(f"nvidia:{index}", nbytes, free, state.capacity)
            state.in_use += nbytes
            state.allocations += 1
            state.peak = max(state.peak, state.in_use)
        try:
            mem = self._malloc(index, nbytes)
        except BaseException:
            with state.lock:
                state.in_use -= nbytes
                state.allocations -= 1
            raise
        return NvidiaBuffer(index, nbytes, mem)

    def _malloc(self, index: int, nbytes: int) -> Any:
        cp = self._cp
        with self._on(index):
            try:
                return self._pool.malloc(nbytes)
            except cp.cuda.memory.OutOfMemoryError as first:
                # CuPy's pool may hold freed blocks that do not fit: release them and retry
                state = self._states[index]
                with state.lock:
                    self._reap(state, wait=True)
                self._pool.free_all_blocks()
                try:
                    return self._pool.malloc(nbytes)
                except cp.cuda.memory.OutOfMemoryError:
                    free, total = cp.cuda.runtime.memGetInfo()
                    raise OutOfMemoryError(
                        f"nvidia:{index}", nbytes, int(free), int(total),
                        vendor_message=str(first),
                    ) from None  # fmt: skip
            except self._cuda_errors as exc:  # (a sticky error of an earlier command, ...)
                raise self._cuda_error(exc, "an allocation", index) from exc

    def free(self, buffer: NvidiaBuffer) -> None:
        if buffer.freed:
            raise DeviceError(f"{buffer!r} was already freed")
        buffer.freed = True
        buffer.views.clear()
        state = self._states[buffer.device]
        mem, buffer.mem, buffer.owner = (buffer.mem, buffer.owner), None, None
        streams, buffer.streams = buffer.streams, []
        if len(streams) == 1 and not streams[0].destroyed:
            stream = streams[0]
            with state.lock:
                state.in_use -= buffer.nbytes
                state.allocations -= 1
                batch, held = state.unfenced.get(stream) or ([], 0)
                batch.append(mem)
                held += buffer.nbytes
                state.unfenced[stream] = (batch, held)
                if len(batch) >= FENCE_BATCH or held >= FENCE_BYTES:
                    self._fence(state, stream)
                self._reap(state)
            return
        fences = [self._fence_event(s) for s in streams if not s.destroyed]
        fences = [event for event in fences if event is not None]
        with state.lock:
            state.in_use -= buffer.nbytes
            state.allocations -= 1
            if fences:
                state.pending.append((mem, fences))
            self._reap(state)

    def _fence_event(self, stream: NvidiaStream) -> Any:
        """An event recorded on ``stream`` after everything queued on it; None where the
        context is lost (a sticky error: nothing queued will run again). Frees run from
        finalizers, where nothing could catch the error."""
        try:
            with self._on(stream.device):
                event = self._cp.cuda.Event(block=False, disable_timing=True)
                event.record(stream.cuda)
        except self._cuda_errors:
            return None
        return event

    def _fence(self, state: _DeviceState, stream: NvidiaStream) -> None:
        """Close ``stream``'s batch of freed memory with one event (holds the lock)."""
        batch, _ = state.unfenced.pop(stream)
        event = self._fence_event(stream)
        if event is not None:
            state.pending.append((batch, [event]))

    def _release_unfenced(self, stream: NvidiaStream) -> None:
        """``stream`` has just finished everything queued on it: its unfenced batch is
        no longer read by anything."""
        state = self._states[stream.device]
        with state.lock:
            state.unfenced.pop(stream, None)
            self._reap(state)

    def _reap(self, state: _DeviceState, wait: bool = False) -> None:
        """Give the pool back the memory whose fences were reached (all of it, waiting,
        with ``wait``: the unfenced batches too). Holds the state's lock."""
        if wait:
            for stream in list(state.unfenced):
                self._fence(state, stream)
        while state.pending:
            _, fences = state.pending[0]
            if wait:
                for event in fences:
                    event.synchronize()
            elif not all(event.done for event in fences):
                return
            state.pending.popleft()  # the MemoryPointer's last reference: back to the pool

    def memory_stats(self, index: int) -> MemoryStats:
        state = self._states[index]
        with self._on(index):
            cached = int(self._pool.total_bytes() - self._pool.used_bytes())
        with state.lock:
            return MemoryStats(
                in_use=state.in_use,
                peak=state.peak,
                capacity=state.capacity,
                free=max(0, state.capacity - state.in_use),
                allocations=state.allocations,
                cached=cached,
            )

    # -- streams and events -------------------------------------------------------------------

    def create_stream(self, index: int) -> NvidiaStream:
        with self._on(index):
            return NvidiaStream(index, self._cp.cuda.Stream(non_blocking=True))

    def destroy_stream(self, stream: NvidiaStream) -> None:
        if stream.destroyed:
            return
        stream.destroyed = True
        # An unreported failure of a command nobody synchronized on is dropped with the
        # stream: destroy_stream runs from a finalizer, where nothing could catch it.
        with contextlib.suppress(*self._cuda_errors):
            stream.cuda.synchronize()  # (fences of pending frees may sit on it)
        stream.scratch = None  # (nothing queued on it can still read it)
        self._release_unfenced(stream)

    def _live(self, stream: NvidiaStream) -> NvidiaStream:
        if stream.destroyed:
            raise StreamError("the stream was destroyed; create a new one")
        return stream

    def _cuda_error(
        self, exc: BaseException, what: str, device: int
    ) -> KernelError | DeviceLostError:
        """CUDA's error as ours: a *sticky* one leaves the context unusable for the rest of
        the process -- for hwabstract the device is lost (DeviceLostError); any other is a
        failed command (KernelError)."""
        text = f"{type(exc).__name__}: {exc}"
        if any(name in text for name in STICKY):
            return DeviceLostError(
                f"{what} failed on nvidia:{device}: {exc}; CUDA reports this error as sticky: "
                "the GPU context is unusable from now on, and the process must be restarted",
                vendor_message=text,
            )
        return KernelError(
            f"{what} failed on nvidia:{device}: {exc}; tensors written by the failing command "
            "hold undefined values",
            vendor_message=text,
        )

    def stream_synchronize(self, stream: NvidiaStream) -> None:
        try:
            self._live(stream).cuda.synchronize()
        except self._cuda_errors as exc:
            raise self._cuda_error(exc, "a command queued on the stream", stream.device) from exc
        if stream in self._states[stream.device].unfenced:
            self._release_unfenced(stream)

    def stream_query(self, stream: NvidiaStream) -> bool:
        try:
            return bool(self._live(stream).cuda.done)
        except self._cuda_errors as exc:
            raise self._cuda_error(exc, "a command queued on the stream", stream.device) from exc

    def record_event(self, stream: NvidiaStream, timing: bool) -> NvidiaEvent:
        s = self._live(stream)
        try:
            with self._on(s.device):
                event = self._cp.cuda.Event(block=False, disable_timing=not timing)
                event.record(s.cuda)
        except self._cuda_errors as exc:
            raise self._cuda_error(exc, "recording an event", s.device) from exc
        return NvidiaEvent(event, s, timing)

    def stream_wait_event(self, stream: NvidiaStream, event: NvidiaEvent) -> None:
        s = self._live(stream)
        try:
            s.cuda.wait_event(event.cuda)
        except self._cuda_errors as exc:
            raise self._cuda_error(exc, "a cross-stream wait", s.device) from exc

    def event_query(self, event: NvidiaEvent) -> bool:
        try:
            return bool(event.cuda.done)
        except self._cuda_errors as exc:
            raise self._cuda_error(
                exc, "a command queued before the event", event.stream.device
            ) from exc

    def event_synchronize(self, event: NvidiaEvent) -> None:
        try:
            event.cuda.synchronize()
        except self._cuda_errors as exc:
            raise self._cuda_error(
                exc, "a command queued before the event", event.stream.device
            ) from exc

    def event_elapsed_ms(self, start: NvidiaEvent, end: NvidiaEvent) -> float:
        return float(self._cp.cuda.get_elapsed_time(start.cuda, end.cuda))

    # -- views ---------------------------------------------------------------------------------

    def view(self, op: Operand) -> Any:
        """A ``cupy.ndarray`` over the operand's memory (no copy), cached per buffer."""
        buf = op.buffer
        if buf.freed:
            raise DeviceError(f"{buf!r} was freed; the tensor's memory is gone")
        key = (op.dtype, op.shape, op.strides, op.offset)
        views = buf.views
        v = views.get(key)
        if v is None:
            cp = self._cp
            np_dtype = op.dtype.numpy_dtype
            item = np_dtype.itemsize
            if 0 in op.shape:
                with self._on(buf.device):
                    v = cp.ndarray(op.shape, dtype=np_dtype)
            else:
                v = cp.ndarray(
                    op.shape,
                    dtype=np_dtype,
                    memptr=buf.mem + op.offset * item,
                    strides=tuple(s * item for s in op.strides),
                )
            if len(views) >= 16:
                views.clear()
            views[key] = v
        return v

    @staticmethod
    def _uses(stream: NvidiaStream, *buffers: NvidiaBuffer) -> None:
        for buf in buffers:
            used = buf.streams
            if stream not in used:
                used.append(stream)

    # -- data movement -------------------------------------------------------------------------

    def copy_from_host(self, stream: NvidiaStream, dst: Operand, src: np.ndarray) -> None:
        s = self._live(stream)
        if not dst.size:
            return
        cp = self._cp
        runtime = cp.cuda.runtime
        self._uses(s, dst.buffer)
        try:
            with self._on(s.device), s.cuda:
                if dst.is_contiguous:
                    target = self.view(dst)
                    # from pageable memory: returns once CUDA has staged the bytes, so the
                    # caller may change ``src`` right away
                    runtime.memcpyAsync(target.data.ptr, src.ctypes.data, src.nbytes,
                                        runtime.memcpyHostToDevice, s.cuda.ptr)  # fmt: skip
                else:
                    staged = cp.empty(src.shape, dtype=src.dtype)  # (in s's pool arena)
                    runtime.memcpyAsync(staged.data.ptr, src.ctypes.data, src.nbytes,
                                        runtime.memcpyHostToDevice, s.cuda.ptr)  # fmt: skip
                    self.view(dst)[...] = staged
        except self._cuda_errors as exc:
            raise self._cuda_error(exc, "a copy to the device", s.device) from exc

    def copy_to_host(self, stream: NvidiaStream, dst: np.ndarray, src: Operand) -> None:
        s = self._live(stream)
        if not src.size:
            return
        cp = self._cp
        runtime = cp.cuda.runtime
        self._uses(s, src.buffer)
        try:
            with self._on(s.device), s.cuda:
                source = self.view(src)
                if not src.is_contiguous:
                    source = cp.ascontiguousarray(source)
                runtime.memcpyAsync(dst.ctypes.data, source.data.ptr, dst.nbytes,
                                    runtime.memcpyDeviceToHost, s.cuda.ptr)  # fmt: skip
        except self._cuda_errors as exc:
            raise self._cuda_error(exc, "a copy to the host", s.device) from exc

    def copy(self, stream: NvidiaStream, dst: Operand, src: Operand) -> None:
        s = self._live(stream)
        if not dst.size:
            return
        self._uses(s, dst.buffer, src.buffer)
        try:
            with self._on(s.device), s.cuda:
                target, source = self.view(dst), self.view(src)
                if dst.is_contiguous and src.is_contiguous:
                    runtime = self._cp.cuda.runtime
                    runtime.memcpyAsync(target.data.ptr, source.data.ptr, target.nbytes,
                                        runtime.memcpyDeviceToDevice, s.cuda.ptr)  # fmt: skip
                else:
                    target[...] = source
        except self._cuda_errors as exc:
            raise self._cuda_error(exc, "a device-to-device copy", s.device) from exc

    def copy_peer(self, stream: NvidiaStream, dst: Operand, src: Operand) -> None:
        """The bytes ``src`` spans are copied peer-to-peer (``cudaMemcpyPeerAsync``) into
        a staging block on ``dst``'s device, then laid out by a copy kernel there: any
        strides, all ordered on ``stream``."""
        s = self._live(stream)
        if not dst.size:
            return
        cp = self._cp
        item = src.dtype.itemsize
        lo = src.offset + sum(st * (d - 1) for st, d in zip(src.strides, src.shape) if st < 0)
        hi = src.offset + sum(st * (d - 1) for st, d in zip(src.strides, src.shape) if st > 0)
        nbytes = (hi - lo + 1) * item
        self._uses(s, dst.buffer, src.buffer)
        try:
            with self._on(s.device), s.cuda:
                staged = cp.empty(nbytes, dtype=np.uint8)
                cp.cuda.runtime.memcpyPeerAsync(
                    staged.data.ptr, dst.buffer.device,
                    src.buffer.mem.ptr + lo * item, src.buffer.device, nbytes, s.cuda.ptr,
                )  # fmt: skip
                moved = cp.ndarray(
                    src.shape,
                    dtype=src.dtype.numpy_dtype,
                    memptr=staged.data + (src.offset - lo) * item,
                    strides=tuple(st * item for st in src.strides),
                )
                self.view(dst)[...] = moved
        except self._cuda_errors as exc:
            raise self._cuda_error(exc, "a peer copy", s.device) from exc

    # -- kernels -------------------------------------------------------------------------------

    def _function(self, kernel: str, attributes: Mapping[str, Any]) -> Any:
        from hwabstract.backends.array_kernels import kernel_function

        key = (kernel, tuple(sorted((k, repr(v)) for k, v in attributes.items())))
        fn = self._functions.get(key)
        if fn is None:
            fn = self._functions[key] = kernel_function(self._module, kernel, attributes)
        return fn

    def _ufunc(self, kernel: str, dtype: Any) -> Any:
        """CuPy's ufunc for a standard elementwise kernel that writes its output directly,
        or None. float16 is left to the table, which computes it in float32 and rounds
        once, as the reference does."""
        if dtype.numpy_dtype == np.float16:
            return None
        uf = self._ufuncs.get(kernel, False)
        if uf is False:
            from hwabstract.kernels import get_spec

            ref = get_spec(kernel).ufunc
            uf = getattr(self._cp, ref.__name__, None) if ref is not None else None
            self._ufuncs[kernel] = uf
        return uf

    def launch(
        self,
        stream: NvidiaStream,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> None:
        s = self._live(stream)
        p = self._direct_plan(kernel, inputs, outputs, attributes)
        fn = self._direct_kernel(p, s.device) if p is not None else None
        if p is not None and fn is not None:

            def cupy_path(stream: NvidiaStream, buffers: Any, out_buffers: Any) -> None:
                self._launch_cupy(s, kernel, inputs, outputs, attributes)

            direct_launch = self._bind_direct(p, fn, s.device, cupy_path)
            direct_launch(s, [op.buffer for op in inputs], [op.buffer for op in outputs])
            return
        self._launch_cupy(s, kernel, inputs, outputs, attributes)

    def _launch_cupy(
        self,
        s: NvidiaStream,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> None:
        """:meth:`launch` through CuPy: its ufunc or the kernel function, on views."""
        self._uses(s, *(op.buffer for op in outputs), *(op.buffer for op in inputs))
        ins = [self.view(op) for op in inputs]
        targets = [self.view(op) for op in outputs]
        uf = self._direct_ufunc(kernel, inputs, outputs, attributes)
        self._execute(s, kernel, inputs, ins, targets, uf, None, attributes)

    def bind_launch(self, kernel: str, inputs: Sequence[Operand], outputs: Sequence[Operand],
                    attributes: Mapping[str, Any]) -> BoundLaunch | None:  # fmt: skip
        """:meth:`launch` with what the layouts decide looked up once -- the direct kernel
        (:mod:`.direct`), else CuPy's ufunc or the kernel function, and each operand's view
        key; per call, the buffers' views (cached per buffer, as :meth:`view` caches them)
        and the stream bookkeeping of launch."""
        uf = self._direct_ufunc(kernel, inputs, outputs, attributes)
        # (launch() just built it: found in the cache)
        fn = None if uf is not None else self._function(kernel, attributes)
        in_keys = [(op, (op.dtype, op.shape, op.strides, op.offset)) for op in inputs]
        out_keys = [(op, (op.dtype, op.shape, op.strides, op.offset)) for op in outputs]
        view = self._bound_view
        this = self

        def bound(stream: NvidiaStream, buffers: Sequence[NvidiaBuffer],
                  out_buffers: Sequence[NvidiaBuffer]) -> None:  # fmt: skip
            s = this._live(stream)
            this._uses(s, *out_buffers, *buffers)
            ins = [view(b, op, key) for b, (op, key) in zip(buffers, in_keys)]
            targets = [view(b, op, key) for b, (op, key) in zip(out_buffers, out_keys)]
            this._execute(s, kernel, inputs, ins, targets, uf, fn, attributes)

        p = self._direct_plan(kernel, inputs, outputs, attributes)
        if p is None:
            return bound
        device = outputs[0].buffer.device
        kfn = self._direct_kernel(p, device)
        return bound if kfn is None else self._bind_direct(p, kfn, device, bound)

    def _bind_direct(self, p: direct.Plan, fn: Any, device: int,
                     fallback: BoundLaunch) -> BoundLaunch:  # fmt: skip
        """A direct launch of ``fn`` by plan ``p`` (what :meth:`launch` calls once and
        :meth:`bind_launch` returns): the stream bookkeeping of launch, then the kernel on
        the buffers' pointers. A freed buffer, another device's stream, or a launch CUDA
        refuses (nothing queued) is handed to ``fallback`` (CuPy's path, whose errors are
        the ones to raise)."""
        grid, block, args, needs_scratch = p.grid, p.block, p.args, p.scratch
        single = len(self._states) == 1
        errors = self._direct_errors
        scratch_of = self._scratch

        def bound(stream: NvidiaStream, buffers: Sequence[NvidiaBuffer],
                  out_buffers: Sequence[NvidiaBuffer]) -> None:  # fmt: skip
            if stream.destroyed:
                raise StreamError("the stream was destroyed; create a new one")
            (out,) = out_buffers
            if out.freed or stream.device != device:
                return fallback(stream, buffers, out_buffers)
            for buf in buffers:
                if buf.freed:
                    return fallback(stream, buffers, out_buffers)
            for buf in (out, *buffers):
                used = buf.streams
                if stream not in used:
                    used.append(stream)
            try:
                scratch = scratch_of(stream) if needs_scratch else None
                if single:
                    fn(grid, block, args(buffers, out, scratch), shared_mem=0, stream=stream.cuda)
                else:
                    with self._cp.cuda.Device(device):
                        fn(grid, block, args(buffers, out, scratch), shared_mem=0,
                           stream=stream.cuda)  # fmt: skip
            except errors:
                return fallback(stream, buffers, out_buffers)
            return None

        return bound

    def _direct_plan(self, kernel: str, inputs: Sequence[Operand], outputs: Sequence[Operand],
                     attributes: Mapping[str, Any]) -> direct.Plan | None:  # fmt: skip
        if kernel not in self.direct_kernels:
            return None
        return direct.plan(kernel, inputs, outputs, attributes)

    def _direct_kernel(self, p: direct.Plan, index: int) -> Any:
        """The loaded direct kernel of plan ``p`` on device ``index``, compiled (NVRTC,
        cached) and loaded on first use; None where that fails, with the kernels it turns
        off taken out of :attr:`direct_kernels` (all of them; only matmul where cuBLAS is
        missing) and the status saying why."""
        key = (p.name, index)
        fn = self._direct.get(key)
        if fn is not None:
            return fn
        from .compiler import compile_cuda

        cp = self._cp
        if p.kernel in direct.BLAS:
            try:
                fn = direct.Gemm(cp, p.dtype)
            except (ImportError, AttributeError) as exc:
                self.direct_blas_status = f"off: cuBLAS is not reachable through CuPy ({exc})"
                self.direct_kernels -= frozenset(direct.BLAS)
                return None
            self._direct[key] = fn
            return fn
        major, minor = self.compute_capability(index)
        refused: tuple[type[BaseException], ...] = (KernelError, *self._cuda_errors)
        try:
            module = compile_cuda(direct.source(p.kernel, p.dtype), arch=f"sm_{major}{minor}",
                                  filename=f"{p.name}.cu")  # fmt: skip
            with cp.cuda.Device(index):
                loaded = cp.cuda.function.Module()
                loaded.load(module.image)
                fn = loaded.get_function(p.name)
        except refused as exc:
            self.direct_status = (
                f"off: kernel {p.name} could not be compiled or loaded on nvidia:{index} "
                f"({type(exc).__name__}: {exc}); CuPy's ufuncs run every kernel"
            )
            self.direct_kernels = frozenset()
            return None
        self._direct[key] = fn
        return fn

    def _scratch(self, stream: NvidiaStream) -> tuple[Any, Any]:
        """``stream``'s scratch area for direct reductions (``direct.SCRATCH_BYTES`` from
        the pool, its count zeroed on the stream), made on first use and kept as long as
        the stream: (the partial sums, the count of blocks done). Kernels on one stream run
        one after another, so they never share it; it is not counted in the device's
        memory statistics, like CuPy's own temporaries."""
        scratch = stream.scratch
        if scratch is None:
            mem = self._malloc(stream.device, direct.SCRATCH_BYTES)  # (OOM mapped to ours)
            done = mem + direct.SUM_BLOCKS * 8
            with self._on(stream.device):
                self._cp.cuda.runtime.memsetAsync(done.ptr, 0, 8, stream.cuda.ptr)
            scratch = stream.scratch = (mem, done)
        return scratch

    def _bound_view(self, buf: NvidiaBuffer, op: Operand, key: tuple[Any, ...]) -> Any:
        """:meth:`view` of ``op``'s layout over ``buf``, found by the key a bound launch
        computed once."""
        v = None if buf.freed else buf.views.get(key)
        return v if v is not None else self.view(op._replace(buffer=buf))

    def _direct_ufunc(
        self,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> Any:
        """CuPy's ufunc where a launch can call it straight into its output, else None."""
        if inputs and not attributes and len(outputs) == 1:
            return self._ufunc(kernel, inputs[0].dtype)
        return None

    def _execute(
        self,
        s: NvidiaStream,
        kernel: str,
        inputs: Sequence[Operand],
        ins: list[Any],
        targets: list[Any],
        uf: Any,
        fn: Any,
        attributes: Mapping[str, Any],
    ) -> None:
        """Queue the kernel on the views, on ``s``: CuPy's ufunc ``uf``, else the kernel
        function ``fn`` (looked up here when None); CuPy's and CUDA's errors as ours."""
        try:
            with self._on(s.device), s.cuda:
                if uf is not None:
                    uf(*ins, out=targets[0], casting="unsafe")
                else:
                    result = (fn or self._function(kernel, attributes))(*ins)
                    # a kernel with several outputs (slogdet, qr, eigh, svd) returns a tuple
                    results = result if isinstance(result, tuple) else (result,)
                    for target, value in zip(targets, results):
                        self._store(s, target, value)
        except self._cuda_errors as exc:
            raise self._cuda_error(exc, f"kernel {kernel!r}", s.device) from exc
        except (TypeError, ValueError, IndexError, NotImplementedError) as exc:
            raise KernelError(
                f"CuPy could not run kernel {kernel!r} on nvidia:{s.device} for "
                f"{[str(op.dtype) for op in inputs]}: {exc}",
                vendor_message=f"{type(exc).__name__}: {exc}",
            ) from exc

    def _store(self, s: NvidiaStream, target: Any, value: Any) -> None:
        """Write a kernel function's result into its output view: one ``cudaMemcpyAsync``
        where both are C-contiguous arrays of one dtype and shape in separate memory (no
        copy kernel to launch), else CuPy's assignment (casts, broadcasts, overlaps)."""
        cp = self._cp
        if (
            type(value) is cp.ndarray
            and value.dtype == target.dtype
            and value.shape == target.shape
            and target.nbytes
            and value.flags.c_contiguous
            and target.flags.c_contiguous
        ):
            dst, src, nbytes = target.data.ptr, value.data.ptr, target.nbytes
            if dst == src:
                return
            if dst + nbytes <= src or src + nbytes <= dst:
                runtime = cp.cuda.runtime
                runtime.memcpyAsync(dst, src, nbytes, runtime.memcpyDeviceToDevice, s.cuda.ptr)
                return
        target[...] = value

    # -- DLPack ----------------------------------------------------------------------------------

    def dlpack_device(self, operand: Operand) -> tuple[int, int]:
        """The DLPack device of the operand's memory: (kDLCUDA, the GPU's index)."""
        return (2, operand.buffer.device)

    def dlpack_export(self, writer: NvidiaStream, operand: Operand, **kwargs: Any) -> Any:
        """A DLPack capsule over the operand's memory, made by CuPy's exporter under
        ``writer`` (the stream that last wrote it): CuPy then makes the consumer's stream
        (``kwargs['stream']``, DLPack's rules) wait for it."""
        s = self._live(writer)
        try:
            with self._on(s.device), s.cuda:
                return self.view(operand).__dlpack__(**kwargs)
        except self._cuda_errors as exc:  # (the consumer's stream waits on an event)
            raise self._cuda_error(exc, "a DLPack export", s.device) from exc

    def adopt_dlpack(
        self, index: int, producer: Any, device: tuple[int, int], stream: NvidiaStream
    ) -> tuple[NvidiaBuffer, Any, tuple[int, ...], tuple[int, ...], int] | None:
        """Share the memory of a CUDA DLPack producer (PyTorch, JAX, CuPy, ...) living on
        GPU ``index``: ``cupy.from_dlpack``, called with ``stream`` current, hands the
        producer that stream, and the producer orders its pending writes before it (DLPack's
        stream rule; the core records ``stream`` as the tensor's writer, so other streams
        wait for it on the device). The buffer keeps the resulting array alive. Returns the
        buffer, the NumPy dtype, and the shape, element strides and element offset of the
        data in it; None for memory of another device."""
        if device != (2, index):
            return None
        cp = self._cp
        s = self._live(stream)
        with self._on(index), s.cuda:
            array = cp.from_dlpack(producer)
        item = array.dtype.itemsize
        shape, strides = tuple(array.shape), tuple(st // item for st in array.strides)
        # the buffer spans the elements, from the lowest (negative strides reach below the
        # data pointer); CuPy's DLPackMemory.size is bits * sum(shape) // 8, not their size
        lo, nbytes, mem = 0, 0, array.data
        if array.size:
            lo = sum(st * (d - 1) for st, d in zip(strides, shape) if st < 0)
            hi = sum(st * (d - 1) for st, d in zip(strides, shape) if st > 0)
            nbytes = (hi - lo + 1) * item
            base = array.data.mem
            mem = cp.cuda.MemoryPointer(base, array.data.ptr - base.ptr + lo * item)
        state = self._states[index]
        with state.lock:
            state.in_use += nbytes
            state.allocations += 1
            state.peak = max(state.peak, state.in_use)
        buffer = NvidiaBuffer(index, nbytes, mem, owner=array)
        return buffer, array.dtype, shape, strides, -lo
