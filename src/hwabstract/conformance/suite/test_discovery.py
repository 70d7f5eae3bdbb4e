"""Discovery and metadata: the backend is found and usable, its devices describe themselves
honestly, and its capability manifest is internally consistent."""

from __future__ import annotations

import re

import pytest

import hwabstract as hw
from hwabstract.backend import SUPPORTED_API_LEVELS, Backend, DTypeSupport, Feature
from hwabstract.conformance.plugin import Target
from hwabstract.dtypes import DType
from hwabstract.kernels import all_specs

#: words a stand-in's device name must contain one of (it must say what it is)
STANDIN_WORDS = re.compile(r"stand-?in|emulat|simulat|interpret", re.IGNORECASE)


def test_the_backend_is_listed_and_usable(conformance: Target) -> None:
    status = conformance.status
    assert status is not None, f"{conformance.backend} is not in hw.backends()"
    assert status.ok, f"status {status.status}: {status.reason}"
    assert status.api_level in SUPPORTED_API_LEVELS, f"API level {status.api_level}"
    assert status.device_count >= 1, "an ok backend must have at least one device"
    assert status.reason is None


def test_its_devices_are_listed_with_stable_names(conformance: Target, device: hw.Device) -> None:
    devices = hw.devices(conformance.backend)
    assert device in devices
    assert len(devices) == conformance.status.device_count  # type: ignore[union-attr]
    for index, d in enumerate(devices):
        assert d.name == f"{conformance.backend}:{index}"
        assert d.index == index
        assert hw.device(d.name) is d, "the same spec must give the same Device object"


def test_device_info_is_complete_and_honest(device: hw.Device) -> None:
    info = device.info
    for field in ("name", "vendor", "model"):
        value = getattr(info, field)
        assert isinstance(value, str) and value.strip(), f"info.{field} is empty"
    assert isinstance(info.memory_capacity, int) and info.memory_capacity > 0
    if info.standin:
        assert info.standin_for, "a stand-in must name the hardware it stands in for"
        assert STANDIN_WORDS.search(info.name), (
            f"a stand-in's device name must say so (e.g. 'emulated', 'stand-in'): {info.name!r}"
        )
    else:
        assert info.standin_for is None, "standin_for is set but standin is false"
    if info.modeled_memory_capacity is not None:
        assert info.standin, "modeled_memory_capacity describes modeled hardware (stand-ins)"
        assert info.modeled_memory_capacity > 0


def test_the_manifest_is_consistent(device: hw.Device) -> None:
    caps = device.capabilities
    assert caps.dtypes, "a device must declare at least one dtype"
    for d, support in caps.dtypes.items():
        assert isinstance(d, DType), f"dtype key {d!r} is not a hwabstract DType"
        assert isinstance(support, DTypeSupport), f"{d}: support {support!r}"
    specs = {s.name: s for s in all_specs()}
    for name, kernel_dtypes in caps.kernels.items():
        assert name in specs, f"kernel {name!r} is not a standard kernel"
        undeclared = {d.name for d in kernel_dtypes if d not in caps.dtypes}
        assert not undeclared, f"kernel {name} declared for dtypes not declared: {undeclared}"
        undefined = {d.name for d in kernel_dtypes if d not in specs[name].dtypes}
        assert not undefined, (
            f"kernel {name} declared for dtypes it is not defined for: {undefined}"
        )
    for feature in caps.features:
        assert isinstance(feature, Feature), f"feature {feature!r}"
    limits = caps.limits
    assert 0 < limits.max_allocation <= limits.memory_capacity
    assert limits.memory_capacity <= device.info.memory_capacity
    assert 1 <= limits.max_dims <= 64


def test_declared_features_are_implemented(device: hw.Device) -> None:
    impl = type(device._impl)
    caps = device.capabilities
    if caps.has_feature(Feature.EVENT_TIMING):
        assert impl.event_elapsed_ms is not Backend.event_elapsed_ms
    if caps.has_feature(Feature.MODELED_TIME):
        assert impl.event_modeled_elapsed_ms is not Backend.event_modeled_elapsed_ms
    if caps.has_feature(Feature.PEER_COPY):
        assert impl.copy_peer is not Backend.copy_peer


def test_the_manifest_is_stable(device: hw.Device) -> None:
    first = device._impl.capabilities(device.index)
    again = device._impl.capabilities(device.index)
    assert dict(first.dtypes) == dict(again.dtypes)
    assert dict(first.kernels) == dict(again.kernels)
    assert first.features == again.features and first.limits == again.limits


def test_streams_can_be_created_and_the_default_stream_exists(device: hw.Device) -> None:
    assert device.default_stream.device is device
    s = device.create_stream()
    assert s.device is device and s is not device.default_stream
    s.synchronize()
    assert s.query() is True


def test_memory_stats_are_consistent(device: hw.Device) -> None:
    stats = device.memory_stats()
    assert stats.capacity > 0
    assert 0 <= stats.in_use <= stats.capacity
    assert stats.peak >= stats.in_use
    assert 0 <= stats.free <= stats.capacity
    assert stats.allocations >= 0
    if stats.largest_free_block is not None:
        assert 0 <= stats.largest_free_block <= stats.free


@pytest.mark.parametrize("field", ["name", "vendor", "model"])
def test_info_fields_are_single_lines(device: hw.Device, field: str) -> None:
    assert "\n" not in getattr(device.info, field), f"info.{field} spans lines (reports break)"
