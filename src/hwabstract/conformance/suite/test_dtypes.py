"""Tensors and dtypes: every declared dtype round-trips bit for bit -- every bit pattern of
the 8- and 16-bit formats, and the special values of the wider ones -- and DLPack exports
and imports where the device declares it."""

from __future__ import annotations

import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.backend import DTypeSupport, Feature
from hwabstract.conformance.helpers import not_claimed
from hwabstract.conformance.numerics import special_values
from hwabstract.conformance.plugin import target
from hwabstract.errors import DLPackError, UnsupportedError

ALL = list(dt.all_dtypes())


def _every_pattern(dtype: hw.DType) -> np.ndarray:
    if dtype.kind == "b":
        return np.array([False, True])
    if dtype.itemsize <= 2:
        return np.arange(1 << (8 * dtype.itemsize), dtype=f"u{dtype.itemsize}").view(
            dtype.numpy_dtype
        )
    rng = np.random.default_rng(dtype.itemsize)
    raw = rng.integers(0, 256, size=4096 * dtype.itemsize, dtype=np.uint8).view(dtype.numpy_dtype)
    extra = special_values(dtype) if dtype.kind in "fc" or dtype.kind in "iu" else raw[:0]
    return np.concatenate([raw, np.asarray(extra, dtype=dtype.numpy_dtype)])


@pytest.mark.parametrize("dtype", ALL, ids=lambda d: d.name)
def test_every_bit_pattern_round_trips(device: hw.Device, dtype: hw.DType) -> None:
    if not device.capabilities.supports_dtype(dtype):
        not_claimed(f"dtype {dtype.name}")
    host = _every_pattern(dtype)
    back = hw.asarray(host, device=device).numpy()
    assert back.dtype == host.dtype
    same = np.ascontiguousarray(back).view(np.uint8) == np.ascontiguousarray(host).view(np.uint8)
    bad = np.flatnonzero(~same)
    assert bad.size == 0, (
        f"{dtype}: {bad.size} byte(s) changed on the round trip, first at byte {bad[0]} "
        "(NaN payloads, -0.0 and subnormals must survive a transfer)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "undeclared" in metafunc.fixturenames:
        caps = target(metafunc.config).caps
        missing = [d for d in ALL if caps is not None and not caps.supports_dtype(d)]
        metafunc.parametrize("undeclared", missing, ids=[d.name for d in missing])


def test_an_undeclared_dtype_is_refused(device: hw.Device, undeclared: hw.DType) -> None:
    dtype = undeclared
    with pytest.raises(UnsupportedError) as info:
        hw.zeros((3,), dtype=dtype, device=device)
    assert dtype.name in str(info.value)


def test_dtype_support_levels(device: hw.Device) -> None:
    for dtype, support in device.capabilities.dtypes.items():
        assert support in (DTypeSupport.NATIVE, DTypeSupport.EMULATED), (dtype, support)


@pytest.mark.parametrize("dtype", ALL, ids=lambda d: d.name)
def test_dlpack_export_and_import(device: hw.Device, dtype: hw.DType) -> None:
    if not device.capabilities.has_feature(Feature.DLPACK):
        not_claimed("dlpack")
    if not device.capabilities.supports_dtype(dtype):
        not_claimed(f"dtype {dtype.name}")
    host = np.resize(_every_pattern(dtype), 64).reshape(8, 8)
    t = hw.asarray(host, device=device)
    kind, _ = t.__dlpack_device__()
    assert isinstance(kind, int)
    again = hw.from_dlpack(t, device=device)
    assert again.dtype is dtype and again.shape == t.shape
    np.testing.assert_array_equal(
        again.numpy().view(np.uint8), np.ascontiguousarray(host).view(np.uint8)
    )
    if dtype.numpy_dtype.type.__module__ == "numpy":  # NumPy can name the dtype
        # host memory is shared; device memory (kDLCUDA, ...) reaches NumPy as a host copy
        shared = np.from_dlpack(t[::2]) if kind == 1 else np.from_dlpack(t[::2], device="cpu")
        np.testing.assert_array_equal(
            shared.view(np.uint8), np.ascontiguousarray(host[::2]).view(np.uint8)
        )


def test_dlpack_without_the_feature_says_so(device: hw.Device) -> None:
    if device.capabilities.has_feature(Feature.DLPACK):
        pytest.skip("the device declares dlpack (the export test covers it)")
    t = hw.zeros((3,), dtype=_any(device), device=device)
    with pytest.raises(DLPackError):
        np.from_dlpack(t)


def _any(device: hw.Device) -> hw.DType:
    return next(d for d in ALL if device.capabilities.supports_dtype(d))
