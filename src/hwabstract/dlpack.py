"""DLPack 1.x exchange: ``Tensor.__dlpack__``, ``Tensor.__dlpack_device__`` and
:func:`from_dlpack`. See ``docs/dlpack.md`` for the user-facing rules.

The C structures of ``dlpack.h`` (DLPack 1.1) are declared here with :mod:`ctypes`; the
importer parses every capsule itself, so any dtype hwabstract knows -- ``bfloat16``,
``float8_e4m3fn`` and ``float8_e5m2`` included -- crosses in both directions.

Export, and why its lifetime machinery is NumPy's C code
--------------------------------------------------------
A capsule's destructor and the ``deleter`` of the managed tensor are called by foreign C
code at times we do not choose: from any thread, during interpreter shutdown, and -- the
case that rules out Python -- while an exception is propagating (a consumer that fails to
parse a capsule drops it with its error set; an array living in a temporary is freed
during unwinding). A ``ctypes`` callback entered with an exception set replaces that
exception with ``SystemError`` (CPython checks the callback's result), so a pure-ctypes
destructor or deleter would corrupt the user's traceback. We therefore let NumPy's
exporter allocate the ``DLManagedTensor[Versioned]``: its capsule destructor and deleter
are C functions that take the GIL themselves, do nothing after interpreter shutdown, and
never run Python code except ordinary ``__del__`` methods. NumPy is handed an array whose
``base`` keeps the tensor -- and so its :class:`~hwabstract.tensor.Storage` -- alive until
the deleter runs. For dtypes NumPy cannot name (``bfloat16``, float8) it exports a same-width
unsigned view, and we then overwrite, in the struct it allocated, the fields we own: the
type code, the version and the flags. NumPy's deleter does not read them.

Import
------
The capsule is checked completely (name, version, device, dtype, shape, strides, pointer)
before it is consumed, so a refused capsule stays with its producer, whose destructor
frees it. On acceptance it is renamed ``used_dltensor[_versioned]`` and ownership moves to
an :class:`_ImportedMemory`; its ``__del__`` -- which CPython runs with any in-flight
exception saved -- calls the producer's deleter exactly once, when the last NumPy array or
tensor over the memory is gone.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any, NamedTuple

import numpy as np

from . import dtypes as dt
from .dtypes import DType
from .errors import DLPackError
from .tensor import Storage, Tensor, contiguous_strides

__all__ = [
    "DLPACK_FLAG_BITMASK_IS_COPIED",
    "DLPACK_FLAG_BITMASK_READ_ONLY",
    "DLPACK_VERSION",
    "KDLCPU",
    "DLDataType",
    "DLDevice",
    "DLManagedTensor",
    "DLManagedTensorVersioned",
    "DLPackVersion",
    "DLTensor",
    "capsule_name",
    "dtype_code",
    "export_packed",
    "export_tensor",
    "from_dlpack",
    "tensor_device",
]

#: The newest DLPack version this module speaks (1.1 added the float8 type codes).
DLPACK_VERSION = (1, 1)

# -- dlpack.h: DLDeviceType ---------------------------------------------------------------------

KDLCPU = 1
_DEVICE_NAMES = {
    1: "kDLCPU", 2: "kDLCUDA", 3: "kDLCUDAHost", 4: "kDLOpenCL", 7: "kDLVulkan",
    8: "kDLMetal", 9: "kDLVPI", 10: "kDLROCM", 11: "kDLROCMHost", 12: "kDLExtDev",
    13: "kDLCUDAManaged", 14: "kDLOneAPI", 15: "kDLWebGPU", 16: "kDLHexagon",
    17: "kDLMAIA", 18: "kDLTrn",
}  # fmt: skip

# -- dlpack.h: DLDataTypeCode -------------------------------------------------------------------

KDL_INT = 0
KDL_UINT = 1
KDL_FLOAT = 2
KDL_BFLOAT = 4
KDL_COMPLEX = 5
KDL_BOOL = 6
KDL_FLOAT8_E4M3FN = 10
KDL_FLOAT8_E5M2 = 12
_CODE_NAMES = {
    0: "kDLInt", 1: "kDLUInt", 2: "kDLFloat", 3: "kDLOpaqueHandle", 4: "kDLBfloat",
    5: "kDLComplex", 6: "kDLBool", 7: "kDLFloat8_e3m4", 8: "kDLFloat8_e4m3",
    9: "kDLFloat8_e4m3b11fnuz", 10: "kDLFloat8_e4m3fn", 11: "kDLFloat8_e4m3fnuz",
    12: "kDLFloat8_e5m2", 13: "kDLFloat8_e5m2fnuz", 14: "kDLFloat8_e8m0fnu",
    15: "kDLFloat6_e2m3fn", 16: "kDLFloat6_e3m2fn", 17: "kDLFloat4_e2m1fn",
}  # fmt: skip

#: ``DLManagedTensorVersioned.flags``: the consumer must not write through the tensor.
DLPACK_FLAG_BITMASK_READ_ONLY = 1 << 0
#: ``DLManagedTensorVersioned.flags``: the producer made a copy the consumer owns alone.
DLPACK_FLAG_BITMASK_IS_COPIED = 1 << 1

# -- dlpack.h: the structures -------------------------------------------------------------------


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),  # in elements; NULL: compact row-major
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    """The legacy (pre-1.0) managed tensor, in capsules named ``"dltensor"``."""

    _fields_ = [
        ("dl_tensor", DLTensor),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),  # void (*)(DLManagedTensor *)
    ]


class DLManagedTensorVersioned(ctypes.Structure):
    """The DLPack 1.x managed tensor, in capsules named ``"dltensor_versioned"``."""

    _fields_ = [
        ("version", DLPackVersion),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),  # void (*)(DLManagedTensorVersioned *)
        ("flags", ctypes.c_uint64),
        ("dl_tensor", DLTensor),
    ]


_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

# -- the PyCapsule C API ------------------------------------------------------------------------

_VERSIONED = b"dltensor_versioned"
_USED_VERSIONED = b"used_dltensor_versioned"
_LEGACY = b"dltensor"
_USED_LEGACY = b"used_dltensor"


def _c_api(name: str, restype: Any, *argtypes: Any) -> Any:
    # A private function object: argtypes set here cannot clash with other users of
    # ctypes.pythonapi. PYFUNCTYPE keeps the GIL and raises any error the call sets.
    return ctypes.PYFUNCTYPE(restype, *argtypes)((name, ctypes.pythonapi))


_capsule_is_valid = _c_api("PyCapsule_IsValid", ctypes.c_int, ctypes.py_object, ctypes.c_char_p)
_capsule_get_pointer = _c_api(
    "PyCapsule_GetPointer", ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p
)
_capsule_set_name = _c_api("PyCapsule_SetName", ctypes.c_int, ctypes.py_object, ctypes.c_char_p)

# PyCapsule_SetName stores the pointer, not a copy: the new names must outlive every capsule
# renamed with them, even during interpreter shutdown, so they are never freed.
_c_api("Py_IncRef", None, ctypes.py_object)(_USED_VERSIONED)
_c_api("Py_IncRef", None, ctypes.py_object)(_USED_LEGACY)


def capsule_name(capsule: Any) -> str | None:
    """The DLPack name of ``capsule`` (``"dltensor_versioned"``, ``"used_dltensor"``, ...),
    or None if it is not a DLPack capsule."""
    for name in (_VERSIONED, _LEGACY, _USED_VERSIONED, _USED_LEGACY):
        if _capsule_is_valid(capsule, name):
            return name.decode()
    return None


# -- dtypes -------------------------------------------------------------------------------------

_CODES: dict[DType, tuple[int, int]] = {
    dt.bool_: (KDL_BOOL, 8),
    dt.int8: (KDL_INT, 8),
    dt.int16: (KDL_INT, 16),
    dt.int32: (KDL_INT, 32),
    dt.int64: (KDL_INT, 64),
    dt.uint8: (KDL_UINT, 8),
    dt.uint16: (KDL_UINT, 16),
    dt.uint32: (KDL_UINT, 32),
    dt.uint64: (KDL_UINT, 64),
    dt.float16: (KDL_FLOAT, 16),
    dt.float32: (KDL_FLOAT, 32),
    dt.float64: (KDL_FLOAT, 64),
    dt.bfloat16: (KDL_BFLOAT, 16),
    dt.complex64: (KDL_COMPLEX, 64),
    dt.complex128: (KDL_COMPLEX, 128),
    dt.float8_e4m3fn: (KDL_FLOAT8_E4M3FN, 8),
    dt.float8_e5m2: (KDL_FLOAT8_E5M2, 8),
}
_DTYPES: dict[tuple[int, int], DType] = {v: k for k, v in _CODES.items()}
#: Type codes that appeared after DLPack 1.0; a consumer must speak 1.1 to receive them.
_NEEDS_1_1 = frozenset({dt.float8_e4m3fn, dt.float8_e5m2})
#: What NumPy's exporter is given for dtypes it cannot name (same width; code patched after).
_PROXY: dict[DType, np.dtype[Any]] = {
    dt.bfloat16: np.dtype(np.uint16),
    dt.float8_e4m3fn: np.dtype(np.uint8),
    dt.float8_e5m2: np.dtype(np.uint8),
}


def dtype_code(dtype: Any) -> tuple[int, int]:
    """The DLPack ``(type code, bits)`` of a dtype (lanes are always 1)."""
    return _CODES[dt.dtype(dtype)]


def _code_text(code: int, bits: int, lanes: int) -> str:
    return f"{_CODE_NAMES.get(code, f'type code {code}')} with {bits} bits x {lanes} lane(s)"


def _device_text(device: tuple[int, int]) -> str:
    kind, index = device
    return f"{_DEVICE_NAMES.get(kind, f'device type {kind}')}:{index} {device}"


# -- argument checks ------------------------------------------------------------------------------


def _pair(value: Any, what: str) -> tuple[int, int]:
    try:
        first, second = value
        return (int(first), int(second))
    except (TypeError, ValueError):
        raise DLPackError(f"{what} must be a pair of integers, got {value!r}") from None


def _check_copy(copy: Any) -> bool | None:
    if copy is None or isinstance(copy, (bool, np.bool_)):
        return None if copy is None else bool(copy)
    raise DLPackError(f"copy must be True, False or None, got {copy!r}")


# -- export ---------------------------------------------------------------------------------------


def _host_view(tensor: Tensor) -> np.ndarray | None:
    operand = tensor._operand()
    if tensor.size == 0:
        # nothing is addressed: do not hand the backend an offset past its (empty) buffer
        operand = operand._replace(strides=contiguous_strides(tensor.shape), offset=0)
    return tensor.device._impl.host_view(operand)


def _device_memory(tensor: Tensor) -> tuple[int, int] | None:
    """The DLPack device of ``tensor``'s memory when its backend exports device memory."""
    return tensor.device._impl.dlpack_device(tensor._operand())


def tensor_device(tensor: Tensor) -> tuple[int, int]:
    """The ``(device_type, device_id)`` DLPack pair of ``tensor``: ``(kDLCPU, 0)`` for every
    device whose memory the host can address, the backend's own pair (``(kDLCUDA, i)``)
    for device memory it exports."""
    if _host_view(tensor) is not None:
        return (KDLCPU, 0)
    device = _device_memory(tensor)
    if device is not None:
        return device
    raise DLPackError(
        f"{tensor.device.name} does not expose its memory to DLPack; ask for a host copy "
        "with t.__dlpack__(dl_device=(1, 0)) (np.from_dlpack(t, device='cpu') cannot, "
        "because __dlpack_device__ has no device to report), or use t.numpy()"
    )


class _ExportedMemory:
    """What NumPy's exporter sees: an array interface over the tensor's memory, and the
    tensor itself, kept alive (storage, accounting and all) until the deleter runs."""

    __slots__ = ("__array_interface__", "tensor")

    def __init__(self, interface: dict[str, Any], tensor: Tensor) -> None:
        self.__array_interface__ = interface
        self.tensor = tensor


def _export_array(view: np.ndarray, proxy: np.dtype[Any], readonly: bool, keep: Tensor) -> Any:
    """An ndarray over ``view``'s memory, typed ``proxy``, whose base keeps ``keep`` alive.
    Strides of dimensions of size <= 1 (and of empty arrays) are normalized to compact ones,
    which consumers that check for contiguity prefer."""
    item = proxy.itemsize
    compact = [s * item for s in contiguous_strides(view.shape)]
    empty = view.size == 0
    strides = tuple(
        c if empty or d <= 1 else s for d, s, c in zip(view.shape, view.strides, compact)
    )
    interface = {
        "version": 3,
        "shape": view.shape,
        "typestr": proxy.str,
        "strides": strides,
        "data": (view.__array_interface__["data"][0], readonly),
    }
    return np.asarray(_ExportedMemory(interface, keep))


def export_tensor(
    tensor: Tensor,
    *,
    stream: Any = None,
    max_version: tuple[int, int] | None = None,
    dl_device: tuple[int, int] | None = None,
    copy: bool | None = None,
) -> Any:
    """The DLPack capsule for ``tensor`` (``Tensor.__dlpack__``; see ``docs/dlpack.md``).

    A versioned capsule when ``max_version >= (1, 0)``, else a legacy one. Zero-copy unless
    ``copy=True`` or the layout needs a copy (negative strides; a broadcast view in a legacy
    capsule, which cannot say read-only); ``copy=False`` then raises :class:`DLPackError`.
    """
    copy = _check_copy(copy)
    version = None if max_version is None else _pair(max_version, "max_version")
    versioned = version is not None and version[0] >= 1
    wanted = None if dl_device is None else _pair(dl_device, "dl_device")
    if _host_view(tensor) is None and wanted != (KDLCPU, 0):
        device = _device_memory(tensor)
        if device is not None:
            if wanted is not None and wanted != device:
                raise DLPackError(
                    f"cannot export {tensor.device.name} memory to {_device_text(wanted)}: "
                    f"it lives on {_device_text(device)}; ask for dl_device=(1, 0) for a host "
                    "copy, or move the tensor first"
                )
            storage = tensor._storage
            writer = storage.last_stream or storage.device.default_stream
            try:
                return tensor.device._impl.dlpack_export(
                    writer.handle, tensor._operand(), stream=stream, max_version=max_version,
                    dl_device=dl_device, copy=copy,
                )  # fmt: skip
            except (BufferError, TypeError, ValueError) as exc:
                raise DLPackError(
                    f"{tensor.device.name} could not export this tensor: {exc}"
                ) from exc
    if stream is not None:
        raise DLPackError(
            "hwabstract tensors are exported as kDLCPU memory, whose consumers must pass "
            f"stream=None (got stream={stream!r}); the export itself waits for the stream "
            "that last wrote the tensor"
        )
    dtype = tensor.dtype
    if dtype in _NEEDS_1_1 and (version is None or version < (1, 1)):
        asked = f"DLPack {version[0]}.{version[1]}" if version and versioned else "a legacy capsule"
        raise DLPackError(
            f"{dtype} has a DLPack type code only since DLPack 1.1, and the consumer asked "
            f"for {asked}; use a consumer that passes max_version=(1, 1), or cast first "
            "(e.g. t.astype(hw.float32))"
        )

    view = _host_view(tensor)
    if view is None:
        if wanted != (KDLCPU, 0):
            tensor_device(tensor)  # raises, saying what to do instead
        if copy is False:
            raise DLPackError(
                f"{tensor.device.name} memory can reach a kDLCPU consumer only as a copy, "
                "and copy=False forbids one; pass copy=None"
            )
        return _make_capsule(tensor.numpy(), dtype, version, readonly=False, copied=True)
    if wanted is not None and wanted != (KDLCPU, 0):
        raise DLPackError(
            f"cannot export {tensor.device.name} memory to {_device_text(wanted)}: it is "
            f"host memory, exported as {_device_text((KDLCPU, 0))}; hwabstract cannot copy "
            "it to another DLPack device"
        )
    storage = tensor._storage
    (storage.last_stream or storage.device.default_stream).synchronize()

    big = [(d, s) for d, s in zip(tensor.shape, tensor.strides) if d > 1]
    empty = tensor.size == 0
    reversed_ = not empty and any(s < 0 for _, s in big)
    broadcast = not empty and any(s == 0 for _, s in big)
    reason = None
    if reversed_:
        reason = (
            "it has negative strides, which DLPack consumers such as PyTorch and TensorFlow "
            "reject, so hwabstract exports such views as a compact copy"
        )
    elif broadcast and not versioned:
        reason = (
            "it is a broadcast view (zero strides): its elements alias each other, and only "
            "a versioned capsule (max_version >= (1, 0)) can mark it read-only"
        )
    if copy is True or reason is not None:
        if copy is False:
            raise DLPackError(
                f"cannot export this {tensor.shape} {dtype} view without a copy: {reason}; "
                "pass copy=None to allow one"
            )
        host = np.array(view, copy=True, order="C")
        return _make_capsule(host, dtype, version, readonly=False, copied=True)
    proxy = _PROXY.get(dtype, dtype.numpy_dtype)
    array = _export_array(view, proxy, readonly=broadcast, keep=tensor)
    return _make_capsule(array, dtype, version, readonly=broadcast, copied=False)


def _make_capsule(
    host: np.ndarray,
    dtype: DType,
    version: tuple[int, int] | None,
    *,
    readonly: bool,
    copied: bool,
) -> Any:
    """Have NumPy build the capsule around ``host`` (see the module docstring), then set the
    fields that are ours: type code, version and flags."""
    proxy = _PROXY.get(dtype)
    if proxy is not None and host.dtype != proxy:
        host = host.view(proxy)
    versioned = version is not None and version[0] >= 1
    try:
        capsule = host.__dlpack__(max_version=(1, 0)) if versioned else host.__dlpack__()
    except BufferError as exc:
        raise DLPackError(f"cannot export a {host.shape} {dtype} tensor: {exc}") from exc
    name = _VERSIONED if versioned else _LEGACY
    address = _capsule_get_pointer(capsule, name)
    managed: Any
    if versioned:
        assert version is not None
        managed = DLManagedTensorVersioned.from_address(address)
        managed.version.major = 1
        managed.version.minor = DLPACK_VERSION[1] if version >= DLPACK_VERSION else 0
        managed.flags = (DLPACK_FLAG_BITMASK_READ_ONLY if readonly else 0) | (
            DLPACK_FLAG_BITMASK_IS_COPIED if copied else 0
        )
    else:
        managed = DLManagedTensor.from_address(address)
    described = managed.dl_tensor.dtype
    numpy_code = (KDL_UINT, 8 * host.dtype.itemsize) if proxy is not None else _CODES[dtype]
    if (described.code, described.bits, described.lanes) != (*numpy_code, 1):
        # not ours to consume: the capsule's own destructor frees it when it goes
        raise DLPackError(
            f"NumPy {np.__version__} described a {host.dtype} array as "
            f"{_code_text(described.code, described.bits, described.lanes)}; hwabstract "
            "cannot export through this NumPy version"
        )
    described.code, described.bits = _CODES[dtype]
    return capsule


def export_packed(
    host: np.ndarray,
    code: int,
    bits: int,
    shape: tuple[int, ...],
    version: tuple[int, int] | None,
    *,
    copied: bool,
) -> Any:
    """A versioned capsule over the C-contiguous bytes ``host`` described as ``shape``
    elements of type (``code``, ``bits``): DLPack 1.1's sub-byte types (FP6, FP4) packed
    little bit-endian, or the MX scale and 8-bit element types. NumPy builds the capsule
    around the bytes (see the module docstring); its dtype, shape and strides are then
    rewritten in place (same number of dimensions), strides in elements, compact."""
    if version is None or version < (1, 1):
        asked = "a legacy capsule" if version is None else f"DLPack {version[0]}.{version[1]}"
        raise DLPackError(
            f"DLPack type code {code} ({bits} bits) exists only since DLPack 1.1; the consumer "
            f"asked for {asked}; use a consumer that passes max_version=(1, 1)"
        )
    if host.ndim != len(shape) or not host.flags.c_contiguous:
        raise DLPackError("export_packed needs C-contiguous bytes of the shape's rank")
    capsule = host.__dlpack__(max_version=(1, 0))
    managed = DLManagedTensorVersioned.from_address(_capsule_get_pointer(capsule, _VERSIONED))
    managed.version.major, managed.version.minor = DLPACK_VERSION
    managed.flags = DLPACK_FLAG_BITMASK_IS_COPIED if copied else 0
    t = managed.dl_tensor
    t.dtype.code, t.dtype.bits, t.dtype.lanes = code, bits, 1
    stride = 1
    for i in reversed(range(len(shape))):
        t.shape[i] = shape[i]
        if t.strides:
            t.strides[i] = stride
        stride *= max(shape[i], 1)
    return capsule


# -- import ---------------------------------------------------------------------------------------


class _ImportedMemory:
    """Owns a consumed DLPack tensor: the base of the NumPy arrays over its memory. When the
    last of them dies, ``__del__`` calls the producer's deleter -- exactly once. (CPython
    saves any in-flight exception around ``__del__``, unlike around ctypes callbacks.)"""

    __slots__ = ("__array_interface__", "_address", "_deleter", "armed")

    def __init__(self, address: int, deleter: int | None) -> None:
        self._address = address
        self._deleter = None if not deleter else _DELETER(deleter)
        self.armed = False
        self.__array_interface__: dict[str, Any] = {}

    def __del__(self) -> None:
        if self.armed:
            self.armed = False
            if self._deleter is not None:
                self._deleter(self._address)


class _Parsed(NamedTuple):
    """A validated, not yet consumed, DLPack tensor."""

    address: int
    used_name: bytes
    deleter: int | None
    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # elements
    data: int  # address of element 0 (data + byte_offset)
    lo: int  # lowest element reached, relative to element 0 (<= 0)
    nbytes: int  # bytes from the lowest to the highest element reached
    readonly: bool
    copied: bool


def _parse(capsule: Any, producer: str) -> _Parsed:
    """Read and check everything in ``capsule`` without consuming it (a refusal leaves the
    capsule, and its memory, to the producer's destructor)."""
    if _capsule_is_valid(capsule, _VERSIONED):
        name, used, versioned = _VERSIONED, _USED_VERSIONED, True
    elif _capsule_is_valid(capsule, _LEGACY):
        name, used, versioned = _LEGACY, _USED_LEGACY, False
    elif _capsule_is_valid(capsule, _USED_VERSIONED) or _capsule_is_valid(capsule, _USED_LEGACY):
        raise DLPackError(
            f"{producer}.__dlpack__() returned a capsule that was already consumed; a DLPack "
            "capsule can be imported only once -- call __dlpack__() again for a new one"
        )
    else:
        raise DLPackError(
            f"{producer}.__dlpack__() returned a {type(capsule).__name__}, not a DLPack "
            "capsule named 'dltensor_versioned' or 'dltensor'"
        )
    address = _capsule_get_pointer(capsule, name)
    if not address:
        raise DLPackError(f"{producer} exported a DLPack capsule holding a NULL pointer")
    managed: Any
    flags = 0
    if versioned:
        managed = DLManagedTensorVersioned.from_address(address)
        major, minor = managed.version.major, managed.version.minor
        if major != 1:
            raise DLPackError(
                f"{producer} exported a DLPack {major}.{minor} tensor; hwabstract speaks "
                f"DLPack 1.x (up to {DLPACK_VERSION[0]}.{DLPACK_VERSION[1]})"
            )
        flags = int(managed.flags)
    else:
        managed = DLManagedTensor.from_address(address)
    tensor = managed.dl_tensor
    device = (int(tensor.device.device_type), int(tensor.device.device_id))
    if device[0] != KDLCPU:
        raise DLPackError(
            f"{producer} exported memory on {_device_text(device)}; hwabstract imports only "
            "kDLCPU memory (host memory). Move the data to the host first"
        )
    code, bits, lanes = tensor.dtype.code, tensor.dtype.bits, tensor.dtype.lanes
    found = _DTYPES.get((code, bits)) if lanes == 1 else None
    if found is None:
        known = ", ".join(f"{d.name}" for d in _CODES)
        raise DLPackError(
            f"{producer} exported {_code_text(code, bits, lanes)}, which hwabstract has no "
            f"dtype for; it exchanges {known}"
        )
    ndim = int(tensor.ndim)
    if not 0 <= ndim <= 64:
        raise DLPackError(f"{producer} exported a tensor with ndim={ndim}")
    if ndim and not tensor.shape:
        raise DLPackError(f"{producer} exported a {ndim}-d tensor with a NULL shape")
    shape = tuple(int(tensor.shape[i]) for i in range(ndim))
    if any(d < 0 for d in shape):
        raise DLPackError(f"{producer} exported a negative shape {shape}")
    if ndim and tensor.strides:
        strides = tuple(int(tensor.strides[i]) for i in range(ndim))
    else:  # NULL strides: compact row-major
        strides = contiguous_strides(shape)
    size = 1
    for d in shape:
        size *= d
    item = found.itemsize
    lo = hi = 0
    if size:
        for d, s in zip(shape, strides):
            if s < 0:
                lo += (d - 1) * s
            else:
                hi += (d - 1) * s
    nbytes = (hi - lo + 1) * item if size else 0
    if nbytes > sys.maxsize:
        raise DLPackError(f"{producer} exported a tensor spanning {nbytes} bytes")
    data = int(tensor.data or 0) + int(tensor.byte_offset)
    if size and not tensor.data:
        raise DLPackError(f"{producer} exported a non-empty tensor with a NULL data pointer")
    return _Parsed(
        address=address,
        used_name=used,
        deleter=managed.deleter,
        dtype=found,
        shape=shape,
        strides=strides if size else contiguous_strides(shape),
        data=data,
        lo=lo,
        nbytes=nbytes,
        readonly=bool(flags & DLPACK_FLAG_BITMASK_READ_ONLY),
        copied=bool(flags & DLPACK_FLAG_BITMASK_IS_COPIED),
    )


def _consume(capsule: Any, parsed: _Parsed) -> tuple[_ImportedMemory, np.ndarray]:
    """Take ownership (rename the capsule) and return the owner and a flat ``uint8`` array
    over the tensor's bytes, whose base is the owner."""
    owner = _ImportedMemory(parsed.address, parsed.deleter)
    _capsule_set_name(capsule, parsed.used_name)  # raises (unconsumed) if it fails
    owner.armed = True
    if not parsed.nbytes:
        return owner, np.empty(0, np.uint8)
    owner.__array_interface__ = {
        "version": 3,
        "shape": (parsed.nbytes,),
        "typestr": "|u1",
        "data": (parsed.data + parsed.lo * parsed.dtype.itemsize, parsed.readonly),
    }
    return owner, np.asarray(owner)


def _request_capsule(x: Any, producer: str, copy: bool | None) -> Any:
    """Call ``x.__dlpack__`` as the protocol asks: negotiate the version, ask a non-CPU
    producer for a host copy, and fall back to no keywords for producers older than them."""
    device: tuple[int, int] | None = None
    get_device = getattr(x, "__dlpack_device__", None)
    if get_device is not None:
        try:
            device = _pair(get_device(), f"{producer}.__dlpack_device__()")
        except BufferError as exc:
            raise DLPackError(f"cannot import {producer} through DLPack: {exc}") from exc
    on_host = device is None or device[0] == KDLCPU
    kwargs: dict[str, Any] = {"max_version": DLPACK_VERSION}
    if not on_host:
        assert device is not None
        if copy is False:
            raise DLPackError(
                f"{producer} lives on {_device_text(device)}; importing it needs a copy to "
                "host memory, which copy=False forbids; pass copy=None"
            )
        kwargs["dl_device"] = (KDLCPU, 0)
    elif copy is False:
        kwargs["copy"] = False
    try:
        try:
            return x.__dlpack__(**kwargs)
        except TypeError:
            if not on_host:
                assert device is not None
                raise DLPackError(
                    f"{producer} lives on {_device_text(device)} and its __dlpack__ does not "
                    "take dl_device=, so it cannot hand over a host copy; copy the data to "
                    "the host with the producing library first"
                ) from None
            return x.__dlpack__()  # a producer from before max_version/dl_device/copy
    except (BufferError, TypeError, ValueError, RuntimeError) as exc:
        if isinstance(exc, DLPackError):
            raise
        raise DLPackError(f"{producer}.__dlpack__() failed: {type(exc).__name__}: {exc}") from exc


def from_dlpack(x: Any, /, *, device: Any = None, copy: bool | None = None) -> Tensor:
    """A tensor on ``device`` (default: the default device) with the data of the DLPack
    producer ``x`` (any object with ``__dlpack__`` and ``__dlpack_device__``).

    * ``copy=None``: share the memory when the device can address host memory (the cpu
      backend can) and the producer did not mark it read-only; otherwise copy.
    * ``copy=True``: always a tensor of our own (a producer's ``IS_COPIED`` export counts).
    * ``copy=False``: never copy; :class:`DLPackError` when sharing is impossible.
    """
    from .creation import _upload
    from .dispatch import check_dtype_supported
    from .registry import get_registry

    copy = _check_copy(copy)
    target = get_registry().device(device)
    if isinstance(x, Tensor) and _host_view(x) is None:
        return _from_device_tensor(x, target, copy)
    producer = type(x).__name__
    if not hasattr(x, "__dlpack__"):
        hint = (
            "; pass the array that produced the capsule, not the capsule"
            if capsule_name(x) is not None
            else ""
        )
        raise DLPackError(f"{producer} does not implement the DLPack protocol{hint}")
    adopted = _adopt_device_memory(x, target, producer, copy)
    if adopted is not None:
        return adopted
    capsule = _request_capsule(x, producer, copy)
    parsed = _parse(capsule, producer)
    check_dtype_supported(target, parsed.dtype)
    max_dims = target.capabilities.limits.max_dims
    if len(parsed.shape) > max_dims:
        raise DLPackError(
            f"{producer} exported a {len(parsed.shape)}-d tensor; {target.name} supports at "
            f"most {max_dims} dimensions"
        )
    if copy is False and parsed.readonly:
        raise DLPackError(
            f"{producer} exported read-only memory, which hwabstract tensors (always "
            "writable) can hold only as a copy; pass copy=None"
        )
    owner, flat = _consume(capsule, parsed)
    del capsule, owner  # from here on, the arrays over the memory own it
    dtype = parsed.dtype
    item = dtype.itemsize
    if not parsed.nbytes:  # nothing to share
        empty = np.empty(parsed.shape, dtype.numpy_dtype)
        del flat  # the deleter runs now
        return _upload(empty, target, None)
    if not parsed.readonly and (copy is not True or parsed.copied):
        buffer = target._impl.adopt_host_array(target.index, flat)
        if buffer is not None:
            storage = Storage(target, flat.nbytes, buffer)
            return Tensor._wrap(storage, dtype, parsed.shape, parsed.strides, -parsed.lo)
    if copy is False:
        raise DLPackError(
            f"from_dlpack(copy=False): {target.name} cannot address host memory, so the "
            f"data of {producer} must be copied onto it; pass copy=None"
        )
    host = np.ndarray(
        parsed.shape,
        dtype=dtype.numpy_dtype,
        buffer=flat,
        offset=-parsed.lo * item,
        strides=tuple(s * item for s in parsed.strides),
    )
    return _upload(host, target, None)


def _adopt_device_memory(x: Any, target: Any, producer: str, copy: bool | None) -> Tensor | None:
    """``x`` shared in place when it lives in device memory ``target``'s backend can
    address (a CUDA tensor for an nvidia device); None to take the host path."""
    get_device = getattr(x, "__dlpack_device__", None)
    if get_device is None:
        return None
    try:
        device = _pair(get_device(), f"{producer}.__dlpack_device__()")
    except BufferError as exc:
        raise DLPackError(f"cannot import {producer} through DLPack: {exc}") from exc
    if device[0] == KDLCPU:
        return None
    from .dispatch import check_dtype_supported
    from .stream import current_stream

    stream = current_stream(target)
    try:
        adopted = target._impl.adopt_dlpack(target.index, x, device, stream.handle)
    except (BufferError, TypeError, ValueError, RuntimeError) as exc:
        raise DLPackError(
            f"{target.name} could not import {producer}: {type(exc).__name__}: {exc}"
        ) from exc
    if adopted is None:
        return None
    buffer, np_dtype, shape, strides, offset = adopted
    dtype = dt.dtype(np_dtype)
    storage = Storage(target, buffer.nbytes, buffer)
    storage.mark_written(stream)  # the producer's writes are ordered before this stream
    tensor = Tensor._wrap(storage, dtype, shape, strides, offset)
    check_dtype_supported(target, dtype)
    if copy:
        from .creation import asarray

        own = asarray(tensor, device=target, copy=True)
        # the producer may reuse its memory once from_dlpack returns: finish reading it
        (own._storage.last_stream or target.default_stream).synchronize()
        return own
    return tensor


def _from_device_tensor(x: Tensor, target: Any, copy: bool | None) -> Tensor:
    """``from_dlpack`` of one of our tensors whose memory the host cannot address: no
    capsule can describe it, so it moves the way ``.to()`` moves it."""
    from .creation import asarray

    if x.device is target and not copy:
        return x
    if x.device is not target and copy is False:
        raise DLPackError(
            f"from_dlpack(copy=False) cannot move a tensor from {x.device.name} to "
            f"{target.name} without copying; pass copy=None"
        )
    return asarray(x, device=target, copy=True)
