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
