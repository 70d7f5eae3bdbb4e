"""Custom kernels on the ``tpu`` backend, written with Pallas (``jax.experimental.pallas``).

::

    import hwabstract as hw
    from hwabstract_tpu import pallas_call

    def axpy(x_ref, y_ref, o_ref):  # a Pallas kernel: refs in, refs out
        o_ref[...] = 2.0 * x_ref[...] + y_ref[...]

    run = pallas_call(axpy, out_shape=(1024,), out_dtype=hw.float32)
    z = run(x, y)  # x, y: tensors on a tpu device; z: a new tensor there

The kernel is compiled by Mosaic on a real TPU; on the stand-in (JAX's CPU client) it runs
in Pallas's interpret mode, which proves the kernel's logic, not its TPU performance. The
launch goes through the backend like any other: queued on the stream, compiled once per
(kernel, shapes, dtypes, layouts) and cached, inputs may be strided views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import hwabstract as hw
from hwabstract.errors import DeviceError, DTypeError

__all__ = ["pallas_call"]


def pallas_call(
    kernel: Callable[..., None],
    *,
    out_shape: Sequence[int],
    out_dtype: Any,
    grid: Sequence[int] = (),
    in_specs: Any = None,
    out_specs: Any = None,
) -> Callable[..., hw.Tensor]:
    """A function launching the Pallas ``kernel`` on tpu tensors: its inputs are the
    tensors passed, its output a new tensor of ``out_shape`` and ``out_dtype``. ``grid``,
    ``in_specs`` and ``out_specs`` are passed to ``pl.pallas_call`` unchanged."""
    shape = tuple(int(d) for d in out_shape)
    dtype = hw.dtypes.dtype(out_dtype)
    tag = ("pallas", kernel, shape, dtype.name, tuple(grid), repr(in_specs), repr(out_specs))

    def run(*tensors: hw.Tensor, stream: hw.Stream | None = None) -> hw.Tensor:
        from hwabstract.dispatch import allocate, resolve_stream

        if not tensors or not all(isinstance(t, hw.Tensor) for t in tensors):
            raise DTypeError("a Pallas kernel takes hwabstract tensors (at least one)")
        device = tensors[0].device
        if any(t.device is not device for t in tensors):
            raise DeviceError("the tensors of a Pallas kernel must be on one device")
        from .backend import TpuBackend

        impl = device._impl
        if not isinstance(impl, TpuBackend):
            raise DeviceError(f"{device.name} is not a tpu device: Pallas kernels run on tpu")
        s = resolve_stream(device, stream)
        for t in tensors:
            t._storage.order_before(s)
        out = allocate(device, shape, dtype)
        fn = impl.pallas_function(kernel, shape, dtype, tuple(grid), in_specs, out_specs)
        impl._run(s.handle, tag, fn, [t._operand() for t in tensors], out._operand())
        out._storage.mark_written(s)
        return out

    run.__name__ = getattr(kernel, "__name__", "pallas_kernel")
    run.__doc__ = f"Launch the Pallas kernel {run.__name__} on tpu tensors."
    return run
