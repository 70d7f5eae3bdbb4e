"""The nvidia backend's own logic on a TEST DOUBLE of CuPy (``fake_cupy``: host memory and
NumPy, no CUDA): views with byte strides, raw-pointer copies, peer copies, stream-ordered
frees, memory accounting, out-of-memory mapping, CUDA error mapping, the ufunc fast path,
DLPack, custom-kernel launches -- and the conformance suite. What passes here proves the
backend's Python; only a GPU proves CUDA (test_nvidia_gpu.py, ``tox -e nvidia-gpu``)."""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("hwabstract_nvidia", reason="hwabstract-nvidia is not installed")

import fake_cupy
from backends import array_kernel_cases
from conftest import cpu_source
from hwabstract_nvidia import CudaKernel
from hwabstract_nvidia.backend import CUPY_DTYPES
from hwabstract_nvidia.compiler import CompiledModule

import hwabstract as hw
from hwabstract import dispatch
from hwabstract.backend import Feature, Operand
from hwabstract.dtypes import DType
from hwabstract.errors import (
    DeviceError,
    DeviceLostError,
    DLPackError,
    KernelError,
    OutOfMemoryError,
    StreamError,
)
from hwabstract.kernels import get_spec
from hwabstract.registry import PluginSource, Registry

HERE = Path(__file__).resolve().parent
cp: Any = fake_cupy.MODULES["cupy"]


def _nvidia_source() -> PluginSource:
    return PluginSource(
        "nvidia",
        lambda: importlib.import_module("hwabstract_nvidia.plugin"),
        "hwabstract-nvidia",
        "0.1.0",
    )


@pytest.fixture
def fake_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fake as ``cupy``/``cupyx`` in ``sys.modules`` (the real ones come back after),
    and ``cupy_module()``'s cache emptied on both sides (it keeps the ``cupy`` it found)."""
    from hwabstract.backends.array_kernels import cupy_module

    fake_cupy.install(monkeypatch)
    cupy_module.cache_clear()
    yield
    fake_cupy.gpu().clear_errors()
    fake_cupy.gpu().release_fences()
    cupy_module.cache_clear()


#: the environment the backends are discovered in (a test adds to it)
_CLEAN_ENV: dict[str, str | None] = {"HWABSTRACT_NVIDIA_MEMORY": None, "CUDA_VISIBLE_DEVICES": None}


@pytest.fixture
def nvidia(
    fake_installed: None, fresh_registry: Callable[..., Registry]
) -> Callable[..., fake_cupy.FakeGpu]:
    """``make(env=None, **config)``: a fresh fake GPU (``FakeGpu(**config)``) and a fresh
    registry with the cpu and nvidia backends discovered on it."""

    def make(env: dict[str, str] | None = None, **config: Any) -> fake_cupy.FakeGpu:
        gpu = fake_cupy.reset(**config)
        fresh_registry([cpu_source(), _nvidia_source()], **{**_CLEAN_ENV, **(env or {})})
        return gpu

    return make


@pytest.fixture
def gpu(nvidia: Callable[..., fake_cupy.FakeGpu]) -> fake_cupy.FakeGpu:
    """Two fake H100s, nvidia:0 and nvidia:1."""
    return nvidia()


def _data(shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape).astype(dtype)


def _buffer(impl: Any, index: int, host: np.ndarray) -> Any:
    """A backend buffer holding ``host``'s bytes (through the contiguous copy path)."""
    buf = impl.allocate(index, host.nbytes)
    flat = np.ascontiguousarray(host).reshape(-1)
    op = Operand(buf, hw.dtypes.dtype(host.dtype), flat.shape, (1,), 0)
    stream = hw.device(f"nvidia:{index}").default_stream.handle
    impl.copy_from_host(stream, op, flat)
    return buf


def _read(impl: Any, op: Operand) -> np.ndarray:
    out = np.empty(op.shape, op.dtype.numpy_dtype)
    stream = hw.device(f"nvidia:{op.buffer.device}").default_stream.handle
    impl.copy_to_host(stream, out, op)
    impl.stream_synchronize(stream)
    return out


# -- the double itself: CuPy's rules, as checked against CuPy 14's sources -------------------------


def test_the_double_follows_cupys_rules(fake_installed: None) -> None:
    rt = cp.cuda.runtime
    fake_cupy.reset(memory_limit=4096)
    pool = cp.get_default_memory_pool()
    with cp.cuda.Device(0):
        p = pool.malloc(100)
        assert p.mem.size == 512 and pool.used_bytes() == 512  # rounded up to 512 B
        assert (p + 16).ptr == p.ptr + 16 and (16 + p).mem is p.mem and (p - 0).ptr == p.ptr
        assert pool.malloc(0).ptr == 0  # the null pointer, which takes no offset
        with pytest.raises(AssertionError):
            pool.malloc(0) + 8
        # byte strides of any sign: element 0 at memptr, others before it
        a = cp.ndarray((3, 4), np.float32, memptr=p + 44, strides=(-16, 4))
        assert a.data.ptr == p.ptr + 44 and a.data.mem is p.mem and a.strides == (-16, 4)
        with pytest.raises(ValueError, match="memptr is required"):
            cp.ndarray((2,), np.float32, strides=(4,))
        with pytest.raises(ValueError, match="maximum supported dimension"):
            cp.ndarray((1,) * 65, np.float32, memptr=p)
        with pytest.raises(fake_cupy.FakeCupyError, match="outside every live allocation"):
            cp.ndarray((200,), np.float32, memptr=p)  # (CuPy would let a kernel fault)
        with pytest.raises(TypeError, match="Unsupported type"):
            cp.add(np.ones(2), np.ones(2))  # NumPy arrays are not device arrays
        with pytest.raises(TypeError, match="Wrong arguments"):
            cp.add(a, a, where=True)
        zero_d = cp.add(cp.ones((), np.float32), 1)
        assert isinstance(zero_d, cp.ndarray) and zero_d.shape == ()  # not a NumPy scalar
        with pytest.raises(cp.cuda.memory.OutOfMemoryError, match="allocating 4,096 bytes"):
            pool.malloc(4000)  # 512 B in use, 4 KiB in all: even after freeing cached blocks
        event = cp.cuda.Event()
        assert event.done  # never recorded: cudaEventQuery says success
        with pytest.raises(rt.CUDARuntimeError, match="cudaErrorInvalidResourceHandle"):
            cp.cuda.get_elapsed_time(event, event)
        host = cp.asarray(_data((4, 4)))
        imported = cp.from_dlpack(host)
        assert imported.data.ptr == host.data.ptr and imported.data.mem.size == 4 * (4 + 4)
        with pytest.raises(RuntimeError, match="Unsupported device"):
            np.from_dlpack(host)  # a kDLCUDA capsule, as CuPy's
        assert host.__dlpack_device__() == (2, 0)
    with cp.cuda.Device(1):
        other = cp.cuda.Stream(non_blocking=True)
    with cp.cuda.Device(0):
        with pytest.raises(rt.CUDARuntimeError, match="cudaErrorInvalidResourceHandle"):
            cp.cuda.Event().record(other)  # an event and a stream of two devices
        with pytest.raises(RuntimeError, match="does not match with the current device"):
            other.__enter__()
    assert issubclass(rt.CUDARuntimeError, RuntimeError)
    assert str(rt.CUDARuntimeError(700)) == (
        "cudaErrorIllegalAddress: an illegal memory access was encountered"
    )
    assert str(cp.cuda.driver.CUDADriverError(700)).startswith("CUDA_ERROR_ILLEGAL_ADDRESS: ")


# -- discovery -------------------------------------------------------------------------------------


def test_the_backend_runs_on_the_fake_and_the_fake_says_so(gpu: fake_cupy.FakeGpu) -> None:
    (status,) = [b for b in hw.backends() if b.name == "nvidia"]
    assert status.ok and status.device_count == 2
    assert cp.__version__.endswith("+fake") and "test double" in cp.__doc__
    assert [d.name for d in hw.devices("nvidia")] == ["nvidia:0", "nvidia:1"]


def test_device_info_describes_the_gpu(gpu: fake_cupy.FakeGpu) -> None:
    info = hw.device("nvidia:1").info
    assert info.name == "NVIDIA H100 80GB HBM3 (fake)" and info.vendor == "NVIDIA"
    assert info.model.endswith("(sm_90)") and not info.standin
    assert info.memory_capacity == 80 * 2**30
    assert info.driver_version == "CUDA driver 12.8"
    assert info.extra["compute_capability"] == "9.0"
    assert info.extra["multiprocessors"] == "132"
    assert info.extra["cuda_runtime"] == "12.9" and info.extra["cupy"] == "14.2.0+fake"
    assert info.extra["pci_bus_id"] == "0000:32:00"
    assert info.extra["profile"] == "NVIDIA H100 SXM"  # matched by the name, not "PCIe"
    assert info.extra["hbm_bandwidth_GBps"] == "3350"
    assert info.extra["direct_kernels"] == "add, divide, multiply, subtract, sum"
    assert hw.device("nvidia:0")._impl.compute_capability(0) == (9, 0)


def test_an_unknown_gpu_has_no_profile(nvidia: Callable[..., fake_cupy.FakeGpu]) -> None:
    nvidia(name="NVIDIA GeForce GTX 1080", capability=(6, 1))
    info = hw.device("nvidia:0").info
    assert info.extra["profile"].startswith("none matches") and info.model.endswith("(sm_61)")


def test_capabilities_are_cupys(gpu: fake_cupy.FakeGpu) -> None:
    caps = hw.device("nvidia:0").capabilities
    assert not caps.supports_dtype(hw.bfloat16) and not caps.supports_dtype(hw.float8_e4m3fn)
    assert caps.supports_dtype(hw.float16) and caps.supports_dtype(hw.complex128)
    assert caps.supports_kernel("matmul", hw.float16) and caps.supports_kernel("gelu", hw.float64)
    assert not caps.supports_kernel("add", hw.bfloat16)
    for feature in (
        Feature.PEER_COPY,
        Feature.EVENT_TIMING,
        Feature.DLPACK,
        Feature.CUSTOM_KERNELS,
        Feature.CONCURRENT_STREAMS,
    ):
        assert caps.has_feature(feature), feature  # fmt: skip
    # CuPy's float32 kernels flush subnormals to zero (seen on an H200)
    assert not caps.has_feature(Feature.SUBNORMALS)
    assert caps.limits.memory_capacity == 80 * 2**30 and caps.limits.max_dims == 32


def test_one_gpu_declares_no_peer_copies(nvidia: Callable[..., fake_cupy.FakeGpu]) -> None:
    nvidia(device_count=1)
    assert len(hw.devices("nvidia")) == 1
    assert not hw.device("nvidia:0").capabilities.has_feature(Feature.PEER_COPY)


def test_a_driver_without_gpus_leaves_the_backend_unavailable(
    nvidia: Callable[..., fake_cupy.FakeGpu],
) -> None:
    nvidia(device_count=0)
    (status,) = [b for b in hw.backends() if b.name == "nvidia"]
    assert status.status == "unavailable" and "sees no NVIDIA GPU" in (status.reason or "")


# -- memory ----------------------------------------------------------------------------------------


def test_allocations_are_accounted_and_cached_by_the_pool(gpu: fake_cupy.FakeGpu) -> None:
    dev = hw.device("nvidia:0")
    before = dev.memory_stats()
    x = hw.empty((1000,), dtype=hw.float32, device=dev)
    during = dev.memory_stats()
    assert during.in_use == before.in_use + 4000
    assert during.allocations == before.allocations + 1 and during.peak >= during.in_use
    assert during.free == during.capacity - during.in_use
    with cp.cuda.Device(0):
        assert cp.get_default_memory_pool().used_bytes() >= 4096  # rounded up to 512 B
    del x
    gc.collect()
    after = dev.memory_stats()
    assert after.in_use == before.in_use and after.allocations == before.allocations
    assert after.cached >= 4096  # back in CuPy's pool, not in CUDA's hands
    assert hw.device("nvidia:1").memory_stats().in_use == 0  # another device's accounting


def test_a_zero_byte_tensor_is_a_null_pointer(gpu: fake_cupy.FakeGpu) -> None:
    t = hw.empty((0, 3), dtype=hw.float32, device="nvidia:0")
    assert t._storage.buffer.mem.ptr == 0
    assert t.numpy().shape == (0, 3) and hw.add(t, t).shape == (0, 3)


def test_the_memory_cap_refuses_before_cuda_is_asked(
    nvidia: Callable[..., fake_cupy.FakeGpu],
) -> None:
    gpu = nvidia(env={"HWABSTRACT_NVIDIA_MEMORY": "1MiB"})
    dev = hw.device("nvidia:0")
    assert dev.info.memory_capacity == 2**20 and dev.capabilities.limits.max_allocation == 2**20
    calls = gpu.malloc_calls
    with pytest.raises(OutOfMemoryError) as info:
        hw.empty((2**20 + 1,), dtype=hw.uint8, device=dev)
    assert info.value.requested == 2**20 + 1 and info.value.capacity == 2**20
    assert info.value.vendor_message is None and gpu.malloc_calls == calls
    assert dev.memory_stats().in_use == 0
    hw.ones((2**19,), dtype=hw.uint8, device=dev)  # still works


def test_a_bad_memory_cap_makes_the_backend_unavailable(
    nvidia: Callable[..., fake_cupy.FakeGpu],
) -> None:
    nvidia(env={"HWABSTRACT_NVIDIA_MEMORY": "lots"})
    (status,) = [b for b in hw.backends() if b.name == "nvidia"]
    assert status.status == "unavailable" and "HWABSTRACT_NVIDIA_MEMORY" in (status.reason or "")


def test_cudas_out_of_memory_is_mapped_with_cupys_message(
    nvidia: Callable[..., fake_cupy.FakeGpu],
) -> None:
    """hwabstract's accounting allows 80 GiB; the fake GPU backs 1 MiB: CuPy's pool fails
    (after its own retries), the backend releases the pool's cached blocks, retries, and
    maps the failure with CUDA's figures and CuPy's message."""
    gpu = nvidia(memory_limit=2**20)
    dev = hw.device("nvidia:0")
    cached = hw.empty((300_000,), dtype=hw.uint8, device=dev)
    del cached
    gc.collect()
    assert dev.memory_stats().cached > 0  # a block the pool keeps
    with pytest.raises(OutOfMemoryError) as info:
        hw.empty((1_500_000,), dtype=hw.uint8, device=dev)
    err = info.value
    assert err.requested == 1_500_000 and err.capacity == 80 * 2**30 and err.free == 2**20
    assert err.vendor_message is not None
    assert "Out of memory allocating 1,500,160 bytes" in err.vendor_message
    assert dev.memory_stats().cached == 0  # free_all_blocks released the cached block
    assert dev.memory_stats().in_use == 0 and gpu.allocated[0] == 0
    np.testing.assert_array_equal(hw.ones((4,), dtype=hw.int32, device=dev).numpy(), 1)


def test_a_free_waits_for_its_fences(gpu: fake_cupy.FakeGpu) -> None:
    """Stream-ordered free: the memory of a tensor used on two streams goes back to the
    pool only once an event recorded on each of them is reached."""
    dev = hw.device("nvidia:0")
    impl, state = dev._impl, dev._impl._states[0]
    s = dev.create_stream()
    x = hw.zeros((4096,), dtype=hw.float32, device=dev)  # written on the default stream
    hw.add(x, 1.0, out=x, stream=s)
    cached = dev.memory_stats().cached
    gpu.hold_fences = True
    del x
    gc.collect()
    assert dev.memory_stats().in_use < 4096  # hwabstract's accounting: freed at once
    assert len(state.pending) == 1 and len(state.pending[0][1]) == 2  # one fence per stream
    assert gpu.pending_events() == 2 and not s.query()
    assert dev.memory_stats().cached == cached  # the memory itself is still held
    impl._reap(state)
    assert len(state.pending) == 1  # nothing reached yet
    gpu.hold_fences = False
    gpu.release_fences()
    assert s.query()
    hw.empty((1,), dtype=hw.uint8, device=dev)  # an allocation reaps (and may take 512 B)
    assert not state.pending and dev.memory_stats().cached >= cached + 16384 - 512


def test_frees_on_one_stream_share_one_fence(gpu: fake_cupy.FakeGpu) -> None:
    """Temporaries used by one stream alone wait in that stream's batch: no event per free;
    one event fences the batch once it holds FENCE_BATCH buffers, and synchronizing the
    stream gives the rest back at once. The memory is never handed out before then."""
    from hwabstract_nvidia.backend import FENCE_BATCH

    dev = hw.device("nvidia:0")
    state = dev._impl._states[0]
    s = dev.create_stream()
    x = hw.ones((4096,), dtype=hw.float32, device=dev)
    dev.synchronize()
    cached, in_use = dev.memory_stats().cached, dev.memory_stats().in_use
    gpu.hold_fences = True
    for _ in range(FENCE_BATCH - 1):
        hw.add(x, x, stream=s)  # the result is freed at once
    gc.collect()
    ((batch, held),) = state.unfenced.values()
    assert len(batch) == FENCE_BATCH - 1 and held == (FENCE_BATCH - 1) * 16384
    del batch  # (the test must not keep the memory alive itself)
    assert not state.pending and gpu.pending_events() == 0  # no event yet
    assert dev.memory_stats().in_use == in_use  # hwabstract's accounting: freed at once
    assert dev.memory_stats().cached == cached  # the memory itself is still held
    hw.add(x, x, stream=s)
    assert not state.unfenced and len(state.pending) == 1
    assert len(state.pending[0][0]) == FENCE_BATCH and gpu.pending_events() == 1
    hw.add(x, x, stream=s)
    assert len(state.unfenced[s.handle][0]) == 1
    s.synchronize()  # everything queued on s is done: the batch and the fence are reached
    gpu.hold_fences = False
    hw.empty((1,), dtype=hw.uint8, device=dev)  # an allocation reaps
    assert not state.unfenced and not state.pending
    assert dev.memory_stats().cached >= cached + FENCE_BATCH * 16384


def test_a_large_free_closes_the_batch_at_once(gpu: fake_cupy.FakeGpu) -> None:
    from hwabstract_nvidia.backend import FENCE_BYTES

    dev = hw.device("nvidia:0")
    state = dev._impl._states[0]
    gpu.hold_fences = True
    big = hw.zeros((FENCE_BYTES,), dtype=hw.uint8, device=dev)
    events = gpu.pending_events()
    del big
    gc.collect()
    assert not state.unfenced and len(state.pending) == 1
    assert gpu.pending_events() == events + 1


def test_one_gpu_needs_no_device_switch(nvidia: Callable[..., fake_cupy.FakeGpu]) -> None:
    nvidia(device_count=1)
    dev = hw.device("nvidia:0")
    assert dev._impl._on(0) is dev._impl._on(0)  # no cupy.cuda.Device context
    np.testing.assert_array_equal(hw.add(hw.ones((3,), device=dev), 1.0).numpy(), 2.0)


def test_a_free_on_a_destroyed_stream_needs_no_fence(gpu: fake_cupy.FakeGpu) -> None:
    dev = hw.device("nvidia:0")
    state = dev._impl._states[0]
    s = dev.create_stream()
    x = hw.zeros((64,), dtype=hw.float32, device=dev)
    hw.add(x, 1.0, out=x, stream=s)
    dev.synchronize()
    dev._impl.destroy_stream(s.handle)
    gpu.hold_fences = True
    del x
    gc.collect()
    assert len(state.pending) == 1 and len(state.pending[0][1]) == 1  # the default stream's


def test_an_allocation_waits_for_pending_frees_before_failing(
    nvidia: Callable[..., fake_cupy.FakeGpu],
) -> None:
    """Memory held by a pending free is what a failing allocation waits for: the backend
    reaps with waiting, empties the pool and retries."""
    gpu = nvidia(memory_limit=2**20)
    dev = hw.device("nvidia:0")
    state = dev._impl._states[0]
    s = dev.create_stream()
    x = hw.zeros((700_000,), dtype=hw.uint8, device=dev)
    hw.add(x, 1, out=x, stream=s)
    gpu.hold_fences = True
    del x
    gc.collect()
    assert len(state.pending) == 1
    y = hw.empty((700_000,), dtype=hw.uint8, device=dev)
    assert not state.pending and gpu.pending_events() == 0
    assert y.shape == (700_000,) and gpu.allocated[0] <= 2**20


# -- data movement ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.float16, np.complex128, np.bool_])
def test_host_round_trips(gpu: fake_cupy.FakeGpu, dtype: Any) -> None:
    a = _data((5, 7), dtype)
    t = hw.asarray(a, device="nvidia:1")
    np.testing.assert_array_equal(t.numpy(), a)
    np.testing.assert_array_equal(t[::-1, ::3].numpy(), a[::-1, ::3])  # strided source
    np.testing.assert_array_equal(t.T.numpy(), a.T)
    np.testing.assert_array_equal(
        hw.broadcast_to(t[2], (4, 7)).numpy(), np.broadcast_to(a[2], (4, 7))
    )


def test_writes_through_views_and_device_copies(gpu: fake_cupy.FakeGpu) -> None:
    a = _data((6, 8))
    t = hw.asarray(a, device="nvidia:0")
    t[1:5:2, ::-2] = hw.asarray(np.full((2, 4), -1.0, np.float32), device="nvidia:0")
    a[1:5:2, ::-2] = -1.0
    np.testing.assert_array_equal(t.numpy(), a)
    t[1:] = t[:-1]  # overlapping: the core copies the source out first
    a[1:] = a[:-1].copy()
    np.testing.assert_array_equal(t.numpy(), a)
    u = hw.asarray(t, device="nvidia:0", copy=True)  # device to device
    np.testing.assert_array_equal(u.numpy(), a)


def test_copies_with_raw_pointers_and_byte_strides(gpu: fake_cupy.FakeGpu) -> None:
    """The backend's copy paths on hand-made operands: offsets, negative and zero strides,
    the staged host-to-device copy into a strided destination, the ascontiguousarray one
    back, the memcpy of contiguous device copies and the copy kernel of strided ones."""
    impl = hw.device("nvidia:0")._impl
    stream = hw.device("nvidia:0").default_stream.handle
    f32 = hw.float32
    base = _data((40,))
    buf = _buffer(impl, 0, base)
    copies = gpu.memcpy_calls
    # contiguous 2-d window at an offset
    op = Operand(buf, f32, (3, 4), (4, 1), 5)
    np.testing.assert_array_equal(_read(impl, op), base[5:17].reshape(3, 4))
    # negative strides: element 0 is the last in memory
    rev = Operand(buf, f32, (3, 4), (-8, -2), 39)
    expect = np.lib.stride_tricks.as_strided(base[39:], (3, 4), (-32, -8))
    np.testing.assert_array_equal(_read(impl, rev), expect)
    # a zero stride: a broadcast row
    bcast = Operand(buf, f32, (3, 5), (0, 1), 10)
    np.testing.assert_array_equal(_read(impl, bcast), np.broadcast_to(base[10:15], (3, 5)))
    # host to a strided (reversed) destination: staged, then a copy kernel
    host = _data((3, 4)) + 100
    impl.copy_from_host(stream, rev, host)
    np.testing.assert_array_equal(_read(impl, rev), host)
    # device to device: contiguous (a memcpy) and strided (a copy kernel)
    dst = impl.allocate(0, 80)
    impl.copy(stream, Operand(dst, f32, (3, 4), (4, 1), 2), op)
    np.testing.assert_array_equal(
        _read(impl, Operand(dst, f32, (3, 4), (4, 1), 2)), _read(impl, op)
    )
    impl.copy(stream, Operand(dst, f32, (3, 5), (5, 1), 0), bcast)
    np.testing.assert_array_equal(
        _read(impl, Operand(dst, f32, (3, 5), (5, 1), 0)), _read(impl, bcast)
    )
    assert gpu.memcpy_calls > copies
    impl.free(buf)
    impl.free(dst)
    with pytest.raises(DeviceError, match="already freed"):
        impl.free(buf)
    with pytest.raises(DeviceError, match="was freed"):
        impl.view(op)


def test_a_peer_copy_of_a_strided_view(gpu: fake_cupy.FakeGpu) -> None:
    a = _data((6, 10))
    t = hw.asarray(a, device="nvidia:0")
    v = t[::-2, 1:9:3]
    moved = v.to("nvidia:1")
    assert moved.device.name == "nvidia:1"
    np.testing.assert_array_equal(moved.numpy(), a[::-2, 1:9:3])
    ((dst_dev, src_dev, nbytes),) = gpu.peer_copies
    # only the bytes the view spans crossed: rows 5, 3, 1, columns 1..7
    assert (dst_dev, src_dev) == (1, 0) and nbytes == (4 * 10 + 7 - 1 + 1) * 4


def test_peer_copy_offset_arithmetic(gpu: fake_cupy.FakeGpu) -> None:
    impl = hw.device("nvidia:0")._impl
    base = _data((50,), np.int16)
    src = _buffer(impl, 0, base)
    dst = impl.allocate(1, 2 * 12)
    stream = hw.device("nvidia:1").default_stream.handle
    i16 = hw.int16
    cases = [
        ((3, 4), (-10, 3), 31),  # rows reversed
        ((3, 4), (10, -2), 7),  # columns reversed
        ((3, 4), (0, -1), 49),  # a broadcast, reversed row ending at the last element
        ((12,), (4,), 2),  # every fourth element
    ]
    for shape, strides, offset in cases:
        op = Operand(src, i16, shape, strides, offset)
        target = Operand(dst, i16, shape, (4, 1)[-len(shape) :], 0)
        impl.copy_peer(stream, target, op)
        expect = np.lib.stride_tricks.as_strided(base[offset:], shape, [2 * s for s in strides])
        np.testing.assert_array_equal(_read(impl, target), expect, err_msg=str((shape, strides)))
    impl.free(src)
    impl.free(dst)


# -- kernels ---------------------------------------------------------------------------------------


def test_kernels_through_the_public_api(gpu: fake_cupy.FakeGpu) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((16, 24)).astype(np.float32)
    b = rng.standard_normal((24, 8)).astype(np.float32)
    x, y = hw.asarray(a, device="nvidia:0"), hw.asarray(b, device="nvidia:0")
    np.testing.assert_array_equal(hw.add(x, x).numpy(), a + a)
    np.testing.assert_array_equal(hw.multiply(x, 2.5).numpy(), a * np.float32(2.5))
    np.testing.assert_allclose(hw.sum(x).numpy(), a.sum(dtype=np.float64), rtol=1e-5)
    np.testing.assert_allclose(hw.sum(x, axis=0).numpy(), a.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(hw.matmul(x, y).numpy(), a @ b, rtol=1e-5, atol=1e-5)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(hw.softmax(x).numpy(), e / e.sum(axis=-1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(hw.add(x[::-1, ::2], 1.0).numpy(), a[::-1, ::2] + 1)
    h = hw.asarray(a.astype(np.float16), device="nvidia:0")  # the table: float32, rounded once
    np.testing.assert_array_equal(
        hw.multiply(h, h).numpy(), (a.astype(np.float16).astype(np.float32) ** 2).astype(np.float16)
    )
    np.testing.assert_allclose(hw.gelu(x).numpy()[0, :3], _gelu(a[0, :3]), rtol=1e-5)


def test_repeated_launches_take_the_bound_launch(gpu: fake_cupy.FakeGpu) -> None:
    """After a signature's first launch, the core calls the backend's bound launch: the
    same views, the same ufunc or kernel function, the same stream bookkeeping."""
    dev = hw.device("nvidia:0")
    impl = dev._impl
    launched: list[str] = []
    original = impl.launch
    impl.launch = lambda *args: (launched.append(args[1]), original(*args))  # type: ignore
    try:
        a = _data((4, 6))
        x = hw.asarray(a, device=dev)
        s = dev.create_stream()
        sums = [hw.add(x, x, stream=s) for _ in range(3)]  # the ufunc straight into out
        softmaxes = [hw.softmax(x[:, ::2], stream=s) for _ in range(3)]  # the table
        assert launched == ["add", "softmax"]
        for r in sums:
            np.testing.assert_array_equal(r.numpy(), a + a)
            assert s.handle in r._storage.buffer.streams  # a free of it is fenced on s
        e = np.exp(a[:, ::2] - a[:, ::2].max(axis=-1, keepdims=True))
        for r in softmaxes:
            np.testing.assert_allclose(r.numpy(), e / e.sum(axis=-1, keepdims=True), rtol=1e-6)
    finally:
        impl.launch = original


def _gelu(v: np.ndarray) -> np.ndarray:
    import math

    return np.array([0.5 * t * math.erfc(-t / math.sqrt(2.0)) for t in v.astype(np.float64)])


def test_elementwise_kernels_write_straight_into_the_output(
    gpu: fake_cupy.FakeGpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ufunc fast path: CuPy's ufunc with ``out=`` the output view; float16 and
    kernels with attributes go through the table instead."""
    calls: list[dict[str, Any]] = []
    real_add = cp.add

    class Spy:
        __name__ = "add"

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return real_add(*args, **kwargs)

    monkeypatch.setitem(fake_cupy._NAMESPACE_CACHE, "add", Spy())
    x = hw.asarray(_data((3, 4)), device="nvidia:0")
    out = hw.empty((3, 4), dtype=hw.float32, device="nvidia:0")
    hw.add(x, x, out=out)
    assert len(calls) == 1 and calls[0]["casting"] == "unsafe"
    assert calls[0]["out"].data.ptr == out._storage.buffer.mem.ptr  # the output's own memory
    np.testing.assert_array_equal(out.numpy(), 2 * _data((3, 4)))
    h = hw.add(hw.asarray(_data((2,), np.float16), device="nvidia:0"), 1.0)
    assert len(calls) == 2 and "out" not in calls[1]  # float16: the table, widened
    np.testing.assert_array_equal(h.numpy(), _data((2,), np.float16) + 1)


def test_a_kernel_cupy_rejects_is_a_kernel_error(
    gpu: fake_cupy.FakeGpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("Wrong type of arguments for cupy_sqrt")

    monkeypatch.setitem(fake_cupy._NAMESPACE_CACHE, "sqrt", fake_cupy.ufunc(refuse, "sqrt", 1))
    impl = hw.device("nvidia:0")._impl
    impl._ufuncs.clear()
    with pytest.raises(KernelError, match="CuPy could not run kernel 'sqrt'") as info:
        hw.sqrt(hw.ones((3,), dtype=hw.float32, device="nvidia:0"))
    assert "Wrong type" in (info.value.vendor_message or "")


_CUPY_PAIRS = array_kernel_cases.pairs([hw.dtypes.dtype(n) for n in CUPY_DTYPES])


@pytest.mark.parametrize(
    ("name", "dtype"), _CUPY_PAIRS, ids=[f"{k}-{d.name}" for k, d in _CUPY_PAIRS]
)
def test_sorting_indexing_cumulative_fft_and_linalg_through_the_table(
    gpu: fake_cupy.FakeGpu, name: str, dtype: DType
) -> None:
    """Every dtype CuPy has, against the references (array_kernel_cases.py): the table on
    the double's CuPy signatures, and the backend writing each output of a kernel with
    several (slogdet, qr, eigh, svd) into its own tensor. NumPy's numbers, not CUDA's."""
    device = hw.device("nvidia:0")
    assert device.capabilities.supports_kernel(name, dtype)
    spec = get_spec(name)
    for label, operands, attributes in array_kernel_cases.cases(name, dtype):
        actual, want, host, normalized = array_kernel_cases.run(device, spec, operands, attributes)
        array_kernel_cases.check(spec, actual, want, host, normalized, f"{name}[{dtype}] ({label})")


def test_the_new_kernels_are_declared_for_cupys_dtypes(gpu: fake_cupy.FakeGpu) -> None:
    kernels = hw.device("nvidia:0").capabilities.kernels
    for name in array_kernel_cases.NAMES:
        want = {d for d in get_spec(name).dtypes if d.name in CUPY_DTYPES}
        assert kernels[name] == want, name
    assert hw.float16 in kernels["eigh"] and hw.bfloat16 not in kernels["sort"]
    assert kernels["fft"] == {hw.complex64, hw.complex128}


def _gather(name: str, x: np.ndarray, idx: np.ndarray, **attrs: Any) -> np.ndarray:
    args = [hw.asarray(x, device="nvidia:0"), hw.asarray(idx, device="nvidia:0")]
    return dispatch.launch(name, args, {"axis": 0, **attrs}).numpy()


@pytest.mark.parametrize("name", ["take", "take_along_axis"])
def test_out_of_range_indices_read_the_first_element(gpu: fake_cupy.FakeGpu, name: str) -> None:
    """CuPy cannot raise from a kernel and wraps out-of-range indices around the axis: the
    table hands it n (one past the end) for every index outside [-n, n), which reads the
    axis' first element, whatever the index's dtype."""
    x = np.arange(5, dtype=np.float32) + 10
    got = _gather(name, x, np.array([5, -6, 4, -5, 127, -1], np.int8))
    assert got.tolist() == [10, 10, 14, 10, 10, 14]
    assert _gather(name, x, np.array([2**32 - 1, 3], np.uint32)).tolist() == [10, 13]
    with pytest.raises(KernelError, match="an index into an axis of length 0"):
        _gather(name, x[:0], np.array([0], np.int8))
    rows = np.arange(6, dtype=np.int16).reshape(3, 2)
    assert _gather(
        name, rows, np.array([[3, 2]] if name != "take" else [3, 2]), axis=0
    ).tolist() == ([[0, 5]] if name != "take" else [[0, 1], [4, 5]])


def test_a_wrong_nonzero_count_is_a_kernel_error(gpu: fake_cupy.FakeGpu) -> None:
    """CuPy's flatnonzero finds the indices (synchronizing): a count that disagrees is
    reported, not padded."""
    x = hw.asarray(np.array([0, 3, 0, 4], np.int32), device="nvidia:0")
    assert dispatch.launch("flatnonzero", [x], {"count": 2}).numpy().tolist() == [1, 3]
    with pytest.raises(KernelError, match="count is 3 but the input has 2"):
        dispatch.launch("flatnonzero", [x], {"count": 3})


def test_a_singular_matrix_gives_nans_not_an_error(gpu: fake_cupy.FakeGpu) -> None:
    """As under CuPy's default ``cupyx.errstate(linalg='ignore')`` (modelled by the
    double): cuSOLVER's invalid results, no exception."""
    x = hw.asarray(np.ones((3, 3), np.float32), device="nvidia:0")
    assert np.isnan(dispatch.launch("inv", [x]).numpy()).all()
    assert dispatch.launch("det", [x]).numpy() == 0.0


# -- streams and events ----------------------------------------------------------------------------


def test_event_timing_query_and_cross_stream_waits(gpu: fake_cupy.FakeGpu) -> None:
    dev = hw.device("nvidia:0")
    s1, s2 = dev.create_stream(), dev.create_stream()
    x = hw.ones((256, 256), dtype=hw.float32, device=dev)
    start = s1.record(timing=True)
    y = hw.matmul(x, x, stream=s1)
    end = s1.record(timing=True)
    assert start.elapsed_time(end) >= 0.0
    gpu.hold_fences = True
    marker = s1.record(timing=False)
    assert not marker.query() and not s1.query()
    s2.wait(marker)  # returns at once; s2 now waits on the device
    assert not s2.query()
    with pytest.raises(StreamError, match="timing"):
        start.elapsed_time(marker)
    gpu.hold_fences = False
    marker.synchronize()
    assert marker.query() and s1.query() and s2.query()
    np.testing.assert_allclose(y.numpy(), np.full((256, 256), 256.0, np.float32))


def test_elapsed_time_of_unreached_or_untimed_events_is_cudas_error(
    gpu: fake_cupy.FakeGpu,
) -> None:
    impl = hw.device("nvidia:0")._impl
    s = hw.device("nvidia:0").create_stream()  # (kept: its finalizer destroys the handle)
    stream = s.handle
    timed = impl.record_event(stream, True)
    untimed = impl.record_event(stream, False)
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="cudaErrorInvalidResourceHandle"):
        impl.event_elapsed_ms(timed, untimed)
    gpu.hold_fences = True
    late = impl.record_event(stream, True)
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="cudaErrorNotReady"):
        impl.event_elapsed_ms(timed, late)


def test_destroy_stream(gpu: fake_cupy.FakeGpu) -> None:
    dev = hw.device("nvidia:1")
    impl = dev._impl
    s = dev.create_stream()
    x = hw.ones((8,), dtype=hw.int32, device=dev)
    hw.add(x, x, stream=s)
    gpu.hold_fences = True
    s.record()
    impl.destroy_stream(s.handle)  # synchronizes: the pending event is reached
    assert s.handle.destroyed and gpu.pending_events() == 0
    impl.destroy_stream(s.handle)  # twice is harmless (the finalizer runs it again)
    with pytest.raises(StreamError, match="destroyed"):
        hw.add(x, x, stream=s)
    with pytest.raises(StreamError, match="destroyed"):
        s.synchronize()


def test_streams_are_cuda_streams_of_their_device(gpu: fake_cupy.FakeGpu) -> None:
    s = hw.device("nvidia:1").create_stream()
    assert s.handle.cuda.device_id == 1 and s.handle.cuda.non_blocking
    with cp.cuda.Device(0), pytest.raises(RuntimeError, match="does not match"), s.handle.cuda:
        pass  # CuPy refuses a stream of another device (the backend always sets the device)


# -- CUDA errors -----------------------------------------------------------------------------------


def test_a_sticky_error_says_the_context_is_lost(gpu: fake_cupy.FakeGpu) -> None:
    dev = hw.device("nvidia:0")
    s = dev.create_stream()
    x = hw.ones((16,), dtype=hw.float32, device=dev)
    gpu.fail(0, "cudaErrorIllegalAddress")  # a kernel touched a bad address
    with pytest.raises(hw.DeviceLostError, match="context is unusable") as info:
        s.synchronize()
    assert "cudaErrorIllegalAddress" in str(info.value)
    assert isinstance(info.value, hw.DeviceError)  # the device is lost for this process
    assert info.value.vendor_message == (
        "CUDARuntimeError: cudaErrorIllegalAddress: an illegal memory access was encountered"
    )
    with pytest.raises(hw.DeviceLostError, match="context is unusable"):
        s.query()
    # every later call fails the same way, mapped: kernels (CuPy launches them through the
    # driver API: CUDA_ERROR_ILLEGAL_ADDRESS), copies, events
    with pytest.raises(
        hw.DeviceLostError, match=r"kernel 'add' failed on nvidia:0.*is unusable"
    ) as k:
        hw.add(x, x, out=x)
    assert "CUDADriverError: CUDA_ERROR_ILLEGAL_ADDRESS" in (k.value.vendor_message or "")
    with pytest.raises(hw.DeviceLostError, match=r"copy to the host failed.*is unusable"):
        x.numpy()
    impl, handle = dev._impl, dev.default_stream.handle
    with pytest.raises(hw.DeviceLostError, match=r"copy to the device failed.*is unusable"):
        impl.copy_from_host(handle, x._operand(), np.ones(16, np.float32))
    with pytest.raises(hw.DeviceLostError, match=r"device-to-device copy failed.*is unusable"):
        impl.copy(handle, x._operand(), x[::-1]._operand())
    with pytest.raises(hw.DeviceLostError, match=r"peer copy failed.*is unusable"):
        y = hw.ones((16,), dtype=hw.float32, device="nvidia:1")
        impl.copy_peer(handle, x._operand(), y._operand())
    with pytest.raises(hw.DeviceLostError, match=r"recording an event failed.*is unusable"):
        s.record()
    with pytest.raises(hw.DeviceLostError, match=r"DLPack export failed.*is unusable"):
        x.__dlpack__(max_version=(1, 0))  # (the consumer's stream would wait on an event)
    # nvidia:1 is another context: unaffected
    np.testing.assert_array_equal(hw.ones((2,), dtype=hw.int8, device="nvidia:1").numpy(), 1)


def test_after_a_sticky_error_freeing_and_destroying_raise_nothing(
    gpu: fake_cupy.FakeGpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage.__del__ frees and a finalizer destroys streams: neither may raise (nothing
    could catch it); the failure was reported by whoever synchronized."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    dev = hw.device("nvidia:0")
    s = dev.create_stream()
    x = hw.ones((16,), dtype=hw.float32, device=dev)
    hw.add(x, x, out=x, stream=s)
    gpu.fail(0, "cudaErrorIllegalAddress")
    state = dev._impl._states[0]
    in_use = state.in_use
    del x
    gc.collect()
    assert state.in_use == in_use - 64 and not state.pending
    handle = s.handle
    del s
    gc.collect()
    assert handle.destroyed and not unraisable


def test_a_non_sticky_error_is_reported_once(gpu: fake_cupy.FakeGpu) -> None:
    dev = hw.device("nvidia:0")
    s = dev.create_stream()
    gpu.fail(0, 999, sticky=False)
    with pytest.raises(KernelError, match="undefined values") as info:
        s.synchronize()
    assert "cudaErrorUnknown" in str(info.value)
    s.synchronize()  # reported once
    np.testing.assert_array_equal(hw.ones((2,), dtype=hw.int8, device=dev).numpy(), 1)


def test_a_sticky_error_during_an_allocation_is_mapped(gpu: fake_cupy.FakeGpu) -> None:
    gpu.fail(0, "cudaErrorLaunchFailure")
    with pytest.raises(hw.DeviceLostError, match=r"an allocation failed on nvidia:0.*unusable"):
        hw.empty((1 << 16,), dtype=hw.uint8, device="nvidia:0")
    assert hw.device("nvidia:0").memory_stats().in_use == 0


# -- DLPack ----------------------------------------------------------------------------------------


def test_dlpack_export_is_cuda_memory(gpu: fake_cupy.FakeGpu) -> None:
    a = _data((4, 6))
    t = hw.asarray(a, device="nvidia:1")
    assert t.__dlpack_device__() == (2, 1)
    shared = cp.from_dlpack(t)  # CuPy (the fake) takes it in place
    assert shared.__dlpack_device__() == (2, 1)
    assert shared.data.ptr == t._storage.buffer.mem.ptr
    with cp.cuda.Device(1):
        shared[0, 0] = 42.0
    assert t.numpy()[0, 0] == 42.0
    strided = cp.from_dlpack(t[::-1, ::2])
    np.testing.assert_array_equal(strided.get(), t.numpy()[::-1, ::2])
    # NumPy cannot read CUDA memory (as with a real GPU): it must ask for a host copy
    with pytest.raises(RuntimeError, match="Unsupported device"):
        np.from_dlpack(t)
    host = np.from_dlpack(_Capsule(t.__dlpack__(dl_device=(1, 0), max_version=(1, 0))))
    np.testing.assert_array_equal(host, t.numpy())
    with pytest.raises(DLPackError, match="lives on"):
        t.__dlpack__(dl_device=(2, 0))
    with pytest.raises(DLPackError, match="copy=True only supported"):
        t.__dlpack__(copy=True, max_version=(1, 0))


class _Capsule:
    def __init__(self, capsule: Any) -> None:
        self.capsule = capsule

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


def test_dlpack_export_orders_the_consumers_stream_after_the_writer(
    gpu: fake_cupy.FakeGpu,
) -> None:
    dev = hw.device("nvidia:0")
    s = dev.create_stream()
    t = hw.zeros((8,), dtype=hw.float32, device=dev)
    gpu.hold_fences = True
    hw.add(t, 1.0, out=t, stream=s)
    s.record()  # the write is "still running"
    with cp.cuda.Device(0):
        consumer = cp.cuda.Stream(non_blocking=True)
    t.__dlpack__(stream=consumer.ptr, max_version=(1, 0))
    assert not consumer.done  # it waits for the writer's stream, on the device
    gpu.release_fences()
    assert consumer.done


def test_dlpack_import_adopts_cuda_memory_in_place(gpu: fake_cupy.FakeGpu) -> None:
    dev = hw.device("nvidia:1")
    with cp.cuda.Device(1):
        producer = cp.asarray(_data((64, 32)))
    before = dev.memory_stats()
    t = hw.from_dlpack(producer, device=dev)
    assert t.device is dev and t.shape == (64, 32) and t.dtype is hw.float32
    np.testing.assert_array_equal(t.numpy(), _data((64, 32)))
    # accounted as the bytes it spans (CuPy's DLPackMemory.size would say 384)
    assert dev.memory_stats().in_use - before.in_use == 64 * 32 * 4
    with cp.cuda.Device(1):
        producer[1, 2] = -7.0  # shared, not copied
    assert t.numpy()[1, 2] == -7.0
    hw.add(t, t, out=t)
    assert float(producer.get()[1, 2]) == -14.0
    del t
    gc.collect()
    assert dev.memory_stats().in_use == before.in_use


def test_dlpack_import_of_a_reversed_strided_producer(gpu: fake_cupy.FakeGpu) -> None:
    dev = hw.device("nvidia:0")
    with cp.cuda.Device(0):
        base = cp.asarray(_data((10, 12), np.int32))
        producer = base[::-2, 1::3]  # element 0 is near the end of the memory it spans
    before = dev.memory_stats().in_use
    t = hw.from_dlpack(producer, device=dev)
    np.testing.assert_array_equal(t.numpy(), _data((10, 12), np.int32)[::-2, 1::3])
    assert t._offset >= 0 and all(
        0 <= t._offset + i * st < t._storage.nbytes // 4 for i, st in zip((4, 3), t._strides)
    )
    assert dev.memory_stats().in_use - before == (8 * 12 + 10 - 1 + 1) * 4
    np.testing.assert_array_equal(
        hw.multiply(t, 2).numpy(), 2 * _data((10, 12), np.int32)[::-2, 1::3]
    )
    np.testing.assert_array_equal(t.to("nvidia:1").numpy(), _data((10, 12), np.int32)[::-2, 1::3])


def test_dlpack_import_orders_the_producers_work_on_the_device(
    gpu: fake_cupy.FakeGpu,
) -> None:
    """The producer is handed hwabstract's current stream (DLPack's ``stream``) and orders
    its last write before it; the host does not wait, and the tensor records that stream
    as its writer, so other hwabstract streams wait for it on the device."""

    class Producer:
        def __init__(self, array: Any, stream: Any) -> None:
            self.array, self.stream = array, stream
            self.asked: Any = None

        def __dlpack_device__(self) -> tuple[int, int]:
            return self.array.__dlpack_device__()

        def __dlpack__(self, **kwargs: Any) -> Any:
            self.asked = kwargs.get("stream")
            with cp.cuda.Device(0), self.stream:  # its work is queued on its own stream
                return self.array.__dlpack__(**kwargs)

    with cp.cuda.Device(0):
        stream = cp.cuda.Stream(non_blocking=True)
        array = cp.asarray(_data((16,)))
    gpu.hold_fences = True
    with cp.cuda.Device(0):
        last_write = stream.record()  # "still running"
    producer = Producer(array, stream)
    dev = hw.device("nvidia:0")
    t = hw.from_dlpack(producer, device=dev)
    assert producer.asked == dev.default_stream.handle.cuda.ptr
    assert not last_write.done  # no host wait: the ordering is the device's
    assert t._storage.last_stream is dev.default_stream
    gpu.hold_fences = False
    np.testing.assert_array_equal(t.numpy(), _data((16,)))


def test_dlpack_import_with_copy_takes_a_copy(gpu: fake_cupy.FakeGpu) -> None:
    with cp.cuda.Device(0):
        producer = cp.asarray(_data((5,)))
    t = hw.from_dlpack(producer, device="nvidia:0", copy=True)
    with cp.cuda.Device(0):
        producer[...] = 0
    np.testing.assert_array_equal(t.numpy(), _data((5,)))


def test_dlpack_memory_of_another_gpu_takes_the_host_path(gpu: fake_cupy.FakeGpu) -> None:
    with cp.cuda.Device(1):
        producer = cp.asarray(_data((5,)))
    t = hw.from_dlpack(producer, device="nvidia:0")  # (a host copy CuPy makes on request)
    with cp.cuda.Device(1):
        producer[...] = 0
    np.testing.assert_array_equal(t.numpy(), _data((5,)))


# -- custom kernels --------------------------------------------------------------------------------


AXPY_IMAGE = b"\x7fELF fake cubin: axpy"


def _axpy(grid: tuple[int, ...], block: tuple[int, ...], args: Any, shared_mem: int) -> None:
    a, x, y, n = args
    threads = grid[0] * block[0]
    count = min(int(n), threads)
    y[:count] = a * x[:count] + y[:count]


@pytest.fixture
def axpy(gpu: fake_cupy.FakeGpu, monkeypatch: pytest.MonkeyPatch) -> CudaKernel:
    """A CudaKernel whose "CUBIN" the fake loads, and a Python emulation of it."""
    monkeypatch.setattr(
        CudaKernel,
        "compile",
        lambda self, arch: CompiledModule(AXPY_IMAGE, "cubin", arch, "", f"fake-{arch}"),
    )
    gpu.kernels["axpy"] = _axpy
    return CudaKernel("// not compiled: a fake", "axpy")


def test_a_custom_kernel_launches_on_the_tensors_stream(
    gpu: fake_cupy.FakeGpu, axpy: CudaKernel
) -> None:
    dev = hw.device("nvidia:1")
    s = dev.create_stream()
    x = hw.asarray(_data((1000,)), device=dev)
    y = hw.ones((1000,), dtype=hw.float32, device=dev)
    axpy(grid=4, block=256, args=(np.float32(2.0), x, y, np.int64(1000)), stream=s)
    (launch,) = gpu.launches
    assert launch["grid"] == (4, 1, 1) and launch["block"] == (256, 1, 1)
    assert launch["device"] == 1 and launch["stream"] is s.handle.cuda
    assert y._storage.last_stream is s  # counted as a write on s
    np.testing.assert_array_equal(y.numpy(), 2 * _data((1000,)) + 1)
    axpy(grid=1, block=8, args=(np.float32(1.0), x, y, np.int64(8)))  # the module is cached
    assert len(gpu.launches) == 2


def test_custom_kernel_misuse_is_refused(gpu: fake_cupy.FakeGpu, axpy: CudaKernel) -> None:
    x = hw.ones((4,), dtype=hw.float32, device="nvidia:0")
    with pytest.raises(KernelError, match="exceeds nvidia:0's limit of 1024"):
        axpy(grid=1, block=(32, 33), args=(np.float32(1.0), x, x, np.int64(4)))
    with pytest.raises(DeviceError, match="move it with"):
        axpy(grid=1, block=4, args=(np.float32(1.0), x, hw.ones((4,), device="nvidia:1"),
                                    np.int64(4)))  # fmt: skip
    with pytest.raises(KernelError, match=r"load kernel 'other'.*NOT_FOUND.*extern \"C\""):
        CudaKernel("// fake", "other")(grid=1, block=1, args=(x,))
    assert not gpu.launches
    y = hw.ones((4,), dtype=hw.float32, device="nvidia:1")
    gpu.fail(1, "cudaErrorIllegalAddress")
    with pytest.raises(KernelError, match=r"load kernel 'axpy'.*ILLEGAL_ADDRESS") as info:
        axpy(grid=1, block=4, args=(np.float32(1.0), y, y, np.int64(4)))
    assert "extern" not in str(info.value)  # (no hint about the source: it is not the cause)
    axpy(grid=1, block=4, args=(np.float32(1.0), x, x, np.int64(4)))  # loaded on nvidia:0
    gpu.fail(0, "cudaErrorIllegalAddress")
    with pytest.raises(KernelError, match=r"could not be launched.*ILLEGAL_ADDRESS"):
        axpy(grid=1, block=4, args=(np.float32(1.0), x, x, np.int64(4)))
    assert len(gpu.launches) == 1


# -- the conformance suite -------------------------------------------------------------------------

_BOOT = """
import os
import sys
sys.path.insert(0, sys.argv[1])
import fake_cupy
fake_cupy.reset()
fake_cupy.install()
import direct_emulation
from hwabstract_nvidia import compiler
compiler.compile_cuda = direct_emulation.install(fake_cupy.gpu())
os.environ["HWABSTRACT_NVIDIA_DIRECT"] = "all"
import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_the_conformance_suite_on_the_fake(tmp_path: Path) -> None:
    """``pytest --pyargs hwabstract.conformance.suite --hwabstract-backend nvidia`` in a
    process where ``cupy`` is the fake (capacity capped at 1 GiB, so the suite's fill test
    runs). What it certifies is the backend's logic on NumPy's numerics, not CUDA's -- so
    without the backend's expectations file, which lists CUDA's deviations."""
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    none = tmp_path / "no-expectations.toml"
    none.write_text("# the fake computes with NumPy: none of CUDA's deviations\n")
    out = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWABSTRACT_")}
    env["HWABSTRACT_NVIDIA_MEMORY"] = "1GiB"
    proc = subprocess.run(
        [sys.executable, "-c", _BOOT, str(HERE), "--pyargs", "hwabstract.conformance.suite",
         "-c", str(ini), "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-q",
         "--hwabstract-backend", "nvidia", "--hwabstract-report-dir", str(out),
         "--hwabstract-expectations", str(none)],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    report_file = out / "report.json"
    assert report_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report["device"]["name"] == "NVIDIA H100 80GB HBM3 (fake)"
    totals = report["totals"]
    print(f"conformance of nvidia on fake_cupy: {totals}")
    failed = [t for t in report["tests"] if t["outcome"] in ("failed", "xpassed", "error")]
    for t in failed:
        print(f"  FAILED {t['id']}: {t['message']}")
    assert not failed, [t["id"] for t in failed]
    assert totals["passed"] > 4000
    assert all(report["areas"][a]["failed"] == 0 for a in report["areas"])


# -- direct launches -------------------------------------------------------------------------------


@pytest.fixture
def direct_gpu(
    nvidia: Callable[..., fake_cupy.FakeGpu], monkeypatch: pytest.MonkeyPatch
) -> fake_cupy.FakeGpu:
    """Two fake GPUs whose direct kernels, all of them (HWABSTRACT_NVIDIA_DIRECT=all),
    "compile" and run (tests/plugins/nvidia/direct_emulation.py)."""
    import direct_emulation
    from hwabstract_nvidia import compiler

    gpu = nvidia(env={"HWABSTRACT_NVIDIA_DIRECT": "all"})
    monkeypatch.setattr(compiler, "compile_cuda", direct_emulation.install(gpu))
    return gpu


def _direct_launches(gpu: fake_cupy.FakeGpu) -> list[str]:
    return [launch["name"] for launch in gpu.launches if launch["name"].startswith("hwa_")]


_DIRECT_CASES = [
    (kernel, dtype)
    for kernel in ("add", "subtract", "multiply", "divide")
    for dtype in ("float32", "float64", "int8", "int32", "int64", "uint8", "uint16", "uint64")
    if kernel != "divide" or dtype.startswith("float")
]


@pytest.mark.parametrize(("kernel", "dtype"), _DIRECT_CASES)
@pytest.mark.parametrize("device", ["nvidia:0", "nvidia:1"])
def test_direct_launches_compute_the_kernel_first_and_bound(
    direct_gpu: fake_cupy.FakeGpu, kernel: str, dtype: str, device: str
) -> None:
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype) if dtype[0] in "iu" else None
    if info is not None:  # the whole range, so that the integer kernels wrap
        a, b = (rng.integers(info.min, info.max, 1000, dtype=dtype, endpoint=True) for _ in "ab")
    else:
        a, b = (rng.standard_normal(1000).astype(dtype) for _ in "ab")
    x, y = hw.asarray(a, device=device), hw.asarray(b, device=device)
    fn = getattr(hw, kernel)
    with np.errstate(all="ignore"):
        expected = get_spec(kernel).reference(a, b)
    for _ in range(3):  # the first launch, then the bound one
        np.testing.assert_array_equal(fn(x, y).numpy(), expected)
    assert _direct_launches(direct_gpu) == [f"hwa_{kernel}_{dtype}"] * 3
    assert all(launch["device"] == int(device[-1]) for launch in direct_gpu.launches)
    assert x.device._impl.direct_status == "on"


def test_a_python_scalar_and_offsets_take_the_direct_kernel(
    direct_gpu: fake_cupy.FakeGpu,
) -> None:
    a = _data((1030,))
    x = hw.asarray(a, device="nvidia:0")
    for _ in range(3):
        np.testing.assert_array_equal(hw.multiply(x, 2.5).numpy(), a * np.float32(2.5))
        np.testing.assert_array_equal(hw.add(3.0, x[5:]).numpy(), 3 + a[5:])
        np.testing.assert_array_equal(hw.subtract(x[7:], x[:-7]).numpy(), a[7:] - a[:-7])
    names = _direct_launches(direct_gpu)
    assert names.count("hwa_multiply_float32") == 3 and names.count("hwa_add_float32") == 3
    assert names.count("hwa_subtract_float32") == 3
    multiplies = [
        launch for launch in direct_gpu.launches if launch["name"] == "hwa_multiply_float32"
    ]
    steps = {(int(launch["args"][1]), int(launch["args"][3])) for launch in multiplies}
    assert steps == {(1, 0)}


def test_other_layouts_and_dtypes_keep_cupys_path(direct_gpu: fake_cupy.FakeGpu) -> None:
    a = _data((64,))
    x = hw.asarray(a, device="nvidia:0")
    r = hw.asarray(_data((8, 8)), device="nvidia:0")
    h = x.astype(hw.float16)
    cases = [
        (lambda: hw.add(x[::2], x[1::2]), a[::2] + a[1::2]),  # strided
        (lambda: hw.add(r, hw.asarray(a[:8], device="nvidia:0")), _data((8, 8)) + a[:8]),  # bcast
        (lambda: hw.add(h, h), (a + a).astype(np.float16)),  # float16: CuPy's rounding
        (lambda: hw.maximum(x, x), a),  # not a direct kernel
    ]
    for run, expected in cases:
        for _ in range(2):
            np.testing.assert_allclose(run().numpy(), expected, rtol=1e-6)
    assert _direct_launches(direct_gpu) == []


def test_direct_launches_can_be_turned_off(
    nvidia: Callable[..., fake_cupy.FakeGpu], monkeypatch: pytest.MonkeyPatch
) -> None:
    import direct_emulation
    from hwabstract_nvidia import compiler

    gpu = nvidia(env={"HWABSTRACT_NVIDIA_DIRECT": "0"})
    monkeypatch.setattr(compiler, "compile_cuda", direct_emulation.install(gpu))
    x = hw.asarray(_data((100,)), device="nvidia:0")
    for _ in range(3):
        np.testing.assert_array_equal(hw.add(x, x).numpy(), 2 * _data((100,)))
    assert _direct_launches(gpu) == []
    assert x.device._impl.direct_status == "off: HWABSTRACT_NVIDIA_DIRECT=0"
    assert x.device.info.extra["direct_kernels"] == "none (HWABSTRACT_NVIDIA_DIRECT=0)"


def test_a_direct_kernel_that_does_not_compile_leaves_cupys_path(
    direct_gpu: fake_cupy.FakeGpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hwabstract_nvidia import compiler

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KernelError("NVRTC failed: out of resources")

    monkeypatch.setattr(compiler, "compile_cuda", broken)
    x = hw.asarray(_data((100,)), device="nvidia:0")
    for _ in range(3):
        np.testing.assert_array_equal(hw.add(x, x).numpy(), 2 * _data((100,)))
    assert _direct_launches(direct_gpu) == []
    status = x.device._impl.direct_status
    assert status.startswith("off: kernel hwa_add_float32 could not be compiled or loaded")
    assert "NVRTC failed: out of resources" in status


def test_a_refused_direct_launch_is_run_by_cupys_path(
    direct_gpu: fake_cupy.FakeGpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A launch CUDA refuses (a thread without the device's context current, say) queues
    nothing; CuPy's path runs it, or raises the error CuPy's launch raises."""
    x = hw.asarray(_data((100,)), device="nvidia:0")
    np.testing.assert_array_equal(hw.add(x, x).numpy(), 2 * _data((100,)))
    refused: list[str] = []
    real_call = fake_cupy.Function.__call__

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        if self.name.startswith("hwa_"):
            refused.append(self.name)
            raise fake_cupy.CUDADriverError(201)  # CUDA_ERROR_INVALID_CONTEXT
        real_call(self, *args, **kwargs)

    monkeypatch.setattr(fake_cupy.Function, "__call__", refuse)
    for _ in range(2):
        np.testing.assert_array_equal(hw.add(x, x).numpy(), 2 * _data((100,)))
    assert refused == ["hwa_add_float32"] * 2
    direct_gpu.fail(0, 700)  # a sticky error: CuPy's path says so
    with pytest.raises(DeviceLostError, match="sticky"):
        hw.add(x, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_sum_and_softmax(direct_gpu: fake_cupy.FakeGpu, dtype: str) -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal((300, 70)).astype(dtype)
    a[7, 3] = np.nan  # (that row is NaN throughout, as the reference's)
    x = hw.asarray(a, device="nvidia:1")
    s = x.device.create_stream()
    for _ in range(3):  # the first launch, then the bound one
        np.testing.assert_allclose(hw.sum(x[8:]).numpy(), a[8:].sum(dtype=np.float64), rtol=1e-5)
        got = hw.softmax(x, axis=-1, stream=s).numpy()
        np.testing.assert_allclose(got, get_spec("softmax").reference(a, axis=1), rtol=1e-6)
        assert np.isnan(got[7]).all() and not np.isnan(np.delete(got, 7, axis=0)).any()
    names = _direct_launches(direct_gpu)
    assert names.count(f"hwa_sum_{dtype}") == 3 and names.count(f"hwa_softmax_{dtype}") == 3
    (launch,) = [
        launch for launch in direct_gpu.launches if launch["name"] == f"hwa_softmax_{dtype}"
    ][:1]
    assert [int(v) for v in launch["args"][2:]] == [300, 70]  # rows, row length
    assert launch["stream"] is s.handle.cuda
    # one scratch area per stream that summed, made once
    sums = [launch for launch in direct_gpu.launches if launch["name"] == f"hwa_sum_{dtype}"]
    assert len({launch["args"][3].ptr for launch in sums}) == 1


def test_direct_reductions_leave_other_shapes_to_cupy(direct_gpu: fake_cupy.FakeGpu) -> None:
    a = _data((6, 5))
    x = hw.asarray(a, device="nvidia:0")
    for _ in range(2):
        np.testing.assert_allclose(hw.sum(x, axis=0).numpy(), a.sum(axis=0))  # one axis
        np.testing.assert_allclose(hw.sum(x.T).numpy(), a.sum())  # not contiguous
        np.testing.assert_array_equal(hw.sum(x.astype(hw.int32)).numpy(), a.sum())  # ints
        expected = get_spec("softmax").reference(a, axis=0)
        np.testing.assert_allclose(hw.softmax(x, axis=0).numpy(), expected, rtol=1e-6)
    assert _direct_launches(direct_gpu) == []


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("device", ["nvidia:0", "nvidia:1"])
def test_direct_matmul_calls_cublas_on_the_stream(
    direct_gpu: fake_cupy.FakeGpu, dtype: str, device: str
) -> None:
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((33, 17)).astype(dtype), rng.standard_normal((17, 5)).astype(dtype)
    x, y = hw.asarray(a, device=device), hw.asarray(b, device=device)
    s = x.device.create_stream()
    for _ in range(3):  # the first launch, then the bound one
        np.testing.assert_allclose(hw.matmul(x, y, stream=s).numpy(), a @ b, rtol=1e-5)
        np.testing.assert_allclose(hw.matmul(x[1:], y).numpy(), a[1:] @ b, rtol=1e-5)  # offset
    gemms = [launch for launch in direct_gpu.launches if launch["name"].startswith("cublas.")]
    name = "cublas.sgemm" if dtype == "float32" else "cublas.dgemm"
    assert [launch["name"] for launch in gemms] == [name] * 6
    assert gemms[0]["args"] == (5, 33, 17)  # column-major: C^T (5 x 33) = B^T A^T
    assert gemms[0]["stream"] is s.handle.cuda and gemms[0]["device"] == int(device[-1])


def test_matmuls_cublas_does_not_take_keep_cupys_path(direct_gpu: fake_cupy.FakeGpu) -> None:
    a = _data((4, 6, 5))
    x = hw.asarray(a, device="nvidia:0")
    y = hw.asarray(_data((5, 3)), device="nvidia:0")
    for _ in range(2):
        np.testing.assert_allclose(hw.matmul(x, y).numpy(), a @ _data((5, 3)))  # batched
        np.testing.assert_allclose(hw.matmul(x[0].T, x[0]).numpy(), a[0].T @ a[0])  # strided
        i = hw.asarray(_data((6, 5), np.int32), device="nvidia:0")
        np.testing.assert_array_equal(hw.matmul(i, i.T).numpy(), _data((6, 5)) @ _data((6, 5)).T)
    assert [launch for launch in direct_gpu.launches if launch["name"].startswith("cublas.")] == []


def test_without_cublas_only_matmul_leaves_the_direct_path(
    direct_gpu: fake_cupy.FakeGpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(cp.cuda, "cublas")
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda.libs.cublas", None)  # (unimportable)
    a = _data((8, 8))
    x = hw.asarray(a, device="nvidia:0")
    for _ in range(2):
        np.testing.assert_allclose(hw.matmul(x, x).numpy(), a @ a)
        np.testing.assert_array_equal(hw.add(x, x).numpy(), a + a)
    impl = x.device._impl
    assert impl.direct_status == "on" and impl.direct_blas_status.startswith("off: cuBLAS")
    assert _direct_launches(direct_gpu) == ["hwa_add_float32"] * 2


def test_unverified_direct_kernels_run_only_when_asked(
    nvidia: Callable[..., fake_cupy.FakeGpu], monkeypatch: pytest.MonkeyPatch
) -> None:
    """softmax and matmul (direct.UNVERIFIED) keep CuPy's path unless
    HWABSTRACT_NVIDIA_DIRECT=all; the verified kernels take the direct one by default."""
    import direct_emulation
    from hwabstract_nvidia import compiler, direct

    gpu = nvidia()
    monkeypatch.setattr(compiler, "compile_cuda", direct_emulation.install(gpu))
    a = _data((8, 8))
    x = hw.asarray(a, device="nvidia:0")
    for _ in range(2):
        hw.softmax(x, axis=-1), hw.matmul(x, x), hw.sum(x), hw.add(x, x)
    names = {launch["name"] for launch in gpu.launches}
    assert names == {"hwa_sum_float32", "hwa_add_float32"}
    assert x.device._impl.direct_kernels == direct.VERIFIED
    assert not direct.VERIFIED & direct.UNVERIFIED
