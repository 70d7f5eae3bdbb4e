"""The maia backend (plugins/maia) through hwabstract's public API, on the libmaia emulator.

Skipped as a whole when the hwabstract-maia distribution is not installed
(``pip install ./plugins/maia``).
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

pytest.importorskip(
    "hwabstract_maia.backend",
    reason="hwabstract-maia is not installed (pip install ./plugins/maia)",
)

import hwabstract as hw

_RNG = np.random.default_rng(1234)


pytestmark = pytest.mark.usefixtures("maia_and_cpu_registry")


@pytest.fixture
def dev() -> hw.Device:
    return hw.device("maia:0")


def _rand(*shape: int) -> np.ndarray:
    return _RNG.standard_normal(shape).astype(np.float32)


# -- discovery --------------------------------------------------------------------------------


def test_discovery_lists_two_standin_devices_above_cpu() -> None:
    names = [d.name for d in hw.devices()]
    assert names[:2] == ["maia:0", "maia:1"]
    status = next(b for b in hw.backends() if b.name == "maia")
    assert (status.status, status.device_count, status.standin) == ("ok", 2, True)
    assert hw.device().name == "maia:0"  # priority above cpu
    info = hw.device("maia:1").info
    assert "Maia 200 (emulated)" in info.name
    assert info.vendor == "Microsoft"
    assert info.standin and info.standin_for == "Microsoft Maia 200"
    assert info.modeled_memory_capacity == 216 * 10**9
    assert 0 < info.memory_capacity < info.modeled_memory_capacity


def test_manifest_declares_only_what_libmaia_implements(dev: hw.Device) -> None:
    caps = dev.capabilities
    assert hw.float64 not in caps.dtypes
    assert hw.complex64 not in caps.dtypes
    assert caps.supports_dtype(hw.bfloat16)
    assert caps.supports_kernel("matmul", hw.float32)
    assert not caps.supports_kernel("matmul", hw.float64)
    assert caps.supports_kernel("reshape", hw.bfloat16)
    for feature in ("concurrent_streams", "event_timing", "peer_copy"):
        assert caps.has_feature(feature)
    with pytest.raises(hw.UnsupportedError):
        hw.asarray(np.ones(3), device=dev)  # float64


def test_importing_the_plugin_module_does_not_load_the_binding() -> None:
    import subprocess
    import sys

    code = (
        "import sys, hwabstract_maia.plugin as p; "
        "assert 'hwabstract_maia._maia' not in sys.modules; "
        "assert p.hwabstract_backends()[0].name == 'maia'; "
        "assert 'hwabstract_maia._maia' not in sys.modules; print('clean')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "clean"


# -- kernels against NumPy --------------------------------------------------------------------


def test_add_with_broadcasting(dev: hw.Device) -> None:
    a, b = _rand(4, 5), _rand(5)
    got = (hw.asarray(a, device=dev) + hw.asarray(b, device=dev)).numpy()
    np.testing.assert_allclose(got, a + b, rtol=1e-6)


def test_sum_over_axes(dev: hw.Device) -> None:
    a = _rand(3, 4, 5)
    x = hw.asarray(a, device=dev)
    np.testing.assert_allclose(hw.sum(x, axis=(0, 2)).numpy(), a.sum(axis=(0, 2)), rtol=1e-5)
    kept = hw.sum(x, axis=1, keepdims=True).numpy()
    np.testing.assert_allclose(kept, a.sum(axis=1, keepdims=True), rtol=1e-5)


def test_matmul(dev: hw.Device) -> None:
    a, b = _rand(33, 70), _rand(70, 17)
    got = hw.matmul(hw.asarray(a, device=dev), hw.asarray(b, device=dev)).numpy()
    np.testing.assert_allclose(got, a @ b, rtol=1e-4, atol=1e-4)


def test_softmax(dev: hw.Device) -> None:
    a = _rand(6, 9)
    got = hw.softmax(hw.asarray(a, device=dev), axis=0).numpy()
    e = np.exp(a - a.max(axis=0))
    np.testing.assert_allclose(got, e / e.sum(axis=0), rtol=1e-5, atol=1e-6)


def test_layer_norm_with_weight_and_bias(dev: hw.Device) -> None:
    a, w, b = _rand(4, 16), _rand(16), _rand(16)
    got = hw.layer_norm(
        hw.asarray(a, device=dev), hw.asarray(w, device=dev), hw.asarray(b, device=dev)
    ).numpy()
    mu = a.mean(axis=-1, keepdims=True)
    var = a.var(axis=-1, keepdims=True)
    np.testing.assert_allclose(got, (a - mu) / np.sqrt(var + 1e-5) * w + b, rtol=1e-4, atol=1e-5)


def test_astype_float32_to_bfloat16(dev: hw.Device) -> None:
    import ml_dtypes

    a = _rand(100) * 1000
    got = hw.asarray(a, device=dev).astype(hw.bfloat16).numpy()
    assert got.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(got.view(np.uint16), a.astype(ml_dtypes.bfloat16).view(np.uint16))


def test_strided_and_reversed_views(dev: hw.Device) -> None:
    a = _rand(6, 8)
    x = hw.asarray(a, device=dev)
    np.testing.assert_array_equal(hw.flip(x, axis=1).numpy(), a[:, ::-1])
    np.testing.assert_array_equal(hw.permute_dims(x, (1, 0)).numpy(), a.T)
    np.testing.assert_array_equal(x[1::2, ::3].numpy(), a[1::2, ::3])


# -- streams, events, asynchrony --------------------------------------------------------------


def test_launch_is_asynchronous_behind_a_user_event(dev: hw.Device) -> None:
    impl = dev._impl
    s = dev.create_stream()
    a = _rand(64, 64)
    x = hw.asarray(a, device=dev, stream=s)
    s.synchronize()
    gate = impl.create_user_event()
    impl.stream_wait_event(s.handle, gate)  # the queue now waits for the host
    y = hw.matmul(x, x, stream=s)  # returns although the queue cannot run it
    done = s.record()
    assert done.query() is False
    assert s.query() is False
    impl.signal_user_event(gate)
    done.synchronize()
    assert done.query() is True
    np.testing.assert_allclose(y.numpy(), a @ a, rtol=1e-4, atol=1e-4)


def test_a_fence_orders_work_across_streams(dev: hw.Device) -> None:
    impl = dev._impl
    producer, consumer = dev.create_stream(), dev.create_stream()
    x = hw.asarray(np.zeros(1000, np.float32), device=dev, stream=producer)
    producer.synchronize()
    gate = impl.create_user_event()
    impl.stream_wait_event(producer.handle, gate)
    y = hw.add(x, 1.0, stream=producer)  # blocked behind the gate
    ready = producer.record()
    consumer.wait(ready)
    z = hw.multiply(y, 3.0, stream=consumer)  # must see y = 1, not uninitialized memory
    after = consumer.record()
    assert after.query() is False  # the consumer waits for the producer
    impl.signal_user_event(gate)
    consumer.synchronize()
    np.testing.assert_array_equal(z.numpy(), np.full(1000, 3.0, np.float32))


def test_event_timing_reports_wall_and_modeled_time(dev: hw.Device) -> None:
    s = dev.create_stream()
    x = hw.asarray(_rand(256, 256), device=dev, stream=s)
    start = s.record(timing=True)
    hw.matmul(x, x, stream=s)
    end = s.record(timing=True)
    end.synchronize()
    assert start.elapsed_time(end) >= 0.0
    modeled = dev._impl.modeled_elapsed_ms(start, end)
    assert modeled > 0.0  # a 256^3 matmul has a launch cost and FLOPs in the model


def test_peer_copy_between_devices() -> None:
    a = _rand(37, 11)
    x = hw.asarray(a, device="maia:0")
    y = x.to("maia:1")
    assert y.device.name == "maia:1"
    np.testing.assert_array_equal(y.numpy(), a)
    before = hw.device("maia:1")._impl.device_counters(1)["copies"]
    x.to("maia:1").numpy()
    assert hw.device("maia:1")._impl.device_counters(1)["copies"] > before


# -- errors -----------------------------------------------------------------------------------


def test_out_of_memory_gives_figures_and_the_device_stays_usable(dev: hw.Device) -> None:
    capacity = dev.info.memory_capacity
    with pytest.raises(hw.OutOfMemoryError) as info:
        hw.empty((capacity // 4 + 1024,), dtype=hw.float32, device=dev)
    err = info.value
    assert err.requested > capacity
    assert err.capacity == capacity
    assert err.free is not None and err.free <= capacity
    assert "maia:0" in str(err)
    np.testing.assert_array_equal((hw.asarray(np.ones(4, np.float32), device=dev) * 2).numpy(), 2)


def test_injected_allocation_fault_is_out_of_memory(dev: hw.Device) -> None:
    dev._impl.inject_allocation_fault(0, 1)
    with pytest.raises(hw.OutOfMemoryError):
        hw.empty((8,), dtype=hw.float32, device=dev)
    assert hw.zeros((8,), dtype=hw.float32, device=dev).numpy().sum() == 0


def test_injected_kernel_fault_raises_at_synchronize_and_the_stream_recovers(
    dev: hw.Device,
) -> None:
    s = dev.create_stream()
    x = hw.asarray(np.arange(8, dtype=np.float32), device=dev, stream=s)
    dev._impl.inject_kernel_fault(0, "exp")
    hw.exp(x, stream=s)  # the launch itself succeeds
    with pytest.raises(hw.KernelError) as info:
        s.synchronize()
    assert "exp" in str(info.value)
    assert info.value.vendor_message
    y = hw.exp(x, stream=s)
    s.synchronize()
    np.testing.assert_allclose(y.numpy(), np.exp(np.arange(8, dtype=np.float32)), rtol=1e-6)


def test_freeing_a_buffer_twice_and_use_after_free_are_device_errors(dev: hw.Device) -> None:
    impl = dev._impl
    buf = impl.allocate(0, 64)
    impl.free(buf)
    with pytest.raises(hw.DeviceError):
        impl.free(buf)
    stale = type(buf)(0, buf.handle, 64)
    with pytest.raises(hw.DeviceError, match=r"MAIA_ERROR_(DOUBLE_FREE|USE_AFTER_FREE)"):
        impl.free(stale)
    forged = type(buf)(0, 0x1234_5678_9ABC, 64)
    with pytest.raises(hw.DeviceError, match="MAIA_ERROR_INVALID_HANDLE"):
        impl.free(forged)


def test_out_of_bounds_copy_is_a_device_error(dev: hw.Device) -> None:
    impl = dev._impl
    s = impl.create_stream(0)
    buf = impl.allocate(0, 16)
    try:
        op = hw.Operand(buf, hw.float32, (8,), (1,), 0)  # 32 bytes in a 16-byte buffer
        with pytest.raises(hw.DeviceError, match="MAIA_ERROR_OUT_OF_BOUNDS"):
            impl.copy_from_host(s, op, np.zeros(8, np.float32))
    finally:
        impl.free(buf)
        impl.destroy_stream(s)


def test_memory_returns_to_baseline_after_del_and_gc(dev: hw.Device) -> None:
    dev.synchronize()
    gc.collect()
    base = dev.memory_stats()
    x = hw.asarray(_rand(512, 512), device=dev)
    y = hw.matmul(x, x)
    during = dev.memory_stats()
    assert during.in_use >= base.in_use + 2 * 512 * 512 * 4
    assert during.allocations >= base.allocations + 2
    del x, y
    gc.collect()
    dev.synchronize()
    after = dev.memory_stats()
    assert (after.in_use, after.allocations) == (base.in_use, base.allocations)
    assert after.free == base.free


# -- the main job -----------------------------------------------------------------------------


def test_the_demo_runs_on_maia() -> None:
    from hwabstract.demo import run_demo

    result = run_demo(["maia:0", "maia:1"])
    assert [(r.device, r.status, r.standin) for r in result.runs] == [
        ("maia:0", "ok", True),
        ("maia:1", "ok", True),
    ]
    assert result.ok
    assert all(r.event_ms is not None for r in result.runs)


def test_events_report_modeled_maia_time_through_the_public_api(dev: hw.Device) -> None:
    assert dev.capabilities.has_feature(hw.Feature.MODELED_TIME)
    s = dev.create_stream()
    x = hw.asarray(_rand(256, 256), device=dev, stream=s)
    start = s.record()
    hw.matmul(x, x, stream=s)
    end = s.record()
    modeled = start.modeled_elapsed_time(end)
    # 2*256^3 flops at the assumed 0.3125 PFLOPS float32 rate, or bytes at 7 TB/s, + launch
    assert 0.0 < modeled < 0.1
    assert modeled == dev._impl.modeled_elapsed_ms(start, end)


def test_many_views_of_one_buffer_each_launch_on_their_own_elements(dev: hw.Device) -> None:
    # The backend caches filled view structs per buffer, keyed by dtype, shape, strides and
    # offset, and evicts when a buffer has many: every view must still address its elements,
    # on first use, on reuse, and after eviction.
    a = _rand(40, 8)
    x = hw.asarray(a, device=dev)
    views = [(x[i], a[i]) for i in range(40)] + [(x[i : i + 2, ::2], a[i : i + 2, ::2])
                                               for i in range(0, 38, 3)]  # fmt: skip
    for _ in range(3):
        for view, expected in views:
            np.testing.assert_array_equal(hw.multiply(view, 2.0).numpy(), expected * 2.0)
            out = hw.empty(view.shape, dtype=hw.float32, device=dev)
            hw.add(view, view, out=out)
            np.testing.assert_array_equal(out.numpy(), expected + expected)


def test_repeated_launches_take_the_bound_launch(dev: hw.Device) -> None:
    # After a signature's first launch, the core calls the backend's bound launch: the
    # kernel's name and libmaia's attribute struct made once, each buffer's view as launch
    # makes it, and libmaia's errors as launch reports them.
    impl = dev._impl
    launched: list[str] = []
    original = impl.launch
    impl.launch = lambda *args: (launched.append(args[1]), original(*args))  # type: ignore
    try:
        a = _rand(6, 8)
        x = hw.asarray(a, device=dev)
        for _ in range(3):
            np.testing.assert_allclose(
                hw.sum(x[:, ::2], axis=1, keepdims=True).numpy(),
                a[:, ::2].sum(axis=1, keepdims=True), rtol=1e-6,
            )  # fmt: skip
            np.testing.assert_array_equal(hw.maximum(x, 0.25).numpy(), np.maximum(a, 0.25))
        assert launched == ["sum", "maximum"]
        s = dev.create_stream()
        y = hw.exp(x, stream=s)
        impl.inject_kernel_fault(0, "exp")
        hw.exp(x, stream=s)  # the bound launch; the fault is reported at the wait
        with pytest.raises(hw.KernelError, match="exp"):
            s.synchronize()
        np.testing.assert_allclose(y.numpy(), np.exp(a), rtol=1e-6)
        assert launched == ["sum", "maximum", "exp"]
    finally:
        impl.launch = original


def test_dropped_registries_release_their_devices_and_queues() -> None:
    """Every registry has its own maia backend and streams, each stream a libmaia queue (64
    per device). A registry the program drops -- after launching kernels, which caches
    dispatch plans for its devices -- must give its queues back, or registries made one
    after another run out of queues."""
    import gc
    import weakref

    from hwabstract.registry import Registry

    from .conftest import maia_source

    refs = []
    for i in range(40):  # 2 queues each (default stream + one): 80 > 64 if any were kept
        registry = Registry(sources=[maia_source()])
        device = registry.device("maia:0")
        stream = device.create_stream()
        x = hw.asarray(np.full(4, float(i), np.float32), device=device, stream=stream)
        assert hw.add(x, x, stream=stream).tolist() == [2.0 * i] * 4
        assert hw.exp(x).device is device  # (on the default stream)
        refs.append(weakref.ref(device))
        del registry, device, stream, x
        gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
