"""The NumPy reference of OCP MX v1.0: exhaustive where it is cheap (every element code of
every format, every E8M0 code, every rounding midpoint), and checked against independent
implementations -- ml_dtypes' element types (with the clamping ml_dtypes does not do) and
gfloat's MX block quantizer."""

from __future__ import annotations

import itertools
import math

import ml_dtypes
import numpy as np
import pytest

from hwabstract.errors import DTypeError
from hwabstract.mx import (
    BLOCK,
    FORMATS,
    MXFP4_E2M1,
    MXFP6_E2M3,
    MXFP8_E4M3,
    MXFP8_E5M2,
    MXINT8,
    MXFormat,
    mx_format,
)
from hwabstract.mx import reference as R
from hwabstract.mx.formats import SCALE_NAN

ALL = list(FORMATS.values())
FLOATS = [f for f in ALL if not f.is_int]


def _ids(f: MXFormat) -> str:
    return f.name


def _ml_values(fmt: MXFormat) -> np.ndarray:
    """Every code of ``fmt`` decoded by ml_dtypes (float64)."""
    t = getattr(ml_dtypes, fmt.ml_dtype)  # type: ignore[arg-type]
    codes = np.arange(fmt.codes, dtype=np.uint8)
    return codes.view(t).astype(np.float64)


def _finite_codes(fmt: MXFormat) -> np.ndarray:
    codes = np.arange(fmt.codes, dtype=np.uint8)
    return codes[np.isfinite(R.decode_elements(codes, fmt))]


# -- formats ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL, ids=_ids)
def test_the_formats_largest_normal_and_emax_agree(fmt: MXFormat) -> None:
    values = R.decode_elements(np.arange(fmt.codes, dtype=np.uint8), fmt)
    assert np.nanmax(values[np.isfinite(values)]) == fmt.max_normal
    assert math.floor(math.log2(fmt.max_normal)) == fmt.emax
    assert fmt.block_bytes * 8 == BLOCK * fmt.bits


def test_formats_are_found_by_name() -> None:
    assert mx_format("MXFP8_E4M3") is MXFP8_E4M3
    assert mx_format("mxfp4") is MXFP4_E2M1
    assert mx_format(MXINT8) is MXINT8
    with pytest.raises(DTypeError, match=r"unknown MX format 'mxfp7'.*mxfp8_e4m3"):
        mx_format("mxfp7")


# -- elements: every code ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FLOATS, ids=_ids)
def test_every_element_code_decodes_as_ml_dtypes_does(fmt: MXFormat) -> None:
    ours = R.decode_elements(np.arange(fmt.codes, dtype=np.uint8), fmt)
    theirs = _ml_values(fmt)
    np.testing.assert_array_equal(ours, theirs)  # NaN where NaN, signed zeros and Inf alike
    numbers = ~np.isnan(theirs)  # (the sign of a NaN carries nothing)
    np.testing.assert_array_equal(np.signbit(ours[numbers]), np.signbit(theirs[numbers]))


def test_every_mxint8_code_is_an_int8_times_two_to_the_minus_six() -> None:
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(
        R.decode_elements(codes, MXINT8), codes.view(np.int8).astype(np.float64) / 64
    )


@pytest.mark.parametrize("fmt", ALL, ids=_ids)
def test_every_finite_code_encodes_back_to_itself(fmt: MXFormat) -> None:
    codes = _finite_codes(fmt)
    np.testing.assert_array_equal(R.encode_elements(R.decode_elements(codes, fmt), fmt), codes)


@pytest.mark.parametrize("fmt", FLOATS, ids=_ids)
def test_every_midpoint_rounds_to_even_and_neighbours_to_nearest(fmt: MXFormat) -> None:
    """Between each pair of adjacent non-negative values: the midpoint goes to the code with
    the even mantissa, a hair below it to the lower, a hair above to the upper."""
    codes = _finite_codes(fmt)
    values = R.decode_elements(codes, fmt)
    order = np.argsort(values, kind="stable")
    pos = [(int(c), float(v)) for c, v in zip(codes[order], values[order]) if v >= 0]
    pos = [p for p in pos if not (p[1] == 0 and p[0] != 0)]  # +0 only
    for (lo_code, lo), (hi_code, hi) in itertools.pairwise(pos):
        mid = (lo + hi) / 2
        even = lo_code if lo_code % 2 == 0 else hi_code
        got = R.encode_elements(np.array([mid, np.nextafter(mid, 0), np.nextafter(mid, 1e9)]), fmt)
        assert list(got) == [even, lo_code, hi_code], (fmt.name, lo, hi)
        neg = R.encode_elements(np.array([-mid]), fmt)[0]
        assert neg == even | (1 << (fmt.bits - 1))  # symmetric, sign bit set


@pytest.mark.parametrize("fmt", FLOATS, ids=_ids)
def test_encoding_matches_ml_dtypes_with_explicit_saturation(fmt: MXFormat) -> None:
    """ml_dtypes rounds to nearest even but overflows instead of saturating: clamp first."""
    rng = np.random.default_rng(7)
    y = np.concatenate([
        rng.standard_normal(4000) * fmt.max_normal / 3,
        rng.standard_normal(2000) * 2.0 ** (fmt.emin - fmt.mbits + 2),  # subnormal range
        np.array([0.0, -0.0, fmt.max_normal, -fmt.max_normal, 1e30, -1e30]),
    ])  # fmt: skip
    t = getattr(ml_dtypes, fmt.ml_dtype)  # type: ignore[arg-type]
    theirs = np.clip(y, -fmt.max_normal, fmt.max_normal).astype(t).view(np.uint8)
    if fmt.bits < 8:
        theirs = theirs & (fmt.codes - 1)
    np.testing.assert_array_equal(R.encode_elements(y, fmt), theirs)


@pytest.mark.parametrize("fmt", ALL, ids=_ids)
def test_elements_saturate_instead_of_overflowing(fmt: MXFormat) -> None:
    top = R.encode_elements(np.array([fmt.max_normal]), fmt)[0]
    got = R.encode_elements(np.array([fmt.max_normal * 1.01, 1e300, -1e300]), fmt)
    assert got[0] == top and got[1] == top
    assert R.decode_elements(got[2:], fmt)[0] == (-2.0 if fmt.is_int else -fmt.max_normal)


def test_mxint8_uses_minus_two_as_the_correctly_rounded_result() -> None:
    got = R.encode_elements(np.array([-2.0, -127.5 / 64, -127.25 / 64, 127.75 / 64]), MXINT8)
    assert list(got.view(np.int8)) == [-128, -128, -127, 127]


def test_element_nan_and_inf_codes() -> None:
    y = np.array([np.nan, np.inf, -np.inf])
    e5m2 = R.encode_elements(y, MXFP8_E5M2)
    assert np.isnan(R.decode_elements(e5m2[:1], MXFP8_E5M2)[0])
    assert list(R.decode_elements(e5m2[1:], MXFP8_E5M2)) == [np.inf, -np.inf]
    assert R.encode_elements(y[:1], MXFP8_E4M3)[0] == 0x7F


# -- scales ---------------------------------------------------------------------------------------


def test_every_e8m0_code_decodes_as_ml_dtypes_does() -> None:
    codes = np.arange(256, dtype=np.uint8)
    ours = R.decode_scales(codes)
    theirs = codes.view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    np.testing.assert_array_equal(ours, theirs)
    assert np.isnan(ours[SCALE_NAN]) and ours[0] == 2.0**-127 and ours[254] == 2.0**127


@pytest.mark.parametrize("fmt", ALL, ids=_ids)
def test_the_shared_exponent_puts_the_block_maximum_at_emax(fmt: MXFormat) -> None:
    for e in range(-120, 120, 7):
        block = np.zeros((1, BLOCK))
        block[0, 5] = -(2.0**e) * 1.5
        code = int(R.shared_exponents(block, fmt)[0])
        assert code - 127 == max(-127, min(127, e - fmt.emax))


@pytest.mark.parametrize("fmt", ALL, ids=_ids)
def test_an_all_zero_block_gets_the_smallest_scale(fmt: MXFormat) -> None:
    assert R.shared_exponents(np.zeros((2, BLOCK)), fmt).tolist() == [0, 0]


# -- whole tensors ---------------------------------------------------------------------------------


def _roundtrip(x: np.ndarray, fmt: MXFormat, axis: int = -1) -> np.ndarray:
    return R.dequantize(R.quantize(x, fmt, axis), fmt, np.float64)


@pytest.mark.parametrize("fmt", ALL, ids=_ids)
def test_quantization_matches_gfloats_block_quantizer(fmt: MXFormat) -> None:
    gfloat = pytest.importorskip("gfloat", reason="gfloat is a test dependency")
    import gfloat.formats as G

    info = getattr(G, f"format_info_{fmt.name}")
    rng = np.random.default_rng(11)
    for trial in range(120):
        v = rng.standard_normal(BLOCK) * 2.0 ** int(rng.integers(-140, 120))
        if trial % 3 == 1:
            v[rng.integers(0, BLOCK, 9)] = 0.0
        if trial % 3 == 2:
            v = rng.integers(-300, 300, BLOCK) / 64.0 * 2.0 ** int(rng.integers(-20, 20))
        v = v.astype(np.float32).astype(np.float64)
        theirs = gfloat.quantize_block(info, v, gfloat.compute_scale_amax)
        np.testing.assert_array_equal(_roundtrip(v, fmt), theirs, err_msg=f"block {trial}")


@pytest.mark.parametrize("fmt", ALL, ids=_ids)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_every_axis_and_a_partial_last_block(fmt: MXFormat, axis: int) -> None:
    x = np.random.default_rng(3).standard_normal((35, 3, 70)).astype(np.float32)
    m = R.quantize(x, fmt, axis)
    n = x.shape[axis]
    blocks = -(-n // BLOCK)
    assert m.scales.shape[-1] == blocks and m.elements.shape[-1] == blocks * fmt.block_bytes
    got = R.dequantize(m, fmt, np.float64)
    # each block along the axis, quantized on its own, gives the same values
    moved = np.moveaxis(x, axis, -1).astype(np.float64)
    expected = np.empty_like(moved)
    for start in range(0, n, BLOCK):
        piece = moved[..., start : start + BLOCK]
        alone = np.zeros((*piece.shape[:-1], BLOCK))
        alone[..., : piece.shape[-1]] = piece
        expected[..., start : start + BLOCK] = _roundtrip(alone, fmt)[..., : piece.shape[-1]]
    np.testing.assert_array_equal(np.moveaxis(got, axis, -1), expected)


@pytest.mark.parametrize("fmt", ALL, ids=_ids)
def test_the_error_is_within_half_an_element_ulp_of_the_block(fmt: MXFormat) -> None:
    x = np.random.default_rng(5).standard_normal((64, 96))
    m = R.quantize(x, fmt)
    got = R.dequantize(m, fmt, np.float64)
    scale = np.repeat(R.decode_scales(m.scales), BLOCK, axis=-1)[..., : x.shape[-1]]
    top = 2.0 ** (fmt.emax - fmt.mbits - 1) if not fmt.is_int else 2.0**-7
    # below the saturation point, the error is at most half the largest element ulp
    unsaturated = np.abs(x) / scale <= fmt.max_normal
    assert np.all(np.abs(got - x)[unsaturated] <= (top * scale)[unsaturated])


def test_nan_and_inf_follow_each_formats_rules() -> None:
    block = np.linspace(-3, 3, BLOCK)
    for fmt in ALL:
        with_nan = block.copy()
        with_nan[4] = np.nan
        got = _roundtrip(with_nan, fmt)
        if fmt.has_nan:  # only that element is NaN; the scale comes from the rest
            assert np.isnan(got[4]) and np.isfinite(np.delete(got, 4)).all()
        else:  # the whole block is NaN
            assert np.isnan(got).all()
        with_inf = block.copy()
        with_inf[7] = -np.inf
        got = _roundtrip(with_inf, fmt)
        if fmt.has_inf:
            assert got[7] == -np.inf and np.isfinite(np.delete(got, 7)).all()
        else:
            assert np.isnan(got).all()


def test_signed_zeros_survive() -> None:
    x = np.array([0.0, -0.0, 1.0, -1e-30] + [0.0] * 28)
    for fmt in FLOATS:
        got = _roundtrip(x, fmt)
        assert list(np.signbit(got[:2])) == [False, True]
        assert got[3] == 0 and np.signbit(got[3])  # flushed below the smallest subnormal


def test_float32_extremes_and_subnormals() -> None:
    f32 = np.finfo(np.float32)
    x = np.array([f32.max, -f32.max, f32.smallest_subnormal, f32.tiny] + [0.0] * 28)
    got = _roundtrip(x, MXFP8_E4M3)
    # scale 2^(127 - 8); f32.max / 2^119 is 511.99..., which saturates to 448
    assert got[0] == 448 * 2.0**119 and got[1] == -448 * 2.0**119
    assert got[2] == 0 and got[3] == 0  # far below the block's smallest subnormal
    # 2^-149 would need a scale of 2^-157: E8M0 stops at 2^-127, below which the block's
    # elements (2^-22 after scaling) are under E4M3's smallest subnormal: they flush to zero
    y = np.full(BLOCK, f32.smallest_subnormal)
    m = R.quantize(y, MXFP8_E4M3)
    assert m.scales.tolist() == [0]
    np.testing.assert_array_equal(R.dequantize(m, MXFP8_E4M3, np.float64), 0.0)
    z = np.full(BLOCK, 2.0**-130)  # scale 2^-127 (clamped), elements 2^-3: exact
    np.testing.assert_array_equal(_roundtrip(z, MXFP8_E4M3), z)


# -- packing ---------------------------------------------------------------------------------------


def test_fp4_puts_element_zero_in_the_low_nibble() -> None:
    codes = np.array([0x1, 0xA, 0x3, 0x4], dtype=np.uint8)
    assert R.pack(codes, 4).tolist() == [0xA1, 0x43]


def test_fp6_packs_four_elements_into_three_bytes_little_bit_endian() -> None:
    codes = np.array([0b000001, 0b100000, 0b111111, 0b010101], dtype=np.uint8)
    word = sum(int(c) << (6 * i) for i, c in enumerate(codes))
    assert R.pack(codes, 6).tolist() == [word & 0xFF, (word >> 8) & 0xFF, word >> 16]


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_packing_round_trips(bits: int) -> None:
    codes = np.random.default_rng(bits).integers(0, 1 << bits, (5, 64)).astype(np.uint8)
    packed = R.pack(codes, bits)
    assert packed.shape == (5, 64 * bits // 8)
    np.testing.assert_array_equal(R.unpack(packed, bits, 64), codes)


# -- matmul ---------------------------------------------------------------------------------------


def test_matmul_is_the_exact_product_of_the_dequantized_operands() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((8, 70)), rng.standard_normal((70, 5))
    ma, mb = R.quantize(a, MXFP8_E4M3, axis=1), R.quantize(b, MXFP6_E2M3, axis=0)
    da, db = R.dequantize(ma, MXFP8_E4M3, np.float64), R.dequantize(mb, MXFP6_E2M3, np.float64)
    got = R.matmul(ma, mb, np.float64, a_fmt=MXFP8_E4M3, b_fmt=MXFP6_E2M3)
    np.testing.assert_allclose(got, da @ db, rtol=1e-12)
    dense = R.matmul(ma, b, np.float32, a_fmt=MXFP8_E4M3)
    assert dense.dtype == np.float32
    np.testing.assert_allclose(dense, da @ b, rtol=1e-6)
    with pytest.raises(ValueError, match="contracted axis 1, not 0"):
        R.matmul(R.quantize(a, MXINT8, axis=0), b, a_fmt=MXINT8)
