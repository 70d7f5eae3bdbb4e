"""The NumPy reference of MX quantization, written from the OCP Microscaling Formats (MX)
Specification v1.0 (section 6.3, "conversion"): the truth every backend's MX kernels are
checked against, bit for bit.

Quantizing a block ``V`` of 32 values to format ``F``:

1. ``amax = max |V_i|`` over the block's finite values (the padding of a partial last block
   is zero and never raises it).
2. The shared scale is ``X = 2^e`` with ``e = floor(log2(amax)) - F.emax``, clamped to the
   E8M0 range ``[-127, 127]``; an all-zero block gets ``e = -127`` (the spec leaves it
   free; the smallest scale keeps "near zero" checks simple, as gfloat does). Clamping at
   127 only matters for float64 inputs beyond float32's range; their elements saturate.
3. Each element is ``P_i = round(V_i / X)`` in ``F``: round to nearest, ties to even, with
   subnormals, **saturating** to ``+-F.max_normal`` (never overflowing to Inf or NaN).
   ``V_i / X`` is computed exactly (float64, a power of two), so there is one rounding.

Special values, per format (the spec makes a NaN scale mean "the whole block is NaN" and
leaves the rest to the implementation; these are our rules, the Maia emulator's too):

* A NaN element: encoded as the element NaN where the format has one (E4M3, E5M2);
  elsewhere (FP6, FP4, INT8) the block's scale becomes NaN.
* A +-Inf element: encoded as the element Inf where the format has one (E5M2); elsewhere
  the block's scale becomes NaN -- saturating an infinity to a finite value would hide it.
* Signs of zero are kept (-0.0 encodes with the sign bit set).

Packing (DLPack 1.1's convention for sub-byte types, "packed, little bit-endian"): in a
packed byte string ``D``, element ``i`` is ``(D >> (i * bits)) & mask`` -- so FP4 puts
element 0 in the low nibble of byte 0, and FP6 packs 4 elements into 3 bytes. Every block
is ``32 * bits / 8`` bytes (32, 24 or 16), so blocks never share a byte.

Layout of an MX tensor: the block axis is moved last; each row of the remaining
dimensions holds ``ceil(n / 32)`` blocks: ``elements`` has shape ``(*rest, blocks *
block_bytes)`` (uint8), ``scales`` ``(*rest, blocks)`` (uint8 E8M0 codes).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import ml_dtypes
import numpy as np

from .formats import BLOCK, SCALE_BIAS, SCALE_NAN, MXFormat

__all__ = [
    "MXArrays",
    "decode_elements",
    "decode_scales",
    "dequantize",
    "encode_elements",
    "matmul",
    "pack",
    "quantize",
    "round_once",
    "shared_exponents",
    "unpack",
]


class MXArrays(NamedTuple):
    """An MX tensor's data on the host."""

    elements: np.ndarray  #: uint8, ``(*rest, blocks * block_bytes)``: packed element codes
    scales: np.ndarray  #: uint8, ``(*rest, blocks)``: E8M0 codes
    shape: tuple[int, ...]  #: the logical shape
    axis: int  #: the (non-negative) axis the blocks run along


# -- elements -------------------------------------------------------------------------------------


def encode_elements(y: np.ndarray, fmt: MXFormat) -> np.ndarray:
    """Element codes (uint8) of the values ``y`` (already divided by the scale): round to
    nearest even, saturating to the largest normal. NaN and +-Inf become the element's
    NaN and Inf codes where the format has them (callers handle the other formats)."""
    y = np.asarray(y, dtype=np.float64)
    if fmt.is_int:
        n = np.rint(np.clip(np.nan_to_num(y, nan=0.0), -2.0, fmt.max_normal) * 64.0)
        return n.astype(np.int16).astype(np.uint8)
    sign = np.signbit(y)
    a = np.minimum(np.abs(np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)), fmt.max_normal)
    _, ex = np.frexp(a)  # a = m * 2^ex, m in [0.5, 1): floor(log2(a)) = ex - 1
    e = np.maximum(ex.astype(np.int64) - 1, fmt.emin)
    n = np.rint(np.ldexp(a, (fmt.mbits - e).astype(np.int32))).astype(np.int64)  # exact
    carry = n >= (2 << fmt.mbits)  # rounded up to the next power of two
    n = np.where(carry, n >> 1, n)
    e = e + carry
    normal = n >= (1 << fmt.mbits)
    exp_field = np.where(normal, e + fmt.bias, 0)
    mant = np.where(normal, n - (1 << fmt.mbits), n)
    code = (sign.astype(np.int64) << (fmt.bits - 1)) | (exp_field << fmt.mbits) | mant
    if fmt.has_inf:
        inf = (1 << fmt.ebits) - 1
        signed_inf = (sign.astype(np.int64) << (fmt.bits - 1)) | (inf << fmt.mbits)
        code = np.where(np.isinf(y), signed_inf, code)
    if fmt.has_nan:
        nan = (1 << (fmt.bits - 1)) - 1  # all exponent and mantissa bits set (S.1111.111)
        code = np.where(np.isnan(y), nan, code)
    return code.astype(np.uint8)


def decode_elements(codes: np.ndarray, fmt: MXFormat) -> np.ndarray:
    """The values (float64) of element codes."""
    c = np.asarray(codes).astype(np.int64) & (fmt.codes - 1)
    if fmt.is_int:
        return np.where(c >= 128, c - 256, c).astype(np.float64) / 64.0
    sign = np.where((c >> (fmt.bits - 1)) & 1, -1.0, 1.0)
    exp_field = (c >> fmt.mbits) & ((1 << fmt.ebits) - 1)
    mant = c & ((1 << fmt.mbits) - 1)
    normal = exp_field > 0
    significand = np.where(normal, mant + (1 << fmt.mbits), mant).astype(np.float64)
    exponent = np.where(normal, exp_field - fmt.bias, fmt.emin) - fmt.mbits
    value = sign * np.ldexp(significand, exponent.astype(np.int32))
    top = exp_field == (1 << fmt.ebits) - 1
    if fmt.has_inf:  # IEEE-like: top exponent is Inf (mantissa 0) or NaN
        value = np.where(top & (mant == 0), sign * np.inf, value)
        value = np.where(top & (mant != 0), np.nan, value)
    elif fmt.has_nan:  # E4M3: only S.1111.111 is NaN
        value = np.where(top & (mant == (1 << fmt.mbits) - 1), np.nan, value)
    return value


# -- scales ---------------------------------------------------------------------------------------


def shared_exponents(blocks: np.ndarray, fmt: MXFormat) -> np.ndarray:
    """The E8M0 scale codes (uint8) of ``blocks`` (float64, ``(..., 32)``)."""
    finite = np.isfinite(blocks)
    amax = np.max(np.where(finite, np.abs(blocks), 0.0), axis=-1)
    _, ex = np.frexp(amax)
    e = np.where(amax > 0, ex.astype(np.int64) - 1 - fmt.emax, -SCALE_BIAS)
    code = (np.clip(e, -SCALE_BIAS, SCALE_BIAS) + SCALE_BIAS).astype(np.uint8)
    unrepresentable = np.zeros(amax.shape, dtype=bool)
    if not fmt.has_nan:
        unrepresentable |= np.isnan(blocks).any(axis=-1)
    if not fmt.has_inf:
        unrepresentable |= np.isinf(blocks).any(axis=-1)
    return np.where(unrepresentable, np.uint8(SCALE_NAN), code)


def decode_scales(codes: np.ndarray) -> np.ndarray:
    """The values (float64) of E8M0 codes: 2^(c - 127), NaN for 255."""
    c = np.asarray(codes).astype(np.int64)
    return np.where(c == SCALE_NAN, np.nan, np.ldexp(1.0, (c - SCALE_BIAS).astype(np.int32)))


# -- packing --------------------------------------------------------------------------------------


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack element codes (uint8, last dimension a multiple of 8/gcd) little bit-endian:
    element ``i`` lands in bits ``[i * bits, (i + 1) * bits)`` of the byte string."""
    codes = np.asarray(codes, dtype=np.uint8)
    if bits == 8:
        return codes.copy()
    n = codes.shape[-1]
    per = 4 if bits == 6 else 2  # elements per group: 4 in 3 bytes (FP6), 2 in 1 byte (FP4)
    group = codes.reshape(*codes.shape[:-1], n // per, per).astype(np.uint32)
    word = np.zeros(group.shape[:-1], dtype=np.uint32)
    for i in range(per):
        word |= group[..., i] << (i * bits)
    nbytes = per * bits // 8
    out = np.stack([(word >> (8 * b)) & 0xFF for b in range(nbytes)], axis=-1)
    return out.astype(np.uint8).reshape(*codes.shape[:-1], n * bits // 8)


def unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The ``count`` element codes (uint8) along the last dimension of ``packed``."""
    packed = np.asarray(packed, dtype=np.uint8)
    if bits == 8:
        return packed[..., :count].copy()
    per = 4 if bits == 6 else 2
    nbytes = per * bits // 8
    groups = packed.reshape(*packed.shape[:-1], -1, nbytes).astype(np.uint32)
    word = np.zeros(groups.shape[:-1], dtype=np.uint32)
    for b in range(nbytes):
        word |= groups[..., b] << (8 * b)
    mask = (1 << bits) - 1
    codes = np.stack([(word >> (i * bits)) & mask for i in range(per)], axis=-1)
    return codes.astype(np.uint8).reshape(*packed.shape[:-1], -1)[..., :count]


# -- rounding to the output dtype ----------------------------------------------------------------


def round_once(values: np.ndarray, dtype: Any) -> np.ndarray:
    """float64 ``values`` rounded once, to nearest even, to ``dtype``. NumPy rounds float64
    to float16 and float32 directly; ml_dtypes takes bfloat16 through float32, rounding
    twice, so bfloat16 goes through float32 rounded *to odd* (truncated, its last bit set
    when inexact), which a second rounding to 8 bits cannot double-round."""
    dtype = np.dtype(dtype)
    values = np.asarray(values, dtype=np.float64)
    if dtype != np.dtype(ml_dtypes.bfloat16):
        return values.astype(dtype)
    f32 = values.astype(np.float32)
    back = f32.astype(np.float64)
    inexact = (back != values) & np.isfinite(values) & np.isfinite(f32)
    f32 = np.where(inexact & (np.abs(back) > np.abs(values)), np.nextafter(f32, np.float32(0)), f32)
    bits = np.where(inexact, f32.view(np.uint32) | np.uint32(1), f32.view(np.uint32))
    return bits.astype(np.uint32).view(np.float32).astype(dtype)


# -- tensors ---------------------------------------------------------------------------------------


def _axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim


def quantize(x: Any, fmt: MXFormat, axis: int = -1) -> MXArrays:
    """``x`` (any float array) in MX format ``fmt``, blocks of 32 along ``axis``."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("MX quantization needs at least one dimension to block along")
    ax = _axis(axis, x.ndim)
    moved = np.moveaxis(x.astype(np.float64), ax, -1)
    n = moved.shape[-1]
    blocks = -(-n // BLOCK)
    padded = np.zeros((*moved.shape[:-1], blocks * BLOCK), dtype=np.float64)
    padded[..., :n] = moved
    grouped = padded.reshape(*moved.shape[:-1], blocks, BLOCK)
    scales = shared_exponents(grouped, fmt)
    exponent = scales.astype(np.int64) - SCALE_BIAS
    y = np.ldexp(grouped, -np.where(scales == SCALE_NAN, 0, exponent)[..., None].astype(np.int32))
    codes = encode_elements(y, fmt)
    codes = np.where((scales == SCALE_NAN)[..., None], np.uint8(0), codes)
    packed = pack(codes.reshape(*moved.shape[:-1], blocks * BLOCK), fmt.bits)
    return MXArrays(packed, scales, tuple(x.shape), ax)


def dequantize(m: MXArrays, fmt: MXFormat, dtype: Any = np.float32) -> np.ndarray:
    """The values of an MX tensor, in ``dtype`` (one rounding from the exact product)."""
    shape = m.shape
    ax = m.axis
    moved_shape = (*shape[:ax], *shape[ax + 1 :], shape[ax])
    n = shape[ax]
    blocks = m.scales.shape[-1]
    codes = unpack(m.elements, fmt.bits, blocks * BLOCK)
    values = decode_elements(codes, fmt).reshape(*moved_shape[:-1], blocks, BLOCK)
    values = values * decode_scales(m.scales)[..., None]
    flat = values.reshape(*moved_shape[:-1], blocks * BLOCK)[..., :n]
    return round_once(np.moveaxis(flat, -1, ax), dtype)


def matmul(a: Any, b: Any, out_dtype: Any = np.float32, *, a_fmt: MXFormat | None = None,
           b_fmt: MXFormat | None = None) -> np.ndarray:  # fmt: skip
    """The exact product (float64, rounded once to ``out_dtype``) of two matrices, each an
    :class:`MXArrays` (with its format) or a dense array: what an MX matmul approximates.
    An MX operand must be blocked along the contracted dimension."""

    def values(m: Any, fmt: MXFormat | None, contracted: int) -> np.ndarray:
        if isinstance(m, MXArrays):
            if fmt is None:
                raise ValueError("an MX operand needs its format")
            if m.axis != contracted:
                raise ValueError(
                    f"an MX operand of matmul must be blocked along the contracted axis "
                    f"{contracted}, not {m.axis}"
                )
            return dequantize(m, fmt, np.float64)
        return np.asarray(m, dtype=np.float64)

    va = values(a, a_fmt, 1)
    vb = values(b, b_fmt, 0)
    return round_once(np.matmul(va, vb), out_dtype)
