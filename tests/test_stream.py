"""Streams and events on the cpu backend, whose streams are worker threads: launches return
before the work is done, work is ordered within a stream and across streams by events.

No test measures time. Asynchrony is shown with gates: a command queued through the
backend that blocks a stream until the test sets a ``threading.Event``."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable

import numpy as np
import pytest

import hwabstract as hw
from hwabstract.registry import Registry

Gate = Callable[[hw.Stream], threading.Event]


@pytest.fixture
def dev(fresh_registry: Callable[..., Registry]) -> hw.Device:
    fresh_registry(HWABSTRACT_CPU_DEVICES=None, HWABSTRACT_CPU_MEMORY=None)
    return hw.device("cpu")


# -- asynchrony and ordering ----------------------------------------------------------------------


def test_a_launch_returns_before_its_work_is_done(dev: hw.Device, gate: Gate) -> None:
    other, stream = dev.create_stream(), dev.create_stream()
    release = gate(other)
    blocker = other.record()
    stream.wait(blocker)  # returns at once, although `other` is blocked
    x = hw.asarray(np.arange(5, dtype=np.float32), stream=stream)
    y = hw.add(x, x, stream=stream)  # returns although it cannot run yet
    assert not blocker.query()
    assert not stream.query()
    release.set()
    stream.synchronize()
    assert stream.query() and blocker.query()
    np.testing.assert_array_equal(y.numpy(), 2 * np.arange(5))


def test_work_on_one_stream_runs_in_order(dev: hw.Device, gate: Gate) -> None:
    stream = dev.create_stream()
    release = gate(stream)
    total = hw.zeros(3, dtype="int64", stream=stream)
    step = hw.asarray([1, 2, 3], stream=stream)
    for _ in range(20):
        hw.add(total, step, out=total, stream=stream)
    doubled = hw.multiply(total, hw.asarray([2, 2, 2], stream=stream), stream=stream)
    assert not stream.query()
    release.set()
    assert total.tolist() == [20, 40, 60]
    assert doubled.tolist() == [40, 80, 120]


def test_a_stream_waits_for_an_event_of_another_stream(dev: hw.Device, gate: Gate) -> None:
    producer, consumer = dev.create_stream(), dev.create_stream()
    x = hw.asarray(np.arange(4, dtype=np.float32), stream=producer)
    release = gate(producer)
    squared = hw.multiply(x, x, stream=producer)
    ready = producer.record()
    consumer.wait(ready)
    result = hw.add(squared, squared, stream=consumer)
    assert not consumer.query()  # blocked behind the producer's gate
    release.set()
    consumer.synchronize()
    np.testing.assert_array_equal(result.numpy(), 2 * np.arange(4) ** 2)


def test_the_default_stream_takes_work_without_a_stream(dev: hw.Device, gate: Gate) -> None:
    default = dev.default_stream
    assert hw.current_stream(dev) is default
    release = gate(default)
    x = hw.asarray([1.0, 2.0])
    y = hw.negative(x)
    assert not default.query()
    release.set()
    default.synchronize()
    assert y.tolist() == [-1.0, -2.0]


# -- current streams ------------------------------------------------------------------------------


def test_with_stream_makes_it_current_nested_and_per_thread(dev: hw.Device, gate: Gate) -> None:
    outer, inner = dev.create_stream(), dev.create_stream()
    seen_elsewhere: list[hw.Stream] = []
    with outer as entered:
        assert entered is outer
        assert hw.current_stream(dev) is outer and dev.current_stream() is outer
        with inner:
            assert hw.current_stream(dev) is inner
        assert hw.current_stream(dev) is outer
        thread = threading.Thread(target=lambda: seen_elsewhere.append(hw.current_stream(dev)))
        thread.start()
        thread.join()
        # work launched without stream= goes to the current stream
        release = gate(outer)
        y = hw.add(hw.asarray([1, 2]), hw.asarray([3, 4]))
        assert not outer.query()
        release.set()
    assert seen_elsewhere == [dev.default_stream]
    assert hw.current_stream(dev) is dev.default_stream
    assert y.tolist() == [4, 6]


def test_each_thread_has_its_own_current_stream(dev: hw.Device) -> None:
    streams = [dev.create_stream() for _ in range(4)]
    inside = threading.Barrier(len(streams))
    seen: dict[int, hw.Stream] = {}

    def work(i: int) -> None:
        with streams[i]:
            inside.wait()  # every thread is inside its own `with` now
            seen[i] = hw.current_stream(dev)
            inside.wait()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [seen[i] for i in range(len(streams))] == streams


def test_current_stream_is_per_device(two_cpus: tuple[hw.Device, hw.Device]) -> None:
    d0, d1 = two_cpus
    s0 = d0.create_stream()
    with s0:
        assert hw.current_stream(d0) is s0
        assert hw.current_stream(d1) is d1.default_stream
        y = hw.add(hw.asarray([1], device=d1), hw.asarray([1], device=d1))
        assert y._storage.last_stream is d1.default_stream


def test_exiting_stream_contexts_out_of_order(dev: hw.Device) -> None:
    a, b = dev.create_stream(), dev.create_stream()
    a.__enter__()
    b.__enter__()
    with pytest.raises(hw.StreamError, match="exited out of order") as info:
        a.__exit__(None, None, None)
    assert "Nest `with stream:` blocks" in str(info.value)
    b.__exit__(None, None, None)
    a.__exit__(None, None, None)
    assert hw.current_stream(dev) is dev.default_stream
    with pytest.raises(hw.StreamError, match="no stream is the innermost"):
        a.__exit__(None, None, None)


# -- events ---------------------------------------------------------------------------------------


def test_event_query_synchronize_and_elapsed_time(dev: hw.Device, gate: Gate) -> None:
    stream = dev.create_stream()
    release = gate(stream)
    start = stream.record()
    assert start.timing and start.stream is stream and start.device is dev
    x = hw.asarray(np.ones((64, 64), dtype=np.float32), stream=stream)
    hw.matmul(x, x, stream=stream)
    end = stream.record()
    assert not start.query() and not end.query()
    release.set()
    end.synchronize()
    assert start.query() and end.query()
    elapsed = start.elapsed_time(end)
    assert isinstance(elapsed, float) and elapsed >= 0.0
    assert "event on cpu:0" in repr(end)


def test_elapsed_time_misuse(
    two_cpus: tuple[hw.Device, hw.Device], limited_device: hw.Device
) -> None:
    # (two_cpus and limited_device each install a registry; use their devices directly)
    d0, d1 = two_cpus
    timed = d0.default_stream.record()
    untimed = d0.default_stream.record(timing=False)
    assert untimed.timing is False
    with pytest.raises(hw.StreamError, match="both events recorded with timing=True"):
        timed.elapsed_time(untimed)
    with pytest.raises(hw.StreamError, match="takes an Event, got int"):
        timed.elapsed_time(3)  # type: ignore[arg-type]
    with pytest.raises(hw.StreamError, match="two events on one device; got cpu:0 and cpu:1"):
        timed.elapsed_time(d1.default_stream.record())

    stream = limited_device.create_stream()
    plain = stream.record()
    assert plain.timing is False  # the device does not declare event timing
    with pytest.raises(hw.UnsupportedError, match="does not declare event timing") as info:
        stream.record(timing=True)
    assert info.value.capability == "feature:event_timing"
    with pytest.raises(hw.UnsupportedError, match="does not declare event timing"):
        plain.elapsed_time(stream.record())


def test_event_synchronize_reports_failures_queued_before_the_event_only(dev: hw.Device) -> None:
    stream = dev.create_stream()
    target = hw.asarray(np.array([2, 3], dtype=np.int64))
    before = stream.record()
    dev._impl.inject_fault(dev.index, "add")
    hw.add(target, target, stream=stream)  # fails on the device
    after = stream.record()
    before.synchronize()  # the failure comes after this event
    with pytest.raises(hw.KernelError, match="kernel 'add' failed on cpu:0"):
        after.synchronize()
    stream.synchronize()  # reported once
    assert target.tolist() == [2, 3]


def test_stream_query_reports_a_failed_command(dev: hw.Device) -> None:
    stream = dev.create_stream()
    target = hw.asarray(np.array([2, 3], dtype=np.int64))
    dev._impl.inject_fault(dev.index, "add")
    hw.add(target, target, stream=stream)
    with pytest.raises(hw.KernelError, match="kernel 'add' failed"):
        while not stream.query():  # polls until the stream is idle, then reports
            time.sleep(0.001)
    assert stream.query()
    y = hw.add(target, target, stream=stream)  # the stream keeps working
    assert y.tolist() == [4, 6]


def test_waits_accept_a_timeout_and_lose_nothing(dev: hw.Device, gate: Gate) -> None:
    """A stream blocked behind a gate: every timed wait raises WaitTimeoutError (a
    StreamError and a TimeoutError) instead of hanging, and the queued work still runs
    once the gate opens."""
    stream = dev.create_stream()
    x = hw.asarray(np.arange(4, dtype=np.int64))
    release = gate(stream)
    y = hw.add(x, x, stream=stream)
    marker = stream.record()
    for wait in (stream.synchronize, marker.synchronize, dev.synchronize):
        with pytest.raises(hw.WaitTimeoutError, match=r"did not finish within 0\.05 s") as info:
            wait(timeout=0.05)
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, hw.StreamError)
    with pytest.raises(hw.WaitTimeoutError):
        stream.synchronize(timeout=0)  # a timeout of 0 is a poll that raises
    release.set()
    stream.synchronize(timeout=60)  # a hang guard, not a measurement
    marker.synchronize(timeout=60)
    dev.synchronize(timeout=60)
    assert y.tolist() == [0, 2, 4, 6]


def test_a_timed_wait_reports_a_failed_command_like_an_untimed_one(dev: hw.Device) -> None:
    stream = dev.create_stream()
    target = hw.asarray(np.array([2, 3], dtype=np.int64))
    dev._impl.inject_fault(dev.index, "add")
    hw.add(target, target, stream=stream)
    with pytest.raises(hw.KernelError, match="kernel 'add' failed on cpu:0"):
        stream.synchronize(timeout=60)
    assert hw.add(target, target, stream=stream).tolist() == [4, 6]


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "1", True])
def test_a_bad_timeout_is_a_stream_error(dev: hw.Device, bad: object) -> None:
    stream = dev.create_stream()
    with pytest.raises(hw.StreamError, match="timeout must be"):
        stream.synchronize(timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(hw.StreamError, match="timeout must be"):
        dev.synchronize(timeout=bad)  # type: ignore[arg-type]


def test_a_read_on_another_stream_leaves_the_writers_failure_to_the_writer(
    dev: hw.Device,
) -> None:
    """Reading, on stream B, a tensor stream A wrote orders B after A -- without reporting
    A's failed command in B's call (a failure is reported once: it would be lost to A).
    Found by tests/reliability/test_stress.py."""
    a, b = dev.create_stream(), dev.create_stream()
    x = hw.asarray(np.array([2, 3], dtype=np.int64))
    dev.synchronize()
    dev._impl.inject_fault(dev.index, "add")
    y = hw.add(x, x, stream=a)  # fails on the device
    done = dev.create_stream()  # wait until a has run, without asking a (which would report)
    done.wait(a.record())
    done.synchronize(timeout=60)
    hw.multiply(y, 1, stream=b)  # reads y: ordered after a, and not a's error to report
    b.synchronize(timeout=60)
    with pytest.raises(hw.KernelError, match="kernel 'add' failed"):
        a.synchronize(timeout=60)


def test_wait_takes_an_event(dev: hw.Device) -> None:
    with pytest.raises(hw.StreamError, match="takes an Event, got Stream"):
        dev.default_stream.wait(dev.create_stream())  # type: ignore[arg-type]


def test_cross_device_event_wait(two_cpus: tuple[hw.Device, hw.Device], gate: Gate) -> None:
    d0, d1 = two_cpus
    s0, s1 = d0.create_stream(), d1.create_stream()
    release = gate(s0)
    s1.wait(s0.record())  # events order streams of one backend across its devices
    y = hw.add(hw.asarray([1], device=d1, stream=s1), 1, stream=s1)
    assert not s1.query()
    release.set()
    assert y.tolist() == [2]


# -- threads --------------------------------------------------------------------------------------


def test_many_threads_launch_at_once_on_their_own_streams(dev: hw.Device) -> None:
    n = 8
    start = threading.Barrier(n)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((32, 32)).astype(np.float32) for _ in range(n)]

    def work(i: int) -> None:
        try:
            stream = dev.create_stream()
            start.wait()
            with stream:
                a = hw.asarray(inputs[i])
                acc = hw.zeros_like(a)
                for _ in range(5):
                    hw.add(acc, hw.matmul(a, a), out=acc)
                results[i] = acc.numpy()
        except BaseException as exc:  # reported by the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(n):
        expected = 5 * (inputs[i] @ inputs[i])
        np.testing.assert_allclose(results[i], expected, rtol=1e-5, atol=1e-4)


def test_many_threads_queue_on_one_shared_stream(dev: hw.Device) -> None:
    shared = dev.create_stream()
    n = 6
    start = threading.Barrier(n)
    totals = [hw.zeros(4, dtype="int64", stream=shared) for _ in range(n)]
    steps = [hw.asarray([i + 1] * 4, stream=shared) for i in range(n)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            start.wait()
            for _ in range(30):
                hw.add(totals[i], steps[i], out=totals[i], stream=shared)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shared.synchronize()
    assert shared.query()
    assert errors == []
    assert [t.tolist() for t in totals] == [[30 * (i + 1)] * 4 for i in range(n)]


# -- stream lifetime ------------------------------------------------------------------------------


def test_a_collected_stream_finishes_its_work_and_its_thread_exits(
    dev: hw.Device, gate: Gate
) -> None:
    stream = dev.create_stream()
    handle = stream.handle
    release = gate(stream)
    finished = threading.Event()
    handle.submit(finished.set, "last command")
    del stream
    gc.collect()
    assert handle.closed  # destroyed as soon as the Stream was collected ...
    assert not finished.is_set()  # ... with its queued work still waiting
    release.set()
    handle.thread.join(timeout=60)
    assert finished.is_set()
    assert not handle.thread.is_alive()


def test_streams_that_did_work_do_not_leak_threads(dev: hw.Device) -> None:
    threads = []
    x = hw.asarray(np.arange(8, dtype=np.float32))
    for _ in range(5):
        stream = dev.create_stream()
        threads.append(stream.handle.thread)
        y = hw.multiply(x, x, stream=stream)
        assert y.numpy()[3] == 9.0
        del y, stream
    gc.collect()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)


def test_a_dropped_registry_releases_its_devices_and_stream_threads() -> None:
    from hwabstract import registry as registry_mod

    registry = Registry()
    device = registry.device("cpu")
    stream = device.create_stream()
    with stream:  # the thread-local table of current streams must not keep the device
        pass
    threads = [stream.handle.thread, device.default_stream.handle.thread]
    ref = weakref.ref(device)
    assert registry_mod.get_registry() is not registry
    del registry, device, stream
    gc.collect()
    assert ref() is None
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)


def test_a_stream_used_with_python_scalars_is_released(dev: hw.Device) -> None:
    stream = dev.create_stream()
    thread = stream.handle.thread
    x = hw.asarray(np.arange(3.0, dtype=np.float32))
    y = hw.add(x, 1.0, stream=stream)
    assert y.tolist() == [1.0, 2.0, 3.0]
    del y, stream
    gc.collect()
    thread.join(timeout=3)
    assert not thread.is_alive()


def test_a_read_on_another_stream_waits_for_the_write(
    gate: Callable[[hw.Stream], threading.Event],
) -> None:
    dev = hw.device("cpu")
    writer, reader = dev.create_stream(), dev.create_stream()
    x = hw.asarray(np.arange(4, dtype=np.float32))
    dev.synchronize()
    opened = gate(writer)
    y = hw.multiply(x, 10.0, stream=writer)  # queued behind the gate
    z = hw.add(y, 1.0, stream=reader)  # reads y on another stream: must wait for the write
    assert not reader.query()  # ordered after the gated write, on the device
    opened.set()
    reader.synchronize()
    assert z.numpy().tolist() == [1.0, 11.0, 21.0, 31.0]


def test_a_finished_write_adds_no_cross_stream_wait() -> None:
    dev = hw.device("cpu")
    writer, reader = dev.create_stream(), dev.create_stream()
    y = hw.multiply(hw.asarray(np.ones(3, np.float32)), 2.0, stream=writer)
    writer.synchronize()
    submitted = reader.handle.submitted
    z = hw.add(y, 1.0, stream=reader)
    assert reader.handle.submitted == submitted + 1  # just the kernel, no event wait
    assert z.tolist() == [3.0, 3.0, 3.0]


def test_modeled_time_needs_a_device_that_models_hardware(dev: hw.Device) -> None:
    stream = dev.create_stream()
    start = stream.record()
    end = stream.record()
    with pytest.raises(hw.UnsupportedError, match="does not declare modeled time") as info:
        start.modeled_elapsed_time(end)
    assert info.value.capability == "feature:modeled_time"
    assert start.elapsed_time(end) >= 0.0  # the host-time measurement still works
