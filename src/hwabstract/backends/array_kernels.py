"""The standard kernel set written once, against a NumPy-compatible array namespace.

One table of kernel functions serves every backend whose arrays follow NumPy's API: the
PJRT backends (:mod:`hwabstract.backends.pjrt`, with :func:`jax_module`), the NVIDIA
backend (``hwabstract-nvidia``, with :func:`cupy_module`) and the repository's own tests
(:func:`numpy_module`, which needs no accelerator). An :class:`ArrayModule` names the
namespace and supplies what the namespaces do differently: ``erfc`` (not part of the Array
API), a matmul at the full precision of its dtype, how to ask for a stable argsort, the
gathers' out-of-range ``mode``, and whether output sizes must be static (JAX).

Each function mirrors its kernel's NumPy reference (``hwabstract.kernels``): the core has
already applied the spec's promotion and broadcasting, so a function receives arrays in the
compute dtype and returns the output in the output dtype (a tuple of outputs, in the spec's
order, for a kernel with several). 8- and 16-bit floats are computed in float32 and rounded
once, as the references do; sums, means, moments, softmax and layer norm accumulate floats
in float32 (float64 for float64); matmul asks for the full precision of its dtype (a TPU's
default for float32 is bfloat16 passes).

Every namespace function a kernel uses is looked up when :func:`kernel_function` builds the
kernel and kept in its closure, so a namespace lacking one fails at build time, with an
:class:`AttributeError` naming it, even on a machine where nothing can run. Where the Array
API standard's names and NumPy's older ones differ (``acos``/``arccos``, ``pow``/``power``,
``bitwise_left_shift``/``left_shift``, ``bitwise_invert``/``invert``, ...) the standard's
is tried first.

Sorting, indexing, cumulative, FFT and linear-algebra kernels follow their references too:

* ``sort``/``argsort`` sort stably (always: a stable order is a valid unstable one), NaNs
  last, -0.0 equal to +0.0; descending is the reverse of an ascending sort of the reversed
  input. 8- and 16-bit floats are ordered by their float32 values, as the references do
  (exact; NumPy's own comparisons of ml_dtypes arrays do not put NaNs last). ``sort``
  gathers the input's own elements, so NaN payloads and the signs of zeros survive.
* ``cumulative_sum``/``cumulative_prod`` accumulate 8- and 16-bit floats in float32 (each
  result rounded once) and prepend the identity with ``include_initial``.
* ``fft``/``rfft``/``irfft`` compute in the input's precision (complex64 in single
  precision: within the transform's error bound of the reference, not bit for bit).
* The ``linalg`` kernels compute 8- and 16-bit floats in float32 and round each result
  once; kernels with several outputs return a tuple, in the spec's order. ``cholesky``,
  ``eigh`` and ``eigvalsh`` read only the lower triangle (and the real part of the
  diagonal), as LAPACK does for the references: the Hermitian matrices it defines are
  built first, since JAX symmetrizes its input and would otherwise read the upper triangle
  too. What a kernel cannot report is left as each library has it: a matrix that is not
  positive definite (``cholesky``) or singular (``inv``, ``solve``) raises ``LinAlgError``
  in NumPy and gives NaNs or unspecified values in JAX and in CuPy (which checks only
  under ``cupyx.errstate(linalg="raise")``).
* **Out-of-range indices** (``take``, ``take_along_axis``: outside ``[-n, n)`` for an axis
  of length ``n``) are an error the reference raises, but a device cannot raise from inside
  a kernel (the Array API leaves them undefined). The table wraps the valid negative
  indices and replaces every out-of-range one by ``n``, one past the end; no module then
  reads outside the array. NumPy raises :class:`IndexError` ("index n is out of bounds").
  JAX gathers with ``mode="fill"``: the result element is the fill value (NaN for floats,
  the most negative value of a signed integer dtype, the largest of an unsigned one, True
  for bool) -- chosen over ``"clip"``, which reads a real element and hides the error.
  CuPy wraps out-of-range indices modulo the axis length: it reads the axis' first element
  (``n mod n``). Indices into an axis of length 0, all out of range, are known from the
  shapes alone: every module raises :class:`IndexError` when the kernel is traced or run.
* ``flatnonzero``'s output length, ``count``, comes from the core. JAX, which needs static
  shapes, is asked for ``size=count`` (padding with index 0, or truncating, where the data
  disagree); NumPy and CuPy (whose ``flatnonzero`` synchronizes with the device) find the
  indices and raise :class:`ValueError` unless there are ``count`` of them.

No vendor stack is imported here: :func:`jax_module` and :func:`cupy_module` import theirs
when called (a backend calls them after its probe has found the stack).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from .. import dtypes as dt

__all__ = [
    "ArrayModule",
    "cupy_module",
    "implemented",
    "jax_module",
    "kernel_function",
    "numpy_module",
]

Fn = Callable[..., Any]


@attrs.frozen
class ArrayModule:
    """A NumPy-compatible array namespace and what the kernel table needs beside it."""

    #: ``"jax"``, ``"cupy"``, ``"numpy"``: named in error messages
    name: str
    #: the namespace: ``jax.numpy``, ``cupy``, ``numpy``
    xp: Any
    #: the elementwise complementary error function, in the namespace
    erfc: Callable[[Any], Any]
    #: the matmul of two floating (or complex) arrays of one dtype at the full precision of
    #: the dtype; for 8- and 16-bit floats it may return float32 (the table rounds once).
    #: Integer matmul is the table's: it widens to 32-bit integers (64-bit for 64-bit
    #: inputs) and calls ``xp.matmul``.
    matmul: Callable[[Any, Any], Any]
    #: a stable argsort, ``(x, axis) -> indices``; None: the namespace's ``argsort`` with
    #: ``stable=True`` (NumPy 2, JAX). CuPy's sorts are always stable and take no such keyword.
    stable_argsort: Callable[[Any, int], Any] | None = None
    #: the ``mode`` given to ``take`` and ``take_along_axis`` (JAX: ``"fill"``, see the module
    #: docstring); None: no ``mode`` keyword (NumPy raises, CuPy wraps)
    gather_mode: str | None = None
    #: whether output shapes must be known when the function is traced (JAX): data-dependent
    #: sizes are then passed in (``flatnonzero(x, size=count)``)
    static_shapes: bool = False
    #: an integer to a non-negative integer power of its dtype, wrapping as NumPy does;
    #: None: the namespace's ``power`` (JAX's looks at the low 6 bits of the exponent only)
    int_power: Callable[[Any, Any], Any] | None = None


# -- dtype classification (NumPy dtypes: JAX and CuPy arrays carry them too) ----------------------

_BY_NUMPY: dict[Any, dt.DType] = {d.numpy_dtype: d for d in dt.all_dtypes()}


def _kind(x: Any) -> str:
    """``x``'s hwabstract dtype kind: b, i, u, f (bfloat16 and float8 included) or c."""
    found = _BY_NUMPY.get(x.dtype)
    return found.kind if found is not None else dt.dtype(x.dtype).kind


def _narrow(x: Any) -> bool:
    return _kind(x) == "f" and x.dtype.itemsize < 4


def _wide(x: Any) -> Any:
    """Floats narrower than 32 bits in float32; everything else as is."""
    return x.astype(np.float32) if _narrow(x) else x


def _is_int(x: Any) -> bool:
    """Integer or bool."""
    return _kind(x) in "biu"


def _accumulator(x: Any) -> Any:
    if _kind(x) == "f":
        return np.dtype(np.float64) if x.dtype.itemsize >= 8 else np.dtype(np.float32)
    return x.dtype


def _cast(x: Any, dtype: Any) -> Any:
    """``x`` in ``dtype``; ``x`` itself where it already is (``astype`` would copy: a
    whole extra pass over the data on a GPU)."""
    return x if x.dtype == dtype else x.astype(dtype)


class _Namespace:
    """One module's namespace, looked up for one kernel while it is built."""

    __slots__ = ("kernel", "module")

    def __init__(self, module: ArrayModule, kernel: str) -> None:
        self.module = module
        self.kernel = kernel

    def __call__(self, *names: str) -> Any:
        """The first of ``names`` the namespace has (the Array API name first, then older
        spellings); AttributeError naming them all if it has none."""
        xp = self.module.xp
        for name in names:
            fn = getattr(xp, name, None)
            if fn is not None:
                return fn
        tried = " nor ".join(repr(n) for n in names)
        raise AttributeError(
            f"the {self.module.name} namespace has no {tried}, which kernel {self.kernel!r} needs"
        )

    def member(self, submodule: str, name: str) -> Any:
        """``name`` from the namespace's ``submodule`` (``linalg``, ``fft``)."""
        fn = getattr(self(submodule), name, None)
        if fn is None:
            raise AttributeError(
                f"the {self.module.name} namespace has no '{submodule}.{name}', which kernel "
                f"{self.kernel!r} needs"
            )
        return fn


Builder = Callable[[_Namespace, Mapping[str, Any]], Fn]
_BUILDERS: dict[str, Builder] = {}


# -- elementwise -----------------------------------------------------------------------------------


def _float_binary(fn: Fn) -> Fn:
    def run(a: Any, b: Any) -> Any:
        out = fn(_wide(a), _wide(b))
        return out.astype(a.dtype) if out.dtype != np.bool_ else out

    return run


#: kernel -> the namespace names to try, Array API name first
_UNARY_FLOAT: dict[str, tuple[str, ...]] = {
    "acos": ("acos", "arccos"),
    "acosh": ("acosh", "arccosh"),
    "asin": ("asin", "arcsin"),
    "asinh": ("asinh", "arcsinh"),
    "atan": ("atan", "arctan"),
    "atanh": ("atanh", "arctanh"),
    **{n: (n,) for n in ("cos", "cosh", "exp", "expm1", "log", "log1p", "log2", "log10",
                         "sin", "sinh", "sqrt", "tan", "tanh", "reciprocal", "square",
                         "negative", "positive")},
    "abs": ("abs", "absolute"),
    "conj": ("conj", "conjugate"),
}  # fmt: skip
_BINARY_ARITH: dict[str, tuple[str, ...]] = {
    **{n: (n,) for n in ("add", "subtract", "multiply", "remainder", "hypot", "copysign",
                         "logaddexp", "maximum", "minimum")},
    "divide": ("divide", "true_divide"),
    "atan2": ("atan2", "arctan2"),
}  # fmt: skip
_COMPARE = ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal")
#: kernels computed by one namespace function as it is, on any dtype
_DIRECT: dict[str, tuple[str, ...]] = {
    **{n: (n,) for n in ("logical_and", "logical_or", "logical_xor", "logical_not",
                         "bitwise_and", "bitwise_or", "bitwise_xor", "where")},
    "bitwise_left_shift": ("bitwise_left_shift", "left_shift"),
    "bitwise_right_shift": ("bitwise_right_shift", "right_shift"),
    "bitwise_invert": ("bitwise_invert", "invert"),
}  # fmt: skip
_ROUNDING: dict[str, tuple[str, ...]] = {
    "round": ("round", "around"),
    "ceil": ("ceil",),
    "floor": ("floor",),
    "trunc": ("trunc",),
}
_CLASSIFY = ("isfinite", "isinf", "isnan", "signbit")


_COMPONENT = {np.dtype(np.complex64): np.dtype(np.float32),
              np.dtype(np.complex128): np.dtype(np.float64)}  # fmt: skip


def _unary_float(names: tuple[str, ...]) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn = ns(*names)
        identity_on_ints = names[0] == "positive"
        magnitude = names[0] == "abs"

        def run(x: Any) -> Any:
            if identity_on_ints and _is_int(x):
                return x
            if magnitude and _kind(x) == "c":  # |z| is real
                return fn(x).astype(_COMPONENT[x.dtype])
            return _cast(fn(_wide(x)), x.dtype)

        return run

    return build


def _binary_arith(names: tuple[str, ...]) -> Builder:
    return lambda ns, attrs: _float_binary(ns(*names))


def _compare(name: str) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn = ns(name)
        return lambda a, b: fn(_wide(a), _wide(b))

    return build


def _direct(names: tuple[str, ...]) -> Builder:
    return lambda ns, attrs: ns(*names)


def _rounding(names: tuple[str, ...]) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn = ns(*names)
        return lambda x: x if _is_int(x) else fn(_wide(x)).astype(x.dtype)

    return build


def _classify(name: str) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn = ns(name)
        return lambda x: fn(_wide(x)) if not _is_int(x) else fn(x)

    return build


def _sign(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    abs_, where, sign = ns("abs", "absolute"), ns("where"), ns("sign")

    def run(x: Any) -> Any:
        kind = _kind(x)
        if kind == "c":
            mag = abs_(x)
            return _cast(where(mag == 0, 0, x / where(mag == 0, 1, mag)), x.dtype)
        if kind in "biu":
            return sign(x)
        w = _wide(x)
        # +0.0 for zeros of either sign, NaN for NaN, as NumPy's float32 sign
        return _cast(where(w > 0, 1.0, where(w < 0, -1.0, where(w == 0, 0.0, w))), x.dtype)

    return run


def _real(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    real = ns("real")
    return lambda x: real(x) if _kind(x) == "c" else x


def _imag(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    imag, zeros_like = ns("imag"), ns("zeros_like")
    return lambda x: imag(x) if _kind(x) == "c" else zeros_like(x)


def _nextafter(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    where, nextafter = ns("where"), ns("nextafter")
    return lambda a, b: where(a == b, b, nextafter(a, b))


def _pow(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    power, where, ones, zeros = ns("pow", "power"), ns("where"), ns("ones"), ns("zeros")
    floating = _float_binary(power)
    int_power = ns.module.int_power or power

    def run(a: Any, b: Any) -> Any:
        kind = _kind(a)
        if kind not in "iu":
            return floating(a, b)
        # integer powers: a negative exponent gives 1/a**|b| truncated (0 unless |a| == 1)
        negative = b < 0
        result = int_power(a, where(negative, 0, b))
        one = ones((), a.dtype)
        inverse = where(a == one, one, zeros((), a.dtype))
        if kind == "i":
            odd = (b % 2) != 0
            inverse = where((a == -one) & odd, -one, where(a == -one, one, inverse))
        return _cast(where(negative, inverse, result), a.dtype)

    return run


def _floor_divide(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn = ns("floor_divide")
    floating = _float_binary(fn)
    return lambda a, b: fn(a, b) if _is_int(a) else floating(a, b)


_BUILDERS.update({name: _unary_float(names) for name, names in _UNARY_FLOAT.items()})
_BUILDERS.update({name: _binary_arith(names) for name, names in _BINARY_ARITH.items()})
_BUILDERS.update({name: _compare(name) for name in _COMPARE})
_BUILDERS.update({name: _direct(names) for name, names in _DIRECT.items()})
_BUILDERS.update({name: _rounding(names) for name, names in _ROUNDING.items()})
_BUILDERS.update({name: _classify(name) for name in _CLASSIFY})
_BUILDERS.update(
    {
        "sign": _sign,
        "real": _real,
        "imag": _imag,
        "nextafter": _nextafter,
        "pow": _pow,
        "floor_divide": _floor_divide,
    }
)


# -- reductions ------------------------------------------------------------------------------------


def _axes(attrs: Mapping[str, Any]) -> tuple[tuple[int, ...], bool]:
    return tuple(attrs["axes"]), bool(attrs["keepdims"])


def _sum_prod(name: str) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn = ns(name)
        axes, keepdims = _axes(attrs)
        target = dt.dtype(attrs["dtype"])
        acc = target.numpy_dtype
        if target.kind == "f":
            acc = np.dtype(np.float64) if target.itemsize >= 8 else np.dtype(np.float32)
        out = target.numpy_dtype
        # accumulate in ``acc`` inside the reduction (no converted copy of the input)
        return lambda x: _cast(fn(x, axis=axes, keepdims=keepdims, dtype=acc), out)

    return build


def _plain_reduction(names: tuple[str, ...]) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn = ns(*names)
        axes, keepdims = _axes(attrs)
        return lambda x: fn(x, axis=axes, keepdims=keepdims)

    return build


def _mean(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    sum_ = ns("sum")
    axes, keepdims = _axes(attrs)

    def run(x: Any) -> Any:
        count = math.prod(x.shape[a] for a in axes)
        c = _cast(x, _accumulator(x))
        return _cast(sum_(c, axis=axes, keepdims=keepdims) / count, x.dtype)

    return run


def _moment(std: bool) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        sum_, square, sqrt = ns("sum"), ns("square"), ns("sqrt")
        axes, keepdims = _axes(attrs)
        correction = float(attrs["correction"])

        def run(x: Any) -> Any:
            n = math.prod(x.shape[a] for a in axes)
            c = _cast(x, _accumulator(x))
            mu = sum_(c, axis=axes, keepdims=True) / max(n, 1)
            squares = sum_(square(c - mu), axis=axes, keepdims=keepdims)
            v = squares / (n - correction) if n - correction > 0 else squares * math.nan
            return _cast(sqrt(v) if std else v, x.dtype)

        return run

    return build


def _arg(name: str) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn, zeros = ns(name), ns("zeros")
        axes, keepdims = _axes(attrs)

        def run(x: Any) -> Any:
            if x.ndim == 0:
                return zeros((), np.int64)
            if len(axes) == x.ndim and x.ndim != 1:
                flat = fn(x.reshape(-1)).astype(np.int64)
                return flat.reshape((1,) * x.ndim) if keepdims else flat
            return fn(x, axis=axes[0], keepdims=keepdims).astype(np.int64)

        return run

    return build


_BUILDERS.update(
    {
        "sum": _sum_prod("sum"),
        "prod": _sum_prod("prod"),
        "min": _plain_reduction(("min", "amin")),
        "max": _plain_reduction(("max", "amax")),
        "any": _plain_reduction(("any",)),
        "all": _plain_reduction(("all",)),
        "mean": _mean,
        "var": _moment(std=False),
        "std": _moment(std=True),
        "argmin": _arg("argmin"),
        "argmax": _arg("argmax"),
    }
)


# -- nn, linalg, clip, astype ----------------------------------------------------------------------


def _softmax(log: bool) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        max_, sum_, exp, log_ = ns("max", "amax"), ns("sum"), ns("exp"), ns("log")
        axis = int(attrs["axis"])

        def run(x: Any) -> Any:
            c = _cast(x, _accumulator(x))
            shifted = c - max_(c, axis=axis, keepdims=True) if c.size else c
            if log:
                out = shifted - log_(sum_(exp(shifted), axis=axis, keepdims=True))
            else:
                e = exp(shifted)
                out = e / sum_(e, axis=axis, keepdims=True)
            return _cast(out, x.dtype)

        return run

    return build


def _layer_norm(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    mean, square, sqrt = ns("mean"), ns("square"), ns("sqrt")
    axes = tuple(attrs["axes"]) if "axes" in attrs else (attrs["axis"],)
    eps = float(attrs["eps"])
    has_weight, has_bias = bool(attrs.get("has_weight")), bool(attrs.get("has_bias"))

    def run(x: Any, *params: Any) -> Any:
        c = _cast(x, _accumulator(x))
        mu = mean(c, axis=axes, keepdims=True)
        var = mean(square(c - mu), axis=axes, keepdims=True)
        y = (c - mu) / sqrt(var + eps)
        it = iter(params)
        if has_weight:
            y = y * next(it).astype(c.dtype)
        if has_bias:
            y = y + next(it).astype(c.dtype)
        return _cast(y, x.dtype)

    return run


def _gelu(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    exp, where, erfc = ns("exp"), ns("where"), ns.module.erfc
    tanh = str(attrs.get("approximate", "none")) == "tanh"

    def run(x: Any) -> Any:
        w = x.astype(np.float64 if x.dtype.itemsize >= 8 else np.float32)
        if tanh:
            # x * sigmoid(2 * inner): no cancellation for large negative x
            inner = math.sqrt(2.0 / math.pi) * (w + 0.044715 * w**3)
            y = w / (1.0 + exp(-2.0 * inner))
        else:
            y = 0.5 * w * erfc(-w / math.sqrt(2.0))
        return _cast(where(w == -math.inf, -0.0, y), x.dtype)

    return run


def _silu(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    exp, where = ns("exp"), ns("where")

    def run(x: Any) -> Any:
        c = _wide(x)
        return _cast(where(c == -math.inf, -0.0, c / (1.0 + exp(-c))), x.dtype)

    return run


def _relu(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    where, zeros = ns("where"), ns("zeros")

    def run(x: Any) -> Any:
        zero = zeros((), x.dtype)
        return _cast(where(x < zero, zero, x), x.dtype)  # NaN and -0.0 kept, as the spec says

    return run


def _matmul(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    floating, integer = ns.module.matmul, ns("matmul")

    def run(a: Any, b: Any) -> Any:
        kind = _kind(a)
        if kind in "fc":
            return _cast(floating(a, b), a.dtype)
        # Accumulated in 32 bits, or 64 for 64-bit inputs: cast back to the inputs' dtype,
        # the sum is the same modulo its width either way, and JAX without x64 has no
        # 64-bit integers (asking for them warns and truncates).
        if a.dtype.itemsize == 8:
            wide = np.int64 if kind == "i" else np.uint64
        else:
            wide = np.int32 if kind == "i" else np.uint32
        return _cast(integer(a.astype(wide), b.astype(wide)), a.dtype)

    return run


def _clip(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    maximum, minimum = ns("maximum"), ns("minimum")
    has_min, has_max = bool(attrs.get("has_min")), bool(attrs.get("has_max"))

    def run(x: Any, *bounds: Any) -> Any:
        it = iter(bounds)
        out = x
        if has_min:
            out = maximum(out, next(it))
        if has_max:
            out = minimum(out, next(it))
        return out.astype(x.dtype)

    return run


def _astype(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    real = ns("real")
    target = dt.dtype(attrs["dtype"])
    to_complex, out = target.kind == "c", target.numpy_dtype

    def run(x: Any) -> Any:
        if _kind(x) == "c" and not to_complex:
            x = real(x)
        return x.astype(out)

    return run


_BUILDERS.update(
    {
        "softmax": _softmax(log=False),
        "log_softmax": _softmax(log=True),
        "layer_norm": _layer_norm,
        "gelu": _gelu,
        "silu": _silu,
        "relu": _relu,
        "matmul": _matmul,
        "clip": _clip,
        "astype": _astype,
    }
)


# -- sorting, indexing, cumulative -----------------------------------------------------------------


def _stable_argsort(ns: _Namespace) -> Callable[[Any, int], Any]:
    given = ns.module.stable_argsort
    if given is not None:
        return given
    argsort = ns("argsort")
    return lambda x, axis: argsort(x, axis=axis, stable=True)


def _argsort_along(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    """The stable argsort of the spec (ascending, or the reverse of an ascending sort of the
    reversed input), on float32 keys for 8- and 16-bit floats."""
    argsort, flip = _stable_argsort(ns), ns("flip")
    axis, descending = int(attrs["axis"]), bool(attrs["descending"])

    def run(x: Any) -> Any:
        keys = _wide(x)
        if not descending:
            return argsort(keys, axis)
        backwards = flip(argsort(flip(keys, axis=axis), axis), axis=axis)
        return (x.shape[axis] - 1) - backwards

    return run


def _argsort(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    order = _argsort_along(ns, attrs)
    return lambda x: order(x).astype(np.int64)


def _sort(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    order, take_along = _argsort_along(ns, attrs), ns("take_along_axis")
    axis = int(attrs["axis"])
    return lambda x: take_along(x, order(x), axis=axis)  # x's own elements, bit for bit


def _searchsorted(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn = ns("searchsorted")
    side = str(attrs["side"])
    return lambda x1, x2: fn(_wide(x1), _wide(x2), side=side).astype(np.int64)


def _gather_indices(ns: _Namespace) -> Callable[[Any, int], Any]:
    """``(indices, n) ->`` the indices into an axis of length ``n``: negative ones counted
    from the end, every one outside ``[-n, n)`` replaced by ``n`` (module docstring). int32
    unless the indices or the axis need int64 (then a JAX launch runs with x64 already)."""
    where, minimum = ns("where"), ns("minimum")

    def run(idx: Any, n: int) -> Any:
        size = idx.dtype.itemsize
        wide = np.int64 if size == 8 or n >= 2**31 - 1 else np.int32
        if _kind(idx) == "u":  # never negative; its values may not fit ``wide``: clamp first
            if n <= np.iinfo(idx.dtype).max:
                idx = minimum(idx, n)
            return idx.astype(wide)
        idx = idx.astype(wide)
        idx = where(idx < 0, idx + n, idx)
        return where((idx >= 0) & (idx < n), idx, n)

    return run


def _gather(name: str) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn, indices = ns(name), _gather_indices(ns)
        axis = int(attrs["axis"])
        mode = ns.module.gather_mode
        keywords = {"mode": mode} if mode is not None else {}

        def run(x: Any, idx: Any) -> Any:
            n = x.shape[axis]
            if not n and idx.size:  # (shapes are known on the host: said, not filled)
                raise IndexError(f"{name}(): an index into an axis of length 0 is out of bounds")
            return fn(x, indices(idx, n), axis=axis, **keywords)

        return run

    return build


def _flatnonzero(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn = ns("flatnonzero")
    count = attrs["count"]
    static = ns.module.static_shapes

    def run(x: Any) -> Any:
        if static:
            return fn(_wide(x), size=count).astype(np.int64)
        found = fn(_wide(x))
        if found.shape[0] != count:
            raise ValueError(
                f"flatnonzero(): count is {count} but the input has {found.shape[0]} nonzero "
                "elements"
            )
        return found.astype(np.int64)

    return run


def _cumulative(name: str, identity: int) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn, concatenate, full = ns(name), ns("concatenate"), ns("full")
        axis, initial = int(attrs["axis"]), bool(attrs["include_initial"])
        given = attrs.get("dtype")
        target = None if given is None else dt.dtype(given).numpy_dtype

        def run(x: Any) -> Any:
            out = x.dtype if target is None else target
            acc = np.dtype(np.float32) if _kind(x) == "f" and out.itemsize < 4 else out
            result = fn(x.astype(acc), axis=axis).astype(out)
            if not initial:
                return result
            pad = list(result.shape)
            pad[axis] = 1
            return concatenate([full(tuple(pad), identity, out), result], axis=axis)

        return run

    return build


_BUILDERS.update(
    {
        "sort": _sort,
        "argsort": _argsort,
        "searchsorted": _searchsorted,
        "take": _gather("take"),
        "take_along_axis": _gather("take_along_axis"),
        "flatnonzero": _flatnonzero,
        "cumulative_sum": _cumulative("cumsum", 0),
        "cumulative_prod": _cumulative("cumprod", 1),
    }
)


# -- fft -------------------------------------------------------------------------------------------

_COMPLEX_OF = {np.dtype(np.float32): np.dtype(np.complex64),
               np.dtype(np.float64): np.dtype(np.complex128)}  # fmt: skip


def _fft(kind: str) -> Builder:
    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        name = "ifft" if kind == "fft" and attrs.get("inverse") else kind
        fn = ns.member("fft", name)
        axis, n, norm = int(attrs["axis"]), attrs["n"], str(attrs["norm"])
        out_of = {"fft": lambda d: d, "rfft": _COMPLEX_OF.__getitem__,
                  "irfft": _COMPONENT.__getitem__}[kind]  # fmt: skip
        return lambda x: fn(x, n=n, axis=axis, norm=norm).astype(out_of(x.dtype))

    return build


_BUILDERS.update({"fft": _fft("fft"), "rfft": _fft("rfft"), "irfft": _fft("irfft")})


# -- linalg ----------------------------------------------------------------------------------------


def _real_dtype(x: Any) -> Any:
    """The dtype of ``x``'s real components (``x``'s own for real dtypes)."""
    return _COMPONENT.get(x.dtype, x.dtype)


def _lower_hermitian(ns: _Namespace) -> Fn:
    """``w ->`` the Hermitian matrices ``w``'s lower triangle defines (the real part of its
    diagonal): what LAPACK reads for cholesky and eigh, whatever the upper triangle holds."""
    tri, where, conj, real, swapaxes = (
        ns("tri"), ns("where"), ns("conj", "conjugate"), ns("real"), ns("swapaxes")
    )  # fmt: skip

    def run(w: Any) -> Any:
        m = w.shape[-1]
        strict = tri(m, m, -1, dtype=bool)
        diagonal = tri(m, m, 0, dtype=bool) & ~strict
        low = where(strict, w, 0)
        return low + conj(swapaxes(low, -1, -2)) + where(diagonal, real(w), 0)

    return run


def _cholesky(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    cholesky, hermitian = ns.member("linalg", "cholesky"), _lower_hermitian(ns)
    conj, swapaxes = ns("conj", "conjugate"), ns("swapaxes")
    upper = bool(attrs.get("upper", False))

    def run(x: Any) -> Any:
        lower = cholesky(hermitian(_wide(x)))
        return _cast((conj(swapaxes(lower, -1, -2)) if upper else lower), x.dtype)

    return run


def _same_dtype(name: str) -> Builder:
    """A linalg kernel with one output in the input's dtype."""

    def build(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
        fn = ns.member("linalg", name)
        return lambda x: fn(_wide(x)).astype(x.dtype)

    return build


def _slogdet(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn = ns.member("linalg", "slogdet")

    def run(x: Any) -> tuple[Any, Any]:
        sign, logabs = fn(_wide(x))
        return sign.astype(x.dtype), logabs.astype(_real_dtype(x))

    return run


def _solve(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn = ns.member("linalg", "solve")
    return lambda a, b: fn(_wide(a), _wide(b)).astype(a.dtype)


def _qr(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn = ns.member("linalg", "qr")
    mode = str(attrs.get("mode", "reduced"))

    def run(x: Any) -> tuple[Any, Any]:
        q, r = fn(_wide(x), mode=mode)
        return q.astype(x.dtype), r.astype(x.dtype)

    return run


def _eigh(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn, hermitian = ns.member("linalg", "eigh"), _lower_hermitian(ns)

    def run(x: Any) -> tuple[Any, Any]:
        values, vectors = fn(hermitian(_wide(x)))
        return values.astype(_real_dtype(x)), vectors.astype(x.dtype)

    return run


def _eigvalsh(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn, hermitian = ns.member("linalg", "eigvalsh"), _lower_hermitian(ns)
    return lambda x: fn(hermitian(_wide(x))).astype(_real_dtype(x))


def _svd(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn = ns.member("linalg", "svd")
    full = bool(attrs.get("full_matrices", True))

    def run(x: Any) -> tuple[Any, Any, Any]:
        u, s, vh = fn(_wide(x), full_matrices=full)
        return u.astype(x.dtype), s.astype(_real_dtype(x)), vh.astype(x.dtype)

    return run


def _svdvals(ns: _Namespace, attrs: Mapping[str, Any]) -> Fn:
    fn = ns.member("linalg", "svd")  # (CuPy has no svdvals)
    return lambda x: fn(_wide(x), compute_uv=False).astype(_real_dtype(x))


_BUILDERS.update(
    {
        "cholesky": _cholesky,
        "inv": _same_dtype("inv"),
        "det": _same_dtype("det"),
        "slogdet": _slogdet,
        "solve": _solve,
        "qr": _qr,
        "eigh": _eigh,
        "eigvalsh": _eigvalsh,
        "svd": _svd,
        "svdvals": _svdvals,
    }
)


# -- the public entry points -----------------------------------------------------------------------


def kernel_function(module: ArrayModule, name: str, attrs: Mapping[str, Any]) -> Fn:
    """The function computing kernel ``name`` with the (normalized) ``attrs`` in
    ``module``'s namespace: pure, from arrays in the compute dtype (promoted and broadcast
    by the core) to the output in the output dtype -- for a kernel with several outputs
    (``slogdet``, ``qr``, ``eigh``, ``svd``), a tuple of them in the spec's order.

    :class:`KeyError` if the table has no such kernel; :class:`AttributeError` naming the
    function if the namespace lacks one the kernel uses (raised here, not when called).
    """
    build = _BUILDERS.get(name)
    if build is None:
        raise KeyError(
            f"kernel {name!r} is not implemented by the array-module kernel table "
            f"(module {module.name!r})"
        )
    return build(_Namespace(module, name), attrs)


def implemented(module: ArrayModule) -> frozenset[str]:
    """The kernel names :func:`kernel_function` accepts for ``module``: every non-composite
    standard kernel (one table serves all modules; a namespace lacking a function the table
    uses still fails when the kernel is built)."""
    return frozenset(_BUILDERS)


def _widening_matmul(matmul: Fn) -> Callable[[Any, Any], Any]:
    """``matmul`` with 8- and 16-bit floats widened to float32 first (the result stays
    float32: the table rounds it once)."""

    def run(a: Any, b: Any) -> Any:
        if _narrow(a):
            return matmul(a.astype(np.float32), b.astype(np.float32))
        return matmul(a, b)

    return run


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _numpy_erfc(x: Any) -> Any:
    """erfc without SciPy: each element through :func:`math.erfc` (in double precision,
    then rounded to ``x``'s dtype). Slow, but exact enough to test against."""
    return _cast(np.asarray(_ERFC(x)), x.dtype)


@functools.cache
def numpy_module() -> ArrayModule:
    """NumPy (with ml_dtypes' bfloat16 and float8 arrays): the kernel table on the host,
    for tests."""
    return ArrayModule("numpy", np, _numpy_erfc, _widening_matmul(np.matmul))


@functools.cache
def jax_module() -> ArrayModule:
    """``jax.numpy``, for the PJRT backends; matmul at ``Precision.HIGHEST``, 8- and
    16-bit floats accumulated in float32; gathers in ``mode="fill"``, ``flatnonzero`` with a
    static size. Imports jax."""
    import jax.numpy as jnp
    import jax.scipy.special
    from jax import lax

    highest = lax.Precision.HIGHEST

    def matmul(a: Any, b: Any) -> Any:
        prefer = jnp.float32 if _narrow(a) else None
        return jnp.matmul(a, b, precision=highest, preferred_element_type=prefer)

    def int_power(a: Any, b: Any) -> Any:
        # jnp.power multiplies for the low 6 bits of an integer exponent only (a larger one
        # "would overflow"), so 3 ** 100 in int32 is not NumPy's wrapped product. Square and
        # multiply over every bit of the exponent instead: XLA fuses the loop into one pass.
        shape = jnp.broadcast_shapes(a.shape, b.shape)
        base, exponent = jnp.broadcast_to(a, shape), jnp.broadcast_to(b, shape)
        acc = jnp.ones(shape, a.dtype)
        for _ in range(jnp.iinfo(b.dtype).bits):
            acc = jnp.where((exponent & 1) == 1, acc * base, acc)
            base = base * base
            exponent = exponent >> 1
        return acc

    return ArrayModule(
        "jax",
        jnp,
        jax.scipy.special.erfc,
        matmul,
        gather_mode="fill",
        static_shapes=True,
        int_power=int_power,
    )


@functools.cache
def cupy_module() -> ArrayModule:
    """CuPy, for the NVIDIA backend; erfc from ``cupyx.scipy.special``. Imports cupy
    (building kernels needs no GPU; running them does)."""
    import cupy
    from cupyx.scipy.special import erfc

    argsort = cupy.argsort

    def stable_argsort(x: Any, axis: int) -> Any:
        return argsort(x, axis=axis)  # (CuPy's sorts are always stable: no stable= keyword)

    return ArrayModule(
        "cupy", cupy, erfc, _widening_matmul(cupy.matmul), stable_argsort=stable_argsort
    )
