"""The cpu reference backend: configuration, manifest, device info, memory accounting, its
streams (worker threads), and its behaviour at interpreter shutdown."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable

import numpy as np
import pytest

import hwabstract as hw
from hwabstract.backend import API_LEVEL, DTypeSupport, Feature
from hwabstract.backends import cpu
from hwabstract.backends.cpu import CpuBackend, parse_bytes
from hwabstract.kernels import all_specs, get_spec
from hwabstract.registry import Registry

# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1048576),
        ("512MiB", 512 * 1024**2),
        ("1KiB", 1024),
        ("2G", 2 * 1000**3),
        ("1GB", 1000**3),
        ("1.5k", 1500),
        (" 64 mib ", 64 * 1024**2),
        ("3TiB", 3 * 1024**4),
        (".5M", 500_000),
    ],
)
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-5", "0", "1.2.3", "5X", "inf", "nan", "MiB", "1e3"])
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"byte count .* (use e\.g\.|must be positive)"):
        parse_bytes(text)


def test_device_count_and_memory_from_the_environment(
    fresh_registry: Callable[..., Registry],
) -> None:
    fresh_registry(HWABSTRACT_CPU_DEVICES="3", HWABSTRACT_CPU_MEMORY="2MiB")
    devices = hw.devices("cpu")
    assert [d.name for d in devices] == ["cpu:0", "cpu:1", "cpu:2"]
    for d in devices:
        assert d.info.memory_capacity == 2 * 1024**2
        assert d.capabilities.limits.memory_capacity == 2 * 1024**2
        assert d.memory_stats().capacity == 2 * 1024**2


def test_empty_variables_mean_the_defaults(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry(HWABSTRACT_CPU_DEVICES="", HWABSTRACT_CPU_MEMORY="")
    assert [d.name for d in hw.devices("cpu")] == ["cpu:0"]
    assert hw.device("cpu").info.memory_capacity == cpu._physical_memory()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HWABSTRACT_CPU_DEVICES", "two", "HWABSTRACT_CPU_DEVICES='two' is not a positive integer"),
        ("HWABSTRACT_CPU_DEVICES", "0", "HWABSTRACT_CPU_DEVICES='0' is not a positive integer"),
        ("HWABSTRACT_CPU_DEVICES", "-2", "HWABSTRACT_CPU_DEVICES='-2' is not a positive integer"),
        ("HWABSTRACT_CPU_MEMORY", "lots", "HWABSTRACT_CPU_MEMORY='lots' is not a usable memory"),
        ("HWABSTRACT_CPU_MEMORY", "0", "HWABSTRACT_CPU_MEMORY='0' is not a usable memory size"),
        ("HWABSTRACT_CPU_MEMORY", "-1G", "HWABSTRACT_CPU_MEMORY='-1G' is not a usable memory"),
    ],
)
def test_bad_configuration_makes_cpu_unavailable_with_the_reason(
    fresh_registry: Callable[..., Registry], variable: str, value: str, message: str
) -> None:
    other = (
        "HWABSTRACT_CPU_MEMORY"
        if variable == "HWABSTRACT_CPU_DEVICES"
        else "HWABSTRACT_CPU_DEVICES"
    )
    fresh_registry(**{variable: value, other: None, "HWABSTRACT_PLUGINS": None})
    status = next(s for s in hw.backends() if s.name == "cpu")
    assert status.status == "unavailable"
    assert message in status.reason
    assert "unset it" in status.reason  # what to do
    with pytest.raises(hw.BackendUnavailableError, match="backend 'cpu' is unavailable"):
        hw.device("cpu")


# -- manifest and info ----------------------------------------------------------------------------


def test_capabilities_manifest_is_consistent() -> None:
    caps = hw.device("cpu").capabilities
    assert caps is hw.device("cpu").capabilities  # cached
    assert set(caps.dtypes) == set(hw.all_dtypes())
    assert all(support is DTypeSupport.NATIVE for support in caps.dtypes.values())
    spec_names = {s.name for s in all_specs()}
    assert set(caps.kernels) == spec_names  # every spec is implemented, nothing else claimed
    for name, dtypes in caps.kernels.items():
        spec = get_spec(name)
        assert dtypes, name
        assert dtypes <= spec.dtypes, name
        assert dtypes <= set(caps.dtypes), name
    for name in ("add", "matmul", "sum", "softmax", "astype", "where"):
        assert caps.supports_kernel(name, hw.float32)
    assert caps.features == {
        Feature.CONCURRENT_STREAMS,
        Feature.EVENT_TIMING,
        Feature.PEER_COPY,
        Feature.DLPACK,
        Feature.SUBNORMALS,
    }
    assert not caps.has_feature(Feature.MX_FORMATS)
    assert caps.limits.max_dims == 32
    assert caps.limits.max_allocation == caps.limits.memory_capacity


def test_device_info() -> None:
    info = hw.device("cpu").info
    assert info.name.startswith("host CPU") and info.name.endswith("via NumPy")
    assert (info.vendor, info.model) == ("hwabstract", "NumPy reference")
    assert info.driver_version == f"numpy {np.__version__}"
    assert info.standin is False
    assert int(info.extra["cores"]) >= 1
    assert "worker thread per stream" in info.description


def test_registered_through_the_plugin_hook() -> None:
    assert cpu.hwabstract_backends() == [CpuBackend]
    assert (CpuBackend.name, CpuBackend.api_level, CpuBackend.priority) == ("cpu", API_LEVEL, 0)
    status = next(s for s in hw.backends() if s.name == "cpu")
    assert (status.plugin, status.distribution, status.status) == ("cpu", "hwabstract", "ok")


# -- memory ---------------------------------------------------------------------------------------


def test_memory_stats_in_use_peak_allocations_free(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry(HWABSTRACT_CPU_MEMORY="1MiB", HWABSTRACT_CPU_DEVICES=None)
    impl = hw.device("cpu")._impl
    start = impl.memory_stats(0)
    assert (start.in_use, start.peak, start.allocations, start.free) == (0, 0, 0, 1024**2)
    a = impl.allocate(0, 1000)
    b = impl.allocate(0, 3000)
    zero = impl.allocate(0, 0)
    stats = impl.memory_stats(0)
    assert (stats.in_use, stats.peak, stats.allocations) == (4000, 4000, 3)
    assert stats.free == 1024**2 - 4000
    impl.free(b)
    stats = impl.memory_stats(0)
    assert (stats.in_use, stats.peak, stats.allocations) == (1000, 4000, 2)
    with pytest.raises(hw.DeviceError, match="already freed"):
        impl.free(b)
    with pytest.raises(hw.OutOfMemoryError) as info:
        impl.allocate(0, 1024**2)
    assert (info.value.requested, info.value.free) == (1024**2, 1024**2 - 1000)
    impl.free(a)
    impl.free(zero)
    end = impl.memory_stats(0)
    assert (end.in_use, end.allocations, end.peak) == (0, 0, 4000)


def test_shared_host_memory_is_accounted_until_released(
    fresh_registry: Callable[..., Registry],
) -> None:
    fresh_registry(HWABSTRACT_CPU_MEMORY=None, HWABSTRACT_CPU_DEVICES=None)
    dev = hw.device("cpu")
    before = dev.memory_stats()
    host = np.zeros(1000, dtype=np.float64)
    shared = hw.asarray(host, copy=False)
    assert dev.memory_stats().in_use == before.in_use + 8000
    assert dev.memory_stats().allocations == before.allocations + 1
    del shared
    assert dev.memory_stats().in_use == before.in_use
    assert host.sum() == 0.0  # the host array itself is untouched and still usable


def test_a_tensor_collected_while_the_memory_lock_is_held_does_not_deadlock(
    fresh_registry: Callable[..., Registry],
) -> None:
    """The cyclic garbage collector can run inside the backend's critical section (any
    allocation may trigger it) and collect a tensor there; freeing its buffer takes the same
    lock again. Simulated here by dropping a tensor while holding the lock, in a thread so
    that a deadlock fails the test instead of hanging it."""
    fresh_registry(HWABSTRACT_CPU_MEMORY=None, HWABSTRACT_CPU_DEVICES=None)
    dev = hw.device("cpu")
    tensor = hw.empty(10, dtype="uint8")
    state = dev._impl._devices[0]
    before = dev.memory_stats().in_use
    finished = threading.Event()
    box = [tensor]
    del tensor

    def drop_inside_the_lock() -> None:
        with state.lock:
            box.clear()  # the last reference: Storage.__del__ frees the buffer right here
        finished.set()

    worker = threading.Thread(target=drop_inside_the_lock, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert finished.is_set()
    assert dev.memory_stats().in_use == before - 10


# -- streams --------------------------------------------------------------------------------------


def test_each_stream_is_a_worker_thread() -> None:
    dev = hw.device("cpu")
    a, b = dev.create_stream(), dev.create_stream()
    assert a.handle.thread is not b.handle.thread
    assert a.handle.thread.is_alive() and a.handle.thread.daemon
    assert a.handle.thread.name.startswith("hwabstract-cpu0-stream")
    ticket = a.handle.submit(lambda: None, "noop")
    assert ticket == a.handle.submitted
    a.synchronize()
    assert a.handle.completed == a.handle.submitted and a.query()


def test_a_destroyed_stream_takes_no_more_work() -> None:
    impl = hw.device("cpu")._impl
    handle = impl.create_stream(0)
    impl.destroy_stream(handle)
    impl.destroy_stream(handle)  # idempotent
    with pytest.raises(hw.StreamError, match="the stream was destroyed; create a new one"):
        handle.submit(lambda: None, "late")
    handle.thread.join(timeout=60)
    assert not handle.thread.is_alive()


def test_no_backend_calls_at_interpreter_shutdown() -> None:
    """Tensors still alive when the interpreter exits (module globals, reference cycles,
    work still queued) must not call into the backend from Storage.__del__: the backend and
    its runtime may already be torn down."""
    script = textwrap.dedent(
        """
        import sys
        import types

        import numpy as np

        import hwabstract as hw
        from hwabstract.backends.cpu import CpuBackend
        from hwabstract.registry import PluginSource, Registry, reset_registry


        class StrictFree(CpuBackend):
            name = "strictfree"

            def free(self, buffer):
                if sys.is_finalizing():
                    raise RuntimeError("free() called during interpreter shutdown")
                super().free(buffer)


        @hw.hookimpl
        def hwabstract_backends():
            return [StrictFree]


        plugin = types.SimpleNamespace(hwabstract_backends=hwabstract_backends)
        reset_registry(Registry([PluginSource("strictfree", lambda: plugin)]))
        dev = hw.device("strictfree")
        stream = dev.create_stream()
        kept = [hw.asarray(np.ones((64, 64), np.float32), device=dev) for _ in range(3)]
        busy = [hw.matmul(k, k, stream=stream) for k in kept]


        class Cycle:
            pass


        cycle = Cycle()
        cycle.me = cycle
        cycle.tensor = hw.zeros(8, device=dev)
        before = dev.memory_stats().in_use
        temporary = hw.empty(100, dtype="uint8", device=dev)
        del temporary  # freed while the interpreter runs: accounted as usual
        assert dev.memory_stats().in_use == before
        print("done")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWABSTRACT_")}
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    assert proc.stderr == ""


# -- the caching pool -----------------------------------------------------------------------------


def test_size_classes_cover_the_request_within_an_eighth() -> None:
    from hwabstract.backends.cpu import size_class

    assert size_class(0) == size_class(1) == size_class(512) == 512
    for n in [513, 4095, 4096, 4097, 10**6, 3 * 2**20 + 1, 2**30 - 7]:
        c = size_class(n)
        assert n <= c <= n * 1.125 + 512 and c % 512 == 0


def test_freed_blocks_are_reused_only_after_queued_work_passes(
    fresh_registry: Callable[..., Registry], gate: Callable[[hw.Stream], threading.Event]
) -> None:
    fresh_registry()
    dev = hw.device("cpu")
    impl = dev._impl
    stream = dev.create_stream()
    a = impl.allocate(dev.index, 4096)
    block = a.block
    opened = gate(stream)  # the stream has queued, unfinished work
    impl.free(a)
    assert dev.memory_stats().cached == 0  # fenced: not reusable yet
    b = impl.allocate(dev.index, 4096)
    assert b.block is not block  # a queued command may still read the freed block
    opened.set()
    stream.synchronize()
    c = impl.allocate(dev.index, 4096)
    assert c.block is block  # the fence passed: the block is reused, no new memory
    impl.free(b)
    stats = dev.memory_stats()
    assert stats.cached == b.block.nbytes and stats.in_use == 4096
    impl.free(c)


def test_the_cache_gives_way_under_memory_pressure(
    fresh_registry: Callable[..., Registry],
) -> None:
    fresh_registry(HWABSTRACT_CPU_MEMORY="1MiB")
    dev = hw.device("cpu")
    impl = dev._impl
    a = impl.allocate(dev.index, 200 * 1024)
    impl.free(a)
    assert dev.memory_stats().cached > 0
    big = impl.allocate(dev.index, 1000 * 1024)  # fits only once the cache is dropped
    stats = dev.memory_stats()
    assert (stats.in_use, stats.cached) == (1000 * 1024, 0)
    impl.free(big)


def test_a_pooled_tensor_never_shows_stale_data_through_reuse() -> None:
    x = hw.asarray(np.arange(1024, dtype=np.float32))
    for i in range(20):  # each result reuses the block its predecessor freed
        y = hw.multiply(x, float(i))
        assert y.numpy()[3] == 3.0 * i
        del y


# -- fault injection --------------------------------------------------------------------------


def test_injected_faults_hit_only_the_named_kernel_and_only_count_times() -> None:
    dev = hw.device("cpu")
    stream = dev.create_stream()
    x = hw.asarray(np.arange(3, dtype=np.float32))
    dev._impl.inject_fault(dev.index, "multiply", count=2)
    assert hw.add(x, x, stream=stream).tolist() == [0.0, 2.0, 4.0]  # another kernel: unaffected
    for _ in range(2):
        hw.multiply(x, x, stream=stream)
        with pytest.raises(hw.KernelError, match="InjectedFault"):
            stream.synchronize()
    assert hw.multiply(x, x, stream=stream).tolist() == [0.0, 1.0, 4.0]  # used up


def test_inject_fault_needs_a_positive_count() -> None:
    dev = hw.device("cpu")
    with pytest.raises(ValueError, match="at least 1"):
        dev._impl.inject_fault(dev.index, None, count=0)


# found by tests/reliability/test_stress.py
def test_cpu_frees_are_fenced_by_streams_created_concurrently(
    gate: Callable[[hw.Stream], threading.Event],
) -> None:
    """The cpu backend fences a freed block against every live stream before reusing it.
    Its list of streams was updated read-copy-assign without a lock, so threads creating
    streams at once lost some of them: a block freed while a lost stream still had a copy
    from it queued went straight back to the pool, the next allocation of its size got it,
    and the copy read the new owner's data. A tiny switch interval makes the lost update
    likely (dozens of 320 streams); with the lock none is lost."""
    dev = hw.device("cpu:0")
    streams: list[hw.Stream] = []
    lock = threading.Lock()

    def create() -> None:
        mine = [dev.create_stream() for _ in range(40)]
        with lock:
            streams.extend(mine)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        creators = [threading.Thread(target=create) for _ in range(8)]
        for th in creators:
            th.start()
        for th in creators:
            th.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(th.is_alive() for th in creators), "stream creation hung"
    want = np.arange(1024, dtype=np.int32)
    wrong = 0
    for s in streams:
        x = hw.asarray(want, device=dev, stream=s)
        s.synchronize()
        opened = gate(s)
        y = hw.asarray(x, copy=True, stream=s)  # queued behind the gate
        del x  # freed while the copy that reads it is queued
        z = hw.asarray(np.full(1024, -1, np.int32), device=dev, stream=dev.default_stream)
        opened.set()
        if not (np.array_equal(y.numpy(), want) and (z.numpy() == -1).all()):
            wrong += 1
    assert wrong == 0, f"{wrong} of {len(streams)} streams read a freed block reused too early"


def test_device_buffers_start_on_a_cache_line() -> None:
    """64-byte aligned blocks: what JAX needs to share a buffer through DLPack (NumPy's own
    arrays are only 16-byte aligned, and JAX copied them)."""
    from hwabstract.backends.cpu import BLOCK_ALIGNMENT

    dev = hw.device("cpu")
    tensors = [hw.empty(n, dtype=hw.uint8, device=dev) for n in (1, 3, 100, 513, 5000, 70_000)]
    for t in tensors:
        address = np.from_dlpack(t).ctypes.data
        assert address % BLOCK_ALIGNMENT == 0, (t.shape, address)
