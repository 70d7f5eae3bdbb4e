"""Fuzzing the public API: a Hypothesis state machine over tensors, streams and kernels.

The machine (:class:`ApiFuzzer`) plays a user program at random -- allocating tensors of
random shapes (0-d and empty included) and of the dtypes the device declares, taking
strided views, copying between host and device, between streams and between devices
(``cpu`` and ``maia``), launching elementwise, reduction, matmul and other kernels on
views and broadcast operands, freeing tensors that queued work still uses, and
interleaving several streams with events, waits and ``with stream:`` blocks -- and it
feeds the SDK bad inputs, which must raise the documented class of
:mod:`hwabstract.errors` (docs/errors.md) and leave everything else as it was.

What it checks:

* **values** -- the machine keeps a NumPy mirror of every live tensor (views are NumPy
  views of their base's mirror, so a write through one view shows in the others). Results
  are predicted with the kernel's own spec (its dtype rule, shape rule and NumPy
  reference) and compared under the conformance tolerance policy
  (:mod:`hwabstract.conformance.numerics`): exact kernels bit for bit, the others within
  ``reference_ulps`` plus the accumulation bound ``2 n eps(accumulator) S``. A result of
  an inexact kernel is read back at once and its actual value becomes the mirror, so
  that later exact kernels on it stay bit-exact; so is a float result holding bits the
  policy leaves open (the sign of a zero, a NaN's sign and payload: :func:`unsettled`);
* **ordering** -- reads go through ``numpy()`` and friends with no synchronization beyond
  what the contract asks of a program (docs/architecture.md, "Streams, and what is
  ordered for you"): a read after a write across streams is ordered by the SDK, so the
  machine adds nothing for it; a write after a read or after a write on another stream
  is the program's to order, so before every write the machine makes the writing stream
  wait (``stream.wait(other.record())``) for each other stream that touched that memory
  since -- exactly that, and no host synchronization;
* **memory** -- after every step, each device's ``memory_stats()`` must account for
  exactly the live allocations: ``allocations`` is the number of live buffers (the
  model's tensors and the SDK's per-stream cache of scalar tensors) and ``in_use`` their
  sizes as the backend counts them (cpu: the bytes asked for; maia: rounded up to its
  256-byte granule). At teardown, with every tensor deleted and ``gc.collect()``, both
  return to where they started;
* **errors** -- every bad input raises exactly the documented class, which lives in
  ``hwabstract.errors``; nothing else escapes.

Running it
----------
By default (CI) each device gets a short derandomized run: ``HWABSTRACT_FUZZ_EXAMPLES``
(default 60) programs of up to ``HWABSTRACT_FUZZ_STEPS`` (default 30) steps. A long run::

    HWABSTRACT_FUZZ_EXAMPLES=2000 HWABSTRACT_FUZZ_SEED=random \\
        python -m pytest -p no:cacheprovider -s tests/reliability/test_fuzz.py

``HWABSTRACT_FUZZ_SEED`` is an integer (reproducible) or ``random`` (a new seed per run,
printed); unset, the run is derandomized. Each run prints its figures (programs run,
steps, SDK operations by kind, checks); ``-s`` shows them. A failure prints the minimal
program (the steps, with every drawn value) that reproduces it.

The devices: ``cpu:0`` always (with ``cpu:1`` beside it, ``HWABSTRACT_CPU_DEVICES=2``, for
peer copies); ``maia:0`` where the hwabstract-maia plugin is installed (``tox -e maia``),
with ``maia:1`` as its peer; ``tpu:0`` on its stand-in (JAX's CPU client) where jax and the
hwabstract-tpu plugin are installed (``tox -e tpu``), with ``tpu:1`` as its peer where
JAX's CPU client has two devices. Each device's run uses the other backends, where
present, for copies between backends.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import importlib.util
import math
import operator
import os
import random
import sys
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import hwabstract as hw
from hwabstract import dispatch, errors
from hwabstract import dtypes as hdt
from hwabstract.backend import Feature
from hwabstract.conformance.numerics import (
    accumulator,
    assert_close,
    eps,
    reference_ulps,
    sample,
    specials,
)
from hwabstract.conformance.reference import _nearer, flush_subnormals, variance_scale
from hwabstract.dtypes import DType
from hwabstract.kernels import get_spec
from hwabstract.registry import PluginSource, Registry, reset_registry

EXAMPLES = int(os.environ.get("HWABSTRACT_FUZZ_EXAMPLES") or 60)
STEPS = int(os.environ.get("HWABSTRACT_FUZZ_STEPS") or 30)
SEED = os.environ.get("HWABSTRACT_FUZZ_SEED") or None

MAX_LIVE = 24  #: tensors the model holds at most: each step first frees the oldest beyond
MAX_STREAMS = 4  #: streams created besides the default one
MAX_EVENTS = 8
MAX_ELEMENTS = 40_000  #: per drawn tensor: large enough to keep a stream busy a while
#: the matmuls that keep a stream busy, per backend: (batch, n) for a batch of n x n
#: matrices, about a millisecond each (NumPy's matmul slows down by 100x from 64 x 64 to
#: 128 x 128, where OpenBLAS starts threads, on a 2-core host)
STALL = {"cpu": (16, 64), "maia": (1, 256)}
MAX_RESULT = 1 << 20  #: kernel results beyond this are not computed (a broadcast can explode)

UNARY = (
    "negative",
    "positive",
    "abs",
    "square",
    "sqrt",
    "exp",
    "sin",
    "tanh",
    "log1p",
    "floor",
    "ceil",
    "trunc",
    "round",
    "sign",
    "isnan",
    "isfinite",
    "signbit",
    "logical_not",
    "bitwise_invert",
    "reciprocal",
    "relu",
)
BINARY = (
    "add",
    "subtract",
    "multiply",
    "divide",
    "floor_divide",
    "remainder",
    "pow",
    "maximum",
    "minimum",
    "equal",
    "not_equal",
    "less",
    "greater_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "atan2",
    "copysign",
    "hypot",
    "logaddexp",
    "nextafter",
)
#: dtypes standing for the kinds of Python scalar: bool, int, float, complex
SCALAR_KINDS = (hdt.bool_, hdt.int64, hdt.float64, hdt.complex128)
#: the dtypes NumPy takes through DLPack (not bfloat16 nor the float8 formats)
NUMPY_DLPACK = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    }
)
REDUCTIONS = ("sum", "prod", "mean", "var", "max", "min", "argmax", "argmin", "any", "all")
#: kernels whose results accumulate many terms: the numerics policy adds 2 n eps S for them
ACCUMULATING = frozenset(
    {
        "sum",
        "prod",
        "mean",
        "var",
        "matmul",
        "softmax",
        "log_softmax",
        "cumulative_sum",
        "cumulative_prod",
    }
)
#: the kernels that are also operators, and the operators
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "floor_divide": operator.floordiv,
    "remainder": operator.mod,
    "pow": operator.pow,
    "bitwise_and": operator.and_,
    "bitwise_or": operator.or_,
    "bitwise_xor": operator.xor,
    "equal": operator.eq,
    "not_equal": operator.ne,
    "less": operator.lt,
    "greater_equal": operator.ge,
}
INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.iadd,
    "subtract": operator.isub,
    "multiply": operator.imul,
    "divide": operator.itruediv,
    "floor_divide": operator.ifloordiv,
    "remainder": operator.imod,
    "bitwise_and": operator.iand,
    "bitwise_or": operator.ior,
    "bitwise_xor": operator.ixor,
}
UNARY_OPERATORS: dict[str, Callable[[Any], Any]] = {
    "negative": operator.neg,
    "positive": operator.pos,
    "abs": abs,
    "bitwise_invert": operator.invert,
}

#: How a backend counts an allocation in ``memory_stats().in_use``: the cpu backend and the
#: PJRT stand-in the bytes asked for; libmaia rounds every allocation up to
#: MAIA_ALLOC_ALIGNMENT (256, native/maia/include/maia.h), a zero-byte one included. Other
#: backends: at least the bytes.
GRANULE = {"cpu": 1, "maia": 256, "tpu": 1}

#: Deviations a backend declares in its conformance expectations file, as the ulps the
#: machine then allows: XLA's CPU compiler divides by a broadcast value through its
#: reciprocal, within 1 ulp (src/hwabstract/backends/pjrt-standin-expectations.toml; found
#: by the long fuzzer run on the stand-in, seed 2217634599).
DECLARED_ULPS = {("tpu", "divide"): 1}


def footprint(device: hw.Device, nbytes: int) -> int:
    granule = GRANULE.get(device.backend, 1)
    if granule == 1:
        return nbytes
    return -(-max(nbytes, 1) // granule) * granule


# -- the model ---------------------------------------------------------------------------------


class Buf:
    """One device allocation as the model sees it.

    ``users`` are the streams that queued work touching it since its last write was
    ordered: a write on another stream must first wait for each of them (write after read,
    write after write -- the program's job under the stream contract)."""

    __slots__ = ("device", "nbytes", "users")

    def __init__(self, device: hw.Device, nbytes: int, stream: hw.Stream | None) -> None:
        self.device = device
        self.nbytes = nbytes
        self.users: list[hw.Stream] = [] if stream is None else [stream]


class Entry:
    """A live tensor, its NumPy mirror (a view of its buffer's mirror), and its buffer."""

    __slots__ = ("buf", "label", "mirror", "tensor", "writable")

    def __init__(
        self, tensor: hw.Tensor, mirror: np.ndarray, buf: Buf, label: str, writable: bool = True
    ) -> None:
        assert isinstance(mirror, np.ndarray), f"{label}: mirror {mirror!r}"
        assert tensor.shape == mirror.shape, f"{label}: shape {tensor.shape} vs {mirror.shape}"
        assert tensor.dtype.numpy_dtype == mirror.dtype, f"{label}: {tensor.dtype} {mirror.dtype}"
        assert tensor.device is buf.device, f"{label}: on {tensor.device}, not {buf.device}"
        self.tensor = tensor
        self.mirror = mirror
        self.buf = buf
        self.label = label
        # (a view of a broadcast view has a read-only mirror, whatever the caller said)
        self.writable = writable and mirror.flags.writeable

    @property
    def device(self) -> hw.Device:
        return self.buf.device

    def __repr__(self) -> str:
        t = self.tensor
        return f"<{self.label}: {t.dtype} {t.shape} strides {t.strides} on {t.device}>"


class HostCopy:
    """A tensor exported through DLPack as a host copy (``dl_device=(kDLCPU, 0)``): the
    documented way to a NumPy array from a device that does not expose its memory."""

    def __init__(self, tensor: hw.Tensor) -> None:
        self.tensor = tensor

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.tensor.__dlpack__(**{**kwargs, "dl_device": (1, 0)})


class Expected(NamedTuple):
    """A kernel call's predicted result and how closely the device must match it.
    ``flushed``: on a device that may flush subnormals (no ``subnormals`` feature), the
    result with subnormal inputs and results flushed to zero, where that differs; each
    element may match either (the numerics policy)."""

    dtype: DType
    value: np.ndarray
    ulps: int | None
    atol: float
    exact: bool
    flushed: np.ndarray | None = None


class Unsafe(Exception):
    """Inputs whose result the Array API leaves undefined (an integer divided by zero, a
    float converted to an integer it does not fit): the machine does not make that call."""


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(np.errstate(all="ignore"))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def astype_host(a: np.ndarray, dtype: DType) -> np.ndarray:
    """``a`` converted as the ``astype`` kernel does; :class:`Unsafe` where that is
    undefined (a non-finite or out-of-range float to an integer)."""
    src = hdt.dtype(a.dtype)
    if dtype.kind in "iu" and src.kind in "fc" and a.size:
        real = np.real(a).astype(np.float64)
        info = np.iinfo(dtype.numpy_dtype)
        if not np.all(np.isfinite(real)) or not np.all(
            (np.trunc(real) >= info.min) & (np.trunc(real) <= info.max)
        ):
            raise Unsafe
    with _quiet():
        return np.asarray(get_spec("astype").reference(a, dtype=dtype))


def scalar_host(value: Any, dtype: DType) -> np.ndarray:
    """A Python scalar as the SDK uploads it: a 0-d array of ``dtype``."""
    with _quiet():
        return np.asarray(value).astype(dtype.numpy_dtype)


def predict(
    device: hw.Device,
    name: str,
    operands: Sequence[Any],
    mirrors: Sequence[Any],
    attrs: dict[str, Any] | None = None,
    out: hw.Tensor | None = None,
    stream: hw.Stream | None = None,
) -> Expected:
    """The result of ``name`` on ``operands`` (tensors, whose values are ``mirrors``, and
    Python scalars), from the kernel's spec: its dtype rule, its shape rule and its NumPy
    reference, with the checks dispatch makes in the order it makes them. Raises the
    :class:`~hwabstract.errors.HwAbstractError` the call must raise, if any, and
    :class:`Unsafe` for a call the machine should not make (undefined values, or a result
    too large to compute on the host here)."""
    spec = get_spec(name)
    found = {op.device for op in (*operands, out) if isinstance(op, hw.Tensor)}
    if len(found) > 1:
        raise errors.DeviceError("tensors on several devices")
    if any(isinstance(op, np.ndarray) for op in operands):
        raise errors.DeviceError("a NumPy array operand")
    if stream is not None and stream.device is not device:
        raise errors.StreamError("a stream of another device")
    full = {**spec.attributes, **(attrs or {})}
    compute, out_dtypes = spec.dtype_rule(operands, full)
    caps = device.capabilities
    if not spec.composite and not caps.supports_kernel(name, compute):
        raise errors.UnsupportedError(f"kernel:{name}[{compute.name}]", "not declared")
    for odt in out_dtypes:
        if not caps.supports_dtype(odt):
            raise errors.UnsupportedError(f"dtype:{odt.name}", "not declared")
    if "dtype" in spec.attributes:
        full["dtype"] = out_dtypes[0]
    shapes: list[tuple[int, ...]] = []
    host: list[np.ndarray] = []
    scalars: list[tuple[Any, DType]] = []
    for i, (input_name, op, mirror) in enumerate(zip(spec.inputs, operands, mirrors)):
        if input_name.endswith("?"):
            full[f"has_{input_name[:-1]}"] = op is not None
        if op is None:
            continue
        promoted = spec.is_promoted(i)
        if isinstance(op, hw.Tensor):
            shapes.append(op.shape)
            arr = mirror
            if promoted and op.dtype is not compute:
                arr = astype_host(arr, compute)
        else:
            sd = compute if promoted else hdt.result_type(op)
            shapes.append(())
            scalars.append((op, sd))
            arr = scalar_host(op, sd)
        host.append(arr)
    targets, out_shapes, norm = spec.shape_rule(shapes, full)
    shape = tuple(out_shapes[0])
    if len(shape) > caps.limits.max_dims:
        raise errors.ShapeError("too many dimensions")
    if math.prod(shape) > MAX_RESULT:
        raise Unsafe  # (broadcasting two long vectors: valid, but too large to check here)
    for value, sd in scalars:
        hdt.check_scalar_fits(value, sd)
    out_dtype = out_dtypes[0]
    if out is not None:
        if out.shape != shape:
            raise errors.ShapeError("out= of another shape")
        if out.dtype is not out_dtype:
            raise errors.DTypeError("out= of another dtype")
    host = [
        np.broadcast_to(a, tuple(t)) if t is not None and a.shape != tuple(t) else a
        for a, t in zip(host, targets)
    ]
    if compute.kind in "iu" and name in ("floor_divide", "remainder") and np.any(host[1] == 0):
        raise Unsafe
    if name == "astype":
        astype_host(host[0], out_dtypes[0])  # (raises Unsafe where the conversion is undefined)

    def reference(inputs: Sequence[np.ndarray]) -> np.ndarray:
        with _quiet():
            result = spec.reference(*inputs, **dict(norm))
            if isinstance(result, tuple):
                result = result[0]
            value = np.asarray(result).astype(out_dtype.numpy_dtype, copy=False)
        return np.array(np.broadcast_to(value, shape))

    value = reference(host)
    flushed = None
    floats = any(hdt.dtype(a.dtype).kind == "f" for a in host) or out_dtype.kind == "f"
    if floats and value.size and not caps.has_feature(Feature.SUBNORMALS):
        flushed = flush_subnormals(reference([flush_subnormals(a) for a in host]))
        if np.array_equal(flushed, value, equal_nan=out_dtype.kind in "fc"):
            flushed = None
    if out_dtype.kind not in "fc":
        return Expected(out_dtype, value, None, 0.0, True, flushed)
    from_complex = any(a.dtype.kind == "c" for a in host)
    ulps = max(reference_ulps(name, out_dtype, from_complex=from_complex),
               DECLARED_ULPS.get((device.backend, name), 0))  # fmt: skip
    atol = 0.0
    if name in ACCUMULATING and value.size:
        atol = _accumulation_bound(spec, host, norm, compute, out_dtype)
    if name == "logaddexp" and value.size:  # the numerics policy for a cancelling formula
        largest = max(float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0)) for a in host)
        atol = max(atol, 2.0 * eps(out_dtype) * largest)
    return Expected(out_dtype, value, ulps, atol, ulps == 0 and atol == 0.0, flushed)


def _accumulation_bound(
    spec: Any,
    host: Sequence[np.ndarray],
    norm: Any,
    compute: DType,
    out_dtype: DType,
) -> float:
    """``2 n eps(accumulator) S`` of the numerics policy: ``n`` terms per result, ``S`` the
    reference evaluated on the inputs' magnitudes in float64.

    Raises :class:`Unsafe` where a partial result can overflow the accumulator: whether it
    does then depends on the order of accumulation (a product that passes infinity before
    it meets a zero is NaN, one that meets the zero first is 0), which the policy leaves to
    the implementation."""
    x = host[0]
    if spec.name == "matmul":
        n = x.shape[-1]
    else:
        axes = norm.get("axes", norm.get("axis"))
        if axes is None:
            axes = tuple(range(x.ndim))
        elif isinstance(axes, int):
            axes = (axes,)
        n = math.prod(x.shape[a] for a in axes)
    acc = accumulator(compute if compute.kind in "fc" else out_dtype)
    scale: Any = 1.0  # (softmax: each result is at most 1)
    if spec.name != "softmax":
        attrs = dict(norm)
        if attrs.get("dtype") is not None:
            attrs["dtype"] = hdt.float64
        with _quiet():
            wide = [np.abs(a).astype(np.float64) for a in host]
            scale = np.abs(np.asarray(spec.reference(*wide, **attrs), dtype=np.float64))
            if spec.name == "var":  # (var(|x|) can be 0 where rounding is not)
                scale = variance_scale(
                    host[0],
                    axes=tuple(attrs["axes"]),
                    keepdims=bool(attrs["keepdims"]),
                    correction=float(attrs["correction"]),
                    epsilon=eps(acc),
                )
            # the largest partial result, over the finite inputs
            reach = [np.where(np.isfinite(w), w, 0.0) for w in wide]
            if spec.name in ("prod", "cumulative_prod"):
                reach = [np.maximum(r, 1.0) for r in reach]
            largest = np.asarray(spec.reference(*reach, **attrs), dtype=np.float64)
        if spec.name in ("mean", "var"):
            largest = largest * max(n, 1)
        if np.any(~(largest <= float(ml_dtypes.finfo(acc.numpy_dtype).max))):
            raise Unsafe
    bound = 2.0 * max(n, 1) * eps(acc) * np.asarray(scale, dtype=np.float64)
    return float(np.max(bound[np.isfinite(bound)], initial=0.0))


def unsettled(value: np.ndarray) -> bool:
    """Whether a float result holds bits the tolerance policy leaves open even for the
    exact kernels: the sign of a zero (``maximum(0.0, -0.0)``, ``clip``) and the sign and
    payload of a NaN. The machine then reads such a result back and keeps the device's
    bits, or a later ``reciprocal``, ``copysign`` or ``signbit`` would tell them apart."""
    if not hdt.dtype(value.dtype).is_floating:
        return False
    with _quiet():
        return bool(np.any(value == 0) or np.any(np.isnan(value)))


def judge(actual: np.ndarray, expected: np.ndarray, dtype: DType, **tolerance: Any) -> None:
    """``assert_close`` (the numerics policy), after a fast test for identical values:
    assert_close formats both arrays for its message before it compares them."""
    if actual.dtype == expected.dtype and actual.shape == expected.shape:
        nan = dtype.kind in "fc"
        if np.array_equal(actual, expected, equal_nan=nan):
            return
    assert_close(actual, expected, dtype, **tolerance)


def host_data(
    dtype: DType, shape: tuple[int, ...], rng: np.random.Generator, with_specials: bool = False
) -> np.ndarray:
    """Random values of ``dtype``: integers in [-100, 100] (clipped to the type), floats in
    [-4, 4]; ``with_specials`` sprinkles NaN, infinities and signed zeros in."""
    wide = dtype.kind in "iu"
    data = sample(dtype, shape, rng, low=-100 if wide else -4, high=100 if wide else 4)
    if with_specials and dtype.kind in "fc" and data.size:
        values = specials(dtype)
        picks = values[rng.integers(0, values.size, size=shape)]
        data = np.where(rng.random(shape) < 0.25, picks, data)
    return np.array(data, dtype=dtype.numpy_dtype)


def fill_value(dtype: DType, rng: np.random.Generator) -> Any:
    """A Python scalar of ``dtype``'s kind that the dtype holds."""
    if dtype.kind == "b":
        return bool(rng.integers(2))
    if dtype.kind == "u":
        return int(rng.integers(0, 100))
    if dtype.kind == "i":
        return int(rng.integers(-100, 100))
    value = float(rng.choice([0.5, -1.25, 3.0, -0.0, 2.5, 1.0]))
    return complex(value, -1.5) if dtype.kind == "c" else value


# -- strategies --------------------------------------------------------------------------------

_DIM = st.sampled_from((1, 2, 3, 4, 5, 1, 2, 3, 4, 0, 33, 130))


@st.composite
def shapes(draw: st.DrawFn, max_dims: int = 3) -> tuple[int, ...]:
    dims = draw(st.lists(_DIM, max_size=max_dims))
    while math.prod(dims) > MAX_ELEMENTS:
        dims[dims.index(max(dims))] //= 4
    return tuple(dims)


@st.composite
def index_keys(draw: st.DrawFn, shape: tuple[int, ...], valid: bool = True) -> Any:
    """A basic index for ``shape``: integers, slices with any step, None and '...'. With
    ``valid`` false it may be out of bounds, too long, or have a zero step."""
    parts: list[Any] = []
    ndim = len(shape)
    used = draw(st.integers(0, ndim))
    # the parts after a '...' index the trailing dimensions
    ellipsis = draw(st.none() | st.integers(0, used), label="'...' at")
    split = used if ellipsis is None else ellipsis
    for d in [*range(split), *range(ndim - (used - split), ndim)]:
        size = shape[d]
        kind = draw(st.sampled_from(("slice", "slice", "int", "full")))
        if kind == "int" and (size or not valid):
            bound = size + (0 if valid else 2)
            parts.append(draw(st.integers(-max(bound, 1), max(bound - 1, 0))))
        elif kind == "full":
            parts.append(slice(None))
        else:
            ends = st.none() | st.integers(-size - 2, size + 2)
            step = draw(
                st.none() | st.sampled_from((1, 2, 3, -1, -2, -3) + (() if valid else (0,)))
            )
            parts.append(slice(draw(ends), draw(ends), step))
    if ellipsis is not None:
        parts.insert(ellipsis, Ellipsis)
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    if not valid and draw(st.booleans()):
        parts += [0] * (ndim - used + 1)  # too many indices
    if len(parts) == 1 and draw(st.booleans()):
        return parts[0]
    return tuple(parts)


def numpy_key(key: Any) -> Any:
    """``key`` for the mirror: with a trailing '...' so that NumPy returns a view (a 0-d
    one where the key has an integer for every dimension), as hwabstract does."""
    parts = key if isinstance(key, tuple) else (key,)
    if any(p is Ellipsis for p in parts):
        return parts
    return (*parts, Ellipsis)


def reshape_target(draw: st.DrawFn, size: int) -> tuple[int, ...]:
    """A random shape of ``size`` elements, with one ``-1`` now and then."""
    ndim = draw(st.integers(0 if size == 1 else 1, 3))
    dims: list[int] = []
    left = size
    for _ in range(ndim - 1):
        divisors = [d for d in range(1, min(left, 12) + 1) if left % d == 0] if left else [0, 1, 2]
        d = draw(st.sampled_from(divisors))
        dims.append(d)
        left = left // d if d else left
    if ndim:
        dims.append(left)
    if size and dims and draw(st.booleans()):
        dims[draw(st.integers(0, len(dims) - 1))] = -1
    return tuple(dims)


# -- the machine -------------------------------------------------------------------------------


class ApiFuzzer(RuleBasedStateMachine):
    """Random programs against the public API of one device (``device_name``).

    Hypothesis orders the rules by name and draws the first one several times as often as
    the others: that is ``apply_elementwise``, the rule with the most kernels per step."""

    device_name = "cpu:0"
    stats: Counter[str] = Counter()
    failures: list[str] = []  #: the first failure of the run, as it happened

    def __init__(self) -> None:
        super().__init__()
        gc.collect()  # garbage of earlier programs must not be freed during this one
        self.dev = hw.device(self.device_name)
        self.peers = peers_of(self.dev)
        self.devices = [self.dev, *self.peers]
        self.entries: list[Entry] = []
        # the default stream and two more from the start: most programs should interleave
        self.streams: list[hw.Stream] = [
            self.dev.default_stream,
            self.dev.create_stream(),
            self.dev.create_stream(),
        ]
        self.contexts: list[hw.Stream] = []  #: the ``with stream:`` blocks open, innermost last
        self.events: list[hw.Event] = []
        self.baseline = {d: self._unexplained(d) for d in self.devices}
        self.started = 0  #: steps begun
        self.log: list[str] = []  #: the rules run, for the report of a failure that Hypothesis
        #: cannot replay (a race): it then says only that the program behaved differently
        self.verified = 0  #: steps after which the invariants held
        self.stats["programs"] += 1

    # -- bookkeeping ------------------------------------------------------------------------

    def _begin(self) -> None:
        self.started += 1
        self.stats["steps"] += 1
        self.log.append(sys._getframe(1).f_code.co_name)
        if len(self.entries) > MAX_LIVE:  # drop the oldest (their work may still be queued)
            self._count("frees", len(self.entries) - MAX_LIVE)
            del self.entries[: len(self.entries) - MAX_LIVE]

    def _count(self, kind: str, n: int = 1) -> None:
        self.stats[kind] += n

    def _add(
        self, tensor: hw.Tensor, mirror: np.ndarray, buf: Buf, label: str, writable: bool = True
    ) -> Entry:
        entry = Entry(tensor, mirror, buf, label, writable)
        self.entries.append(entry)
        return entry

    def _fresh(
        self, tensor: hw.Tensor, value: np.ndarray, stream: hw.Stream | None, label: str
    ) -> Entry:
        """Register a tensor on a new buffer, written on ``stream``."""
        buf = Buf(tensor.device, tensor.size * tensor.itemsize, stream)
        # (in C order, as the new tensor is: a copy of a transposed mirror would otherwise
        # keep its layout, and a reshape of it that the SDK makes as a view NumPy could not)
        mirror = np.array(value, dtype=tensor.dtype.numpy_dtype, order="C").reshape(tensor.shape)
        return self._add(tensor, mirror, buf, label)

    def _current(self, device: hw.Device) -> hw.Stream:
        if device is self.dev and self.contexts:
            return self.contexts[-1]
        return device.default_stream

    def _read(self, buf: Buf, stream: hw.Stream) -> None:
        """Queued work on ``stream`` reads ``buf``: no wait needed (the SDK orders a read
        after a write), but a later write elsewhere must wait for this stream."""
        if not any(u is stream for u in buf.users):
            buf.users.append(stream)

    def _before_write(self, buf: Buf, stream: hw.Stream) -> None:
        """Make ``stream`` wait for every other stream that touched ``buf`` since its last
        ordered write: what the contract leaves to the program."""
        for user in buf.users:
            if user is not stream:
                stream.wait(user.record())
                self._count("ordering waits")
        buf.users = [stream]

    def _draw_entry(
        self, data: st.DataObject, ok: Callable[[Entry], bool] | None = None, label: str = "tensor"
    ) -> Entry | None:
        choices = [e for e in self.entries if ok is None or ok(e)]
        if not choices:
            return None
        # An index, not the entry: Hypothesis keeps what it draws until the program ends,
        # which would keep the tensor alive past its ``del``.
        entry = choices[data.draw(st.integers(0, len(choices) - 1), label=label)]
        note(f"{label}: {entry!r}")
        return entry

    def _draw_device(self, data: st.DataObject) -> hw.Device:
        if not self.peers or data.draw(st.integers(0, 3), label="on a peer") != 0:
            return self.dev
        return data.draw(st.sampled_from(self.peers), label="peer")

    def _draw_dtype(self, data: st.DataObject, device: hw.Device) -> DType:
        declared = sorted(device.capabilities.dtypes, key=lambda d: d.name)
        return data.draw(st.sampled_from(declared), label="dtype")

    @contextlib.contextmanager
    def _stream_for(
        self, data: st.DataObject, device: hw.Device
    ) -> Iterator[tuple[hw.Stream, dict[str, Any]]]:
        """Choose the stream of the next call and how it is chosen: the current stream,
        ``stream=``, or a ``with stream:`` block around the call. Yields the stream the work
        goes to and the keyword arguments to pass."""
        if device is not self.dev:
            s = device.default_stream
            yield s, ({"stream": s} if data.draw(st.booleans(), label="stream=") else {})
            return
        mode = data.draw(st.sampled_from(("current", "keyword", "context")), label="stream mode")
        if mode == "current":
            yield self._current(device), {}
            return
        s = data.draw(st.sampled_from(self.streams), label="stream")
        if mode == "keyword":
            yield s, {"stream": s}
            return
        with s:
            self.contexts.append(s)
            try:
                yield s, {}
            finally:
                self.contexts.pop()

    def _expect_error(
        self, expected: type[errors.HwAbstractError], fn: Callable[[], Any], what: str
    ) -> None:
        """``fn()`` must raise exactly ``expected`` (the documented class), from
        hwabstract.errors, and nothing else."""
        self._count("bad inputs")
        self._count(f"  {expected.__name__}")
        try:
            fn()
        except errors.HwAbstractError as exc:
            assert type(exc) is expected, (
                f"{what}: raised {type(exc).__name__} ({exc}); documented: {expected.__name__}"
            )
            assert type(exc).__module__ == "hwabstract.errors", type(exc).__module__
        except Exception as exc:
            raise AssertionError(
                f"{what}: raised {type(exc).__name__} ({exc}), which is not an SDK error; "
                f"documented: {expected.__name__}"
            ) from exc
        else:
            raise AssertionError(f"{what}: no error; documented: {expected.__name__}")

    def _check(self, entry: Entry, how: str = "numpy") -> None:
        """Read ``entry`` on the host (no synchronization besides what the read does) and
        compare it with its mirror, bit for bit."""
        t = entry.tensor
        if how == "asarray":
            actual = np.asarray(t)
        elif how == "item" and t.size == 1:
            actual = np.asarray(t.item()).astype(t.dtype.numpy_dtype).reshape(t.shape)
        elif how == "tolist" and t.dtype.kind in "biu":
            actual = np.asarray(t.tolist(), dtype=t.dtype.numpy_dtype).reshape(t.shape)
        elif how == "dlpack" and t.dtype.name in NUMPY_DLPACK:
            if t.device.capabilities.has_feature(hw.Feature.DLPACK):
                actual = np.from_dlpack(t).copy()  # (device memory itself, on the cpu backend)
            else:
                self._expect_error(
                    errors.DLPackError, lambda: np.from_dlpack(t), f"{entry!r}: no DLPack"
                )
                actual = np.from_dlpack(HostCopy(t))
        else:
            actual = t.numpy()
        self._count("value checks")
        judge(actual, entry.mirror, t.dtype, ulps=0, context=f"{entry!r} read by {how}")

    def _check_all(self) -> None:
        for entry in self.entries:
            self._check(entry)

    def _unexplained(self, device: hw.Device) -> tuple[int, int]:
        """``memory_stats()`` of ``device`` less the SDK's cached scalar tensors: (live
        allocations, bytes in use). The scalar cache is read from ``hwabstract.dispatch``
        (the one private name used here): it holds small device tensors per stream."""
        stats = device.memory_stats()
        count = size = 0
        for stream, cache in list(dispatch._SCALAR_CACHE.items()):
            if stream.device is device:
                count += len(cache)
                size += sum(footprint(device, t.nbytes) for t in cache.values())
        return stats.allocations - count, stats.in_use - size

    def _memory_mismatch(self) -> str | None:
        live: dict[int, Buf] = {id(e.buf): e.buf for e in self.entries}
        for device in self.devices:
            bufs = [b for b in live.values() if b.device is device]
            count, size = self._unexplained(device)
            count -= self.baseline[device][0]
            size -= self.baseline[device][1]
            want = sum(footprint(device, b.nbytes) for b in bufs)
            exact = device.backend in GRANULE
            if count != len(bufs) or (size != want if exact else size < want):
                return (
                    f"{device}: {count} allocations / {size} B beyond the start, the model "
                    f"holds {len(bufs)} buffers / {want} B"
                )
        return None

    @invariant()
    def memory_is_accounted(self) -> None:
        mismatch = self._memory_mismatch()
        if mismatch is not None:
            gc.collect()  # a caught error's traceback may still hold a temporary
            mismatch = self._memory_mismatch()
        assert mismatch is None, mismatch
        current = self.dev.current_stream()
        assert current is self._current(self.dev), f"current stream {current!r}"
        self.verified = self.started

    def teardown(self) -> None:
        clean = self.verified == self.started  # no step failed: check the end state too
        self._record(sys.exc_info()[1])  # (teardown runs in Hypothesis' ``finally``)
        try:
            if clean:
                self._check_all()  # (a loop here would keep its last entry alive)
        except Exception as exc:
            self._record(exc)
            raise
        finally:
            while self.contexts:
                self.contexts.pop().__exit__(None, None, None)
            self.entries.clear()
            self.events.clear()
            del self.streams[1:]
            for device in self.devices:
                device.synchronize()
            gc.collect()
            # What survives (Hypothesis' growing record of the run, mostly) is kept out of
            # later collections, which would otherwise slow down with every program; the
            # test unfreezes it at the end.
            gc.freeze()
        for device in self.devices if clean else ():
            now = self._unexplained(device)
            if now != self.baseline[device]:
                exc = AssertionError(
                    f"{device}: (allocations, bytes) {now} after teardown, "
                    f"{self.baseline[device]} before"
                )
                self._record(exc)
                raise exc

    def _record(self, failure: BaseException | None) -> None:
        """Keep the run's first failure as it happened, with the rules run before it."""
        if isinstance(failure, Exception) and not self.failures:  # (not Hypothesis' StopTest)
            text = "".join(traceback.format_exception(failure))
            self.failures.append(f"after the steps {' '.join(self.log)}:\n{text}")

    # -- creation --------------------------------------------------------------------------

    @rule(data=st.data())
    def new_tensor(self, data: st.DataObject) -> None:
        self._begin()
        device = self._draw_device(data)
        dtype = self._draw_dtype(data, device)
        shape = data.draw(shapes(), label="shape")
        how = data.draw(
            st.sampled_from(("asarray", "asarray_list", "zeros", "ones", "full", "empty_fill")),
            label="how",
        )
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="values seed"))
        with self._stream_for(data, device) as (s, kw):
            if how == "asarray_list" and 0 in shape:
                how = "asarray"  # (nested empty lists do not say the shape: [] is (0,))
            if how in ("asarray", "asarray_list"):
                value = host_data(dtype, shape, rng, data.draw(st.booleans(), label="specials"))
                if how == "asarray":
                    t = hw.asarray(value, device=device, **kw)
                else:
                    t = hw.asarray(value.tolist(), dtype=dtype, device=device, **kw)
                writer = s
            elif how in ("zeros", "ones"):
                t = getattr(hw, how)(shape, dtype=dtype, device=device, **kw)
                fill = np.zeros if how == "zeros" else np.ones
                value = fill(shape, dtype=dtype.numpy_dtype)
                writer = s
            elif how == "full":
                v = fill_value(dtype, rng)
                t = hw.full(shape, v, dtype=dtype, device=device, **kw)
                value = np.broadcast_to(scalar_host(v, dtype), shape)
                writer = s
            else:
                v = fill_value(dtype, rng)
                t = hw.empty(shape, dtype=dtype, device=device, **kw)
                t[...] = v  # (goes to the current stream, whatever ``stream=`` said)
                value = np.broadcast_to(scalar_host(v, dtype), shape)
                writer = self._current(device)
        self._count("allocations")
        self._fresh(t, value, writer, f"{how}#{self.stats['allocations']}")

    # -- views ------------------------------------------------------------------------------

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def view(self, data: st.DataObject) -> None:
        self._begin()
        e = self._draw_entry(data)
        assert e is not None
        t, m = e.tensor, e.mirror
        kind = data.draw(
            st.sampled_from(
                ("index", "index", "T", "mT", "permute", "flip", "reshape", "broadcast")
            ),
            label="view",
        )
        self._count("views")
        writable = e.writable
        if kind == "index":
            valid = data.draw(st.integers(0, 9), label="valid index") != 0
            key = data.draw(index_keys(t.shape, valid), label="key")
            try:
                vm = m[numpy_key(key)]
            except (IndexError, ValueError):
                self._expect_error(errors.InvalidIndexError, lambda: t[key], f"{e!r}[{key!r}]")
                return
            v = t[key]
        elif kind in ("T", "mT"):
            if (t.ndim != 2) if kind == "T" else (t.ndim < 2):
                self._expect_error(errors.ShapeError, lambda: getattr(t, kind), f"{e!r}.{kind}")
                return
            v = getattr(t, kind)
            vm = m.T if kind == "T" else np.swapaxes(m, -1, -2)
        elif kind == "permute":
            perm = tuple(data.draw(st.permutations(range(t.ndim)), label="axes"))
            v, vm = hw.permute_dims(t, perm), np.transpose(m, perm)
        elif kind == "flip":
            axis = data.draw(
                st.none() | st.integers(-t.ndim, t.ndim - 1) if t.ndim else st.none(), label="axis"
            )
            v = hw.flip(t, axis=axis)
            vm = np.flip(m, axis=axis) if m.ndim else m[...]  # (NumPy flips a 0-d to a scalar)
        elif kind == "broadcast":
            lead = data.draw(st.lists(st.integers(0, 3), max_size=2), label="leading dims")
            dims = [
                data.draw(st.sampled_from((1, 3)), label="grow") if d == 1 else d for d in t.shape
            ]
            target = (*lead, *dims)
            v, vm = hw.broadcast_to(t, target), np.broadcast_to(m, target)
            writable = False  # (a view with zero strides: never written through)
        else:
            self._reshape(data, e)
            return
        self._add(v, vm, e.buf, f"{kind}({e.label})", writable)

    def _reshape(self, data: st.DataObject, e: Entry) -> None:
        t, m = e.tensor, e.mirror
        bad = data.draw(st.integers(0, 7), label="bad reshape") == 0
        if bad:
            target = (t.size + 1,)
            self._expect_error(errors.ShapeError, lambda: hw.reshape(t, target), "reshape")
            return
        target = reshape_target(data.draw, t.size)
        copy = data.draw(st.sampled_from((None, None, True, False)), label="copy")
        if copy is False and not t.is_contiguous:
            self._expect_error(
                errors.ShapeError,
                lambda: hw.reshape(t, target, copy=False),
                "reshape(copy=False) of a strided view",
            )
            return
        shape = tuple(np.empty(t.size, dtype=np.uint8).reshape(target).shape)
        if copy is not True and t.is_contiguous:
            v = hw.reshape(t, target, copy=copy)
            # a view, as hwabstract's is (an empty one has no elements to share)
            vm = np.reshape(m, shape, copy=False) if m.size else np.empty(shape, m.dtype)
            self._add(v, vm, e.buf, f"reshape({e.label})", e.writable)
            return
        with self._stream_for(data, e.device) as (s, kw):
            v = hw.reshape(t, target, copy=copy, **kw)
        self._read(e.buf, s)
        self._count("device copies")
        self._fresh(v, np.reshape(m, shape), s, f"reshape-copy({e.label})")

    # -- kernels ----------------------------------------------------------------------------

    def _kernel(
        self,
        name: str,
        operands: Sequence[Any],
        call: Callable[[], Any],
        s: hw.Stream,
        *,
        attrs: dict[str, Any] | None = None,
        out: Entry | None = None,
        stream_kw: dict[str, Any] | None = None,
        adjust: Callable[[np.ndarray], np.ndarray] | None = None,
        what: str = "",
    ) -> Entry | None:
        """Predict ``name`` on ``operands`` (entries and scalars), then make the ``call``
        (which queues it on ``s``) and record what it wrote: a new entry, or ``out``.
        ``adjust`` maps the kernel's value to the call's (matmul removes the dimensions it
        added for 1-D operands). A call the spec refuses must raise what it predicts."""
        device = next(o.device for o in operands if isinstance(o, Entry))
        tensors = [o.tensor if isinstance(o, Entry) else o for o in operands]
        mirrors = [o.mirror if isinstance(o, Entry) else None for o in operands]
        what = what or f"{name}{tuple(operands)!r}"  # (a Tensor's repr would read it back)
        try:
            expected = predict(
                device,
                name,
                tensors,
                mirrors,
                attrs,
                None if out is None else out.tensor,
                (stream_kw or {}).get("stream"),
            )
        except Unsafe:
            return None
        except errors.HwAbstractError as exc:
            self._expect_error(type(exc), call, f"{what} ({exc})")
            return None
        if out is not None:
            if not out.writable:
                return None
            self._before_write(out.buf, s)
        result = call()
        self._count("kernels")
        for o in operands:
            if isinstance(o, Entry):
                self._read(o.buf, s)
        value = expected.value if adjust is None else adjust(expected.value)
        flushed = expected.flushed
        if flushed is not None and adjust is not None:
            flushed = adjust(flushed)
        if out is None:
            target = self._fresh(result, value, s, f"{name}#{self.stats['kernels']}")
        else:
            assert result is out.tensor, f"{what}: out= returned another tensor"
            out.mirror[...] = value
            target = out
        assert result.dtype is expected.dtype, f"{what}: dtype {result.dtype}, not {expected.dtype}"
        if target.tensor.size and (not expected.exact or unsettled(value) or flushed is not None):
            actual = target.tensor.numpy()
            self._count("value checks")
            if flushed is not None:  # each element: whichever reference it is nearer to
                value = _nearer(value, flushed, actual)
            judge(
                actual, value, expected.dtype, ulps=expected.ulps, atol=expected.atol, context=what
            )
            target.mirror[...] = actual  # later exact kernels then build on the device's value
        return target

    def _draw_kernel(self, data: st.DataObject, names: Sequence[str], x: Entry) -> str:
        """A kernel the device declares for ``x``'s dtype; one time in eight any of
        ``names`` (most of those make a dtype or capability error)."""
        caps = x.device.capabilities
        fitting = [n for n in names if caps.supports_kernel(n, x.tensor.dtype)]
        if fitting and data.draw(st.integers(0, 7), label="any kernel") != 0:
            names = fitting
        return data.draw(st.sampled_from(names), label="kernel")

    def _operand(self, data: st.DataObject, x: Entry, label: str) -> Any:
        """A second operand for ``x``: a tensor of a shape that broadcasts with it (an
        existing one, or a new one of any declared dtype), a Python scalar, or any tensor."""
        how = data.draw(st.sampled_from(("compatible", "fresh", "scalar", "any")), label=label)
        if how == "any":
            other = self._draw_entry(data, label=label)
            if other is not None:
                return other
        if how == "compatible":
            other = self._draw_entry(
                data,
                lambda e: e.device is x.device and _broadcasts(e.tensor.shape, x.tensor.shape),
                label=label,
            )
            if other is not None:
                return other
        if how == "scalar":
            rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="scalar seed"))
            # mostly of the tensor's kind (a weak scalar); now and then another (promotion)
            kind = data.draw(st.sampled_from((x.tensor.dtype,) * 2 + SCALAR_KINDS), label="kind")
            return fill_value(kind, rng)
        shape = list(x.tensor.shape[data.draw(st.integers(0, x.tensor.ndim), label="drop") :])
        shape = [1 if data.draw(st.booleans(), label="to 1") else d for d in shape]
        dtype = data.draw(
            st.sampled_from((x.tensor.dtype, self._draw_dtype(data, x.device))), label="dtype"
        )
        rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="values seed"))
        value = host_data(dtype, tuple(shape), rng, data.draw(st.booleans(), label="specials"))
        with self._stream_for(data, x.device) as (s, kw):
            t = hw.asarray(value, device=x.device, **kw)
        self._count("allocations")
        return self._fresh(t, value, s, f"operand#{self.stats['allocations']}")

    def _out_for(
        self, data: st.DataObject, device: hw.Device, shape: tuple[int, ...], dtype: DType
    ) -> Entry | None:
        """An existing tensor to pass as ``out=`` (sometimes one of the wrong shape)."""
        if not data.draw(st.booleans(), label="out="):
            return None
        if data.draw(st.integers(0, 5), label="any out") == 0:
            return self._draw_entry(data, lambda e: e.writable, label="out")
        return self._draw_entry(
            data,
            lambda e: (
                e.writable
                and e.device is device
                and e.tensor.shape == shape
                and e.tensor.dtype is dtype
            ),
            label="out",
        )

    def _guess(
        self, name: str, operands: Sequence[Any], attrs: dict[str, Any] | None = None
    ) -> tuple[tuple[int, ...], DType] | None:
        """The result's shape and dtype if the call is valid, to look for an ``out=``."""
        device = next(o.device for o in operands if isinstance(o, Entry))
        try:
            e = predict(
                device,
                name,
                [o.tensor if isinstance(o, Entry) else o for o in operands],
                [o.mirror if isinstance(o, Entry) else None for o in operands],
                attrs,
            )
        except (errors.HwAbstractError, Unsafe):
            return None
        return e.value.shape, e.dtype

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def apply_elementwise(self, data: st.DataObject) -> None:
        """One to four elementwise kernels, each on the result of the one before (so that
        the next may well read it on another stream while it is being written)."""
        self._begin()
        x = self._draw_entry(data)
        for _ in range(data.draw(st.integers(1, 4), label="chain")):
            assert x is not None
            x = self._elementwise(data, x) or self._draw_entry(data)

    def _elementwise(self, data: st.DataObject, x: Entry) -> Entry | None:
        name = self._draw_kernel(data, UNARY + BINARY + ("where", "clip"), x)
        if name in UNARY:
            operands: list[Any] = [x]
        elif name == "where":
            cond = self._draw_entry(data, lambda e: e.tensor.dtype is hw.bool, label="condition")
            operands = [cond or x, x, self._operand(data, x, "x2")]
        elif name == "clip":
            rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="bounds seed"))
            low = fill_value(x.tensor.dtype, rng) if data.draw(st.booleans(), label="min") else None
            high = (
                fill_value(x.tensor.dtype, rng) if data.draw(st.booleans(), label="max") else None
            )
            operands = [x, low, high]
        else:
            y = self._operand(data, x, "x2")
            operands = [y, x] if data.draw(st.booleans(), label="swap") else [x, y]
        guess = self._guess(name, operands)
        out = None if guess is None else self._out_for(data, x.device, *guess)
        style = data.draw(st.sampled_from(("function", "operator", "in-place")), label="style")
        first = operands[0]
        if style == "operator" and out is None and (name in OPERATORS or name in UNARY_OPERATORS):
            s = self._current(x.device)  # (a scalar first operand: the reflected operator)
            args = [o.tensor if isinstance(o, Entry) else o for o in operands]
            fn = UNARY_OPERATORS[name] if name in UNARY else OPERATORS[name]
            return self._kernel(name, operands, lambda: fn(*args), s, what=f"operator {name}")
        if style == "in-place" and name in INPLACE and isinstance(first, Entry) and first.writable:
            s = self._current(first.device)
            args = [o.tensor if isinstance(o, Entry) else o for o in operands]
            return self._kernel(
                name, operands, lambda: INPLACE[name](*args), s, out=first, what=f"in-place {name}"
            )
        fn = getattr(hw, name)
        with self._stream_for(data, x.device) as (s, kw):
            args = [o.tensor if isinstance(o, Entry) else o for o in operands]
            extra = dict(kw)
            if out is not None:
                extra["out"] = out.tensor
            return self._kernel(
                name, operands, lambda: fn(*args, **extra), s, out=out, stream_kw=kw
            )

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def reduction(self, data: st.DataObject) -> None:
        self._begin()
        x = self._draw_entry(data)
        assert x is not None
        name = self._draw_kernel(data, REDUCTIONS, x)
        ndim = x.tensor.ndim
        axis = data.draw(
            st.none()
            | st.integers(-ndim - 1, ndim)
            | st.lists(st.integers(-ndim, max(ndim - 1, 0)), max_size=ndim, unique=True).map(tuple),
            label="axis",
        )
        attrs: dict[str, Any] = {
            "axis": axis,
            "keepdims": data.draw(st.booleans(), label="keepdims"),
        }
        if name == "var":
            attrs["correction"] = data.draw(st.sampled_from((0.0, 1.0)), label="correction")
        guess = self._guess(name, [x], attrs)
        out = None if guess is None else self._out_for(data, x.device, *guess)
        fn = getattr(hw, name)
        with self._stream_for(data, x.device) as (s, kw):
            extra = {**attrs, **kw, **({} if out is None else {"out": out.tensor})}
            self._kernel(
                name, [x], lambda: fn(x.tensor, **extra), s, attrs=attrs, out=out, stream_kw=kw
            )

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def other_kernel(self, data: st.DataObject) -> None:
        """softmax, sort, argsort, cumulative_sum and astype."""
        self._begin()
        x = self._draw_entry(data)
        assert x is not None
        t = x.tensor
        name = self._draw_kernel(
            data, ("softmax", "sort", "argsort", "cumulative_sum", "astype"), x
        )
        axis = data.draw(st.integers(-t.ndim - 1, t.ndim) if t.ndim else st.just(-1), label="axis")
        if name == "softmax":
            attrs: dict[str, Any] = {"axis": axis}
        elif name in ("sort", "argsort"):
            attrs = {"axis": axis, "descending": data.draw(st.booleans(), label="descending")}
        elif name == "cumulative_sum":
            if t.ndim == 0:
                self._expect_error(errors.ShapeError, lambda: hw.cumulative_sum(t), "cumsum 0-d")
                return
            attrs = {
                "axis": data.draw(st.none() | st.just(axis), label="axis or None"),
                "include_initial": data.draw(st.booleans(), label="include_initial"),
            }
        else:
            attrs = {"dtype": self._draw_dtype(data, x.device)}
        with self._stream_for(data, x.device) as (s, kw):
            if name == "astype":
                dtype = attrs["dtype"]
                self._kernel(name, [x], lambda: t.astype(dtype, **kw), s, attrs=attrs, stream_kw=kw)
            else:
                fn = getattr(hw, name)
                self._kernel(name, [x], lambda: fn(t, **attrs, **kw), s, attrs=attrs, stream_kw=kw)

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def matmul(self, data: st.DataObject) -> None:
        self._begin()
        a = self._draw_entry(data, label="x1")
        assert a is not None
        ta = a.tensor
        if ta.ndim == 0:
            self._expect_error(errors.ShapeError, lambda: hw.matmul(ta, ta), "matmul of 0-d")
            return
        k = ta.shape[-1] + (1 if data.draw(st.integers(0, 9), label="mismatch") == 0 else 0)
        if ta.ndim >= 2 and data.draw(st.booleans(), label="with its transpose"):
            b = Entry(ta.mT, np.swapaxes(a.mirror, -1, -2), a.buf, f"mT({a.label})")
            self.entries.append(b)
        else:
            nb = data.draw(st.integers(1, 3), label="x2 ndim")
            batch = list(ta.shape[:-2][len(ta.shape[:-2]) - max(nb - 2, 0) :]) if nb > 2 else []
            n = data.draw(st.sampled_from((1, 2, 3, 5, 0, 17)), label="n")
            shape = (k,) if nb == 1 else (*batch, k, n)
            dtype = data.draw(
                st.sampled_from((ta.dtype, self._draw_dtype(data, a.device))), label="x2 dtype"
            )
            rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="values seed"))
            value = host_data(dtype, shape, rng)
            with self._stream_for(data, a.device) as (s, kw):
                tb = hw.asarray(value, device=a.device, **kw)
            self._count("allocations")
            b = self._fresh(tb, value, s, f"matmul-operand#{self.stats['allocations']}")
        tb = b.tensor
        operands = [a, b]
        if ta.ndim == 1 or tb.ndim == 1:
            # the kernel sees 2-D operands; matmul removes the added dimension after
            x1 = Entry(ta[None, :], a.mirror[None, :], a.buf, "row") if ta.ndim == 1 else a
            x2 = Entry(tb[:, None], b.mirror[:, None], b.buf, "column") if tb.ndim == 1 else b
            operands = [x1, x2]

        def squeeze(v: np.ndarray) -> np.ndarray:
            if ta.ndim == 1:
                v = v[..., 0, :]
            if tb.ndim == 1:
                v = v[..., 0]
            return v

        style = data.draw(st.sampled_from(("function", "operator")), label="style")
        if style == "operator":
            s = self._current(a.device)
            self._kernel("matmul", operands, lambda: ta @ tb, s, adjust=squeeze, what="operator @")
            return
        with self._stream_for(data, a.device) as (s, kw):
            self._kernel(
                "matmul", operands, lambda: hw.matmul(ta, tb, **kw), s, adjust=squeeze, stream_kw=kw
            )

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def index_by_tensor(self, data: st.DataObject) -> None:
        """Indexing whose result shape depends on the data -- ``x[mask]``, ``x[mask] = v``,
        ``nonzero`` -- which reads a count back from the device (on the current stream),
        and integer-tensor indexing ``x[idx]``, ``x[idx, j]``."""
        self._begin()
        x = self._draw_entry(data)
        assert x is not None
        t, device = x.tensor, x.device
        how = data.draw(st.sampled_from(("mask", "mask", "set mask", "int", "nonzero")))
        rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="index seed"))
        s = self._current(device)
        caps = device.capabilities
        if how in ("mask", "int") and not caps.supports_kernel("take", t.dtype):
            return  # (the selection is a ``take``, which the device does not declare here)
        if how == "nonzero":
            if t.ndim == 0:
                self._expect_error(errors.ShapeError, lambda: hw.nonzero(t), "nonzero of 0-d")
                return
            if not device.capabilities.supports_kernel("flatnonzero", t.dtype):
                return
            parts = hw.nonzero(t)
            self._read(x.buf, s)
            self._count("kernels")
            seen: dict[int, Entry] = {}
            for part, expected in zip(parts, np.nonzero(x.mirror)):
                if id(part) in seen:  # (with no nonzeros, parts may be one empty tensor)
                    self._add(part, seen[id(part)].mirror, seen[id(part)].buf, "nonzero")
                else:
                    seen[id(part)] = self._fresh(part, expected, s, f"nonzero({x.label})")
            return
        if how == "int":
            lead = data.draw(st.integers(1, 2) if t.ndim >= 2 else st.just(1), label="indices")
            if t.ndim == 0 or 0 in t.shape[:lead]:
                return
            shape = data.draw(shapes(max_dims=2), label="index shape")
            idx = rng.integers(-t.shape[0], t.shape[0], size=shape).astype(np.int64)
            itensor = hw.asarray(idx, device=device)
            self._count("allocations")
            self._fresh(itensor, idx, s, "index")
            j = int(rng.integers(0, t.shape[1])) if lead == 2 else None
            key: Any = itensor if j is None else (itensor, j)
            mkey: Any = idx if j is None else (idx, j)
            if math.prod(shape) * math.prod(t.shape[lead:]) > MAX_RESULT:
                return
            if not shape:  # a 0-d integer tensor is a basic index: the result is a view
                ints = (int(idx),) if j is None else (int(idx), j)
                view = x.mirror[numpy_key(ints)]
                self._add(t[key], view, x.buf, f"view({x.label})", x.writable)
                return
            result, expected = t[key], x.mirror[mkey]
        else:
            ndim = data.draw(st.integers(0, t.ndim), label="mask ndim")
            mask = rng.random(t.shape[:ndim]) < 0.5
            mtensor = hw.asarray(mask, device=device)
            self._count("allocations")
            self._fresh(mtensor, mask, s, "mask")
            if how == "set mask":
                if not x.writable:
                    return
                value = fill_value(t.dtype, rng)
                self._before_write(x.buf, s)
                t[mtensor] = value
                x.mirror[mask] = scalar_host(value, t.dtype)
                self._count("device writes")
                return
            result, expected = t[mtensor], x.mirror[mask]
        self._read(x.buf, s)
        self._count("kernels")
        self._fresh(result, expected, s, f"{how}-index({x.label})")

    # -- writes into existing tensors --------------------------------------------------------

    @precondition(lambda self: any(e.writable for e in self.entries))
    @rule(data=st.data())
    def setitem(self, data: st.DataObject) -> None:
        self._begin()
        e = self._draw_entry(data, lambda e: e.writable, label="target")
        assert e is not None
        t = e.tensor
        key = data.draw(index_keys(t.shape), label="key")
        target = e.mirror[numpy_key(key)]
        how = data.draw(st.sampled_from(("scalar", "tensor", "tensor")), label="value")
        s = self._current(e.device)
        if how == "scalar":
            rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="value seed"))
            value: Any = fill_value(t.dtype, rng)
            new = scalar_host(value, t.dtype)
            self._before_write(e.buf, s)
            t[key] = value
        else:
            v = self._draw_entry(
                data,
                lambda o: o.device is e.device and _broadcasts_to(o.tensor.shape, target.shape),
                label="source",
            )
            if v is None:
                return
            try:
                new = astype_host(v.mirror, t.dtype)  # (evaluated before the write, as assign does)
            except Unsafe:
                return
            self._before_write(e.buf, s)
            t[key] = v.tensor
            self._read(v.buf, s)
            if v.tensor.dtype is not t.dtype and unsettled(new):  # (a converted NaN's bits)
                actual = t[key].numpy()
                judge(actual, np.broadcast_to(new, target.shape), t.dtype, ulps=0)
                new = actual
        target[...] = new
        self._count("device writes")

    # -- copies -----------------------------------------------------------------------------

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def copy(self, data: st.DataObject) -> None:
        """Device to device copies: to a peer device (the same backend or another), back,
        onto the same device (``asarray(copy=True)``, concat and stack); and the calls that
        must not copy (``to`` its own device, ``astype(copy=False)`` to its own dtype)."""
        self._begin()
        e = self._draw_entry(data)
        assert e is not None
        t = e.tensor
        kinds = ("to", "roundtrip", "asarray", "same", "astype-nocopy", "concat", "stack")
        how = data.draw(st.sampled_from(kinds), label="copy")
        if how in ("to", "roundtrip"):
            others = [d for d in self.devices if d is not e.device]
            if not others:
                return
            peer = data.draw(st.sampled_from(others), label="to device")
            if not peer.capabilities.supports_dtype(t.dtype):
                self._expect_error(
                    errors.UnsupportedError,
                    lambda: t.to(peer),
                    f"{e!r} to {peer}, which does not declare its dtype",
                )
                return
            moved = self._move(e, peer, data)
            if how == "roundtrip":
                self._move(moved, e.device, data)
            return
        if how == "same":
            same = t.to(e.device)
            assert same is t, "to() its own device made a copy"
            self._add(same, e.mirror, e.buf, f"same({e.label})", e.writable)
            return
        if how == "astype-nocopy":
            same = hw.astype(t, t.dtype, copy=False)
            assert same is t, "astype(copy=False) to its own dtype made a copy"
            self._add(same, e.mirror, e.buf, f"astype-nocopy({e.label})", e.writable)
            return
        with self._stream_for(data, e.device) as (s, kw):
            if how == "asarray":
                result = hw.asarray(t, copy=True, **kw)
                value = e.mirror
            else:
                other = self._draw_entry(
                    data,
                    lambda o: o.device is e.device and o.tensor.shape == t.shape,
                    label="second",
                )
                assert other is not None  # (e itself qualifies)
                axis = data.draw(
                    st.integers(0, t.ndim if how == "stack" else max(t.ndim - 1, 0)), label="axis"
                )
                if how == "concat" and t.ndim == 0:
                    self._expect_error(
                        errors.ShapeError,
                        lambda: hw.concat([t, other.tensor]),
                        "concat of 0-d tensors",
                    )
                    return
                fn = hw.concat if how == "concat" else hw.stack
                pair = [t, other.tensor]
                try:
                    dtype = hdt.result_type(t, other.tensor)
                except errors.HwAbstractError as exc:
                    self._expect_error(type(exc), lambda: fn(pair, axis=axis), f"{how} ({exc})")
                    return
                try:
                    parts = [astype_host(e.mirror, dtype), astype_host(other.mirror, dtype)]
                except Unsafe:
                    return
                result = fn(pair, axis=axis, **kw)
                value = (np.concatenate if how == "concat" else np.stack)(parts, axis=axis)
                self._read(other.buf, s)
                if {t.dtype, other.tensor.dtype} != {dtype} and unsettled(value):
                    actual = result.numpy()  # (a converted NaN's bits)
                    judge(actual, value, dtype, ulps=0)
                    value = actual
        self._read(e.buf, s)
        self._count("device copies")
        self._fresh(result, value, s, f"{how}({e.label})")

    def _move(self, e: Entry, peer: hw.Device, data: st.DataObject) -> Entry:
        """``e`` copied to ``peer`` (``to`` or ``asarray(device=)``), registered there."""
        t = e.tensor
        dst = peer.default_stream
        if data.draw(st.booleans(), label="asarray(device=)"):
            moved = hw.asarray(t, device=peer)
        else:
            moved = t.to(
                peer, **({"stream": dst} if data.draw(st.booleans(), label="stream=") else {})
            )
        if peer.backend == e.device.backend:
            self._read(e.buf, dst)  # a peer copy reads the source on the destination's stream
        self._count("device copies")
        return self._fresh(moved, e.mirror, dst, f"to-{peer}({e.label})")

    # -- host reads, frees -------------------------------------------------------------------

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        self._begin()
        for _ in range(data.draw(st.integers(1, 3), label="reads")):
            e = self._draw_entry(data)
            assert e is not None
            how = data.draw(
                st.sampled_from(("numpy", "asarray", "item", "tolist", "dlpack")), label="how"
            )
            if how == "item" and e.tensor.size != 1:
                self._expect_error(errors.ShapeError, e.tensor.item, f"{e!r}.item()")
                continue
            self._check(e, how)

    @precondition(lambda self: self.entries)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        """``del`` one tensor, or every tensor of one buffer (so that its memory is
        released now, while queued work on any stream may still use it)."""
        self._begin()
        e = self._draw_entry(data)
        assert e is not None
        if data.draw(st.booleans(), label="whole buffer"):
            self.entries = [o for o in self.entries if o.buf is not e.buf]
        else:
            self.entries.remove(e)
        self._count("frees")

    @rule(data=st.data())
    def free_while_queued(self, data: st.DataObject) -> None:
        """Queue a long kernel reading ``x`` on one stream, free ``x`` at once, and at once
        allocate and write a tensor of the same size on another stream: the freed memory
        must not be handed out (or written) before the kernel has read it."""
        self._begin()
        a = data.draw(st.sampled_from(self.streams), label="reader")
        b = data.draw(st.sampled_from(self.streams), label="writer")
        dtype = data.draw(
            st.sampled_from(
                [
                    d
                    for d in (hw.float32, hw.int32, hw.float16)
                    if self.dev.capabilities.supports_dtype(d)
                ]
            ),
            label="dtype",
        )
        n = data.draw(st.sampled_from((1, 1000, 1 << 16)), label="elements")
        rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="values seed"))
        value = host_data(dtype, (n,), rng)
        self._stall(a)
        x = hw.asarray(value, device=self.dev, stream=a)
        y = hw.multiply(x, x, stream=a)
        z = hw.add(y, x, stream=a)
        del x
        w = hw.full((n,), 7, dtype=dtype, device=self.dev, stream=b)
        self._count("allocations", 2)
        self._count("kernels", 2)
        self._count("frees")
        with _quiet():
            yv = value * value  # (NumPy rounds float16 and wraps int32 as the kernels do)
            zv = yv + value
        self._fresh(y, yv, a, "free_while_queued.y")
        self._fresh(z, zv, a, "free_while_queued.z")
        self._fresh(w, np.full((n,), 7, dtype.numpy_dtype), b, "free_while_queued.w")

    def _stall(self, s: hw.Stream) -> None:
        """Keep ``s`` busy for a while: large matmuls whose results are dropped at once (so
        their memory is freed while they are queued). Whatever is queued on ``s`` next is
        then still pending when other streams, or the host, come to use it."""
        if not self.dev.capabilities.supports_kernel("matmul", hw.float32):
            return
        batch, n = STALL.get(self.dev.backend, (16, 64))
        a = hw.ones((batch, n, n), dtype=hw.float32, device=self.dev, stream=s)
        for _ in range(3):
            a = hw.matmul(a, a, stream=s)
        self._count("kernels", 3)
        self._count("allocations")

    @rule(data=st.data())
    def stall(self, data: st.DataObject) -> None:
        self._begin()
        self._stall(data.draw(st.sampled_from(self.streams), label="stream"))

    # -- streams and events ------------------------------------------------------------------

    @rule(data=st.data())
    def create_or_forget_stream(self, data: st.DataObject) -> None:
        """Create a stream, or forget one (work queued on it, and memory it used, stay the
        SDK's to finish)."""
        self._begin()
        self._count("stream operations")
        if len(self.streams) == 1 or (
            len(self.streams) <= MAX_STREAMS and data.draw(st.booleans(), label="create")
        ):
            self.streams.append(self.dev.create_stream())
            return
        s = data.draw(st.sampled_from(self.streams[1:]), label="forget")
        if not any(c is s for c in self.contexts):
            self.streams.remove(s)

    @rule(data=st.data())
    def record_or_wait(self, data: st.DataObject) -> None:
        """Record an event (on any stream, a peer device's too), or make a stream wait for
        one: another backend's event is a StreamError."""
        self._begin()
        self._count("stream operations")
        if not self.events or data.draw(st.booleans(), label="record"):
            choices = self.streams + [p.default_stream for p in self.peers]
            s = data.draw(st.sampled_from(choices), label="stream")
            timing = data.draw(st.sampled_from((None, False)), label="timing")
            self.events.append(s.record() if timing is None else s.record(timing=False))
            del self.events[:-MAX_EVENTS]
            return
        s = data.draw(st.sampled_from(self.streams), label="stream")
        event = data.draw(st.sampled_from(self.events), label="event")
        if event.device.backend != s.device.backend:
            self._expect_error(
                errors.StreamError, lambda: s.wait(event), "wait on another backend's event"
            )
            return
        s.wait(event)

    @rule(data=st.data())
    def synchronize(self, data: st.DataObject) -> None:
        self._begin()
        how = data.draw(st.sampled_from(("stream", "event", "device", "query")), label="how")
        self._count("stream operations")
        if how == "event" and self.events:
            event = data.draw(st.sampled_from(self.events), label="event")
            event.synchronize()
            assert event.query(), "an event just synchronized is not reached"
        elif how == "device":
            self.dev.synchronize()
        elif how == "query":
            self.streams[-1].query()
            for event in self.events:
                event.query()
        else:
            s = data.draw(st.sampled_from(self.streams), label="stream")
            s.synchronize()
            assert s.query(), "a stream just synchronized has work pending"

    @rule(data=st.data())
    def enter_or_exit(self, data: st.DataObject) -> None:
        """Enter a ``with stream:`` block that stays open across the following steps, or
        leave the innermost one (leaving another is a StreamError)."""
        self._begin()
        self._count("stream operations")
        if not self.contexts or (
            len(self.contexts) < 3 and data.draw(st.booleans(), label="enter")
        ):
            s = data.draw(st.sampled_from(self.streams), label="stream")
            s.__enter__()
            self.contexts.append(s)
            return
        wrong = [s for s in self.streams if s is not self.contexts[-1]]
        if wrong and data.draw(st.integers(0, 3), label="out of order") == 0:
            s = data.draw(st.sampled_from(wrong), label="stream")
            self._expect_error(
                errors.StreamError,
                lambda: s.__exit__(None, None, None),
                "a stream context exited out of order",
            )
            return
        self.contexts.pop().__exit__(None, None, None)

    # -- bad inputs --------------------------------------------------------------------------

    @rule(data=st.data())
    def bad_input(self, data: st.DataObject) -> None:
        """A misuse from docs/errors.md; it must raise the class documented there."""
        self._begin()
        case = data.draw(st.sampled_from(sorted(BAD_INPUTS)), label="case")
        BAD_INPUTS[case](self, data)


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(x == y or 1 in (x, y) for x, y in zip(reversed(a), reversed(b)))


def _broadcasts_to(a: tuple[int, ...], target: tuple[int, ...]) -> bool:
    return len(a) <= len(target) and all(x in (1, y) for x, y in zip(reversed(a), reversed(target)))


def _any_tensor(m: ApiFuzzer, data: st.DataObject) -> hw.Tensor:
    e = m._draw_entry(data, lambda e: e.device is m.dev)
    if e is not None:
        return e.tensor
    t = hw.zeros((2, 3), device=m.dev)
    m._count("allocations")
    m._fresh(t, np.zeros((2, 3), np.float32), m.dev.default_stream, "bad-input operand")
    return t


def _bad_cases() -> dict[str, Callable[[ApiFuzzer, st.DataObject], None]]:
    """The misuses, each raising the class docs/errors.md documents for it."""
    E = errors

    def foreign_operand(m: ApiFuzzer, data: st.DataObject) -> None:
        if m.peers:
            x = _any_tensor(m, data)
            y = hw.zeros(x.shape, dtype=hw.bool, device=data.draw(st.sampled_from(m.peers)))
            m._expect_error(E.DeviceError, lambda: hw.add(x, y), "operands on two devices")
            m._expect_error(E.DeviceError, lambda: hw.negative(x, out=y), "out= elsewhere")

    def foreign_stream(m: ApiFuzzer, data: st.DataObject) -> None:
        x = _any_tensor(m, data)
        if m.peers:
            peer = data.draw(st.sampled_from(m.peers))
            other = peer.default_stream
            m._expect_error(
                E.StreamError, lambda: hw.positive(x, stream=other), "a stream of another device"
            )
            m._expect_error(
                E.StreamError,
                lambda: x.to(peer, stream=m.dev.default_stream),
                "to() a device with a stream of the source's",
            )
        m._expect_error(
            E.StreamError,
            lambda: hw.positive(x, stream="fast"),  # type: ignore[arg-type]
            "stream= not a Stream",
        )

    def host_operand(m: ApiFuzzer, data: st.DataObject) -> None:
        x = _any_tensor(m, data)
        arr = np.ones(x.shape, x.dtype.numpy_dtype)
        m._expect_error(E.DeviceError, lambda: hw.add(x, arr), "a NumPy array operand")
        m._expect_error(E.DTypeError, lambda: hw.sum([1, 2]), "a list where a tensor is needed")  # type: ignore[arg-type]
        m._expect_error(
            E.DTypeError,
            lambda: hw.add(x, 1, out=arr),  # type: ignore[arg-type]
            "out= a NumPy array",
        )

    def bad_dtype(m: ApiFuzzer, data: st.DataObject) -> None:
        m._expect_error(
            E.DTypeError, lambda: hw.zeros(2, dtype="float128", device=m.dev), "an unknown dtype"
        )
        m._expect_error(
            E.DTypeError, lambda: hw.asarray(["a", "b"], device=m.dev), "strings as data"
        )
        x = _any_tensor(m, data)
        m._expect_error(E.DTypeError, lambda: x.astype("complex512"), "astype to no dtype")
        missing = [d for d in hdt.all_dtypes() if not m.dev.capabilities.supports_dtype(d)]
        if missing:
            d = data.draw(st.sampled_from(missing), label="undeclared dtype")
            m._expect_error(
                E.UnsupportedError,
                lambda: hw.zeros(2, dtype=d, device=m.dev),
                f"a dtype {m.dev} does not declare",
            )

    def bad_shape(m: ApiFuzzer, data: st.DataObject) -> None:
        m._expect_error(E.ShapeError, lambda: hw.zeros((2, -1), device=m.dev), "negative shape")
        x = _any_tensor(m, data)
        m._expect_error(E.ShapeError, lambda: hw.reshape(x, (x.size + 1,)), "reshape's size")
        if x.ndim >= 2:
            m._expect_error(E.ShapeError, lambda: hw.permute_dims(x, (0,) * x.ndim), "axes")
        if x.size != 1:
            m._expect_error(E.ShapeError, lambda: bool(x), "bool() of many elements")

    def scalar_range(m: ApiFuzzer, data: st.DataObject) -> None:
        for d, v in ((hw.int8, 1000), (hw.uint8, -1), (hw.int16, 2**40)):
            if m.dev.capabilities.supports_dtype(d):
                x = hw.zeros(3, dtype=d, device=m.dev)
                m._expect_error(
                    E.DTypeError,
                    lambda: hw.add(x, v),  # noqa: B023
                    f"{v} with {d}",
                )
                m._expect_error(
                    E.DTypeError,
                    lambda: hw.full(2, v, dtype=d, device=m.dev),  # noqa: B023
                    f"full({v}) of {d}",
                )

    def bad_index(m: ApiFuzzer, data: st.DataObject) -> None:
        x = _any_tensor(m, data)
        keys: list[Any] = [(0,) * (x.ndim + 1), (..., ...), 1.5, np.array([0]), [0]]
        if x.ndim:
            keys += [x.shape[0], -x.shape[0] - 1, slice(None, None, 0)]
        key = data.draw(st.sampled_from(keys), label="key")
        m._expect_error(E.InvalidIndexError, lambda: x[key], f"index {key!r}")
        if x.ndim and x.shape[0]:
            idx = hw.asarray(np.zeros(1, np.int64), device=m.dev)
            m._expect_error(E.InvalidIndexError, lambda: x.__setitem__(idx, 1), "a scatter")

    def host_assign(m: ApiFuzzer, data: st.DataObject) -> None:
        x = _any_tensor(m, data)
        arr = np.ones((2, *x.shape), x.dtype.numpy_dtype)
        m._expect_error(E.DeviceError, lambda: x.__setitem__(..., arr), "a host array assigned")
        if m.peers:
            y = hw.zeros(x.shape, dtype=hw.bool, device=data.draw(st.sampled_from(m.peers)))
            m._expect_error(E.DeviceError, lambda: x.__setitem__(..., y), "another device's")

    def bad_device(m: ApiFuzzer, data: st.DataObject) -> None:
        spec = data.draw(st.sampled_from(("nope:0", f"{m.dev.backend}:99", "cpu:x")))
        m._expect_error(E.DeviceError, lambda: hw.zeros(2, device=spec), f"device {spec!r}")
        x = _any_tensor(m, data)
        m._expect_error(E.DeviceError, lambda: x.to(spec), f"to({spec!r})")
        if m.peers:
            peer = data.draw(st.sampled_from(m.peers))
            m._expect_error(
                E.DeviceError,
                lambda: hw.asarray(x, device=peer, copy=False),
                "asarray(copy=False) to another device",
            )

    def bad_event(m: ApiFuzzer, data: st.DataObject) -> None:
        s = data.draw(st.sampled_from(m.streams))
        m._expect_error(E.StreamError, lambda: s.wait(s), "wait() on a stream")  # type: ignore[arg-type]
        event = s.record()
        m._expect_error(
            E.StreamError,
            lambda: event.elapsed_time("later"),  # type: ignore[arg-type]
            "elapsed_time() of a string",
        )

    def out_of_memory(m: ApiFuzzer, data: st.DataObject) -> None:
        size = m.dev.memory_stats().capacity + 1
        m._expect_error(
            E.OutOfMemoryError,
            lambda: hw.empty(size, dtype=hw.uint8, device=m.dev),
            f"{size} bytes on {m.dev}",
        )

    def bad_matmul(m: ApiFuzzer, data: st.DataObject) -> None:
        x = _any_tensor(m, data)
        zero = hw.zeros((), dtype=x.dtype, device=m.dev)
        m._expect_error(E.ShapeError, lambda: hw.matmul(zero, x), "matmul of a 0-d tensor")

    return {
        "foreign_operand": foreign_operand,
        "foreign_stream": foreign_stream,
        "host_operand": host_operand,
        "bad_dtype": bad_dtype,
        "bad_shape": bad_shape,
        "scalar_range": scalar_range,
        "bad_index": bad_index,
        "host_assign": host_assign,
        "bad_device": bad_device,
        "bad_event": bad_event,
        "bad_matmul": bad_matmul,
        "out_of_memory": out_of_memory,
    }


BAD_INPUTS = _bad_cases()


def peers_of(device: hw.Device) -> list[hw.Device]:
    """The other devices a program on ``device`` copies to: a second device of its backend
    (a peer copy) and the first device of the other backend (through the host)."""
    out = []
    for backend in ("cpu", "maia", "tpu"):
        try:
            devices = hw.devices(backend)
        except errors.HwAbstractError:
            continue
        out += [d for d in devices[:2] if d is not device][: 1 if backend != device.backend else 2]
    return out


# -- the tests -----------------------------------------------------------------------------------


def _maia_missing() -> str | None:
    if importlib.util.find_spec("hwabstract_maia") is None:
        return "the hwabstract-maia plugin is not installed (tox -e maia installs it)"
    return None


def _tpu_missing() -> str | None:
    for module in ("jax", "hwabstract_tpu"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (tox -e tpu installs jax and the tpu plugin)"
    return None


def _missing(device_name: str) -> str | None:
    """Why the device's plugin cannot run here, or None."""
    if device_name.startswith("maia"):
        return _maia_missing()
    if device_name.startswith("tpu"):
        return _tpu_missing()
    return None


def _sources() -> list[PluginSource]:
    # (``hwabstract.backends`` is the function listing backends: import the module by name)
    cpu = importlib.import_module("hwabstract.backends.cpu")
    sources = [PluginSource("cpu", lambda: cpu, "hwabstract", hw.__version__)]
    if _maia_missing() is None:
        maia = importlib.import_module("hwabstract_maia.plugin")
        version = importlib.metadata.version("hwabstract-maia")
        sources.append(PluginSource("maia", lambda: maia, "hwabstract-maia", version))
    if _tpu_missing() is None:
        tpu = importlib.import_module("hwabstract_tpu.plugin")
        version = importlib.metadata.version("hwabstract-tpu")
        sources.append(PluginSource("tpu", lambda: tpu, "hwabstract-tpu", version))
    return sources


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """A registry of cpu (two devices, for peer copies), and maia and the tpu stand-in where
    installed."""
    for var in ("HWABSTRACT_DEVICE", "HWABSTRACT_PLUGINS", "HWABSTRACT_DISABLE_PLUGINS",
                "HWABSTRACT_TPU_MEMORY", "HWABSTRACT_TPU_STANDIN_MODEL"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HWABSTRACT_CPU_DEVICES", "2")
    monkeypatch.setenv("HWABSTRACT_TPU_STANDIN", "cpu")
    monkeypatch.setenv("HWABSTRACT_TPU_STANDIN_DEVICES", "2")
    reg = Registry(sources=_sources())
    reg.backends()  # discover while the environment is set
    old = reset_registry(reg)
    yield reg
    reset_registry(old)


def summary(stats: Counter[str]) -> str:
    """The run's figures: programs, steps, SDK operations by kind, the errors raised."""
    kinds = {k: v for k, v in stats.items() if k not in ("programs", "steps") and k[0] != " "}
    raised = ", ".join(f"{k.strip()} {v}" for k, v in sorted(stats.items()) if k[0] == " ")
    return (
        f"{stats['programs']} programs, {stats['steps']} steps, "
        f"{sum(kinds.values())} SDK operations ("
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        + f"); bad inputs raised: {raised or 'none'}"
    )


def _settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


@pytest.mark.parametrize("device_name", ["cpu:0", "maia:0", "tpu:0"])
def test_fuzz_public_api(device_name: str, registry: Registry) -> None:
    """Random programs over tensors, streams and kernels: values, ordering, memory and
    errors as the module docstring says."""
    if device_name != "cpu:0":
        missing = _missing(device_name)
        if missing:
            pytest.skip(missing)
        backend = device_name.split(":")[0]
        status = next((b for b in registry.backends() if b.name == backend), None)
        if status is None or status.status != "ok":
            pytest.skip(f"the {backend} backend is not available: {status and status.reason}")
    machine = type(
        f"ApiFuzzer_{device_name.replace(':', '_')}",
        (ApiFuzzer,),
        {"device_name": device_name, "stats": Counter(), "failures": []},
    )
    if SEED is not None:
        value = random.randrange(2**32) if SEED == "random" else int(SEED)
        print(f"\nfuzz {device_name}: HWABSTRACT_FUZZ_SEED={value}")
        machine = hypothesis_seed(value)(machine)
    # Everything alive now lives through the run: keep it out of the collections each
    # program makes (a full collection of the whole process costs ~50 ms; see teardown).
    gc.collect()
    gc.freeze()
    try:
        run_state_machine_as_test(machine, settings=_settings())
    except Flaky as exc:
        # A failure that did not happen again when Hypothesis replayed the program (a race
        # between streams, say): report it as it happened.
        raise AssertionError(
            "a failure that did not reproduce on replay -- "
            + (machine.failures[0] if machine.failures else "(not recorded)")
        ) from exc
    finally:
        gc.unfreeze()
        print(f"\nfuzz {device_name}: {summary(machine.stats)}")


# -- what the long runs found in the fuzzer itself ----------------------------------------------
# (The SDK defect they found -- the conformance tolerance of ``var`` and ``std`` -- has its
# regression tests in tests/conformance/test_reference.py.)


def _machine(device_name: str) -> ApiFuzzer:
    """A machine outside Hypothesis, whose helpers a test calls by hand."""
    if device_name.startswith("maia") and _maia_missing():
        pytest.skip(_maia_missing())
    cls = type("ApiFuzzerByHand", (ApiFuzzer,), {"device_name": device_name, "stats": Counter()})
    return cls()


@pytest.mark.parametrize("device_name", ["cpu:0", "maia:0"])
def test_the_machine_keeps_the_devices_sign_of_zero(device_name: str, registry: Registry) -> None:
    """``clip(0.0, min=-0.0)`` is -0.0 in NumPy and +0.0 on maia, and the Array API leaves
    the choice open (the order of signed zeros in ``maximum``); a later ``reciprocal`` made
    it inf against the mirror's -inf. The machine now keeps the device's zero."""
    m = _machine(device_name)
    s = m.dev.default_stream
    t = hw.zeros((2, 3), device=m.dev)
    e = m._fresh(t, np.zeros((2, 3), np.float32), s, "zeros")
    assert m._kernel("clip", [e, -0.0, None], lambda: hw.clip(t, -0.0, None, out=t), s, out=e)
    assert np.array_equal(np.signbit(e.mirror), np.signbit(t.numpy()))
    assert m._kernel("reciprocal", [e], lambda: hw.reciprocal(t, out=t), s, out=e)
    m._check_all()
    assert np.isinf(e.mirror).all()
    m.entries.clear()


def test_a_copy_of_a_transposed_tensor_has_a_c_order_mirror(registry: Registry) -> None:
    """A transposed tensor copied to another device is C-contiguous there, and the SDK
    reshapes it as a view; its mirror used to keep the transposed layout (``np.array``
    keeps the layout it is given), which NumPy cannot reshape without a copy."""
    m = _machine("cpu:0")
    s = m.dev.default_stream
    x = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3), device=m.dev)
    e = m._fresh(x, np.arange(6, dtype=np.float32).reshape(2, 3), s, "x")
    moved = x.mT.to(m.peers[0])
    copy = m._fresh(moved, np.swapaxes(e.mirror, -1, -2), moved.device.default_stream, "moved")
    assert moved.is_contiguous and moved.strides == (2, 1)
    assert copy.mirror.flags.c_contiguous
    flat = hw.reshape(moved, (6,), copy=False)
    view = np.reshape(copy.mirror, (6,), copy=False)
    flat[1] = 42.0  # (a write through the SDK's view lands where NumPy's view says)
    view[1] = 42.0
    np.testing.assert_array_equal(moved.numpy(), copy.mirror)
    assert moved.numpy()[0, 1] == 42.0
    # a view of a broadcast view is never written through, whatever its maker said
    wide = Entry(hw.broadcast_to(x, (2, 2, 3)), np.broadcast_to(e.mirror, (2, 2, 3)), e.buf, "b")
    assert not wide.writable
    m.entries.clear()
