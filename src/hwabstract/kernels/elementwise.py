"""Elementwise kernels: every elementwise function of the Python Array API standard, plus
``where``, ``clip`` and ``astype``.

Inputs broadcast against each other (the core hands the backend operands already broadcast
to the output shape) and are cast to the compute dtype given by type promotion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import DTypeError
from .spec import KernelSpec, broadcast_shapes, check_kinds, promote, register

ANY = frozenset(dt.all_dtypes())
BOOL = frozenset(dt.dtypes_of_kinds("b"))
INTEGER = frozenset(dt.dtypes_of_kinds("iu"))
INT_OR_BOOL = frozenset(dt.dtypes_of_kinds("biu"))
REAL = frozenset(dt.dtypes_of_kinds("iuf"))
NUMERIC = frozenset(dt.dtypes_of_kinds("iufc"))
FLOATING = frozenset(dt.dtypes_of_kinds("fc"))
REAL_FLOATING = frozenset(dt.dtypes_of_kinds("f"))

_REAL_OF = {dt.complex64: dt.float32, dt.complex128: dt.float64}


def _out_dtype(rule: str, compute: DType) -> DType:
    if rule == "same":
        return compute
    if rule == "bool":
        return dt.bool_
    if rule == "real":
        return _REAL_OF.get(compute, compute)
    raise AssertionError(rule)


def _broadcast_rule(
    shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], Mapping[str, Any]]:
    target = broadcast_shapes(*shapes)
    return [target] * len(shapes), [target], attrs


def _ufunc_reference(ufunc: np.ufunc) -> Callable[..., np.ndarray]:
    def reference(*xs: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(ufunc(*xs))

    reference.__name__ = f"reference_{ufunc.__name__}"
    return reference


def elementwise(
    name: str,
    nin: int,
    kinds: frozenset[DType],
    *,
    out: str = "same",
    ufunc: np.ufunc | None = None,
    reference: Callable[..., np.ndarray] | None = None,
    int_to_float: bool = False,
    doc: str = "",
) -> KernelSpec:
    """Register an elementwise kernel with ``nin`` inputs."""

    def dtype_rule(
        operands: Sequence[Any], attrs: Mapping[str, Any]
    ) -> tuple[DType, tuple[DType, ...]]:
        compute = promote(operands, spec)
        if int_to_float and compute.kind in "biu":
            compute = dt.default_float
        check_kinds(name, compute, kinds)
        return compute, (_out_dtype(out, compute),)

    if reference is None:
        assert ufunc is not None
        reference = _ufunc_reference(ufunc)
    names = ("x",) if nin == 1 else tuple(f"x{i + 1}" for i in range(nin))
    spec = KernelSpec(
        name=name,
        category="elementwise",
        inputs=names,
        dtypes=kinds,
        dtype_rule=dtype_rule,
        shape_rule=_broadcast_rule,
        reference=reference,
        ufunc=ufunc,
        doc=doc,
    )
    return register(spec)


def _kind(x: np.ndarray) -> str:
    """The hwabstract kind of an array's dtype. Ask the dtype system, not ``x.dtype.kind``:
    the NumPy kind of the ml_dtypes floats is ``'V'`` for some (bfloat16, float8_e4m3fn)
    and ``'f'`` for others, depending on the ml_dtypes version."""
    return dt.dtype(x.dtype).kind


def _int_passthrough(ufunc: np.ufunc) -> Callable[[np.ndarray], np.ndarray]:
    """Rounding functions are the identity on integers (NumPy would return floats)."""

    def reference(x: np.ndarray) -> np.ndarray:
        if _kind(x) in "iub":
            return x.copy()
        return np.asarray(ufunc(x))

    reference.__name__ = f"reference_{ufunc.__name__}"
    return reference


def _round(x: np.ndarray) -> np.ndarray:
    kind = _kind(x)
    if kind in "iub":
        return x.copy()
    if kind == "c":
        return (np.rint(x.real) + 1j * np.rint(x.imag)).astype(x.dtype)
    return np.asarray(np.rint(x))


def _real(x: np.ndarray) -> np.ndarray:
    return np.array(np.real(x), copy=True)


def _imag(x: np.ndarray) -> np.ndarray:
    if _kind(x) != "c":
        return np.zeros_like(x)
    return np.array(np.imag(x), copy=True)


def _sign(x: np.ndarray) -> np.ndarray:
    kind = _kind(x)
    if kind == "c":
        mag = np.abs(x)
        with np.errstate(all="ignore"):
            out = np.where(mag == 0, 0, x / np.where(mag == 0, 1, mag))
        return out.astype(x.dtype)
    if kind == "f" and x.dtype.itemsize < 4:
        # ml_dtypes' sign keeps the sign of -0.0, NumPy's float16/32/64 sign gives +0.0:
        # compute the narrow floats in float32 so every float dtype agrees.
        return np.sign(x.astype(np.float32)).astype(x.dtype)
    return np.asarray(np.sign(x))


def _nextafter(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    # C99 and the Array API return x2 where x1 == x2 (so nextafter(0.0, -0.0) is -0.0);
    # NumPy's float16 loop returns x1 there.
    with np.errstate(all="ignore"):
        return np.asarray(np.where(x1 == x2, x2, np.nextafter(x1, x2)))


def _pow(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """``x1 ** x2``. NumPy raises for an integer to a negative integer power; the Array API
    leaves the value unspecified, and a kernel must not fail on data, so we define it as
    the truncated quotient ``1 / x1**-x2``: 1 for x1 == 1, +-1 for x1 == -1, else 0."""
    with np.errstate(all="ignore"):
        if _kind(x1) not in "iu":
            return np.asarray(np.power(x1, x2))
        negative = x2 < 0
        if not np.any(negative):
            return np.asarray(np.power(x1, x2))
        result = np.power(x1, np.where(negative, 0, x2).astype(x2.dtype))
        one = np.ones((), dtype=x1.dtype)
        inverse = np.where(x1 == one, one, np.zeros((), dtype=x1.dtype))
        if _kind(x1) == "i":
            odd = (x2 % 2) != 0
            inverse = np.where((x1 == -one) & odd, -one, np.where(x1 == -one, one, inverse))
        return np.asarray(np.where(negative, inverse, result)).astype(x1.dtype)


_F = "Computed per element in the compute dtype; follows IEEE 754 special values."

# -- unary ------------------------------------------------------------------------------------
elementwise("abs", 1, NUMERIC, out="real", ufunc=np.absolute, doc="Absolute value ``|x|``.")
_name: str
_uf: np.ufunc  # the loops below pair kernel names with ufuncs of any arity
for _name, _uf in [
    ("acos", np.arccos), ("acosh", np.arccosh), ("asin", np.arcsin), ("asinh", np.arcsinh),
    ("atan", np.arctan), ("atanh", np.arctanh), ("cos", np.cos), ("cosh", np.cosh),
    ("exp", np.exp), ("expm1", np.expm1), ("log", np.log), ("log1p", np.log1p),
    ("log2", np.log2), ("log10", np.log10), ("sin", np.sin), ("sinh", np.sinh),
    ("sqrt", np.sqrt), ("tan", np.tan), ("tanh", np.tanh),
]:  # fmt: skip
    elementwise(_name, 1, FLOATING, ufunc=_uf, doc=f"{_uf.__name__} of x. {_F}")
elementwise("reciprocal", 1, FLOATING, ufunc=np.reciprocal, doc="1 / x.")
elementwise("bitwise_invert", 1, INT_OR_BOOL, ufunc=np.invert, doc="Bitwise NOT (~x).")
for _name, _uf in [("ceil", np.ceil), ("floor", np.floor), ("trunc", np.trunc)]:
    elementwise(_name, 1, REAL, reference=_int_passthrough(_uf), doc=f"{_name} of x.")
elementwise("round", 1, NUMERIC, reference=_round, doc="Round half to even.")
elementwise("conj", 1, NUMERIC, ufunc=np.conjugate, doc="Complex conjugate.")
elementwise("real", 1, NUMERIC, out="real", reference=_real, doc="Real component.")
elementwise("imag", 1, NUMERIC, out="real", reference=_imag, doc="Imaginary component.")
for _name, _uf in [("isfinite", np.isfinite), ("isinf", np.isinf), ("isnan", np.isnan)]:
    elementwise(_name, 1, NUMERIC, out="bool", ufunc=_uf, doc=f"{_name} test.")
elementwise("logical_not", 1, BOOL, ufunc=np.logical_not, doc="Logical NOT.")
elementwise("negative", 1, NUMERIC, ufunc=np.negative, doc="-x.")
elementwise("positive", 1, NUMERIC, ufunc=np.positive, doc="+x.")
elementwise("sign", 1, NUMERIC, reference=_sign, doc="Sign; ``x / |x|`` for complex.")
elementwise("signbit", 1, REAL_FLOATING, out="bool", ufunc=np.signbit, doc="Sign bit set.")
elementwise("square", 1, NUMERIC, ufunc=np.square, doc="x * x.")

# -- binary -----------------------------------------------------------------------------------
elementwise("add", 2, NUMERIC, ufunc=np.add, doc="x1 + x2.")
elementwise("subtract", 2, NUMERIC, ufunc=np.subtract, doc="x1 - x2.")
elementwise("multiply", 2, NUMERIC, ufunc=np.multiply, doc="x1 * x2.")
elementwise(
    "divide",
    2,
    FLOATING,
    ufunc=np.true_divide,
    int_to_float=True,
    doc="True division x1 / x2. Integer inputs compute in the default float dtype.",
)
elementwise("floor_divide", 2, REAL, ufunc=np.floor_divide, doc="x1 // x2.")
elementwise("remainder", 2, REAL, ufunc=np.remainder, doc="x1 % x2 (sign of x2).")
elementwise(
    "pow",
    2,
    NUMERIC,
    reference=_pow,
    doc="x1 ** x2. An integer to a negative integer power is 1 / x1**-x2 truncated toward "
    "zero (1 for x1 == 1, +-1 for x1 == -1, else 0).",
)
for _name, _uf in [
    ("atan2", np.arctan2), ("hypot", np.hypot), ("copysign", np.copysign),
    ("logaddexp", np.logaddexp),
]:  # fmt: skip
    elementwise(_name, 2, REAL_FLOATING, ufunc=_uf, doc=f"{_name}(x1, x2).")
elementwise(
    "nextafter",
    2,
    REAL_FLOATING,
    reference=_nextafter,
    doc="The next representable value after x1 towards x2 (x2 itself where they are equal).",
)
elementwise("maximum", 2, REAL, ufunc=np.maximum, doc="Larger of x1, x2; NaN propagates.")
elementwise("minimum", 2, REAL, ufunc=np.minimum, doc="Smaller of x1, x2; NaN propagates.")
elementwise("equal", 2, ANY, out="bool", ufunc=np.equal, doc="x1 == x2.")
elementwise("not_equal", 2, ANY, out="bool", ufunc=np.not_equal, doc="x1 != x2.")
for _name, _uf in [
    ("greater", np.greater), ("greater_equal", np.greater_equal),
    ("less", np.less), ("less_equal", np.less_equal),
]:  # fmt: skip
    elementwise(_name, 2, REAL, out="bool", ufunc=_uf, doc=f"{_name} comparison.")
for _name, _uf in [
    ("logical_and", np.logical_and), ("logical_or", np.logical_or),
    ("logical_xor", np.logical_xor),
]:  # fmt: skip
    elementwise(_name, 2, BOOL, ufunc=_uf, doc=f"{_name}.")
for _name, _uf in [
    ("bitwise_and", np.bitwise_and), ("bitwise_or", np.bitwise_or),
    ("bitwise_xor", np.bitwise_xor),
]:  # fmt: skip
    elementwise(_name, 2, INT_OR_BOOL, ufunc=_uf, doc=f"{_name}.")
elementwise("bitwise_left_shift", 2, INTEGER, ufunc=np.left_shift, doc="x1 << x2.")
elementwise("bitwise_right_shift", 2, INTEGER, ufunc=np.right_shift, doc="x1 >> x2.")


# -- where, clip, astype ----------------------------------------------------------------------


def _where_dtype(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
    cond = operands[0]
    if hasattr(cond, "dtype"):
        is_bool = dt.dtype(cond.dtype) is dt.bool_
        got = str(cond.dtype)
    else:
        is_bool = isinstance(cond, bool)
        got = f"a Python {type(cond).__name__}"
    if not is_bool:
        raise DTypeError(f"where() needs a bool condition, got {got}; compare first, e.g. x > 0")
    compute = promote(operands, _where)
    return compute, (compute,)


_where = register(
    KernelSpec(
        name="where",
        category="elementwise",
        inputs=("condition", "x1", "x2"),
        dtypes=ANY,
        dtype_rule=_where_dtype,
        shape_rule=_broadcast_rule,
        reference=lambda c, a, b: np.where(c, a, b),
        promoted=(False, True, True),
        doc="Elements of x1 where condition is true, else of x2.",
    )
)


def _clip_dtype(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
    x = operands[0]
    compute = dt.dtype(x.dtype)
    check_kinds("clip", compute, REAL)
    for bound in operands[1:]:
        if bound is None:
            continue
        if hasattr(bound, "dtype"):
            if dt.result_type(compute, bound.dtype) != compute:
                raise DTypeError(
                    f"clip() bounds of dtype {bound.dtype} do not fit x's dtype {compute}; "
                    "cast them to x.dtype"
                )
        elif isinstance(bound, float) and compute.kind in "iu":
            raise DTypeError(f"clip() of an integer tensor needs integer bounds, got {bound}")
    return compute, (compute,)


def _clip_reference(x: np.ndarray, *bounds: np.ndarray, has_min: bool, has_max: bool) -> Any:
    it = iter(bounds)
    out = x
    if has_min:
        out = np.maximum(out, next(it))  # NaN in x or in the bound propagates
    if has_max:
        out = np.minimum(out, next(it))
    return np.array(out, dtype=x.dtype, copy=True)


register(
    KernelSpec(
        name="clip",
        category="elementwise",
        inputs=("x", "min?", "max?"),
        dtypes=REAL,
        dtype_rule=_clip_dtype,
        shape_rule=_broadcast_rule,
        reference=_clip_reference,
        attributes={"has_min": False, "has_max": False},
        doc="Clamp x to [min, max]; either bound may be omitted. The result has x's dtype.",
    )
)


def _astype_dtype(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
    return dt.dtype(operands[0].dtype), (dt.dtype(attrs["dtype"]),)


def _astype_reference(x: np.ndarray, *, dtype: DType) -> np.ndarray:
    target = dt.dtype(dtype)
    if _kind(x) == "c" and target.kind == "b":
        return np.asarray(x != 0)  # the Array API: nonzero if either component is nonzero
    if _kind(x) == "c" and target.kind != "c":
        x = x.real  # the Array API leaves this undefined; we take the real part, like NumPy
    with np.errstate(all="ignore"):
        return x.astype(target.numpy_dtype)


register(
    KernelSpec(
        name="astype",
        category="elementwise",
        inputs=("x",),
        dtypes=ANY,
        dtype_rule=_astype_dtype,
        shape_rule=lambda shapes, attrs: ([None], [shapes[0]], attrs),
        reference=_astype_reference,
        attributes={"dtype": None},
        doc="Convert to another dtype, rounding to nearest even; float to int truncates; "
        "complex to bool is true where either component is nonzero; complex to another real "
        "dtype keeps the real part.",
    )
)

__all__ = ["elementwise"]
