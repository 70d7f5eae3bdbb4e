"""Every elementwise kernel Maia declares, for every dtype it declares it for, agrees with the
cpu reference backend (whose own results are checked against independently computed values
in tests/kernels/). Ordinary values over each kernel's domain, and the IEEE special values.

Tolerance: integers and bools exactly; floats within 4 ulps for float32 and 1 ulp for the
8/16-bit formats (both sides compute those in float32 and round once), NaN where the
reference has NaN, infinities equal.
"""

from __future__ import annotations

import zlib
from typing import Any

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("hwabstract_maia", reason="hwabstract-maia is not installed")

import hwabstract as hw
from hwabstract.conformance.numerics import kernel_sample as sample
from hwabstract.dtypes import DType
from hwabstract.kernels import all_specs

ULPS = {"float32": 4, "float16": 1, "bfloat16": 1, "float8_e4m3fn": 1, "float8_e5m2": 1}


def maia() -> hw.Device:
    return hw.device("maia:0")


def declared() -> list[tuple[str, DType]]:
    caps = maia().capabilities
    pairs = []
    for spec in all_specs():
        if spec.category != "elementwise" or spec.name in ("where", "clip", "astype"):
            continue
        pairs += [(spec.name, d) for d in sorted(caps.kernels.get(spec.name, ()), key=str)]
    return pairs


def specials(dtype: DType) -> np.ndarray:
    values = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -2.5]
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(values, dtype=np.float64).astype(dtype.numpy_dtype)


def run(name: str, arrays: list[np.ndarray], device: hw.Device) -> np.ndarray:
    tensors = [hw.asarray(a, device=device) for a in arrays]
    return getattr(hw, name)(*tensors).numpy()


def assert_agree(actual: np.ndarray, expected: np.ndarray, context: Any) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, context
    kind = hw.dtypes.dtype(expected.dtype).kind
    if kind in "biu":
        assert np.array_equal(actual, expected), f"{context}\n{actual!r}\n{expected!r}"
        return
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    report = f"{context}\nmaia: {actual!r}\ncpu:  {expected!r}"
    assert np.array_equal(np.isnan(a), np.isnan(e)), f"NaN mismatch: {report}"
    inf = np.isinf(a) | np.isinf(e)
    assert np.array_equal(a[inf], e[inf]), f"infinity mismatch: {report}"
    ok = ~np.isnan(e) & ~inf
    info = ml_dtypes.finfo(expected.dtype)
    ulp = np.maximum(np.abs(e[ok]), float(info.smallest_normal)) * float(info.eps)
    limit = ULPS[hw.dtypes.dtype(expected.dtype).name]
    err = np.abs(a[ok] - e[ok])
    assert (err <= limit * ulp).all(), f"off by more than {limit} ulp(s): {report}"


@pytest.mark.parametrize(("name", "dtype"), declared(), ids=lambda v: str(v))
def test_ordinary_values_agree_with_the_cpu_reference(name: str, dtype: DType) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{name}/{dtype.name}".encode()))  # reproducible
    nin = len(hw.kernels.get_spec(name).inputs)
    arrays = [sample(name, dtype, (3, 17), rng, second=i == 1) for i in range(nin)]
    assert_agree(run(name, arrays, maia()), run(name, arrays, hw.device("cpu")), arrays)


FLOAT_PAIRS = [(n, d) for n, d in declared() if d.kind == "f"]


@pytest.mark.parametrize(("name", "dtype"), FLOAT_PAIRS, ids=lambda v: str(v))
def test_special_values_agree_with_the_cpu_reference(name: str, dtype: DType) -> None:
    s = specials(dtype)
    nin = len(hw.kernels.get_spec(name).inputs)
    arrays = [s] if nin == 1 else [np.repeat(s, s.size), np.tile(s, s.size)]
    assert_agree(run(name, arrays, maia()), run(name, arrays, hw.device("cpu")), arrays)


# -- reductions, matmul, NN primitives, where/clip/astype ------------------------------------------


def assert_agree_accumulated(actual: np.ndarray, expected: np.ndarray, n: int, scale: float,
                             context: Any) -> None:  # fmt: skip
    """Like :func:`assert_agree`, plus the rounding an accumulation of ``n`` terms of magnitude
    up to ``scale`` may add in float32 (the two backends may sum in different orders)."""
    kind = hw.dtypes.dtype(expected.dtype).kind
    if kind in "biu":
        assert_agree(actual, expected, context)
        return
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    info = ml_dtypes.finfo(expected.dtype)
    slack = n * scale * float(np.finfo(np.float32).eps) * 2
    ulp = np.maximum(np.abs(e), float(info.smallest_normal)) * float(info.eps)
    err = np.abs(a - e)
    ok = np.isnan(a) == np.isnan(e)
    finite = ~np.isnan(e)
    assert ok.all() and (err[finite] <= ULPS[hw.dtypes.dtype(expected.dtype).name]
                         * ulp[finite] + slack).all(), (
        f"{context}\nmaia: {actual!r}\ncpu:  {expected!r}"
    )  # fmt: skip


REDUCTIONS = ["sum", "prod", "min", "max", "mean", "var", "std", "argmin", "argmax", "any", "all"]


def reduction_cases() -> list[tuple[str, DType, Any]]:
    caps = maia().capabilities
    return [
        (name, d, axis)
        for name in REDUCTIONS
        for d in sorted(caps.kernels.get(name, ()), key=str)
        for axis in ([None, 1] if name in ("argmin", "argmax") else [None, 0, (0, 2), -1])
    ]


@pytest.mark.parametrize(("name", "dtype", "axis"), reduction_cases(), ids=lambda v: str(v))
def test_reductions_agree_with_the_cpu_reference(name: str, dtype: DType, axis: Any) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{name}/{dtype.name}/{axis}".encode()))
    low, high = (0.5, 1.5) if name == "prod" else (-4.0, 4.0)
    x = sample("x", dtype, (3, 5, 4), rng) if name != "prod" or dtype.kind != "f" else (
        rng.uniform(low, high, (3, 5, 4)).astype(np.float32).astype(dtype.numpy_dtype)
    )  # fmt: skip
    results = [
        getattr(hw, name)(hw.asarray(x, device=d), axis=axis, keepdims=axis == 0).numpy()
        for d in (maia(), hw.device("cpu"))
    ]
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    scale = float(np.max(np.abs(x.astype(np.float64)))) if x.size and dtype.kind != "b" else 1.0
    if name in ("var", "std"):
        scale = scale**2
    if name == "prod":
        scale = float(np.prod(np.maximum(np.abs(x.astype(np.float64)), 1.0)))
    assert_agree_accumulated(results[0], results[1], n, scale, (name, axis, x))


def float_dtypes(name: str) -> list[DType]:
    return sorted((d for d in maia().capabilities.kernels.get(name, ()) if d.kind == "f"), key=str)


@pytest.mark.parametrize("dtype", float_dtypes("matmul"), ids=str)
def test_matmul_agrees_with_the_cpu_reference(dtype: DType) -> None:
    rng = np.random.default_rng(7)
    a, b = sample("x", dtype, (2, 9, 33), rng), sample("x", dtype, (33, 17), rng)
    got, want = (
        hw.matmul(hw.asarray(a, device=d), hw.asarray(b, device=d)).numpy()
        for d in (maia(), hw.device("cpu"))
    )
    assert_agree_accumulated(got, want, 33, 16.0, (a, b))


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "gelu", "silu", "relu", "layer_norm"])
@pytest.mark.parametrize("dtype", float_dtypes("softmax"), ids=str)
def test_nn_primitives_agree_with_the_cpu_reference(name: str, dtype: DType) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{name}/{dtype.name}".encode()))
    x = sample("x", dtype, (4, 24), rng)
    got, want = (getattr(hw, name)(hw.asarray(x, device=d)).numpy()
                 for d in (maia(), hw.device("cpu")))  # fmt: skip
    assert_agree_accumulated(got, want, 24, 64.0, (name, x))


@pytest.mark.parametrize("target", sorted(maia().capabilities.dtypes, key=str), ids=str)
@pytest.mark.parametrize("source", sorted(maia().capabilities.dtypes, key=str), ids=str)
def test_astype_agrees_with_the_cpu_reference(source: DType, target: DType) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{source.name}/{target.name}".encode()))
    x = sample("x", source, (40,), rng)  # in [-4, 4]: every target holds these values
    if target.kind == "u":
        x = np.abs(x)  # negative -> unsigned is implementation-defined in the Array API
    got, want = (hw.asarray(x, device=d).astype(target).numpy()
                 for d in (maia(), hw.device("cpu")))  # fmt: skip
    assert_agree(got, want, (source, target, x))
