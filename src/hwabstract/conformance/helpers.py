"""Small helpers the suite's areas share: picking dtypes a device declares."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

from .. import dtypes as dt
from ..dtypes import DType

__all__ = ["byte_dtype", "declared", "float_dtype", "not_claimed", "settled_in_use"]


def not_claimed(what: str) -> NoReturn:
    """Skip the current test because the device does not claim ``what``."""
    pytest.skip(f"not claimed: {what}")


def declared(device: Any, kinds: str = "biufc") -> list[DType]:
    """The dtypes ``device`` declares, of the given kinds, in hwabstract's order."""
    caps = device.capabilities
    return [d for d in dt.all_dtypes() if d.kind in kinds and caps.supports_dtype(d)]


def byte_dtype(device: Any) -> DType:
    """The narrowest integer (or bool) dtype the device declares: for sizing allocations in
    bytes and for bit-level checks."""
    found = sorted(declared(device, "uib"), key=lambda d: (d.itemsize, d.kind != "u"))
    if not found:
        found = sorted(declared(device), key=lambda d: d.itemsize)
    if not found:
        not_claimed("any dtype")
    return found[0]


def float_dtype(device: Any) -> DType:
    """float32 if declared, else the widest real floating dtype the device declares."""
    floats = declared(device, "f")
    if not floats:
        not_claimed("any floating dtype")
    return dt.float32 if dt.float32 in floats else max(floats, key=lambda d: d.itemsize)


def settled_in_use(device: Any) -> int:
    """Bytes in use on ``device`` once every queued free has run and the SDK's own caches
    (the 0-d tensors that hold recently used Python scalars) are released: the figure that
    must come back to its baseline after a test."""
    import gc

    from .. import dispatch

    dispatch.clear_scalar_caches()
    gc.collect()
    device.synchronize()
    return int(device.memory_stats().in_use)
