"""DLPack on device memory: the core's side of the optional backend hooks
(``dlpack_device``, ``dlpack_export``, ``adopt_dlpack``) that the nvidia backend implements
with CUDA. A test backend whose memory the host "cannot address" (no host view) exports and
adopts memory of a made-up device type, so every decision the core takes -- which device
to report, which stream the backend is told to order after, which keywords reach it, when
a host copy is taken instead, when a foreign producer is adopted -- runs without a GPU."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import cpu_source

import hwabstract as hw
from hwabstract.backend import Operand
from hwabstract.backends.cpu import CpuBackend, _make_view
from hwabstract.dlpack import capsule_name
from hwabstract.errors import DLPackError
from hwabstract.registry import PluginSource, Registry

EXT = 12  # kDLExtDev


class DeviceMemoryBackend(CpuBackend):
    """The cpu backend, minus the host view, plus the device-DLPack hooks."""

    name = "devmem"
    exports: list[tuple[Any, Operand, dict[str, Any]]] = []
    fail_with: BaseException | None = None

    def host_view(self, operand: Operand) -> None:
        return None

    def dlpack_device(self, operand: Operand) -> tuple[int, int]:
        return (EXT, operand.buffer.device)

    def dlpack_export(self, writer: Any, operand: Operand, **kwargs: Any) -> Any:
        if self.fail_with is not None:
            raise self.fail_with
        self.exports.append((writer, operand, kwargs))
        writer.synchronize()
        return _make_view(operand).__dlpack__(max_version=kwargs.get("max_version"))

    adopted_on: list[Any] = []

    def adopt_dlpack(self, index: int, producer: Any, device: tuple[int, int], stream: Any) -> Any:
        if device != (EXT, index):
            return None
        self.adopted_on.append(stream)
        array = producer.array
        buffer = self.adopt_host_array(index, array)
        item = array.dtype.itemsize
        return buffer, array.dtype, array.shape, tuple(s // item for s in array.strides), 0


class Producer:
    """A foreign producer of memory on the made-up device ``(EXT, index)``; asked for a
    host copy, it hands one out (and counts the request)."""

    def __init__(self, array: np.ndarray, index: int = 0) -> None:
        self.array = array
        self.index = index
        self.host_requests = 0

    def __dlpack_device__(self) -> tuple[int, int]:
        return (EXT, self.index)

    def __dlpack__(self, **kwargs: Any) -> Any:
        assert kwargs.get("dl_device") == (1, 0), kwargs
        self.host_requests += 1
        return self.array.copy().__dlpack__(max_version=kwargs.get("max_version"))


@hw.hookimpl
def _devmem_backends() -> list[type[hw.Backend]]:
    return [DeviceMemoryBackend]


@pytest.fixture
def devmem(fresh_registry: Callable[..., Registry]) -> hw.Device:
    plugin = types.SimpleNamespace(hwabstract_backends=_devmem_backends)
    fresh_registry(
        [cpu_source(), PluginSource("devmem", lambda: plugin, "hwabstract-tests", "0")],
        HWABSTRACT_CPU_DEVICES="2",
    )
    DeviceMemoryBackend.exports = []
    DeviceMemoryBackend.adopted_on = []
    DeviceMemoryBackend.fail_with = None
    return hw.device("devmem:0")


def test_device_memory_reports_the_backends_device(devmem: hw.Device) -> None:
    t = hw.arange(6, dtype=hw.float32, device="devmem:1")
    assert t.__dlpack_device__() == (EXT, 1)


def test_export_hands_the_backend_the_writing_stream_and_the_consumers_keywords(
    devmem: hw.Device,
) -> None:
    s = devmem.create_stream()
    t = hw.zeros((4,), dtype=hw.float32, device=devmem)
    hw.add(t, 1.0, out=t, stream=s)
    capsule = t.__dlpack__(stream=7, max_version=(1, 1))
    assert capsule_name(capsule) == "dltensor_versioned"
    ((stream, operand, kwargs),) = DeviceMemoryBackend.exports
    assert stream is s.handle and operand.shape == (4,)
    assert kwargs == {"stream": 7, "max_version": (1, 1), "dl_device": None, "copy": None}
    np.testing.assert_array_equal(np.from_dlpack(_Capsule(capsule)), np.ones(4, np.float32))


class _Capsule:
    """Hands an existing capsule to ``np.from_dlpack`` (which wants a producer)."""

    def __init__(self, capsule: Any) -> None:
        self.capsule = capsule

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


def test_export_to_the_tensors_own_device_stays_in_place(devmem: hw.Device) -> None:
    t = hw.ones((3,), dtype=hw.float32, device=devmem)
    t.__dlpack__(dl_device=(EXT, 0), max_version=(1, 0))
    assert DeviceMemoryBackend.exports[0][2]["dl_device"] == (EXT, 0)


def test_export_to_another_device_is_refused(devmem: hw.Device) -> None:
    t = hw.ones((3,), dtype=hw.float32, device=devmem)
    with pytest.raises(DLPackError, match=r"cannot export devmem:0 memory to .*it lives on"):
        t.__dlpack__(dl_device=(EXT, 1))
    assert not DeviceMemoryBackend.exports


def test_a_host_consumer_gets_a_copy_not_the_device_memory(devmem: hw.Device) -> None:
    t = hw.arange(5, dtype=hw.int32, device=devmem)
    host = np.from_dlpack(_Capsule(t.__dlpack__(dl_device=(1, 0), max_version=(1, 0))))
    np.testing.assert_array_equal(host, np.arange(5, dtype=np.int32))
    assert not DeviceMemoryBackend.exports


def test_a_backend_refusal_is_a_dlpack_error(devmem: hw.Device) -> None:
    DeviceMemoryBackend.fail_with = BufferError("stream 7 is not a stream of this device")
    t = hw.ones((3,), dtype=hw.float32, device=devmem)
    with pytest.raises(DLPackError, match="could not export this tensor: stream 7"):
        t.__dlpack__(stream=7)


def test_import_adopts_device_memory_in_place(devmem: hw.Device) -> None:
    source = np.arange(12, dtype=np.float32).reshape(3, 4)
    producer = Producer(source)
    t = hw.from_dlpack(producer, device=devmem)
    assert t.shape == (3, 4) and t.dtype is hw.float32 and producer.host_requests == 0
    source[0, 0] = 99.0  # shared: the tensor sees the producer's write
    assert t.numpy()[0, 0] == 99.0


def test_import_hands_the_backend_the_current_stream_and_records_it_as_the_writer(
    devmem: hw.Device,
) -> None:
    s = devmem.create_stream()
    with s:
        t = hw.from_dlpack(Producer(np.zeros(3, np.float32)), device=devmem)
    assert DeviceMemoryBackend.adopted_on == [s.handle]
    assert t._storage.last_stream is s


def test_import_with_copy_true_takes_its_own_copy(devmem: hw.Device) -> None:
    source = np.arange(4, dtype=np.int64)
    t = hw.from_dlpack(Producer(source), device=devmem, copy=True)
    source[:] = -1
    np.testing.assert_array_equal(t.numpy(), np.arange(4))


def test_memory_of_another_device_takes_the_host_path(devmem: hw.Device) -> None:
    producer = Producer(np.arange(3, dtype=np.float32), index=1)
    t = hw.from_dlpack(producer, device=devmem)
    assert producer.host_requests == 1
    np.testing.assert_array_equal(t.numpy(), np.arange(3, dtype=np.float32))


def test_a_backend_without_the_hooks_asks_for_a_host_copy(devmem: hw.Device) -> None:
    producer = Producer(np.arange(3, dtype=np.float32))
    t = hw.from_dlpack(producer, device="cpu:0")
    assert producer.host_requests == 1 and t.device.name == "cpu:0"
