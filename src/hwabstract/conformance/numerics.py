"""Numerics the conformance suite (and the repository's own kernel tests) judge results by:
test data, special values, distances in ulps, and the tolerance policy.

Tolerance policy against the NumPy reference
--------------------------------------------

A backend's result is compared with the kernel's NumPy reference (``KernelSpec.reference``)
computed on the same inputs, in the output dtype. Allowed differences:

* bool and integer results: none (integer overflow wraps, as in NumPy);
* NaN exactly where the reference has NaN; infinities equal;
* every float dtype, for the operations IEEE 754 defines exactly (arithmetic, sqrt,
  rounding, comparisons, min/max, sign manipulation, conversions: :data:`EXACT_KERNELS`):
  0 ulps -- the result must be correctly rounded. For float16, bfloat16 and the float8
  formats, computing in float32 and rounding once achieves that, because float32 carries
  at least 2p + 2 bits of each format's precision p (double rounding is then innocuous);
* float32 and float64, for the transcendental functions: 8 ulps -- implementations (NumPy's
  SIMD loops, a vendor's math library) each promise about 4 ulps from the true value, so
  two of them may be 8 apart;
* float16, bfloat16 and the float8 formats, for the transcendental functions: 1 ulp --
  both sides compute in float32 and round once, so they differ only where a value lies
  close to a rounding tie;
* activations composed of several transcendental steps (gelu, silu): 32 ulps in
  float32/float64; and for ``logaddexp``, whose formula cancels near 0, an absolute term
  ``2 * eps * max(|x1|, |x2|)``;
* complex: the float32/float64 bound, measured norm-wise; the exact kernels that act on
  each component alone (add, subtract, conj, ...) stay exact (1 eps); complex
  multiplication, division, sqrt, ``abs``, ``sign`` and ``reciprocal``
  (:data:`COMPLEX_INEXACT_KERNELS`) are formulas of several rounded steps that
  implementations choose differently (NumPy's, C99 Annex G's, CUDA's), so they get the
  8 eps of the other kernels;
* kernels that accumulate (reductions, matmul, softmax, layer_norm, ...): additionally an
  absolute term ``2 * n * eps(accumulator) * S``, where ``n`` is the number of terms
  accumulated into each result and ``S`` the reference evaluated on the inputs' magnitudes
  in float64 (for a sum, the sum of absolute values): the classical bound of a summation
  carried out in another order.

A device that does not declare the ``subnormals`` feature may flush subnormal inputs and
results to zero (in float32 arithmetic, so float16 and float8 subnormals, which are normal
float32 values, are kept): each element is accepted if it matches either the reference or
the reference computed with flushing -- flushing is allowed, any other error is not.

These figures are the suite's, documented in ``docs/conformance.md``; a backend that cannot
meet one for a dtype declares the exception in its expectations file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np

from .. import dtypes as dt
from ..dtypes import DType

__all__ = [
    "CANCELLING_KERNELS",
    "COMPLEX_INEXACT_KERNELS",
    "COMPOSITE_KERNELS",
    "DOMAIN",
    "EXACT_KERNELS",
    "NONZERO_SECOND",
    "REFERENCE_ULPS",
    "ULPS",
    "accumulator",
    "assert_close",
    "component",
    "eps",
    "kernel_sample",
    "reference_ulps",
    "sample",
    "special_operands",
    "special_values",
    "specials",
    "subnormal_operands",
    "subnormal_values",
    "ulp_distance",
    "wide_exponent_blocks",
]

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
    inputs: Sequence[Any] = (),
) -> None:
    """Check a result against the independently computed ``expected``.

    ``actual`` must have exactly the NumPy dtype of ``dtype`` and ``expected``'s shape.
    Bool and integer results must be equal. Floats: NaN exactly where expected is NaN,
    infinities equal, and finite values within ``ulps`` (default ``ULPS[dtype]``) of the
    expected value rounded to ``dtype``, or within ``atol``. ``zero_sign`` also requires the
    sign of zero results to match. ``context`` (e.g. the inputs) is shown on failure, and
    ``inputs`` (arrays of ``expected``'s shape) are shown at the first mismatching elements.
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

    def first(bad: np.ndarray) -> str:
        """The first mismatching elements: position, values, and the inputs there."""
        lines = []
        for pos in np.argwhere(bad)[:4]:
            idx = tuple(int(i) for i in pos)
            args = ", ".join(repr(np.asarray(x)[idx].item()) for x in inputs
                             if np.shape(x) == bad.shape)  # fmt: skip
            lines.append(f"\n  at {idx}: actual {actual[idx]!r}, expected {exp[idx]!r}"
                         + (f" (inputs {args})" if args else ""))  # fmt: skip
        return "".join(lines)

    nan_bad = np.isnan(a64) != np.isnan(e64)
    assert not nan_bad.any(), f"NaN mismatch{first(nan_bad)}{report}"
    finite = ~np.isnan(e64)
    inf = np.isinf(e64) | np.isinf(a64)
    inf_bad = inf & finite & (a64 != e64)
    assert not inf_bad.any(), f"infinity mismatch{first(inf_bad)}{report}"
    ordinary = finite & ~inf
    if ordinary.any():
        dist = ulp_distance(actual[ordinary], exp[ordinary])
        err = np.abs(a64[ordinary] - e64[ordinary])
        ok = (dist <= limit) | (err <= atol)
        if not ok.all():
            bad = np.zeros(actual.shape, bool)
            bad[ordinary] = ~ok
            raise AssertionError(
                f"{int((~ok).sum())} value(s) off by more than {limit} ulp(s) / atol={atol:g} "
                f"(worst {max(dist.tolist())} ulps){first(bad)}{report}"
            )
    if zero_sign:
        zero_bad = (e64 == 0) & (np.signbit(a64) != np.signbit(e64))
        assert not zero_bad.any(), f"sign of zero mismatch{first(zero_bad)}{report}"


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


#: Kernels IEEE 754 defines to the last bit: their float results must be correctly rounded,
#: equal to the reference's.
EXACT_KERNELS = frozenset(
    {
        "abs",
        "add",
        "subtract",
        "multiply",
        "divide",
        "sqrt",
        "negative",
        "positive",
        "square",
        "reciprocal",
        "ceil",
        "floor",
        "trunc",
        "round",
        "sign",
        "signbit",
        "copysign",
        "maximum",
        "minimum",
        "equal",
        "not_equal",
        "greater",
        "greater_equal",
        "less",
        "less_equal",
        "isfinite",
        "isinf",
        "isnan",
        "conj",
        "real",
        "imag",
        "nextafter",
        "floor_divide",
        "remainder",
        "clip",
        "where",
        "astype",
        "relu",
        "min",
        "max",
        "argmin",
        "argmax",
        "any",
        "all",
        "permute_dims",
        "reshape",
        "flip",
        "broadcast_to",
        "concat",
        "stack",
    }
)

#: Kernels composed of several transcendental steps (an activation built from exp or erfc,
#: a cube and a division): four times the budget of a single transcendental function in
#: float32/64, since each step's error is carried into the next.
COMPOSITE_KERNELS = frozenset({"gelu", "silu"})

#: Kernels whose result cancels: ``logaddexp(a, b) = max + log1p(exp(-|a - b|))`` is near 0
#: where ``max`` and the logarithm nearly cancel, so any implementation of that formula
#: (NumPy's included) has an absolute error of order ``eps * max(|a|, |b|)`` there.
CANCELLING_KERNELS = frozenset({"logaddexp"})

#: Allowed distance from the NumPy reference, in ulps of the result dtype (see the module
#: docstring): (exact kernels, other kernels) per dtype.
REFERENCE_ULPS: dict[str, tuple[int, int]] = {
    "float64": (0, 8),
    "float32": (0, 8),
    "float16": (0, 1),
    "bfloat16": (0, 1),
    "float8_e4m3fn": (0, 1),
    "float8_e5m2": (0, 1),
    "complex64": (1, 8),
    "complex128": (1, 8),
}


#: The exact kernels that are not exact on complex numbers: complex multiplication,
#: division, square roots, ``abs`` (a hypot), ``sign`` (``z / |z|``) and ``reciprocal`` are
#: formulas of several rounded steps, and implementations (NumPy's, C99 Annex G's, CUDA's
#: thrust::complex) choose different ones, a few eps apart: they get the bound of the
#: other kernels. The rest act on each component alone (add, conj, comparisons, ...).
COMPLEX_INEXACT_KERNELS = frozenset(
    {"abs", "multiply", "divide", "sqrt", "square", "reciprocal", "sign"}
)


def reference_ulps(kernel: str, dtype: DType, from_complex: bool = False) -> int:
    """The ulps a result of ``kernel`` in ``dtype`` may be from the NumPy reference;
    ``from_complex``: an input is complex (``abs`` of a complex number is real)."""
    exact, other = REFERENCE_ULPS.get(dtype.name, (0, 0))
    if (dtype.kind == "c" or from_complex) and kernel in COMPLEX_INEXACT_KERNELS:
        return other
    if kernel in EXACT_KERNELS:
        return exact
    return 4 * other if kernel in COMPOSITE_KERNELS and dtype.itemsize >= 4 else other


def special_values(dtype: DType) -> np.ndarray:
    """The values that break implementations, in ``dtype``: for floats NaN, +-inf, +-0, the
    smallest normal, the largest finite value and a few ordinary values (a format without
    infinities, float8_e4m3fn, gets NaN for them, as a kernel would); for integers the
    type's minimum and maximum (overflow), -1, 0 and 1; for bool both values. Subnormals
    are :func:`subnormal_values` (a separate test: hardware that flushes them to zero
    declares that one expectation, and the other special values are still checked)."""
    if dtype.kind == "b":
        return np.array([False, True, True, False])
    if dtype.kind in "iu":
        info = np.iinfo(dtype.numpy_dtype)
        values = sorted(
            {
                int(info.min),
                int(info.min) + 1,
                -1 if info.min else 2,
                0,
                1,
                int(info.max) - 1,
                int(info.max),
            }
        )
        return np.array(values, dtype=dtype.numpy_dtype)
    finfo = ml_dtypes.finfo(component(dtype).numpy_dtype)
    tiny, big = float(finfo.smallest_normal), float(finfo.max)
    floats: list[float] = [
        np.nan,
        np.inf,
        -np.inf,
        0.0,
        -0.0,
        tiny,
        -tiny,
        big,
        -big,
        1.0,
        -1.0,
        0.5,
        -2.5,
        3.0,
    ]
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(floats, dtype=np.float64).astype(dtype.numpy_dtype)


def subnormal_values(dtype: DType) -> np.ndarray:
    """Subnormals of a real floating ``dtype`` (the smallest, a middle one, the largest, of
    both signs) beside zeros and the smallest normals, which a flushing implementation
    confuses them with."""
    finfo = ml_dtypes.finfo(dtype.numpy_dtype)
    sub, tiny = float(finfo.smallest_subnormal), float(finfo.smallest_normal)
    largest_sub = tiny - sub
    middle = sub * 2 ** max(0, int(np.log2(largest_sub / sub)) // 2)
    values = [sub, middle, largest_sub, tiny, 0.0, 1.0]
    values += [-v for v in values]
    return np.array(values, dtype=np.float64).astype(dtype.numpy_dtype)


#: (low, high) of the inputs, per kernel, where the default (-4, 4) leaves the domain
DOMAIN: dict[str, tuple[float, float]] = {
    "log": (0.1, 4),
    "log2": (0.1, 4),
    "log10": (0.1, 4),
    "sqrt": (0.0, 4),
    "log1p": (-0.9, 4),
    "acosh": (1.1, 4),
    "asin": (-0.9, 0.9),
    "acos": (-0.9, 0.9),
    "atanh": (-0.9, 0.9),
    "tan": (-1.2, 1.2),
    "reciprocal": (0.25, 4),
}
NONZERO_SECOND = {"divide", "floor_divide", "remainder"}


def wide_exponent_blocks(shape: tuple[int, ...], seed: int, low: int = -130,
                         high: int = 120, block: int = 32) -> np.ndarray:  # fmt: skip
    """float32 test data for block formats: each block of ``block`` values along the last
    axis has its own magnitude, ``2^e`` for ``e`` drawn from ``[low, high)`` (subnormals
    included when ``low`` reaches them), with zeros sprinkled in (5%)."""
    rng = np.random.default_rng(seed)
    exponents = rng.integers(low, high, size=(*shape[:-1], -(-shape[-1] // block)))
    scale = np.repeat(np.exp2(exponents.astype(np.float64)), block, axis=-1)[..., : shape[-1]]
    x = rng.standard_normal(shape) * scale
    x[rng.random(shape) < 0.05] = 0.0
    f32 = np.finfo(np.float32)
    return np.clip(x, -f32.max, f32.max).astype(np.float32)


def special_operands(name: str, dtype: DType, nin: int) -> list[np.ndarray]:
    """The special values of ``dtype`` for an elementwise kernel of ``nin`` inputs: the
    values themselves, or every pair of them -- integer divisors made nonzero, integer
    exponents and shift counts made valid. (Outside a kernel's domain the contract is
    NumPy's: NaN where it says so.)"""
    s = special_values(dtype)
    if nin == 1:
        return [s]
    first, second = np.repeat(s, s.size), np.tile(s, s.size)
    if dtype.kind in "iu":
        if name in NONZERO_SECOND:
            second = np.where(second == 0, np.array(1, dtype=second.dtype), second)
        if name == "pow":
            second = np.abs(second.astype(np.int64)).clip(0, 3).astype(second.dtype)
        if name.endswith("shift"):
            second = (np.abs(second.astype(np.int64)) % dtype.bits).astype(second.dtype)
    return [first, second]


def subnormal_operands(name: str, dtype: DType, nin: int) -> list[np.ndarray]:
    """The subnormal values of a float ``dtype`` (with zeros and the smallest normals) for
    an elementwise kernel of ``nin`` inputs: the values, or every pair (divisors nonzero)."""
    s = subnormal_values(dtype)
    if nin == 1:
        return [s]
    first, second = np.repeat(s, s.size), np.tile(s, s.size)
    if name in NONZERO_SECOND:
        second = np.where(second == 0, np.ones((), dtype.numpy_dtype), second)
    return [first, second]


def kernel_sample(
    name: str, dtype: DType, shape: tuple[int, ...], rng: np.random.Generator, second: bool = False
) -> np.ndarray:
    """Ordinary data inside the kernel's domain (the second operand of a division stays
    away from zero, shifts stay below the width, integer powers non-negative)."""
    if dtype.kind == "b":
        return np.asarray(rng.random(shape) < 0.5)
    low, high = DOMAIN.get(name, (-4.0, 4.0))
    if name == "pow":
        low, high = (0.5, 2.0) if not second else (-2.0, 2.0)
        if dtype.kind in "iu":
            low, high = (0, 3) if (second or dtype.kind == "u") else (-3, 3)
    if name.startswith("bitwise_") and name.endswith("shift") and second:
        low, high = 0, 6
    if dtype.kind in "iu":
        info = np.iinfo(dtype.numpy_dtype)
        lo, hi = max(int(low), int(info.min)), min(int(high), int(info.max))
        values = rng.integers(lo, hi + 1, size=shape)
        if second and name in NONZERO_SECOND:
            values = np.where(values == 0, 1, values)
        return np.asarray(values, dtype=dtype.numpy_dtype)
    if dtype.kind == "c":
        z = rng.uniform(low, high, size=shape) + 1j * rng.uniform(low, high, size=shape)
        if second and name in NONZERO_SECOND:
            z = np.where(np.abs(z) < 0.25, 0.25, z)
        return np.asarray(z, dtype=dtype.numpy_dtype)
    drawn = rng.uniform(low, high, size=shape)
    if second and name in NONZERO_SECOND:
        drawn = np.where(np.abs(drawn) < 0.25, 0.25, drawn)
    rounded = drawn.astype(np.float32).astype(dtype.numpy_dtype)
    # rounding to a narrow dtype may leave the domain (0.95 -> 1.0 in float8_e5m2)
    exact = rounded.astype(np.float64)
    inside = (exact >= low) & (exact <= high)
    middle = np.array((low + high) / 2, dtype=np.float64).astype(dtype.numpy_dtype)
    return np.where(inside, rounded, middle)
