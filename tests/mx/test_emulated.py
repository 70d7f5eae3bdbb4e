"""Emulated MX: quantize, dequantize and matmul composed from a device's standard kernels
(``hwabstract.mx.emulated``), on test backends that are the cpu backend declaring every
format EMULATED. Quantize and dequantize must be bit-identical to the NumPy reference --
here exhaustively where it is cheap (every element code with every scale code, every
float16 and bfloat16 input), and at every rounding tie over the whole scale range --
and MX matmul within the suite's bound for an accumulating kernel.

This file is also a plugin (``hwabstract conformance emumx --plugin <this file>``): the
conformance suite's mx area runs on the emulated device at the end.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import ml_dtypes
import numpy as np
import pytest

import hwabstract as hw
from hwabstract.backend import Capabilities, DTypeSupport
from hwabstract.backends.cpu import CpuBackend
from hwabstract.conformance.numerics import wide_exponent_blocks
from hwabstract.errors import UnsupportedError
from hwabstract.mx import BLOCK, FORMATS, MXFP8_E4M3, MXINT8, MXFormat, MXTensor
from hwabstract.mx import emulated as E
from hwabstract.mx import reference as R

ALL = list(FORMATS.values())
FLOATS = ("float32", "bfloat16", "float16")
F32 = np.finfo(np.float32)


class EmulatedMxBackend(CpuBackend):
    """The cpu backend declaring every MX format EMULATED: the core composes them from its
    standard kernels."""

    name = "emumx"
    priority = -10  # never the default device

    def capabilities(self, index: int) -> Capabilities:
        caps = super().capabilities(index)
        return attrs.evolve(caps, mx_formats=dict.fromkeys(caps.mx_formats, DTypeSupport.EMULATED))


class MinimalEmulatedBackend(EmulatedMxBackend):
    """Declares only what the composition needs (``emulated.REQUIRED_KERNELS`` and
    ``REQUIRED_KERNELS_16``): no float kernel but ``astype`` and ``matmul``, so a result
    computed with float arithmetic (which a device flushing subnormals would get wrong)
    would be refused."""

    name = "minimx"

    def capabilities(self, index: int) -> Capabilities:
        caps = super().capabilities(index)
        names = ("bool", "int16", "int32", "uint8", "float16", "bfloat16", "float32")
        need: dict[str, set[str]] = {}
        for table in (E.REQUIRED_KERNELS, E.REQUIRED_KERNELS_16):
            for dtype, kernels in table.items():
                for k in kernels:
                    need.setdefault(k, set()).add(dtype)
        return attrs.evolve(
            caps,
            dtypes={d: s for d, s in caps.dtypes.items() if d.name in names},
            kernels={k: frozenset(hw.dtypes.dtype(n) for n in v) for k, v in need.items()},
        )


class NoMaxBackend(EmulatedMxBackend):
    """Declares MX emulated but not the int32 ``max`` reduction the composition needs."""

    name = "nomaxmx"

    def capabilities(self, index: int) -> Capabilities:
        caps = super().capabilities(index)
        kernels = dict(caps.kernels)
        kernels["max"] = kernels["max"] - {hw.int32}
        return attrs.evolve(caps, kernels=kernels)


@hw.hookimpl
def hwabstract_backends() -> list[type[hw.Backend]]:
    return [EmulatedMxBackend, MinimalEmulatedBackend, NoMaxBackend]


@pytest.fixture
def devices(fresh_registry: Callable[..., Any]) -> None:
    from conftest import cpu_source

    from hwabstract.registry import PluginSource

    plugin = types.SimpleNamespace(hwabstract_backends=hwabstract_backends)
    fresh_registry([cpu_source(), PluginSource("emutest", lambda: plugin, "hwabstract-tests", "0")])


# -- checking --------------------------------------------------------------------------------------


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    return bool(np.array_equal(np.ascontiguousarray(got).view(np.uint8),
                               np.ascontiguousarray(want).view(np.uint8)))  # fmt: skip


def _check(x: np.ndarray, fmt: MXFormat, axis: int = -1, device: str = "emumx:0",
           dtypes: tuple[str, ...] = FLOATS) -> MXTensor:  # fmt: skip
    """Quantize ``x`` on ``device``: elements, scales and the dequantized values in every
    dtype of ``dtypes`` bit-identical to the reference."""
    m = hw.mx.quantize(hw.asarray(x, device=device), fmt, axis=axis)
    with np.errstate(all="ignore"):  # NaN and Inf inputs, overflowing float16 results
        ref = R.quantize(x, fmt, axis)
    assert m.elements.dtype is hw.uint8 and m.scales.dtype is hw.uint8
    scales, elements = m.scales.numpy(), m.elements.numpy()
    bad = np.argwhere(scales != ref.scales)
    assert bad.size == 0, f"{fmt.name}: {len(bad)} scales differ, first at {tuple(bad[0])}"
    bad = np.argwhere(elements != ref.elements)
    assert bad.size == 0, f"{fmt.name}: {len(bad)} element bytes differ, first at {tuple(bad[0])}"
    for name in dtypes:
        dtype = hw.dtypes.dtype(name)
        got = m.dequantize(dtype).numpy()
        with np.errstate(all="ignore"):
            want = R.dequantize(ref, fmt, dtype.numpy_dtype)
        assert got.shape == x.shape
        assert _same(got, want), f"{fmt.name}: dequantize to {name} differs"
    return m


def _wide_range(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The suite's wide-exponent data, reaching further: 2^-150 (subnormals) to 2^126."""
    return wide_exponent_blocks(shape, seed, low=-150, high=126)


def _in(name: str, x: np.ndarray) -> np.ndarray:
    """``x`` in the dtype ``name`` (beyond float16's range: +-Inf, as a conversion gives)."""
    with np.errstate(over="ignore"):
        return x.astype(hw.dtypes.dtype(name).numpy_dtype)


# -- quantize and dequantize, bit for bit ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_random_wide_tensors_on_every_axis(devices: None, fmt: MXFormat, axis: int) -> None:
    x = np.moveaxis(_wide_range((3, 5, 70), seed=axis + 5), -1, axis)
    _check(np.ascontiguousarray(x), fmt, axis)


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
@pytest.mark.parametrize("n", [1, 31, 32, 33, 95])
def test_lengths_around_the_block_size(devices: None, fmt: MXFormat, n: int) -> None:
    _check(_wide_range((4, n), seed=n), fmt)
    _check(_wide_range((n,), seed=n + 1), fmt)


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_every_element_code_with_every_scale_code_dequantizes_exactly(
    devices: None, fmt: MXFormat
) -> None:
    """All 2^bits element codes under all 256 E8M0 codes (NaN included), into float32,
    bfloat16 and float16: overflow to Inf, subnormal and flushed results, signed zeros."""
    codes = np.resize(np.arange(fmt.codes, dtype=np.uint8), -(-fmt.codes // BLOCK) * BLOCK)
    n = codes.size
    packed = np.tile(R.pack(codes, fmt.bits), (256, 1))
    scales = np.repeat(np.arange(256, dtype=np.uint8)[:, None], n // BLOCK, axis=1)
    ref = R.MXArrays(packed, scales, (256, n), 1)
    m = MXTensor(hw.asarray(packed, device="emumx:0"), hw.asarray(scales, device="emumx:0"),
                 fmt, (256, n), 1)  # fmt: skip
    for name in FLOATS:
        dtype = hw.dtypes.dtype(name)
        with np.errstate(over="ignore"):
            want = R.dequantize(ref, fmt, dtype.numpy_dtype)
        got = m.dequantize(dtype).numpy()
        bad = np.argwhere(got.view(f"u{dtype.itemsize}") != want.view(f"u{dtype.itemsize}"))
        assert bad.size == 0, f"{fmt.name} -> {name}: {len(bad)} differ, first {tuple(bad[0])}"


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_every_16_bit_input(devices: None, fmt: MXFormat, name: str) -> None:
    """Each of the 65536 float16 (bfloat16) bit patterns, in blocks of neighbours (similar
    magnitudes: every scale) and shuffled (NaN and Inf spread over many blocks)."""
    dtype = hw.dtypes.dtype(name).numpy_dtype
    every = np.arange(1 << 16, dtype=np.uint16).view(dtype)
    shuffled = np.random.default_rng(1).permutation(every)
    _check(np.stack([every, shuffled]).reshape(-1, 1024), fmt)


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_every_rounding_tie_at_every_scale(devices: None, fmt: MXFormat) -> None:
    """At each scale 2^s the format reaches from float32 (its smallest, 2^-127, through
    subnormal inputs, to its largest): each midpoint between neighbouring element values
    and the float32 values next to it, both signs, and values beyond the largest normal."""
    finite = R.decode_elements(np.arange(fmt.codes, dtype=np.uint8), fmt)
    grid = np.unique(np.abs(finite[np.isfinite(finite)]))
    mids = (grid[1:] + grid[:-1]) / 2
    top = 2.0 ** (fmt.emax + 1)  # beyond the largest normal, below the next binade
    over = np.array([(fmt.max_normal + top) / 2, top * (1 - 2.0**-20)])
    rows = []
    for s in range(-127, 128 - fmt.emax):
        values = np.concatenate([mids, over]) * 2.0**s
        v32 = values.astype(np.float32)
        assert np.array_equal(v32.astype(np.float64), values), "a midpoint is not a float32"
        near = np.concatenate([v32, np.nextafter(v32, np.float32(0)), np.nextafter(v32, F32.max)])
        near = np.concatenate([near, -near])
        head = np.float32(fmt.max_normal * 2.0**s)  # fixes the block's scale at 2^s
        width = BLOCK - 1
        pad = (-near.size) % width
        body = np.concatenate([near, np.zeros(pad, np.float32)]).reshape(-1, width)
        rows.append(np.concatenate([np.full((body.shape[0], 1), head), body], axis=1))
    _check(np.concatenate(rows), fmt, dtypes=("float32",))


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_random_float32_bit_patterns(devices: None, fmt: MXFormat) -> None:
    """Random bits: NaN payloads of either sign, infinities, subnormals; half the blocks with
    exponents drawn near one another (so few NaN scales), half uniformly."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 1 << 32, size=(512, BLOCK), dtype=np.uint64).astype(np.uint32)
    base = rng.integers(0, 256, size=(256, 1))
    field = np.clip(base - rng.integers(0, 40, size=(256, BLOCK)), 0, 255).astype(np.uint32)
    bits[:256] = (bits[:256] & np.uint32(0x807FFFFF)) | (field << np.uint32(23))
    _check(bits.view(np.float32), fmt)


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_special_values(devices: None, fmt: MXFormat) -> None:
    base = np.linspace(-3.0, 3.0, BLOCK, dtype=np.float32)
    rows = []
    for special in (np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, F32.max, -F32.max, F32.tiny,
                    F32.smallest_subnormal, -F32.smallest_subnormal):  # fmt: skip
        row = base.copy()
        row[5] = special
        rows.append(row)
        rows.append(np.where(np.arange(BLOCK) == 5, np.float32(special), np.float32(0.0)))
    rows.append(np.zeros(BLOCK, np.float32))  # all-zero blocks, of either sign
    rows.append(-np.zeros(BLOCK, np.float32))
    rows.append(np.full(BLOCK, F32.smallest_subnormal, np.float32))
    rows.append(np.full(BLOCK, F32.max, np.float32))
    rows.append(np.full(BLOCK, -F32.max, np.float32))
    # subnormal blocks: the scale stops at 2^-127, so these elements are not all zero
    rows.append((np.linspace(-3, 3, BLOCK) * 2.0**-128).astype(np.float32))
    rows.append((np.linspace(-1, 1, BLOCK) * 2.0**-140).astype(np.float32))
    _check(np.stack(rows), fmt)


@pytest.mark.parametrize("name", FLOATS)
def test_every_input_and_output_dtype(devices: None, name: str) -> None:
    x = _in(name, _wide_range((6, 64), seed=11))
    for fmt in ALL:
        _check(x, fmt)


def test_a_strided_reversed_input(devices: None) -> None:
    x = _wide_range((40, 90), seed=9)
    t = hw.asarray(x, device="emumx:0")[::-3, 1::2]
    for fmt in ALL:
        for axis in (0, 1):
            m = hw.mx.quantize(t, fmt, axis=axis)
            ref = R.quantize(x[::-3, 1::2], fmt, axis)
            assert np.array_equal(m.elements.numpy(), ref.elements), fmt.name
            assert np.array_equal(m.scales.numpy(), ref.scales), fmt.name
            assert _same(m.dequantize().numpy(), R.dequantize(ref, fmt)), fmt.name


def test_empty_tensors(devices: None) -> None:
    m = hw.mx.quantize(hw.zeros((0, 64), device="emumx:0"), MXFP8_E4M3)
    assert m.elements.shape == (0, 64) and m.dequantize().shape == (0, 64)
    m = hw.mx.quantize(hw.zeros((3, 0), device="emumx:0"), MXFP8_E4M3)
    assert m.scales.shape == (3, 0) and m.dequantize().shape == (3, 0)


# -- matmul ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_matmul_is_within_the_bound_for_an_accumulating_kernel(devices: None,
                                                               fmt: MXFormat) -> None:  # fmt: skip
    rng = np.random.default_rng(13)
    rows = np.exp2(rng.integers(-20, 20, (17, 1)))  # rows of very different magnitudes
    a = (rng.standard_normal((17, 200)) * rows).astype(np.float32)
    b = rng.standard_normal((200, 9)).astype(np.float32)
    ma = hw.mx.quantize(hw.asarray(a, device="emumx:0"), fmt, axis=1)
    mb = hw.mx.quantize(hw.asarray(b, device="emumx:0"), "mxfp8_e4m3", axis=0)
    got = hw.mx.matmul(ma, mb)
    assert got.dtype is hw.float32 and got.shape == (17, 9)
    da = R.dequantize(R.quantize(a, fmt, 1), fmt, np.float64)
    db = R.dequantize(R.quantize(b, MXFP8_E4M3, 0), MXFP8_E4M3, np.float64)
    exact = da @ db
    bound = 2 * 200 * F32.eps * (np.abs(da) @ np.abs(db)) + F32.tiny
    assert np.all(np.abs(got.numpy() - exact) <= bound)
    half = hw.mx.matmul(ma, mb, out_dtype=hw.bfloat16)
    assert half.dtype is hw.bfloat16
    np.testing.assert_array_equal(half.numpy(), got.numpy().astype(ml_dtypes.bfloat16))


def test_matmul_propagates_nan_scales_and_takes_dense_operands(devices: None) -> None:
    a = np.ones((3, 64), np.float32)
    a[1, 40] = np.inf  # MXINT8 has no Inf: that block's scale is NaN
    b = np.ones((64, 2), np.float32)
    ma = hw.mx.quantize(hw.asarray(a, device="emumx:0"), MXINT8, axis=1)
    mb = hw.mx.quantize(hw.asarray(b, device="emumx:0"), MXINT8, axis=0)
    got = hw.mx.matmul(ma, mb).numpy()
    assert np.isnan(got[1]).all() and np.array_equal(got[[0, 2]], np.full((2, 2), 64.0))
    dense = hw.mx.matmul(ma, hw.asarray(b, device="emumx:0")).numpy()
    assert np.isnan(dense[1]).all() and np.array_equal(dense[[0, 2]], np.full((2, 2), 64.0))
    empty_a = hw.mx.quantize(hw.zeros((3, 0), device="emumx:0"), MXINT8, axis=1)
    empty_b = hw.mx.quantize(hw.zeros((0, 2), device="emumx:0"), MXINT8, axis=0)
    zero = hw.mx.matmul(empty_a, empty_b)
    assert np.array_equal(zero.numpy(), np.zeros((3, 2), np.float32))


# -- streams, manifests ----------------------------------------------------------------------------


def test_work_is_queued_on_the_given_stream_and_ordered_across_streams(devices: None) -> None:
    dev = hw.device("emumx:0")
    s1, s2 = dev.create_stream(), dev.create_stream()
    x = _wide_range((64, 256), seed=3)
    m = hw.mx.quantize(hw.asarray(x, device=dev), MXFP8_E4M3, stream=s1)
    assert m.elements._storage.last_stream is s1 and m.scales._storage.last_stream is s1
    out = hw.mx.dequantize(m, stream=s2)  # reads s1's results: ordered after them
    assert out._storage.last_stream is s2
    assert _same(out.numpy(), R.dequantize(R.quantize(x, MXFP8_E4M3), MXFP8_E4M3))
    y = hw.mx.matmul(m, hw.mx.quantize(hw.ones((256, 4), device=dev), MXFP8_E4M3, axis=0),
                     stream=s1)  # fmt: skip
    assert y._storage.last_stream is s1


def test_the_minimal_manifest_suffices(devices: None) -> None:
    """Only the kernels ``REQUIRED_KERNELS`` (and ``_16``) name: no float arithmetic."""
    assert E.missing(hw.device("minimx:0").capabilities) == []
    for name in FLOATS:
        x = _in(name, _wide_range((5, 70), seed=2))
        for fmt in ALL:
            m = _check(x, fmt, device="minimx:0")
            mb = hw.mx.quantize(hw.asarray(x.T.copy(), device="minimx:0"), fmt, axis=0)
            assert hw.mx.matmul(m, mb, out_dtype=name).dtype.name == name
    with pytest.raises(UnsupportedError):  # and it is really minimal
        hw.add(hw.ones(3, device="minimx:0"), 1.0)


def test_an_emulated_format_without_the_kernels_it_needs_is_refused(devices: None) -> None:
    assert "kernel:max[int32]" in E.missing(hw.device("nomaxmx:0").capabilities)
    with pytest.raises(UnsupportedError, match=r"nomaxmx:0 declares mxint8 as emulated.*"
                       r"kernel:max\[int32\]") as info:  # fmt: skip
        hw.mx.quantize(hw.ones((2, 32), device="nomaxmx:0"), MXINT8)
    assert info.value.capability == "mx:mxint8"


def test_declaring_backends_declare_what_the_composition_runs_on() -> None:
    """The cpu backend's manifest with MX emulated has everything; one without int32 or its
    kernels does not."""
    caps = CpuBackend().capabilities(0)
    assert E.missing(caps) == []
    dtypes = {d: s for d, s in caps.dtypes.items() if d is not hw.int32}
    no_int32 = attrs.evolve(caps, dtypes=dtypes)
    assert "dtype:int32" in E.missing(no_int32)


# -- the conformance suite -------------------------------------------------------------------------


def test_the_conformance_suites_mx_area_passes_on_the_emulated_device(tmp_path: Path) -> None:
    from conformance.conftest import conformance

    code, out, reports = conformance("emumx", "--plugin", __file__, "--area", "mx",
                                     report_dir=tmp_path)  # fmt: skip
    assert code == 0, out
    area = reports["emumx"]["areas"]["mx"]
    assert area["failed"] == 0 and area["passed"] >= 60, area
