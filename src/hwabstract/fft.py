"""``hw.fft``: the Array API's Fourier-transform extension.

``fft``/``ifft``, ``rfft`` and ``irfft`` along one axis are standard kernels (``fft`` with its
``inverse`` attribute, ``rfft``, ``irfft``): a device runs them where its manifest declares
them and raises :class:`~hwabstract.errors.UnsupportedError` where it does not (maia has no
complex dtypes, so no transforms). The n-dimensional transforms apply them axis by axis;
``hfft``/``ihfft`` are ``irfft``/``rfft`` of the conjugate with the normalization mirrored;
the frequency helpers are computed on the host and uploaded; the shifts are rolls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import dtypes as dt
from . import operations as _operations
from .creation import asarray
from .dispatch import launch
from .errors import DTypeError, ShapeError
from .manipulation import roll
from .operations import require_tensor as _tensor
from .stream import Stream
from .tensor import Tensor

# The elementwise and reduction kernel functions are generated from their specs when
# hwabstract.operations loads, so type checkers cannot see them: bind them untyped.
_kernels: Any = _operations
conj = _kernels.conj

__all__ = [
    "fft",
    "fftfreq",
    "fftn",
    "fftshift",
    "hfft",
    "ifft",
    "ifftn",
    "ifftshift",
    "ihfft",
    "irfft",
    "irfftn",
    "rfft",
    "rfftfreq",
    "rfftn",
]

_MIRROR = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _one(kernel: str, x: Tensor, n: int | None, axis: int, norm: str,
         stream: Stream | None, **extra: Any) -> Tensor:  # fmt: skip
    attrs = {"n": n, "axis": axis, "norm": norm, **extra}
    return launch(kernel, (x,), attrs, stream=stream)


def fft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward",
        stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The one-dimensional discrete Fourier transform of complex ``x`` along ``axis``."""
    return _one("fft", _tensor("fft", x), n, axis, norm, stream, inverse=False)


def ifft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward",
         stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The inverse of :func:`fft`."""
    return _one("fft", _tensor("ifft", x), n, axis, norm, stream, inverse=True)


def rfft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward",
         stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The transform of real ``x``: its ``n // 2 + 1`` non-negative frequency terms."""
    return _one("rfft", _tensor("rfft", x), n, axis, norm, stream)


def irfft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward",
          stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The inverse of :func:`rfft`: ``n`` real values (default ``2 * (m - 1)``)."""
    return _one("irfft", _tensor("irfft", x), n, axis, norm, stream)


def hfft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward",
         stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The transform of a signal with Hermitian symmetry given by its first half: real
    output of length ``n`` (default ``2 * (m - 1)``)."""
    _tensor("hfft", x)
    return _one("irfft", conj(x, stream=stream), n, axis, _norm(norm), stream)


def ihfft(x: Tensor, /, *, n: int | None = None, axis: int = -1, norm: str = "backward",
          stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The inverse of :func:`hfft`: of real ``x``, ``n // 2 + 1`` complex values."""
    _tensor("ihfft", x)
    return conj(_one("rfft", x, n, axis, _norm(norm), stream), stream=stream)


def _norm(norm: str) -> str:
    if norm not in _MIRROR:
        raise ShapeError(f"norm must be 'backward', 'ortho' or 'forward', got {norm!r}")
    return _MIRROR[norm]


def _axes_and_sizes(name: str, x: Tensor, s: Sequence[int] | None,
                    axes: Sequence[int] | None) -> tuple[list[int], list[int | None]]:  # fmt: skip
    if axes is None:
        axes = list(range(x.ndim)) if s is None else list(range(x.ndim - len(s), x.ndim))
    axes = [int(a) for a in axes]
    if s is None:
        sizes: list[int | None] = [None] * len(axes)
    else:
        sizes = [None if v == -1 else int(v) for v in s]
        if len(sizes) != len(axes):
            raise ShapeError(f"fft.{name}() needs one size in s per axis, got s={s}, axes={axes}")
    if (x.ndim == 0 and axes) or len({a % max(x.ndim, 1) for a in axes}) != len(axes):
        raise ShapeError(f"fft.{name}() axes {axes} must be distinct axes of a {x.ndim}-D tensor")
    return axes, sizes


def _nd(name: str, x: Tensor, s: Sequence[int] | None, axes: Sequence[int] | None, norm: str,
        inverse: bool, stream: Stream | None) -> Tensor:  # fmt: skip
    axes_l, sizes = _axes_and_sizes(name, _tensor(name, x), s, axes)
    result = x
    for a, n in zip(reversed(axes_l), reversed(sizes)):
        result = _one("fft", result, n, a, norm, stream, inverse=inverse)
    return result


def fftn(x: Tensor, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
         norm: str = "backward", stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The n-dimensional transform over ``axes`` (sizes ``s``)."""
    return _nd("fftn", x, s, axes, norm, False, stream)


def ifftn(x: Tensor, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
          norm: str = "backward", stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The inverse of :func:`fftn`."""
    return _nd("ifftn", x, s, axes, norm, True, stream)


def rfftn(x: Tensor, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
          norm: str = "backward", stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The n-dimensional transform of real ``x``: ``rfft`` over the last of ``axes``, then
    ``fft`` over the others."""
    axes_l, sizes = _axes_and_sizes("rfftn", _tensor("rfftn", x), s, axes)
    result = _one("rfft", x, sizes[-1], axes_l[-1], norm, stream)
    for a, n in zip(reversed(axes_l[:-1]), reversed(sizes[:-1])):
        result = _one("fft", result, n, a, norm, stream, inverse=False)
    return result


def irfftn(x: Tensor, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None,
           norm: str = "backward", stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The inverse of :func:`rfftn`."""
    axes_l, sizes = _axes_and_sizes("irfftn", _tensor("irfftn", x), s, axes)
    result = x
    for a, n in zip(axes_l[:-1], sizes[:-1]):
        result = _one("fft", result, n, a, norm, stream, inverse=True)
    return _one("irfft", result, sizes[-1], axes_l[-1], norm, stream)


def _freq_dtype(dtype: Any) -> dt.DType:
    d = dt.dtype(dt.default_float if dtype is None else dtype)
    if d.kind != "f":
        raise DTypeError(f"the sample frequencies are real floating, got dtype {d}")
    return d


def fftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Tensor:
    """The sample frequencies of an ``n``-point transform with sample spacing ``d``."""
    return asarray(np.fft.fftfreq(n, d).astype(_freq_dtype(dtype).numpy_dtype), device=device)


def rfftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Tensor:
    """The ``n // 2 + 1`` non-negative sample frequencies of an ``n``-point rfft."""
    return asarray(np.fft.rfftfreq(n, d).astype(_freq_dtype(dtype).numpy_dtype), device=device)


def _shift(name: str, x: Tensor, axes: Any, sign: int, stream: Stream | None) -> Tensor:
    _tensor(name, x)
    if axes is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axes, int):
        axes = (axes,)
    shifts = [sign * (x.shape[a] // 2) for a in axes]
    return roll(x, shifts, axis=tuple(axes), stream=stream)


def fftshift(x: Tensor, /, *, axes: Any = None, stream: Stream | None = None) -> Tensor:
    """``x`` with the zero-frequency term moved to the centre of each of ``axes``."""
    return _shift("fftshift", x, axes, 1, stream)


def ifftshift(x: Tensor, /, *, axes: Any = None, stream: Stream | None = None) -> Tensor:
    """The inverse of :func:`fftshift`."""
    return _shift("ifftshift", x, axes, -1, stream)
