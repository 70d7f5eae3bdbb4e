"""``hw.linalg``: the Array API's linear-algebra extension.

The factorizations and solvers (``cholesky``, ``inv``, ``det``, ``slogdet``, ``solve``,
``qr``, ``eigh``, ``eigvalsh``, ``svd``, ``svdvals``) are standard kernels: a device runs
them where its manifest declares them, and raises :class:`~hwabstract.errors.UnsupportedError`
naming the kernel where it does not. Everything else here (norms, ``pinv``, ``matrix_rank``,
``matrix_power``, ``cross``, ``outer``, ``trace``, ``diagonal``) is composed from those and
the elementwise and reduction kernels. ``matmul``, ``matrix_transpose``, ``tensordot`` and
``vecdot`` are the main namespace's functions.
"""

from __future__ import annotations

import builtins
import math
from typing import Any, NamedTuple

from . import dtypes as dt
from . import operations as _operations
from .dispatch import launch, launch_all
from .errors import DTypeError, ShapeError
from .manipulation import matrix_transpose, tensordot, vecdot
from .operations import astype, matmul, stack, where
from .operations import require_tensor as _tensor
from .stream import Stream
from .tensor import Tensor

# The elementwise and reduction kernel functions are generated from their specs when
# hwabstract.operations loads, so type checkers cannot see them: bind them untyped.
_kernels: Any = _operations
abs = _kernels.abs
conj = _kernels.conj
greater = _kernels.greater
max = _kernels.max
min = _kernels.min
multiply = _kernels.multiply
pow = _kernels.pow
reciprocal = _kernels.reciprocal
sqrt = _kernels.sqrt
square = _kernels.square
subtract = _kernels.subtract
sum = _kernels.sum

__all__ = [
    "EighResult",
    "QRResult",
    "SVDResult",
    "SlogdetResult",
    "cholesky",
    "cross",
    "det",
    "diagonal",
    "eigh",
    "eigvalsh",
    "inv",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "matrix_transpose",
    "outer",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "svd",
    "svdvals",
    "tensordot",
    "trace",
    "vecdot",
    "vector_norm",
]


class EighResult(NamedTuple):
    eigenvalues: Tensor
    eigenvectors: Tensor


class QRResult(NamedTuple):
    Q: Tensor
    R: Tensor


class SlogdetResult(NamedTuple):
    sign: Tensor
    logabsdet: Tensor


class SVDResult(NamedTuple):
    U: Tensor
    S: Tensor
    Vh: Tensor


# -- kernels ------------------------------------------------------------------------------------


def cholesky(x: Tensor, /, *, upper: bool = False, stream: Stream | None = None) -> Tensor:
    """The Cholesky factor of each Hermitian positive-definite matrix in ``x``: lower
    triangular L with x = L @ L^H (``upper=True``: U = L^H)."""
    return launch("cholesky", (_tensor("cholesky", x),), {"upper": upper}, stream=stream)


def inv(x: Tensor, /, *, stream: Stream | None = None) -> Tensor:
    """The inverse of each square matrix in ``x``."""
    return launch("inv", (_tensor("inv", x),), None, stream=stream)


def det(x: Tensor, /, *, stream: Stream | None = None) -> Tensor:
    """The determinant of each square matrix in ``x``."""
    return launch("det", (_tensor("det", x),), None, stream=stream)


def slogdet(x: Tensor, /, *, stream: Stream | None = None) -> SlogdetResult:
    """Sign and natural log of the absolute determinant of each square matrix in ``x``."""
    sign, logabsdet = launch_all("slogdet", (_tensor("slogdet", x),), None, stream=stream)
    return SlogdetResult(sign, logabsdet)


def solve(x1: Tensor, x2: Tensor, /, *, stream: Stream | None = None) -> Tensor:
    """The solution X of ``x1 @ X == x2`` for square ``x1`` (batches broadcast). A 1-D
    ``x2`` is one right-hand side vector."""
    _tensor("solve", x1)
    _tensor("solve", x2)
    if x2.ndim == 1:
        b = x2._view((x2.shape[0], 1), (x2.strides[0], 0), x2._offset)
        return launch("solve", (x1, b), None, stream=stream)[..., 0]
    return launch("solve", (x1, x2), None, stream=stream)


def qr(x: Tensor, /, *, mode: str = "reduced", stream: Stream | None = None) -> QRResult:
    """The QR factorization of each matrix in ``x``: Q with orthonormal columns and upper
    triangular R (``mode='complete'``: Q square)."""
    q, r = launch_all("qr", (_tensor("qr", x),), {"mode": mode}, stream=stream)
    return QRResult(q, r)


def eigh(x: Tensor, /, *, stream: Stream | None = None) -> EighResult:
    """Eigenvalues (ascending) and eigenvectors (columns) of each Hermitian matrix in ``x``
    (only its lower triangle is read)."""
    w, v = launch_all("eigh", (_tensor("eigh", x),), None, stream=stream)
    return EighResult(w, v)


def eigvalsh(x: Tensor, /, *, stream: Stream | None = None) -> Tensor:
    """Eigenvalues (ascending) of each Hermitian matrix in ``x``."""
    return launch("eigvalsh", (_tensor("eigvalsh", x),), None, stream=stream)


def svd(x: Tensor, /, *, full_matrices: bool = True, stream: Stream | None = None) -> SVDResult:
    """``x = U @ diag(S) @ Vh`` for each matrix in ``x``; S descending."""
    attrs = {"full_matrices": full_matrices}
    u, s, vh = launch_all("svd", (_tensor("svd", x),), attrs, stream=stream)
    return SVDResult(u, s, vh)


def svdvals(x: Tensor, /, *, stream: Stream | None = None) -> Tensor:
    """The singular values of each matrix in ``x``, descending."""
    return launch("svdvals", (_tensor("svdvals", x),), None, stream=stream)


# -- compositions -------------------------------------------------------------------------------


def diagonal(x: Tensor, /, *, offset: int = 0) -> Tensor:
    """Diagonal ``offset`` of each matrix in ``x`` (above the main one if positive). A view."""
    _tensor("diagonal", x)
    if x.ndim < 2:
        raise ShapeError(f"linalg.diagonal() needs at least 2 dimensions, got shape {x.shape}")
    m, n = x.shape[-2:]
    rs, cs = x.strides[-2:]
    length = builtins.max(
        0, builtins.min(m - builtins.max(-offset, 0), n - builtins.max(offset, 0))
    )
    start = x._offset + (
        builtins.max(offset, 0) * cs + builtins.max(-offset, 0) * rs if length else 0
    )
    return x._view((*x.shape[:-2], length), (*x.strides[:-2], rs + cs), start)


def trace(
    x: Tensor, /, *, offset: int = 0, dtype: Any = None, stream: Stream | None = None
) -> Tensor:
    """Sum of diagonal ``offset`` of each matrix in ``x``."""
    return sum(diagonal(x, offset=offset), axis=-1, dtype=dtype, stream=stream)


def outer(x1: Tensor, x2: Tensor, /, *, stream: Stream | None = None) -> Tensor:
    """The outer product of two 1-D tensors."""
    _tensor("outer", x1)
    _tensor("outer", x2)
    if x1.ndim != 1 or x2.ndim != 1:
        raise ShapeError(f"linalg.outer() takes 1-D tensors, got {x1.shape} and {x2.shape}")
    return multiply(x1[:, None], x2[None, :], stream=stream)


def cross(x1: Tensor, x2: Tensor, /, *, axis: int = -1, stream: Stream | None = None) -> Tensor:
    """The cross product of 3-element vectors along ``axis`` (other dimensions broadcast)."""
    _tensor("cross", x1)
    _tensor("cross", x2)
    from .kernels.spec import broadcast_shapes
    from .operations import broadcast_to

    shape = broadcast_shapes(x1.shape, x2.shape)
    if not -len(shape) <= axis < len(shape) or shape[axis] != 3:
        raise ShapeError(
            f"linalg.cross() needs size 3 along axis {axis}, got {x1.shape} and {x2.shape}"
        )
    ax = axis % len(shape)
    a, b = broadcast_to(x1, shape), broadcast_to(x2, shape)

    def part(t: Tensor, i: int) -> Tensor:
        return t[(slice(None),) * ax + (i,)]

    def term(i: int, j: int) -> Tensor:
        return subtract(multiply(part(a, i), part(b, j), stream=stream),
                        multiply(part(a, j), part(b, i), stream=stream), stream=stream)  # fmt: skip

    return stack([term(1, 2), term(2, 0), term(0, 1)], axis=ax, stream=stream)


def matrix_power(x: Tensor, n: int, /, *, stream: Stream | None = None) -> Tensor:
    """``x`` multiplied by itself ``n`` times (``n = 0``: identities; ``n < 0``: powers of
    the inverse), by repeated squaring."""
    from .creation import eye
    from .operations import broadcast_to, reshape

    _tensor("matrix_power", x)
    if isinstance(n, bool) or not isinstance(n, int):
        raise DTypeError(f"linalg.matrix_power() n must be an int, got {n!r}")
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"linalg.matrix_power() needs square matrices, got shape {x.shape}")
    if n == 0:
        identity = eye(x.shape[-1], dtype=x.dtype, device=x.device, stream=stream)
        return reshape(broadcast_to(identity, x.shape), x.shape, copy=True, stream=stream)
    base = inv(x, stream=stream) if n < 0 else x
    k = builtins.abs(n)
    result: Tensor | None = None
    while True:
        if k & 1:
            result = base if result is None else matmul(result, base, stream=stream)
        k >>= 1
        if not k:
            break
        base = matmul(base, base, stream=stream)
    assert result is not None
    if result is x:
        result = reshape(x, x.shape, copy=True, stream=stream)
    return result


def _real_dtype(x: Tensor) -> dt.DType:
    return {dt.complex64: dt.float32, dt.complex128: dt.float64}.get(x.dtype, x.dtype)


def vector_norm(
    x: Tensor, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False,
    ord: float = 2, stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """The ``ord``-norm of vectors along ``axis`` (all elements if None): inf, -inf, 0
    (the number of nonzeros), or any other p (``sum(|x|**p) ** (1/p)``)."""
    _tensor("vector_norm", x)
    if not x.dtype.is_floating:
        raise DTypeError(
            f"linalg.vector_norm() needs a floating-point tensor, got {x.dtype}; convert it "
            "with x.astype(hw.float32) first"
        )
    a = abs(x, stream=stream)
    if ord == math.inf:
        return max(a, axis=axis, keepdims=keepdims, stream=stream)
    if ord == -math.inf:
        return min(a, axis=axis, keepdims=keepdims, stream=stream)
    if ord == 0:
        nonzero = astype(greater(a, 0, stream=stream), _real_dtype(x), stream=stream)
        return sum(nonzero, axis=axis, keepdims=keepdims, stream=stream)
    if ord == 1:
        return sum(a, axis=axis, keepdims=keepdims, stream=stream)
    if ord == 2:
        return sqrt(sum(square(a, stream=stream), axis=axis, keepdims=keepdims, stream=stream),
                    stream=stream)  # fmt: skip
    total = sum(pow(a, ord, stream=stream), axis=axis, keepdims=keepdims, stream=stream)
    return pow(total, 1.0 / ord, stream=stream)


def matrix_norm(
    x: Tensor, /, *, keepdims: bool = False, ord: Any = "fro", stream: Stream | None = None
) -> Tensor:
    """The ``ord``-norm of each matrix in ``x``: 'fro', 'nuc', 1, -1, 2, -2, inf or -inf."""
    _tensor("matrix_norm", x)
    if x.ndim < 2:
        raise ShapeError(f"linalg.matrix_norm() needs at least 2 dimensions, got {x.shape}")

    def keep(t: Tensor) -> Tensor:
        return t[..., None, None] if keepdims else t

    if ord == "fro":
        return vector_norm(x, axis=(-2, -1), keepdims=keepdims, stream=stream)
    if ord in ("nuc", 2, -2):
        s = svdvals(x, stream=stream)
        if ord == "nuc":
            return keep(sum(s, axis=-1, stream=stream))
        return keep((max if ord == 2 else min)(s, axis=-1, stream=stream))
    if ord in (1, -1, math.inf, -math.inf):
        summed_axis = -2 if ord in (1, -1) else -1
        sums = sum(abs(x, stream=stream), axis=summed_axis, stream=stream)
        pick = max if ord in (1, math.inf) else min
        return keep(pick(sums, axis=-1, stream=stream))
    raise ShapeError(
        f"linalg.matrix_norm() ord must be 'fro', 'nuc', 1, -1, 2, -2, inf or -inf, got {ord!r}"
    )


def _cutoff(s: Tensor, x: Tensor, rtol: Any, stream: Stream | None) -> Tensor:
    if rtol is None:
        rtol = builtins.max(x.shape[-2:]) * dt.finfo(_real_dtype(x)).eps
    largest = max(s, axis=-1, keepdims=True, stream=stream) if s.shape[-1] else s[..., :1]
    return multiply(largest, rtol if not isinstance(rtol, Tensor) else rtol[..., None],
                    stream=stream)  # fmt: skip


def matrix_rank(x: Tensor, /, *, rtol: Any = None, stream: Stream | None = None) -> Tensor:
    """The number of singular values above ``rtol`` times the largest (default: max(M, N)
    times the dtype's eps), per matrix, as int64."""
    _tensor("matrix_rank", x)
    s = svdvals(x, stream=stream)
    above = greater(s, _cutoff(s, x, rtol, stream), stream=stream)
    return sum(above, axis=-1, stream=stream)


def pinv(x: Tensor, /, *, rtol: Any = None, stream: Stream | None = None) -> Tensor:
    """The Moore-Penrose pseudo-inverse of each matrix in ``x``, from its SVD, singular
    values at or below ``rtol`` times the largest treated as zero."""
    _tensor("pinv", x)
    u, s, vh = svd(x, full_matrices=False, stream=stream)
    kept = greater(s, _cutoff(s, x, rtol, stream), stream=stream)
    s_inv = where(kept, reciprocal(where(kept, s, 1, stream=stream), stream=stream), 0,
                  stream=stream)  # fmt: skip
    v = conj(matrix_transpose(vh), stream=stream) if x.dtype.is_complex else matrix_transpose(vh)
    uh = conj(matrix_transpose(u), stream=stream) if x.dtype.is_complex else matrix_transpose(u)
    scaled = multiply(v, astype(s_inv, x.dtype, stream=stream)[..., None, :], stream=stream)
    return matmul(scaled, uh, stream=stream)
