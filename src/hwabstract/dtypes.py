"""The dtype system: every element type hwabstract knows, and the rules for combining them.

Wherever the SDK takes a dtype it accepts an :class:`DType`, a NumPy dtype (or scalar type),
or the dtype's name (``"bfloat16"``); :func:`dtype` does that conversion.

Type promotion follows the Python Array API standard inside each kind (bool, signed,
unsigned, real floating, complex floating). Where the standard leaves a combination
undefined, we follow JAX and PyTorch rather than NumPy, because those are the libraries
accelerator users come from:

* integer or bool combined with a floating dtype gives that floating dtype;
* ``bfloat16`` with ``float16`` gives ``float32``;
* a float8 dtype combined with a wider float gives the wider float; two *different* float8
  dtypes do not combine (cast one of them explicitly);
* ``uint64`` combined with a signed integer has no integer type wide enough and is an error.

Python scalars are "weak": ``x + 1`` keeps ``x``'s dtype. See :func:`result_type`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import ml_dtypes
import numpy as np

from .errors import DTypeError

__all__ = [
    "DType",
    "all_dtypes",
    "bfloat16",
    "bool_",
    "can_cast",
    "complex64",
    "complex128",
    "default_float",
    "default_int",
    "dtype",
    "finfo",
    "float8_e4m3fn",
    "float8_e5m2",
    "float16",
    "float32",
    "float64",
    "iinfo",
    "int8",
    "int16",
    "int32",
    "int64",
    "is_kind",
    "isdtype",
    "result_type",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
]


@attrs.frozen(eq=False, repr=False)
class DType:
    """An element type.

    ``kind`` is one of ``"b"`` (bool), ``"i"`` (signed integer), ``"u"`` (unsigned integer),
    ``"f"`` (real floating) or ``"c"`` (complex floating). ``bits`` is the element width.
    DTypes are singletons: compare them with ``==`` or ``is``.
    """

    name: str
    kind: str
    bits: int
    numpy_dtype: np.dtype[Any]

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self.bits // 8

    @property
    def is_floating(self) -> bool:
        """True for real and complex floating dtypes."""
        return self.kind in "fc"

    @property
    def is_complex(self) -> bool:
        return self.kind == "c"

    @property
    def is_integer(self) -> bool:
        return self.kind in "iu"

    @property
    def is_bool(self) -> bool:
        return self.kind == "b"

    @property
    def is_float8(self) -> bool:
        return self.kind == "f" and self.bits == 8

    def __repr__(self) -> str:
        return f"hwabstract.{self.name}"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DType):
            return self is other
        try:
            return dtype(other) is self  # type: ignore[arg-type]
        except (DTypeError, TypeError):
            return False

    # Identity hash (DTypes are singletons), computed in C: dtypes are hashed in every
    # dispatch-cache lookup, where a Python-level __hash__ was a measurable share of the
    # per-call cost. As with NumPy dtypes, ``==`` also accepts names, but a name is not a
    # dict key for a DType: convert with hwabstract.dtypes.dtype() first.
    __hash__ = object.__hash__

    def __reduce__(self) -> tuple[Any, ...]:
        return (dtype, (self.name,))


def _make(name: str, kind: str, bits: int, np_dtype: Any) -> DType:
    return DType(name, kind, bits, np.dtype(np_dtype))


bool_ = _make("bool", "b", 8, np.bool_)
int8 = _make("int8", "i", 8, np.int8)
int16 = _make("int16", "i", 16, np.int16)
int32 = _make("int32", "i", 32, np.int32)
int64 = _make("int64", "i", 64, np.int64)
uint8 = _make("uint8", "u", 8, np.uint8)
uint16 = _make("uint16", "u", 16, np.uint16)
uint32 = _make("uint32", "u", 32, np.uint32)
uint64 = _make("uint64", "u", 64, np.uint64)
float8_e4m3fn = _make("float8_e4m3fn", "f", 8, ml_dtypes.float8_e4m3fn)
float8_e5m2 = _make("float8_e5m2", "f", 8, ml_dtypes.float8_e5m2)
bfloat16 = _make("bfloat16", "f", 16, ml_dtypes.bfloat16)
float16 = _make("float16", "f", 16, np.float16)
float32 = _make("float32", "f", 32, np.float32)
float64 = _make("float64", "f", 64, np.float64)
complex64 = _make("complex64", "c", 64, np.complex64)
complex128 = _make("complex128", "c", 128, np.complex128)

_ALL: tuple[DType, ...] = (
    bool_, int8, int16, int32, int64, uint8, uint16, uint32, uint64,
    float8_e4m3fn, float8_e5m2, bfloat16, float16, float32, float64, complex64, complex128,
)  # fmt: skip
_BY_NAME: dict[str, DType] = {d.name: d for d in _ALL}
_BY_NAME["bool_"] = bool_
_BY_NUMPY: dict[np.dtype[Any], DType] = {d.numpy_dtype: d for d in _ALL}

#: The dtype a Python ``float`` becomes when nothing else decides. float32, not NumPy's
#: float64, because most accelerators have no native float64.
default_float = float32
#: The dtype a Python ``int`` becomes when nothing else decides.
default_int = int64
default_complex = complex64


def all_dtypes() -> tuple[DType, ...]:
    """Every dtype hwabstract knows, in a stable order."""
    return _ALL


def dtype(spec: DType | str | np.dtype[Any] | type) -> DType:
    """Convert a dtype given as an :class:`DType`, a name, or a NumPy dtype / scalar type."""
    if isinstance(spec, DType):
        return spec
    if spec is None:  # np.dtype(None) would be float64: never a silent default here
        raise DTypeError(
            "dtype None is not a dtype; pass one of: " + ", ".join(d.name for d in _ALL)
        )
    if isinstance(spec, str):
        found = _BY_NAME.get(spec)
        if found is not None:
            return found
    if spec is bool:
        return bool_
    if spec is int:
        return default_int
    if spec is float:
        return default_float
    if spec is complex:
        return default_complex
    try:
        npd = np.dtype(spec)
    except (TypeError, ValueError):
        npd = None
    if npd is not None:
        found = _BY_NUMPY.get(npd)
        if found is not None:
            return found
    names = ", ".join(d.name for d in _ALL)
    raise DTypeError(f"unknown dtype {spec!r}; use one of: {names}")


def is_kind(dt: DType, kinds: str) -> bool:
    """True if ``dt.kind`` is one of the letters in ``kinds``."""
    return dt.kind in kinds


# --- promotion -------------------------------------------------------------------------------

_SIGNED = (int8, int16, int32, int64)
_UNSIGNED = (uint8, uint16, uint32, uint64)
_FLOAT_LADDER = {16: float16, 32: float32, 64: float64}
_COMPLEX_FOR_BITS = {16: complex64, 32: complex64, 64: complex128}


def _promote_pair(a: DType, b: DType) -> DType:
    if a is b:
        return a
    ka, kb = a.kind, b.kind
    if ka == "b":
        return b
    if kb == "b":
        return a
    if ka in "iu" and kb in "iu":
        if ka == kb:
            return a if a.bits >= b.bits else b
        s, u = (a, b) if ka == "i" else (b, a)
        if u.bits < s.bits:
            return s
        if u.bits == 64:
            raise DTypeError(
                f"cannot combine {a} and {b}: no integer dtype holds both ranges. "
                "Cast one operand explicitly, e.g. x.astype(hwabstract.int64)."
            )
        return _SIGNED[_SIGNED.index(s) + max(0, _UNSIGNED.index(u) - _SIGNED.index(s) + 1)]
    if ka in "iu":
        return b
    if kb in "iu":
        return a
    # both floating (real or complex)
    if ka == "c" or kb == "c":
        bits = max(_real_bits(a), _real_bits(b))
        return _COMPLEX_FOR_BITS[bits]
    if a.is_float8 and b.is_float8:
        raise DTypeError(
            f"cannot combine {a} and {b}: the float8 formats do not promote to each other. "
            "Cast one operand explicitly with astype."
        )
    if a.is_float8:
        return b
    if b.is_float8:
        return a
    if a.bits == b.bits:  # bfloat16 with float16
        return float32
    return a if a.bits > b.bits else b


def _real_bits(d: DType) -> int:
    return d.bits // 2 if d.kind == "c" else d.bits


def result_type(*operands: Any) -> DType:
    """The dtype the Array API rules (with the extensions above) give ``operands``.

    Operands may be dtypes, tensors (anything with a ``dtype``) or Python scalars. Scalars
    are weak: they take the dtype of the other operands where the kinds allow it.
    """
    strong: list[DType] = []
    weak: list[type] = []
    for op in operands:
        if isinstance(op, (bool, int, float, complex)) and not isinstance(op, np.generic):
            weak.append(type(op))
        elif isinstance(op, DType):
            strong.append(op)
        elif isinstance(op, (str, type, np.dtype)):
            # before the hasattr test: NumPy scalar *types* have a class attribute `dtype`
            strong.append(dtype(op))
        elif hasattr(op, "dtype"):
            strong.append(dtype(op.dtype))
        else:
            strong.append(dtype(op))
    if not strong:
        if not weak:
            raise DTypeError("result_type() needs at least one operand")
        # all scalars: the widest kind wins
        order = [bool, int, float, complex]
        top = max(weak, key=order.index)
        return dtype(top)
    result = strong[0]
    for d in strong[1:]:
        result = _promote_pair(result, d)
    for w in weak:
        result = _absorb_scalar(result, w)
    return result


def _absorb_scalar(d: DType, scalar_type: type) -> DType:
    if scalar_type is bool:
        return d
    if scalar_type is int:
        return default_int if d.kind == "b" else d
    if scalar_type is float:
        return d if d.kind in "fc" else default_float
    # complex
    if d.kind == "c":
        return d
    if d.kind == "f":
        return complex128 if d.bits == 64 else complex64
    return default_complex


def check_scalar_fits(value: Any, dt: DType) -> None:
    """Raise :class:`DTypeError` if the Python scalar ``value`` cannot be held by ``dt``."""
    if dt.kind in "iu" and isinstance(value, int) and not isinstance(value, bool):
        info = np.iinfo(dt.numpy_dtype)
        if not info.min <= value <= info.max:
            raise DTypeError(
                f"Python integer {value} is out of range for {dt} "
                f"[{info.min}, {info.max}]; cast the tensor to a wider dtype first."
            )
    if dt.kind in "iub" and isinstance(value, complex):
        raise DTypeError(f"cannot use complex scalar {value!r} with a {dt} tensor")


def dtypes_of_kinds(kinds: str, among: Iterable[DType] | None = None) -> tuple[DType, ...]:
    """The dtypes whose kind is in ``kinds``, optionally restricted to ``among``."""
    pool = _ALL if among is None else tuple(among)
    return tuple(d for d in pool if d.kind in kinds)


# --- the Array API's data type functions ---------------------------------------------------------

_KIND_GROUPS = {
    "bool": "b",
    "signed integer": "i",
    "unsigned integer": "u",
    "integral": "iu",
    "real floating": "f",
    "complex floating": "c",
    "numeric": "iufc",
}


def isdtype(dtype_: Any, kind: Any) -> bool:
    """Whether ``dtype_`` is of ``kind``: a dtype, one of the Array API's kind names
    ("bool", "signed integer", "unsigned integer", "integral", "real floating",
    "complex floating", "numeric"), or a tuple of those. bfloat16 and the float8 dtypes
    count as "real floating"."""
    d = dtype(dtype_)
    if isinstance(kind, tuple):
        return any(isdtype(d, k) for k in kind)
    if isinstance(kind, str) and kind in _KIND_GROUPS:
        return d.kind in _KIND_GROUPS[kind]
    if isinstance(kind, str) and kind not in _BY_NAME:
        raise DTypeError(
            f"isdtype() kind {kind!r} is neither a dtype nor one of {', '.join(_KIND_GROUPS)}"
        )
    return d is dtype(kind)


@attrs.frozen
class finfo_object:
    """Machine limits of a floating dtype (complex: of its real part)."""

    bits: int
    eps: float
    max: float
    min: float
    smallest_normal: float
    dtype: DType


@attrs.frozen
class iinfo_object:
    """Machine limits of an integer dtype."""

    bits: int
    max: int
    min: int
    dtype: DType


def _of(type_: Any) -> DType:
    """The dtype of a tensor or array, or ``type_`` itself as a dtype."""
    if hasattr(type_, "dtype") and not isinstance(type_, type):
        return dtype(type_.dtype)
    return dtype(type_)


def finfo(type_: Any, /) -> finfo_object:
    """Limits of a floating dtype (or of a tensor's dtype): bits, eps, max, min,
    smallest_normal. For a complex dtype, those of its real components."""
    d = _of(type_)
    if d.kind not in "fc":
        raise DTypeError(f"finfo() takes a floating dtype, got {d}; use iinfo() for integers")
    real = {complex64: float32, complex128: float64}.get(d, d)
    info = ml_dtypes.finfo(real.numpy_dtype)
    return finfo_object(
        bits=real.bits, eps=float(info.eps), max=float(info.max), min=float(info.min),
        smallest_normal=float(info.smallest_normal), dtype=real,
    )  # fmt: skip


def iinfo(type_: Any, /) -> iinfo_object:
    """Limits of an integer dtype (or of a tensor's dtype): bits, max, min."""
    d = _of(type_)
    if d.kind not in "iu":
        raise DTypeError(f"iinfo() takes an integer dtype, got {d}; use finfo() for floats")
    info = np.iinfo(d.numpy_dtype)
    return iinfo_object(bits=d.bits, max=int(info.max), min=int(info.min), dtype=d)


def can_cast(from_: Any, to: Any, /) -> bool:
    """Whether ``from_`` (a dtype or tensor) converts to ``to`` without losing values:
    NumPy's "safe" casting for the standard dtypes (so int64 -> float32 is not, int8 ->
    float16 is); for bfloat16 and the float8 dtypes, whether promotion gives ``to``."""
    source, target = _of(from_), dtype(to)
    extension = (bfloat16, float8_e4m3fn, float8_e5m2)
    if source not in extension and target not in extension:
        return bool(np.can_cast(source.numpy_dtype, target.numpy_dtype, "safe"))
    if source.kind in "iu":  # no integer range fits these narrow mantissas but int8's in bf16
        return source.bits == 8 and target is bfloat16
    try:
        return result_type(source, target) is target
    except DTypeError:
        return False
