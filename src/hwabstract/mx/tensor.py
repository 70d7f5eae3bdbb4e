"""MX tensors on devices: :class:`MXTensor`, :func:`quantize`, :func:`dequantize`,
:func:`matmul`.

An MX tensor is two device tensors and what they mean: ``elements`` (uint8, the packed
element codes) and ``scales`` (uint8, E8M0 codes), the format, the logical shape and the
axis the blocks of 32 run along. Storage follows :mod:`hwabstract.mx.reference`: the block
axis is moved last, each row of the other dimensions holds ``ceil(n / 32)`` blocks.

Each device says in ``capabilities.mx_formats`` how it supports each format: NATIVE -- its
backend runs the MX kernels (``mx_quantize``, ``mx_dequantize``, ``mx_matmul``; the
``cpu`` backend runs the NumPy reference, the Maia emulator its C kernels); EMULATED -- the
core composes them from the device's standard kernels (:mod:`hwabstract.mx.emulated`,
bit-identical too), queued on the same stream; formats a device does not declare are
refused with :class:`~hwabstract.errors.UnsupportedError`, never converted silently.
``matmul`` of an MX tensor with a dense one dequantizes the MX operand and multiplies with
the standard ``matmul``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from .. import dtypes as dt
from ..backend import DTypeSupport
from ..dtypes import DType
from ..errors import DeviceError, DTypeError, ShapeError, UnsupportedError
from ..stream import Stream
from ..tensor import Tensor
from .formats import BLOCK, SCALE_DLPACK_CODE, MXFormat, mx_format

__all__ = ["MXDLPack", "MXTensor", "dequantize", "matmul", "quantize"]

#: the dtypes MX kernels read and write
MX_DTYPES = ("float16", "bfloat16", "float32")


class MXTensor:
    """A tensor in an OCP MX format, on one device. Immutable; build with
    :func:`quantize`."""

    __slots__ = ("axis", "elements", "format", "scales", "shape")

    def __init__(self, elements: Tensor, scales: Tensor, format: MXFormat,
                 shape: tuple[int, ...], axis: int) -> None:  # fmt: skip
        self.elements = elements
        self.scales = scales
        self.format = format
        self.shape = shape
        self.axis = axis

    @property
    def device(self) -> Any:
        return self.elements.device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def blocks(self) -> int:
        """Blocks per row along the block axis."""
        return -(-self.shape[self.axis] // BLOCK)

    @property
    def nbytes(self) -> int:
        """Bytes of device memory: packed elements and scales."""
        return self.elements.nbytes + self.scales.nbytes

    def to(self, device: Any, *, stream: Stream | None = None) -> MXTensor:
        """The same MX tensor on ``device`` (its bytes copied; the format need not be
        supported there until it is computed with)."""
        return MXTensor(self.elements.to(device, stream=stream),
                        self.scales.to(device, stream=stream), self.format, self.shape,
                        self.axis)  # fmt: skip

    def dequantize(self, dtype: Any = dt.float32, *, stream: Stream | None = None) -> Tensor:
        """See :func:`dequantize`."""
        return dequantize(self, dtype=dtype, stream=stream)

    def dlpack_elements(self) -> MXDLPack:
        """A DLPack producer of the packed elements, typed with DLPack 1.1's code for the
        element format (``kDLFloat4_e2m1fn``, ... ``kDLInt`` for MXINT8), shape
        ``(*rest, blocks * 32)`` in elements (padding included), sub-byte formats packed
        little bit-endian. See docs/mx.md."""
        bits = self.format.bits
        code = self.format.dlpack_code
        shape = (*self.elements.shape[:-1], self.blocks * BLOCK)
        return MXDLPack(self.elements, code, bits, shape)

    def dlpack_scales(self) -> MXDLPack:
        """A DLPack producer of the scales: ``kDLFloat8_e8m0fnu``, shape ``(*rest,
        blocks)``."""
        return MXDLPack(self.scales, SCALE_DLPACK_CODE, 8, tuple(self.scales.shape))

    def __repr__(self) -> str:
        return (
            f"MXTensor({self.format.name}, shape={self.shape}, axis={self.axis}, "
            f"on {self.device.name}, {self.nbytes} B)"
        )


class MXDLPack:
    """One half of an MX tensor as a DLPack producer (``np.from_dlpack``-style consumers
    call ``__dlpack__``). It hands out host memory (kDLCPU): the tensor's own memory on a
    device the host can address (the cpu backend), otherwise a host copy flagged
    ``IS_COPIED``. Needs a DLPack 1.1 consumer (``max_version=(1, 1)``) for the 1.1 codes."""

    __slots__ = ("bits", "code", "shape", "tensor")

    def __init__(self, tensor: Tensor, code: int, bits: int, shape: tuple[int, ...]) -> None:
        self.tensor = tensor
        self.code = code
        self.bits = bits
        self.shape = shape

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)

    def __dlpack__(self, *, stream: Any = None, max_version: tuple[int, int] | None = None,
                   dl_device: Any = None, copy: bool | None = None) -> Any:  # fmt: skip
        from ..dlpack import _export_array, _host_view, export_packed
        from ..errors import DLPackError

        if stream is not None:
            raise DLPackError("MX parts are exported as kDLCPU memory: pass stream=None")
        if dl_device is not None and tuple(dl_device) != (1, 0):
            raise DLPackError(f"MX parts are exported as kDLCPU memory, not {dl_device}")
        t = self.tensor
        version = None if max_version is None else tuple(max_version)
        view = _host_view(t) if copy is not True else None
        if view is not None and t.is_contiguous:
            storage = t._storage
            (storage.last_stream or storage.device.default_stream).synchronize()
            host = _export_array(view, view.dtype, readonly=False, keep=t)
            copied = False
        else:
            if copy is False:
                raise DLPackError(
                    f"{t.device.name} memory reaches a DLPack consumer only as a host copy, "
                    "which copy=False forbids"
                )
            host, copied = np.ascontiguousarray(t.numpy()), True
        return export_packed(host, self.code, self.bits, self.shape, version,  # type: ignore[arg-type]
                             copied=copied)  # fmt: skip


# -- helpers ---------------------------------------------------------------------------------------


def _support(device: Any, fmt: MXFormat, what: str) -> DTypeSupport:
    """How ``device`` supports ``fmt``: NATIVE (its backend's MX kernels) or EMULATED
    (composed from its standard kernels, :mod:`hwabstract.mx.emulated`); refused with
    :class:`UnsupportedError` when it does not declare the format, or declares it EMULATED
    without the standard kernels the composition needs."""
    support = device.capabilities.mx_formats.get(fmt.name)
    if support is DTypeSupport.NATIVE:
        return support
    declared = ", ".join(sorted(device.capabilities.mx_formats)) or "none"
    if support is None:
        raise UnsupportedError(
            f"mx:{fmt.name}",
            f"{device.name} does not support the MX format {fmt.name} ({what}); formats it "
            f"declares: {declared}. Dequantize on a device that does, or use another format",
        )
    from . import emulated

    lacking = emulated.missing(device.capabilities, fmt)
    if lacking:
        raise UnsupportedError(
            f"mx:{fmt.name}",
            f"{device.name} declares {fmt.name} as {support.value}, but the composition from "
            f"standard kernels needs what it does not declare: {', '.join(lacking)}",
        )
    return support


def _float_dtype(dtype: Any, what: str) -> DType:
    d = dt.dtype(dtype)
    if d.name not in MX_DTYPES:
        raise DTypeError(f"{what} takes {', '.join(MX_DTYPES)}, got {d}")
    return d


def _rows(x: Tensor, axis: int) -> Tensor:
    """``x`` with ``axis`` moved last and the other dimensions merged: a (R, n) view when
    the strides allow it, else a contiguous copy."""
    order = [a for a in range(x.ndim) if a != axis] + [axis]
    moved = x._view(tuple(x.shape[a] for a in order), tuple(x.strides[a] for a in order),
                    x._offset)  # fmt: skip
    rest = [(d, s) for d, s in zip(moved.shape[:-1], moved.strides[:-1]) if d != 1]
    rows = math.prod(moved.shape[:-1])
    mergeable = all(s == s2 * d2 for (_, s), (d2, s2) in itertools.pairwise(rest))
    if mergeable:
        row_stride = rest[-1][1] if rest else 0
        return moved._view((rows, x.shape[axis]), (row_stride, moved.strides[-1]), x._offset)
    from ..operations import reshape

    return reshape(moved, (rows, x.shape[axis]), copy=True)


def _launch(device: Any, stream: Stream, kernel: str, inputs: list[Tensor],
            outputs: list[Tensor], attrs: dict[str, Any]) -> None:  # fmt: skip
    for t in inputs:
        t._storage.order_before(stream)
    device._impl.launch(stream.handle, kernel, [t._operand() for t in inputs],
                        [t._operand() for t in outputs], attrs)  # fmt: skip
    for t in outputs:
        t._storage.mark_written(stream)


# -- operations -----------------------------------------------------------------------------------


def quantize(x: Tensor, format: MXFormat | str, axis: int = -1, *,
             stream: Stream | None = None) -> MXTensor:  # fmt: skip
    """``x`` (float16, bfloat16 or float32) in MX ``format``, in blocks of 32 along
    ``axis`` (a partial last block is padded with zeros), on ``x``'s device. Bit-identical
    to :func:`hwabstract.mx.reference.quantize` on every device that supports the format."""
    from ..dispatch import allocate, resolve_stream
    from ..operations import reshape

    if not isinstance(x, Tensor):
        raise DTypeError(f"mx.quantize takes a hwabstract Tensor, got {type(x).__name__}")
    fmt = mx_format(format)
    _float_dtype(x.dtype, "mx.quantize")
    if x.ndim == 0:
        raise ShapeError("mx.quantize needs at least one dimension to block along")
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"axis {axis} is out of range for a {x.ndim}-d tensor")
    ax = axis % x.ndim
    device = x.device
    support = _support(device, fmt, "quantize")
    s = resolve_stream(device, stream)
    n = x.shape[ax]
    blocks = -(-n // BLOCK)
    rest = tuple(d for a, d in enumerate(x.shape) if a != ax)
    rows = math.prod(rest)
    if rows and blocks and support is DTypeSupport.EMULATED:
        from . import emulated

        elements, scales = emulated.quantize(_rows(x, ax), fmt, s)
    else:
        elements = allocate(device, (rows, blocks * fmt.block_bytes), dt.uint8)
        scales = allocate(device, (rows, blocks), dt.uint8)
        if rows and blocks:
            _launch(device, s, "mx_quantize", [_rows(x, ax)], [elements, scales],
                    {"format": fmt.name})  # fmt: skip
    return MXTensor(reshape(elements, (*rest, blocks * fmt.block_bytes)),
                    reshape(scales, (*rest, blocks)), fmt, tuple(x.shape), ax)  # fmt: skip


def dequantize(m: MXTensor, *, dtype: Any = dt.float32, stream: Stream | None = None) -> Tensor:
    """The values of ``m`` in ``dtype`` (float16, bfloat16 or float32; each the exact
    product of scale and element, rounded once), in ``m``'s shape, on its device."""
    from ..dispatch import allocate, resolve_stream
    from ..operations import permute_dims, reshape

    if not isinstance(m, MXTensor):
        raise DTypeError(f"mx.dequantize takes an MXTensor, got {type(m).__name__}")
    out_dtype = _float_dtype(dtype, "mx.dequantize")
    device = m.device
    support = _support(device, m.format, "dequantize")
    s = resolve_stream(device, stream)
    n = m.shape[m.axis]
    rest = tuple(d for a, d in enumerate(m.shape) if a != m.axis)
    rows = math.prod(rest)
    if rows and n:
        el = reshape(m.elements, (rows, m.blocks * m.format.block_bytes), stream=s)
        sc = reshape(m.scales, (rows, m.blocks), stream=s)
        if support is DTypeSupport.EMULATED:
            from . import emulated

            y = emulated.dequantize(el, sc, m.format, n, out_dtype, s)
        else:
            y = allocate(device, (rows, n), out_dtype)
            _launch(device, s, "mx_dequantize", [el, sc], [y],
                    {"format": m.format.name, "n": n})  # fmt: skip
    else:
        y = allocate(device, (rows, n), out_dtype)
    # back to the logical order: the block axis returns to its place (a view)
    order = list(range(len(rest)))
    order.insert(m.axis, len(rest))
    return permute_dims(reshape(y, (*rest, n)), order)


def matmul(a: MXTensor | Tensor, b: MXTensor | Tensor, *, out_dtype: Any = dt.float32,
           stream: Stream | None = None) -> Tensor:  # fmt: skip
    """``a @ b`` for 2-d operands, at least one an :class:`MXTensor`. MX operands must be
    blocked along the contracted dimension (``a`` along axis 1, ``b`` along axis 0). MX x MX
    runs the device's ``mx_matmul`` where both formats are native (block dot products
    exact, one rounding to ``out_dtype``), else multiplies the operands dequantized to
    float32 with the standard ``matmul``; MX x dense dequantizes the MX operand to
    ``out_dtype`` and multiplies with the standard ``matmul``."""
    from ..dispatch import allocate, resolve_stream
    from ..operations import matmul as dense_matmul

    out = _float_dtype(out_dtype, "mx.matmul out_dtype")
    if not isinstance(a, MXTensor) and not isinstance(b, MXTensor):
        raise DTypeError("mx.matmul needs at least one MXTensor; use hw.matmul for dense")
    for name, op, axis in (("a", a, 1), ("b", b, 0)):
        if not isinstance(op, (MXTensor, Tensor)):
            raise DTypeError(f"mx.matmul operand {name} is a {type(op).__name__}")
        if op.ndim != 2:
            raise ShapeError(f"mx.matmul takes 2-d operands; {name} has shape {op.shape}")
        if isinstance(op, MXTensor) and op.axis != axis:
            raise ShapeError(
                f"mx.matmul: {name} must be blocked along the contracted axis {axis}, not "
                f"{op.axis}; quantize it with axis={axis}"
            )
    if a.shape[1] != b.shape[0]:
        raise ShapeError(f"mx.matmul: shapes {a.shape} and {b.shape} do not contract")
    if a.device is not b.device:
        raise DeviceError(
            f"mx.matmul operands are on {a.device.name} and {b.device.name}; move one with .to()"
        )
    if not (isinstance(a, MXTensor) and isinstance(b, MXTensor)):
        da = a.dequantize(out, stream=stream) if isinstance(a, MXTensor) else a
        db = b.dequantize(out, stream=stream) if isinstance(b, MXTensor) else b
        return dense_matmul(da, db, stream=stream)
    device = a.device
    supports = (_support(device, a.format, "matmul"), _support(device, b.format, "matmul"))
    native = all(sup is DTypeSupport.NATIVE for sup in supports)
    s = resolve_stream(device, stream)
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    if k == 0:  # an empty sum
        from ..creation import zeros

        return zeros((m, n), dtype=out, device=device, stream=s)
    if not native:
        from . import emulated

        return emulated.matmul(a, b, out, s)
    result = allocate(device, (m, n), out)
    if m and n:
        _launch(
            device,
            s,
            "mx_matmul",
            [a.elements, a.scales, b.elements, b.scales],
            [result],
            {"a_format": a.format.name, "b_format": b.format.name, "k": k},
        )
    return result
