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

import importlib
from typing import TYPE_CHECKING, Any

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

# The ``device`` and ``stream`` submodules load now, before the ``device()`` function is
# defined below, for the same reason as ``backends`` above (and they are cheap).
from .device import Device
from .dtypes import (
    DType,
    all_dtypes,
    bfloat16,
    can_cast,
    complex64,
    complex128,
    finfo,
    float8_e4m3fn,
    float8_e5m2,
    float16,
    float32,
    float64,
    iinfo,
    int8,
    int16,
    int32,
    int64,
    isdtype,
    result_type,
    uint8,
    uint16,
    uint32,
    uint64,
)
from .dtypes import bool_ as bool  # the Array API name
from .errors import (
    BackendUnavailableError,
    DeviceError,
    DeviceLostError,
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
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from . import fft, linalg, mx
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
    from .dlpack import from_dlpack
    from .hookspecs import hookimpl, hookspec
    from .info import __array_namespace_info__
    from .kernels import KernelSpec
    from .manipulation import *  # noqa: F403
    from .operations import *  # noqa: F403
    from .registry import BackendStatus, get_registry
    from .searching import *  # noqa: F403
    from .stream import Event, Stream, current_stream
    from .tensor import Tensor

# Everything else loads on first use (PEP 562), so that ``import hwabstract`` stays cheap:
# plugin discovery (pluggy, importlib.metadata), the kernel catalogue and the kernel
# functions generated from it, and DLPack (ctypes) load only when something needs them.
_LAZY = {
    **dict.fromkeys(
        [
            "arange",
            "asarray",
            "empty",
            "empty_like",
            "eye",
            "full",
            "full_like",
            "linspace",
            "ones",
            "ones_like",
            "zeros",
            "zeros_like",
        ],
        "creation",
    ),
    "from_dlpack": "dlpack",
    "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "KernelSpec": "kernels",
    "BackendStatus": "registry",
    "get_registry": "registry",
    "Event": "stream",
    "Stream": "stream",
    "current_stream": "stream",
    "Tensor": "tensor",
    "__array_namespace_info__": "info",
}
#: the Array API functions that are compositions (views and short programs of kernels)
_COMPOSED = ("manipulation", "searching")
#: the Array API's extensions and our MX formats: submodules, loaded on first use
_SUBMODULES = ("fft", "linalg", "mx")

#: The revision of the Python Array API standard this namespace implements.
__array_api_version__ = "2024.12"


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f".{name}", __name__)
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        for composed in _COMPOSED:
            if name in _COMPOSED_NAMES[composed]:
                module = composed
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    else:
        operations = importlib.import_module(".operations", __name__)
        if name not in operations.__all__:
            raise AttributeError(f"module 'hwabstract' has no attribute {name!r}")
        value = getattr(operations, name)
    globals()[name] = value  # later lookups skip this function
    return value


#: the names each module of ``_COMPOSED`` exports (kept equal to their ``__all__`` by
#: tests/test_init.py, without importing them here)
_COMPOSED_NAMES = {
    "manipulation": frozenset(
        {
            "broadcast_arrays", "diff", "expand_dims", "matrix_transpose", "meshgrid",
            "moveaxis", "repeat", "roll", "squeeze", "tensordot", "tile", "tril", "triu",
            "unstack", "vecdot",
        }
    ),
    "searching": frozenset(
        {
            "count_nonzero", "nonzero", "unique_all", "unique_counts", "unique_inverse",
            "unique_values",
        }
    ),
}  # fmt: skip


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


e = 2.718281828459045
pi = 3.141592653589793
inf = float("inf")
nan = float("nan")
newaxis = None


def backends() -> list[BackendStatus]:
    """Every discovered backend with its plugin, version, API level, status and reason."""
    from .registry import get_registry

    return get_registry().backends()


def devices(backend: str | None = None) -> list[Device]:
    """The devices of ``backend``, or of every working backend (highest priority first)."""
    from .registry import get_registry

    return get_registry().devices(backend)


def device(spec: Any = None) -> Device:
    """A device from ``"cpu"``, ``"cpu:1"``, a :class:`Device`, or None for the default:
    ``HWABSTRACT_DEVICE`` if set, else device 0 of the highest-priority working backend."""
    from .registry import get_registry

    return get_registry().device(spec)


def synchronize(device_spec: Any = None) -> None:
    """Wait for all queued work on a device (the default device if None)."""
    device(device_spec).synchronize()


#: The kernel functions are listed here too (tests/test_init.py keeps the list complete).
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
    "DeviceLostError",
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
    "WaitTimeoutError",
    "__array_api_version__",
    "__array_namespace_info__",
    "__version__",
    "abs",
    "acos",
    "acosh",
    "add",
    "all",
    "all_dtypes",
    "any",
    "arange",
    "argmax",
    "argmin",
    "argsort",
    "asarray",
    "asin",
    "asinh",
    "astype",
    "atan",
    "atan2",
    "atanh",
    "backends",
    "bfloat16",
    "bitwise_and",
    "bitwise_invert",
    "bitwise_left_shift",
    "bitwise_or",
    "bitwise_right_shift",
    "bitwise_xor",
    "bool",
    "broadcast_arrays",
    "broadcast_to",
    "can_cast",
    "ceil",
    "clip",
    "complex64",
    "complex128",
    "concat",
    "conj",
    "copysign",
    "cos",
    "cosh",
    "count_nonzero",
    "cumulative_prod",
    "cumulative_sum",
    "current_stream",
    "device",
    "devices",
    "diff",
    "divide",
    "e",
    "empty",
    "empty_like",
    "equal",
    "errors",
    "exp",
    "expand_dims",
    "expm1",
    "eye",
    "fft",
    "finfo",
    "flip",
    "float8_e4m3fn",
    "float8_e5m2",
    "float16",
    "float32",
    "float64",
    "floor",
    "floor_divide",
    "from_dlpack",
    "full",
    "full_like",
    "gelu",
    "get_registry",
    "greater",
    "greater_equal",
    "hookimpl",
    "hookspec",
    "hypot",
    "iinfo",
    "imag",
    "inf",
    "int8",
    "int16",
    "int32",
    "int64",
    "isdtype",
    "isfinite",
    "isinf",
    "isnan",
    "layer_norm",
    "less",
    "less_equal",
    "linalg",
    "linspace",
    "log",
    "log1p",
    "log2",
    "log10",
    "log_softmax",
    "logaddexp",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "matmul",
    "matrix_transpose",
    "max",
    "maximum",
    "mean",
    "meshgrid",
    "min",
    "minimum",
    "moveaxis",
    "multiply",
    "mx",
    "nan",
    "negative",
    "newaxis",
    "nextafter",
    "nonzero",
    "not_equal",
    "ones",
    "ones_like",
    "permute_dims",
    "pi",
    "positive",
    "pow",
    "prod",
    "real",
    "reciprocal",
    "relu",
    "remainder",
    "repeat",
    "reshape",
    "result_type",
    "roll",
    "round",
    "searchsorted",
    "sign",
    "signbit",
    "silu",
    "sin",
    "sinh",
    "softmax",
    "sort",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "subtract",
    "sum",
    "synchronize",
    "take",
    "take_along_axis",
    "tan",
    "tanh",
    "tensordot",
    "tile",
    "to_device",
    "tril",
    "triu",
    "trunc",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "unique_all",
    "unique_counts",
    "unique_inverse",
    "unique_values",
    "unstack",
    "var",
    "vecdot",
    "where",
    "zeros",
    "zeros_like",
]
