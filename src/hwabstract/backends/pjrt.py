"""What the PJRT backends (``hwabstract-tpu``, ``hwabstract-trainium``) share: the contract
mapped onto JAX, written once.

A subclass names its JAX platform (``"tpu"``, ``"neuron"``), its chip profiles and its
environment prefix; everything else is here. jax is imported by :meth:`PjrtBackend.probe`,
never by ``import hwabstract`` or by discovery.

The mapping:

* **Buffers** are boxes holding a ``jax.Array`` whose elements, in C order, are the
  buffer's contents: flat, or in the shape of the launch that last wrote it whole (JAX arrays
  are immutable: a write puts a new array in the box; flattening a result inside its
  program would cost XLA:CPU its vectorized loop for row-wise kernels). A buffer keeps the
  dtype of its last write; a view in another dtype is a bitcast inside the compiled
  function. Views (strides, offsets, broadcasting) become index arithmetic inside the
  compiled function, so a whole launch -- gathers, the kernel, the scatter of a partial
  write -- is one ``jax.jit`` executable, cached per (kernel, attributes, operand
  layouts). A kernel with several outputs
  (``slogdet``, ``qr``, ``eigh``, ``svd``) writes each of them in that one executable.
* **Streams** ride on JAX's asynchronous dispatch: a launch returns as soon as it is
  queued. Work is ordered by data: a buffer read always sees the array of the last write
  to it, whichever stream queued it, and a write never disturbs a read already queued (it
  makes a new array). Waiting for another stream's event therefore needs nothing on the
  device. An **event** is a readiness marker: the arrays the stream had produced when it
  was recorded; it is reached when they are ready.
* **Memory**: on real hardware the PJRT client's own statistics; on the stand-in, the
  bytes of live buffers against a configured capacity (host RAM backs it).
* **Donation**: a partial write into a buffer donates the buffer's old array to the
  executable, which updates it in place instead of copying it.
* **Stand-in**: with ``<PREFIX>_STANDIN=cpu`` and no chip present, the devices run on
  JAX's CPU client while declaring the chip's profile; their name, info and every report
  say "stand-in (PJRT CPU)".

The steady state of a launch -- :meth:`PjrtBackend.allocate`, :meth:`PjrtBackend.free` and
the bound launch of :meth:`PjrtBackend.bind_launch` -- runs compiled where
``hwabstract.backends._pjrtfast`` is built (``_pjrtfast.c``): it does what the Python here
does for the common case and hands every other case to it (``HWABSTRACT_PURE_PYTHON=1``
turns it off).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from .. import _compiled
from .. import dtypes as dt
from ..backend import (
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
from ..errors import (
    BackendUnavailableError,
    DeviceError,
    HwAbstractError,
    KernelError,
    OutOfMemoryError,
    StreamError,
)
from .array_kernels import ArrayModule, jax_module, kernel_function
from .pjrt_profiles import ChipProfile

__all__ = ["PjrtBackend", "PjrtBuffer", "PjrtEvent", "PjrtMemory", "PjrtStream"]

#: default capacity of a stand-in device (host RAM backs it): modest, like the Maia emulator's
STANDIN_MEMORY = 2 << 30
STANDIN_LABEL = "stand-in (PJRT CPU)"

#: the compiled steady state (``_pjrtfast.c``), or None (not built, or turned off)
_FAST, FAST_STATUS = _compiled.load("hwabstract.backends._pjrtfast")


def _parse_bytes(text: str) -> int:
    from .cpu import parse_bytes

    return parse_bytes(text)


class PjrtBuffer:
    """A box holding one ``jax.Array``, the buffer's contents in C order (or None before the
    first write)."""

    __slots__ = ("array", "device", "freed", "kind", "nbytes")

    def __init__(self, device: int, nbytes: int) -> None:
        self.device = device
        self.nbytes = nbytes
        self.array: Any = None
        self.kind: Any = None  #: the hwabstract DType of ``array`` (None while unwritten)
        self.freed = False

    def __repr__(self) -> str:
        dtype = None if self.array is None else self.array.dtype
        return f"<PjrtBuffer device {self.device} {self.nbytes} B holding {dtype}>"


class PjrtMemory:
    """The accounting of a backend's live buffers, and their allocation: the Python
    definition (``_pjrtfast.Memory`` is its compiled twin, used where it is built).

    ``buffer_type(index, nbytes)`` makes a buffer (:class:`PjrtBuffer`); ``capacity_of(index)``
    gives a device's capacity (asked once per device); ``out_of_memory(index, nbytes, free,
    capacity)`` and ``already_freed(buffer)`` make the errors to raise.
    """

    def __init__(self, count: int, buffer_type: type[PjrtBuffer], capacity_of: Any,
                 out_of_memory: Any, already_freed: Any) -> None:  # fmt: skip
        self._buffer_type = buffer_type
        self._capacity: list[int | None] = [None] * count
        self._in_use, self._peak, self._live = [0] * count, [0] * count, [0] * count
        self._lock = threading.Lock()
        self._capacity_of = capacity_of
        self._out_of_memory = out_of_memory
        self._already_freed = already_freed

    def allocate(self, index: int, nbytes: int) -> PjrtBuffer:
        capacity = self._capacity[index]
        if capacity is None:
            capacity = self._capacity[index] = int(self._capacity_of(index))
        with self._lock:
            free = capacity - self._in_use[index]
            if nbytes > free:
                raise self._out_of_memory(index, nbytes, free, capacity)
            used = self._in_use[index] = self._in_use[index] + nbytes
            self._live[index] += 1
            if used > self._peak[index]:
                self._peak[index] = used
        return self._buffer_type(index, nbytes)

    def free(self, buffer: PjrtBuffer) -> None:
        if type(buffer) is not self._buffer_type:
            raise TypeError(
                f"free() takes a {self._buffer_type.__name__}, not {type(buffer).__name__}"
            )
        if buffer.freed:
            raise self._already_freed(buffer)
        buffer.freed = True
        buffer.array = None
        with self._lock:
            self._in_use[buffer.device] -= buffer.nbytes
            self._live[buffer.device] -= 1

    def counts(self, index: int) -> tuple[int, int, int]:
        """(bytes in use, peak bytes in use, live buffers) of device ``index``."""
        with self._lock:
            return self._in_use[index], self._peak[index], self._live[index]


class PjrtStream:
    """A stream: an ordered view of JAX's asynchronous dispatch on one device.

    ``pending`` holds the arrays launched since the last synchronize that may still be
    running (finished ones are dropped as new ones come, so the stream does not keep device
    memory alive for long): a synchronize waits for every launch, even one whose result
    nobody holds, as the contract says.

    A launch appends to ``pending`` without taking ``lock`` (an append is atomic under the
    GIL; the compiled bound launch appends in C). Everything that removes from it holds
    ``lock`` and removes only from the first ``len(pending)`` entries it saw, with one slice
    operation, so an append made meanwhile by another thread is never lost. The list object
    itself is never replaced.
    """

    __slots__ = ("__weakref__", "destroyed", "device", "lock", "pending")

    def __init__(self, device: int) -> None:
        self.device = device
        self.pending: list[Any] = []
        self.destroyed = False
        self.lock = threading.Lock()

    def produced(self, array: Any) -> None:
        pending = self.pending
        pending.append(array)
        if len(pending) > 8:
            _prune(self)

    def take(self) -> list[Any]:
        """Remove and return the pending arrays (what a synchronize waits for)."""
        with self.lock:
            pending = self.pending
            taken = pending[: len(pending)]
            del pending[: len(taken)]
            return taken

    def live(self) -> list[Any]:
        with self.lock:
            return list(self.pending)


def _configure_compiled() -> None:
    """Give the compiled side the two types whose slots it reads and writes, and the
    Python it hands a stream of another type to."""
    if _FAST is not None:
        _FAST.configure(buffer_type=PjrtBuffer, stream_type=PjrtStream, synchronize=_synchronize)


class PjrtEvent:
    """A readiness marker: reached when the arrays launched before it are ready."""

    __slots__ = ("arrays", "device")

    def __init__(self, device: int, arrays: list[Any]) -> None:
        self.device = device
        self.arrays = arrays


# A view of a buffer as the compiled function sees it: the buffer's flat length and dtype,
# and the operand's dtype, shape, strides and offset (elements of the operand's dtype).
_Layout = tuple[Any, int, Any, tuple[int, ...], tuple[int, ...], int]


class PjrtBackend(Backend):
    """The contract on PJRT through JAX. Subclasses set the class attributes below."""

    #: the JAX platform name of the hardware (``"tpu"``, ``"neuron"``)
    platform: ClassVar[str]
    #: the hardware family, for messages (``"Google Cloud TPU"``)
    family: ClassVar[str]
    #: environment variable prefix (``"HWABSTRACT_TPU"``)
    env_prefix: ClassVar[str]
    #: how to install the hardware runtime, for the unavailable reason
    install_hint: ClassVar[str]
    profiles: ClassVar[Mapping[str, ChipProfile]]
    default_profile: ClassVar[str]
    #: the stand-in's known conformance failures (entries marked ``standin``), shared by
    #: every PJRT backend; on hardware none of them applies
    conformance_expectations: ClassVar[str | None] = "pjrt-standin-expectations.toml"

    @classmethod
    def environment_for(
        cls, prefix: str, default_profile: str, keys: Sequence[str]
    ) -> dict[str, str]:
        """The environment a PJRT backend reads (for ``Backend.environment``)."""
        return {
            f"{prefix}_STANDIN": "cpu: with no chip present, run on JAX's CPU client as a "
            "stand-in that declares the chip's profile (default: unavailable without a chip)",
            f"{prefix}_STANDIN_MODEL": f"the chip generation a stand-in declares: "
            f"{', '.join(keys)} (default {default_profile})",
            f"{prefix}_STANDIN_DEVICES": "how many devices a stand-in exposes (default 1; set "
            "before JAX's CPU client starts)",
            f"{prefix}_MEMORY": f"memory capacity of each stand-in device (default "
            f"{STANDIN_MEMORY >> 30} GiB; host RAM backs it)",
        }

    def __init__(self) -> None:
        prefix = self.env_prefix
        self.standin_requested = (os.environ.get(f"{prefix}_STANDIN") or "").strip().lower()
        if self.standin_requested not in ("", "cpu"):
            raise BackendUnavailableError(
                self.name,
                f"{prefix}_STANDIN={self.standin_requested!r} is not understood; set it to "
                "'cpu' to run on JAX's CPU client as a stand-in, or unset it",
            )
        model = (os.environ.get(f"{prefix}_STANDIN_MODEL") or self.default_profile).strip()
        if model not in self.profiles:
            raise BackendUnavailableError(
                self.name,
                f"{prefix}_STANDIN_MODEL={model!r} is not a known chip; use one of "
                f"{', '.join(self.profiles)}",
            )
        self.standin_model = model
        count_text = os.environ.get(f"{prefix}_STANDIN_DEVICES") or "1"
        try:
            self.standin_count = int(count_text)
            if self.standin_count < 1:
                raise ValueError
        except ValueError:
            raise BackendUnavailableError(
                self.name, f"{prefix}_STANDIN_DEVICES={count_text!r} is not a positive integer"
            ) from None
        mem = os.environ.get(f"{prefix}_MEMORY")
        try:
            self.standin_memory = _parse_bytes(mem) if mem else STANDIN_MEMORY
        except ValueError as exc:
            raise BackendUnavailableError(
                self.name, f"{prefix}_MEMORY={mem!r} is not a memory size ({exc}); e.g. 1GiB"
            ) from None
        self.standin = False
        self._devices: list[Any] = []
        self._profiles: list[ChipProfile] = []
        self._memory: Any = None  #: PjrtMemory (or its compiled twin), made by probe()
        self._executables: dict[Any, Any] = {}
        self._prepared: dict[Any, Any] = {}
        self._capacities: dict[int, int] = {}
        self._functions: dict[Any, Any] = {}
        self._caps: dict[int, Capabilities] = {}
        self._jax: Any = None

    # -- discovery ---------------------------------------------------------------------------

    def probe(self) -> None:
        try:
            import jax
        except ImportError as exc:
            raise BackendUnavailableError(
                self.name,
                f"jax is not installed ({exc}); {self.install_hint}",
            ) from None
        self._jax = jax
        if self.standin_requested:
            self._request_cpu_devices(jax)
        found, why = self._hardware(jax)
        if found:
            self._devices = found
            self._profiles = [self._profile_of(d) for d in found]
        elif self.standin_requested == "cpu":
            cpus = jax.devices("cpu")
            self._devices = cpus[: self.standin_count]
            self.standin = True
            self._profiles = [self.profiles[self.standin_model]] * len(self._devices)
        else:
            raise BackendUnavailableError(
                self.name,
                f"no {self.family} found through JAX ({why}); {self.install_hint}. On a "
                f"machine without one, set {self.env_prefix}_STANDIN=cpu to run on JAX's CPU "
                "client as a stand-in",
            )
        memory_type = PjrtMemory if _FAST is None else _FAST.Memory
        self._memory = memory_type(
            len(self._devices), PjrtBuffer, self._capacity, self._out_of_memory,
            self._already_freed,
        )  # fmt: skip
        cls = type(self)
        if cls.allocate is PjrtBackend.allocate and cls.free is PjrtBackend.free:
            # called straight, without the methods' frame (instance attributes shadow the
            # methods); a subclass that overrides either keeps its own
            self.allocate = self._memory.allocate  # type: ignore[method-assign]
            self.free = self._memory.free  # type: ignore[method-assign]
        if cls.stream_synchronize is PjrtBackend.stream_synchronize:
            self.stream_synchronize = (  # type: ignore[method-assign]
                _synchronize if _FAST is None else _FAST.synchronize
            )
        #: the standard kernels' namespace (``jax.numpy``): see array_kernels
        self._arrays: ArrayModule = jax_module()

    def _request_cpu_devices(self, jax: Any) -> None:
        """Ask JAX's CPU client for the stand-in's device count, if it has not started."""
        try:
            current = int(jax.config.jax_num_cpu_devices)
            if current < self.standin_count:
                jax.config.update("jax_num_cpu_devices", self.standin_count)
        except (AttributeError, RuntimeError, ValueError):
            pass  # the CPU client is running already: the stand-in uses what it has

    def _hardware(self, jax: Any) -> tuple[list[Any], str]:
        try:
            return list(jax.devices(self.platform)), ""
        except RuntimeError as exc:
            return [], str(exc).splitlines()[0]

    def _profile_of(self, device: Any) -> ChipProfile:
        """The profile whose device kinds match ``device``; for a kind no profile knows (a
        newer or older generation), the default profile's dtypes under the device's own
        name, with the figures marked unknown rather than borrowed silently."""
        kind = str(getattr(device, "device_kind", ""))
        for profile in self.profiles.values():
            if any(k in kind.lower() for k in profile.device_kinds):
                return profile
        base = self.profiles[self.default_profile]
        return attrs.evolve(
            base,
            key="unknown",
            name=f"{self.family} ({kind or 'unknown kind'})",
            peak_ops={},
            notes=f"device kind {kind!r} matches no known generation: the dtypes of "
            f"{base.name} are assumed, memory comes from the PJRT client, peak figures are "
            "unknown",
        )

    def device_count(self) -> int:
        return len(self._devices)

    def device_info(self, index: int) -> DeviceInfo:
        profile = self._profiles[index]
        jax = self._jax
        d = self._devices[index]
        extra = {
            "jax": jax.__version__,
            "pjrt_platform": d.platform,
            "device_kind": str(getattr(d, "device_kind", "")),
            "chip_generation": profile.key,
            "hbm_bandwidth_GBps": f"{profile.hbm_bandwidth / 1e9:g}",
        }
        for name, ops in profile.peak_ops.items():
            extra[f"peak_{name}_TOPS"] = f"{ops / 1e12:g}"
        if self.standin:
            return DeviceInfo(
                name=f"{profile.name} ({STANDIN_LABEL})",
                vendor=profile.vendor,
                model=profile.name,
                memory_capacity=self.standin_memory,
                standin=True,
                standin_for=profile.name,
                modeled_memory_capacity=profile.hbm_bytes,
                driver_version=f"jax {jax.__version__} (PJRT CPU client)",
                description=f"JAX's CPU client standing in for a {profile.name}: results come "
                "from the host CPU, the declared dtypes and limits are the chip's. Proves the "
                "backend's code paths, not the chip's numerics or speed.",
                extra=extra,
            )
        return DeviceInfo(
            name=profile.name,
            vendor=profile.vendor,
            model=profile.name,
            memory_capacity=self._capacity(index),
            driver_version=f"jax {jax.__version__} (PJRT {d.platform})",
            description=f"{profile.name} through PJRT ({d.platform}) via JAX",
            extra=extra,
        )

    def _capacity(self, index: int) -> int:
        """The device's capacity: the stand-in's setting, else the PJRT client's limit (or
        the chip's HBM where the client does not say), read once."""
        if self.standin:
            return self.standin_memory
        cached = self._capacities.get(index)
        if cached is None:
            stats = self._device_stats(index)
            limit = stats.get("bytes_limit") if stats else None
            cached = self._capacities[index] = (
                int(limit) if limit else self._profiles[index].hbm_bytes
            )
        return cached

    def _device_stats(self, index: int) -> dict[str, Any] | None:
        try:
            return self._devices[index].memory_stats()
        except Exception:
            return None

    def capabilities(self, index: int) -> Capabilities:
        caps = self._caps.get(index)
        if caps is None:
            from ..kernels import all_specs

            profile = self._profiles[index]
            dtypes = {dt.dtype(name): support for name, support in profile.dtypes.items()}
            kernels = {}
            for spec in all_specs():
                ok = frozenset(
                    d for d in spec.dtypes if d in dtypes and _outputs_in(spec, d, dtypes)
                )
                if ok:
                    kernels[spec.name] = ok
            features = {Feature.CONCURRENT_STREAMS}
            if len(self._devices) > 1:
                features.add(Feature.PEER_COPY)
            capacity = self._capacity(index)
            caps = Capabilities(
                dtypes=dtypes,
                kernels=kernels,
                features=frozenset(features),
                limits=Limits(memory_capacity=capacity, max_allocation=capacity, max_dims=32),
            )
            # every OCP MX format, composed by the core from the standard kernels (integer
            # arithmetic on the values' bits, exact even though XLA flushes subnormals) --
            # where the profile declares the integer kernels that takes
            from ..mx.emulated import MX_FORMAT_NAMES, missing

            if not missing(caps):
                mx = dict.fromkeys(MX_FORMAT_NAMES, DTypeSupport.EMULATED)
                caps = attrs.evolve(caps, mx_formats=mx)
            self._caps[index] = caps
        return caps

    # -- memory ------------------------------------------------------------------------------

    def allocate(self, index: int, nbytes: int) -> PjrtBuffer:
        return self._memory.allocate(index, nbytes)

    def free(self, buffer: PjrtBuffer) -> None:
        self._memory.free(buffer)

    def _out_of_memory(self, index: int, nbytes: int, free: int, capacity: int) -> Exception:
        return OutOfMemoryError(f"{self.name}:{index}", nbytes, free, capacity)

    @staticmethod
    def _already_freed(buffer: PjrtBuffer) -> Exception:
        return DeviceError(f"{buffer!r} was already freed")

    def memory_stats(self, index: int) -> MemoryStats:
        """The stand-in's accounting of live buffers; on hardware, the PJRT client's own
        figures where it reports them (they include memory JAX itself holds)."""
        capacity = self._capacity(index)
        in_use, peak, live = self._memory.counts(index)
        stats = None if self.standin else self._device_stats(index)
        if stats and "bytes_in_use" in stats:
            in_use = int(stats["bytes_in_use"])
            peak = int(stats.get("peak_bytes_in_use", max(peak, in_use)))
            live = int(stats.get("num_allocs", live))
        return MemoryStats(
            in_use=in_use,
            peak=peak,
            capacity=capacity,
            free=max(0, capacity - in_use),
            allocations=live,
        )

    # -- streams and events ------------------------------------------------------------------

    def create_stream(self, index: int) -> PjrtStream:
        return PjrtStream(index)

    def destroy_stream(self, stream: PjrtStream) -> None:
        stream.destroyed = True

    def _live_stream(self, stream: PjrtStream) -> PjrtStream:
        if stream.destroyed:
            raise StreamError("the stream was destroyed; create a new one")
        return stream

    def stream_synchronize(self, stream: PjrtStream) -> None:
        _synchronize(stream)

    def stream_query(self, stream: PjrtStream) -> bool:
        return _prune(stream)

    def record_event(self, stream: PjrtStream, timing: bool) -> PjrtEvent:
        return PjrtEvent(stream.device, self._live_stream(stream).live())

    def stream_wait_event(self, stream: PjrtStream, event: PjrtEvent) -> None:
        # Nothing to do on the device: every read sees the array of the last write to its
        # buffer, whichever stream queued it (see the module docstring).
        self._live_stream(stream)

    def event_query(self, event: PjrtEvent) -> bool:
        event.arrays = [a for a in event.arrays if not _ready(a)]
        return not event.arrays

    def event_synchronize(self, event: PjrtEvent) -> None:
        for array in event.arrays:
            _wait(array)
        event.arrays = []

    # -- layouts -----------------------------------------------------------------------------

    @staticmethod
    def _layout(op: Operand, buffer_dtype: Any) -> _Layout:
        """What the compiled function needs to know about an operand (a hashable key)."""
        stored = np.dtype(buffer_dtype) if buffer_dtype is not None else op.dtype.numpy_dtype
        return (stored, op.buffer.nbytes, op.dtype.numpy_dtype, op.shape, op.strides, op.offset)

    @staticmethod
    def _is_whole(layout: _Layout) -> bool:
        """The operand covers its buffer exactly, densely, from the start."""
        _, nbytes, dtype, shape, strides, offset = layout
        size = math.prod(shape)
        if offset or size * dtype.itemsize != nbytes:
            return False
        return Operand(None, dt.dtype(dtype), shape, strides, 0).is_contiguous

    def _bits_in(self, flat: Any, layout: _Layout) -> Any:
        """Traced: the buffer as unsigned integers of the operand's width (data moves as
        bits, so NaN payloads, subnormals and -0.0 survive any gather or scatter)."""
        jnp = self._jax.numpy
        _, nbytes, dtype, _, _, _ = layout
        if flat is None:
            return jnp.zeros((nbytes // dtype.itemsize,), _uint(dtype.itemsize))
        flat = flat.reshape(-1)  # (a buffer's array may hold the shape it was written in)
        bits = _to_bits(self._jax, flat)
        if flat.dtype.itemsize == dtype.itemsize:
            return bits
        raw = self._jax.lax.bitcast_convert_type(bits, jnp.uint8).reshape(-1)
        if dtype.itemsize == 1:
            return raw
        return self._jax.lax.bitcast_convert_type(
            raw.reshape(-1, dtype.itemsize), _uint(dtype.itemsize)
        )

    def _read_operand(self, flat: Any, layout: _Layout) -> Any:
        """Traced: the operand's elements, in its shape and dtype."""
        jnp = self._jax.numpy
        _, _, dtype, shape, strides, offset = layout
        if flat is None:
            # an unwritten buffer reads as zeros -- in the operand's dtype, not through its
            # bits: complex64's would be uint64, which JAX lacks without x64
            return jnp.zeros(shape, dtype)
        flat = flat.reshape(-1)  # (a buffer's array may hold the shape it was written in)
        if flat.dtype == dtype:
            if self._is_whole(layout):
                return flat.reshape(shape)  # the common case: no data movement at all
            block = _dense_block(shape, strides)
            if block is not None:  # a broadcast scalar or row, in its own dtype: no bitcasts
                size = math.prod(block)
                return jnp.broadcast_to(flat[offset : offset + size].reshape(block), shape)
        bits = self._bits_in(flat, layout)
        if self._is_whole(layout):
            picked = bits.reshape(shape)
        else:
            block = _dense_block(shape, strides)
            if block is not None:  # a broadcast of a dense block (a scalar, a row, ...)
                size = math.prod(block)
                picked = jnp.broadcast_to(bits[offset : offset + size].reshape(block), shape)
            else:
                picked = bits[_indices(jnp, shape, strides, offset, bits.shape[0])]
        return _from_bits(self._jax, picked, dtype)

    def _write_operand(self, old: Any, layout: _Layout, value: Any) -> Any:
        """Traced: the buffer's new array (in the old array's shape), the operand's elements
        replaced by ``value`` (stored in the operand's dtype)."""
        jnp = self._jax.numpy
        _, _, dtype, shape, strides, offset = layout
        bits = self._bits_in(old, layout)
        new = bits.at[_indices(jnp, shape, strides, offset, bits.shape[0])].set(
            _to_bits(self._jax, value.astype(dtype))
        )
        new = _from_bits(self._jax, new, dtype)
        # in the old array's shape, so that a donated old array can hold the new one
        return new if old is None else new.reshape(old.shape)

    # -- execution ---------------------------------------------------------------------------

    def _executable(self, key: Any, build: Any, donate: tuple[int, ...]) -> Any:
        exe = self._executables.get(key)
        if exe is None:
            if len(self._executables) > 4096:
                self._executables.clear()
            exe = self._executables[key] = self._jax.jit(build(), donate_argnums=donate)
        return exe

    def _run(self, stream: PjrtStream, tag: Any, fn: Any, inputs: Sequence[Operand],
             output: Operand) -> None:  # fmt: skip
        """Read ``inputs``, apply ``fn``, write ``output``: one compiled launch."""
        if stream.destroyed:
            raise StreamError("the stream was destroyed; create a new one")
        out_buf = output.buffer
        reads_out = False
        for op in inputs:
            if op.buffer is out_buf:
                reads_out = True
        signature = _signature(tag, inputs, output, out_buf.kind, reads_out)
        prepared = self._prepared.get(signature)
        if prepared is None:
            prepared = self._prepare(signature, fn, inputs, output, reads_out)
        exe, needs_old, donates, x64 = prepared
        args = [op.buffer.array for op in inputs]
        if needs_old:
            args.append(out_buf.array)
            if donates and out_buf.array is None:  # nothing to donate: another executable
                exe, needs_old, donates, x64 = self._prepare(
                    (*signature, "no-donation"), fn, inputs, output, True
                )
        device = self._devices[out_buf.device]
        if len(self._devices) > 1:
            args = [self._on(device, a) for a in args]
        # Scoped settings only where needed: they take the call off JAX's C++ fast path.
        # 64-bit dtypes need x64 (never set globally: the user's JAX keeps its setting); a
        # launch with no input array needs to be told its device. (A prepared launch's
        # inputs are all written: their kinds are part of its signature.)
        if x64 or not any(a is not None for a in args):
            result = self._scoped(exe, args, x64, device)
        else:
            result = exe(*args)
        out_buf.array = result
        out_buf.kind = output.dtype
        stream.produced(result)

    def _scoped(self, exe: Any, args: Sequence[Any], x64: bool, device: Any) -> Any:
        with self._jax.enable_x64(x64), self._jax.default_device(device):
            return exe(*args)

    def _prepare(self, signature: Any, fn: Any, inputs: Sequence[Operand], output: Operand,
                 reads_out: bool) -> tuple[Any, bool, bool, bool]:  # fmt: skip
        """Compile (or find) the executable of a launch signature."""
        in_layouts = tuple(self._layout(op, _dtype_of(op.buffer)) for op in inputs)
        out_layout = self._layout(output, _dtype_of(output.buffer))
        # a partial write needs the old contents: passed in (and donated unless also read)
        needs_old = not self._is_whole(out_layout)
        donates = needs_old and not reads_out
        none_inputs = tuple(op.buffer.array is None for op in inputs)
        key = (signature[0], in_layouts, out_layout, needs_old, donates, none_inputs)
        this = self

        def build() -> Any:
            def launch(*args: Any) -> Any:
                arrays = [this._read_operand(a, lay) for a, lay in zip(args, in_layouts)]
                value = fn(*arrays)
                if isinstance(value, tuple):  # a kernel with several outputs, asked for one
                    value = value[0]
                if not needs_old:
                    # kept in its own shape: flattening a row-wise result in the same
                    # program costs XLA:CPU its vectorized loop (softmax on 256x1024: 1.11x)
                    return value
                return this._write_operand(args[len(in_layouts)], out_layout, value)

            return launch

        exe = self._executable(key, build, (len(inputs),) if donates else ())
        x64 = any(_needs_x64(lay) for lay in (*in_layouts, out_layout))
        prepared = (exe, needs_old, donates, x64)
        if not any(none_inputs):  # (a launch reading unwritten buffers is not kept)
            if len(self._prepared) > 8192:
                self._prepared.clear()
            self._prepared[signature] = prepared
        return prepared

    def _on(self, device: Any, array: Any) -> Any:
        """``array`` on ``device`` (None stays None: an unwritten buffer reads as zeros)."""
        if array is None:
            return None
        if device not in array.devices():
            return self._jax.device_put(array, device)
        return array

    def launch(self, stream: PjrtStream, kernel: str, inputs: Sequence[Operand],
               outputs: Sequence[Operand], attributes: Mapping[str, Any]) -> None:  # fmt: skip
        tag = _tag(kernel, attributes)
        fn = self._functions.get(tag)
        if fn is None:
            fn = self._functions[tag] = kernel_function(self._arrays, kernel, attributes)
        try:
            if len(outputs) == 1:
                self._run(stream, tag, fn, inputs, outputs[0])
            else:
                self._run_many(stream, tag, fn, inputs, outputs)
        except HwAbstractError:
            raise
        except _REFUSED as exc:
            raise self._refused(kernel, inputs, exc) from exc

    def _refused(self, kernel: str, inputs: Sequence[Operand], exc: Exception) -> KernelError:
        """What JAX refuses while tracing (an index into an empty axis, ...), as the SDK's
        error: nothing ran."""
        return KernelError(
            f"JAX could not run kernel {kernel!r} on {self.name} for "
            f"{[str(op.dtype) for op in inputs]}: {exc}",
            vendor_message=f"{type(exc).__name__}: {exc}",
        )

    def bind_launch(self, kernel: str, inputs: Sequence[Operand], outputs: Sequence[Operand],
                    attributes: Mapping[str, Any]) -> BoundLaunch | None:  # fmt: skip
        """The prepared executable of a launch :meth:`launch` just ran, called directly: only
        the input buffers' sizes and the dtypes their arrays hold (which the executable was
        traced for) are checked per call; where they differ, :meth:`launch` takes over."""
        if len(outputs) != 1:
            return None
        output = outputs[0]
        # the signature of a launch into a new (unwritten) output buffer that no input reads,
        # as the core's are: a launch with any other has no prepared entry under it
        prepared = self._prepared.get(
            _signature(_tag(kernel, attributes), inputs, output, None, False)
        )
        if prepared is None:
            return None  # (a launch reading unwritten buffers is not kept)
        exe, needs_old, _, x64 = prepared
        if needs_old:
            return None
        kinds = tuple(op.buffer.kind for op in inputs)
        sizes = tuple(op.buffer.nbytes for op in inputs)
        out_dtype = output.dtype
        device = self._devices[output.buffer.device]
        multi = len(self._devices) > 1
        scoped = x64 or not inputs
        this = self

        def bound(stream: PjrtStream, buffers: Sequence[PjrtBuffer],
                  out_buffers: Sequence[PjrtBuffer]) -> None:  # fmt: skip
            out = out_buffers[0]
            args = []
            for buffer, kind, size in zip(buffers, kinds, sizes):
                if buffer.kind is not kind or buffer.nbytes != size:
                    break
                args.append(buffer.array)
            else:
                if out.kind is None and not stream.destroyed:
                    if multi:
                        args = [this._on(device, a) for a in args]
                    try:
                        result = this._scoped(exe, args, x64, device) if scoped else exe(*args)
                    except _REFUSED as exc:
                        raise this._refused(kernel, inputs, exc) from exc
                    out.array = result
                    out.kind = out_dtype
                    stream.produced(result)
                    return
            # what the executable was not specialized for (or a destroyed stream, which
            # launch() refuses)
            this.launch(
                stream,
                kernel,
                [op._replace(buffer=b) for op, b in zip(inputs, buffers)],
                [output._replace(buffer=out)],
                attributes,
            )

        if _FAST is None or scoped or len(inputs) > 16:  # (BoundCall's limit)
            return bound
        # the same checks and launch, compiled; `bound` takes every other case
        return _FAST.BoundCall(
            exe, kinds, sizes, out_dtype, device if multi else None, bound, _REFUSED,
            lambda exc: this._refused(kernel, inputs, exc), _prune,
        )  # fmt: skip

    def _run_many(self, stream: PjrtStream, tag: Any, fn: Any, inputs: Sequence[Operand],
                  outputs: Sequence[Operand]) -> None:  # fmt: skip
        """Read ``inputs``, apply ``fn`` (a tuple of results), write each result into its
        output: one compiled launch, like :meth:`_run` (kernels with several outputs are
        not on a hot path: no donation, and no cache of prepared launches but the
        executables'). Outputs sharing a buffer are written into it in order."""
        if stream.destroyed:
            raise StreamError("the stream was destroyed; create a new one")
        buffers: list[Any] = []  # the distinct output buffers, in order
        slots: list[int] = []  # per output, its buffer's place in ``buffers``
        for op in outputs:
            found = next((i for i, b in enumerate(buffers) if b is op.buffer), None)
            if found is None:
                found = len(buffers)
                buffers.append(op.buffer)
            slots.append(found)
        in_layouts = tuple(self._layout(op, _dtype_of(op.buffer)) for op in inputs)
        out_layouts = tuple(self._layout(op, _dtype_of(op.buffer)) for op in outputs)
        # a buffer needs its old contents unless one output covers it whole
        needs_old = tuple(
            not (slots.count(i) == 1 and self._is_whole(out_layouts[slots.index(i)]))
            for i in range(len(buffers))
        )
        args = [op.buffer.array for op in inputs]
        args += [b.array for b, old in zip(buffers, needs_old) if old]
        key = ("many", tag, in_layouts, out_layouts, tuple(slots), needs_old,
               tuple(a is None for a in args))  # fmt: skip
        this = self

        def build() -> Any:
            def launch(*flat: Any) -> Any:
                arrays = [this._read_operand(a, lay) for a, lay in zip(flat, in_layouts)]
                values = fn(*arrays)
                if not isinstance(values, tuple):
                    values = (values,)
                if len(values) < len(out_layouts):
                    raise KernelError(
                        f"kernel {tag[0]!r} computes {len(values)} result(s), not the "
                        f"{len(out_layouts)} outputs it was launched with"
                    )
                olds = iter(flat[len(in_layouts) :])
                current = [next(olds) if old else None for old in needs_old]
                for value, slot, lay in zip(values, slots, out_layouts):
                    if needs_old[slot]:
                        current[slot] = this._write_operand(current[slot], lay, value)
                    else:
                        current[slot] = value.astype(lay[2]).reshape(-1)
                return tuple(current)

            return launch

        exe = self._executable(key, build, ())
        device = self._devices[outputs[0].buffer.device]
        if len(self._devices) > 1:
            args = [self._on(device, a) for a in args]
        x64 = any(_needs_x64(lay) for lay in (*in_layouts, *out_layouts))
        with self._jax.enable_x64(x64), self._jax.default_device(device):
            results = exe(*args)
        for i, (buffer, result) in enumerate(zip(buffers, results)):
            buffer.array = result
            buffer.kind = outputs[len(slots) - 1 - slots[::-1].index(i)].dtype  # its last
            stream.produced(result)

    # -- data movement -----------------------------------------------------------------------

    def copy_from_host(self, stream: PjrtStream, dst: Operand, src: np.ndarray) -> None:
        stream = self._live_stream(stream)
        device = self._devices[dst.buffer.device]
        host = np.ascontiguousarray(src).reshape(-1)
        layout = self._layout(dst, dst.dtype.numpy_dtype)
        if host.dtype in _WIDE:
            with self._jax.enable_x64(True):
                uploaded = self._jax.device_put(host, device)
        else:
            uploaded = self._jax.device_put(host, device)
        if self._is_whole(layout):
            dst.buffer.array = uploaded
            dst.buffer.kind = dst.dtype
            stream.produced(uploaded)
            return
        source = Operand(_Staged(uploaded, host.nbytes, dst.dtype), dst.dtype, dst.shape,
                         _contiguous(dst.shape), 0)  # fmt: skip
        self._run(stream, ("copy",), lambda x: x, [source], dst)

    def copy_to_host(self, stream: PjrtStream, dst: np.ndarray, src: Operand) -> None:
        self._live_stream(stream)
        layout = self._layout(src, _dtype_of(src.buffer))
        array = src.buffer.array
        if array is None:
            dst[...] = np.zeros((), dst.dtype)
            return
        if self._is_whole(layout) and array.dtype == src.dtype.numpy_dtype:
            value = array
        else:
            value = self._read(src)
        host = np.asarray(value)
        np.copyto(dst, host.reshape(dst.shape), casting="no")

    def _read(self, op: Operand) -> Any:
        """The operand's elements as a dense array (compiled gather)."""
        layout = self._layout(op, _dtype_of(op.buffer))
        key = ("read", layout)
        this = self

        def build() -> Any:
            return lambda flat: this._read_operand(flat, layout)

        exe = self._executable(key, build, ())
        with self._jax.enable_x64(_needs_x64(layout)):
            return exe(op.buffer.array)

    def copy(self, stream: PjrtStream, dst: Operand, src: Operand) -> None:
        self._run(stream, ("copy",), lambda x: x, [src], dst)

    def copy_peer(self, stream: PjrtStream, dst: Operand, src: Operand) -> None:
        stream = self._live_stream(stream)
        if src.buffer.array is None:
            value_host = np.zeros(src.shape, src.dtype.numpy_dtype)
            self.copy_from_host(stream, dst, value_host)
            return
        dense = self._read(src)
        with self._jax.enable_x64(dense.dtype in _WIDE):
            moved = self._jax.device_put(dense.reshape(-1), self._devices[dst.buffer.device])
        staged = Operand(_Staged(moved, src.size * src.dtype.itemsize, src.dtype), src.dtype,
                         src.shape,
                         _contiguous(src.shape), 0)  # fmt: skip
        self._run(stream, ("copy",), lambda x: x, [staged], dst)


class _Staged:
    """A transient buffer around an array already on the device (uploads into views)."""

    __slots__ = ("array", "device", "kind", "nbytes")

    def __init__(self, array: Any, nbytes: int, kind: Any) -> None:
        self.array = array
        self.nbytes = nbytes
        self.kind = kind
        self.device = -1


class _DTypeOnly:
    """An operand that has only a dtype (for a spec's dtype rule)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype


def _outputs_in(spec: Any, compute: Any, dtypes: Mapping[Any, Any]) -> bool:
    """Whether ``spec`` computed in ``compute`` makes outputs of ``dtypes`` only: ``rfft``
    of float32 makes complex64, which a chip without complex dtypes lacks. True where the
    dtype rule cannot tell from one dtype for every operand (``take``'s integer indices)."""
    operands = [None if name.endswith("?") else _DTypeOnly(compute) for name in spec.inputs]
    try:
        _, outs = spec.dtype_rule(operands, dict(spec.attributes))
    except Exception:
        return True
    return all(out in dtypes for out in outs)


#: what JAX raises for a launch it refuses while tracing (the launch then did not run)
_REFUSED = (TypeError, ValueError, IndexError, NotImplementedError)


def _tag(kernel: str, attributes: Mapping[str, Any]) -> tuple[Any, ...]:
    """A launch's kernel and attributes, hashable: what picks its traced function."""
    attrs_key = (
        tuple(sorted((k, _hashable(v)) for k, v in attributes.items())) if attributes else ()
    )
    return (kernel, attrs_key)


def _signature(tag: Any, inputs: Sequence[Operand], output: Operand, out_kind: Any,
               reads_out: bool) -> tuple[Any, ...]:  # fmt: skip
    """Everything a launch's executable depends on, cheaply hashable (DTypes hash by
    identity): a launch is prepared once per signature, then only looked up."""
    return (
        tag,
        tuple((op.dtype, op.shape, op.strides, op.offset, op.buffer.nbytes, op.buffer.kind)
              for op in inputs),
        (output.dtype, output.shape, output.strides, output.offset, output.buffer.nbytes,
         out_kind),
        reads_out,
    )  # fmt: skip


def _synchronize(stream: PjrtStream) -> None:
    """Take the pending arrays and wait for them, so that nothing is left to do once the
    last wait returns; launches queued meanwhile (another thread) stay pending. (Compiled
    twin: ``_pjrtfast.synchronize``.)"""
    pending = stream.take()
    for i, array in enumerate(pending):
        try:
            _wait(array)
        except BaseException:
            with stream.lock:  # what was not waited for stays pending
                stream.pending[:0] = pending[i:]
            raise


def _prune(stream: PjrtStream) -> bool:
    """Drop the arrays of ``stream.pending`` that have finished; whether none is left."""
    with stream.lock:
        pending = stream.pending
        n = len(pending)
        pending[:n] = [a for a in pending[:n] if not _ready(a)]  # (appends past n stay)
        return not pending


def _ready(array: Any) -> bool:
    """Whether an array marker is reached. An array donated to a later launch is deleted:
    its successor, queued after it, carries the ordering from then on."""
    return bool(array.is_deleted() or array.is_ready())


def _wait(array: Any) -> None:
    """Wait for ``array``. A deleted array (donated to a later launch, which carries the
    ordering) needs no wait; ``block_until_ready`` refuses it, so the question is asked only
    then (one call fewer per wait, which right after a wait costs a few tenths of a µs)."""
    try:
        array.block_until_ready()
    except Exception:
        if not array.is_deleted():
            raise


#: dtypes JAX keeps only with x64 enabled
_WIDE = frozenset(np.dtype(n) for n in ("int64", "uint64", "float64", "complex128"))


def _dense_block(shape: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, ...] | None:
    """If the view broadcasts a C-contiguous block (stride 0 on the broadcast dimensions,
    dense strides on the rest), the block's shape (1 on broadcast dimensions); else None."""
    block = tuple(1 if st == 0 else n for n, st in zip(shape, strides))
    expected = 1
    for n, st in zip(reversed(block), reversed(strides)):
        if n == 1:
            continue
        if st != expected:
            return None
        expected *= n
    return block


def _needs_x64(layout: _Layout) -> bool:
    """A 64-bit dtype, or a buffer too long for 32-bit element indices."""
    stored, nbytes, dtype = layout[0], layout[1], layout[2]
    return stored in _WIDE or dtype in _WIDE or nbytes // dtype.itemsize >= 2**31


def _dtype_of(buffer: Any) -> Any:
    return None if buffer.array is None else buffer.array.dtype


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    from ..tensor import contiguous_strides

    return contiguous_strides(shape)


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dt.DType):
        return value.name
    return value


def _indices(
    jnp: Any, shape: tuple[int, ...], strides: tuple[int, ...], offset: int, limit: int
) -> Any:
    """Traced: the flat index of each element of a strided view, in the view's shape: int32
    unless the buffer has 2**31 elements or more (then int64, under x64: see _huge)."""
    kind = jnp.int64 if limit >= 2**31 else jnp.int32
    index = jnp.full(shape, offset, dtype=kind)
    for axis, (size, stride) in enumerate(zip(shape, strides)):
        if size > 1 and stride:
            along = jnp.arange(size, dtype=kind) * stride
            index = index + along.reshape((1,) * axis + (size,) + (1,) * (len(shape) - axis - 1))
    return index


def _uint(itemsize: int) -> Any:
    return np.dtype(f"u{itemsize}")


def _to_bits(jax: Any, x: Any) -> Any:
    """Traced: ``x`` reinterpreted as unsigned integers of its width (bool as 0/1 bytes)."""
    if x.dtype == np.dtype(bool):
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.unsignedinteger):
        return x
    return jax.lax.bitcast_convert_type(x, _uint(x.dtype.itemsize))


def _from_bits(jax: Any, bits: Any, dtype: Any) -> Any:
    """Traced: unsigned integers of ``dtype``'s width reinterpreted as ``dtype``."""
    if dtype == np.dtype(bool):
        return bits != 0
    if bits.dtype == dtype:
        return bits
    return jax.lax.bitcast_convert_type(bits, dtype)


_configure_compiled()
