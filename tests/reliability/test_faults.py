"""Fault injection end to end, on the Maia emulator: every fault libmaia can inject -- an
allocation that fails, a kernel that faults, a slow queue, a stuck queue, a lost device --
surfaces through the public API as the documented exception; the stream or device then
recovers or says it is lost; waits given a timeout never hang; and nothing leaks (the
device's accounting returns to where it was).

A lost device stays lost for the rest of the process (libmaia is one runtime per process),
so that test runs in a subprocess of its own. No test measures time: timeouts are either
the thing under test (a wait that must give up) or hang guards."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dispatch

pytest.importorskip("hwabstract_maia", reason="hwabstract-maia is not installed (tox -e maia)")

#: a hang guard for waits that must succeed (not a performance bound)
GUARD = 60.0


@pytest.fixture
def dev() -> Iterator[hw.Device]:
    status = {b.name: b for b in hw.backends()}.get("maia")
    if status is None or status.status != "ok":
        pytest.skip(f"the maia backend is unavailable: {status and status.reason}")
    device = hw.device("maia:0")

    def settled() -> hw.MemoryStats:
        device.synchronize(timeout=GUARD)
        # the per-stream cache of Python scalars' 0-d tensors holds memory by design
        dispatch.clear_scalar_caches(device.default_stream)
        gc.collect()
        return device.memory_stats()

    before = settled()
    yield device
    after = settled()
    # no leak: every fault path gave back what it took
    assert (after.in_use, after.allocations) == (before.in_use, before.allocations)


def test_a_failed_allocation_is_out_of_memory_and_the_next_one_works(dev: hw.Device) -> None:
    dev._impl.inject_allocation_fault(dev.index, 1)
    with pytest.raises(hw.OutOfMemoryError, match="injected fault") as info:
        hw.zeros((1024,), dtype=hw.float32, device=dev)
    assert isinstance(info.value, MemoryError) and info.value.requested == 4096
    x = hw.ones((1024,), dtype=hw.float32, device=dev)
    assert float(hw.sum(x).numpy()) == 1024.0


def test_a_kernel_fault_is_a_kernel_error_and_the_stream_keeps_working(dev: hw.Device) -> None:
    stream, other = dev.create_stream(), dev.create_stream()
    x = hw.asarray(np.arange(8, dtype=np.float32), device=dev)
    dev.synchronize(timeout=GUARD)
    dev._impl.inject_kernel_fault(dev.index, "multiply")
    hw.multiply(x, x, stream=stream)  # queued: fails while executing, reported later
    y = hw.add(x, x, stream=other)  # another stream is not affected
    with pytest.raises(hw.KernelError, match="injected fault"):
        stream.synchronize(timeout=GUARD)
    stream.synchronize(timeout=GUARD)  # reported once
    z = hw.multiply(x, x, stream=stream)  # the stream keeps working
    np.testing.assert_array_equal(z.numpy(), np.arange(8, dtype=np.float32) ** 2)
    np.testing.assert_array_equal(y.numpy(), 2 * np.arange(8, dtype=np.float32))


def test_a_slow_queue_times_out_a_wait_and_then_finishes(dev: hw.Device) -> None:
    stream = dev.create_stream()
    x = hw.asarray(np.arange(4, dtype=np.int32), device=dev)
    dev.synchronize(timeout=GUARD)
    dev._impl.inject_queue_delay(stream.handle, 300_000)  # 0.3 s before each command
    y = hw.add(x, x, stream=stream)
    with pytest.raises(hw.WaitTimeoutError, match=r"did not finish within 0\.01 s"):
        stream.synchronize(timeout=0.01)
    dev._impl.inject_queue_delay(stream.handle, 0)
    stream.synchronize(timeout=GUARD)
    assert y.tolist() == [0, 2, 4, 6]


def test_a_stuck_queue_times_out_every_wait_and_recovers_when_released(dev: hw.Device) -> None:
    """A stream waiting on an event that is never reached (a user event nobody signals):
    the textbook hang. Every timed wait gives up; nothing is lost."""
    impl = dev._impl
    stream = dev.create_stream()
    x = hw.asarray(np.arange(4, dtype=np.int32), device=dev)
    dev.synchronize(timeout=GUARD)
    gate = impl.create_user_event()
    impl.stream_wait_event(stream.handle, gate)
    y = hw.add(x, 1, stream=stream)
    marker = stream.record()
    for wait in (stream.synchronize, marker.synchronize, dev.synchronize):
        with pytest.raises(hw.WaitTimeoutError):
            wait(timeout=0.05)
    assert not stream.query() and not marker.query()
    impl.signal_user_event(gate)
    marker.synchronize(timeout=GUARD)
    assert y.tolist() == [1, 2, 3, 4]


LOST = textwrap.dedent(
    """
    import gc, json
    import numpy as np
    import hwabstract as hw

    out = {}
    lost, fine = hw.device("maia:1"), hw.device("maia:0")
    x = hw.asarray(np.arange(16, dtype=np.float32), device=lost)
    kept = hw.asarray(np.arange(16, dtype=np.float32), device=fine)
    lost.synchronize()
    y = hw.add(x, x)                       # queued before the loss
    lost._impl.lose_device(lost.index)

    def outcome(fn):
        try:
            fn()
        except hw.DeviceLostError as exc:
            return "DeviceLostError: " + str(exc)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "ok"

    out["synchronize"] = outcome(lambda: lost.synchronize(timeout=60))
    out["read"] = outcome(lambda: y.numpy())
    out["allocate"] = outcome(lambda: hw.zeros((4,), device=lost))
    out["launch"] = outcome(lambda: hw.multiply(x, x))
    out["new stream"] = outcome(lambda: lost.create_stream())
    out["to host"] = outcome(lambda: x.to("cpu"))
    # the other device is unaffected
    out["other device"] = float(hw.sum(hw.add(kept, kept)).numpy())
    # frees still work: nothing leaks on either device
    del x, y
    gc.collect()
    out["lost in use"] = lost.memory_stats().allocations
    out["is DeviceError"] = issubclass(hw.DeviceLostError, hw.DeviceError)
    print(json.dumps(out))
    """
)


def test_a_lost_device_says_so_everywhere_frees_still_work_and_others_go_on() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LOST],
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard: every wait in the script has its own timeout
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for op in ("synchronize", "read", "allocate", "launch", "new stream", "to host"):
        assert out[op].startswith("DeviceLostError: "), (op, out[op])
        assert "the Maia device is lost" in out[op] and "device 1 is lost" in out[op], out[op]
    assert out["other device"] == float(2 * np.arange(16).sum())
    assert out["lost in use"] == 0
    assert out["is DeviceError"] is True
