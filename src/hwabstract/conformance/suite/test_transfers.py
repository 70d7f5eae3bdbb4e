"""Transfers: host to device and back, device to device, between devices (of this backend
and of another), strided and non-contiguous views, writes through views, zero-size and
large transfers. Every comparison is bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import hwabstract as hw
from hwabstract.backend import Feature
from hwabstract.conformance.helpers import byte_dtype, declared
from hwabstract.conformance.plugin import Target

SHAPES = [(1,), (7,), (4099,), (3, 5), (2, 3, 4), ()]


def _bits(a: np.ndarray) -> np.ndarray:
    """The raw bytes of ``a`` (NaN payloads, -0.0 and all: equality is bit equality)."""
    return np.ascontiguousarray(a).view(np.uint8) if a.size else np.zeros(0, np.uint8)


def _random(dtype: hw.DType, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    if dtype.kind == "b":
        return (raw[: int(np.prod(shape))] & 1).astype(bool).reshape(shape)
    return raw.view(dtype.numpy_dtype).reshape(shape)


def assert_same_bits(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, sent {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, sent {expected.shape}"
    diff = np.flatnonzero(_bits(actual) != _bits(expected))
    assert diff.size == 0, f"{what}: {diff.size} byte(s) differ, first at byte {diff[0]}"


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_host_round_trip(device: hw.Device, shape: tuple[int, ...]) -> None:
    for dtype in declared(device):
        host = _random(dtype, shape, seed=len(shape) * 31 + dtype.itemsize)
        t = hw.asarray(host, device=device)
        assert t.device is device and t.dtype is dtype and t.shape == shape
        assert_same_bits(t.numpy(), host, f"{dtype} {shape} host -> device -> host")


def test_zero_size_transfers(device: hw.Device) -> None:
    for dtype in declared(device):
        host = np.zeros((0, 3), dtype=dtype.numpy_dtype)
        assert hw.asarray(host, device=device).numpy().shape == (0, 3)


def test_large_transfer(device: hw.Device) -> None:
    b = byte_dtype(device)
    n = min(64 << 20, device.capabilities.limits.max_allocation // 4) // b.itemsize
    host = _random(b, (n,), seed=7)
    t = hw.asarray(host, device=device)
    assert_same_bits(t.numpy(), host, f"{n * b.itemsize:,} bytes host -> device -> host")


def test_device_to_device_copy(device: hw.Device) -> None:
    for dtype in declared(device):
        host = _random(dtype, (5, 6), seed=dtype.itemsize)
        t = hw.asarray(host, device=device)
        copy = hw.asarray(t, copy=True)
        assert copy.device is device
        t[...] = hw.asarray(np.zeros_like(host), device=device)  # the copy is independent
        assert_same_bits(copy.numpy(), host, f"{dtype} device copy")


def test_copies_between_devices_of_the_backend(conformance: Target, device: hw.Device) -> None:
    peers = conformance.peers()
    if not peers:
        pytest.skip(f"{conformance.backend} has one device; copies between devices need two")
    if not device.capabilities.has_feature(Feature.PEER_COPY):
        pytest.skip("not claimed: peer_copy (copies go through the host)")
    for peer in peers:
        for dtype in declared(device):
            if not peer.capabilities.supports_dtype(dtype):
                continue
            host = _random(dtype, (3, 7), seed=peer.index)
            there = hw.asarray(host, device=device).to(peer)
            assert there.device is peer
            back = there.to(device)
            assert_same_bits(back.numpy(), host, f"{dtype} {device.name} -> {peer.name} -> back")


def test_copies_to_and_from_another_backend(conformance: Target, device: hw.Device) -> None:
    other = conformance.foreign()
    if other is None:
        pytest.skip("no device of another backend to copy to")
    for dtype in declared(device):
        if not other.capabilities.supports_dtype(dtype):
            continue
        host = _random(dtype, (4, 9), seed=11)
        there = hw.asarray(host, device=device).to(other)
        assert there.device is other
        assert_same_bits(there.to(device).numpy(), host, f"{dtype} via {other.name}")


def test_non_contiguous_views_read_back(device: hw.Device) -> None:
    for dtype in declared(device):
        host = _random(dtype, (6, 8), seed=3)
        t = hw.asarray(host, device=device)
        views = {
            "t[::2, 1::3]": (t[::2, 1::3], host[::2, 1::3]),
            "t.mT": (t.mT, host.T),
            "flip": (hw.flip(t, axis=1), host[:, ::-1]),
            "t[2]": (t[2], host[2]),
            "t[1:5, 3]": (t[1:5, 3], host[1:5, 3]),
        }
        for label, (view, expected) in views.items():
            assert_same_bits(view.numpy(), np.ascontiguousarray(expected), f"{dtype} {label}")


def test_writes_through_views(device: hw.Device) -> None:
    for dtype in declared(device):
        host = _random(dtype, (6, 8), seed=5)
        patch = _random(dtype, (3, 3), seed=6)
        t = hw.asarray(host, device=device)
        t[::2, 2:8:2] = hw.asarray(patch, device=device)
        expected = host.copy()
        expected[::2, 2:8:2] = patch
        assert_same_bits(t.numpy(), expected, f"{dtype} write into t[::2, 2:8:2]")


def test_non_contiguous_views_move_between_devices(conformance: Target, device: hw.Device) -> None:
    others = [*conformance.peers(), conformance.foreign()]
    others = [d for d in others if d is not None]
    if not others:
        pytest.skip("no second device")
    b = byte_dtype(device)
    host = _random(b, (8, 10), seed=9)
    view = hw.asarray(host, device=device)[1::2, ::-3]
    for other in others:
        if other.capabilities.supports_dtype(b):
            moved = view.to(other)
            assert_same_bits(
                moved.numpy(),
                np.ascontiguousarray(host[1::2, ::-3]),
                f"strided view {device.name} -> {other.name}",
            )
