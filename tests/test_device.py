"""Devices: identity, info, capabilities, streams, memory statistics, synchronization."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable

import attrs
import numpy as np
import pytest

import hwabstract as hw
from hwabstract.registry import Registry


def test_device_identity_and_names() -> None:
    dev = hw.device("cpu:0")
    assert (dev.name, dev.backend, dev.index) == ("cpu:0", "cpu", 0)
    assert hw.device("cpu") is dev
    assert hw.device(dev) is dev
    assert dev == hw.device("cpu:0")
    assert str(dev) == "cpu:0"
    assert repr(dev) == f"<hwabstract.Device cpu:0 ({dev.info.name})>"
    assert dev in hw.devices()
    assert pickle.loads(pickle.dumps(dev)) is dev


def test_devices_cannot_be_constructed_directly() -> None:
    with pytest.raises(TypeError, match=r"use hwabstract\.device"):
        hw.Device()


def test_info_is_a_frozen_value() -> None:
    info = hw.device("cpu").info
    assert isinstance(info, hw.DeviceInfo)
    assert info.vendor == "hwabstract"
    assert info.memory_capacity > 0
    assert info.standin is False and info.standin_for is None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.vendor = "someone else"  # type: ignore[misc]


def test_capabilities_manifest() -> None:
    caps = hw.device("cpu").capabilities
    assert isinstance(caps, hw.Capabilities)
    assert caps.supports_dtype(hw.bfloat16)
    assert caps.supports_kernel("matmul", hw.float32)
    assert not caps.supports_kernel("no_such_kernel", hw.float32)
    assert caps.has_feature(hw.Feature.EVENT_TIMING)
    assert caps.has_feature("concurrent_streams")
    with pytest.raises(ValueError, match="not_a_feature"):
        caps.has_feature("not_a_feature")
    assert caps.limits.memory_capacity == hw.device("cpu").info.memory_capacity


def test_default_and_created_streams(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry(HWABSTRACT_CPU_DEVICES=None)
    dev = hw.device("cpu")
    default = dev.default_stream
    assert default is dev.default_stream
    assert default.is_default and default.device is dev
    assert dev.current_stream() is default
    assert hw.current_stream(dev) is default
    created = dev.create_stream()
    assert not created.is_default and created is not default
    assert "default stream on cpu:0" in repr(default)
    assert "stream on cpu:0" in repr(created)
    with created:
        assert dev.current_stream() is created


def test_memory_stats_follow_allocations(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry(HWABSTRACT_CPU_MEMORY="1MiB", HWABSTRACT_CPU_DEVICES=None)
    dev = hw.device("cpu")
    before = dev.memory_stats()
    assert isinstance(before, hw.MemoryStats)
    assert before.capacity == 1024**2
    x = hw.empty((100,), dtype="float64")
    during = dev.memory_stats()
    assert during.in_use == before.in_use + 800
    assert during.allocations == before.allocations + 1
    assert during.free == before.free - 800
    assert during.peak >= during.in_use
    del x
    after = dev.memory_stats()
    assert (after.in_use, after.allocations) == (before.in_use, before.allocations)
    assert after.peak == during.peak


def test_synchronize_waits_for_every_stream(
    fresh_registry: Callable[..., Registry],
    gate: Callable[[hw.Stream], threading.Event],
) -> None:
    fresh_registry(HWABSTRACT_CPU_DEVICES=None)
    dev = hw.device("cpu")
    streams = [dev.create_stream() for _ in range(3)]
    gates = [gate(s) for s in streams]
    x = hw.asarray(np.arange(4.0, dtype=np.float32))
    results = [hw.multiply(x, x, stream=s) for s in streams]
    assert not any(s.query() for s in streams)
    for g in gates:
        g.set()
    dev.synchronize()
    assert all(s.query() for s in streams)
    for r in results:
        np.testing.assert_array_equal(r.numpy(), np.arange(4.0) ** 2)
    hw.synchronize("cpu:0")  # the module-level form


def test_synchronize_reports_a_failure_after_waiting_for_all_streams(
    fresh_registry: Callable[..., Registry],
    gate: Callable[[hw.Stream], threading.Event],
) -> None:
    fresh_registry(HWABSTRACT_CPU_DEVICES=None)
    dev = hw.device("cpu")
    failing, slow = dev.create_stream(), dev.create_stream()
    base = hw.asarray(np.array([2, 3]))
    dev._impl.inject_fault(dev.index, "subtract")
    hw.subtract(base, base, stream=failing)  # fails on the device (an injected fault)
    release = gate(slow)
    y = hw.add(base, base, stream=slow)
    release.set()
    with pytest.raises(hw.KernelError, match="kernel 'subtract' failed"):
        dev.synchronize()
    assert slow.query() and failing.query()
    assert y.tolist() == [4, 6]
    dev.synchronize()  # the failure was reported once


def test_a_device_without_a_performance_model_has_no_queue_timeline() -> None:
    dev = hw.device("cpu:0")
    assert dev.queue_timeline() is None
    dev.clear_queue_timeline()  # a no-op, not an error
    assert dev.create_stream().queue_number is None
