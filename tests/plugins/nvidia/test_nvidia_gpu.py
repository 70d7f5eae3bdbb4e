"""The nvidia backend on a real GPU: memory and its errors, streams and events, custom
kernels, DLPack with CuPy (and PyTorch or JAX where installed), peer copies. Marked
``gpu``: the default tox run excludes them; ``tox -e nvidia-gpu`` on a GPU machine runs
them. The standard kernels are certified by the conformance suite (``tox -e
conformance-nvidia``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("hwabstract_nvidia", reason="hwabstract-nvidia is not installed")
pytest.importorskip("cupy", reason="CuPy is not installed")

import cupy
from hwabstract_nvidia import CudaKernel
from hwabstract_nvidia.backend import unavailable_reason

import hwabstract as hw
from hwabstract.errors import DeviceError, DTypeError, OutOfMemoryError

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
