"""ML primitives: softmax, log_softmax, layer_norm, gelu, silu, relu.

References compute 8- and 16-bit floats in float32 and round once at the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import DTypeError, ShapeError
from .elementwise import REAL, REAL_FLOATING
from .spec import KernelSpec, broadcast_shapes, check_kinds, normalize_axes, register


def _compute_type(x: np.ndarray) -> np.dtype[Any]:
    return np.dtype(np.float64) if x.dtype.itemsize >= 8 else np.dtype(np.float32)


def _float_rule(name: str, kinds: frozenset[DType] = REAL_FLOATING) -> Any:
    def rule(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
        compute = dt.dtype(operands[0].dtype)
        check_kinds(name, compute, kinds)
        for extra in operands[1:]:
            if extra is not None and dt.dtype(extra.dtype) != compute:
                raise DTypeError(
                    f"{name}() parameters must have x's dtype {compute}, got {extra.dtype}"
                )
        return compute, (compute,)

    return rule


def _axis_rule(shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]) -> Any:
    shape = shapes[0]
    axis = attrs.get("axis", -1)
    if not isinstance(axis, (int, np.integer)):
        raise ShapeError(f"axis must be an int, got {axis!r}")
    if len(shape) == 0:
        raise ShapeError("softmax needs at least one dimension")
    (ax,) = normalize_axes(axis, len(shape))
    return [None], [shape], {"axis": ax}


def _softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    c = x.astype(_compute_type(x), copy=False)
    with np.errstate(all="ignore"):
        shifted = c - np.max(c, axis=axis, keepdims=True) if c.size else c
        e = np.exp(shifted)
        return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


def _log_softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    c = x.astype(_compute_type(x), copy=False)
    with np.errstate(all="ignore"):
        shifted = c - np.max(c, axis=axis, keepdims=True) if c.size else c
        return (shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))).astype(x.dtype)


for _name, _ref, _doc in [
    ("softmax", _softmax, "exp(x - max) / sum(exp(x - max)) along axis."),
    ("log_softmax", _log_softmax, "x - max - log(sum(exp(x - max))) along axis."),
]:
    register(
        KernelSpec(
            name=_name,
            category="nn",
            inputs=("x",),
            dtypes=REAL_FLOATING,
            dtype_rule=_float_rule(_name),
            shape_rule=_axis_rule,
            reference=_ref,
            attributes={"axis": -1},
            doc=_doc,
        )
    )


def _layer_norm_shape(shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]) -> Any:
    shape = shapes[0]
    axes = normalize_axes(attrs.get("axis", -1), len(shape)) if shape else ()
    if not axes or axes != tuple(range(len(shape) - len(axes), len(shape))):
        raise ShapeError(
            f"layer_norm normalizes trailing dimensions; axis={attrs.get('axis')!r} on shape "
            f"{shape} is not a run of trailing axes (use e.g. -1 or (-2, -1))"
        )
    normalized = tuple(shape[a] for a in axes)
    for param in shapes[1:]:
        try:
            fits = broadcast_shapes(param, normalized) == normalized
        except ShapeError:
            fits = False
        if not fits:
            raise ShapeError(
                f"layer_norm weight/bias of shape {param} must broadcast to the normalized "
                f"shape {normalized}"
            )
    targets = [None] + [shape] * (len(shapes) - 1)
    return (
        targets,
        [shape],
        {
            "axes": axes,
            "eps": float(attrs.get("eps", 1e-5)),
            "has_weight": bool(attrs.get("has_weight")),
            "has_bias": bool(attrs.get("has_bias")),
        },
    )


def _layer_norm(
    x: np.ndarray, *params: np.ndarray, axes: tuple[int, ...], eps: float,
    has_weight: bool, has_bias: bool,
) -> np.ndarray:  # fmt: skip
    ct = _compute_type(x)
    c = x.astype(ct, copy=False)
    with np.errstate(all="ignore"):
        mean = np.mean(c, axis=axes, keepdims=True) if c.size else c
        var = np.mean((c - mean) ** 2, axis=axes, keepdims=True) if c.size else c
        y = (c - mean) / np.sqrt(var + eps)
        it = iter(params)
        if has_weight:
            y = y * next(it).astype(ct)
        if has_bias:
            y = y + next(it).astype(ct)
    return y.astype(x.dtype)


register(
    KernelSpec(
        name="layer_norm",
        category="nn",
        inputs=("x", "weight?", "bias?"),
        dtypes=REAL_FLOATING,
        dtype_rule=_float_rule("layer_norm"),
        shape_rule=_layer_norm_shape,
        reference=_layer_norm,
        attributes={"axis": -1, "eps": 1e-5, "has_weight": False, "has_bias": False},
        doc="(x - mean) / sqrt(var + eps) * weight + bias over the trailing axes (biased "
        "variance, like torch.nn.functional.layer_norm).",
    )
)

_erfc = np.frompyfunc(math.erfc, 1, 1)


def _gelu(x: np.ndarray, *, approximate: str) -> np.ndarray:
    # In float64, and in forms without cancellation: 0.5 * (1 + tanh(u)) is computed as the
    # sigmoid 1 / (1 + exp(-2u)), and 0.5 * (1 + erf(z)) as 0.5 * erfc(-z). The textbook
    # forms lose every digit of the result for negative x, where 1 + tanh(u) (or 1 + erf(z))
    # is a difference of two numbers close to 1.
    w = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if approximate == "tanh":
            inner = math.sqrt(2.0 / math.pi) * (w + 0.044715 * w**3)
            y = w / (1.0 + np.exp(-2.0 * inner))
        else:
            # np.asarray: on a 0-d input the frompyfunc ufunc returns a bare Python float
            erfc = np.asarray(_erfc(-w / math.sqrt(2.0)), dtype=np.float64)
            y = 0.5 * w * erfc
        # x * Phi(x) tends to -0.0 as x -> -inf; the formula gives -inf * 0 = NaN there
        y = np.where(w == -np.inf, -0.0, y)
    return np.asarray(y).astype(x.dtype)


def _gelu_shape(shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]) -> Any:
    approx = attrs.get("approximate", "none")
    if approx not in ("none", "tanh"):
        raise ShapeError(f"gelu approximate must be 'none' or 'tanh', got {approx!r}")
    return [None], [shapes[0]], {"approximate": approx}


def _silu(x: np.ndarray) -> np.ndarray:
    c = x.astype(_compute_type(x), copy=False)
    with np.errstate(all="ignore"):
        y = c / (1.0 + np.exp(-c))
        # x * sigmoid(x) tends to -0.0 as x -> -inf; the formula gives -inf / inf = NaN there
        return np.where(c == -np.inf, c.dtype.type(-0.0), y).astype(x.dtype)


def _relu(x: np.ndarray) -> np.ndarray:
    zero = np.zeros((), dtype=x.dtype)
    return np.where(x < zero, zero, x)  # keeps NaN and -0.0 as they are


def _same_shape(shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]) -> Any:
    return [None], [shapes[0]], attrs


register(KernelSpec(
    name="gelu", category="nn", inputs=("x",), dtypes=REAL_FLOATING,
    dtype_rule=_float_rule("gelu"), shape_rule=_gelu_shape, reference=_gelu,
    attributes={"approximate": "none"},
    doc="Gaussian error linear unit; approximate='tanh' for the tanh form. gelu(-inf) is "
    "-0.0 (the limit), gelu(+inf) is +inf.",
))  # fmt: skip
register(KernelSpec(
    name="silu", category="nn", inputs=("x",), dtypes=REAL_FLOATING,
    dtype_rule=_float_rule("silu"), shape_rule=_same_shape, reference=_silu,
    doc="x * sigmoid(x); silu(-inf) is -0.0 (the limit), silu(+inf) is +inf.",
))  # fmt: skip
register(KernelSpec(
    name="relu", category="nn", inputs=("x",), dtypes=REAL,
    dtype_rule=_float_rule("relu", REAL), shape_rule=_same_shape, reference=_relu,
    doc="max(x, 0); NaN propagates.",
))  # fmt: skip
