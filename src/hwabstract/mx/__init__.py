"""OCP Microscaling (MX) v1.0 block formats as first-class tensors: :func:`quantize`,
:func:`dequantize`, :func:`matmul` and :class:`MXTensor` on any device that supports the
format, the formats themselves, and the NumPy reference (:mod:`hwabstract.mx.reference`)
every device is checked against. See ``docs/mx.md``."""

from __future__ import annotations

from . import reference
from .formats import (
    BLOCK,
    FORMATS,
    MXFP4_E2M1,
    MXFP6_E2M3,
    MXFP6_E3M2,
    MXFP8_E4M3,
    MXFP8_E5M2,
    MXINT8,
    MXFormat,
    mx_format,
)
from .tensor import MXTensor, dequantize, matmul, quantize

__all__ = [
    "BLOCK",
    "FORMATS",
    "MXFP4_E2M1",
    "MXFP6_E2M3",
    "MXFP6_E3M2",
    "MXFP8_E4M3",
    "MXFP8_E5M2",
    "MXINT8",
    "MXFormat",
    "MXTensor",
    "dequantize",
    "matmul",
    "mx_format",
    "quantize",
    "reference",
]
