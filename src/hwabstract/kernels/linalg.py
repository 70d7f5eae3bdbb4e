"""Linear algebra: ``matmul`` (batched, broadcasting batch dimensions) and the decompositions
and solvers of the Array API's ``linalg`` extension (below).

The backend receives operands of at least two dimensions, ``(..., M, K)`` and
``(..., K, N)``, with the batch dimensions already broadcast to the output's (zero strides
where an operand is broadcast). One-dimensional operands are promoted and the result squeezed
by the core, as the Array API specifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..dtypes import DType
from ..errors import DTypeError, ShapeError
from .elementwise import FLOATING, NUMERIC
from .spec import KernelSpec, broadcast_shapes, check_kinds, promote, register


def _matmul_dtype(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple[DType]]:
    compute = promote(operands, _matmul)
    check_kinds("matmul", compute, NUMERIC)
    return compute, (compute,)


def _matmul_shape(
    shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], Mapping[str, Any]]:
    a, b = shapes
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(f"matmul operands need at least 2 dimensions here, got {a} and {b}")
    if a[-1] != b[-2]:
        raise ShapeError(
            f"matmul shapes {a} and {b} do not match: the last dimension of the first "
            f"({a[-1]}) must equal the second-to-last of the second ({b[-2]})"
        )
    batch = broadcast_shapes(a[:-2], b[:-2])
    return [batch + a[-2:], batch + b[-2:]], [(*batch, a[-2], b[-1])], attrs


def _matmul_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if dt.dtype(a.dtype).kind == "f" and a.dtype.itemsize < 4:
        # accumulate in float32, round once, as accelerator matrix units do
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)
    return np.asarray(np.matmul(a, b))


_matmul = register(
    KernelSpec(
        name="matmul",
        category="linalg",
        inputs=("x1", "x2"),
        dtypes=NUMERIC,
        dtype_rule=_matmul_dtype,
        shape_rule=_matmul_shape,
        reference=_matmul_reference,
        doc="Matrix product with broadcasting batch dimensions; 8/16-bit floats accumulate "
        "in float32.",
    )
)


# --- decompositions and solvers (the ``linalg`` extension of the Array API) -----------------
#
# Each works on a stack of matrices ``(..., M, N)``: the batch dimensions are the leading
# ones, and the backend receives the stack as given (``solve``'s two operands already
# broadcast to a common batch). Results are checked by what defines them (reconstruction,
# orthogonality), not element for element where the answer is only defined up to sign or
# phase (eigenvectors, singular vectors, QR's factors). 8- and 16-bit floats compute in
# float32 and round once. Several outputs are returned in the order the Array API names them.
# A singular matrix (inv, solve) or one that is not positive definite (cholesky) is a
# KernelError where the device can report it (cpu, maia); JAX and CuPy return NaNs instead.

_REAL_OF = {dt.complex64: dt.float32, dt.complex128: dt.float64}


def _linalg_work(x: np.ndarray) -> np.ndarray:
    """``x`` in the dtype the reference computes in (float32 for narrower floats)."""
    if dt.dtype(x.dtype).kind == "f" and x.dtype.itemsize < 4:
        return x.astype(np.float32)
    return x


def _square(name: str, shape: tuple[int, ...]) -> int:
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ShapeError(f"{name}() needs a stack of square matrices (..., M, M), got {shape}")
    return shape[-1]


def _at_least_2d(name: str, shape: tuple[int, ...]) -> None:
    if len(shape) < 2:
        raise ShapeError(f"{name}() needs a stack of matrices (..., M, N), got {shape}")


def _decomposition(
    name: str,
    outputs: Sequence[str],
    shapes: Any,
    reference: Any,
    *,
    attributes: Mapping[str, Any] | None = None,
    doc: str,
    inputs: tuple[str, ...] = ("x",),
) -> KernelSpec:
    """Register a linalg kernel. ``outputs`` says each output's dtype ("same" or "real");
    ``shapes(input_shapes, attrs)`` gives (input targets, output shapes, normalized attrs)."""

    def dtype_rule(operands: Sequence[Any], attrs: Mapping[str, Any]) -> tuple[DType, tuple]:
        compute = promote(operands, spec)
        if compute.kind in "biu":
            raise DTypeError(
                f"{name}() needs floating-point input, got {compute}; convert first with "
                "x.astype(hw.float32) (or float64 where the device has it)"
            )
        check_kinds(name, compute, FLOATING)
        return compute, tuple(
            compute if o == "same" else _REAL_OF.get(compute, compute) for o in outputs
        )

    spec = KernelSpec(
        name=name,
        category="linalg",
        inputs=inputs,
        dtypes=FLOATING,
        dtype_rule=dtype_rule,
        shape_rule=shapes,
        reference=reference,
        attributes=dict(attributes or {}),
        doc=doc,
    )
    return register(spec)


def _square_unary(name: str, out: Any) -> Any:
    def rule(shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]) -> Any:
        (shape,) = shapes
        m = _square(name, shape)
        return [None], out(shape[:-2], m), dict(attrs)

    return rule


def _cholesky_reference(x: np.ndarray, *, upper: bool) -> np.ndarray:
    w = _linalg_work(x)
    lower = np.linalg.cholesky(w)
    result = np.conj(np.swapaxes(lower, -1, -2)) if upper else lower
    return result.astype(x.dtype)


_decomposition(
    "cholesky", ["same"], _square_unary("cholesky", lambda b, m: [(*b, m, m)]),
    _cholesky_reference, attributes={"upper": False},
    doc="Cholesky factor of Hermitian positive-definite matrices (lower, or upper=True). "
    "A matrix that is not positive definite is a KernelError.",
)  # fmt: skip


def _inv_reference(x: np.ndarray) -> np.ndarray:
    return np.linalg.inv(_linalg_work(x)).astype(x.dtype)


_decomposition(
    "inv", ["same"], _square_unary("inv", lambda b, m: [(*b, m, m)]), _inv_reference,
    doc="Inverse of square matrices. A singular matrix is a KernelError.",
)  # fmt: skip


def _det_reference(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.det(_linalg_work(x))).astype(x.dtype)


_decomposition(
    "det", ["same"], _square_unary("det", lambda b, m: [b]), _det_reference,
    doc="Determinant of square matrices.",
)  # fmt: skip


def _slogdet_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sign, logabs = np.linalg.slogdet(_linalg_work(x))
    real = np.real(np.zeros((), x.dtype)).dtype
    return np.asarray(sign).astype(x.dtype), np.asarray(logabs).astype(real)


_decomposition(
    "slogdet", ["same", "real"], _square_unary("slogdet", lambda b, m: [b, b]),
    _slogdet_reference,
    doc="Sign (x's dtype) and natural log of the absolute value (real dtype) of the "
    "determinant; a singular matrix gives sign 0 and logabsdet -inf.",
)  # fmt: skip


def _eigh_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w, v = np.linalg.eigh(_linalg_work(x))
    real = np.real(np.zeros((), x.dtype)).dtype
    return w.astype(real), v.astype(x.dtype)


_decomposition(
    "eigh", ["real", "same"], _square_unary("eigh", lambda b, m: [(*b, m), (*b, m, m)]),
    _eigh_reference,
    doc="Eigenvalues (ascending, real dtype) and orthonormal eigenvectors (columns) of "
    "Hermitian matrices; only the lower triangle is read.",
)  # fmt: skip


def _eigvalsh_reference(x: np.ndarray) -> np.ndarray:
    real = np.real(np.zeros((), x.dtype)).dtype
    return np.linalg.eigvalsh(_linalg_work(x)).astype(real)


_decomposition(
    "eigvalsh", ["real"], _square_unary("eigvalsh", lambda b, m: [(*b, m)]),
    _eigvalsh_reference,
    doc="Eigenvalues (ascending, real dtype) of Hermitian matrices; only the lower "
    "triangle is read.",
)  # fmt: skip


def _solve_shape(shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]) -> Any:
    a, b = shapes
    m = _square("solve", a)
    if len(b) < 2 or b[-2] != m:
        raise ShapeError(
            f"solve() needs x2 of shape (..., {m}, K) for x1 of shape {a}, got {b} "
            "(a 1-D x2 is handled by hw.linalg.solve)"
        )
    batch = broadcast_shapes(a[:-2], b[:-2])
    return [(*batch, m, m), (*batch, *b[-2:])], [(*batch, *b[-2:])], dict(attrs)


def _solve_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.solve(_linalg_work(a), _linalg_work(b)).astype(a.dtype)


_decomposition(
    "solve", ["same"], _solve_shape, _solve_reference, inputs=("x1", "x2"),
    doc="The solution X of x1 @ X = x2 for square x1 (batches broadcast). A singular x1 "
    "is a KernelError.",
)  # fmt: skip


def _qr_shape(shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]) -> Any:
    (shape,) = shapes
    _at_least_2d("qr", shape)
    mode = attrs.get("mode", "reduced")
    if mode not in ("reduced", "complete"):
        raise ShapeError(f"qr() mode must be 'reduced' or 'complete', got {mode!r}")
    *batch, m, n = shape
    k = min(m, n) if mode == "reduced" else m
    return [None], [(*batch, m, k), (*batch, k, n)], {"mode": mode}


def _qr_reference(x: np.ndarray, *, mode: str) -> tuple[np.ndarray, np.ndarray]:
    q, r = np.linalg.qr(_linalg_work(x), mode=mode)  # type: ignore[call-overload]
    return q.astype(x.dtype), r.astype(x.dtype)


_decomposition(
    "qr", ["same", "same"], _qr_shape, _qr_reference, attributes={"mode": "reduced"},
    doc="QR factorization: Q with orthonormal columns and upper-triangular R, x = Q @ R.",
)  # fmt: skip


def _svd_shape(full_key: bool) -> Any:
    def rule(shapes: Sequence[tuple[int, ...]], attrs: Mapping[str, Any]) -> Any:
        (shape,) = shapes
        _at_least_2d("svd" if full_key else "svdvals", shape)
        *batch, m, n = shape
        k = min(m, n)
        if not full_key:
            return [None], [(*batch, k)], {}
        full = bool(attrs.get("full_matrices", True))
        u = (*batch, m, m if full else k)
        vh = (*batch, n if full else k, n)
        return [None], [u, (*batch, k), vh], {"full_matrices": full}

    return rule


def _svd_reference(
    x: np.ndarray, *, full_matrices: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u, s, vh = np.linalg.svd(_linalg_work(x), full_matrices=full_matrices)
    real = np.real(np.zeros((), x.dtype)).dtype
    return u.astype(x.dtype), s.astype(real), vh.astype(x.dtype)


_decomposition(
    "svd", ["same", "real", "same"], _svd_shape(True), _svd_reference,
    attributes={"full_matrices": True},
    doc="Singular value decomposition x = U @ diag(S) @ Vh, S descending (real dtype).",
)  # fmt: skip


def _svdvals_reference(x: np.ndarray) -> np.ndarray:
    real = np.real(np.zeros((), x.dtype)).dtype
    return np.linalg.svd(_linalg_work(x), compute_uv=False).astype(real)


_decomposition(
    "svdvals", ["real"], _svd_shape(False), _svdvals_reference,
    doc="Singular values, descending (real dtype).",
)  # fmt: skip
