"""The standard kernel set written with ``jax.numpy`` and ``lax``, for the PJRT backends.

Each function mirrors its kernel's NumPy reference (``hwabstract.kernels``): the same
promotion has already been applied by the core, so a function receives arrays in the
compute dtype, broadcast to the shape rule's targets, and returns the output in the output
dtype. 8- and 16-bit floats are computed in float32 and rounded once, as the references do;
float32 matmul asks for full float32 precision (a TPU's default is bfloat16 passes).

Imported only by a PJRT backend after its probe has imported jax.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import dtypes as dt

__all__ = ["kernel_function"]

Fn = Callable[..., Any]


def _narrow(x: Any) -> bool:
    return jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize < 4


def _wide(x: Any) -> Any:
    """Floats narrower than 32 bits in float32; everything else as is."""
    return x.astype(jnp.float32) if _narrow(x) else x


def _float_unary(fn: Fn) -> Fn:
    def run(x: Any) -> Any:
        return fn(_wide(x)).astype(x.dtype)

    return run


def _float_binary(fn: Fn) -> Fn:
    def run(a: Any, b: Any) -> Any:
        out = fn(_wide(a), _wide(b))
        return out.astype(a.dtype) if out.dtype != jnp.bool_ else out

    return run


_UNARY_FLOAT = (
    "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "exp", "expm1", "log",
    "log1p", "log2", "log10", "sin", "sinh", "sqrt", "tan", "tanh", "reciprocal", "square",
    "negative", "positive", "abs", "conj",
)  # fmt: skip
_BINARY_ARITH = (
    "add", "subtract", "multiply", "divide", "floor_divide", "remainder", "atan2", "hypot",
    "copysign", "logaddexp", "maximum", "minimum", "pow",
)  # fmt: skip
_COMPARE = ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal")
_LOGICAL = ("logical_and", "logical_or", "logical_xor")
_BITWISE = ("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift",
            "bitwise_right_shift")  # fmt: skip


def _is_int(x: Any) -> bool:
    return bool(jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_)


def _rounding(fn: Fn) -> Fn:
    def run(x: Any) -> Any:
        return x if _is_int(x) else fn(_wide(x)).astype(x.dtype)

    return run


def _sign(x: Any) -> Any:
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        mag = jnp.abs(x)
        return jnp.where(mag == 0, 0, x / jnp.where(mag == 0, 1, mag)).astype(x.dtype)
    if _is_int(x):
        return jnp.sign(x)
    w = _wide(x)
    # +0.0 for zeros of either sign, NaN for NaN, as NumPy's float32 sign
    return jnp.where(w > 0, 1.0, jnp.where(w < 0, -1.0, jnp.where(w == 0, 0.0, w))).astype(x.dtype)


def _nextafter(a: Any, b: Any) -> Any:
    return jnp.where(a == b, b, jnp.nextafter(a, b))


def _pow(a: Any, b: Any) -> Any:
    if not jnp.issubdtype(a.dtype, jnp.integer):
        return _float_binary(jnp.power)(a, b)
    negative = b < 0
    result = jnp.power(a, jnp.where(negative, 0, b))
    one = jnp.ones((), a.dtype)
    inverse = jnp.where(a == one, one, jnp.zeros((), a.dtype))
    if jnp.issubdtype(a.dtype, jnp.signedinteger):
        odd = (b % 2) != 0
        inverse = jnp.where((a == -one) & odd, -one, jnp.where(a == -one, one, inverse))
    return jnp.where(negative, inverse, result).astype(a.dtype)


def _floor_divide(a: Any, b: Any) -> Any:
    if _is_int(a):
        return jnp.floor_divide(a, b)
    return _float_binary(jnp.floor_divide)(a, b)


def _elementwise(name: str) -> Fn | None:
    if name in ("round",):
        return _rounding(jnp.round)
    if name in ("ceil", "floor", "trunc"):
        return _rounding(getattr(jnp, name))
    if name == "sign":
        return _sign
    if name == "real":
        return lambda x: jnp.real(x) if jnp.iscomplexobj(x) else x
    if name == "imag":
        return lambda x: jnp.imag(x) if jnp.iscomplexobj(x) else jnp.zeros_like(x)
    if name in ("isfinite", "isinf", "isnan", "signbit"):
        fn = getattr(jnp, name)
        return lambda x: fn(_wide(x)) if not _is_int(x) else fn(x)
    if name == "logical_not":
        return jnp.logical_not
    if name == "bitwise_invert":
        return jnp.invert
    if name in _UNARY_FLOAT:
        fn = getattr(jnp, name)
        return lambda x: x if (_is_int(x) and name == "positive") else _float_unary(fn)(x)
    if name == "nextafter":
        return _nextafter
    if name == "pow":
        return _pow
    if name == "floor_divide":
        return _floor_divide
    if name in _BINARY_ARITH:
        return _float_binary(getattr(jnp, name))
    if name in _COMPARE:
        fn = getattr(jnp, name)
        return lambda a, b: fn(_wide(a), _wide(b))
    if name in _LOGICAL or name in _BITWISE:
        return getattr(jnp, name)
    return None


# -- reductions ------------------------------------------------------------------------------------


def _accumulator(x: Any) -> Any:
    if jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.float64 if x.dtype.itemsize >= 8 else jnp.float32
    return x.dtype


def _reduction(name: str, attrs: Mapping[str, Any]) -> Fn:
    axes = tuple(attrs["axes"])
    keepdims = bool(attrs["keepdims"])
    if name in ("sum", "prod"):
        target = dt.dtype(attrs["dtype"]).numpy_dtype
        fn = jnp.sum if name == "sum" else jnp.prod

        def run(x: Any) -> Any:
            acc = target
            if jnp.issubdtype(target, jnp.floating):
                acc = np.dtype(np.float64) if target.itemsize >= 8 else np.dtype(np.float32)
            return fn(x.astype(acc), axis=axes, keepdims=keepdims).astype(target)

        return run
    if name in ("min", "max"):
        fn = jnp.min if name == "min" else jnp.max
        return lambda x: fn(x, axis=axes, keepdims=keepdims)
    if name in ("any", "all"):
        fn = jnp.any if name == "any" else jnp.all
        return lambda x: fn(x, axis=axes, keepdims=keepdims)
    if name == "mean":

        def mean(x: Any) -> Any:
            count = math.prod(x.shape[a] for a in axes)
            c = x.astype(_accumulator(x))
            return (jnp.sum(c, axis=axes, keepdims=keepdims) / count).astype(x.dtype)

        return mean
    if name in ("var", "std"):
        correction = float(attrs["correction"])

        def moment(x: Any) -> Any:
            n = math.prod(x.shape[a] for a in axes)
            c = x.astype(_accumulator(x))
            mu = jnp.sum(c, axis=axes, keepdims=True) / max(n, 1)
            squares = jnp.sum(jnp.square(c - mu), axis=axes, keepdims=keepdims)
            v = squares / (n - correction) if n - correction > 0 else squares * jnp.nan
            return (jnp.sqrt(v) if name == "std" else v).astype(x.dtype)

        return moment
    if name in ("argmin", "argmax"):
        fn = jnp.argmin if name == "argmin" else jnp.argmax

        def arg(x: Any) -> Any:
            if x.ndim == 0:
                return jnp.zeros((), jnp.int64)
            if len(axes) == x.ndim and x.ndim != 1:
                flat = fn(x.reshape(-1)).astype(jnp.int64)
                return flat.reshape((1,) * x.ndim) if keepdims else flat
            return fn(x, axis=axes[0], keepdims=keepdims).astype(jnp.int64)

        return arg
    raise KeyError(name)


# -- nn, linalg, where, clip, astype ---------------------------------------------------------------


def _softmax(axis: int, log: bool) -> Fn:
    def run(x: Any) -> Any:
        c = x.astype(_accumulator(x))
        shifted = c - jnp.max(c, axis=axis, keepdims=True) if c.size else c
        if log:
            out = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))
        else:
            e = jnp.exp(shifted)
            out = e / jnp.sum(e, axis=axis, keepdims=True)
        return out.astype(x.dtype)

    return run


def _layer_norm(attrs: Mapping[str, Any]) -> Fn:
    axes = tuple(attrs["axes"]) if "axes" in attrs else (attrs["axis"],)
    eps = float(attrs["eps"])
    has_weight, has_bias = bool(attrs.get("has_weight")), bool(attrs.get("has_bias"))

    def run(x: Any, *params: Any) -> Any:
        c = x.astype(_accumulator(x))
        mu = jnp.mean(c, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(c - mu), axis=axes, keepdims=True)
        y = (c - mu) / jnp.sqrt(var + eps)
        it = iter(params)
        if has_weight:
            y = y * next(it).astype(c.dtype)
        if has_bias:
            y = y + next(it).astype(c.dtype)
        return y.astype(x.dtype)

    return run


def _gelu(approximate: str) -> Fn:
    def run(x: Any) -> Any:
        w = x.astype(jnp.float64 if x.dtype.itemsize >= 8 else jnp.float32)
        if approximate == "tanh":
            inner = math.sqrt(2.0 / math.pi) * (w + 0.044715 * w**3)
            y = w / (1.0 + jnp.exp(-2.0 * inner))
        else:
            y = 0.5 * w * jax.scipy.special.erfc(-w / math.sqrt(2.0))
        return jnp.where(w == -jnp.inf, -0.0, y).astype(x.dtype)

    return run


def _silu(x: Any) -> Any:
    c = _wide(x)
    return jnp.where(c == -jnp.inf, -0.0, c / (1.0 + jnp.exp(-c))).astype(x.dtype)


def _relu(x: Any) -> Any:
    return jnp.where(x > 0, x, jnp.zeros((), x.dtype)).astype(x.dtype)


def _matmul(a: Any, b: Any) -> Any:
    if jnp.issubdtype(a.dtype, jnp.floating) or jnp.issubdtype(a.dtype, jnp.complexfloating):
        prefer = jnp.float32 if _narrow(a) else None
        out = jnp.matmul(a, b, precision=lax.Precision.HIGHEST, preferred_element_type=prefer)
        return out.astype(a.dtype)
    wide = jnp.int64 if jnp.issubdtype(a.dtype, jnp.signedinteger) else jnp.uint64
    return jnp.matmul(a.astype(wide), b.astype(wide)).astype(a.dtype)


def _clip(has_min: bool, has_max: bool) -> Fn:
    def run(x: Any, *bounds: Any) -> Any:
        it = iter(bounds)
        out = x
        if has_min:
            out = jnp.maximum(out, next(it))
        if has_max:
            out = jnp.minimum(out, next(it))
        return out.astype(x.dtype)

    return run


def _astype(target: Any) -> Fn:
    def run(x: Any) -> Any:
        if jnp.issubdtype(x.dtype, jnp.complexfloating) and not jnp.issubdtype(
            target, jnp.complexfloating
        ):
            x = jnp.real(x)
        return x.astype(target)

    return run


def kernel_function(name: str, attrs: Mapping[str, Any]) -> Fn:
    """The JAX function computing ``name`` with the (normalized) ``attrs``."""
    if name == "astype":
        return _astype(dt.dtype(attrs["dtype"]).numpy_dtype)
    if name == "where":
        return jnp.where
    if name == "clip":
        return _clip(bool(attrs.get("has_min")), bool(attrs.get("has_max")))
    if name == "matmul":
        return _matmul
    if name in ("softmax", "log_softmax"):
        return _softmax(int(attrs["axis"]), log=name == "log_softmax")
    if name == "layer_norm":
        return _layer_norm(attrs)
    if name == "gelu":
        return _gelu(str(attrs.get("approximate", "none")))
    if name == "silu":
        return _silu
    if name == "relu":
        return _relu
    if name in ("sum", "prod", "min", "max", "any", "all", "mean", "var", "std", "argmin",
                "argmax"):  # fmt: skip
        return _reduction(name, attrs)
    fn = _elementwise(name)
    if fn is None:
        raise KeyError(f"no JAX implementation of kernel {name!r}")
    return fn
