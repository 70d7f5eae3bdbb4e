"""Streams and events: order inside a stream, waits across streams (explicit events and the
automatic ordering of a read after a write), query and synchronize, elapsed time where
declared, and many Python threads launching at once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import hwabstract as hw
from hwabstract.backend import Feature
from hwabstract.conformance.helpers import float_dtype, not_claimed

CHAIN = 64  # dependent launches in a chain
HEAVY = 96  # elements per side of the matrices that keep a producer stream busy


def _slow_work(device: hw.Device, stream: hw.Stream, dtype: hw.DType) -> hw.Tensor:
    """A chain of dependent kernels that keeps ``stream`` busy for a while; returns its
    last result (ones: every step maps ones to ones)."""
    x = hw.ones((HEAVY, HEAVY), dtype=dtype, device=device, stream=stream)
    scale = 1.0 / HEAVY
    for _ in range(12):
        if device.capabilities.supports_kernel("matmul", dtype):
            x = hw.multiply(hw.matmul(x, x, stream=stream), scale, stream=stream)
        else:
            x = hw.multiply(hw.add(x, x, stream=stream), 0.5, stream=stream)
    return x


def test_order_inside_a_stream(device: hw.Device) -> None:
    dtype = float_dtype(device)
    s = device.create_stream()
    x = hw.zeros((1000,), dtype=dtype, device=device, stream=s)
    for _ in range(CHAIN):
        hw.add(x, 1.0, out=x, stream=s)  # each launch reads what the previous one wrote
    s.synchronize()
    np.testing.assert_array_equal(x.numpy(), np.full(1000, CHAIN, dtype=dtype.numpy_dtype))


def test_an_event_orders_a_read_after_a_write_across_streams(device: hw.Device) -> None:
    dtype = float_dtype(device)
    producer, consumer = device.create_stream(), device.create_stream()
    y = _slow_work(device, producer, dtype)
    ready = producer.record()
    consumer.wait(ready)
    z = hw.add(y, 1.0, stream=consumer)
    np.testing.assert_allclose(z.numpy(), np.full((HEAVY, HEAVY), 2.0), rtol=1e-2)


def test_an_event_orders_a_write_after_a_read_across_streams(device: hw.Device) -> None:
    # The consumer reads x while the producer is told to overwrite x only after the read:
    # only the explicit event orders this (reads do not order later writes by themselves).
    dtype = float_dtype(device)
    reader, writer = device.create_stream(), device.create_stream()
    x = hw.ones((HEAVY, HEAVY), dtype=dtype, device=device, stream=reader)
    busy = _slow_work(device, reader, dtype)  # the reader is busy before it reads x
    snapshot = hw.add(hw.multiply(busy, 0.0, stream=reader), x, stream=reader)
    read_done = reader.record()
    writer.wait(read_done)
    hw.multiply(x, 0.0, out=x, stream=writer)
    np.testing.assert_array_equal(snapshot.numpy(), np.ones((HEAVY, HEAVY)))
    writer.synchronize()
    np.testing.assert_array_equal(x.numpy(), np.zeros((HEAVY, HEAVY)))


def test_query_and_synchronize(device: hw.Device) -> None:
    dtype = float_dtype(device)
    s = device.create_stream()
    _slow_work(device, s, dtype)
    done = s.record()
    s.synchronize()
    assert s.query() is True
    assert done.query() is True
    done.synchronize()  # an already reached event returns at once
    device.synchronize()
    idle = device.create_stream()
    assert idle.query() is True, "a stream with no work is idle"


def test_device_synchronize_waits_for_every_stream(device: hw.Device) -> None:
    dtype = float_dtype(device)
    streams = [device.create_stream() for _ in range(3)]
    results = [_slow_work(device, s, dtype) for s in streams]
    events = [s.record() for s in streams]
    device.synchronize()
    assert all(e.query() for e in events)
    for r in results:
        np.testing.assert_allclose(r.numpy(), np.ones((HEAVY, HEAVY)), rtol=1e-2)


def test_elapsed_time(device: hw.Device) -> None:
    if not device.capabilities.has_feature(Feature.EVENT_TIMING):
        not_claimed("event_timing")
    dtype = float_dtype(device)
    s = device.create_stream()
    start = s.record(timing=True)
    _slow_work(device, s, dtype)
    end = s.record(timing=True)
    end.synchronize()
    ms = start.elapsed_time(end)
    assert isinstance(ms, float) and ms >= 0.0 and np.isfinite(ms)
    assert abs(start.elapsed_time(start)) < 1e-3, "an event is 0 ms from itself"


def test_modeled_elapsed_time(device: hw.Device) -> None:
    if not device.capabilities.has_feature(Feature.MODELED_TIME):
        not_claimed("modeled_time")
    dtype = float_dtype(device)
    s = device.create_stream()
    start = s.record()
    _slow_work(device, s, dtype)
    end = s.record()
    end.synchronize()
    ms = start.modeled_elapsed_time(end)
    assert isinstance(ms, float) and ms > 0.0 and np.isfinite(ms), "work takes modeled time"


@pytest.mark.parametrize("shared", [False, True], ids=["own streams", "one shared stream"])
def test_many_threads_launching_at_once(device: hw.Device, shared: bool) -> None:
    dtype = float_dtype(device)
    threads, launches = 8, 40
    common = device.create_stream() if shared else None
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(k: int) -> None:
        try:
            s = common or device.create_stream()
            x = hw.full((257,), float(k), dtype=dtype, device=device, stream=s)
            barrier.wait()
            for _ in range(launches):
                x = hw.add(x, 1.0, stream=s)
            results[k] = x.numpy()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in pool), "a launching thread hung"
    assert not errors, f"{len(errors)} thread(s) failed: {errors[0]!r}"
    for k in range(threads):
        np.testing.assert_array_equal(results[k], np.full(257, k + launches, dtype.numpy_dtype))


def test_with_stream_makes_it_current(device: hw.Device) -> None:
    dtype = float_dtype(device)
    s = device.create_stream()
    with s:
        assert hw.current_stream(device) is s
        x = hw.ones((5,), dtype=dtype, device=device)
        y = hw.add(x, 1.0)
    assert hw.current_stream(device) is device.default_stream
    s.synchronize()
    np.testing.assert_array_equal(y.numpy(), np.full(5, 2.0))
