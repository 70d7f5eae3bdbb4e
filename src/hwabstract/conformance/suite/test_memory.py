"""Memory: allocation and release, accounting that returns to its baseline, the
out-of-memory contract (the documented exception, with figures, and a device that stays
usable), and zero-size tensors."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import numpy as np
import pytest

import hwabstract as hw
from hwabstract.conformance.helpers import byte_dtype, float_dtype, settled_in_use
from hwabstract.errors import OutOfMemoryError

#: devices with more memory than this are not filled to the brim (host RAM, real HBM)
FILL_LIMIT = 2 << 30


@pytest.fixture
def baseline(device: hw.Device) -> Iterator[int]:
    """The bytes in use before the test; after it, in use must be back to exactly that."""
    before = settled_in_use(device)
    yield before
    after = settled_in_use(device)
    assert after == before, f"{after - before:+,} bytes still in use after the test (a leak)"


def test_allocations_are_accounted_and_released(device: hw.Device, baseline: int) -> None:
    b = byte_dtype(device)
    sizes = [1, 255, 4096, 1 << 20, (3 << 20) + 5]
    tensors = [hw.empty((n,), dtype=b, device=device) for n in sizes]
    stats = device.memory_stats()
    total = sum(sizes) * b.itemsize
    assert stats.in_use >= baseline + total, "in_use does not count the live tensors"
    assert stats.peak >= stats.in_use
    assert stats.allocations >= len(tensors)
    del tensors


def test_many_small_allocations_come_back(device: hw.Device, baseline: int) -> None:
    dtype = float_dtype(device)
    live = [hw.zeros((17,), dtype=dtype, device=device) for _ in range(2000)]
    assert all(t.shape == (17,) for t in live[::97])
    del live


def test_a_view_keeps_its_memory_alive(device: hw.Device, baseline: int) -> None:
    host = np.arange(64).astype(byte_dtype(device).numpy_dtype)
    base = hw.asarray(host, device=device)
    view = base[8:40:2]
    del base
    gc.collect()
    np.testing.assert_array_equal(view.numpy(), host[8:40:2])


def test_freed_memory_is_reused(device: hw.Device, baseline: int) -> None:
    b = byte_dtype(device)
    n = (8 << 20) // b.itemsize
    for _ in range(16):  # 128 MiB in total through an 8 MiB tensor: only if freed
        t = hw.empty((n,), dtype=b, device=device)
        del t
        gc.collect()
    assert settled_in_use(device) == baseline


def test_zero_size_tensors(device: hw.Device, baseline: int) -> None:
    b = byte_dtype(device)
    for shape in [(0,), (0, 4), (3, 0, 2)]:
        t = hw.empty(shape, dtype=b, device=device)
        assert t.shape == shape and t.size == 0
        assert t.numpy().shape == shape
        z = hw.asarray(np.zeros(shape, dtype=b.numpy_dtype), device=device)
        assert z.numpy().shape == shape


def _oom_request(device: hw.Device) -> int:
    limits = device.capabilities.limits
    return max(limits.memory_capacity, limits.max_allocation) + (1 << 20)


def test_an_allocation_beyond_capacity_raises_out_of_memory(
    device: hw.Device, baseline: int
) -> None:
    b = byte_dtype(device)
    request = _oom_request(device) // b.itemsize * b.itemsize
    with pytest.raises(OutOfMemoryError) as info:
        hw.empty((request // b.itemsize,), dtype=b, device=device)
    err = info.value
    assert isinstance(err, MemoryError), "OutOfMemoryError must also be a MemoryError"
    assert err.requested == request, f"requested={err.requested}, asked for {request}"
    assert device.name in str(err), "the message must name the device"
    assert err.capacity is None or err.capacity > 0
    # the device is still usable, and nothing leaked
    host = np.arange(10).astype(b.numpy_dtype)
    x = hw.asarray(host, device=device)
    np.testing.assert_array_equal(x.numpy(), host)


def test_filling_the_device_raises_out_of_memory_then_recovers(
    device: hw.Device, baseline: int
) -> None:
    capacity = device.capabilities.limits.memory_capacity
    if capacity > FILL_LIMIT:
        pytest.skip(f"capacity {capacity:,} B is more than this test fills ({FILL_LIMIT:,} B)")
    b = byte_dtype(device)
    chunk = max(1 << 20, capacity // 8) // b.itemsize
    held = []
    with pytest.raises(OutOfMemoryError):
        for _ in range(capacity // (chunk * b.itemsize) + 2):
            held.append(hw.empty((chunk,), dtype=b, device=device))
    assert held, "not even one chunk of an eighth of the capacity could be allocated"
    held.clear()
    gc.collect()
    device.synchronize()
    again = hw.empty((chunk,), dtype=b, device=device)  # the memory came back
    assert again.size == chunk
