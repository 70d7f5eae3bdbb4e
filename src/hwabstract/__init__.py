"""hwabstract: write accelerator code once -- tensors, streams, kernels -- and run it on any
backend a vendor ships as a pluggy plugin.

    import hwabstract as hw
    x = hw.asarray(np.ones((4, 4), "float32"), device="cpu:0")
    y = hw.matmul(x, x)          # queued on the current stream; returns at once
    print(y.numpy())             # waits for the result

``import hwabstract`` loads no vendor runtime (JAX, CuPy, ...): backends are discovered on
first use and load their runtimes when probed.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

# Import the ``backends`` subpackage (the built-in reference backend) *before* defining the
# ``backends()`` function below: importing a subpackage binds its name on the parent package,
# so a later first import of ``hwabstract.backends.cpu`` would otherwise replace the function.
from . import backends as _backends_package  # noqa: F401
from . import errors
from .backend import (
    API_LEVEL,
    Backend,
    Capabilities,
    DeviceInfo,
    DTypeSupport,
    Feature,
    Limits,
    MemoryStats,
    Operand,
)
from .creation import (
    arange,
    asarray,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    zeros,
    zeros_like,
)
from .device import Device
from .dlpack import from_dlpack
from .dtypes import (
    DType,
    all_dtypes,
    bfloat16,
    complex64,
    complex128,
    float8_e4m3fn,
    float8_e5m2,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    result_type,
    uint8,
    uint16,
    uint32,
    uint64,
)
from .dtypes import bool_ as bool
from .errors import (
    BackendUnavailableError,
    DeviceError,
    DLPackError,
    DTypeError,
    HwAbstractError,
    InvalidIndexError,
    KernelError,
    OutOfMemoryError,
    PluginError,
    ShapeError,
    StreamError,
    UnsupportedError,
)
from .hookspecs import hookimpl, hookspec
from .kernels import KernelSpec
from .operations import *  # noqa: F403 - every kernel function
from .operations import __all__ as _operations_all
from .registry import BackendStatus, get_registry
from .stream import Event, Stream, current_stream
from .tensor import Tensor

e = 2.718281828459045
pi = 3.141592653589793
inf = float("inf")
nan = float("nan")
newaxis = None


def backends() -> list[BackendStatus]:
    """Every discovered backend with its plugin, version, API level, status and reason."""
    return get_registry().backends()


def devices(backend: str | None = None) -> list[Device]:
    """The devices of ``backend``, or of every working backend (highest priority first)."""
    return get_registry().devices(backend)


def device(spec: Any = None) -> Device:
    """A device from ``"cpu"``, ``"cpu:1"``, a :class:`Device`, or None for the default:
    ``HWABSTRACT_DEVICE`` if set, else device 0 of the highest-priority working backend."""
    return get_registry().device(spec)


def synchronize(device_spec: Any = None) -> None:
    """Wait for all queued work on a device (the default device if None)."""
    device(device_spec).synchronize()


__all__ = [
    "API_LEVEL",
    "Backend",
    "BackendStatus",
    "BackendUnavailableError",
    "Capabilities",
    "DLPackError",
    "DType",
    "DTypeError",
    "DTypeSupport",
    "Device",
    "DeviceError",
    "DeviceInfo",
    "Event",
    "Feature",
    "HwAbstractError",
    "InvalidIndexError",
    "KernelError",
    "KernelSpec",
    "Limits",
    "MemoryStats",
    "Operand",
    "OutOfMemoryError",
    "PluginError",
    "ShapeError",
    "Stream",
    "StreamError",
    "Tensor",
    "UnsupportedError",
    "__version__",
    "all_dtypes",
    "arange",
    "asarray",
    "backends",
    "bfloat16",
    "bool",
    "complex64",
    "complex128",
    "current_stream",
    "device",
    "devices",
    "e",
    "empty",
    "empty_like",
    "errors",
    "eye",
    "float8_e4m3fn",
    "float8_e5m2",
    "float16",
    "float32",
    "float64",
    "from_dlpack",
    "full",
    "full_like",
    "hookimpl",
    "hookspec",
    "inf",
    "int8",
    "int16",
    "int32",
    "int64",
    "linspace",
    "nan",
    "newaxis",
    "ones",
    "ones_like",
    "pi",
    "result_type",
    "synchronize",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "zeros",
    "zeros_like",
    *_operations_all,
]
