"""The namespace as a whole: every name of the Array API 2024.12 revision is present
(main namespace, array attributes and methods, ``linalg`` and ``fft``), the inspection
object answers from the manifests, the dtype functions follow the standard, and
Hypothesis' Array API strategies (an independent consumer of the standard) drive it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.array_api import make_strategies_namespace

import hwabstract as hw
from hwabstract import dtypes as dt

#: The 2024.12 revision's main namespace, by section of the standard.
REQUIRED = {
    "constants": "e inf nan newaxis pi",
    "creation": """arange asarray empty empty_like eye from_dlpack full full_like linspace
        meshgrid ones ones_like tril triu zeros zeros_like""",
    "data types": """bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float32 float64
        complex64 complex128""",
    "data type functions": "astype can_cast finfo iinfo isdtype result_type",
    "elementwise": """abs acos acosh add asin asinh atan atan2 atanh bitwise_and
        bitwise_left_shift bitwise_invert bitwise_or bitwise_right_shift bitwise_xor ceil
        clip conj copysign cos cosh divide equal exp expm1 floor floor_divide greater
        greater_equal hypot imag isfinite isinf isnan less less_equal log log1p log2 log10
        logaddexp logical_and logical_not logical_or logical_xor maximum minimum multiply
        negative nextafter not_equal positive pow real reciprocal remainder round sign signbit
        sin sinh square sqrt subtract tan tanh trunc""",
    "indexing": "take take_along_axis",
    "inspection": "__array_namespace_info__",
    "linear algebra": "matmul matrix_transpose tensordot vecdot",
    "manipulation": """broadcast_arrays broadcast_to concat expand_dims flip moveaxis
        permute_dims repeat reshape roll squeeze stack tile unstack""",
    "searching": "argmax argmin count_nonzero nonzero searchsorted where",
    "set": "unique_all unique_counts unique_inverse unique_values",
    "sorting": "argsort sort",
    "statistical": "cumulative_prod cumulative_sum max mean min prod std sum var",
    "utility": "all any diff",
}
LINALG = """cholesky cross det diagonal eigh eigvalsh inv matmul matrix_norm matrix_power
    matrix_rank matrix_transpose outer pinv qr slogdet solve svd svdvals tensordot trace
    vecdot vector_norm"""
FFT = """fft ifft fftn ifftn rfft irfft rfftn irfftn hfft ihfft fftfreq rfftfreq fftshift
    ifftshift"""
ARRAY = """dtype device mT ndim shape size T __abs__ __add__ __and__ __array_namespace__
    __bool__ __complex__ __dlpack__ __dlpack_device__ __eq__ __float__ __floordiv__ __ge__
    __getitem__ __gt__ __index__ __int__ __invert__ __le__ __lshift__ __lt__ __matmul__
    __mod__ __mul__ __ne__ __neg__ __or__ __pos__ __pow__ __rshift__ __setitem__ __sub__
    __truediv__ __xor__ to_device __iadd__ __radd__ __rsub__ __rmul__ __rtruediv__
    __rfloordiv__ __rpow__ __rmod__ __rmatmul__ __rand__ __ror__ __rxor__ __rlshift__
    __rrshift__"""


@pytest.mark.parametrize("section", sorted(REQUIRED))
def test_every_name_of_the_standard_is_in_the_namespace(section: str) -> None:
    missing = [n for n in REQUIRED[section].split() if not hasattr(hw, n)]
    assert not missing, f"{section}: missing {missing}"
    assert hw.__array_api_version__ == "2024.12"


def test_extensions_and_array_object_are_complete() -> None:
    assert not [n for n in LINALG.split() if not hasattr(hw.linalg, n)]
    assert not [n for n in FFT.split() if not hasattr(hw.fft, n)]
    assert not [n for n in ARRAY.split() if not hasattr(hw.Tensor, n)]


def test_array_namespace_hook_accepts_the_revisions_and_refuses_others() -> None:
    x = hw.asarray([1.0])
    for version in (None, "2021.12", "2022.12", "2023.12", "2024.12"):
        assert x.__array_namespace__(api_version=version) is hw
    with pytest.raises(ValueError, match=r"not '2030\.12'"):
        x.__array_namespace__(api_version="2030.12")


def test_import_still_loads_no_vendor_stack_after_the_namespace_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, hwabstract as hw; x = hw.asarray([3.0, 1.0]); hw.sort(x); "
        "hw.linalg.vector_norm(x); hw.unique_values(x); "
        "print([m for m in ('jax', 'cupy', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- inspection ---------------------------------------------------------------------------------


def test_namespace_info_answers_from_the_manifest() -> None:
    info = hw.__array_namespace_info__()
    caps = info.capabilities()
    assert caps["boolean indexing"] is True and caps["data-dependent shapes"] is True
    assert caps["max dimensions"] == min(d.capabilities.limits.max_dims for d in hw.devices())
    assert info.default_device() is hw.device()
    assert info.devices() == hw.devices()
    cpu = hw.device("cpu")
    found = info.dtypes(device=cpu)
    assert list(found) == [
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float32", "float64", "complex64", "complex128",
    ]  # fmt: skip
    assert "bfloat16" not in found  # an extension, not listed among the standard dtypes
    assert set(info.dtypes(device=cpu, kind="integral")) == {
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    }  # fmt: skip
    assert set(info.dtypes(device=cpu, kind=("bool", "complex floating"))) == {
        "bool", "complex64", "complex128",
    }  # fmt: skip
    assert info.default_dtypes(device=cpu) == {
        "real floating": hw.float32,
        "complex floating": hw.complex64,
        "integral": hw.int64,
        "indexing": hw.int64,
    }


# -- data type functions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "kind", "expected"),
    [
        ("int8", "signed integer", True),
        ("uint8", "signed integer", False),
        ("uint8", "integral", True),
        ("bool", "numeric", False),
        ("float32", "real floating", True),
        ("bfloat16", "real floating", True),
        ("complex64", ("real floating", "complex floating"), True),
        ("float64", "float64", True),
        ("float64", hw.float32, False),
    ],
)
def test_isdtype(dtype: str, kind: object, expected: bool) -> None:
    assert hw.isdtype(dt.dtype(dtype), kind) is expected


def test_isdtype_refuses_an_unknown_kind() -> None:
    with pytest.raises(hw.DTypeError, match="neither a dtype nor one of"):
        hw.isdtype(hw.float32, "floating")


def test_finfo_and_iinfo_match_numpy_and_ml_dtypes() -> None:
    f = hw.finfo(hw.float32)
    assert (f.bits, f.eps, f.max, f.min, f.smallest_normal, f.dtype) == (
        32, float(np.finfo(np.float32).eps), float(np.finfo(np.float32).max),
        float(np.finfo(np.float32).min), float(np.finfo(np.float32).smallest_normal), hw.float32,
    )  # fmt: skip
    assert hw.finfo(hw.complex128).dtype is hw.float64
    assert hw.finfo(hw.bfloat16).eps == 2.0**-7
    assert hw.finfo(hw.asarray([1.0], dtype=hw.float16)).bits == 16
    i = hw.iinfo(hw.int16)
    assert (i.bits, i.min, i.max, i.dtype) == (16, -32768, 32767, hw.int16)
    with pytest.raises(hw.DTypeError, match="use iinfo"):
        hw.finfo(hw.int8)
    with pytest.raises(hw.DTypeError, match="use finfo"):
        hw.iinfo(hw.float32)


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("int8", "int16", True),
        ("int16", "int8", False),
        ("uint8", "int16", True),
        ("int64", "uint64", False),
        ("int8", "float16", True),
        ("int64", "float32", False),
        ("float32", "complex64", True),
        ("complex64", "float64", False),
        ("bool", "bfloat16", True),
        ("float16", "bfloat16", False),
        ("bfloat16", "float32", True),
        ("float8_e4m3fn", "float8_e5m2", False),
    ],
)
def test_can_cast(source: str, target: str, expected: bool) -> None:
    assert hw.can_cast(dt.dtype(source), dt.dtype(target)) is expected


# -- an independent consumer: Hypothesis' Array API strategies -----------------------------------

xps = make_strategies_namespace(hw)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(x=xps.arrays(dtype=xps.numeric_dtypes(), shape=xps.array_shapes(max_dims=3, max_side=5)))
def test_hypothesis_builds_arrays_and_sort_matches_numpy(x: hw.Tensor) -> None:
    host = x.numpy()
    if x.ndim and not x.dtype.is_complex:
        np.testing.assert_array_equal(hw.sort(x, axis=-1).numpy(), np.sort(host, axis=-1))
    assert hw.count_nonzero(x).item() == np.count_nonzero(host)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(x=xps.arrays(dtype=xps.real_dtypes(), shape=xps.array_shapes(min_dims=1, max_dims=3)))
def test_hypothesis_unique_values_matches_numpy(x: hw.Tensor) -> None:
    # every NaN is its own value in the standard (NumPy's default merges them)
    values, counts = hw.unique_counts(x)
    expected, expected_counts = np.unique(x.numpy(), equal_nan=False, return_counts=True)
    np.testing.assert_array_equal(values.numpy(), expected)
    np.testing.assert_array_equal(counts.numpy(), expected_counts)
