"""Discrete Fourier transforms along one axis: ``fft`` (complex to complex, forward or
``inverse``), ``rfft`` (real to the non-negative-frequency half) and ``irfft`` (its inverse).

The backend receives ``axis`` (non-negative), ``n`` (the transform length: the input is
zero-padded or truncated to ``n`` along ``axis``; for ``irfft`` the *output* length) and
``norm`` (``"backward"``, ``"ortho"`` or ``"forward"``, as in the Array API). The n-dimensional
transforms, ``hfft``/``ihfft`` and the shifts are built by the core from these three.
Complex64 inputs compute in single precision; the reference computes in double and rounds
once, so results are checked within the transform's error bound, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import DTypeError, ShapeError
from .sorting import single_axis
from .spec import KernelSpec, register

Shape = tuple[int, ...]

COMPLEX = frozenset(dt.dtypes_of_kinds("c"))
_COMPLEX_OF = {dt.float32: dt.complex64, dt.float64: dt.complex128}
_REAL_OF = {dt.complex64: dt.float32, dt.complex128: dt.float64}
NORMS = ("backward", "ortho", "forward")


def _fft_dtype(name: str) -> Any:
    def rule(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
        d = dt.dtype(operands[0].dtype)
        if name == "rfft":
            if d not in _COMPLEX_OF:
                raise DTypeError(f"rfft() takes float32 or float64 input, got {d}")
            return d, (_COMPLEX_OF[d],)
        if d not in _REAL_OF:
            raise DTypeError(
                f"{name}() takes complex64 or complex128 input, got {d}"
                + ("; use rfft() for real input" if d.kind == "f" else "")
            )
        return d, (_REAL_OF[d] if name == "irfft" else d,)

    return rule


def _fft_shape(name: str) -> Any:
    def rule(
        shapes: Sequence[Shape], attrs: Mapping[str, Any]
    ) -> tuple[list[None], list[Shape], dict[str, Any]]:
        (shape,) = shapes
        axis = single_axis(name, attrs.get("axis", -1), len(shape))
        m = shape[axis]
        n = attrs.get("n")
        if n is None:
            n = 2 * (m - 1) if name == "irfft" else m
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ShapeError(f"{name}() n must be a positive int, got {n!r} (axis length {m})")
        norm = attrs.get("norm", "backward")
        if norm not in NORMS:
            raise ShapeError(f"{name}() norm must be one of {NORMS}, got {norm!r}")
        out = list(shape)
        out[axis] = n // 2 + 1 if name == "rfft" else int(n)
        attrs_out: dict[str, Any] = {"axis": axis, "n": int(n), "norm": norm}
        if name == "fft":
            attrs_out["inverse"] = bool(attrs.get("inverse", False))
        return [None], [tuple(out)], attrs_out

    return rule


def _fft_reference(x: np.ndarray, *, axis: int, n: int, norm: str, inverse: bool) -> np.ndarray:
    fn = np.fft.ifft if inverse else np.fft.fft
    return np.asarray(fn(x.astype(np.complex128), n=n, axis=axis, norm=norm)).astype(x.dtype)  # type: ignore[arg-type]


def _rfft_reference(x: np.ndarray, *, axis: int, n: int, norm: str) -> np.ndarray:
    out = np.fft.rfft(x.astype(np.float64), n=n, axis=axis, norm=norm)  # type: ignore[arg-type]
    return np.asarray(out).astype(_COMPLEX_OF[dt.dtype(x.dtype)].numpy_dtype)


def _irfft_reference(x: np.ndarray, *, axis: int, n: int, norm: str) -> np.ndarray:
    out = np.fft.irfft(x.astype(np.complex128), n=n, axis=axis, norm=norm)  # type: ignore[arg-type]
    return np.asarray(out).astype(_REAL_OF[dt.dtype(x.dtype)].numpy_dtype)


_ONE_AXIS = {"axis": -1, "n": None, "norm": "backward"}

for _name, _dtypes, _reference, _extra, _doc in (
    ("fft", COMPLEX, _fft_reference, {"inverse": False},
     "One-dimensional discrete Fourier transform (inverse=True: the inverse)."),
    ("rfft", frozenset(_COMPLEX_OF), _rfft_reference, {},
     "Transform of real input: the n // 2 + 1 non-negative frequencies."),
    ("irfft", COMPLEX, _irfft_reference, {},
     "Inverse of rfft: n real outputs (default 2 * (m - 1)) from m frequencies."),
):  # fmt: skip
    register(
        KernelSpec(
            name=_name,
            category="fft",
            inputs=("x",),
            dtypes=_dtypes,
            dtype_rule=_fft_dtype(_name),
            shape_rule=_fft_shape(_name),
            reference=_reference,
            attributes={**_ONE_AXIS, **_extra},
            doc=_doc,
        )
    )
