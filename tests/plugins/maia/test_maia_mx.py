"""The maia backend's OCP MX kernels (libmaia's C ``mx_quantize``, ``mx_dequantize`` and
``mx_matmul``), driven through the backend contract and checked against
``hwabstract.mx.reference``: bit for bit for quantize and dequantize, within the stated bound
for matmul (docs/backends/maia.md, "MX formats").

Skipped as a whole when the hwabstract-maia distribution is not installed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip(
    "hwabstract_maia.backend",
    reason="hwabstract-maia is not installed (pip install ./plugins/maia)",
)

import hwabstract as hw
from hwabstract.mx import BLOCK, FORMATS, MXFormat, reference
from hwabstract.mx.reference import MXArrays

FORMAT_NAMES = sorted(FORMATS)
FLOATS = [np.dtype(np.float32), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)]
FLOAT_IDS = ["float32", "bfloat16", "float16"]
HW_DTYPES = {"float32": hw.float32, "bfloat16": hw.bfloat16, "float16": hw.float16}
#: (mantissa bits, smallest normal exponent) of the output dtypes, for their ulp
ULP_FIELDS = {"float32": (23, -126), "bfloat16": (7, -126), "float16": (10, -14)}


pytestmark = pytest.mark.usefixtures("maia_registry")


@pytest.fixture
def dev() -> hw.Device:
    return hw.device("maia:0")


@pytest.fixture
def stream(dev: hw.Device) -> hw.Stream:
    return dev.create_stream()


def _name(dtype: Any) -> str:
    return str(np.dtype(dtype))


def _ref_quantize(x: np.ndarray, fmt: MXFormat) -> MXArrays:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return reference.quantize(x, fmt)


def _ref_dequantize(m: MXArrays, fmt: MXFormat, dtype: Any) -> np.ndarray:
    with warnings.catch_warnings():  # overflow to inf in the cast, as intended
        warnings.simplefilter("ignore", RuntimeWarning)
        return reference.dequantize(m, fmt, dtype)


class MX:
    """Launches of the MX kernels on one stream, straight through the backend contract."""

    def __init__(self, dev: hw.Device, stream: hw.Stream) -> None:
        self.dev = dev
        self.stream = stream
        self.impl = dev._impl

    def put(self, a: np.ndarray) -> hw.Tensor:
        return hw.asarray(np.ascontiguousarray(a), device=self.dev, stream=self.stream)

    def launch(
        self, kernel: str, ins: list[hw.Tensor], outs: list[hw.Tensor], **attrs: Any
    ) -> None:
        self.impl.launch(
            self.stream.handle,
            kernel,
            [t._operand() for t in ins],
            [t._operand() for t in outs],
            attrs,
        )

    def quantize(self, x: hw.Tensor, fmt: str) -> tuple[np.ndarray, np.ndarray]:
        rows, n = x.shape
        blocks = -(-n // BLOCK)
        el = hw.empty((rows, blocks * FORMATS[fmt].block_bytes), dtype=hw.uint8, device=self.dev)
        sc = hw.empty((rows, blocks), dtype=hw.uint8, device=self.dev)
        self.launch("mx_quantize", [x], [el, sc], format=fmt)
        self.stream.synchronize()
        return el.numpy(), sc.numpy()

    def dequantize(
        self, el: np.ndarray, sc: np.ndarray, fmt: str, n: int, dtype: Any
    ) -> np.ndarray:
        y = hw.empty((el.shape[0], n), dtype=HW_DTYPES[_name(dtype)], device=self.dev)
        self.launch("mx_dequantize", [self.put(el), self.put(sc)], [y], format=fmt, n=n)
        self.stream.synchronize()
        return y.numpy()

    def matmul(self, a: MXArrays, b: MXArrays, fa: str, fb: str, k: int, dtype: Any) -> np.ndarray:
        ins = [self.put(v) for v in (a.elements, a.scales, b.elements, b.scales)]
        m, n = a.elements.shape[0], b.elements.shape[0]
        out = hw.empty((m, n), dtype=HW_DTYPES[_name(dtype)], device=self.dev)
        self.launch("mx_matmul", ins, [out], a_format=fa, b_format=fb, k=k)
        self.stream.synchronize()
        return out.numpy()


@pytest.fixture
def mx(dev: hw.Device, stream: hw.Stream) -> MX:
    return MX(dev, stream)


def _wide(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, lo: int, hi: int
) -> np.ndarray:
    """Normal significands times 2^[lo, hi): every binade of the dtype, overflow to inf
    and underflow to subnormals and zeros included."""
    with np.errstate(over="ignore", under="ignore"):
        x = rng.standard_normal(shape) * np.exp2(rng.integers(lo, hi, shape).astype(np.float64))
        return x.astype(dtype)


def _assert_same_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, what
    g, w = got.view(np.uint8), want.view(np.uint8)
    if not np.array_equal(g, w):
        where = np.argwhere(g != w)[:5].tolist()
        pytest.fail(f"{what}: {np.count_nonzero(g != w)} bytes differ, first at {where}")


def _check_quantize(
    mx: MX, x: np.ndarray, fmt: str, view: Callable[[Any], Any] | None = None
) -> None:
    """Quantize ``x`` (``view(x)``: the same view of the tensor and of the array) on the device
    and compare with the reference bit for bit."""
    t = mx.put(x)
    if view is not None:
        t, x = view(t), view(x)
    el, sc = mx.quantize(t, fmt)
    want = _ref_quantize(x, FORMATS[fmt])
    _assert_same_bits(sc, want.scales, f"{fmt} scales")
    _assert_same_bits(el, want.elements, f"{fmt} elements")


# -- the manifest -------------------------------------------------------------------------------


def test_every_mx_format_is_declared_native(dev: hw.Device) -> None:
    caps = dev.capabilities
    assert dict(caps.mx_formats) == {name: hw.DTypeSupport.NATIVE for name in FORMATS}
    assert caps.has_feature(hw.Feature.MX_FORMATS)


# -- quantize: bit for bit ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("n", [1, 31, 32, 33, 70, 256])
def test_quantize_matches_the_reference_bit_for_bit(
    mx: MX, fmt: str, dtype: np.dtype, n: int
) -> None:
    rng = np.random.default_rng(n * 7 + FORMAT_NAMES.index(fmt))
    lo, hi = (-150, 128) if dtype != np.float16 else (-26, 17)
    x = _wide(rng, (9, n), dtype, lo, hi)
    x[1] = _wide(rng, (n,), dtype, -8, 8)  # a row of ordinary magnitudes
    x[2] = 0  # an all-zero row
    _check_quantize(mx, x, fmt)


@pytest.mark.parametrize("dtype", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_quantize_special_values(mx: MX, fmt: str, dtype: np.dtype) -> None:
    info = ml_dtypes.finfo(dtype)
    tiny_sub = float(info.smallest_subnormal)
    specials = np.array(
        [np.nan, np.inf, -np.inf, 0.0, -0.0, tiny_sub, -tiny_sub, 3 * tiny_sub,
         float(info.smallest_normal), float(info.max), -float(info.max), 1.0, -1.5]
    ).astype(dtype)  # fmt: skip
    rng = np.random.default_rng(FORMAT_NAMES.index(fmt))
    x = _wide(rng, (40, 70), dtype, -20, 20)
    mask = rng.random(x.shape) < 0.25
    x[mask] = rng.choice(specials, size=int(mask.sum()))
    x[0, :] = -0.0  # a block of signed zeros
    x[1, :32] = np.nan  # a block of NaNs
    x[2, 5] = np.inf  # one infinity among ordinary values
    x[3, :] = float(info.max)  # the largest finite values
    x[4, :] = tiny_sub  # subnormals only: the scale clamps at 2^-127
    x[5, 64:] = 0.0  # a partial last block of zeros
    _check_quantize(mx, x, fmt)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_quantize_strided_and_reversed_views(mx: MX, fmt: str) -> None:
    rng = np.random.default_rng(3)
    x = _wide(rng, (12, 140), np.dtype(np.float32), -30, 30)
    views: list[Callable[[Any], Any]] = [
        lambda a: a[::-1, ::-1],  # reversed
        lambda a: a[1::3, ::2],  # strided
        lambda a: a[2:, 3:136],  # offset
        lambda a: a[::-2, 137:1:-3],  # reversed and strided
        lambda a: a[:, :70].T,  # transposed: column-major rows
    ]
    for view in views:
        _check_quantize(mx, x, fmt, view=view)


def test_quantize_bfloat16_and_float16_views(mx: MX) -> None:
    rng = np.random.default_rng(11)
    for dtype in (np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)):
        x = _wide(rng, (10, 99), dtype, -20, 10)
        for fmt in FORMAT_NAMES:
            _check_quantize(mx, x, fmt, view=lambda a: a[::-1, 1::2])


# -- dequantize: bit for bit --------------------------------------------------------------------


@pytest.mark.parametrize("out", FLOATS, ids=FLOAT_IDS)
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_dequantize_every_code_with_every_scale(mx: MX, fmt: str, out: np.dtype) -> None:
    f = FORMATS[fmt]
    blocks = 8
    n = blocks * BLOCK
    # row r: scale code r in every block; the element codes cycle through all codes
    codes = (np.arange(n)[None, :] + np.arange(256)[:, None]) % f.codes
    el = reference.pack(codes.astype(np.uint8), f.bits)
    sc = np.repeat(np.arange(256, dtype=np.uint8)[:, None], blocks, axis=1)
    for width in (n, n - 5):  # a whole last block, and a partial one
        got = mx.dequantize(el, sc, fmt, width, out)
        want = _ref_dequantize(MXArrays(el, sc, (256, width), 1), f, out)
        _assert_same_bits(got, want, f"{fmt} -> {_name(out)} (n={width})")


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("n", [1, 31, 33, 70])
def test_quantize_then_dequantize_round_trip(mx: MX, fmt: str, n: int) -> None:
    rng = np.random.default_rng(n)
    x = _wide(rng, (16, n), np.dtype(np.float32), -60, 60)
    el, sc = mx.quantize(mx.put(x), fmt)
    for out in FLOATS:
        got = mx.dequantize(el, sc, fmt, n, out)
        want = _ref_dequantize(_ref_quantize(x, FORMATS[fmt]), FORMATS[fmt], out)
        _assert_same_bits(got, want, f"{fmt} round trip -> {_name(out)}")


# -- matmul: within the stated bound ------------------------------------------------------------


def _ulp(x: np.ndarray, out: str) -> np.ndarray:
    """The spacing of the output dtype at |x| (float64)."""
    mbits, emin = ULP_FIELDS[out]
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.abs(x)))
    e = np.where(np.isfinite(e), np.maximum(e, emin), emin)
    return np.exp2(e - mbits)


def _check_matmul(
    mx: MX, a: MXArrays, b: MXArrays, fa: str, fb: str, k: int, out: Any
) -> np.ndarray:
    """mx_matmul against reference.matmul: |got - ref| <= ulp + (k + blocks + 9) 2^-52 S,
    S = sum_i |a_i b_i| (the bound of docs/backends/maia.md, with the reference's own)."""
    got = mx.matmul(a, b, fa, fb, k, out).astype(np.float64)
    n = b.elements.shape[0]
    b_kn = MXArrays(b.elements, b.scales, (k, n), 0)  # b is N-major: the reference takes (k, N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = reference.matmul(a, b_kn, out, a_fmt=FORMATS[fa], b_fmt=FORMATS[fb]).astype(
            np.float64
        )
        va = reference.dequantize(a, FORMATS[fa], np.float64)
        vb = reference.dequantize(b, FORMATS[fb], np.float64)
        s = np.abs(va) @ np.abs(vb).T
    blocks = -(-k // BLOCK)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{fa} x {fb}: NaNs")
    finite = np.isfinite(want) & np.isfinite(got)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    tol = _ulp(np.maximum(np.abs(got), np.abs(want)), _name(out)) + (k + blocks + 9) * 2.0**-52 * s
    with np.errstate(invalid="ignore"):  # inf - inf where both overflowed
        err = np.where(finite, np.abs(got - want), 0.0)
    assert np.all(err[finite] <= tol[finite]), (
        f"{fa} x {fb} -> {_name(out)}: worst excess {np.max((err - tol)[finite])}"
    )
    return got


@pytest.mark.parametrize("fb", FORMAT_NAMES)
@pytest.mark.parametrize("fa", FORMAT_NAMES)
def test_matmul_every_format_pair_within_the_bound(mx: MX, fa: str, fb: str) -> None:
    rng = np.random.default_rng(FORMAT_NAMES.index(fa) * 6 + FORMAT_NAMES.index(fb))
    m, n, k = 17, 13, 70
    a = _wide(rng, (m, k), np.dtype(np.float32), -12, 12)
    b = _wide(rng, (n, k), np.dtype(np.float32), -12, 12)
    qa, qb = _ref_quantize(a, FORMATS[fa]), _ref_quantize(b, FORMATS[fb])
    for out in FLOATS:
        _check_matmul(mx, qa, qb, fa, fb, k, out)


@pytest.mark.parametrize("fmt", ["mxfp8_e5m2", "mxfp8_e4m3"])
def test_matmul_over_the_whole_code_range(mx: MX, fmt: str) -> None:
    # random element codes (E5M2 x E5M2 block sums round in double) and scales far apart
    rng = np.random.default_rng(5)
    f = FORMATS[fmt]
    k, blocks = 256, 8
    codes = rng.integers(0, 256, (2, 24, k)).astype(np.uint8)
    for i, g in enumerate((f, FORMATS["mxfp8_e5m2"])):  # no NaN or Inf codes
        codes[i][~np.isfinite(reference.decode_elements(codes[i], g))] = 0
    scales = rng.integers(90, 160, (2, 24, blocks)).astype(np.uint8)
    a = MXArrays(codes[0].copy(), scales[0].copy(), (24, k), 1)
    b = MXArrays(codes[1].copy(), scales[1].copy(), (24, k), 1)
    _check_matmul(mx, a, b, fmt, "mxfp8_e5m2", k, np.float32)


def test_matmul_nan_scales_and_partial_blocks(mx: MX) -> None:
    rng = np.random.default_rng(9)
    k = 33
    a = rng.standard_normal((6, k)).astype(np.float32)
    b = rng.standard_normal((5, k)).astype(np.float32)
    qa = _ref_quantize(a, FORMATS["mxint8"])
    qb = _ref_quantize(b, FORMATS["mxfp4_e2m1"])
    qa.scales[2, 1] = 0xFF  # row 2 of the result is NaN
    qb.scales[3, 0] = 0xFF  # and column 3
    got = _check_matmul(mx, qa, qb, "mxint8", "mxfp4_e2m1", k, np.float32)
    nan = np.zeros((6, 5), bool)
    nan[2, :] = nan[:, 3] = True
    np.testing.assert_array_equal(np.isnan(got), nan)
    # codes in the padding of the last block are not part of the product
    qa.elements[:, -1] = 0x7F
    qb.elements[:, -1] = 0x77
    _check_matmul(mx, qa, qb, "mxint8", "mxfp4_e2m1", k, np.float32)


def test_matmul_rounds_once_into_bfloat16(mx: MX) -> None:
    # 1 + 2^-8 + 2^-30 rounds to bfloat16 1.0078125 in one step (through float32: 1.0)
    one = FORMATS["mxfp8_e4m3"]
    el = np.zeros((1, 96), np.uint8)
    el[0, [0, 32, 64]] = reference.encode_elements(np.array([1.0]), one)[0]
    a = MXArrays(el, np.array([[127, 119, 97]], np.uint8), (1, 96), 1)
    b = MXArrays(el.copy(), np.array([[127, 127, 127]], np.uint8), (1, 96), 1)
    got = mx.matmul(a, b, "mxfp8_e4m3", "mxfp8_e4m3", 96, ml_dtypes.bfloat16)
    assert got.view(np.uint16)[0, 0] == 0x3F81


# -- modeled time -------------------------------------------------------------------------------


def test_modeled_time_is_reported_and_grows_with_the_problem(mx: MX) -> None:
    times: dict[tuple[str, int], float] = {}
    for rows, n in ((16, 256), (512, 4096)):
        x = mx.put(np.ones((rows, n), np.float32))
        el, sc = mx.quantize(x, "mxfp4_e2m1")
        ins = [mx.put(el), mx.put(sc)]
        y = hw.empty((rows, n), dtype=hw.bfloat16, device=mx.dev)
        out = hw.empty((rows, rows), dtype=hw.float32, device=mx.dev)
        fp4 = "mxfp4_e2m1"
        launches: dict[str, tuple[str, list[hw.Tensor], list[hw.Tensor], dict[str, Any]]] = {
            "q": ("mx_quantize", [x], [hw.empty(el.shape, dtype=hw.uint8, device=mx.dev),
                                       hw.empty(sc.shape, dtype=hw.uint8, device=mx.dev)],
                  {"format": fp4}),
            "d": ("mx_dequantize", ins, [y], {"format": fp4, "n": n}),
            "m": ("mx_matmul", ins + ins, [out], {"a_format": fp4, "b_format": fp4, "k": n}),
        }  # fmt: skip
        for kind, (kernel, i, o, attrs) in launches.items():
            start = mx.stream.record()
            mx.launch(kernel, i, o, **attrs)
            end = mx.stream.record()
            mx.stream.synchronize()
            times[kind, rows] = start.modeled_elapsed_time(end)
    for kind in "qdm":
        assert 0 < times[kind, 16] < times[kind, 512], kind
    # quantize of 512 x 4096 float32 to FP4: memory-bound, 8 MiB in and 512 x 128 x (16 + 1)
    # bytes out at 7 TB/s, plus the 2 us launch
    moved = 512 * 4096 * 4 + 512 * 128 * 17
    assert times["q", 512] == pytest.approx(moved / 7e12 * 1e3 + 2e-3, rel=1e-6)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_operands_fail_as_kernel_errors_and_the_stream_keeps_working(mx: MX) -> None:
    x = mx.put(np.ones((4, 64), np.float32))
    el = hw.empty((4, 64), dtype=hw.uint8, device=mx.dev)
    sc = hw.empty((4, 2), dtype=hw.uint8, device=mx.dev)
    bad_cases: list[tuple[str, list[hw.Tensor], list[hw.Tensor], dict[str, Any], str]] = [
        ("mx_quantize", [mx.put(np.ones((4, 64), np.int32))], [el, sc], {"format": "mxint8"},
         "float32, bfloat16 or float16"),
        ("mx_quantize", [x], [hw.empty((4, 48), dtype=hw.uint8, device=mx.dev), sc],
         {"format": "mxfp8_e4m3"}, "elements"),
        ("mx_quantize", [x], [el, hw.empty((4, 2), dtype=hw.int8, device=mx.dev)],
         {"format": "mxfp8_e4m3"}, "uint8"),
        ("mx_quantize", [x], [el, sc], {}, "format"),
        ("mx_quantize", [x], [el], {"format": "mxint8"}, "output"),
        ("mx_dequantize", [el, sc], [hw.empty((4, 65), device=mx.dev)],
         {"format": "mxint8", "n": 65}, "elements"),
        ("mx_dequantize", [el, sc], [hw.empty((4, 64), dtype=hw.int32, device=mx.dev)],
         {"format": "mxint8", "n": 64}, "float32"),
        ("mx_matmul", [el, sc, el, sc], [hw.empty((4, 4), device=mx.dev)],
         {"a_format": "mxint8", "b_format": "mxfp4_e2m1", "k": 64}, "b_elements"),
        ("mx_matmul", [el, sc, el, sc], [hw.empty((4, 4), device=mx.dev)],
         {"a_format": "mxint8", "b_format": "mxint8", "k": 96}, "a_elements"),
    ]  # fmt: skip
    for kernel, ins, outs, attrs, words in bad_cases:
        mx.launch(kernel, ins, outs, **attrs)  # queued: the kernel checks when it runs
        with pytest.raises(hw.KernelError, match=words):
            mx.stream.synchronize()
    # the stream still works
    got, _ = mx.quantize(x, "mxint8")
    assert np.array_equal(
        got, _ref_quantize(np.ones((4, 64), np.float32), FORMATS["mxint8"]).elements
    )


def test_bad_attributes_raise_at_launch(mx: MX) -> None:
    x = mx.put(np.ones((2, 32), np.float32))
    el = hw.empty((2, 32), dtype=hw.uint8, device=mx.dev)
    sc = hw.empty((2, 1), dtype=hw.uint8, device=mx.dev)
    for fmt in ("mxfp9", "", 3, None):
        with pytest.raises(hw.DTypeError, match="unknown MX format"):
            mx.launch("mx_quantize", [x], [el, sc], format=fmt)
    for n in (-1, 2.5, "32", True):
        with pytest.raises(hw.ShapeError, match="attribute n"):
            mx.launch("mx_dequantize", [el, sc], [x], format="mxint8", n=n)
    # accepted spellings: an MXFormat, upper case, the short name of mxfp4_e2m1
    for fmt in (FORMATS["mxfp8_e4m3"], "MXFP8_E4M3"):
        mx.launch("mx_quantize", [x], [el, sc], format=fmt)
    mx.stream.synchronize()
    mx.launch("mx_quantize", [x], [hw.empty((2, 16), dtype=hw.uint8, device=mx.dev), sc],
              format="mxfp4")  # fmt: skip
    mx.stream.synchronize()
