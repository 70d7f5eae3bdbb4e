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
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.conformance.numerics import (  # noqa: F401 - re-exported to the tests
    ULPS,
    accumulator,
    assert_close,
    component,
    eps,
    sample,
    specials,
    ulp_distance,
)
from hwabstract.dtypes import DType

FLOAT_NAMES = ("float8_e4m3fn", "float8_e5m2", "bfloat16", "float16", "float32", "float64")


def cpu() -> hw.Device:
    """The cpu device of the registry in force (tests elsewhere may install a fresh one)."""
    return hw.device("cpu")


def declared(kernel: str) -> list[DType]:
    """The dtypes the cpu backend declares for ``kernel``, in hwabstract's dtype order."""
    kernels = hw.device("cpu").capabilities.kernels
    return [d for d in dt.all_dtypes() if d in kernels[kernel]]


# -- data ------------------------------------------------------------------------------------------


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


def accumulation_atol(terms: Iterable[float], n: int, dtype: DType) -> float:
    """The absolute error bound of accumulating ``n`` terms of magnitudes ``terms`` in
    ``dtype``'s accumulator: ``n * eps(acc) * sum(|terms|)``; 0 for exact (integer) dtypes."""
    if dtype.kind not in "fc":
        return 0.0
    total = math.fsum(abs(t) for t in terms)
    acc = accumulator(component(dtype))
    return n * eps(acc) * total
