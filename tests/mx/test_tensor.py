"""MX tensors on devices: quantize, dequantize and matmul through a backend (the cpu one,
which runs the NumPy reference), their layouts, streams, moves between devices, and the
refusals -- an undeclared format, wrong dtypes, axes and shapes."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import attrs
import ml_dtypes
import numpy as np
import pytest
from conftest import cpu_source

import hwabstract as hw
from hwabstract.backend import Capabilities, DTypeSupport
from hwabstract.backends.cpu import CpuBackend
from hwabstract.errors import DeviceError, DTypeError, ShapeError, UnsupportedError
from hwabstract.mx import FORMATS, MXFP4_E2M1, MXFP8_E4M3, MXINT8, MXTensor
from hwabstract.mx import reference as R
from hwabstract.registry import PluginSource, Registry


def _data(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=lambda f: f.name)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_and_dequantize_match_the_reference_bit_for_bit(fmt, axis) -> None:  # type: ignore[no-untyped-def]
    x = _data(33, 5, 70)
    m = hw.mx.quantize(hw.asarray(x), fmt, axis=axis)
    ref = R.quantize(x, fmt, axis)
    assert isinstance(m, MXTensor) and m.format is fmt and m.shape == x.shape
    assert m.axis == axis % 3 and m.device.name == "cpu:0"
    np.testing.assert_array_equal(m.elements.numpy(), ref.elements)
    np.testing.assert_array_equal(m.scales.numpy(), ref.scales)
    back = hw.mx.dequantize(m)
    assert back.shape == x.shape and back.dtype is hw.float32
    np.testing.assert_array_equal(back.numpy(), R.dequantize(ref, fmt))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_every_mx_input_and_output_dtype(dtype: str) -> None:
    x = _data(4, 40).astype(hw.dtypes.dtype(dtype).numpy_dtype)
    m = hw.mx.quantize(hw.asarray(x), "mxfp6_e3m2")
    ref = R.quantize(x, FORMATS["mxfp6_e3m2"])
    np.testing.assert_array_equal(m.scales.numpy(), ref.scales)
    out = m.dequantize(dtype)
    assert out.dtype.name == dtype
    np.testing.assert_array_equal(
        out.numpy().view(np.uint8),
        R.dequantize(ref, FORMATS["mxfp6_e3m2"], out.dtype.numpy_dtype).view(np.uint8),
    )


def test_strided_and_reversed_inputs() -> None:
    x = _data(40, 66)
    t = hw.asarray(x)[::-2, 1::2]
    m = hw.mx.quantize(t, MXFP4_E2M1, axis=0)
    ref = R.quantize(x[::-2, 1::2], MXFP4_E2M1, 0)
    np.testing.assert_array_equal(m.elements.numpy(), ref.elements)


def test_one_dimensional_and_tiny_tensors() -> None:
    for n in (1, 31, 32, 33):
        x = _data(n)
        m = hw.mx.quantize(hw.asarray(x), MXINT8)
        assert m.scales.shape == (-(-n // 32),)
        np.testing.assert_array_equal(
            m.dequantize().numpy(), R.dequantize(R.quantize(x, MXINT8), MXINT8)
        )


def test_empty_tensors_quantize_to_empty_mx_tensors() -> None:
    m = hw.mx.quantize(hw.zeros((0, 64)), MXFP8_E4M3)
    assert m.elements.shape == (0, 64) and m.dequantize().shape == (0, 64)
    m = hw.mx.quantize(hw.zeros((3, 0)), MXFP8_E4M3)
    assert m.scales.shape == (3, 0) and m.dequantize().shape == (3, 0)


def test_the_packed_storage_is_smaller() -> None:
    m = hw.mx.quantize(hw.asarray(_data(64, 256)), MXFP4_E2M1)
    assert m.nbytes == 64 * 256 // 2 + 64 * 8  # 4.25 bits per element
    assert "mxfp4_e2m1" in repr(m) and "cpu:0" in repr(m)


def test_matmul_mx_by_mx_is_the_exact_product_rounded_once() -> None:
    a, b = _data(9, 70, seed=1), _data(70, 6, seed=2)
    ma = hw.mx.quantize(hw.asarray(a), MXFP8_E4M3, axis=1)
    mb = hw.mx.quantize(hw.asarray(b), MXFP4_E2M1, axis=0)
    got = hw.mx.matmul(ma, mb)
    ref_a, ref_b = R.quantize(a, MXFP8_E4M3, 1), R.quantize(b, MXFP4_E2M1, 0)
    expected = R.matmul(ref_a, ref_b, np.float32, a_fmt=MXFP8_E4M3, b_fmt=MXFP4_E2M1)
    np.testing.assert_array_equal(got.numpy(), expected)
    bf = hw.mx.matmul(ma, mb, out_dtype=hw.bfloat16)
    assert bf.dtype is hw.bfloat16
    np.testing.assert_array_equal(
        bf.numpy(), expected.astype(np.float64).astype(ml_dtypes.bfloat16)
    )


def test_matmul_mx_by_dense_dequantizes_the_mx_operand() -> None:
    a, b = _data(5, 40, seed=3), _data(40, 7, seed=4)
    ma = hw.mx.quantize(hw.asarray(a), MXFP8_E4M3, axis=1)
    got = hw.mx.matmul(ma, hw.asarray(b))
    da = R.dequantize(R.quantize(a, MXFP8_E4M3, 1), MXFP8_E4M3)
    np.testing.assert_allclose(got.numpy(), da @ b, rtol=1e-5, atol=1e-5)
    mb = hw.mx.quantize(hw.asarray(b), MXFP8_E4M3, axis=0)
    np.testing.assert_allclose(hw.mx.matmul(hw.asarray(a), mb).numpy(),
                               a @ R.dequantize(R.quantize(b, MXFP8_E4M3, 0), MXFP8_E4M3),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def test_matmul_over_an_empty_contraction_is_zero() -> None:
    ma = hw.mx.quantize(hw.zeros((3, 0)), MXFP8_E4M3, axis=1)
    mb = hw.mx.quantize(hw.zeros((0, 2)), MXFP8_E4M3, axis=0)
    np.testing.assert_array_equal(hw.mx.matmul(ma, mb).numpy(), np.zeros((3, 2), np.float32))


def test_matmul_refuses_operands_blocked_along_the_wrong_axis() -> None:
    a = hw.mx.quantize(hw.asarray(_data(4, 64)), MXFP8_E4M3, axis=0)
    b = hw.mx.quantize(hw.asarray(_data(64, 4)), MXFP8_E4M3, axis=0)
    with pytest.raises(ShapeError, match=r"blocked along the contracted axis 1.*axis=1"):
        hw.mx.matmul(a, b)
    with pytest.raises(ShapeError, match="do not contract"):
        hw.mx.matmul(hw.mx.quantize(hw.asarray(_data(4, 32)), MXFP8_E4M3), b)
    with pytest.raises(DTypeError, match="at least one MXTensor"):
        hw.mx.matmul(hw.asarray(_data(4, 64)), hw.asarray(_data(64, 4)))


def test_work_is_queued_on_the_given_stream() -> None:
    s = hw.device().create_stream()
    m = hw.mx.quantize(hw.asarray(_data(8, 64)), MXFP8_E4M3, stream=s)
    assert m.elements._storage.last_stream is s and m.scales._storage.last_stream is s
    out = hw.mx.dequantize(m, stream=s)
    assert out._storage.last_stream is s


def test_bad_input_is_refused_with_the_sdks_errors() -> None:
    t = hw.asarray(_data(4, 64))
    with pytest.raises(DTypeError, match="takes float16, bfloat16, float32, got int32"):
        hw.mx.quantize(hw.arange(64, dtype=hw.int32), MXFP8_E4M3)
    with pytest.raises(DTypeError, match="unknown MX format"):
        hw.mx.quantize(t, "mxfp5")
    with pytest.raises(ShapeError, match="axis 2 is out of range"):
        hw.mx.quantize(t, MXFP8_E4M3, axis=2)
    with pytest.raises(ShapeError, match="at least one dimension"):
        hw.mx.quantize(hw.asarray(np.float32(1.0)), MXFP8_E4M3)
    with pytest.raises(DTypeError, match="Tensor"):
        hw.mx.quantize(np.ones(4, np.float32), MXFP8_E4M3)  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match="dequantize takes float16, bfloat16, float32"):
        hw.mx.quantize(t, MXFP8_E4M3).dequantize(hw.int8)


# -- devices ---------------------------------------------------------------------------------------


class NoMxBackend(CpuBackend):
    """The cpu backend declaring no MX format."""

    name = "nomx"

    def capabilities(self, index: int) -> Capabilities:
        return attrs.evolve(super().capabilities(index), mx_formats={})


class EmulatedMxBackend(CpuBackend):
    """Declares MX as emulated, which the core cannot compose yet."""

    name = "emumx"

    def capabilities(self, index: int) -> Capabilities:
        caps = super().capabilities(index)
        return attrs.evolve(caps, mx_formats=dict.fromkeys(caps.mx_formats, DTypeSupport.EMULATED))


class NoHostViewBackend(CpuBackend):
    """The cpu backend whose memory the host "cannot address" (no host view)."""

    name = "nohost"

    def host_view(self, operand: Any) -> None:
        return None


@hw.hookimpl
def _test_backends() -> list[type[hw.Backend]]:
    return [NoMxBackend, EmulatedMxBackend, NoHostViewBackend]


@pytest.fixture
def devices(fresh_registry: Callable[..., Registry]) -> None:
    import types

    plugin = types.SimpleNamespace(hwabstract_backends=_test_backends)
    fresh_registry([cpu_source(), PluginSource("mxtest", lambda: plugin, "hwabstract-tests", "0")],
                   HWABSTRACT_CPU_DEVICES="2")  # fmt: skip


def test_an_undeclared_format_is_refused_naming_the_device(devices: None) -> None:
    t = hw.asarray(_data(4, 64), device="nomx:0")
    with pytest.raises(
        UnsupportedError, match=r"nomx:0 does not support the MX format mxfp8_e4m3"
    ) as info:
        hw.mx.quantize(t, MXFP8_E4M3)
    assert info.value.capability == "mx:mxfp8_e4m3"
    # a format declared emulated runs (composed from standard kernels: tests/mx/test_emulated.py)
    m = hw.mx.quantize(hw.asarray(_data(4, 64), device="emumx:0"), MXINT8)
    assert m.device.name == "emumx:0"


def test_mx_tensors_move_between_devices(devices: None) -> None:
    x = _data(6, 50)
    m = hw.mx.quantize(hw.asarray(x, device="cpu:0"), MXFP8_E4M3)
    moved = m.to("cpu:1")
    assert moved.device.name == "cpu:1" and moved.format is m.format and moved.shape == m.shape
    np.testing.assert_array_equal(moved.dequantize().numpy(), m.dequantize().numpy())
    parked = m.to("nomx:0")  # bytes may go anywhere; computing needs the format
    with pytest.raises(UnsupportedError):
        parked.dequantize()
    other = hw.mx.quantize(hw.asarray(_data(50, 3), device="cpu:1"), MXFP8_E4M3, axis=0)
    with pytest.raises(DeviceError, match="cpu:0 and cpu:1"):
        hw.mx.matmul(m, other)


# -- DLPack ---------------------------------------------------------------------------------------


def _described(capsule: Any) -> tuple[Any, Any]:
    from hwabstract.dlpack import _VERSIONED, DLManagedTensorVersioned, _capsule_get_pointer

    managed = DLManagedTensorVersioned.from_address(_capsule_get_pointer(capsule, _VERSIONED))
    return managed, managed.dl_tensor


@pytest.mark.parametrize(
    ("fmt", "code", "bits"),
    [(f, f.dlpack_code, f.bits) for f in FORMATS.values()],
    ids=[f.name for f in FORMATS.values()],
)
def test_elements_and_scales_export_with_dlpack_1_1_codes(fmt: Any, code: int, bits: int) -> None:
    m = hw.mx.quantize(hw.asarray(_data(3, 70)), fmt)
    producer = m.dlpack_elements()
    assert producer.__dlpack_device__() == (1, 0)
    capsule = producer.__dlpack__(max_version=(1, 1))
    managed, t = _described(capsule)
    assert (managed.version.major, managed.version.minor) == (1, 1) and managed.flags == 0
    assert (t.dtype.code, t.dtype.bits, t.dtype.lanes) == (code, bits, 1)
    assert [t.shape[i] for i in range(t.ndim)] == [3, 96]  # elements, padding included
    assert not t.strides or [t.strides[0], t.strides[1]] == [96, 1]
    nbytes = 3 * 96 * bits // 8
    data = bytes((ctypes.c_uint8 * nbytes).from_address(t.data + t.byte_offset))
    assert data == m.elements.numpy().tobytes()  # the packed bytes, shared on cpu
    _, s = _described(m.dlpack_scales().__dlpack__(max_version=(1, 1)))
    assert (s.dtype.code, s.dtype.bits) == (14, 8) and [s.shape[0], s.shape[1]] == [3, 3]


def test_the_export_needs_a_dlpack_1_1_consumer() -> None:
    m = hw.mx.quantize(hw.asarray(_data(2, 32)), MXFP4_E2M1)
    with pytest.raises(hw.DLPackError, match=r"only since DLPack 1\.1"):
        m.dlpack_elements().__dlpack__()
    with pytest.raises(hw.DLPackError, match=r"only since DLPack 1\.1"):
        m.dlpack_scales().__dlpack__(max_version=(1, 0))
    with pytest.raises(hw.DLPackError, match="stream=None"):
        m.dlpack_scales().__dlpack__(stream=1, max_version=(1, 1))


def test_a_device_without_a_host_view_exports_a_copy(devices: None) -> None:
    m = hw.mx.quantize(hw.asarray(_data(2, 64), device="nohost:0"), MXFP8_E4M3)
    managed, t = _described(m.dlpack_elements().__dlpack__(max_version=(1, 1)))
    assert managed.flags & 2  # IS_COPIED
    data = bytes((ctypes.c_uint8 * 128).from_address(t.data + t.byte_offset))
    assert data == m.elements.numpy().tobytes()
    with pytest.raises(hw.DLPackError, match="copy=False"):
        m.dlpack_elements().__dlpack__(max_version=(1, 1), copy=False)
