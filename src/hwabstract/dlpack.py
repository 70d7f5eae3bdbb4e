"""DLPack exchange: ``Tensor.__dlpack__``, ``Tensor.__dlpack_device__`` and
:func:`from_dlpack`.

Export works for devices whose backend can give a host view of their memory
(:meth:`Backend.host_view`); those devices present themselves to DLPack as ``kDLCPU``.
Before handing memory out, export waits for the stream that last wrote the tensor (a CPU
consumer has no stream to order against), so the consumer always sees finished data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DLPackError
from . import dtypes as dt
from .tensor import Storage, Tensor

__all__ = ["KDLCPU", "export_tensor", "from_dlpack", "tensor_device"]

KDLCPU = 1


def tensor_device(tensor: Tensor) -> tuple[int, int]:
    """The ``(device_type, device_id)`` DLPack pair of ``tensor``."""
    impl = tensor.device._impl
    if impl.host_view(tensor._operand()) is not None:
        return (KDLCPU, 0)
    raise DLPackError(
        f"{tensor.device.name} does not expose its memory through DLPack; copy to the host "
        "with t.numpy() instead"
    )


def export_tensor(
    tensor: Tensor,
    *,
    stream: Any = None,
    max_version: tuple[int, int] | None = None,
    dl_device: tuple[int, int] | None = None,
    copy: bool | None = None,
) -> Any:
    """The DLPack capsule for ``tensor`` (see the DLPack Python specification)."""
    device = tensor_device(tensor)
    if dl_device is not None and tuple(dl_device) != device:
        raise DLPackError(
            f"cannot export {tensor.device.name} memory to DLPack device {tuple(dl_device)}; "
            f"it is available as {device}"
        )
    if stream is not None and stream != -1:
        raise DLPackError(f"a CPU DLPack consumer passes stream=None, got stream={stream!r}")
    storage = tensor._storage
    (storage.last_stream or storage.device.default_stream).synchronize()
    view = tensor.device._impl.host_view(tensor._operand())
    if copy:
        view = view.copy()
    try:
        return view.__dlpack__(max_version=max_version, copy=False)
    except (BufferError, TypeError) as exc:
        raise DLPackError(
            f"cannot export a {tensor.dtype} tensor through DLPack here: {exc}"
        ) from exc


def from_dlpack(x: Any, /, *, device: Any = None, copy: bool | None = None) -> Tensor:
    """A tensor sharing (or, with ``copy=True``, copying) the memory of a DLPack producer.

    Host memory is shared without a copy when the target device can address it (the cpu
    backend can); otherwise it is copied onto the device.
    """
    from .creation import _upload
    from .registry import get_registry

    if isinstance(x, Tensor):
        target = x.device if device is None else get_registry().device(device)
        result = x.to(target)
        return result.astype(result.dtype) if copy and result is x else result
    if not hasattr(x, "__dlpack__"):
        raise DLPackError(f"{type(x).__name__} does not implement the DLPack protocol")
    try:
        host = np.from_dlpack(x, device="cpu", copy=copy)
    except (BufferError, TypeError, ValueError, RuntimeError) as exc:
        raise DLPackError(f"cannot import {type(x).__name__} through DLPack: {exc}") from exc
    target = get_registry().device(device)
    if copy is not True and host.flags.c_contiguous:
        buffer = target._impl.adopt_host_array(target.index, host)
        if buffer is not None:
            return Tensor._wrap(Storage(target, host.nbytes, buffer), dt.dtype(host.dtype),
                                host.shape)  # fmt: skip
    if copy is False:
        raise DLPackError(
            f"from_dlpack(copy=False): {target.name} cannot share this host memory; "
            "pass copy=None to allow a copy"
        )
    return _upload(host, target, None)
