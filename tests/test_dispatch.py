"""Dispatch: the per-signature plan cache must never skip a check that depends on values."""

from __future__ import annotations

import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dispatch


def test_one_plan_per_signature() -> None:
    x = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    hw.add(x, x)
    before = len(dispatch._PLANS)
    for _ in range(5):
        hw.add(x, x)
    assert len(dispatch._PLANS) == before  # reused
    hw.add(x, x[0])  # another signature (broadcast shape)
    assert len(dispatch._PLANS) == before + 1


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
