"""OCP MX v1.0 tensors, for every format the device declares in ``mx_formats`` (native:
its backend's MX kernels; emulated: the core's composition from its standard kernels,
:mod:`hwabstract.mx.emulated`): quantization and dequantization bit-identical to
:mod:`hwabstract.mx.reference` -- every element code, special values (NaN, +-Inf, +-0,
subnormals, float32's extremes), all-zero blocks, partial last blocks, every axis, every
input and output dtype the device declares, strided inputs -- MX x MX matmul within the
accuracy bound of docs/mx.md, and the refusal of the formats it does not declare."""

from __future__ import annotations

import numpy as np
import pytest

import hwabstract as hw
from hwabstract.backend import DTypeSupport
from hwabstract.conformance.helpers import not_claimed
from hwabstract.conformance.numerics import wide_exponent_blocks
from hwabstract.errors import UnsupportedError
from hwabstract.mx import BLOCK, FORMATS, MXFormat
from hwabstract.mx import reference as R

ALL = list(FORMATS.values())
INPUT_DTYPES = ("float32", "bfloat16", "float16")


def _claim(device: hw.Device, fmt: MXFormat) -> DTypeSupport:
    support = device.capabilities.mx_formats.get(fmt.name)
    if support is None:
        not_claimed(f"mx format {fmt.name}")
    return support


def _dtype(device: hw.Device, name: str) -> hw.DType:
    dtype = hw.dtypes.dtype(name)
    if not device.capabilities.supports_dtype(dtype):
        not_claimed(f"dtype {name}")
    return dtype


def _check_quantize(device: hw.Device, x: np.ndarray, fmt: MXFormat, axis: int = -1,
                    what: str = "") -> None:  # fmt: skip
    m = hw.mx.quantize(hw.asarray(x, device=device), fmt, axis=axis)
    ref = R.quantize(x, fmt, axis)
    elements, scales = m.elements.numpy(), m.scales.numpy()
    bad_scales = np.argwhere(scales != ref.scales)
    assert bad_scales.size == 0, (
        f"{fmt.name} {what}: {len(bad_scales)} scale(s) differ from the reference, first at "
        f"block {tuple(bad_scales[0])}: {scales[tuple(bad_scales[0])]:#04x}, expected "
        f"{ref.scales[tuple(bad_scales[0])]:#04x}"
    )
    bad = np.argwhere(elements != ref.elements)
    assert bad.size == 0, (
        f"{fmt.name} {what}: {len(bad)} packed element byte(s) differ from the reference, "
        f"first at {tuple(bad[0])}: {elements[tuple(bad[0])]:#04x}, expected "
        f"{ref.elements[tuple(bad[0])]:#04x}"
    )
    for name in ("float32", "bfloat16", "float16"):
        dtype = hw.dtypes.dtype(name)
        if not device.capabilities.supports_dtype(dtype):
            continue
        got = m.dequantize(dtype).numpy()
        want = R.dequantize(ref, fmt, dtype.numpy_dtype)
        same = np.ascontiguousarray(got).view(np.uint8) == np.ascontiguousarray(want).view(np.uint8)
        assert same.all(), f"{fmt.name} {what}: dequantize to {name} differs from the reference"


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_every_element_code_round_trips(device: hw.Device, fmt: MXFormat) -> None:
    """A block per code: the code's value times a power of two quantizes back to the code."""
    _claim(device, fmt)
    codes = np.arange(fmt.codes, dtype=np.uint8)
    values = R.decode_elements(codes, fmt)
    values = values[np.isfinite(values)]
    x = np.zeros((values.size, BLOCK), dtype=np.float32)
    x[:, 0] = fmt.max_normal * 2.0**-3  # fixes the block's scale at 2^-3
    x[:, 1] = values * 2.0**-3
    _check_quantize(device, x, fmt, what="(every code)")


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_random_tensors_on_every_axis_with_partial_blocks(
    device: hw.Device, fmt: MXFormat, axis: int
) -> None:
    _claim(device, fmt)
    _check_quantize(
        device, wide_exponent_blocks((37, 70), seed=axis + 3), fmt, axis, f"(axis {axis})"
    )


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_special_values(device: hw.Device, fmt: MXFormat) -> None:
    _claim(device, fmt)
    f32 = np.finfo(np.float32)
    base = np.linspace(-3.0, 3.0, BLOCK, dtype=np.float32)
    rows = []
    for special in (np.nan, np.inf, -np.inf, 0.0, -0.0, f32.max, -f32.max, f32.tiny,
                    f32.smallest_subnormal):  # fmt: skip
        row = base.copy()
        row[5] = special
        rows.append(row)
    rows.append(np.zeros(BLOCK, np.float32))  # an all-zero block
    rows.append(-np.zeros(BLOCK, np.float32))
    rows.append(np.full(BLOCK, f32.smallest_subnormal, np.float32))
    rows.append(np.full(BLOCK, f32.max, np.float32))
    _check_quantize(device, np.stack(rows), fmt, what="(special values)")


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
@pytest.mark.parametrize("n", [1, 31, 32, 33, 95])
def test_lengths_around_the_block_size(device: hw.Device, fmt: MXFormat, n: int) -> None:
    _claim(device, fmt)
    _check_quantize(device, wide_exponent_blocks((3, n), seed=n), fmt, what=f"(n={n})")


@pytest.mark.parametrize("name", INPUT_DTYPES)
def test_every_declared_input_dtype(device: hw.Device, name: str) -> None:
    dtype = _dtype(device, name)
    fmts = [f for f in ALL if f.name in device.capabilities.mx_formats]
    if not fmts:
        not_claimed("mx formats")
    x = wide_exponent_blocks((4, 64), seed=7).astype(dtype.numpy_dtype)
    for fmt in fmts:
        _check_quantize(device, x, fmt, what=f"(from {name})")


def test_a_strided_reversed_input(device: hw.Device) -> None:
    fmts = [f for f in ALL if f.name in device.capabilities.mx_formats]
    if not fmts:
        not_claimed("mx formats")
    x = wide_exponent_blocks((40, 90), seed=9)
    t = hw.asarray(x, device=device)[::-3, 1::2]
    for fmt in fmts:
        m = hw.mx.quantize(t, fmt, axis=1)
        ref = R.quantize(x[::-3, 1::2], fmt, 1)
        assert np.array_equal(m.elements.numpy(), ref.elements), fmt.name
        assert np.array_equal(m.scales.numpy(), ref.scales), fmt.name


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_matmul_is_within_the_bound(device: hw.Device, fmt: MXFormat) -> None:
    """MX x MX against the exact product of the dequantized operands. Native MX kernels
    compute the block dot products exactly, so the only error is summation order before one
    final rounding: within 2 float32 ulps of the result's magnitude bound. An emulated
    format multiplies the dequantized operands (exact in float32) with the device's float32
    ``matmul``, and is held to the suite's bound for that kernel: ``2 * n * eps(float32) *
    (|A| @ |B|)`` with ``n = K`` terms per result."""
    support = _claim(device, fmt)
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((17, 200)), rng.standard_normal((200, 9))
    ma = hw.mx.quantize(hw.asarray(a.astype(np.float32), device=device), fmt, axis=1)
    mb = hw.mx.quantize(hw.asarray(b.astype(np.float32), device=device), fmt, axis=0)
    got = hw.mx.matmul(ma, mb).numpy().astype(np.float64)
    ra, rb = R.quantize(a.astype(np.float32), fmt, 1), R.quantize(b.astype(np.float32), fmt, 0)
    da, db = R.dequantize(ra, fmt, np.float64), R.dequantize(rb, fmt, np.float64)
    exact = da @ db
    terms = 1 if support is DTypeSupport.NATIVE else a.shape[1]
    bound = np.abs(da) @ np.abs(db) * 2 * terms * np.finfo(np.float32).eps
    bound += np.finfo(np.float32).tiny
    worst = np.max(np.abs(got - exact) - bound)
    assert worst <= 0, f"{fmt.name}: matmul error exceeds the bound by {worst:.3g}"


def test_undeclared_formats_are_refused(device: hw.Device) -> None:
    missing = [f for f in ALL if f.name not in device.capabilities.mx_formats]
    if not missing:
        pytest.skip("the device declares every MX format")
    if not device.capabilities.supports_dtype(hw.float32):
        not_claimed("dtype float32")
    t = hw.zeros((2, 32), dtype=hw.float32, device=device)
    for fmt in missing:
        with pytest.raises(UnsupportedError) as info:
            hw.mx.quantize(t, fmt)
        assert info.value.capability == f"mx:{fmt.name}"
