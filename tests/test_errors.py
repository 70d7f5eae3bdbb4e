"""Every class in hwabstract.errors, raised by the real misuse that causes it. Each test checks
the type and that the message says what was wrong and what to do."""

from __future__ import annotations

import gc
from collections.abc import Callable

import numpy as np
import pytest

import hwabstract as hw
from hwabstract import errors
from hwabstract.backends.cpu import CpuBackend
from hwabstract.registry import PluginSource, Registry

COVERED: set[str] = set()


def covers(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a test as the one showing the misuse behind each named error class."""

    def mark(fn: Callable[..., None]) -> Callable[..., None]:
        COVERED.update(names)
        return fn

    return mark


# -- discovery ------------------------------------------------------------------------------------


class MissingDriverBackend(CpuBackend):
    name = "nodriver"

    def probe(self) -> None:
        raise hw.BackendUnavailableError(
            "nodriver", "libnodriver.so.1 was not found", vendor_message="dlopen failed"
        )


@hw.hookimpl
def _nodriver_backends() -> list[type[hw.Backend]]:
    return [MissingDriverBackend]


class _Plugin:
    hwabstract_backends = staticmethod(_nodriver_backends)


def _broken_import() -> object:
    raise ImportError("No module named 'vendor_runtime'")


@covers("BackendUnavailableError")
def test_backend_unavailable(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry([PluginSource("nodriver", lambda: _Plugin, "hwabstract-nodriver", "1.0")])
    with pytest.raises(hw.BackendUnavailableError) as info:
        hw.device("nodriver")
    err = info.value
    reason = "libnodriver.so.1 was not found (vendor: dlopen failed)"
    assert (err.backend, err.reason) == ("nodriver", reason)
    assert str(err) == (
        f"backend 'nodriver' is unavailable: {reason}. "
        "Run `hwabstract doctor` to see what every backend needs."
    )


@covers("BackendUnavailableError")
def test_misconfigured_cpu_backend_is_unavailable_with_the_variable_named(
    fresh_registry: Callable[..., Registry],
) -> None:
    fresh_registry(HWABSTRACT_CPU_DEVICES="two", HWABSTRACT_PLUGINS=None)
    with pytest.raises(hw.BackendUnavailableError) as info:
        hw.device("cpu")
    assert "HWABSTRACT_CPU_DEVICES='two' is not a positive integer" in info.value.reason
    assert "set it to the number of cpu devices" in str(info.value)


@covers("PluginError")
def test_plugin_error(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry([PluginSource("vendorx", _broken_import, "vendorx-hwabstract", "2.0")])
    with pytest.raises(hw.PluginError) as info:
        hw.devices("vendorx")
    message = str(info.value)
    assert message.startswith("backend 'vendorx' is failed: plugin failed to import: ImportError")
    assert "No module named 'vendor_runtime'" in message
    assert "Run `hwabstract doctor` for details." in message


# -- devices and memory ---------------------------------------------------------------------------


@covers("DeviceError")
def test_device_error_when_mixing_devices(two_cpus: tuple[hw.Device, hw.Device]) -> None:
    d0, d1 = two_cpus
    a = hw.asarray([1.0, 2.0], device=d0)
    b = hw.asarray([3.0, 4.0], device=d1)
    with pytest.raises(hw.DeviceError) as info:
        a + b
    assert str(info.value) == (
        "add() got tensors on cpu:0 and cpu:1; move them to one device first, e.g. x.to('cpu:0')"
    )
    with pytest.raises(hw.DeviceError, match="cannot assign a tensor on cpu:1 into one on cpu:0"):
        a[0] = b[0]


@covers("DeviceError")
def test_device_error_for_an_unknown_device() -> None:
    with pytest.raises(hw.DeviceError, match=r"no backend named 'tpuu'.*Install its plugin"):
        hw.device("tpuu:0")


@covers("OutOfMemoryError")
def test_out_of_memory_beyond_capacity(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry(HWABSTRACT_CPU_MEMORY=None, HWABSTRACT_CPU_DEVICES=None)
    dev = hw.device("cpu")
    capacity = dev.memory_stats().capacity
    with pytest.raises(hw.OutOfMemoryError) as info:
        hw.empty(capacity + 1, dtype="uint8")
    err = info.value
    assert isinstance(err, MemoryError)
    assert (err.device, err.requested, err.capacity) == ("cpu:0", capacity + 1, capacity)
    assert err.free is not None and err.free <= capacity
    assert f"out of memory on cpu:0: requested {capacity + 1:,} B" in str(err)
    assert "Free tensors you no longer need" in str(err)


@covers("OutOfMemoryError")
def test_out_of_memory_is_accounted_and_recovers(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry(HWABSTRACT_CPU_MEMORY="1MiB", HWABSTRACT_CPU_DEVICES=None)
    dev = hw.device("cpu")
    assert dev.memory_stats().capacity == 1024**2
    big = hw.empty(600 * 1024, dtype="uint8")
    free = dev.memory_stats().free
    with pytest.raises(hw.OutOfMemoryError) as info:
        hw.zeros(150 * 1024, dtype="float32")  # 600 KiB more
    assert (info.value.requested, info.value.free) == (600 * 1024, free)
    assert info.value.capacity == 1024**2
    assert dev.memory_stats().free == free  # the failed allocation took nothing
    del big
    gc.collect()
    again = hw.zeros(150 * 1024, dtype="float32")
    assert again.numpy().sum() == 0.0


# -- capabilities ---------------------------------------------------------------------------------


@covers("UnsupportedError")
def test_unsupported_kernel_dtype_and_feature(limited_device: hw.Device) -> None:
    x = hw.ones((2, 2), device=limited_device)
    with pytest.raises(hw.UnsupportedError) as info:
        hw.matmul(x, x)
    assert isinstance(info.value, NotImplementedError)
    assert info.value.capability == "kernel:matmul[float32]"
    assert "limited:0 does not implement matmul() for float32" in str(info.value)
    assert "choose another device" in str(info.value)

    with pytest.raises(hw.UnsupportedError) as info:
        hw.zeros(2, dtype="float64", device=limited_device)
    assert info.value.capability == "dtype:float64"
    assert "does not support dtype float64" in str(info.value)
    assert "Cast to a supported dtype first" in str(info.value)

    with pytest.raises(hw.UnsupportedError) as info:
        limited_device.default_stream.record(timing=True)
    assert info.value.capability == "feature:event_timing"
    assert "record(timing=False)" in str(info.value)


# -- execution ------------------------------------------------------------------------------------


@covers("KernelError")
def test_a_queued_command_fails_asynchronously() -> None:
    device = hw.device("cpu")
    stream = device.create_stream()
    x = hw.asarray(np.array([1.0, 2.0], dtype=np.float32))
    device._impl.inject_fault(device.index, "add")  # the device will fault on the next add
    result = hw.add(x, x, stream=stream)  # returns: the failure is reported later
    assert result.shape == (2,)
    with pytest.raises(hw.KernelError) as info:
        stream.synchronize()
    message = str(info.value)
    assert "queued command kernel 'add' failed on cpu:0 (InjectedFault)" in message
    assert "fix its inputs and queue it again" in message
    assert info.value.vendor_message == (
        "InjectedFault: fault injected into kernel 'add' (inject_fault)"
    )
    stream.synchronize()  # reported once; the stream keeps working
    y = hw.add(x, x, stream=stream)
    assert y.tolist() == [2.0, 4.0]


def test_an_unknown_kernel_name_is_a_kernel_error() -> None:
    from hwabstract.dispatch import launch

    x = hw.asarray(np.ones(2, np.float32))
    with pytest.raises(hw.KernelError, match="no kernel named 'nope'"):
        launch("nope", (x,))


def test_asarray_refuses_to_share_a_read_only_array() -> None:
    host = np.array([1.0, 2.0], dtype=np.float32)
    host.flags.writeable = False
    with pytest.raises(hw.DTypeError, match="cannot share a read-only array"):
        hw.asarray(host, copy=False)
    assert hw.asarray(host).tolist() == [1.0, 2.0]  # copy=None copies it


@covers("StreamError")
def test_stream_misuse(two_cpus: tuple[hw.Device, hw.Device]) -> None:
    d0, d1 = two_cpus
    x = hw.asarray([1.0], device=d0)
    with pytest.raises(hw.StreamError) as info:
        hw.add(x, x, stream=d1.create_stream())
    assert str(info.value) == (
        "the stream belongs to cpu:1 but the operands are on cpu:0; use a stream of cpu:0 or "
        "move the tensors with .to()"
    )
    with pytest.raises(hw.StreamError, match=r"takes an Event, got str; record one with"):
        d0.default_stream.wait("event")  # type: ignore[arg-type]
    with pytest.raises(hw.StreamError, match="stream= takes a hwabstract Stream, got int"):
        hw.add(x, x, stream=3)  # type: ignore[arg-type]
    outer, inner = d0.create_stream(), d0.create_stream()
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(hw.StreamError, match=r"exited out of order.*Nest `with stream:` blocks"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)


@covers("WaitTimeoutError")
def test_a_wait_for_an_event_never_reached_times_out(
    two_cpus: tuple[hw.Device, hw.Device],
) -> None:
    """The misuse a timeout catches: a stream made to wait on an event that is never reached
    (here: an event behind a stream that blocks until the test lets it go)."""
    import threading

    d0, _ = two_cpus
    blocked, waiting = d0.create_stream(), d0.create_stream()
    gate = threading.Event()
    blocked.handle.submit(gate.wait, "test gate")
    waiting.wait(blocked.record())
    try:
        with pytest.raises(hw.WaitTimeoutError, match=r"within 0.1 s\. Nothing is lost"):
            waiting.synchronize(timeout=0.1)
    finally:
        gate.set()
    waiting.synchronize(timeout=60)  # (a hang guard)


class LostCpuBackend(CpuBackend):
    """A device that is gone, as a vendor backend reports it (the Maia emulator's
    ``lose_device`` fault is the end-to-end case: tests/reliability/test_faults.py)."""

    name = "gone"

    def allocate(self, index: int, nbytes: int) -> object:
        raise hw.DeviceLostError(
            f"allocation failed: gone:{index} is lost; free its tensors and use another device",
            vendor_message="VENDOR_ERROR_DEVICE_REMOVED",
        )


@hw.hookimpl
def _lost_backends() -> list[type[hw.Backend]]:
    return [LostCpuBackend]


class _LostPlugin:
    hwabstract_backends = staticmethod(_lost_backends)


@covers("DeviceLostError")
def test_a_lost_device_is_reported_as_such(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry([PluginSource("gone", lambda: _LostPlugin, "hwabstract-gone", "1.0")])
    with pytest.raises(hw.DeviceLostError, match="gone:0 is lost; free its tensors") as info:
        hw.zeros((4,), device="gone:0")
    assert isinstance(info.value, hw.DeviceError)
    assert info.value.vendor_message == "VENDOR_ERROR_DEVICE_REMOVED"


# -- values ---------------------------------------------------------------------------------------


@covers("DTypeError")
def test_dtype_errors() -> None:
    x = hw.ones(3)
    with pytest.raises(hw.DTypeError) as info:
        hw.bitwise_and(x, x)
    assert isinstance(info.value, TypeError)
    assert "bitwise_and() is not defined for float32 inputs" in str(info.value)
    assert "Convert first" in str(info.value)
    with pytest.raises(hw.DTypeError, match=r"unknown dtype 'float128'; use one of: bool, int8"):
        hw.zeros(2, dtype="float128")
    with pytest.raises(hw.DTypeError, match=r"300 is out of range for uint8 \[0, 255\]"):
        hw.full(2, 300, dtype="uint8")


@covers("ShapeError")
def test_shape_errors() -> None:
    with pytest.raises(hw.ShapeError) as info:
        hw.ones((2, 3)) + hw.ones((4,))
    assert isinstance(info.value, ValueError)
    assert "(2, 3) and (4,) do not broadcast: dimension 1 is 3 in one and 4 in another" in str(
        info.value
    )
    with pytest.raises(hw.ShapeError, match=r"reshape\(copy=False\).*pass copy=None"):
        hw.ones((2, 3)).T.reshape(-1, copy=False)


@covers("InvalidIndexError")
def test_invalid_index() -> None:
    x = hw.arange(5)
    with pytest.raises(hw.InvalidIndexError) as info:
        x[5]
    assert isinstance(info.value, IndexError) and isinstance(info.value, hw.ShapeError)
    assert str(info.value) == (
        "index 5 is out of bounds for dimension 0 with size 5; valid indices are -5 to 4"
    )
    with pytest.raises(hw.InvalidIndexError, match="boolean tensor index must be the only"):
        x[x > 2, None]


@covers("DLPackError")
def test_dlpack_errors() -> None:
    x = hw.arange(3)
    with pytest.raises(hw.DLPackError) as info:
        x.__dlpack__(dl_device=(2, 0))
    assert isinstance(info.value, BufferError) and isinstance(info.value, hw.UnsupportedError)
    assert info.value.capability == "feature:dlpack"
    message = str(info.value)
    assert "cannot export cpu:0 memory to" in message and "(2, 0)" in message  # what was asked
    assert "(1, 0)" in message  # what it can be exported as
    with pytest.raises(hw.DLPackError, match="does not implement the DLPack protocol"):
        hw.from_dlpack([1, 2, 3])


@covers("HwAbstractError")
def test_one_base_class_catches_every_misuse(two_cpus: tuple[hw.Device, hw.Device]) -> None:
    d0, d1 = two_cpus
    misuses: list[Callable[[], object]] = [
        lambda: hw.device("nope"),
        lambda: hw.asarray([1], device=d0) + hw.asarray([1], device=d1),
        lambda: hw.arange(3)[7],
        lambda: hw.zeros(2, dtype="float128"),
        lambda: hw.ones(2) + hw.ones(3),
        lambda: d0.default_stream.wait(None),  # type: ignore[arg-type]
        lambda: hw.empty(d0.memory_stats().capacity + 1, dtype="uint8", device=d0),
        lambda: hw.arange(2).__dlpack__(dl_device=(2, 0)),
    ]
    for misuse in misuses:
        with pytest.raises(hw.HwAbstractError):
            misuse()
    assert all(issubclass(getattr(errors, n), hw.HwAbstractError) for n in errors.__all__)


def test_vendor_messages_are_kept() -> None:
    err = hw.BackendUnavailableError("x", "no device", vendor_message="CUDA_ERROR_NO_DEVICE")
    assert err.vendor_message == "CUDA_ERROR_NO_DEVICE"
    assert str(err).endswith("[vendor: CUDA_ERROR_NO_DEVICE]")


def test_every_error_class_has_a_misuse_test() -> None:
    assert set(errors.__all__) == COVERED
