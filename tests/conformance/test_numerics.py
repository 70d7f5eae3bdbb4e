"""The tolerance policy and the special values the suite feeds kernels."""

from __future__ import annotations

import numpy as np

import hwabstract as hw
from hwabstract.conformance.numerics import (
    EXACT_KERNELS,
    reference_ulps,
    special_values,
    subnormal_values,
)
from hwabstract.kernels import all_specs


def test_exact_kernels_are_correctly_rounded_and_others_have_a_budget() -> None:
    assert reference_ulps("add", hw.float32) == 0 and reference_ulps("add", hw.bfloat16) == 0
    assert reference_ulps("exp", hw.float32) == 8 and reference_ulps("exp", hw.float16) == 1
    assert reference_ulps("gelu", hw.float32) == 32 and reference_ulps("gelu", hw.bfloat16) == 1
    assert reference_ulps("add", hw.int32) == 0


def test_every_exact_kernel_is_a_standard_kernel() -> None:
    names = {s.name for s in all_specs()}
    assert names >= EXACT_KERNELS, EXACT_KERNELS - names


def test_special_values_cover_what_breaks_implementations() -> None:
    f16 = special_values(hw.float16).astype(np.float64)
    assert np.isnan(f16).any() and np.isinf(f16).sum() == 2
    assert (np.signbit(f16) & (f16 == 0)).any(), "-0.0"
    assert not ((f16 != 0) & (np.abs(f16) < 2.0**-14)).any(), "subnormals have their own set"
    sub = subnormal_values(hw.float16).astype(np.float64)
    assert (np.abs(sub) == 2.0**-24).any(), "the smallest subnormal"
    assert (np.abs(sub) == 2.0**-14 - 2.0**-24).any(), "the largest subnormal"
    assert (np.abs(f16) == 65504).any(), "the largest finite value"
    e4m3 = special_values(hw.float8_e4m3fn).astype(np.float64)
    assert not np.isinf(e4m3).any(), "float8_e4m3fn has no infinities"
    i8 = special_values(hw.int8)
    assert {-128, 127, 0, 1} <= set(i8.tolist())
    assert special_values(hw.bool).dtype == np.bool_
