"""MX quantize, dequantize and matmul composed from a device's standard kernels, for the
devices that declare a format EMULATED in ``capabilities.mx_formats``: bit-identical to
:mod:`hwabstract.mx.reference` on any device that declares the kernels listed in
:data:`REQUIRED_KERNELS`.

How it stays exact everywhere
-----------------------------

Every step is **integer arithmetic on bit patterns** (int32), never float arithmetic:

* the input is read as its bits, through a view of its buffer as ``int32`` (float32) or
  ``int16`` (float16, bfloat16) -- no conversion, so subnormals, ``-0.0`` and NaNs arrive
  intact even on devices that flush subnormals to zero (TPUs and XLA's CPU client do:
  there ``x > 0`` is false and ``x * 2**100`` is 0 for a subnormal ``x``);
* a value is ``M * 2^P`` with an integer significand ``M < 2^24``; the block maximum is the
  integer maximum of the magnitude bits (monotonic in the value, subnormals included);
  ``floor(log2 M)`` is the exponent field of ``float32(M)`` (an exact conversion below
  2^24);
* rounding to a format is a right shift of ``M`` with round-to-nearest-even done on the
  shifted-out bits, and the code is ``((e - emin) << mbits) + n``: a significand that
  rounds up to the next power of two carries into the exponent field by itself;
* dequantized values are built the same way, as float32, bfloat16 or float16 bit patterns
  rounded once from the exact product (which needs at most 8 significant bits), and viewed
  back as floats.

So the composition needs the integer kernels, one ``astype(int32 -> float32)``, and that a
buffer may be read as another dtype of the same item size (every backend in this
repository: the cpu and CuPy backends view raw memory, the PJRT backends bitcast).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import dtypes as dt
from ..dtypes import DType
from .formats import BLOCK, FORMATS, SCALE_BIAS, SCALE_NAN, MXFormat

if TYPE_CHECKING:
    from ..backend import Capabilities
    from ..stream import Stream
    from ..tensor import Tensor
    from .tensor import MXTensor

__all__ = [
    "MX_FORMAT_NAMES",
    "REQUIRED_KERNELS",
    "REQUIRED_KERNELS_16",
    "dequantize",
    "matmul",
    "missing",
    "quantize",
]


class _Binary(NamedTuple):
    """A binary floating format with subnormals: ``mbits`` fraction bits, exponent bias
    ``bias``, ``emax`` the exponent of its top binade (its largest finite exponent)."""

    bits: int
    ebits: int
    mbits: int
    bias: int
    emax: int

    @property
    def emin(self) -> int:
        return 1 - self.bias

    @property
    def inf(self) -> int:
        """The magnitude bits of infinity: the exponent field all ones."""
        return ((1 << self.ebits) - 1) << self.mbits

    @property
    def overflow(self) -> int:
        """The magnitude code :func:`_round` gives a value beyond the top binade."""
        return (self.emax - self.emin + 2) << self.mbits


#: the input and output dtypes, by name: their bit layouts (emax: the top exponent field
#: is Inf/NaN)
_IEEE = {
    "float32": _Binary(32, 8, 23, 127, 127),
    "float16": _Binary(16, 5, 10, 15, 15),
    "bfloat16": _Binary(16, 8, 7, 127, 127),
}
#: the canonical quiet NaN the reference produces (NumPy's NaN converted), per dtype
_NAN = {"float32": 0x7FC00000, "float16": 0x7E00, "bfloat16": 0x7FC0}
_INT32_MIN = -(1 << 31)


def _element(fmt: MXFormat) -> _Binary:
    """The element format's layout. Its top exponent field holds finite values unless the
    format has infinities (E5M2): E4M3's top binade ends in its NaN, the FP6/FP4 formats
    have no special codes."""
    top = (1 << fmt.ebits) - 1 - fmt.bias
    return _Binary(fmt.bits, fmt.ebits, fmt.mbits, fmt.bias, top - 1 if fmt.has_inf else top)


def _max_code(fmt: MXFormat) -> int:
    """The magnitude code of ``fmt.max_normal``."""
    if fmt.has_inf:  # E5M2: the top binade below the Inf/NaN field
        return ((1 << fmt.ebits) - 2) << fmt.mbits | ((1 << fmt.mbits) - 1)
    if fmt.has_nan:  # E4M3: all ones is NaN
        return (1 << (fmt.bits - 1)) - 2
    return _element(fmt).inf | ((1 << fmt.mbits) - 1)  # FP6, FP4: all ones


# -- what a device must declare ------------------------------------------------------------------

#: every OCP MX format: the composition runs them all on the same kernels
MX_FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)

#: the standard kernels the composition launches, by compute dtype (float32 ``matmul`` for
#: MX x MX matmul only)
REQUIRED_KERNELS: Mapping[str, tuple[str, ...]] = {
    "int32": (
        "add", "subtract", "negative", "bitwise_and", "bitwise_or", "bitwise_left_shift",
        "bitwise_right_shift", "maximum", "minimum", "clip", "equal", "less", "greater",
        "greater_equal", "where", "max", "astype",
    ),
    "bool": ("bitwise_or",),
    "uint8": ("astype",),
    "float32": ("matmul",),
}  # fmt: skip
#: and on a device with float16 or bfloat16: reading 16-bit inputs, and rounding a matmul
#: result to them
REQUIRED_KERNELS_16: Mapping[str, tuple[str, ...]] = {"int16": ("astype",),
                                                      "float32": ("astype",)}  # fmt: skip


def missing(capabilities: Capabilities, fmt: MXFormat | None = None) -> list[str]:
    """What the composition needs that ``capabilities`` does not declare, as capability
    names (``"dtype:int32"``, ``"kernel:max[int32]"``); empty when it can run. Every format
    needs the same (``fmt`` is accepted for symmetry); :data:`REQUIRED_KERNELS_16` applies
    when the device declares float16 or bfloat16."""
    del fmt
    names = {d.name for d in capabilities.dtypes}
    need = {name: set(kernels) for name, kernels in REQUIRED_KERNELS.items()}
    if names & {"float16", "bfloat16"}:
        for name, kernels in REQUIRED_KERNELS_16.items():
            need.setdefault(name, set()).update(kernels)
    out = [f"dtype:{name}" for name in need if name not in names]
    for name, wanted in need.items():
        dtype = dt.dtype(name)
        out += [f"kernel:{k}[{name}]" for k in sorted(wanted)
                if name in names and not capabilities.supports_kernel(k, dtype)]  # fmt: skip
    return out


# -- building blocks -------------------------------------------------------------------------------


def _ops() -> Any:
    from .. import operations

    return operations


def _bitcast(t: Tensor, dtype: DType) -> Tensor:
    """``t``'s bytes read as ``dtype`` (of the same item size): a view, no conversion."""
    from ..dispatch import check_dtype_supported
    from ..tensor import Tensor

    assert dtype.itemsize == t.dtype.itemsize, (t.dtype, dtype)
    check_dtype_supported(t.device, dtype)
    return Tensor._wrap(t._storage, dtype, t.shape, t.strides, t._offset)


def _ilog2(m: Tensor) -> Tensor:
    """``floor(log2 m)`` of int32 ``0 <= m < 2^24`` (-127 for 0): the exponent field of
    ``float32(m)``, an exact conversion whose result is never subnormal."""
    ops = _ops()
    return (_bitcast(ops.astype(m, dt.float32), dt.int32) >> 23) - 127


def _shift_rne(m: Tensor, shift: Tensor) -> Tensor:
    """``m * 2^-shift`` rounded to the nearest integer, ties to even (``0 <= m < 2^24``;
    a negative ``shift`` is an exact left shift, as long as the result fits)."""
    ops = _ops()
    right = ops.clip(shift, 1, 25)  # beyond 24 bits everything shifts out: the result is 0
    q = m >> right
    rest = m & ((1 << right) - 1)
    half = 1 << (right - 1)
    # ties to even: round up above half, or at half when q is odd
    q = ops.where(rest + (q & 1) > half, q + 1, q)
    return ops.where(shift > 0, q, m << ops.clip(-shift, 0, 24))


def _round(m: Tensor, p: Tensor, f: _Binary) -> Tensor:
    """The magnitude code (exponent and fraction fields) of ``m * 2^p`` in ``f``: rounded
    to nearest even, with subnormals; a value beyond ``f``'s top binade gives
    ``f.overflow`` (infinity for IEEE formats). ``m`` and ``p`` are int32, ``0 <= m <
    2^24``."""
    ops = _ops()
    e = ops.maximum(_ilog2(m) + p, f.emin)  # the exponent the result is rounded at
    n = _shift_rne(m, e - f.mbits - p)  # its significand, in [0, 2^(mbits+1)]
    # the exponent field is (e - emin + 1) for a normal n in [2^mbits, 2^(mbits+1)) and 0
    # for a subnormal one (e = emin, n < 2^mbits): both are ((e - emin) << mbits) + n, and
    # an n that rounded up to 2^(mbits+1) carries into the exponent by itself
    code = ((ops.minimum(e, f.emax) - f.emin) << f.mbits) + n
    # zero (m = 0, or a value that rounds to 0) has no exponent to carry: its code is 0
    return ops.where(n == 0, 0, ops.where(e > f.emax, f.overflow, code))


class _Parts(NamedTuple):
    """A float tensor taken apart, as int32 tensors: value = (-1)^sign * m * 2^k."""

    magnitude: Tensor  #: the bits without the sign (orders like |value|)
    sign: Tensor  #: bool
    m: Tensor  #: the integer significand (implicit bit included), < 2^24
    k: Tensor  #: the exponent of its last bit


def _parts(bits: Tensor, f: _Binary) -> _Parts:
    """Take apart int32 ``bits`` holding values of layout ``f`` (16-bit ones sign-extended)."""
    ops = _ops()
    magnitude = bits & ((1 << (f.bits - 1)) - 1)
    field = magnitude >> f.mbits
    m = (magnitude & ((1 << f.mbits) - 1)) | (ops.minimum(field, 1) << f.mbits)
    k = ops.maximum(field, 1) - (f.bias + f.mbits)
    return _Parts(magnitude, bits < 0, m, k)


# -- packing ---------------------------------------------------------------------------------------


def _pack(codes: Tensor, bits: int) -> Tensor:
    """int32 codes (R, W), W a multiple of 32, packed little bit-endian into uint8."""
    ops = _ops()
    rows, width = codes.shape
    if bits == 8:
        return ops.astype(codes, dt.uint8)
    if bits == 4:
        pairs = ops.reshape(codes, (rows, width // 2, 2))
        return ops.astype(pairs[..., 0] | (pairs[..., 1] << 4), dt.uint8)
    quads = ops.reshape(codes, (rows, width // 4, 4))
    word = quads[..., 0] | (quads[..., 1] << 6) | (quads[..., 2] << 12) | (quads[..., 3] << 18)
    out = ops.stack([word & 0xFF, (word >> 8) & 0xFF, word >> 16], axis=-1)
    return ops.reshape(ops.astype(out, dt.uint8), (rows, width // 4 * 3))


def _unpack(elements: Tensor, bits: int) -> Tensor:
    """The int32 codes (R, W) of packed uint8 elements."""
    ops = _ops()
    rows, nbytes = elements.shape
    data = ops.astype(elements, dt.int32)
    if bits == 8:
        return data
    if bits == 4:
        codes = ops.stack([data & 0xF, data >> 4], axis=-1)
        return ops.reshape(codes, (rows, nbytes * 2))
    triples = ops.reshape(data, (rows, nbytes // 3, 3))
    word = triples[..., 0] | (triples[..., 1] << 8) | (triples[..., 2] << 16)
    codes = ops.stack([(word >> s) & 0x3F for s in (0, 6, 12, 18)], axis=-1)
    return ops.reshape(codes, (rows, nbytes // 3 * 4))


# -- operations ------------------------------------------------------------------------------------


def quantize(x: Tensor, fmt: MXFormat, stream: Stream) -> tuple[Tensor, Tensor]:
    """``x`` (R, n) float16, bfloat16 or float32, any strides, R and n > 0: the packed
    elements (R, blocks * block_bytes) and E8M0 scales (R, blocks), both uint8."""
    ops = _ops()
    src = _IEEE[x.dtype.name]
    rows, n = x.shape
    blocks = -(-n // BLOCK)
    width = blocks * BLOCK
    with stream:
        if src.bits == 32:
            bits = _bitcast(x, dt.int32)
        else:
            bits = ops.astype(_bitcast(x, dt.int16), dt.int32)  # sign-extended
        if n != width:  # the partial last block is padded with +0.0
            from ..creation import zeros

            padded = zeros((rows, width), dtype=dt.int32, device=x.device, stream=stream)
            padded[:, :n] = bits
            bits = padded
        bits = ops.reshape(bits, (rows, blocks, BLOCK))
        v = _parts(bits, src)

        # the scale: the block's largest finite magnitude, as bits; a value that forces a
        # NaN scale counts as infinity (above every finite value)
        if fmt.has_inf:  # E5M2 encodes both NaN and Inf: neither takes part
            key = ops.where(v.magnitude >= src.inf, 0, v.magnitude)
        elif fmt.has_nan:  # E4M3 encodes NaN; Inf makes the scale NaN
            key = ops.where(v.magnitude > src.inf, 0, v.magnitude)
        else:  # NaN and Inf make the scale NaN
            key = ops.minimum(v.magnitude, src.inf)
        amax = ops.max(key, axis=-1)  # (rows, blocks)
        a = _parts(amax, src)
        # floor(log2 amax) - emax, clamped; an all-zero block gives -127 (ilog2(0) = -127)
        e = ops.clip(a.k + _ilog2(a.m) - fmt.emax, -SCALE_BIAS, SCALE_BIAS)
        nan_scale = amax >= src.inf
        scales = ops.astype(ops.where(nan_scale, SCALE_NAN, e + SCALE_BIAS), dt.uint8)

        # the elements: value / 2^e = m * 2^(k - e), exactly, then rounded once
        p = v.k - e[..., None]
        if fmt.is_int:  # round(y * 64), clamped to [-128, 127]
            q = _shift_rne(v.m, -(p + 6))
            code = ops.where(v.sign, -ops.minimum(q, 128) & 0xFF, ops.minimum(q, 127))
        else:
            mag = ops.minimum(_round(v.m, p, _element(fmt)), _max_code(fmt))
            if fmt.has_inf:  # E5M2: +-Inf stays +-Inf
                mag = ops.where(v.magnitude == src.inf, _element(fmt).inf, mag)
            code = ops.where(v.sign, mag | (1 << (fmt.bits - 1)), mag)
            if fmt.has_nan:  # the element NaN: all exponent and mantissa bits, sign clear
                code = ops.where(v.magnitude > src.inf, (1 << (fmt.bits - 1)) - 1, code)
        code = ops.where(nan_scale[..., None], 0, code)
        elements = _pack(ops.reshape(code, (rows, width)), fmt.bits)
    return elements, scales


def dequantize(elements: Tensor, scales: Tensor, fmt: MXFormat, n: int, dtype: DType,
               stream: Stream) -> Tensor:  # fmt: skip
    """The values (R, n) in ``dtype`` (float16, bfloat16 or float32) of packed ``elements``
    (R, blocks * block_bytes) and ``scales`` (R, blocks): each the exact product rounded
    once."""
    ops = _ops()
    out = _IEEE[dtype.name]
    rows, blocks = scales.shape
    with stream:
        c = ops.reshape(_unpack(elements, fmt.bits), (rows, blocks, BLOCK))
        e = ops.astype(scales, dt.int32)
        nan = (e == SCALE_NAN)[..., None]
        e = e[..., None] - SCALE_BIAS
        if fmt.is_int:  # two's complement times 2^-6
            sign = c >= 128
            m = ops.where(sign, 256 - c, c)
            p = e - 6
        else:
            f = _element(fmt)
            sign = c >= (1 << (fmt.bits - 1))
            field = (c >> f.mbits) & ((1 << f.ebits) - 1)
            m = (c & ((1 << f.mbits) - 1)) | (ops.minimum(field, 1) << f.mbits)
            p = ops.maximum(field, 1) - (f.bias + f.mbits) + e
            low = c & ((1 << (fmt.bits - 1)) - 1)
            if fmt.has_inf:  # E5M2: the top exponent field is Inf (fraction 0) or NaN
                nan = nan | (low > f.inf)
            elif fmt.has_nan:  # E4M3: S.1111.111
                nan = nan | (low == (1 << (fmt.bits - 1)) - 1)
        mag = _round(m, p, out)
        if fmt.has_inf:
            mag = ops.where(low == _element(fmt).inf, out.inf, mag)
        if out.bits == 32:
            code = ops.where(sign, mag | _INT32_MIN, mag)
        else:
            code = ops.where(sign, mag - (1 << 15), mag)  # the int16 of 0x8000 | mag
        # NaN: the positive quiet NaN (every _NAN fits the signed type of its width)
        code = ops.reshape(ops.where(nan, _NAN[dtype.name], code), (rows, blocks * BLOCK))
        if out.bits == 16:
            code = ops.astype(code, dt.int16)
        if n != blocks * BLOCK:
            code = ops.reshape(code[:, :n], (rows, n), copy=True)
        return _bitcast(code, dtype)


def matmul(a: MXTensor, b: MXTensor, dtype: DType, stream: Stream) -> Tensor:
    """``a @ b`` for MX operands blocked along the contracted dimension: both dequantized
    to float32 (exact for every value quantizing float data gives; a hand-built tensor's
    values beyond float32's range become infinities), multiplied with the device's float32
    ``matmul`` (so its error is a float32 accumulation's), then converted to ``dtype``."""
    ops = _ops()
    da = a.dequantize(dt.float32, stream=stream)
    db = b.dequantize(dt.float32, stream=stream)
    result = ops.matmul(da, db, stream=stream)
    if dtype is not dt.float32:
        result = ops.astype(result, dtype, stream=stream)
    return result
