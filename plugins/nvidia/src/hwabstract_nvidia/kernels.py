"""Custom CUDA C++ kernels on nvidia devices, compiled with NVRTC and cached.

::

    import numpy as np
    import hwabstract as hw
    from hwabstract_nvidia import CudaKernel

    axpy = CudaKernel(r'''
    extern "C" __global__ void axpy(float a, const float* x, float* y, long long n) {
        long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
        if (i < n) y[i] = a * x[i] + y[i];
    }''', "axpy")
    axpy(grid=(n + 255) // 256, block=256, args=(np.float32(2.0), x, y, np.int64(n)))

Arguments are tensors (passed as a pointer to the tensor's element at index 0, in its
dtype -- the kernel must respect the tensor's strides, which C-contiguous tensors make
the simple case) and NumPy scalars, whose type fixes the C type (``np.float32`` ->
``float``, ``np.int64`` -> ``long long``); plain Python numbers are refused, since their
C width would be a guess. The launch is queued on the stream (the current one by
default), after the last writes of its tensor arguments, and counts as a write of each of
them. The source is compiled once per GPU architecture (CUBIN for the device's
``sm_XY``), cached in memory and on disk (see :mod:`hwabstract_nvidia.compiler`); the
loaded module is kept per device.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

import hwabstract as hw
from hwabstract.errors import DeviceError, DTypeError, KernelError

from .compiler import CompiledModule, compile_cuda

__all__ = ["CudaKernel"]


def _dims(value: int | Sequence[int], what: str) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in dims
    ):
        raise KernelError(f"{what} must be a positive int or 1 to 3 positive ints, got {value!r}")
    return (*(int(d) for d in dims), 1, 1)[:3]  # type: ignore[return-value]


class CudaKernel:
    """A CUDA C++ kernel ``name`` in ``source``, launched on hwabstract nvidia tensors."""

    def __init__(self, source: str, name: str, *, options: Sequence[str] = ()) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise KernelError(f"the kernel name must be a C identifier, got {name!r}")
        self.source = source
        self.name = name
        self.options = tuple(options)
        self._functions: dict[tuple[Any, int], Any] = {}
        self._lock = threading.Lock()

    def compile(self, arch: str) -> CompiledModule:
        """Compile for ``arch`` (``sm_XY`` or ``compute_XY``) without launching: works on
        machines without a GPU, e.g. to check a kernel in CI."""
        return compile_cuda(self.source, arch=arch, options=self.options,
                            filename=f"{self.name}.cu")  # fmt: skip

    def _function(self, impl: Any, index: int) -> Any:
        key = (impl, index)
        fn = self._functions.get(key)
        if fn is None:
            major, minor = impl.compute_capability(index)
            module = self.compile(f"sm_{major}{minor}")
            cp = impl._cp
            with self._lock, cp.cuda.Device(index):
                loaded = cp.cuda.function.Module()
                try:
                    loaded.load(module.image)
                    fn = loaded.get_function(self.name)
                except cp.cuda.driver.CUDADriverError as exc:
                    # (the hint only where the symbol is missing, not for every load failure)
                    hint = (
                        ' (is it declared extern "C" __global__?)'
                        if "NOT_FOUND" in str(exc)
                        else ""
                    )
                    raise KernelError(
                        f"CUDA could not load kernel {self.name!r} on nvidia:{index}: {exc}{hint}",
                        vendor_message=str(exc),
                    ) from exc
                self._functions[key] = fn
        return fn

    def __call__(
        self,
        grid: int | Sequence[int],
        block: int | Sequence[int],
        args: Sequence[Any],
        *,
        shared_mem: int = 0,
        stream: hw.Stream | None = None,
    ) -> None:
        from hwabstract.dispatch import resolve_stream

        from .backend import NvidiaBackend

        grid3, block3 = _dims(grid, "grid"), _dims(block, "block")
        tensors = [a for a in args if isinstance(a, hw.Tensor)]
        for a in args:
            if not isinstance(a, (hw.Tensor, np.generic)):
                raise DTypeError(
                    f"kernel {self.name!r}: argument {a!r} is a {type(a).__name__}; pass "
                    "tensors and NumPy scalars (np.float32(x), np.int64(n), ...), whose type "
                    "says the C type"
                )
        if stream is not None:
            device = stream.device
        elif tensors:
            device = tensors[0].device
        else:
            raise KernelError(f"kernel {self.name!r}: pass a tensor argument or stream=")
        impl = device._impl
        if not isinstance(impl, NvidiaBackend):
            raise DeviceError(
                f"kernel {self.name!r}: {device.name} is not an nvidia device and CUDA kernels "
                "run only on nvidia devices; move it there with .to('nvidia:0')"
            )
        for t in tensors:
            if t.device is not device:
                raise DeviceError(
                    f"kernel {self.name!r}: {t.device.name} tensor among arguments for "
                    f"{device.name}; move it with .to()"
                )
        threads = block3[0] * block3[1] * block3[2]
        limit = int(impl._props[device.index].get("maxThreadsPerBlock", 1024))
        if threads > limit:
            raise KernelError(
                f"kernel {self.name!r}: a block of {threads} threads exceeds {device.name}'s "
                f"limit of {limit}"
            )
        s = resolve_stream(device, stream)
        fn = self._function(impl, device.index)
        for t in tensors:
            t._storage.order_before(s)
        handle = s.handle
        impl._uses(handle, *(t._operand().buffer for t in tensors))
        cargs = tuple(impl.view(a._operand()) if isinstance(a, hw.Tensor) else a for a in args)
        cp = impl._cp
        try:
            with cp.cuda.Device(device.index):
                fn(grid3, block3, cargs, shared_mem=shared_mem, stream=handle.cuda)
        except (cp.cuda.driver.CUDADriverError, TypeError, ValueError) as exc:
            raise KernelError(
                f"kernel {self.name!r} could not be launched on {device.name}: {exc}",
                vendor_message=f"{type(exc).__name__}: {exc}",
            ) from exc
        for t in tensors:
            t._storage.mark_written(s)

    def __repr__(self) -> str:
        return f"CudaKernel({self.name!r}, options={self.options!r})"
