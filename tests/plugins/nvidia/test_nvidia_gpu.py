"""The nvidia backend on a real GPU: memory and its errors, streams and events, custom
kernels, DLPack with CuPy (and PyTorch or JAX where installed), peer copies. Marked
``gpu``: the default tox run excludes them; ``tox -e nvidia-gpu`` on a GPU machine runs
them. The standard kernels are certified by the conformance suite (``tox -e
conformance-nvidia``)."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

pytest.importorskip("hwabstract_nvidia", reason="hwabstract-nvidia is not installed")
pytest.importorskip("cupy", reason="CuPy is not installed")

import cupy
from backends import array_kernel_cases
from hwabstract_nvidia import CudaKernel
from hwabstract_nvidia.backend import unavailable_reason

import hwabstract as hw
from hwabstract.errors import DeviceError, DTypeError, OutOfMemoryError
from hwabstract.kernels import get_spec

_why = unavailable_reason(cupy)
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(_why is not None, reason=f"no usable GPU: {_why and _why[0]}"),
]

AXPY = r"""
extern "C" __global__ void axpy(float a, const float* x, float* y, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"""


@pytest.fixture
def gpu() -> hw.Device:
    return hw.device("nvidia:0")


def test_the_device_describes_the_gpu(gpu: hw.Device) -> None:
    info = gpu.info
    assert info.vendor == "NVIDIA" and not info.standin
    assert info.memory_capacity > 10**9
    assert "compute_capability" in info.extra and info.driver_version.startswith("CUDA driver")


def test_kernels_compute_on_the_gpu(gpu: hw.Device) -> None:
    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    x = hw.asarray(a, device=gpu)
    np.testing.assert_allclose(hw.add(x, x).numpy(), a + a)
    np.testing.assert_allclose(hw.matmul(x, x).numpy(), a @ a, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(hw.sum(x).numpy(), a.sum(dtype=np.float64), rtol=1e-5)
    np.testing.assert_array_equal(hw.asarray(a[::-1, ::2], device=gpu).numpy(), a[::-1, ::2])


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint16", "uint32"])
def test_integer_pow_wraps_like_numpy_for_any_exponent(gpu: hw.Device, dtype: str) -> None:
    """JAX's ``power`` multiplies for the low 6 bits of an integer exponent only (see
    tests/backends/test_pjrt.py); this checks that CuPy's, which the kernel table uses as
    it is, wraps like NumPy for exponents of 64 and more too."""
    a, b, expected = array_kernel_cases.integer_pow_case(dtype)
    got = hw.pow(hw.asarray(a, device=gpu), hw.asarray(b, device=gpu)).numpy()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64"]
)
def test_direct_kernels_match_numpy_bit_for_bit(gpu: hw.Device, dtype: str) -> None:
    """The backend's own elementwise kernels (hwabstract_nvidia.direct) compute what NumPy
    computes, exactly: one IEEE operation per float element (subnormals, infinities and
    NaNs among the inputs), two's-complement wrapping over the whole integer range; with
    a Python scalar and with offsets too."""
    from hwabstract_nvidia import direct

    rng = np.random.default_rng(7)
    n = 1 << 16
    if dtype.startswith("float"):
        info = np.finfo(dtype)
        specials = [0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny / 4, -info.smallest_subnormal,
                    info.max, info.tiny]  # fmt: skip
        a, b = (rng.standard_normal(n).astype(dtype) for _ in "ab")
        a[: len(specials)] = specials
        b[1 : len(specials) + 1] = specials
        scalar = 2.5
    else:
        iinfo = np.iinfo(dtype)
        a, b = (rng.integers(iinfo.min, iinfo.max, n, dtype=dtype, endpoint=True) for _ in "ab")
        scalar = 3
    x, y = hw.asarray(a, device=gpu), hw.asarray(b, device=gpu)
    impl = gpu._impl
    kernels = [k for k in direct.BINARY if direct.supported(k, dtype)]
    for kernel in kernels:
        fn, ref = getattr(hw, kernel), get_spec(kernel).reference
        with np.errstate(all="ignore"):
            expected = ref(a, b)
            with_scalar = ref(a, np.asarray(scalar, dtype))
            shifted = ref(a[3:], b[:-3])
        for _ in range(2):  # the first launch, then the bound one
            np.testing.assert_array_equal(fn(x, y).numpy(), expected, strict=True)
            np.testing.assert_array_equal(fn(x, scalar).numpy(), with_scalar, strict=True)
            np.testing.assert_array_equal(fn(x[3:], y[:-3]).numpy(), shifted, strict=True)
    assert impl.direct_status == "on"
    assert {name for name, _ in impl._direct} >= {direct.kernel_name(k, dtype) for k in kernels}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_sum_on_the_gpu(gpu: hw.Device, dtype: str) -> None:
    """The backend's own sum (one kernel, partial sums in the stream's scratch area, the
    last block adding them up): within a few eps of the exact sum, the same bits every
    time, infinities and NaNs as the reference has them."""
    impl = gpu._impl
    assert impl.direct_status == "on" and "sum" in impl.direct_kernels
    rng = np.random.default_rng(11)
    eps = float(np.finfo(dtype).eps)
    for n in (1, 255, 256, 257, 1 << 18, (1 << 22) + 3):
        a = rng.standard_normal(n).astype(dtype)
        x = hw.asarray(a, device=gpu)
        first, second = hw.sum(x).numpy(), hw.sum(x).numpy()
        assert first.tobytes() == second.tobytes(), n  # deterministic
        exact = a.sum(dtype=np.float64)
        np.testing.assert_allclose(first, exact, rtol=0, atol=64 * eps * np.abs(a).sum())
    for special, expected in (([1.0, np.inf], np.inf), ([np.nan, 1.0], np.nan),
                              ([np.inf, -np.inf], np.nan)):  # fmt: skip
        got = hw.sum(hw.asarray(np.array(special * 300, dtype), device=gpu)).numpy()
        np.testing.assert_array_equal(got, np.array(expected, dtype))
    assert (f"hwa_sum_{dtype}", 0) in impl._direct


@pytest.fixture
def all_direct(gpu: hw.Device, monkeypatch: pytest.MonkeyPatch) -> hw.Device:
    """``gpu`` with the direct kernels not yet verified on a GPU on too (what
    HWABSTRACT_NVIDIA_DIRECT=all does), so that these tests verify them."""
    from hwabstract_nvidia import direct

    impl = gpu._impl
    monkeypatch.setattr(impl, "direct_kernels", direct.VERIFIED | direct.UNVERIFIED)
    assert impl.direct_status == "on" and impl.direct_blas_status == "on"
    return gpu


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_softmax_on_the_gpu(all_direct: hw.Device, dtype: str) -> None:
    """The fused softmax: close to the float64 reference, NaN rows and infinities as the
    reference has them, on rows shorter and longer than a block."""
    gpu = all_direct
    rng = np.random.default_rng(12)
    eps = float(np.finfo(dtype).eps)
    ref = get_spec("softmax").reference
    for shape in ((1, 1), (3, 1000), (256, 1024), (1000, 3), (7, 5000), (2, 3, 300)):
        a = (rng.standard_normal(shape) * 3).astype(dtype)
        rows = a.reshape(-1, shape[-1])
        if shape[-1] > 1 and rows.shape[0] > 2:
            rows[0, :2] = [1.0, np.nan]  # a NaN row
            rows[1, 0], rows[2, 0] = -np.inf, np.inf  # -inf gives 0; +inf makes the row NaN
        x = hw.asarray(a, device=gpu)
        expected = ref(a.astype(np.float64), axis=len(shape) - 1)
        for _ in range(2):  # the first launch, then the bound one
            got = hw.softmax(x, axis=-1).numpy()
            np.testing.assert_allclose(got, expected, rtol=64 * eps, atol=16 * eps)
    assert gpu._impl.direct_status == "on"
    assert (f"hwa_softmax_{dtype}", 0) in gpu._impl._direct


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_matmul_through_cublas(all_direct: hw.Device, dtype: str) -> None:
    """2-D matmul straight through cuBLAS: the row-major product, full precision (TF32
    would be off by about 1e-3), with offsets, on the stream it was queued on."""
    gpu = all_direct
    rng = np.random.default_rng(13)
    eps = float(np.finfo(dtype).eps)
    s = gpu.create_stream()
    for m, k, n in ((1, 1, 1), (33, 17, 5), (256, 512, 128), (1024, 1024, 1024)):
        a = rng.standard_normal((m + 1, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        x, y = hw.asarray(a, device=gpu), hw.asarray(b, device=gpu)
        exact = a.astype(np.float64) @ b.astype(np.float64)
        bound = 4 * k * eps * (np.abs(a) @ np.abs(b))  # (a forward error bound of a product)
        for _ in range(2):  # the first launch, then the bound one
            got = hw.matmul(x, y, stream=s).numpy()
            assert (np.abs(got - exact) <= bound).all(), (m, k, n)
            got = hw.matmul(x[1:], y).numpy()  # (an offset into the buffer)
            assert (np.abs(got - exact[1:]) <= bound[1:]).all(), (m, k, n)
    assert gpu._impl.direct_status == "on" and gpu._impl.direct_blas_status == "on"
    assert (f"hwa_matmul_{dtype}", 0) in gpu._impl._direct


def test_event_timing_measures_device_time(gpu: hw.Device) -> None:
    s = gpu.create_stream()
    x = hw.ones((2048, 2048), dtype=hw.float32, device=gpu)
    start = s.record(timing=True)
    for _ in range(4):
        hw.matmul(x, x, stream=s)
    end = s.record(timing=True)
    assert start.elapsed_time(end) > 0.0


def test_an_allocation_beyond_the_gpu_raises_out_of_memory(gpu: hw.Device) -> None:
    capacity = gpu.info.memory_capacity
    with pytest.raises(OutOfMemoryError) as info:
        hw.empty((capacity + 1,), dtype=hw.uint8, device=gpu)
    assert info.value.requested == capacity + 1


def test_cudas_own_out_of_memory_is_mapped(gpu: hw.Device) -> None:
    """Memory taken outside hwabstract (here a raw CUDA allocation of 60%) is invisible to
    its accounting, so a 60% request passes it and CUDA itself refuses: that refusal must
    arrive as OutOfMemoryError carrying CUDA's message, and lose nothing."""
    n = int(gpu.info.memory_capacity * 0.6)
    with cupy.cuda.Device(0):
        outside = cupy.cuda.Memory(n)  # not from any pool: CUDA's cudaMalloc
    # (an out-of-memory retry collects garbage: tensors an earlier test left in reference
    # cycles -- a failed test's traceback, say -- must not be freed between the two counts)
    gc.collect()
    before = gpu.memory_stats()
    with pytest.raises(OutOfMemoryError) as info:
        hw.empty((n,), dtype=hw.uint8, device=gpu)
    assert info.value.vendor_message and info.value.capacity
    after = gpu.memory_stats()  # the refused request is not counted
    assert (after.in_use, after.allocations) == (before.in_use, before.allocations)
    del outside
    hw.empty((n,), dtype=hw.uint8, device=gpu)  # the memory came back


def test_a_custom_kernel_runs_on_the_stream(gpu: hw.Device) -> None:
    n = 10_000
    x = hw.asarray(np.arange(n, dtype=np.float32), device=gpu)
    y = hw.ones((n,), dtype=hw.float32, device=gpu)
    axpy = CudaKernel(AXPY, "axpy")
    axpy((n + 255) // 256, 256, (np.float32(2.0), x, y, np.int64(n)))
    np.testing.assert_array_equal(y.numpy(), 2.0 * np.arange(n, dtype=np.float32) + 1.0)


def test_a_custom_kernel_refuses_python_numbers(gpu: hw.Device) -> None:
    y = hw.ones((4,), dtype=hw.float32, device=gpu)
    with pytest.raises(DTypeError, match="NumPy scalars"):
        CudaKernel(AXPY, "axpy")(1, 4, (2.0, y, y, 4))


def test_a_custom_kernel_refuses_a_cpu_tensor(gpu: hw.Device) -> None:
    y = hw.ones((4,), dtype=hw.float32, device=gpu)
    c = hw.ones((4,), dtype=hw.float32, device="cpu")
    with pytest.raises(DeviceError, match="move it"):
        CudaKernel(AXPY, "axpy")(1, 4, (np.float32(1), c, y, np.int64(4)))


def test_dlpack_shares_memory_with_cupy_both_ways(gpu: hw.Device) -> None:
    t = hw.asarray(np.arange(8, dtype=np.float32), device=gpu)
    assert t.__dlpack_device__() == (2, 0)
    c = cupy.from_dlpack(t)
    c[0] = 42.0
    cupy.cuda.get_current_stream().synchronize()
    assert t.numpy()[0] == 42.0
    back = hw.from_dlpack(c, device=gpu)
    c[1] = -1.0
    cupy.cuda.get_current_stream().synchronize()
    assert back.numpy()[1] == -1.0


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_dlpack_with_another_library_on_the_same_gpu(gpu: hw.Device, library: str) -> None:
    t = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3), device=gpu)
    other: Any
    if library == "torch":
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("PyTorch has no CUDA here")
        other = torch.from_dlpack(t)
        assert other.is_cuda
        np.testing.assert_array_equal(other.cpu().numpy(), t.numpy())
    else:
        jax = pytest.importorskip("jax")
        if not any(d.platform == "gpu" for d in jax.devices()):
            pytest.skip("JAX has no GPU here")
        other = jax.numpy.from_dlpack(t)
        np.testing.assert_array_equal(np.asarray(other), t.numpy())
    np.testing.assert_array_equal(hw.from_dlpack(other, device=gpu).numpy(), t.numpy())


def test_peer_copies_between_gpus() -> None:
    if hw.device("nvidia:0")._impl.device_count() < 2:
        pytest.skip("one GPU: no peer to copy to")
    a = np.random.default_rng(1).standard_normal((64, 33)).astype(np.float32)
    x = hw.asarray(a, device="nvidia:0")
    np.testing.assert_array_equal(x[::-1, 1::3].to("nvidia:1").numpy(), a[::-1, 1::3])
