"""The nvidia backend's direct kernels (hwabstract_nvidia.direct): their CUDA C source run
on the CPU (tests/plugins/nvidia/cuda_on_cpu.py: a thread per CUDA thread, barriers for
``__syncthreads``) against NumPy's reference, where no GPU is. This checks the kernels'
logic -- indexing, steps, integer wrapping, grid-stride loops, block reductions, the last
block's sum of the partials, NaN and infinity rules; the GPU tests check them on CUDA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("hwabstract_nvidia", reason="hwabstract-nvidia is not installed")

import cuda_on_cpu
from hwabstract_nvidia import direct

from hwabstract.kernels import get_spec

pytestmark = pytest.mark.skipif(
    cuda_on_cpu.compiler() is None, reason="needs a C++20 compiler (g++ or clang++)"
)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("cuda-on-cpu")
    cache: dict[tuple[str, str], Any] = {}

    def kernel(name: str, dtype: str) -> Any:
        if (name, dtype) not in cache:
            cache[name, dtype] = cuda_on_cpu.compile_kernel(
                direct.source(name, dtype), direct.kernel_name(name, dtype), folder
            )
        return cache[name, dtype]

    return kernel


_BINARY = [
    (k, d)
    for k in direct.BINARY
    for d in ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint64")
    if direct.supported(k, d)
]


@pytest.mark.parametrize(("kernel", "dtype"), _BINARY)
def test_binary_kernels_are_numpys_bit_for_bit(build: Any, kernel: str, dtype: str) -> None:
    rng = np.random.default_rng(1)
    n = 1000
    if dtype.startswith("float"):
        a, b = (rng.standard_normal(n).astype(dtype) for _ in "ab")
        a[:5] = [np.inf, -np.inf, np.nan, 0.0, -0.0]
        b[:5] = [np.inf, 1.0, 2.0, -0.0, 0.0]
    else:
        info = np.iinfo(dtype)  # the whole range: the kernels wrap
        a, b = (rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True) for _ in "ab")
    ref = get_spec(kernel).reference
    run = build(kernel, dtype)
    one, many = np.int64(0), np.int64(1)
    for grid in (4, 2):  # covering the elements once, and striding over them
        out = np.zeros(n, dtype)
        run(grid, 256, (a, many, b, many, out, np.int64(n)))
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(out, ref(a, b), strict=True)
        scalar = b[7:8].copy()
        run(grid, 256, (a, many, scalar, one, out, np.int64(n)))  # a broadcast scalar
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(out, ref(a, np.full(n, scalar[0])), strict=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sum_adds_every_block_once_and_resets_its_count(build: Any, dtype: str) -> None:
    rng = np.random.default_rng(2)
    run = build("sum", dtype)
    scratch = np.zeros(direct.SCRATCH_BYTES, np.uint8)
    partials = scratch[: direct.SUM_BLOCKS * 8].view(dtype)
    done = scratch[direct.SUM_BLOCKS * 8 :].view(np.uint32)
    eps = float(np.finfo(dtype).eps)
    for n, grid in ((1, 1), (300, 2), (5000, 7), (5000, 20), (777, 1)):
        a = rng.standard_normal(n).astype(dtype)
        out = np.zeros(1, dtype)
        run(grid, 256, (a, np.int64(n), out, partials, done))
        exact = a.sum(dtype=np.float64)
        np.testing.assert_allclose(out[0], exact, rtol=0, atol=32 * eps * np.abs(a).sum())
        assert done[0] == 0, "the last block leaves the count at zero for the next launch"
    for values, expected in (([1.0, np.inf], np.inf), ([np.nan, 1.0], np.nan)):
        out = np.zeros(1, dtype)
        run(3, 256, (np.array(values * 400, dtype), np.int64(800), out, partials, done))
        np.testing.assert_array_equal(out[0], np.array(expected, dtype))
    # negative zeros sum to +0.0, as NumPy's (whose reduction starts from +0.0)
    zeros = np.full(600, -0.0, dtype)
    out = np.full(1, np.nan, dtype)
    run(3, 256, (zeros, np.int64(600), out, partials, done))
    reference = get_spec("sum").reference(zeros, axes=(0,), keepdims=False, dtype=dtype)
    assert out[0] == 0 and np.signbit(out[0]) == np.signbit(reference)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_rows_match_the_reference(build: Any, dtype: str) -> None:
    rng = np.random.default_rng(3)
    run = build("softmax", dtype)
    eps = float(np.finfo(dtype).eps)
    ref = get_spec("softmax").reference
    for rows, length, grid in ((1, 1, 1), (5, 700, 5), (6, 3, 2), (3, 257, 3)):
        a = (rng.standard_normal((rows, length)) * 3).astype(dtype)
        if length > 1 and rows > 2:
            a[0, :2] = [1.0, np.nan]  # a NaN row
            a[1, 0], a[2, 0] = -np.inf, np.inf
        out = np.zeros_like(a)
        run(grid, 256, (a, out, np.int64(rows), np.int64(length)))
        expected = ref(a.astype(np.float64), axis=1)
        np.testing.assert_allclose(out, expected, rtol=64 * eps, atol=16 * eps)
