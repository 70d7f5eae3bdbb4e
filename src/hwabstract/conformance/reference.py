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
from .numerics import accumulator, assert_close, eps, reference_ulps

__all__ = ["check_kernel", "reference_outputs"]

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
}


def _plan(
    spec: KernelSpec, device: Any, operands: Sequence[Any], attrs: Mapping[str, Any] | None
) -> Any:
    from ..dispatch import _make_plan

    return _make_plan(spec, device, operands, attrs)


def _host(op: Any) -> Any:
    from ..tensor import Tensor

    return op.numpy() if isinstance(op, Tensor) else op


def reference_outputs(
    spec: KernelSpec | str, device: Any, operands: Sequence[Any], attrs: Mapping[str, Any] | None
) -> tuple[np.ndarray, Any, Mapping[str, Any], list[np.ndarray | None]]:
    """The reference result of ``spec`` on ``operands`` (tensors on ``device`` and Python
    scalars), the plan it followed, its normalized attributes and the host inputs as the
    reference saw them (cast and broadcast)."""
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
    with np.errstate(all="ignore"):
        result = spec.reference(*host_inputs, **dict(plan.attrs))
        if isinstance(result, tuple):
            result = result[0]
        expected = np.asarray(result).astype(plan.out_dtype.numpy_dtype, copy=False)
    if expected.shape != plan.result_shape:
        expected = np.broadcast_to(expected, plan.result_shape)
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


def _magnitude(spec: KernelSpec, plan: Any, inputs: Sequence[Any]) -> np.ndarray | float:
    """The reference evaluated on the inputs' magnitudes in float64: the scale ``S`` of the
    accumulation bound (for a sum, the sum of absolute values)."""
    if spec.name in ("softmax", "log_softmax"):
        return 1.0 if spec.name == "softmax" else np.abs(_float64_reference(spec, plan, inputs))
    if spec.name == "layer_norm":
        x = np.abs(inputs[0].astype(np.float64))
        return float(np.max(x, initial=1.0)) * 4
    return np.abs(_float64_reference(spec, plan, [np.abs(a) for a in inputs]))


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

    spec = get_spec(spec) if isinstance(spec, str) else spec
    expected, plan, _, host_inputs = reference_outputs(spec, device, operands, attrs)
    fn = getattr(hw, spec.name)
    kwargs = dict(attrs or {})
    if spec.name == "astype":  # (its dtype is positional)
        result = fn(*operands, kwargs.pop("dtype"), **kwargs)
    else:
        result = fn(*operands, **kwargs)
    actual = result.numpy()
    out_dtype: DType = plan.out_dtype
    where = f"{spec.name}[{out_dtype}] {context}".strip()
    assert result.device is device, f"{where}: result on {result.device.name}, not {device.name}"
    assert result.dtype is out_dtype, f"{where}: result dtype {result.dtype}, reference {out_dtype}"
    assert actual.shape == expected.shape, (
        f"{where}: result shape {actual.shape}, reference {expected.shape}"
    )
    atol = 0.0
    if spec.name in _ACCUMULATING and out_dtype.kind in "fc" and expected.size:
        n = _terms(spec, plan, host_inputs)
        scale = _magnitude(spec, plan, [a for a in host_inputs if a is not None])
        acc = accumulator(plan.compute if plan.compute.kind in "fc" else out_dtype)
        bound = 2.0 * n * eps(acc) * np.asarray(scale, dtype=np.float64)
        atol = (
            float(np.max(bound[np.isfinite(bound)], initial=0.0))
            if np.ndim(bound)
            else float(bound)
        )
    assert_close(
        actual,
        expected,
        out_dtype,
        ulps=reference_ulps(spec.name, out_dtype) if out_dtype.kind in "fc" else None,
        atol=atol,
        zero_sign=zero_sign,
        context=f"{where}; inputs: {_describe(host_inputs)}",
    )


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
