"""Run a simple CUDA C kernel on the CPU: one OS thread per CUDA thread, the blocks one
after another, ``__syncthreads`` a barrier of the block's threads, ``__shared__`` memory
shared by them. Enough for the backend's direct kernels (hwabstract_nvidia.direct): it
checks their indexing, strides, wrapping, block reductions and barriers where no GPU is.
What it cannot check is the GPU's memory model (fences, visibility between blocks) and
CUDA's own math functions (expf here is the C library's): the GPU tests do.

    kernel = compile_kernel(source, name, tmp_dir)   # g++ -std=c++20, cached per source
    kernel(grid, block, args)                        # args: NumPy arrays and NumPy scalars

Arrays are passed as pointers to their data, scalars by value in their C type, exactly as
``cuLaunchKernel``'s ``kernelParams`` passes them.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PRELUDE = r"""
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>
using std::isnan;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
static thread_local dim3 threadIdx;
static dim3 blockIdx, blockDim, gridDim;
static std::barrier<>* block_barrier;
#define __global__
#define __shared__ static
#define __syncthreads() block_barrier->arrive_and_wait()
#define __threadfence() std::atomic_thread_fence(std::memory_order_seq_cst)
static inline unsigned atomicAdd(unsigned* p, unsigned v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(long long i) {
    double d; std::memcpy(&d, &i, 8); return d;
}
"""

LAUNCHER = r"""
extern "C" void launch_on_cpu(unsigned grid, unsigned block, void** params) {
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; b++) {
        blockIdx.x = b;
        std::barrier<> barrier(block);
        block_barrier = &barrier;
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < block; t++)
            threads.emplace_back([=] { threadIdx.x = t; %(call)s; });
        for (auto& thread : threads) thread.join();
    }
}
"""


def compiler() -> str | None:
    """A C++20 compiler's path, or None."""
    return shutil.which("g++") or shutil.which("clang++")


def _parameters(source: str, name: str) -> list[str]:
    head = source.split(f"void {name}(", 1)[1].split(")", 1)[0]
    return [" ".join(p.split()) for p in head.split(",")]


def compile_kernel(source: str, name: str, folder: Path) -> Any:
    """``source``'s kernel ``name`` built for the CPU (a shared library in ``folder``)."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++ or clang++) on PATH")
    params = _parameters(source, name)
    # each parameter read from kernelParams[i] in its declared type ("const float* a" ->
    # *(const float**)params[i])
    casts = [f"*({param.rsplit(' ', 1)[0]}*)params[{i}]" for i, param in enumerate(params)]
    call = f"{name}({', '.join(casts)})"
    text = PRELUDE + source.replace('extern "C" ', "") + LAUNCHER % {"call": call}
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    library = folder / f"{name}-{digest}.so"
    if not library.exists():
        cpp = folder / f"{name}-{digest}.cpp"
        cpp.write_text(text, encoding="utf-8")
        subprocess.run(
            [cxx, "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC", "-o", str(library),
             str(cpp)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    lib = ctypes.CDLL(str(library))
    lib.launch_on_cpu.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]
    lib.launch_on_cpu.restype = None

    def launch(grid: int, block: int, args: Sequence[Any]) -> None:
        holders: list[Any] = []
        for a in args:
            if isinstance(a, np.ndarray):
                holders.append(ctypes.c_void_p(a.ctypes.data))
            else:
                value = np.asarray(a)
                holders.append(ctypes.create_string_buffer(value.tobytes(), value.nbytes))
        params = (ctypes.c_void_p * len(holders))(*(ctypes.addressof(h) for h in holders))
        lib.launch_on_cpu(grid, block, params)

    return launch
