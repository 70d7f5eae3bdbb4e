"""Dispatch: the per-signature plan cache must never skip a check that depends on values."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import hwabstract as hw


def test_one_plan_per_signature() -> None:
    x = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    hw.add(x, x)
    plans = x.device._plans
    before = len(plans)
    for _ in range(5):
        hw.add(x, x)
    assert len(plans) == before  # reused
    hw.add(x, x[0])  # another signature (broadcast shape)
    assert len(plans) == before + 1


def test_cached_plans_do_not_keep_a_dropped_device_alive() -> None:
    from hwabstract.registry import Registry

    registry = Registry()
    device = registry.device("cpu")
    stream = device.create_stream()
    x = hw.asarray(np.ones(4, np.float32), device=device, stream=stream)
    assert hw.exp(x, stream=stream).tolist() == [pytest.approx(np.e)] * 4  # (caches a plan)
    ref = weakref.ref(device)
    del registry, device, stream, x
    gc.collect()
    assert ref() is None


def test_scalar_values_are_checked_on_every_call() -> None:
    x = hw.asarray(np.arange(3, dtype=np.uint8))
    assert (x + 1).tolist() == [1, 2, 3]
    with pytest.raises(hw.DTypeError, match="out of range for uint8"):
        x + 300  # same signature as x + 1 (uint8 tensor, int scalar): the value still counts


def test_shape_errors_are_not_masked_by_a_cached_plan() -> None:
    a = hw.asarray(np.ones((2, 3), np.float32))
    hw.matmul(a, a.T)
    with pytest.raises(hw.ShapeError, match="do not match"):
        hw.matmul(a, a)


def test_unhashable_attributes_still_dispatch() -> None:
    x = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert hw.sum(x, axis=[0, 1]).item() == 15.0
    assert hw.sum(x, axis=(0, 1)).item() == 15.0


class _BindRecorder:
    """Installed on a fresh cpu device as its backend's ``bind_launch``: records what the
    core asks for and what the bound launches are called with. A bound launch rebuilds the
    operands from the layouts it was bound to, so a launch the core routed to the wrong
    bound launch (another offset, say) computes a wrong result."""

    def __init__(self, device: hw.Device, bind: bool = True) -> None:
        self.impl = device._impl
        self.bind = bind
        self.asked: list[str] = []
        self.bound_calls: list[str] = []
        self.impl.bind_launch = self._bind_launch  # type: ignore[method-assign]

    def _bind_launch(self, kernel, inputs, outputs, attributes):  # type: ignore[no-untyped-def]
        self.asked.append(kernel)
        if not self.bind:
            return None

        def bound(stream, buffers, out_buffers):  # type: ignore[no-untyped-def]
            self.bound_calls.append(kernel)
            assert len(out_buffers) == len(outputs)
            self.impl.launch(
                stream,
                kernel,
                [op._replace(buffer=b) for op, b in zip(inputs, buffers)],
                [op._replace(buffer=b) for op, b in zip(outputs, out_buffers)],
                attributes,
            )

        return bound


@pytest.fixture
def cpu_device() -> hw.Device:
    from hwabstract.registry import Registry

    return Registry().device("cpu")


def test_a_bound_launch_is_asked_for_once_per_signature_then_takes_its_launches(
    cpu_device: hw.Device,
) -> None:
    rec = _BindRecorder(cpu_device)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = hw.asarray(a, device=cpu_device)
    results = [hw.add(x, 1.5) for _ in range(5)]
    assert rec.asked == ["add"]  # after the first launch, which launch() ran
    assert rec.bound_calls == ["add"] * 4
    for r in results:
        np.testing.assert_array_equal(r.numpy(), a + 1.5)
    hw.multiply(x, x)
    hw.multiply(x, x)
    assert rec.asked == ["add", "multiply"] and rec.bound_calls[-1] == "multiply"


def test_views_with_other_strides_or_offsets_are_other_signatures(
    cpu_device: hw.Device,
) -> None:
    rec = _BindRecorder(cpu_device)
    a = np.arange(10, dtype=np.float32)
    x = hw.asarray(a, device=cpu_device)
    # same dtype and shape (4,), different offsets and strides: each its own bound launch
    views = [
        (x[0:4], a[0:4]),
        (x[1:5], a[1:5]),
        (x[::2][:4], a[::2][:4]),
        (x[::-1][:4], a[::-1][:4]),
    ]
    for _ in range(3):
        for view, host in views:
            np.testing.assert_array_equal(hw.exp(view).numpy(), np.exp(host))
    assert rec.asked == ["exp"] * 4
    assert len(rec.bound_calls) == 8


def test_no_bound_launch_for_out_casts_or_empty_inputs(cpu_device: hw.Device) -> None:
    rec = _BindRecorder(cpu_device)
    f = hw.asarray(np.ones(3, np.float32), device=cpu_device)
    i = hw.asarray(np.arange(3, dtype=np.int32), device=cpu_device)
    out = hw.empty((3,), dtype=hw.float32, device=cpu_device)
    for _ in range(3):
        hw.add(f, f, out=out)  # into a given tensor: launch() every time
        assert hw.add(f, i).tolist() == [1.0, 2.0, 3.0]  # i is cast first
    assert rec.asked == ["astype"]  # the cast itself is bound; the add after it is not
    assert rec.bound_calls == ["astype"] * 2
    e = hw.asarray(np.ones((2, 0), np.float32), device=cpu_device)
    for _ in range(3):
        assert hw.matmul(e, hw.asarray(np.ones((0, 2), np.float32), device=cpu_device)
                         ).tolist() == [[0.0, 0.0], [0.0, 0.0]]  # fmt: skip
    assert "matmul" not in rec.asked  # an empty input: never bound


def test_a_backend_without_bound_launches_is_asked_once(cpu_device: hw.Device) -> None:
    rec = _BindRecorder(cpu_device, bind=False)
    x = hw.asarray(np.arange(4, dtype=np.float32), device=cpu_device)
    for _ in range(4):
        assert hw.negative(x).tolist() == [0.0, -1.0, -2.0, -3.0]
    assert rec.asked == ["negative"]


def test_the_fast_path_refuses_a_released_buffer_as_launch_does(cpu_device: hw.Device) -> None:
    _BindRecorder(cpu_device)
    x = hw.asarray(np.arange(4, dtype=np.float32), device=cpu_device)
    hw.sqrt(x)
    hw.sqrt(x)  # bound by now
    storage = x._storage
    buffer, storage.buffer = storage.buffer, None  # as during a finalizer's teardown
    try:
        with pytest.raises(hw.DeviceError, match="memory was released"):
            hw.sqrt(x)
    finally:
        storage.buffer = buffer
