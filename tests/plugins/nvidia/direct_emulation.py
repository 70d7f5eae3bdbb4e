"""The nvidia backend's direct kernels (:mod:`hwabstract_nvidia.direct`) on the fake CuPy:
a stand-in for NVRTC that "compiles" their source to an image naming each kernel (the fake
loads any image that names its kernels), and a NumPy emulation of each kernel that reads
and writes the fake's device memory at the pointers it is launched with. What it proves is
the backend's side (plans, pointers, offsets, steps, grids, fallbacks), not CUDA's
arithmetic: the conformance suite on a GPU certifies that."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import fake_cupy
import numpy as np
from hwabstract_nvidia import direct
from hwabstract_nvidia.compiler import CompiledModule

_UFUNCS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide}


def fake_compile(source: str, arch: str, options: Sequence[str] = (),
                 filename: str = "kernel.cu") -> CompiledModule:  # fmt: skip
    names = re.findall(r"void (hwa_\w+)\(", source)
    assert names, "not a direct kernel's source"
    image = b"\x7fELF fake cubin: " + " ".join(names).encode()
    return CompiledModule(image, "cubin", arch, "", f"fake-{arch}-{names[0]}")


def _memory(pointer: Any, dtype: np.dtype[Any], count: int) -> np.ndarray:
    nbytes = count * dtype.itemsize
    alloc = fake_cupy.gpu().find(pointer.ptr, nbytes)
    if alloc is None:  # (what an out-of-bounds access would be on a GPU)
        raise fake_cupy.CUDADriverError(700)
    start = pointer.ptr - alloc.start
    return alloc.host[start : start + nbytes].view(dtype)


def _run(ufunc: Any, dtype: np.dtype[Any], grid: tuple[int, ...], block: tuple[int, ...],
         args: Sequence[Any], shared_mem: int) -> None:  # fmt: skip
    a, sa, b, sb, out, n = args
    for value in (sa, sb, n):
        assert type(value) is np.int64, "steps and counts are passed as int64"
    count = int(n)
    assert grid[0] * block[0] >= min(count, direct.MAX_BLOCKS * direct.THREADS)
    x = _memory(a, dtype, count if sa else 1)
    y = _memory(b, dtype, count if sb else 1)
    with np.errstate(all="ignore"):
        _memory(out, dtype, count)[...] = ufunc(x, y).astype(dtype)


def _sum(dtype: np.dtype[Any], grid: tuple[int, ...], block: tuple[int, ...],
         args: Sequence[Any], shared_mem: int) -> None:  # fmt: skip
    x, n, out, partials, done = args
    assert type(n) is np.int64 and grid[0] <= direct.SUM_BLOCKS
    assert partials.ptr + direct.SUM_BLOCKS * 8 == done.ptr
    assert _memory(done, np.dtype(np.uint32), 1)[0] == 0, "the count of blocks done is zeroed"
    _memory(partials, np.dtype(np.uint8), direct.SCRATCH_BYTES)  # (all of it is there)
    _memory(out, dtype, 1)[0] = _memory(x, dtype, int(n)).sum(dtype=dtype)


def _softmax(dtype: np.dtype[Any], grid: tuple[int, ...], block: tuple[int, ...],
             args: Sequence[Any], shared_mem: int) -> None:  # fmt: skip
    x, out, rows, length = args
    shape = (int(rows), int(length))
    c = _memory(x, dtype, shape[0] * shape[1]).reshape(shape)
    with np.errstate(all="ignore"):
        e = np.exp(c - c.max(axis=1, keepdims=True))
        _memory(out, dtype, c.size).reshape(shape)[...] = e / e.sum(axis=1, keepdims=True)


def install(gpu: fake_cupy.FakeGpu) -> Callable[..., CompiledModule]:
    """Register every direct kernel's emulation on ``gpu``; returns the NVRTC stand-in to
    put in place of ``hwabstract_nvidia.compiler.compile_cuda``."""
    for kernel in (*direct.BINARY, *direct.REDUCING):
        for dtype in direct.C_TYPES:
            if not direct.supported(kernel, dtype):
                continue
            run: Any = _sum if kernel == "sum" else _softmax if kernel == "softmax" else None
            emulate = (
                functools.partial(run, np.dtype(dtype))
                if run is not None
                else functools.partial(_run, _UFUNCS[kernel], np.dtype(dtype))
            )
            gpu.kernels[direct.kernel_name(kernel, dtype)] = emulate
    return fake_compile
