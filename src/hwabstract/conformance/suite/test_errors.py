"""The error contract: every documented misuse raises the documented exception (see
``docs/errors.md``) with a message, at the call that makes it; afterwards the device still
works and no memory is left behind."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import hwabstract as hw
from hwabstract.backend import Feature
from hwabstract.conformance.helpers import (
    byte_dtype,
    declared,
    float_dtype,
    not_claimed,
    settled_in_use,
)
from hwabstract.conformance.plugin import Target
from hwabstract.errors import (
    DeviceError,
    DTypeError,
    InvalidIndexError,
    ShapeError,
    StreamError,
    UnsupportedError,
)
from hwabstract.kernels import get_spec


@pytest.fixture(autouse=True)
def still_usable(device: hw.Device) -> Iterator[None]:
    """After each misuse: the device computes correctly and memory is back to its baseline."""
    before = settled_in_use(device)
    yield
    b = byte_dtype(device)
    host = np.arange(12).astype(b.numpy_dtype)
    np.testing.assert_array_equal(hw.asarray(host, device=device).numpy(), host)
    after = settled_in_use(device)
    assert after == before, f"{after - before:+,} bytes in use after a refused call (a leak)"


def _raises(kind: type[BaseException], fn: Callable[[], Any]) -> BaseException:
    with pytest.raises(kind) as info:
        fn()
    message = str(info.value)
    assert message.strip(), f"{kind.__name__} without a message"
    return info.value


def test_a_kernel_on_a_dtype_it_is_not_defined_for(device: hw.Device) -> None:
    floats = [d for d in declared(device, "f") if device.capabilities.supports_kernel("astype", d)]
    if not floats:
        not_claimed("a floating dtype")
    x = hw.zeros((3,), dtype=floats[0], device=device)
    _raises(DTypeError, lambda: hw.bitwise_and(x, x))


def test_an_undeclared_kernel_dtype_is_refused_before_launch(device: hw.Device) -> None:
    caps = device.capabilities
    for name in ("add", "multiply", "exp", "sum", "matmul"):
        defined = get_spec(name).dtypes
        missing = [
            d for d in declared(device) if d in defined and not caps.supports_kernel(name, d)
        ]
        for d in missing:
            x = hw.zeros((2, 2), dtype=d, device=device)
            fn = getattr(hw, name)
            args = (x, x) if name in ("add", "multiply", "matmul") else (x,)
            err = _raises(UnsupportedError, functools.partial(fn, *args))
            assert name in str(err)
            return
    pytest.skip("the device declares these kernels for every dtype it declares")


def test_shapes_that_do_not_broadcast(device: hw.Device) -> None:
    d = float_dtype(device)
    a, b = hw.zeros((3, 4), dtype=d, device=device), hw.zeros((5,), dtype=d, device=device)
    _raises(ShapeError, lambda: hw.add(a, b))
    if device.capabilities.supports_kernel("matmul", d):
        _raises(ShapeError, lambda: hw.matmul(a, a))


def test_out_of_the_wrong_shape_or_dtype(device: hw.Device) -> None:
    d = float_dtype(device)
    a = hw.zeros((3, 4), dtype=d, device=device)
    _raises(ShapeError, lambda: hw.add(a, a, out=hw.empty((4, 3), dtype=d, device=device)))
    others = [o for o in declared(device) if o is not d]
    if others:
        _raises(
            DTypeError, lambda: hw.add(a, a, out=hw.empty((3, 4), dtype=others[0], device=device))
        )


def test_an_axis_out_of_range(device: hw.Device) -> None:
    d = float_dtype(device)
    if not device.capabilities.supports_kernel("sum", d):
        not_claimed(f"kernel sum for {d.name}")
    a = hw.zeros((3, 4), dtype=d, device=device)
    _raises(ShapeError, lambda: hw.sum(a, axis=2))


def test_an_empty_max_is_an_error(device: hw.Device) -> None:
    d = float_dtype(device)
    if not device.capabilities.supports_kernel("max", d):
        not_claimed(f"kernel max for {d.name}")
    _raises(ShapeError, lambda: hw.max(hw.zeros((0,), dtype=d, device=device)))


def test_an_index_out_of_range(device: hw.Device) -> None:
    a = hw.zeros((3, 4), dtype=byte_dtype(device), device=device)
    err = _raises(InvalidIndexError, lambda: a[3])
    assert isinstance(err, IndexError)


def test_too_many_dimensions(device: hw.Device) -> None:
    limit = device.capabilities.limits.max_dims
    _raises(
        ShapeError, lambda: hw.zeros((1,) * (limit + 1), dtype=byte_dtype(device), device=device)
    )


def test_a_numpy_array_where_a_tensor_belongs(device: hw.Device) -> None:
    d = float_dtype(device)
    a = hw.zeros((3,), dtype=d, device=device)
    _raises(DeviceError, lambda: hw.add(a, np.zeros(3, dtype=d.numpy_dtype)))


def test_tensors_on_two_devices(conformance: Target, device: hw.Device) -> None:
    other = next(iter(conformance.peers()), None) or conformance.foreign()
    if other is None:
        pytest.skip("no second device")
    d = float_dtype(device)
    if not other.capabilities.supports_dtype(d):
        pytest.skip(f"{other.name} has no {d.name}")
    a, b = hw.zeros((3,), dtype=d, device=device), hw.zeros((3,), dtype=d, device=other)
    err = _raises(DeviceError, lambda: hw.add(a, b))
    assert device.name in str(err) and other.name in str(err)


def test_a_stream_of_another_device(conformance: Target, device: hw.Device) -> None:
    other = next(iter(conformance.peers()), None) or conformance.foreign()
    if other is None:
        pytest.skip("no second device")
    d = float_dtype(device)
    a = hw.zeros((3,), dtype=d, device=device)
    _raises(StreamError, lambda: hw.add(a, a, stream=other.create_stream()))


def test_timing_on_a_device_without_event_timing(device: hw.Device) -> None:
    if device.capabilities.has_feature(Feature.EVENT_TIMING):
        s = device.create_stream()
        untimed_start, end = s.record(timing=False), s.record(timing=True)
        end.synchronize()
        _raises(StreamError, lambda: untimed_start.elapsed_time(end))
        return
    _raises(UnsupportedError, lambda: device.create_stream().record(timing=True))


def test_a_scalar_that_does_not_fit_the_dtype(device: hw.Device) -> None:
    ints = [
        d
        for d in declared(device, "iu")
        if d.itemsize <= 2 and device.capabilities.supports_kernel("add", d)
    ]
    if not ints:
        not_claimed("add on a small integer dtype")
    a = hw.zeros((3,), dtype=ints[0], device=device)
    _raises(DTypeError, lambda: hw.add(a, 1 << 40))
