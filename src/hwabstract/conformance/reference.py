"""Run a kernel on the device under test and on its NumPy reference, and compare.

The reference follows the same rules dispatch applies (the spec's dtype rule, shape rule and
attribute normalization, derived through the same plan), then calls
``KernelSpec.reference`` on host arrays: the result a backend must reproduce within the
tolerance policy of :mod:`hwabstract.conformance.numerics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..kernels import KernelSpec, get_spec
from .numerics import CANCELLING_KERNELS, accumulator, assert_close, eps, reference_ulps

__all__ = ["check_kernel", "reference_outputs", "variance_scale"]

#: kernels whose results accumulate many terms, and how many terms each result takes
_ACCUMULATING = {
    "sum",
    "prod",
    "mean",
    "var",
    "std",
    "matmul",
    "softmax",
    "log_softmax",
    "layer_norm",
    "cumulative_sum",
    "cumulative_prod",
}


def _plan(
    spec: KernelSpec, device: Any, operands: Sequence[Any], attrs: Mapping[str, Any] | None
) -> Any:
    from ..dispatch import _make_plan

    return _make_plan(spec, device, operands, attrs)


def _host(op: Any) -> Any:
    from ..tensor import Tensor

    return op.numpy() if isinstance(op, Tensor) else op


def flush_subnormals(a: np.ndarray) -> np.ndarray:
    """``a`` with the values that are subnormal *in the arithmetic* replaced by zeros of
    the same sign: what a device without gradual underflow does to inputs and results.
    Floats up to 32 bits are computed in float32, so the threshold is float32's smallest
    normal (a float16 subnormal is a normal float32 and survives; a bfloat16 subnormal does
    not); float64 uses its own. Other dtypes are unchanged."""
    if dt.dtype(a.dtype).kind != "f" or not a.size:
        return a
    wide = a.astype(np.float64)
    arithmetic = np.float64 if a.dtype.itemsize > 4 else np.float32
    tiny = float(np.finfo(arithmetic).smallest_normal)
    flushed = np.where((wide != 0) & (np.abs(wide) < tiny), np.copysign(0.0, wide), wide)
    return flushed.astype(a.dtype)


def reference_outputs(
    spec: KernelSpec | str,
    device: Any,
    operands: Sequence[Any],
    attrs: Mapping[str, Any] | None,
    *,
    flush: bool = False,
) -> tuple[np.ndarray, Any, Mapping[str, Any], list[np.ndarray | None]]:
    """The reference result of ``spec`` on ``operands`` (tensors on ``device`` and Python
    scalars), the plan it followed, its normalized attributes and the host inputs as the
    reference saw them (cast and broadcast). With ``flush``, subnormal inputs and results
    are flushed to zero, as a device without gradual underflow may do."""
    from ..dispatch import _scalar_host

    spec = get_spec(spec) if isinstance(spec, str) else spec
    plan = _plan(spec, device, operands, attrs)
    host_inputs: list[np.ndarray | None] = []
    present = [op for op in operands if op is not None]
    scalar_dtypes = [sd for op, sd in zip(operands, plan.scalar_dtypes) if op is not None]
    for i, (op, sd, target) in enumerate(zip(present, scalar_dtypes, plan.targets)):
        if sd is not None:
            arr = _scalar_host(op, sd)
        else:
            arr = np.asarray(_host(op))
            if plan.cast[i]:
                with np.errstate(all="ignore"):
                    arr = arr.astype(plan.compute.numpy_dtype)
        if target is not None and arr.shape != tuple(target):
            arr = np.broadcast_to(arr, tuple(target))
        host_inputs.append(arr)
    if flush:
        host_inputs = [None if a is None else flush_subnormals(np.asarray(a)) for a in host_inputs]
    with np.errstate(all="ignore"):
        result = spec.reference(*host_inputs, **dict(plan.attrs))
        if isinstance(result, tuple):
            result = result[0]
        expected = np.asarray(result).astype(plan.out_dtype.numpy_dtype, copy=False)
    if expected.shape != plan.result_shape:
        expected = np.broadcast_to(expected, plan.result_shape)
    if flush:
        expected = flush_subnormals(expected)
    return expected, plan, plan.attrs, host_inputs


def _terms(spec: KernelSpec, plan: Any, inputs: Sequence[Any]) -> int:
    """How many terms each result of an accumulating kernel takes."""
    name = spec.name
    if name == "matmul":
        return int(inputs[0].shape[-1]) if inputs[0].ndim else 1
    attrs = plan.attrs
    axes = attrs.get("axes")
    if axes is None and "axis" in attrs and isinstance(attrs["axis"], int):
        axes = (attrs["axis"],)
    shape = inputs[0].shape
    if axes is None:
        axes = tuple(range(len(shape)))
    return max(1, math.prod(shape[a] for a in axes if a < len(shape)))


def variance_scale(
    x: np.ndarray,
    *,
    axes: tuple[int, ...],
    keepdims: bool,
    correction: float,
    epsilon: float,
) -> np.ndarray:
    """The scale ``S`` of ``var``'s accumulation bound ``2 n eps S`` (``n`` the ``N``
    elements reduced, ``eps`` the accumulator's, given as ``epsilon``)::

        S = var(x) + N eps sum(x**2) / (N - correction)

    in float64. The kernel applied to ``|x|`` -- the scale of the other accumulating
    kernels -- does not bound var's rounding: ``var(|x|)`` is 0 for a constant vector, whose
    float32 mean need not be exact, and for ``[1, -1]``, whose variance is 1.

    The bound is the two-pass algorithm's (Chan, Golub & LeVeque, 1983), which the
    reference uses. With the mean off by ``d``, the squared deviations sum to the exact
    ``sum((x - mean)**2) + N d**2`` (the deviations from the exact mean sum to 0), rounded
    with a relative error of at most ``(N + 2) u``; and ``|d| <= N u mean(|x|)`` gives
    ``N d**2 <= N**2 u**2 sum(x**2)``. With ``eps = 2 u``, ``2 N eps S`` is at least twice
    that, for the device's result and the reference's together. NaN where
    ``N - correction <= 0`` (the result is NaN)."""
    wide = np.asarray(x, dtype=np.float64)
    count = math.prod(wide.shape[a] for a in axes)
    if count - correction <= 0:
        shape = np.sum(wide, axis=axes, keepdims=keepdims).shape
        return np.full(shape, np.nan)
    with np.errstate(all="ignore"):
        mean = np.sum(wide, axis=axes, keepdims=True) / max(count, 1)
        deviations = np.sum(np.square(wide - mean), axis=axes, keepdims=keepdims)
        squares = np.sum(np.square(wide), axis=axes, keepdims=keepdims)
        return np.asarray((deviations + count * epsilon * squares) / (count - correction))


def _magnitude(
    spec: KernelSpec, plan: Any, inputs: Sequence[Any], acc: DType
) -> np.ndarray | float:
    """The scale ``S`` of the accumulation bound: the reference evaluated on the inputs'
    magnitudes in float64 (for a sum, the sum of absolute values); for ``var`` and ``std``,
    :func:`variance_scale`."""
    if spec.name in ("softmax", "log_softmax"):
        return 1.0 if spec.name == "softmax" else np.abs(_float64_reference(spec, plan, inputs))
    if spec.name == "layer_norm":
        x = np.abs(inputs[0].astype(np.float64))
        return float(np.max(x, initial=1.0)) * 4
    if spec.name in ("var", "std"):
        attrs = plan.attrs
        return variance_scale(
            inputs[0],
            axes=tuple(attrs["axes"]),
            keepdims=bool(attrs["keepdims"]),
            correction=float(attrs["correction"]),
            epsilon=eps(acc),
        )
    return np.abs(_float64_reference(spec, plan, [np.abs(a) for a in inputs]))


def _accumulation_atol(
    spec: KernelSpec, plan: Any, inputs: Sequence[Any], expected: np.ndarray
) -> float:
    """``2 n eps(accumulator) S`` of the tolerance policy, the largest over the results.
    ``std`` takes var's bound ``B`` through the square root: two variances ``a``, ``b``
    within ``B`` of each other have ``|sqrt(a) - sqrt(b)| = |a - b| / (sqrt(a) + sqrt(b))``,
    at most ``B / sqrt(b)`` and at most ``sqrt(B)`` (``sqrt(b)`` the reference's result)."""
    n = _terms(spec, plan, inputs)
    acc = accumulator(plan.compute if plan.compute.kind in "fc" else plan.out_dtype)
    scale = _magnitude(spec, plan, [a for a in inputs if a is not None], acc)
    bound = 2.0 * n * eps(acc) * np.asarray(scale, dtype=np.float64)
    if spec.name == "std":
        with np.errstate(all="ignore"):
            reference = np.abs(np.asarray(expected, dtype=np.float64))
            bound = np.minimum(np.sqrt(bound), bound / reference)  # (b = 0: sqrt(B))
    return float(np.max(bound[np.isfinite(bound)], initial=0.0))


def _float64_reference(spec: KernelSpec, plan: Any, inputs: Sequence[Any]) -> np.ndarray:
    attrs = dict(plan.attrs)
    if "dtype" in attrs and attrs["dtype"] is not None:
        attrs["dtype"] = dt.float64
    with np.errstate(all="ignore"):
        wide = [
            np.asarray(a, dtype=np.complex128 if np.iscomplexobj(a) else np.float64) for a in inputs
        ]
        result = spec.reference(*wide, **attrs)
    return np.asarray(result[0] if isinstance(result, tuple) else result, dtype=np.float64)


def check_kernel(
    spec: KernelSpec | str,
    device: Any,
    operands: Sequence[Any],
    attrs: Mapping[str, Any] | None = None,
    *,
    context: str = "",
    zero_sign: bool = False,
) -> None:
    """Launch ``spec`` on ``operands`` (on ``device``) and assert its result matches the
    NumPy reference within the tolerance policy. ``context`` is shown on failure."""
    import hwabstract as hw

    from ..backend import Feature

    spec = get_spec(spec) if isinstance(spec, str) else spec
    expected, plan, _, host_inputs = reference_outputs(spec, device, operands, attrs)
    flushed = None
    if not device.capabilities.has_feature(Feature.SUBNORMALS):
        # A device without gradual underflow may flush subnormal inputs and results (XLA
        # flushes in arithmetic but not in sign manipulation, for instance): each element
        # is judged against whichever reference, flushed or not, it is nearer to.
        flushed = reference_outputs(spec, device, operands, attrs, flush=True)[0]
    fn = getattr(hw, spec.name)
    kwargs = dict(attrs or {})
    if spec.name == "astype":  # (its dtype is positional)
        result = fn(*operands, kwargs.pop("dtype"), **kwargs)
    else:
        result = fn(*operands, **kwargs)
    actual = result.numpy()
    out_dtype: DType = plan.out_dtype
    where = f"{spec.name}[{out_dtype}] {context}".strip()
    if flushed is not None:
        expected = _nearer(expected, flushed, actual)
    assert result.device is device, f"{where}: result on {result.device.name}, not {device.name}"
    assert result.dtype is out_dtype, f"{where}: result dtype {result.dtype}, reference {out_dtype}"
    assert actual.shape == expected.shape, (
        f"{where}: result shape {actual.shape}, reference {expected.shape}"
    )
    atol = 0.0
    if spec.name in _ACCUMULATING and out_dtype.kind in "fc" and expected.size:
        atol = _accumulation_atol(spec, plan, host_inputs, expected)
    if spec.name in CANCELLING_KERNELS and out_dtype.kind == "f" and expected.size:
        magnitudes = [np.abs(a.astype(np.float64)) for a in host_inputs if a is not None]
        largest = max(
            (float(np.max(m[np.isfinite(m)], initial=0.0)) for m in magnitudes), default=0.0
        )
        atol = max(atol, 2.0 * eps(out_dtype) * largest)
    assert_close(
        actual,
        expected,
        out_dtype,
        ulps=(
            reference_ulps(
                spec.name,
                out_dtype,
                from_complex=any(a is not None and a.dtype.kind == "c" for a in host_inputs),
            )
            if out_dtype.kind in "fc"
            else None
        ),
        atol=atol,
        zero_sign=zero_sign,
        context=f"{where}; inputs: {_describe(host_inputs)}",
        inputs=[a for a in host_inputs if a is not None],
    )


def _nearer(keep: np.ndarray, flushed: np.ndarray, actual: np.ndarray | None) -> np.ndarray:
    """Per element, ``keep`` or ``flushed``, whichever ``actual`` is nearer to (NaN equals
    NaN; for bool and integer results, whichever it equals)."""
    if actual is None or keep.shape != actual.shape:
        return keep
    if dt.dtype(keep.dtype).kind != "f":
        return np.where((actual != keep) & (actual == flushed), flushed, keep)

    def distance(ref: np.ndarray) -> np.ndarray:
        a, r = actual.astype(np.float64), ref.astype(np.float64)
        with np.errstate(invalid="ignore"):
            d = np.abs(a - r)
        both_nan = np.isnan(a) & np.isnan(r)
        same = (a == r) | both_nan
        return np.where(same, 0.0, np.where(np.isnan(d), np.inf, d))

    return np.where(distance(keep) <= distance(flushed), keep, flushed)


def _describe(inputs: Sequence[Any]) -> str:
    parts = []
    for a in inputs:
        if a is None:
            parts.append("None")
        elif getattr(a, "size", 2) <= 24:
            parts.append(repr(np.asarray(a).tolist()))
        else:
            parts.append(f"<{a.dtype} array of shape {a.shape}>")
    return ", ".join(parts)
