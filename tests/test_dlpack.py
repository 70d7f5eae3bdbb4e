"""DLPack 1.x exchange, both ways: ``Tensor.__dlpack__`` / ``__dlpack_device__`` and
``hw.from_dlpack``, against NumPy and against a producer written here with ctypes."""

from __future__ import annotations

import ctypes
import gc
import importlib
import subprocess
import sys
import textwrap
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dlpack
from hwabstract import dtypes as hwdtypes
from hwabstract.backend import Operand
from hwabstract.backends.cpu import CpuBackend
from hwabstract.dlpack import (
    DLPACK_FLAG_BITMASK_IS_COPIED,
    DLPACK_FLAG_BITMASK_READ_ONLY,
    DLManagedTensor,
    DLManagedTensorVersioned,
    DLTensor,
)
from hwabstract.registry import PluginSource

# Every dtype NumPy itself can put through DLPack.
NUMPY_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip
ML_DTYPES = ["bfloat16", "float8_e4m3fn", "float8_e5m2"]


def sample(dtype: str, shape: tuple[int, ...] = (3, 4)) -> np.ndarray:
    """Distinct values exactly representable in ``dtype`` (small integers)."""
    n = int(np.prod(shape))
    if dtype == "bool":
        return (np.arange(n) % 3 == 0).reshape(shape)
    values = np.arange(n, dtype=np.float64) % 13 - 5
    if dtype.startswith("uint"):
        values = np.abs(values)
    return values.astype(hwdtypes.dtype(dtype).numpy_dtype).reshape(shape)


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bytes of ``a``'s elements, for bit-exact comparisons of any dtype."""
    return np.ascontiguousarray(a).view(np.uint8)


def in_use(device: hw.Device) -> int:
    gc.collect()
    return device.memory_stats().in_use


@pytest.fixture
def cpu() -> hw.Device:
    return hw.device("cpu:0")


# -- reading capsules -----------------------------------------------------------------------------

_get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


def managed(capsule: Any) -> Any:
    """The DLManagedTensor(Versioned) a fresh capsule holds (read without consuming)."""
    name = dlpack.capsule_name(capsule)
    assert name in ("dltensor", "dltensor_versioned"), name
    struct = DLManagedTensorVersioned if name == "dltensor_versioned" else DLManagedTensor
    return struct.from_address(_get_pointer(capsule, name.encode()))


def type_code(capsule: Any) -> tuple[int, int, int]:
    d = managed(capsule).dl_tensor.dtype
    return (d.code, d.bits, d.lanes)


class Wrapper:
    """A producer that only has the two DLPack methods, forwarding to ``inner``; it records
    the keywords it was called with and the capsules it returned."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[dict[str, Any]] = []
        self.capsules: list[Any] = []

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.inner.__dlpack_device__()  # type: ignore[no-any-return]

    def __dlpack__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        capsule = self.inner.__dlpack__(**kwargs)
        self.capsules.append(capsule)
        return capsule


# -- a producer written with ctypes whose deleter counts its calls -------------------------------

_new_capsule = ctypes.PYFUNCTYPE(
    ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p
)(("PyCapsule_New", ctypes.pythonapi))
_is_valid_raw = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi)
)
_get_pointer_raw = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)
_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _Count:
    def __init__(self) -> None:
        self.deleted = 0


# address of a live struct -> (its counter, the ctypes objects its pointers point into)
_LIVE: dict[int, tuple[_Count, Any, Any, Any]] = {}


@_CALLBACK
def _count_and_delete(address: int) -> None:
    count = _LIVE.pop(address)[0]
    count.deleted += 1


@_CALLBACK
def _capsule_destructor(capsule: int) -> None:
    # as the Python specification prescribes: call the deleter only if still unconsumed
    for name, deleter_slot in ((b"dltensor_versioned", 2), (b"dltensor", 7)):
        if _is_valid_raw(capsule, name):
            address = _get_pointer_raw(capsule, name)
            deleter = ctypes.cast(address, ctypes.POINTER(ctypes.c_void_p))[deleter_slot]
            if deleter:
                _CALLBACK(deleter)(address)


class CountingProducer:
    """Exports ``array``'s memory through a capsule built here, field by field, following
    dlpack.h and the Python specification. ``deleted`` counts deleter calls. Keyword
    arguments bend the struct to test the importer's checks."""

    def __init__(
        self,
        array: np.ndarray,
        *,
        versioned: bool = True,
        version: tuple[int, int] = (1, 1),
        flags: int = 0,
        device: tuple[int, int] = (1, 0),
        code_bits_lanes: tuple[int, int, int] | None = None,
        null_strides: bool = False,
        byte_offset: int = 0,
        null_deleter: bool = False,
    ) -> None:
        self.array = array
        self.versioned = versioned
        self.version = version
        self.flags = flags
        self.device = device
        self.code_bits_lanes = code_bits_lanes
        self.null_strides = null_strides
        self.byte_offset = byte_offset
        self.null_deleter = null_deleter
        self.count = _Count()
        self.capsules: list[Any] = []

    @property
    def deleted(self) -> int:
        return self.count.deleted

    @property
    def live(self) -> int:
        return sum(1 for entry in _LIVE.values() if entry[0] is self.count)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device

    def __dlpack__(self, **kwargs: Any) -> Any:
        a = self.array
        item = a.dtype.itemsize
        struct: Any = DLManagedTensorVersioned() if self.versioned else DLManagedTensor()
        shape = (ctypes.c_int64 * max(a.ndim, 1))(*a.shape)
        strides = (ctypes.c_int64 * max(a.ndim, 1))(*(s // item for s in a.strides))
        t = struct.dl_tensor
        t.data = a.__array_interface__["data"][0] - self.byte_offset
        t.byte_offset = self.byte_offset
        t.device.device_type, t.device.device_id = self.device
        t.ndim = a.ndim
        code = dlpack.dtype_code(a.dtype)
        t.dtype.code, t.dtype.bits, t.dtype.lanes = self.code_bits_lanes or (*code, 1)
        t.shape = shape
        t.strides = None if self.null_strides else strides
        if not self.null_deleter:
            struct.deleter = ctypes.cast(_count_and_delete, ctypes.c_void_p).value
        if self.versioned:
            struct.version.major, struct.version.minor = self.version
            struct.flags = self.flags
        address = ctypes.addressof(struct)
        _LIVE[address] = (self.count, struct, shape, strides)
        name = b"dltensor_versioned" if self.versioned else b"dltensor"
        destructor = ctypes.cast(_capsule_destructor, ctypes.c_void_p).value
        capsule = _new_capsule(address, name, destructor)
        self.capsules.append(capsule)
        return capsule


# -- the C structures and codes -------------------------------------------------------------------


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="offsets below are for 64-bit")
def test_struct_layouts_match_dlpack_h() -> None:
    assert ctypes.sizeof(DLTensor) == 48
    assert [DLTensor.__dict__[f].offset for f in ("data", "device", "ndim", "dtype")] == [
        0, 8, 16, 20,
    ]  # fmt: skip
    assert [DLTensor.__dict__[f].offset for f in ("shape", "strides", "byte_offset")] == [
        24, 32, 40,
    ]  # fmt: skip
    assert ctypes.sizeof(DLManagedTensor) == 64
    assert DLManagedTensor.manager_ctx.offset == 48 and DLManagedTensor.deleter.offset == 56
    assert ctypes.sizeof(DLManagedTensorVersioned) == 80
    v = DLManagedTensorVersioned
    assert (v.version.offset, v.manager_ctx.offset, v.deleter.offset) == (0, 8, 16)
    assert (v.flags.offset, v.dl_tensor.offset) == (24, 32)
    assert (DLPACK_FLAG_BITMASK_READ_ONLY, DLPACK_FLAG_BITMASK_IS_COPIED) == (1, 2)


def test_type_codes_are_dlpack_1_1() -> None:
    expected = {
        "bool": (6, 8), "int8": (0, 8), "int64": (0, 64), "uint16": (1, 16),
        "float16": (2, 16), "float32": (2, 32), "float64": (2, 64), "bfloat16": (4, 16),
        "complex64": (5, 64), "complex128": (5, 128), "float8_e4m3fn": (10, 8),
        "float8_e5m2": (12, 8),
    }  # fmt: skip
    assert {name: dlpack.dtype_code(name) for name in expected} == expected


# -- NumPy, both ways ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_numpy_imports_our_tensor_without_copy(dtype: str) -> None:
    src = sample(dtype)
    t = hw.asarray(src)
    n = np.from_dlpack(t)
    assert n.dtype == src.dtype and n.shape == src.shape
    np.testing.assert_array_equal(n, src)
    n[0, 0] = n[1, 1]  # a write through NumPy's view shows in the tensor
    expected = src.copy()
    expected[0, 0] = src[1, 1]
    np.testing.assert_array_equal(t.numpy(), expected)


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_we_import_numpy_arrays_without_copy(dtype: str) -> None:
    src = sample(dtype)
    t = hw.from_dlpack(src)
    assert t.dtype.name == dtype and t.shape == src.shape
    np.testing.assert_array_equal(t.numpy(), src)
    src[0, 0] = src[1, 1]
    np.testing.assert_array_equal(t.numpy(), src)  # shared memory: the change shows


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_copy_true_import_does_not_share(dtype: str) -> None:
    src = sample(dtype)
    before = src.copy()
    t = hw.from_dlpack(src, copy=True)
    src[0, 0] = src[1, 1]
    np.testing.assert_array_equal(t.numpy(), before)


def test_copy_true_export_is_flagged_and_does_not_share() -> None:
    t = hw.asarray(np.arange(6, dtype=np.float32))
    capsule = t.__dlpack__(max_version=(1, 1), copy=True)
    assert managed(capsule).flags == DLPACK_FLAG_BITMASK_IS_COPIED
    del capsule
    n = np.from_dlpack(t, copy=True)
    n[0] = 100
    assert t.numpy()[0] == 0


# -- bfloat16 and float8 go through our own export and import --------------------------------------


@pytest.mark.parametrize("dtype", ML_DTYPES)
def test_ml_dtypes_round_trip_through_capsules(dtype: str) -> None:
    src = sample(dtype, (2, 3))
    t = hw.asarray(src)
    capsule = t.__dlpack__(max_version=(1, 1))
    assert type_code(capsule) == (*dlpack.dtype_code(dtype), 1)
    assert (managed(capsule).version.major, managed(capsule).version.minor) == (1, 1)
    del capsule
    wrapper = Wrapper(t)
    u = hw.from_dlpack(wrapper)
    assert wrapper.calls == [{"max_version": (1, 1)}]
    assert dlpack.capsule_name(wrapper.capsules[0]) == "used_dltensor_versioned"
    assert u.dtype.name == dtype and u.shape == (2, 3)
    np.testing.assert_array_equal(bits(u.numpy()), bits(src))
    t[0, 0] = 7  # written on the device; the import shares the memory
    assert float(u.numpy()[0, 0]) == 7.0
    v = hw.from_dlpack(t)  # a tensor is a producer like any other
    assert v.dtype.name == dtype
    np.testing.assert_array_equal(bits(v.numpy()), bits(t.numpy()))


@pytest.mark.parametrize("dtype", ML_DTYPES)
def test_ml_dtypes_copy_true_import(dtype: str) -> None:
    t = hw.asarray(sample(dtype, (4,)))
    u = hw.from_dlpack(t, copy=True)
    t[0] = 3
    assert float(u.numpy()[0]) != 3.0
    assert float(t.numpy()[0]) == 3.0


def test_float8_needs_a_dlpack_1_1_consumer() -> None:
    t = hw.asarray(sample("float8_e5m2", (4,)))
    with pytest.raises(hw.DLPackError, match=r"DLPack 1\.1.*DLPack 1\.0"):
        t.__dlpack__(max_version=(1, 0))
    with pytest.raises(hw.DLPackError, match="legacy capsule"):
        t.__dlpack__()
    with pytest.raises(hw.DLPackError, match="max_version=\\(1, 1\\)"):
        np.from_dlpack(t)  # NumPy 2 asks for DLPack 1.0


def test_bfloat16_also_travels_in_legacy_capsules() -> None:
    src = sample("bfloat16", (5,))
    t = hw.asarray(src)
    capsule = t.__dlpack__()
    assert dlpack.capsule_name(capsule) == "dltensor"
    assert type_code(capsule) == (4, 16, 1)
    del capsule

    class Old:
        def __dlpack__(self, stream: Any = None) -> Any:
            return t.__dlpack__(stream=stream)

        def __dlpack_device__(self) -> tuple[int, int]:
            return t.__dlpack_device__()

    np.testing.assert_array_equal(bits(hw.from_dlpack(Old()).numpy()), bits(src))


def test_a_consumer_that_refuses_our_capsule_releases_it(cpu: hw.Device) -> None:
    base = in_use(cpu)
    t = hw.asarray(sample("bfloat16", (256,)))
    storage = weakref.ref(t._storage)
    with pytest.raises((BufferError, RuntimeError)):
        np.from_dlpack(t)  # NumPy has no bfloat16 type code and drops the capsule
    del t
    gc.collect()
    assert storage() is None
    assert in_use(cpu) == base


# -- layouts ---------------------------------------------------------------------------------------

VIEWS: dict[str, Callable[[hw.Tensor], hw.Tensor]] = {
    "transposed": lambda t: t.T,
    "strided": lambda t: t[:, ::2],
    "sliced": lambda t: t[1:, 1:3],
    "row": lambda t: t[1],
    "column": lambda t: t[:, 2],
    "element (0-d)": lambda t: t[1, 2],
    "new axis": lambda t: t[None, :, 1:],
    "permuted 3-d": lambda t: hw.permute_dims(t.reshape(2, 3, 2), (2, 0, 1)),
    "empty": lambda t: t[2:2],
}


@pytest.mark.parametrize("view", list(VIEWS), ids=list(VIEWS))
def test_views_export_without_copy(view: str) -> None:
    t = hw.asarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    v = VIEWS[view](t)
    whole = np.from_dlpack(t)
    n = np.from_dlpack(v)
    assert n.shape == v.shape
    np.testing.assert_array_equal(n, v.numpy())
    if v.size:
        assert np.shares_memory(n, whole)


def test_exported_struct_points_at_the_first_element_in_element_strides() -> None:
    t = hw.asarray(np.arange(20, dtype=np.float64).reshape(4, 5))
    whole = np.from_dlpack(t)
    capsule = t[1:, 2::2].__dlpack__(max_version=(1, 1))
    d = managed(capsule).dl_tensor
    assert (d.device.device_type, d.device.device_id) == (1, 0)
    assert d.byte_offset == 0
    assert d.data == whole.ctypes.data + (1 * 5 + 2) * 8
    assert d.ndim == 2
    assert [d.shape[i] for i in range(2)] == [3, 2]
    assert [d.strides[i] for i in range(2)] == [5, 2]


NUMPY_VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "transposed": lambda a: a.T,
    "strided": lambda a: a[:, ::2],
    "reversed": lambda a: a[::-1],
    "reversed strided": lambda a: a[1:, ::-3],
    "0-d": lambda a: a[1, 2],
    "fortran": lambda a: np.asfortranarray(a),
}


@pytest.mark.parametrize("view", list(NUMPY_VIEWS), ids=list(NUMPY_VIEWS))
def test_numpy_views_import_without_copy(view: str) -> None:
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    v = NUMPY_VIEWS[view](a)
    if not isinstance(v, np.ndarray):
        v = a[1:2, 2:3].reshape(())  # a 0-d view sharing a's memory
    t = hw.from_dlpack(v)
    assert t.shape == v.shape
    np.testing.assert_array_equal(t.numpy(), v)
    v[...] = -7
    np.testing.assert_array_equal(t.numpy(), np.full(v.shape, -7))


def test_null_strides_mean_compact_row_major() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    producer = CountingProducer(a, null_strides=True)
    np.testing.assert_array_equal(hw.from_dlpack(producer).numpy(), a)


def test_byte_offset_is_honoured() -> None:
    a = np.arange(6, dtype=np.int16)
    producer = CountingProducer(a[2:], byte_offset=4)
    np.testing.assert_array_equal(hw.from_dlpack(producer).numpy(), [2, 3, 4, 5])


def test_negative_strides_export_as_a_flagged_copy() -> None:
    t = hw.asarray(np.arange(5, dtype=np.float32))
    r = hw.flip(t)
    assert r.strides == (-1,)
    capsule = r.__dlpack__(max_version=(1, 1))
    m = managed(capsule)
    assert m.flags == DLPACK_FLAG_BITMASK_IS_COPIED
    assert not m.dl_tensor.strides or m.dl_tensor.strides[0] == 1  # NULL: compact
    del capsule, m
    n = np.from_dlpack(r)
    np.testing.assert_array_equal(n, [4, 3, 2, 1, 0])
    n[0] = 100
    assert t.numpy()[4] == 4
    with pytest.raises(hw.DLPackError, match=r"negative strides.*copy=None"):
        r.__dlpack__(max_version=(1, 1), copy=False)


def test_broadcast_views_export_read_only_in_versioned_capsules() -> None:
    t = hw.asarray(np.arange(3, dtype=np.float32))
    b = hw.broadcast_to(t, (4, 3))
    capsule = b.__dlpack__(max_version=(1, 1))
    assert managed(capsule).flags == DLPACK_FLAG_BITMASK_READ_ONLY
    del capsule
    n = np.from_dlpack(b)
    assert not n.flags.writeable
    assert n.strides == (0, 4)
    np.testing.assert_array_equal(n, np.broadcast_to(np.arange(3), (4, 3)))
    t[0] = 9  # shared, not copied
    t.device.synchronize()
    assert n[3, 0] == 9


def test_broadcast_views_in_legacy_capsules_are_copies() -> None:
    t = hw.asarray(np.arange(3, dtype=np.float32))
    b = hw.broadcast_to(t, (4, 3))
    capsule = b.__dlpack__()
    assert dlpack.capsule_name(capsule) == "dltensor"
    m = managed(capsule)
    strides = m.dl_tensor.strides  # NULL means compact row-major (older NumPy exports that)
    assert not strides or [strides[i] for i in range(2)] == [3, 1]  # a compact copy
    assert m.dl_tensor.data != t.device._impl.host_view(t._operand()).ctypes.data
    del capsule, m
    with pytest.raises(hw.DLPackError, match=r"read-only.*copy=None"):
        b.__dlpack__(copy=False)


def test_read_only_imports_are_copies() -> None:
    a = np.arange(4, dtype=np.float64)
    ro = a.view()
    ro.flags.writeable = False
    t = hw.from_dlpack(ro)  # NumPy marks the capsule READ_ONLY
    a[0] = 50
    assert t.numpy()[0] == 0  # a copy: writes to t cannot reach the read-only memory
    t[1] = 60
    assert a[1] == 1
    with pytest.raises(hw.DLPackError, match=r"read-only.*copy=None"):
        hw.from_dlpack(ro, copy=False)


def test_zero_d_and_empty_both_ways() -> None:
    s = hw.asarray(np.float32(2.5))
    assert np.from_dlpack(s).shape == () and np.from_dlpack(s) == 2.5
    u = hw.from_dlpack(s)
    assert u.shape == () and u.item() == 2.5
    e = hw.zeros((0, 3), dtype="int16")
    assert np.from_dlpack(e).shape == (0, 3)
    assert hw.from_dlpack(e).shape == (0, 3)
    assert np.from_dlpack(hw.flip(e)).shape == (0, 3)
    assert hw.from_dlpack(np.zeros((4, 0), np.complex64)).shape == (4, 0)
    assert hw.from_dlpack(np.array(-3, np.int8)).item() == -3


# -- versions and capsule names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_version", "name", "version"),
    [
        (None, "dltensor", None),
        ((0, 8), "dltensor", None),
        ((1, 0), "dltensor_versioned", (1, 0)),
        ((1, 1), "dltensor_versioned", (1, 1)),
        ((2, 0), "dltensor_versioned", (1, 1)),
    ],
)
def test_max_version_picks_the_capsule(
    max_version: tuple[int, int] | None, name: str, version: tuple[int, int] | None
) -> None:
    t = hw.asarray(np.arange(3, dtype=np.int32))
    capsule = t.__dlpack__(max_version=max_version)
    assert dlpack.capsule_name(capsule) == name
    if version is not None:
        m = managed(capsule)
        assert (m.version.major, m.version.minor) == version
        assert m.flags == 0
    assert type_code(capsule) == (0, 32, 1)


def test_legacy_and_versioned_capsules_both_import() -> None:
    a = np.arange(4, dtype=np.float32)
    for versioned in (True, False):
        producer = CountingProducer(a, versioned=versioned)
        t = hw.from_dlpack(producer)
        np.testing.assert_array_equal(t.numpy(), a)
        expected = "used_dltensor_versioned" if versioned else "used_dltensor"
        assert dlpack.capsule_name(producer.capsules[0]) == expected


def test_old_producers_get_called_without_keywords() -> None:
    a = np.arange(3, dtype=np.uint8)
    calls: list[dict[str, Any]] = []

    class Old:
        def __dlpack__(self, stream: Any = None) -> Any:
            calls.append({"stream": stream})
            return a.__dlpack__()

        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

    t = hw.from_dlpack(Old())
    np.testing.assert_array_equal(t.numpy(), a)
    assert calls == [{"stream": None}]


# -- errors ----------------------------------------------------------------------------------------


def test_export_errors_are_dlpack_errors() -> None:
    t = hw.asarray(np.arange(3, dtype=np.float32))
    assert issubclass(hw.DLPackError, BufferError)
    assert issubclass(hw.DLPackError, hw.UnsupportedError)
    assert t.__dlpack_device__() == (1, 0)
    with pytest.raises(hw.DLPackError, match=r"kDLCUDA:0 \(2, 0\).*kDLCPU"):
        t.__dlpack__(dl_device=(2, 0))
    assert dlpack.capsule_name(t.__dlpack__(dl_device=(1, 0))) == "dltensor"
    with pytest.raises(hw.DLPackError, match="stream=None"):
        t.__dlpack__(stream=1)
    with pytest.raises(hw.DLPackError, match="stream=None"):
        t.__dlpack__(stream=-1)
    with pytest.raises(hw.DLPackError, match="max_version must be a pair"):
        t.__dlpack__(max_version=1)  # type: ignore[arg-type]
    with pytest.raises(hw.DLPackError, match="copy must be"):
        t.__dlpack__(copy="yes")  # type: ignore[arg-type]


def test_import_of_non_producers_says_what_to_pass() -> None:
    with pytest.raises(hw.DLPackError, match="list does not implement the DLPack protocol"):
        hw.from_dlpack([1, 2])
    capsule = hw.asarray(np.arange(2.0)).__dlpack__()
    with pytest.raises(hw.DLPackError, match="not the capsule"):
        hw.from_dlpack(capsule)


def test_import_refuses_bad_capsules() -> None:
    class ReturnsJunk:
        def __dlpack__(self, **kwargs: Any) -> Any:
            return "junk"

        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

    with pytest.raises(hw.DLPackError, match="returned a str, not a DLPack capsule"):
        hw.from_dlpack(ReturnsJunk())

    producer = CountingProducer(np.arange(3.0))
    hw.from_dlpack(producer)

    class Replays:
        def __dlpack__(self, **kwargs: Any) -> Any:
            return producer.capsules[0]

        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

    with pytest.raises(hw.DLPackError, match="already consumed"):
        hw.from_dlpack(Replays())


BAD_CAPSULES: dict[str, tuple[dict[str, Any], str]] = {
    "major version 2": ({"version": (2, 0)}, r"DLPack 2\.0 tensor; hwabstract speaks DLPack 1"),
    "CUDA memory": ({"device": (2, 0)}, r"kDLCUDA:0 .*imports only kDLCPU"),
    "pinned host memory": ({"device": (3, 0)}, r"kDLCUDAHost:0 .*imports only kDLCPU"),
    "vector lanes": ({"code_bits_lanes": (2, 32, 4)}, r"kDLFloat with 32 bits x 4 lane"),
    "unknown code": ({"code_bits_lanes": (14, 8, 1)}, r"kDLFloat8_e8m0fnu .*no dtype for"),
    "float128": ({"code_bits_lanes": (2, 128, 1)}, r"kDLFloat with 128 bits"),
}


@pytest.mark.parametrize("case", list(BAD_CAPSULES), ids=list(BAD_CAPSULES))
def test_refused_capsules_stay_with_the_producer(case: str) -> None:
    bend, message = BAD_CAPSULES[case]
    producer = CountingProducer(np.arange(4, dtype=np.float32), **bend)
    with pytest.raises(hw.DLPackError, match=message) as excinfo:
        hw.from_dlpack(producer)
    assert dlpack.capsule_name(producer.capsules[0]) == "dltensor_versioned"  # unconsumed
    assert producer.deleted == 0
    del excinfo
    producer.capsules.clear()
    gc.collect()
    assert producer.deleted == 1  # the producer's capsule destructor freed it


# -- the deleter runs exactly once -----------------------------------------------------------------


def test_deleter_runs_once_when_the_last_user_goes() -> None:
    producer = CountingProducer(np.arange(8, dtype=np.float32))
    t = hw.from_dlpack(producer)
    view = t[2:5]
    producer.capsules.clear()
    gc.collect()
    assert producer.deleted == 0  # zero-copy: the tensor still uses the memory
    del t
    gc.collect()
    assert producer.deleted == 0  # the view still does
    np.testing.assert_array_equal(view.numpy(), [2, 3, 4])
    del view
    gc.collect()
    assert producer.deleted == 1
    assert producer.live == 0


def test_deleter_runs_once_for_an_unconsumed_capsule() -> None:
    producer = CountingProducer(np.arange(3, dtype=np.int8))
    producer.__dlpack__()
    producer.capsules.clear()
    gc.collect()
    assert producer.deleted == 1


def test_copies_release_the_producer_at_once() -> None:
    producer = CountingProducer(np.arange(6, dtype=np.float64))
    t = hw.from_dlpack(producer, copy=True)
    producer.capsules.clear()
    gc.collect()
    assert producer.deleted == 1
    np.testing.assert_array_equal(t.numpy(), np.arange(6))


def test_empty_imports_release_the_producer_at_once() -> None:
    producer = CountingProducer(np.zeros((0, 2), np.uint32))
    t = hw.from_dlpack(producer)
    producer.capsules.clear()
    gc.collect()
    assert t.shape == (0, 2)
    assert producer.deleted == 1


def test_read_only_flag_from_a_foreign_producer() -> None:
    a = np.arange(4, dtype=np.float32)
    producer = CountingProducer(a, flags=DLPACK_FLAG_BITMASK_READ_ONLY)
    t = hw.from_dlpack(producer)
    a[0] = 40
    assert t.numpy()[0] == 0
    with pytest.raises(hw.DLPackError, match="read-only"):
        hw.from_dlpack(producer, copy=False)
    producer.capsules.clear()
    gc.collect()
    assert producer.deleted == 2  # one per capsule, whether used or refused


def test_producer_copies_are_adopted_even_for_copy_true() -> None:
    a = np.arange(4, dtype=np.float32)
    producer = CountingProducer(a, flags=DLPACK_FLAG_BITMASK_IS_COPIED)
    t = hw.from_dlpack(producer, copy=True)
    producer.capsules.clear()
    gc.collect()
    assert producer.deleted == 0  # the producer's copy is ours now: no second copy
    del t
    gc.collect()
    assert producer.deleted == 1


def test_a_null_deleter_is_allowed() -> None:
    a = np.arange(3, dtype=np.float32)
    producer = CountingProducer(a, null_deleter=True)
    t = hw.from_dlpack(producer)
    np.testing.assert_array_equal(t.numpy(), a)
    del t
    gc.collect()
    assert producer.deleted == 0


def test_exceptions_in_flight_survive_dlpack_cleanup() -> None:
    # Capsule destructors and deleters run while these ZeroDivisionErrors unwind; a Python
    # callback there would turn them into SystemError.
    t = hw.asarray(np.arange(3.0))
    with pytest.raises(ZeroDivisionError):
        (np.from_dlpack(t), 1 / 0)
    with pytest.raises(ZeroDivisionError):
        (t.__dlpack__(max_version=(1, 1)), 1 / 0)
    with pytest.raises(ZeroDivisionError):
        (hw.from_dlpack(np.arange(3.0)), 1 / 0)
    with pytest.raises(ZeroDivisionError):
        (hw.from_dlpack(t), 1 / 0)


# -- memory ----------------------------------------------------------------------------------------


def test_storage_lives_exactly_as_long_as_the_consumer(cpu: hw.Device) -> None:
    base = in_use(cpu)
    t = hw.asarray(np.arange(1000, dtype=np.float32))
    storage = weakref.ref(t._storage)
    n = np.from_dlpack(t[10:20])
    del t
    gc.collect()
    assert storage() is not None
    assert in_use(cpu) == base + 4000
    np.testing.assert_array_equal(n, np.arange(10, 20))
    del n
    gc.collect()
    assert storage() is None
    assert in_use(cpu) == base


def test_many_exchanges_leak_nothing(cpu: hw.Device) -> None:
    base = in_use(cpu)
    refs = []
    for i in range(200):
        t = hw.asarray(np.full(64, i, dtype=ml_dtypes.bfloat16 if i % 2 else np.int32))
        refs.append(weakref.ref(t._storage))
        u = hw.from_dlpack(t)  # our export, our import
        if i % 2 == 0:
            n = np.from_dlpack(u)  # NumPy import of an imported tensor
            back = hw.from_dlpack(n)  # and back
            assert back.numpy()[0] == i
            del n, back
        legacy = t.__dlpack__()
        versioned = t.__dlpack__(max_version=(1, 1))
        del t, u, legacy, versioned
    gc.collect()
    assert all(r() is None for r in refs)
    assert in_use(cpu) == base


def test_consumers_may_drop_memory_from_other_threads(cpu: hw.Device) -> None:
    base = in_use(cpu)
    t = hw.asarray(np.arange(100, dtype=np.int64))
    storage = weakref.ref(t._storage)
    held = [np.from_dlpack(t), hw.from_dlpack(t), hw.from_dlpack(np.from_dlpack(t))]
    del t

    def drop() -> None:
        held.clear()  # the deleters run in this thread
        gc.collect()

    worker = threading.Thread(target=drop)
    worker.start()
    worker.join()
    gc.collect()
    assert storage() is None
    assert in_use(cpu) == base


def test_interpreter_shutdown_with_live_exchanges() -> None:
    script = textwrap.dedent(
        """
        import threading
        import numpy as np
        import hwabstract as hw

        t = hw.asarray(np.arange(10, dtype=np.float32))
        kept = [np.from_dlpack(t), hw.from_dlpack(t), hw.from_dlpack(np.arange(3.0))]
        kept.append(t.__dlpack__(max_version=(1, 1)))  # never consumed
        kept.append(kept)  # a cycle, collected during finalization
        b = hw.asarray(np.ones(4, np.float32)).astype(hw.bfloat16)
        holder = threading.Thread(target=lambda: None)
        holder.kept = [hw.from_dlpack(b), np.from_dlpack(hw.from_dlpack(np.arange(2)))]
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert result.stderr == ""


# -- streams ---------------------------------------------------------------------------------------


def test_export_waits_for_the_last_writer(
    cpu: hw.Device, gate: Callable[[hw.Stream], threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    t = hw.zeros((1000,), dtype="float32")
    t.device.synchronize()
    stream = cpu.create_stream()
    opened = gate(stream)  # the stream is held until `opened` is set
    hw.add(t, 1, out=t, stream=stream)
    synchronized: list[hw.Stream] = []
    original = hw.Stream.synchronize

    def synchronize(self: hw.Stream) -> None:
        synchronized.append(self)
        opened.set()  # only a waiting export lets the write run before it reads
        original(self)

    monkeypatch.setattr(hw.Stream, "synchronize", synchronize)
    n = np.from_dlpack(t)
    assert synchronized == [stream]
    np.testing.assert_array_equal(n, np.ones(1000, np.float32))


# -- producers on other devices --------------------------------------------------------------------


class CudaLike:
    """Claims kDLCUDA memory; hands over a host copy when asked for dl_device=(kDLCPU, 0)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.calls: list[dict[str, Any]] = []

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, 0)

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        self.calls.append({"max_version": max_version, "dl_device": dl_device, "copy": copy})
        if dl_device != (1, 0):
            raise BufferError("a CUDA capsule is not what this test hands out")
        return self.array.__dlpack__(max_version=max_version, copy=True)


def test_non_cpu_producers_are_asked_for_a_host_copy() -> None:
    a = np.arange(5, dtype=np.float32)
    producer = CudaLike(a)
    t = hw.from_dlpack(producer)
    assert producer.calls == [{"max_version": (1, 1), "dl_device": (1, 0), "copy": None}]
    np.testing.assert_array_equal(t.numpy(), a)
    a[0] = 10  # the producer copied (IS_COPIED), and that copy is ours
    assert t.numpy()[0] == 0
    with pytest.raises(hw.DLPackError, match=r"kDLCUDA:0 .*copy=False forbids"):
        hw.from_dlpack(producer, copy=False)
    assert len(producer.calls) == 1


def test_non_cpu_producers_without_dl_device_are_refused() -> None:
    class OldCuda:
        def __dlpack_device__(self) -> tuple[int, int]:
            return (2, 1)

        def __dlpack__(self, stream: Any = None) -> Any:
            raise AssertionError("must not be called without dl_device")

    with pytest.raises(hw.DLPackError, match=r"kDLCUDA:1 .*does not take dl_device="):
        hw.from_dlpack(OldCuda())


@pytest.mark.parametrize("error", [BufferError, TypeError, ValueError, RuntimeError])
def test_producer_errors_become_dlpack_errors(error: type[Exception]) -> None:
    class Refuses:
        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

        def __dlpack__(self, **kwargs: Any) -> Any:
            raise error("not today")

    with pytest.raises(hw.DLPackError, match=r"Refuses\.__dlpack__\(\) failed.*not today") as e:
        hw.from_dlpack(Refuses())
    assert isinstance(e.value.__cause__, error)


def test_copy_false_is_passed_on_to_the_producer() -> None:
    wrapper = Wrapper(hw.asarray(np.arange(3, dtype=np.float32)))
    hw.from_dlpack(wrapper, copy=False)
    assert wrapper.calls == [{"max_version": (1, 1), "copy": False}]


def test_dtypes_the_target_lacks_are_refused_unconsumed(limited_device: hw.Device) -> None:
    producer = CountingProducer(np.arange(3.0))  # float64, which the limited device lacks
    with pytest.raises(hw.UnsupportedError, match="float64") as excinfo:
        hw.from_dlpack(producer, device=limited_device)
    assert dlpack.capsule_name(producer.capsules[0]) == "dltensor_versioned"
    del excinfo
    producer.capsules.clear()
    gc.collect()
    assert producer.deleted == 1


# -- a device that cannot address host memory ------------------------------------------------------


class NoHostBackend(CpuBackend):
    """The cpu backend, minus host access: no host views, no adopting host arrays."""

    name = "nohost"

    def host_view(self, operand: Operand) -> np.ndarray | None:
        return None

    def adopt_host_array(self, index: int, array: np.ndarray) -> Any:
        return None


@hw.hookimpl
def _nohost_backends() -> list[type[hw.Backend]]:
    return [NoHostBackend]


@pytest.fixture
def nohost(fresh_registry: Callable[..., Any]) -> Iterator[hw.Device]:
    cpu_source = PluginSource(
        "cpu", lambda: importlib.import_module("hwabstract.backends.cpu"), "hwabstract", "0"
    )
    plugin = types.SimpleNamespace(hwabstract_backends=_nohost_backends)
    fresh_registry(
        [cpu_source, PluginSource("nohost", lambda: plugin, "tests", "0")],
        HWABSTRACT_CPU_DEVICES=None,
    )
    yield hw.device("nohost:0")


def test_import_onto_a_device_without_host_access_copies(nohost: hw.Device) -> None:
    a = np.arange(4, dtype=np.float32)
    t = hw.from_dlpack(a, device=nohost)
    assert t.device is nohost
    a[0] = 9
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 3])
    with pytest.raises(hw.DLPackError, match="nohost:0 cannot address host memory"):
        hw.from_dlpack(a, device=nohost, copy=False)


def test_tensors_without_host_access_export_only_host_copies(nohost: hw.Device) -> None:
    t = hw.asarray(np.arange(4, dtype=np.int32), device=nohost)
    with pytest.raises(hw.DLPackError, match="does not expose its memory"):
        t.__dlpack_device__()
    with pytest.raises(hw.DLPackError, match="does not expose its memory"):
        t.__dlpack__(max_version=(1, 1))
    capsule = t.__dlpack__(max_version=(1, 1), dl_device=(1, 0))
    assert managed(capsule).flags == DLPACK_FLAG_BITMASK_IS_COPIED
    del capsule
    with pytest.raises(hw.DLPackError, match="only as a copy"):
        t.__dlpack__(dl_device=(1, 0), copy=False)

    class HostCopy:
        def __dlpack_device__(self) -> tuple[int, int]:
            return (1, 0)

        def __dlpack__(self, **kwargs: Any) -> Any:
            return t.__dlpack__(dl_device=(1, 0), **kwargs)

    u = hw.from_dlpack(HostCopy(), device="cpu:0")
    np.testing.assert_array_equal(u.numpy(), [0, 1, 2, 3])


def test_from_dlpack_of_a_device_tensor_moves_it_like_to(nohost: hw.Device) -> None:
    t = hw.asarray(np.arange(3, dtype=np.float32), device=nohost)
    assert hw.from_dlpack(t, device=nohost) is t
    c = hw.from_dlpack(t, device=nohost, copy=True)
    assert c is not t and c.device is nohost
    h = hw.from_dlpack(t, device="cpu:0")
    assert h.device.name == "cpu:0"
    np.testing.assert_array_equal(h.numpy(), [0, 1, 2])
    with pytest.raises(hw.DLPackError, match=r"copy=False.*without copying"):
        hw.from_dlpack(t, device="cpu:0", copy=False)


def test_asarray_takes_dlpack_producers() -> None:
    a = np.arange(3, dtype=np.uint16)
    t = hw.asarray(Wrapper(hw.asarray(a)))
    np.testing.assert_array_equal(t.numpy(), a)


def test_ml_dtypes_values_survive_exactly() -> None:
    # every float8 bit pattern, including NaN and infinities, crosses unchanged
    for dtype in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2):
        src = np.arange(256, dtype=np.uint8).view(dtype)
        t = hw.asarray(src)
        np.testing.assert_array_equal(bits(hw.from_dlpack(t).numpy()), bits(src))
