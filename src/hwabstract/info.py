"""``__array_namespace_info__()``: the Array API's inspection object, answered from the
devices' capability manifests.

* ``capabilities()`` -- what the namespace supports on every device: boolean indexing and
  data-dependent shapes (``nonzero``, ``unique_*``, ``x[mask]``: each reads a count back
  from the device once), and the fewest dimensions any working device allows.
* ``default_device()`` -- :func:`hwabstract.device` with no argument.
* ``devices()`` -- every device of every working backend.
* ``dtypes(device=, kind=)`` -- the standard dtypes the device declares (natively or
  emulated). bfloat16 and the float8 dtypes are hwabstract extensions and are not listed;
  they are reachable as ``hw.bfloat16`` etc. where a device declares them.
* ``default_dtypes(device=)`` -- float32, complex64, int64 and int64 (indexing) on every device
  that has them; a device without complex dtypes (maia) reports ``None`` for
  "complex floating".
"""

from __future__ import annotations

from typing import Any

from . import dtypes as dt
from .dtypes import DType

__all__ = ["ArrayNamespaceInfo", "__array_namespace_info__"]

#: The dtypes of the Array API standard, by name, in the standard's order.
STANDARD_DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        dt.bool_, dt.int8, dt.int16, dt.int32, dt.int64, dt.uint8, dt.uint16, dt.uint32,
        dt.uint64, dt.float32, dt.float64, dt.complex64, dt.complex128,
    )
}  # fmt: skip


def _device(device: Any) -> Any:
    from . import device as get_device

    return get_device(device)


class ArrayNamespaceInfo:
    """The object ``hw.__array_namespace_info__()`` returns (see the module docstring)."""

    __module__ = "hwabstract"

    def capabilities(self) -> dict[str, Any]:
        from . import devices

        dims = [d.capabilities.limits.max_dims for d in devices()]
        return {
            "boolean indexing": True,
            "data-dependent shapes": True,
            "max dimensions": min(dims) if dims else None,
        }

    def default_device(self) -> Any:
        return _device(None)

    def devices(self) -> list[Any]:
        from . import devices

        return devices()

    def dtypes(self, *, device: Any = None, kind: Any = None) -> dict[str, DType]:
        caps = _device(device).capabilities
        found = {n: d for n, d in STANDARD_DTYPES.items() if caps.supports_dtype(d)}
        if kind is None:
            return found
        return {n: d for n, d in found.items() if dt.isdtype(d, kind)}

    def default_dtypes(self, *, device: Any = None) -> dict[str, DType | None]:
        caps = _device(device).capabilities

        def declared(d: DType) -> DType | None:
            return d if caps.supports_dtype(d) else None

        return {
            "real floating": declared(dt.default_float),
            "complex floating": declared(dt.default_complex),
            "integral": declared(dt.default_int),
            "indexing": declared(dt.int64),
        }


def __array_namespace_info__() -> ArrayNamespaceInfo:
    """The Array API inspection object (see :class:`ArrayNamespaceInfo`)."""
    return ArrayNamespaceInfo()
