"""Shared machinery of the kernel tests: the dtypes the cpu backend declares, test data, the
layouts tensors are built in, and the comparison with its tolerance policy.

Expected values never come from ``spec.reference`` (the cpu backend runs it, so comparing
against it would prove nothing). Each test computes them independently -- with Python's
``math``/``cmath`` on float64/complex128 values, exact Python integers, or NumPy applied
directly in a wider dtype -- and rounds once to the dtype the Array API (and the rules in
``hwabstract.dtypes``) say the result has.

Tolerance policy for floating results
-------------------------------------

``ULPS`` below is the largest distance, in units in the last place *of the result dtype*,
between a result and the correctly rounded expected value:

* float64, float32: 4 ulps. NumPy's SIMD transcendental loops (SVML, Highway) promise at
  most 4 ulps; the arithmetic kernels are exact, so most checks pass at 0 or 1.
* float16, bfloat16, float8: 1 ulp. These are computed in float32 and rounded once, so the
  only error is that rounding landing on the other neighbour of a value close to a tie.
* complex64, complex128: 4, measured norm-wise (``|actual - expected| <= 4 * eps *
  |expected|``) because componentwise ulps are meaningless for a component much smaller
  than the modulus.

Kernels that accumulate (reductions, matmul, softmax, layer_norm) add an absolute bound
derived from the accumulation: ``n * eps(accumulator) * sum(|terms|)``, computed by each test
from its own data (see :func:`accumulation_atol`). Integer and bool results are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ml_dtypes
import numpy as np

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.dtypes import DType

#: Allowed distance from the correctly rounded value, in ulps of the result dtype.
ULPS: dict[str, int] = {
    "float64": 4,
    "float32": 4,
    "float16": 1,
    "bfloat16": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "complex64": 4,  # norm-wise, see the module docstring
    "complex128": 4,
}

FLOAT_NAMES = ("float8_e4m3fn", "float8_e5m2", "bfloat16", "float16", "float32", "float64")


def cpu() -> hw.Device:
    """The cpu device of the registry in force (tests elsewhere may install a fresh one)."""
    return hw.device("cpu")


def declared(kernel: str) -> list[DType]:
    """The dtypes the cpu backend declares for ``kernel``, in hwabstract's dtype order."""
    kernels = hw.device("cpu").capabilities.kernels
    return [d for d in dt.all_dtypes() if d in kernels[kernel]]


def eps(dtype: DType) -> float:
    """Machine epsilon of a real floating dtype (or of a complex dtype's components)."""
    return float(ml_dtypes.finfo(component(dtype).numpy_dtype).eps)


def component(dtype: DType) -> DType:
    """The real dtype of a complex dtype's components (other dtypes: themselves)."""
    return {"complex64": dt.float32, "complex128": dt.float64}.get(dtype.name, dtype)


def accumulator(dtype: DType) -> DType:
    """The dtype the standard kernels accumulate ``dtype`` in: float32 for 8/16-bit floats."""
    if dtype.kind == "f" and dtype.bits < 32:
        return dt.float32
    return dtype


# -- data ------------------------------------------------------------------------------------------


def sample(
    dtype: DType,
    shape: Sequence[int],
    rng: np.random.Generator,
    *,
    low: float = -4.0,
    high: float = 4.0,
    away_from_zero: float = 0.0,
) -> np.ndarray:
    """Random host data of ``dtype``. Floats are drawn in ``[low, high]`` and rounded to the
    dtype (expected values are computed from the rounded data); ``away_from_zero`` redraws
    values of smaller magnitude. Integers are drawn in ``[low, high]`` clipped to the
    dtype's range; complex numbers get both components in ``[low, high]``."""
    shape = tuple(shape)
    if dtype.kind == "b":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind in "iu":
        info = np.iinfo(dtype.numpy_dtype)
        lo, hi = max(int(low), int(info.min)), min(int(high), int(info.max))
        values = rng.integers(lo, hi + 1, size=shape)
        if away_from_zero:
            values = np.where(values == 0, hi, values)
        return np.asarray(values, dtype=dtype.numpy_dtype)

    def draw() -> np.ndarray:
        v = np.asarray(rng.uniform(low, high, size=shape))
        if away_from_zero:
            v = np.where(np.abs(v) < away_from_zero, np.copysign(away_from_zero, v + 1e-9), v)
        return v

    if dtype.kind == "c":
        return np.asarray(draw() + 1j * draw(), dtype=dtype.numpy_dtype)
    values = draw().astype(np.float32).astype(dtype.numpy_dtype)
    # rounding to a narrow dtype may leave the domain (0.95 -> 1.0 in float8_e5m2)
    exact = values.astype(np.float64)
    inside = (exact >= low) & (exact <= high)
    middle = np.array((low + high) / 2, dtype=np.float64).astype(dtype.numpy_dtype)
    return np.where(inside, values, middle)


def specials(dtype: DType) -> np.ndarray:
    """NaN, +-inf, +-0 and a few ordinary values in ``dtype`` (float8_e4m3fn has no
    infinities: its +-inf become NaN, which is what a kernel sees)."""
    values = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.5, 3.0]
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(values, dtype=np.float64).astype(dtype.numpy_dtype)


def wrap(value: int, dtype: DType) -> int:
    """The Python integer ``value`` wrapped modulo 2**bits into ``dtype``'s range."""
    if dtype.kind == "b":
        return int(bool(value))
    info = np.iinfo(dtype.numpy_dtype)
    span = 1 << dtype.bits
    return (int(value) - int(info.min)) % span + int(info.min)


def python_values(a: np.ndarray) -> np.ndarray:
    """An object array holding each element as a Python bool / int / float / complex (floats
    of every width become their exact float64 value)."""
    kind = dt.dtype(a.dtype).kind
    if kind == "f":
        return a.astype(np.float64).astype(object)
    if kind == "c":
        return a.astype(np.complex128).astype(object)
    return a.astype(object)


def apply(fn: Callable[..., Any], *arrays: np.ndarray) -> np.ndarray:
    """``fn`` applied elementwise (with broadcasting) to the Python values of ``arrays``."""
    values = [python_values(a) for a in arrays]
    out = np.frompyfunc(fn, len(values), 1)(*values)
    return np.asarray(out, dtype=object)


def to_result(values: np.ndarray, dtype: DType) -> np.ndarray:
    """Python results (object array) as an array of ``dtype``: integers wrap, floats go
    through float64 and round once, bools stay bools."""
    values = np.asarray(values, dtype=object)
    if dtype.kind == "b":
        return values.astype(bool)
    if dtype.kind in "iu":
        flat = [wrap(v, dtype) for v in values.reshape(-1)]
        return np.array(flat, dtype=dtype.numpy_dtype).reshape(values.shape)
    if dtype.kind == "c":
        return values.astype(np.complex128)
    return values.astype(np.float64)


# -- layouts ---------------------------------------------------------------------------------------


def upload(host: np.ndarray, layout: str = "contiguous") -> hw.Tensor:
    """A cpu tensor equal to ``host`` in the given memory layout:

    * ``contiguous``: a dense C-order tensor;
    * ``strided``: a view taking every second element of a larger tensor, transposed where
      it has two or more dimensions (non-unit and permuted strides, a nonzero offset);
    * ``flipped``: a view with negative strides.
    """
    if layout == "contiguous":
        return hw.asarray(host, device=cpu())
    if layout == "strided":
        if host.ndim == 0:
            big = np.stack([host, host])
            return hw.asarray(big, device=cpu())[1]
        permuted = np.ascontiguousarray(np.swapaxes(host, 0, -1))
        big = np.repeat(permuted, 2, axis=0)  # big[1::2] == permuted
        view = hw.asarray(big, device=cpu())[1::2]
        return hw.permute_dims(view, _swap(host.ndim))
    if layout == "flipped":
        flipped = np.ascontiguousarray(np.flip(host))
        return hw.flip(hw.asarray(flipped, device=cpu()))
    raise AssertionError(layout)


def _swap(ndim: int) -> tuple[int, ...]:
    axes = list(range(ndim))
    axes[0], axes[-1] = axes[-1], axes[0]
    return tuple(axes)


# -- comparison ------------------------------------------------------------------------------------


def _ordinal(a: np.ndarray) -> list[int]:
    """Each float as an integer such that neighbouring floats differ by one (sign-magnitude
    bit patterns folded onto a line; +0 and -0 both map to 0)."""
    bits = a.dtype.itemsize * 8
    raw = a.reshape(-1).view(f"u{a.dtype.itemsize}").tolist()
    sign = 1 << (bits - 1)
    return [-(r & (sign - 1)) if r & sign else r for r in raw]


def ulp_distance(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Distance in ulps between two arrays of one (real floating) dtype."""
    a, e = _ordinal(actual), _ordinal(expected)
    return np.array([abs(x - y) for x, y in zip(a, e)], dtype=object).reshape(actual.shape)


def assert_close(
    actual: np.ndarray,
    expected: Any,
    dtype: DType,
    *,
    ulps: int | None = None,
    atol: float = 0.0,
    zero_sign: bool = False,
    context: Any = None,
) -> None:
    """Check a result against the independently computed ``expected``.

    ``actual`` must have exactly the NumPy dtype of ``dtype`` and ``expected``'s shape.
    Bool and integer results must be equal. Floats: NaN exactly where expected is NaN,
    infinities equal, and finite values within ``ulps`` (default ``ULPS[dtype]``) of the
    expected value rounded to ``dtype``, or within ``atol``. ``zero_sign`` also requires the
    sign of zero results to match. ``context`` (e.g. the inputs) is shown on failure.
    """
    expected = np.asarray(expected)
    where = f"\ninputs: {context!r}" if context is not None else ""
    assert actual.dtype == dtype.numpy_dtype, f"dtype {actual.dtype}, expected {dtype}{where}"
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}{where}"
    if dtype.kind in "biu":
        exp = expected.astype(dtype.numpy_dtype)
        assert np.array_equal(actual, exp), f"\nactual:   {actual!r}\nexpected: {exp!r}{where}"
        return
    limit = ULPS[dtype.name] if ulps is None else ulps
    if dtype.kind == "c":
        _assert_complex_close(actual, expected.astype(np.complex128), dtype, limit, atol, where)
        return
    with np.errstate(over="ignore", invalid="ignore"):
        exp = expected.astype(np.float64).astype(dtype.numpy_dtype)
    a64, e64 = actual.astype(np.float64), exp.astype(np.float64)
    report = f"\nactual:   {actual!r}\nexpected: {exp!r}{where}"
    assert np.array_equal(np.isnan(a64), np.isnan(e64)), f"NaN mismatch{report}"
    finite = ~np.isnan(e64)
    inf = np.isinf(e64) | np.isinf(a64)
    assert np.array_equal(a64[inf & finite], e64[inf & finite]), f"infinity mismatch{report}"
    ordinary = finite & ~inf
    if ordinary.any():
        dist = ulp_distance(actual[ordinary], exp[ordinary])
        err = np.abs(a64[ordinary] - e64[ordinary])
        ok = (dist <= limit) | (err <= atol)
        assert ok.all(), (
            f"{int((~ok).sum())} value(s) off by more than {limit} ulp(s) / atol={atol:g} "
            f"(worst {max(dist.tolist())} ulps){report}"
        )
    if zero_sign:
        zero = e64 == 0
        assert np.array_equal(np.signbit(a64[zero]), np.signbit(e64[zero])), (
            f"sign of zero mismatch{report}"
        )


def _assert_complex_close(
    actual: np.ndarray, expected: np.ndarray, dtype: DType, limit: int, atol: float, where: str
) -> None:
    a = actual.astype(np.complex128)
    report = f"\nactual:   {actual!r}\nexpected: {expected!r}{where}"
    for part in (np.real, np.imag):
        assert np.array_equal(np.isnan(part(a)), np.isnan(part(expected))), f"NaN mismatch{report}"
    finite = np.isfinite(expected)
    assert np.array_equal(np.isfinite(a), finite), f"non-finite mismatch{report}"
    err = np.abs(a[finite] - expected[finite])
    bound = limit * eps(dtype) * np.abs(expected[finite]) + atol
    # an expected value of exactly 0 leaves only the rounding of the components
    bound = np.maximum(bound, float(ml_dtypes.finfo(component(dtype).numpy_dtype).tiny))
    assert (err <= bound).all(), f"norm-wise error beyond {limit} eps{report}"


def accumulation_atol(terms: Iterable[float], n: int, dtype: DType) -> float:
    """The absolute error bound of accumulating ``n`` terms of magnitudes ``terms`` in
    ``dtype``'s accumulator: ``n * eps(acc) * sum(|terms|)``; 0 for exact (integer) dtypes."""
    if dtype.kind not in "fc":
        return 0.0
    total = math.fsum(abs(t) for t in terms)
    acc = accumulator(component(dtype))
    return n * eps(acc) * total
