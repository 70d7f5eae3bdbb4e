"""Direct launches: the commonest kernels as hwabstract's own CUDA C, launched straight on
the operands' memory.

A CuPy call costs several microseconds of host time before its kernel is queued (type
resolution, broadcasting, a ``cupy.ndarray`` view of each operand, its kernel cache), and
a composite like softmax is five such calls; a GPU finishes a 1 MiB add in about one: on a
GPU the host's time is the operation's time. For the layouts that dominate real programs
the backend launches one kernel of its own instead, with the buffers' device pointers and
the sizes as its arguments -- no view, no stream context, no CuPy dispatch:

* ``add``, ``subtract``, ``multiply`` and float ``divide`` of two C-contiguous operands of
  one dtype (floats and integers), either possibly a single element (a Python scalar, which
  the core caches as a 0-d tensor): one IEEE operation per float element (NVRTC's
  defaults: no fast math, correctly rounded division, subnormals kept), two's-complement
  wrapping for integers (computed in unsigned arithmetic, where C defines it);
* ``sum`` of a whole C-contiguous float32 or float64 tensor in its own dtype: one kernel,
  each block's partial sum in a per-stream scratch area, the last block to finish adding
  the partials in block order (deterministic: the same input gives the same bits).

Not yet checked on a GPU, so run only with ``HWABSTRACT_NVIDIA_DIRECT=all`` (see
``UNVERIFIED``):

* ``softmax`` along the last axis of a C-contiguous float32 or float64 tensor: one block
  per row computes its maximum (NaN propagates, as ``max`` does), the sum of
  ``exp(x - max)`` and each ``exp(x - max) / sum`` -- the reference's formula, fused;
* ``matmul`` of two C-contiguous float32 or float64 matrices (2-D, no batch): cuBLAS's
  ``sgemm``/``dgemm`` called on the buffers' pointers (row-major ``C = A @ B`` is
  column-major ``C^T = B^T A^T``), on the stream, with the handle's math mode as CuPy
  leaves it (the GPU test checks the products against a full-FP32 error bound).

Each (kernel, dtype) is compiled once per GPU architecture with NVRTC (cached in memory and
on disk by :func:`~hwabstract_nvidia.compiler.compile_cuda`) and loaded once per device.
Any other layout, dtype or kernel keeps CuPy's path; so does a launch whose buffer was
freed or whose direct launch CUDA refused: it is handed to that path, which raises the
error CuPy's would have. ``HWABSTRACT_NVIDIA_DIRECT=0`` turns direct launches off (for
comparisons, or to rule them out), ``=all`` adds the unverified ones; where NVRTC cannot
compile one, the backend says why in ``NvidiaBackend.direct_status`` and keeps CuPy's path.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hwabstract import dtypes as dt
from hwabstract.backend import Operand

__all__ = ["BINARY", "BLAS", "C_TYPES", "REDUCING", "SCRATCH_BYTES", "THREADS", "UNVERIFIED",
           "VERIFIED", "Gemm", "Plan", "kernel_name", "plan"]  # fmt: skip

#: kernel -> its C operator on one element of each operand
BINARY: Mapping[str, str] = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}

#: dtype name -> (C type, the unsigned C type its arithmetic wraps in, or None for floats)
C_TYPES: Mapping[str, tuple[str, str | None]] = {
    "float32": ("float", None),
    "float64": ("double", None),
    "int8": ("signed char", "unsigned int"),
    "int16": ("short", "unsigned int"),
    "int32": ("int", "unsigned int"),
    "int64": ("long long", "unsigned long long"),
    "uint8": ("unsigned char", "unsigned int"),
    "uint16": ("unsigned short", "unsigned int"),
    "uint32": ("unsigned int", "unsigned int"),
    "uint64": ("unsigned long long", "unsigned long long"),
}

#: the kernels that reduce (one output from many elements), floats only
REDUCING = ("sum", "softmax")
#: the kernels cuBLAS runs (nothing to compile), floats only
BLAS = ("matmul",)
#: the direct kernels on by default: those checked on a GPU (an H200: the GPU tests of
#: tests/plugins/nvidia/test_nvidia_gpu.py, bit for bit or against the exact sum; the
#: elementwise ones through the whole conformance suite too)
VERIFIED = frozenset({"add", "subtract", "multiply", "divide", "sum"})
#: the direct kernels run only with HWABSTRACT_NVIDIA_DIRECT=all: tested on the fake CuPy
#: and (their CUDA C) compiled by NVRTC and run on the CPU, not yet checked on a GPU
UNVERIFIED = frozenset({"softmax", "matmul"})

#: threads per block (a power of two: the block reductions halve it); an elementwise grid
#: covers the elements once up to MAX_BLOCKS blocks, then each thread strides over the rest
THREADS = 256
MAX_BLOCKS = 1 << 16
#: a sum's grid: at most this many blocks, whose partial sums the scratch area holds
SUM_BLOCKS = 1024
#: each stream's scratch area: SUM_BLOCKS partial sums (of 8 bytes at most), then the
#: 4-byte count of blocks done (zero between launches: the last block resets it)
SCRATCH_BYTES = SUM_BLOCKS * 8 + 8


def kernel_name(kernel: str, dtype: str) -> str:
    return f"hwa_{kernel}_{dtype}"


def supported(kernel: str, dtype: str) -> bool:
    """Whether a direct kernel exists for ``kernel`` on ``dtype`` (divide, sum, softmax,
    matmul: floats only)."""
    if dtype not in C_TYPES or (kernel not in BINARY and kernel not in REDUCING + BLAS):
        return False
    return kernel in ("add", "subtract", "multiply") or C_TYPES[dtype][1] is None


_BLOCK_REDUCE = """
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {{
        if (threadIdx.x < s) {{
            {ctype} a = shared[threadIdx.x], b = shared[threadIdx.x + s];
            shared[threadIdx.x] = {combine};
        }}
        __syncthreads();
    }}
"""


def _block_reduce(ctype: str, combine: str) -> str:
    return _BLOCK_REDUCE.format(ctype=ctype, combine=combine)


def source(kernel: str, dtype: str) -> str:
    """The CUDA C of one direct kernel (see the module docstring for what each computes)."""
    if not supported(kernel, dtype):
        raise ValueError(f"no direct kernel for {kernel} on {dtype}")
    ctype, wrap = C_TYPES[dtype]
    name = kernel_name(kernel, dtype)
    if kernel in BINARY:
        op = BINARY[kernel]
        expr = f"x {op} y"
        if wrap is not None:  # two's-complement wrapping, defined in unsigned arithmetic
            expr = f"({ctype})(({wrap})x {op} ({wrap})y)"
        return f"""
extern "C" __global__ void {name}(
        const {ctype}* a, long long sa, const {ctype}* b, long long sb,
        {ctype}* out, long long n) {{
    long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {{
        {ctype} x = a[i * sa];
        {ctype} y = b[i * sb];
        out[i] = {expr};
    }}
}}
"""
    add = _block_reduce(ctype, "a + b")
    if kernel == "sum":
        # +0.0 is the identity, as NumPy's (a sum of negative zeros is +0.0 there too)
        return f"""
extern "C" __global__ void {name}(
        const {ctype}* x, long long n, {ctype}* out, {ctype}* partials,
        unsigned int* done) {{
    __shared__ {ctype} shared[{THREADS}];
    __shared__ bool last;
    {ctype} acc = 0;
    long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
        acc += x[i];
    shared[threadIdx.x] = acc;{add}
    if (threadIdx.x == 0) {{
        partials[blockIdx.x] = shared[0];
        __threadfence();
        last = atomicAdd(done, 1u) == gridDim.x - 1;
    }}
    __syncthreads();
    if (!last) return;
    acc = 0;
    for (unsigned int b = threadIdx.x; b < gridDim.x; b += blockDim.x)
        acc += ((volatile {ctype}*)partials)[b];
    shared[threadIdx.x] = acc;{add}
    if (threadIdx.x == 0) {{
        *out = shared[0];
        *done = 0u;
    }}
}}
"""
    # softmax along the last axis, one block per row
    exp = "expf" if ctype == "float" else "exp"
    minus_inf = (
        "__int_as_float(0xff800000)"
        if ctype == "float"
        else "__longlong_as_double(0xfff0000000000000LL)"
    )
    biggest = _block_reduce(ctype, "(b > a || isnan(b)) ? b : a")
    return f"""
extern "C" __global__ void {name}(
        const {ctype}* x, {ctype}* out, long long rows, long long len) {{
    __shared__ {ctype} shared[{THREADS}];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {{
        const {ctype}* row = x + r * len;
        {ctype}* o = out + r * len;
        {ctype} m = {minus_inf};
        for (long long i = threadIdx.x; i < len; i += blockDim.x) {{
            {ctype} v = row[i];
            m = (v > m || isnan(v)) ? v : m;
        }}
        shared[threadIdx.x] = m;{biggest}
        m = shared[0];
        __syncthreads();
        {ctype} s = 0;
        for (long long i = threadIdx.x; i < len; i += blockDim.x) s += {exp}(row[i] - m);
        shared[threadIdx.x] = s;{add}
        s = shared[0];
        __syncthreads();
        for (long long i = threadIdx.x; i < len; i += blockDim.x) o[i] = {exp}(row[i] - m) / s;
    }}
}}
"""


def _pointer(buffer: Any, offset: int) -> Any:
    """A buffer's memory moved by ``offset`` bytes (CuPy passes a MemoryPointer as its
    address)."""
    return buffer.mem if not offset else buffer.mem + offset


class Plan:
    """What a direct launch needs from the layouts, worked out once: the kernel, the grid,
    each operand's byte offset in its buffer, the sizes (as the NumPy int64s the launch
    passes), and whether it needs its stream's scratch area."""

    __slots__ = ("args", "block", "dtype", "grid", "kernel", "name", "offsets", "scratch",
                 "sizes")  # fmt: skip

    def __init__(self, kernel: str, dtype: str, grid: int, offsets: Sequence[int],
                 sizes: Sequence[int]) -> None:  # fmt: skip
        self.kernel = kernel
        self.dtype = dtype
        self.name = kernel_name(kernel, dtype)
        self.grid = (grid, 1, 1)
        self.block = (THREADS, 1, 1)
        self.offsets = tuple(offsets)  #: the inputs', then the output's, in bytes
        self.sizes = tuple(np.int64(s) for s in sizes)
        self.scratch = kernel == "sum"
        #: ``args(buffers, out, scratch)``: the kernel's arguments for input ``buffers``,
        #: output buffer ``out`` and the stream's scratch area (for a sum: MemoryPointers to
        #: its partial sums and to its count of blocks done); chosen once, per kernel
        self.args = {"sum": self._sum_args, "softmax": self._softmax_args,
                     "matmul": self._matmul_args}.get(kernel, self._binary_args)  # fmt: skip

    def _binary_args(self, buffers: Sequence[Any], out: Any, scratch: Any) -> tuple[Any, ...]:
        (oa, ob, oo), (sa, sb, n) = self.offsets, self.sizes
        a, b = buffers
        return _pointer(a, oa), sa, _pointer(b, ob), sb, _pointer(out, oo), n

    def _sum_args(self, buffers: Sequence[Any], out: Any, scratch: Any) -> tuple[Any, ...]:
        (ox, oo), (n,) = self.offsets, self.sizes
        return _pointer(buffers[0], ox), n, _pointer(out, oo), *scratch

    def _softmax_args(self, buffers: Sequence[Any], out: Any, scratch: Any) -> tuple[Any, ...]:
        ox, oo = self.offsets
        return _pointer(buffers[0], ox), _pointer(out, oo), *self.sizes

    def _matmul_args(self, buffers: Sequence[Any], out: Any, scratch: Any) -> tuple[Any, ...]:
        (oa, ob, oo), (a, b) = self.offsets, buffers  # (ints: cuBLAS's binding takes size_t)
        return a.mem.ptr + oa, b.mem.ptr + ob, out.mem.ptr + oo, *self.sizes


def _step(op: Operand, n: int) -> int | None:
    """The element step of an input over ``n`` output elements: 1 for a C-contiguous operand
    of that size, 0 for a single element (broadcast: every stride 0, as the core passes a
    scalar), None for any other layout."""
    if all(st == 0 or d == 1 for st, d in zip(op.strides, op.shape)):
        return 0
    if op.size == n and op.is_contiguous:
        return 1
    return None


def plan(kernel: str, inputs: Sequence[Operand], outputs: Sequence[Operand],
         attributes: Mapping[str, Any]) -> Plan | None:  # fmt: skip
    """A direct launch's plan for this call signature, or None where CuPy's path runs it."""
    if len(outputs) != 1 or not inputs or any(op.dtype != outputs[0].dtype for op in inputs):
        return None
    out = outputs[0]
    dtype, item = out.dtype.name, out.dtype.itemsize
    if not supported(kernel, dtype) or not out.is_contiguous:
        return None
    offsets = [op.offset * item for op in (*inputs, out)]
    if kernel in BINARY:
        n = out.size
        if attributes or len(inputs) != 2 or n == 0:
            return None
        sa, sb = _step(inputs[0], n), _step(inputs[1], n)
        if sa is None or sb is None:
            return None
        return Plan(kernel, dtype, min(-(-n // THREADS), MAX_BLOCKS), offsets, (sa, sb, n))
    if kernel == "matmul":
        if len(inputs) != 2 or any(len(op.shape) != 2 or not op.is_contiguous for op in inputs):
            return None
        (m, k), (_, n) = inputs[0].shape, inputs[1].shape
        if not (m and n and k) or max(m, n, k) >= 1 << 31:
            return None
        return Plan(kernel, dtype, 1, offsets, (m, n, k))
    if len(inputs) != 1:
        return None
    (x,) = inputs
    n = x.size
    if n == 0 or not x.is_contiguous:
        return None
    if kernel == "sum":
        axes, target = tuple(attributes.get("axes", ())), attributes.get("dtype")
        if axes != tuple(range(len(x.shape))) or target is None or dt.dtype(target) != out.dtype:
            return None
        return Plan(kernel, dtype, min(-(-n // THREADS), SUM_BLOCKS), offsets, (n,))
    if kernel == "softmax" and x.shape and attributes.get("axis") == len(x.shape) - 1:
        length = x.shape[-1]
        rows = n // length
        return Plan(kernel, dtype, min(rows, MAX_BLOCKS), offsets, (rows, length))
    return None


class Gemm:
    """cuBLAS's ``sgemm``/``dgemm`` behind a kernel's calling convention (what a direct
    launch calls): ``gemm(grid, block, (A, B, C, m, n, k), shared_mem=, stream=)`` computes
    the row-major ``C = A @ B`` on ``stream``. The handle is CuPy's for this thread and
    device; its stream and pointer mode (host: ``alpha`` and ``beta`` are read before the
    call returns) are set on every call, as CuPy's own calls set them."""

    __slots__ = ("_alpha", "_beta", "_cublas", "_gemm", "_handle")

    def __init__(self, cp: Any, dtype: str) -> None:
        # (``cupy.cuda.cublas`` is an attribute of cupy.cuda, not necessarily a module of
        # that name: CuPy's binding lives in cupy_backends)
        cublas = getattr(cp.cuda, "cublas", None)
        if cublas is None:
            cublas = importlib.import_module("cupy_backends.cuda.libs.cublas")
        self._cublas = cublas
        self._gemm = cublas.sgemm if dtype == "float32" else cublas.dgemm
        self._handle = cp.cuda.device.get_cublas_handle
        self._alpha = np.ones(1, dtype)
        self._beta = np.zeros(1, dtype)

    def __call__(self, grid: Any, block: Any, args: Sequence[Any], shared_mem: int = 0,
                 stream: Any = None) -> None:  # fmt: skip
        a, b, c, m, n, k = args
        cublas = self._cublas
        handle = self._handle()
        cublas.setStream(handle, stream.ptr)
        cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
        op = cublas.CUBLAS_OP_N
        # column-major C^T (n x m) = B^T (n x k) @ A^T (k x m): the row-major buffers as
        # they are, with leading dimensions n, k and n
        self._gemm(handle, op, op, int(n), int(m), int(k), self._alpha.ctypes.data, b,
                   int(n), a, int(k), self._beta.ctypes.data, c, int(n))  # fmt: skip
