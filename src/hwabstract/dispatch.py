"""Kernel dispatch: the one place where a call is validated and turned into a backend launch.

For every call: find the device all tensor operands share, resolve the stream, apply the
spec's dtype rule, refuse what the device does not declare (before the backend is called),
turn Python scalars into 0-d tensors, apply the shape rule, cast inputs to the compute dtype,
allocate (or check) the outputs, and queue the launch. The backend sees only normalized
:class:`~hwabstract.backend.Operand` objects.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import dtypes as dt
from ._compiled import FASTPATH
from .backend import BoundLaunch, Operand
from .dtypes import DType
from .errors import DeviceError, DTypeError, ShapeError, StreamError, UnsupportedError
from .kernels import KernelSpec, get_spec
from .kernels.spec import _SPECS
from .stream import Stream, _stacks, current_stream
from .tensor import Storage, Tensor, contiguous_strides

if TYPE_CHECKING:
    from .device import Device

__all__ = ["allocate", "launch", "resolve_stream"]

_SCALARS = (bool, int, float, complex, np.generic)


def resolve_stream(device: Device, stream: Stream | None) -> Stream:
    """``stream`` if given (checked to belong to ``device``), else the current stream."""
    if stream is None:
        return current_stream(device)
    if not isinstance(stream, Stream):
        raise StreamError(f"stream= takes a hwabstract Stream, got {type(stream).__name__}")
    if stream.device is not device:
        raise StreamError(
            f"the stream belongs to {stream.device.name} but the operands are on "
            f"{device.name}; use a stream of {device.name} or move the tensors with .to()"
        )
    return stream


def check_dtype_supported(device: Device, dtype: DType) -> None:
    if not device.capabilities.supports_dtype(dtype):
        supported = ", ".join(sorted(d.name for d in device.capabilities.dtypes))
        raise UnsupportedError(
            f"dtype:{dtype.name}",
            f"{device.name} does not support dtype {dtype}; it supports {supported}. "
            "Cast to a supported dtype first.",
        )


def allocate(device: Device, shape: tuple[int, ...], dtype: DType) -> Tensor:
    """A new, uninitialized, contiguous tensor."""
    check_dtype_supported(device, dtype)
    limits = device.capabilities.limits
    if len(shape) > limits.max_dims:
        raise ShapeError(
            f"{device.name} supports at most {limits.max_dims} dimensions, asked for {len(shape)}"
        )
    if any(d < 0 for d in shape):
        raise ShapeError(f"shape {shape} has a negative dimension")
    return Tensor._wrap(Storage(device, math.prod(shape) * dtype.itemsize), dtype, shape)


#: Per stream, the 0-d tensors holding recently used Python scalars. The stream holds its own
#: cache (``Stream._scalars``, where the compiled launch looks it up); this table, keyed
#: weakly by the stream, lists every stream's, for :func:`clear_scalar_caches`. A stream the
#: program has dropped takes its cached scalars with it.
_SCALAR_CACHE: weakref.WeakKeyDictionary[Stream, OrderedDict[tuple[Any, ...], Tensor]] = (
    weakref.WeakKeyDictionary()
)
_SCALAR_CACHE_SIZE = 256  # per stream


def scalar_key(value: Any, dtype: DType) -> tuple[Any, ...]:
    """The cache key of a Python scalar (after ``.item()``): the dtype, the type (so that
    ``1``, ``True`` and ``1.0`` differ) and the value itself where equal values are the same
    value -- an int, a bool, a float other than a zero or a NaN -- else its repr, which tells
    them apart (``0.0 == -0.0``; a NaN equals nothing; a float's repr round-trips). The
    compiled launch builds the same key; the repr is the cost it avoids for the usual
    scalars (3 µs of cold cache right after a wait, for a float)."""
    kind = type(value)
    if kind is int or kind is bool or (kind is float and value == value and value != 0.0):
        return (dtype, kind, value)
    return (dtype, kind, repr(value))


def scalar_tensor(device: Device, value: Any, dtype: DType, stream: Stream) -> Tensor:
    """A 0-d tensor holding ``value``, cached per stream (so its upload is ordered before
    every use on that stream). The stream also remembers the last one asked for, by the
    value object itself (``Stream._last_scalar``): the same object in the same dtype again
    -- a constant in a loop -- is found without a key or the LRU's bookkeeping."""
    last = stream._last_scalar
    if last is not None and last[0] is dtype and last[1] is value:
        return last[2]
    original = value
    if isinstance(value, np.generic):
        value = value.item()
    dt.check_scalar_fits(value, dtype)
    key = scalar_key(value, dtype)
    cache = stream._scalars
    if cache is None:
        cache = stream._scalars = _SCALAR_CACHE[stream] = OrderedDict()
    cached = cache.get(key)
    if cached is not None:
        cache.move_to_end(key)
        stream._last_scalar = (dtype, original, cached)
        return cached
    host = _scalar_host(value, dtype)
    tensor = allocate(device, (), dtype)
    device._impl.copy_from_host(stream.handle, tensor._operand(), host)
    # The tensor's last_stream stays None: it is only ever used on `stream`, after its upload
    # there, and a reference to the stream from the cache would keep the stream (and its
    # worker) alive for as long as the cache lives.
    cache[key] = tensor
    if len(cache) > _SCALAR_CACHE_SIZE:
        cache.popitem(last=False)
    stream._last_scalar = (dtype, original, tensor)
    return tensor


def clear_scalar_caches(stream: Stream | None = None) -> None:
    """Drop the cached scalar tensors of ``stream`` (of every stream if None): what tests
    and conformance do to see memory come back to its baseline."""
    streams = [stream] if stream is not None else list(_SCALAR_CACHE)
    for s in streams:
        s._last_scalar = None
        cache = _SCALAR_CACHE.get(s)
        if cache is not None:
            cache.clear()


def _scalar_host(value: Any, dtype: DType) -> np.ndarray:
    """``value`` as a 0-d host array of ``dtype``. A float scalar beyond the dtype's range
    becomes +-inf (or NaN for a float8 without infinities), as IEEE conversion does, without
    NumPy's overflow warning."""
    if dtype.kind in "fc" and isinstance(value, int) and not isinstance(value, bool):
        # Python ints beyond int64 would become object arrays, which ml_dtypes cannot convert
        try:
            value = float(value)
        except OverflowError:
            value = math.copysign(math.inf, value)
    with np.errstate(over="ignore"):
        return np.asarray(value).astype(dtype.numpy_dtype)


def common_device(operands: Sequence[Any], out: Any, what: str) -> Device:
    device: Device | None = None
    for op in (*operands, out):
        if isinstance(op, Tensor):
            if device is None:
                device = op.device
            elif op.device is not device:
                raise DeviceError(
                    f"{what}() got tensors on {device.name} and {op.device.name}; move them "
                    f"to one device first, e.g. x.to({device.name!r})"
                )
        elif op is None or isinstance(op, _SCALARS):
            continue
        elif isinstance(op, np.ndarray):
            raise DeviceError(
                f"{what}() got a NumPy array, which lives on the host; convert it with "
                "hw.asarray(array, device=...) first"
            )
        else:
            raise DTypeError(
                f"{what}() takes hwabstract Tensors or Python scalars, got {type(op).__name__}"
            )
    if device is None:
        raise DeviceError(f"{what}() needs at least one Tensor operand to know the device")
    return device


def _aliases_unsafely(out: Tensor, inputs: Sequence[Tensor], spec: KernelSpec,
                      targets: Sequence[tuple[int, ...] | None]) -> bool:  # fmt: skip
    for t, target in zip(inputs, targets):
        if t._storage is not out._storage:
            continue
        if spec.category != "elementwise":
            return True
        a, b = t._operand(target), out._operand()
        if (a.offset, a.strides) != (b.offset, b.strides):
            return True
    return False


class _Plan(NamedTuple):
    """Everything about a call that depends only on its signature (kernel, device, operand
    dtypes and shapes, scalar types, attributes): validated once, then reused."""

    compute: DType
    out_dtype: DType
    scalar_dtypes: tuple[DType | None, ...]  #: per operand: the dtype a scalar becomes
    cast: tuple[bool, ...]  #: per present operand: cast to ``compute`` before the launch
    targets: tuple[tuple[int, ...] | None, ...]
    result_shape: tuple[int, ...]
    result_strides: tuple[int, ...]  #: contiguous strides of a newly allocated result
    result_size: int
    result_nbytes: int  #: bytes of a newly allocated result
    attrs: Mapping[str, Any]
    has_empty: bool  #: some input is empty (its operand needs normalizing)
    any_cast: bool  #: some entry of ``cast`` is true
    #: every output's (shape, dtype), the first one included (kernels with several outputs)
    outputs: tuple[tuple[tuple[int, ...], DType], ...]
    #: the backend's launch bound to this signature's layouts (``Backend.bind_launch``), or
    #: None; ``bind_asked`` once the backend was asked for it
    bound: BoundLaunch | None = None
    bind_asked: bool = False


#: Validated plans are cached per device (``Device._plans``, keyed by kernel, signature and
#: attributes), so that a device -- and its registry and backend -- is not kept alive by the
#: cache after the program has dropped it; at most this many per device.
_PLANS_MAX = 4096


def _make_plan(
    spec: KernelSpec, device: Device, operands: Sequence[Any], given: Mapping[str, Any] | None
) -> _Plan:
    name = spec.name
    attrs = {**spec.attributes, **(given or {})}
    compute, out_dtypes = spec.dtype_rule(operands, attrs)
    caps = device.capabilities
    if not spec.composite and not caps.supports_kernel(name, compute):
        raise UnsupportedError(
            f"kernel:{name}[{compute.name}]",
            f"{device.name} does not implement {name}() for {compute}"
            + (
                f"; it does for: {', '.join(sorted(d.name for d in caps.kernels[name]))}. "
                "Cast the inputs, or use a device that declares it."
                if caps.kernels.get(name)
                else "; choose another device for this operation."
            ),
        )
    for odt in out_dtypes:
        check_dtype_supported(device, odt)
    if "dtype" in spec.attributes:
        attrs["dtype"] = out_dtypes[0]
    scalar_dtypes: list[DType | None] = []
    shapes: list[tuple[int, ...]] = []
    cast_flags: list[bool] = []
    for i, (input_name, op) in enumerate(zip(spec.inputs, operands)):
        optional = input_name.endswith("?")
        if optional:
            attrs[f"has_{input_name[:-1]}"] = op is not None
        if op is None:
            if not optional:
                raise DTypeError(f"{name}() argument {input_name!r} must not be None")
            scalar_dtypes.append(None)
            continue
        promoted = spec.is_promoted(i)
        if isinstance(op, Tensor):
            scalar_dtypes.append(None)
            shapes.append(op.shape)
            cast_flags.append(promoted and op.dtype is not compute)
        else:
            scalar_dtypes.append(compute if promoted else dt.result_type(op))
            shapes.append(())
            cast_flags.append(False)
    targets, out_shapes, norm_attrs = spec.shape_rule(shapes, attrs)
    targets = tuple(targets)
    limits = caps.limits
    if len(out_shapes[0]) > limits.max_dims:
        raise ShapeError(
            f"{device.name} supports at most {limits.max_dims} dimensions; {name}() would "
            f"produce {len(out_shapes[0])}"
        )
    has_empty = any(0 in (t if t is not None else s) for t, s in zip(targets, shapes))
    result_shape = tuple(out_shapes[0])
    result_size = math.prod(result_shape)
    return _Plan(
        compute, out_dtypes[0], tuple(scalar_dtypes), tuple(cast_flags), targets,
        result_shape, contiguous_strides(result_shape), result_size,
        result_size * out_dtypes[0].itemsize, norm_attrs, has_empty, any(cast_flags),
        tuple((tuple(shape), odt) for shape, odt in zip(out_shapes, out_dtypes)),
    )  # fmt: skip


def _launch_py(
    spec: KernelSpec | str,
    operands: Sequence[Any],
    attrs: Mapping[str, Any] | None = None,
    *,
    out: Tensor | None = None,
    stream: Stream | None = None,
) -> Tensor:
    """Validate a call of ``spec`` and queue it. Returns the output tensor (or ``out``).

    Validation (dtype and shape rules, the capability check) runs once per call signature;
    later calls with the same signature reuse the cached :class:`_Plan`.
    """
    if isinstance(spec, str):
        spec = get_spec(spec)
    # One pass over the operands builds the call's signature and finds the device; anything
    # unusual (no tensor, several devices, a foreign object) goes to common_device, which
    # explains what is wrong.
    device: Any = None
    signature: list[Any] = []
    usual = True
    for op in operands:
        if isinstance(op, Tensor):
            op_device = op._storage.device
            if device is None:
                device = op_device
            elif op_device is not device:
                usual = False
            # strides and offset too: a plan's bound launch is specialized to the layouts
            signature.append((op._dtype, op._shape, op._strides, op._offset))
        else:
            if not (op is None or isinstance(op, _SCALARS)):
                usual = False
            signature.append(type(op))
    if out is not None and (not isinstance(out, Tensor) or out._storage.device is not device):
        usual = False
    if not usual or device is None:
        if out is not None and not isinstance(out, Tensor):
            raise DTypeError(
                f"{spec.name}(out=...) takes a hwabstract Tensor, got {type(out).__name__}"
            )
        device = common_device(operands, out, spec.name)
    if stream is None:
        stack = _stacks().get(device)
        stream = stack[-1] if stack else (device._default_stream or device.default_stream)
    else:
        stream = resolve_stream(device, stream)

    key: tuple[Any, ...] | None = (spec, tuple(signature), tuple(attrs.items()) if attrs else ())
    plans: dict[tuple[Any, ...], _Plan] = device._plans
    plan: _Plan | None
    try:
        plan = plans.get(key)  # type: ignore[arg-type]
    except TypeError:  # an unhashable attribute (e.g. a list axis): validate every time
        key, plan = None, None
    if plan is None:
        plan = _make_plan(spec, device, operands, attrs)
        if key is not None:
            if len(plans) >= _PLANS_MAX:
                plans.clear()
            plans[key] = plan

    # operands -> tensors (scalars become cached 0-d tensors in the dtype they are used in)
    tensors: list[Tensor] = []
    buffers: list[Any] = []
    for op, scalar_dtype in zip(operands, plan.scalar_dtypes):
        if op is None:
            continue
        if scalar_dtype is not None:
            op = scalar_tensor(device, op, scalar_dtype, stream)
            storage = op._storage
        else:
            storage = op._storage
            writer = storage.last_stream
            if writer is not None and writer is not stream:
                storage.order_before(stream)
        tensors.append(op)
        buffers.append(storage.buffer)

    bound = plan.bound
    if bound is None or out is not None:
        return _launch_unbound(spec, device, stream, plan, key, tensors, out)
    # The fast path: the backend's launch bound to this signature's layouts takes the
    # buffers alone (no Operand per call, and nothing re-derived in the backend). A bound
    # plan neither casts nor has empty inputs (see _launch_unbound).
    if None in buffers:
        for t in tensors:
            t._operand()  # raises for the released one, with _operand's message
    out_dtype = plan.out_dtype
    storage = Storage(device, plan.result_nbytes)
    result = Tensor._wrap(storage, out_dtype, plan.result_shape, plan.result_strides)
    bound(stream._handle, buffers, (storage.buffer,))
    stream._writes += 1  # (Storage.mark_written, inlined on this hot path)
    storage.last_stream = stream
    storage.written = stream._writes
    storage.synced = ()
    return result


def _launch_unbound(spec: KernelSpec, device: Device, stream: Stream, plan: _Plan,
                    key: tuple[Any, ...] | None, tensors: list[Tensor],
                    out: Tensor | None) -> Tensor:  # fmt: skip
    """:func:`launch` through ``Backend.launch``, with Operands: the first launch of a
    signature (which then asks the backend for a bound launch), launches into ``out=``,
    and every launch of a backend without bound launches."""
    if plan.any_cast:
        for i, needs_cast in enumerate(plan.cast):
            if needs_cast:
                tensors[i] = cast(tensors[i], plan.compute, stream)
    inputs = [t._operand(target) for t, target in zip(tensors, plan.targets)]
    if plan.has_empty:
        inputs = [_normalized(op) for op in inputs]
    if out is not None:
        result_shape = plan.result_shape
        name = spec.name
        if out._shape != result_shape:
            raise ShapeError(
                f"{name}(out=...) needs shape {result_shape}, the given tensor has {out.shape}"
            )
        if out._dtype is not plan.out_dtype:
            raise DTypeError(
                f"{name}(out=...) needs dtype {plan.out_dtype}, the given tensor is {out.dtype}"
            )
        writer = out._storage.last_stream
        if writer is not None and writer is not stream:
            out._storage.order_before(stream)
        if _aliases_unsafely(out, tensors, spec, plan.targets):
            tmp = allocate(device, result_shape, plan.out_dtype)
            _queue(device, stream, name, inputs, tmp, plan.attrs, plan.result_size)
            copy_into(out, tmp, stream)
            return out
        result = out
    else:
        # shape and dtype were validated when the plan was made
        out_dtype = plan.out_dtype
        storage = Storage(device, plan.result_nbytes)
        result = Tensor._wrap(storage, out_dtype, plan.result_shape, plan.result_strides)
    if plan.result_size:
        outputs = [result._operand()]
        impl = device._impl
        impl.launch(stream.handle, spec.name, inputs, outputs, plan.attrs)
        if not plan.bind_asked and key is not None and out is None:
            # bound only after a launch the backend accepted, so that errors of a first
            # launch (tracing, compiling) come from launch(); never for a call that casts
            # or has an empty input (their operands are not the caller's tensors')
            bound = None
            if not (plan.any_cast or plan.has_empty):
                bound = impl.bind_launch(spec.name, inputs, outputs, plan.attrs)
            device._plans[key] = plan._replace(bound=bound, bind_asked=True)
    result._storage.mark_written(stream)
    return result


def launch_all(
    spec: KernelSpec | str,
    operands: Sequence[Any],
    attrs: Mapping[str, Any] | None = None,
    *,
    stream: Stream | None = None,
) -> tuple[Tensor, ...]:
    """Validate and queue a kernel with several outputs (``slogdet``, ``qr``, ``eigh``,
    ``svd``, ...); returns every output, in the spec's order. Like :func:`launch` without
    ``out=`` and without the plan cache (these kernels are not on a hot path)."""
    if isinstance(spec, str):
        spec = get_spec(spec)
    device = common_device(operands, None, spec.name)
    stream = resolve_stream(device, stream)
    plan = _make_plan(spec, device, operands, attrs)
    tensors: list[Tensor] = []
    present = [(op, d) for op, d in zip(operands, plan.scalar_dtypes) if op is not None]
    for (op, scalar_dtype), needs_cast in zip(present, plan.cast):
        if scalar_dtype is not None:
            op = scalar_tensor(device, op, scalar_dtype, stream)
        else:
            op._storage.order_before(stream)
            if needs_cast:
                op = cast(op, plan.compute, stream)
        tensors.append(op)
    inputs = [t._operand(target) for t, target in zip(tensors, plan.targets)]
    if plan.has_empty:
        inputs = [_normalized(op) for op in inputs]
    results = tuple(allocate(device, shape, odt) for shape, odt in plan.outputs)
    if any(r.size for r in results):
        device._impl.launch(
            stream.handle, spec.name, inputs, [r._operand() for r in results], plan.attrs
        )
    for r in results:
        r._storage.mark_written(stream)
    return results


def _normalized(op: Operand) -> Operand:
    """An empty operand with contiguous strides and offset 0. Views of empty tensors may
    carry offsets and strides that point past their (possibly zero-byte) buffer; no element
    is ever read through them, but a backend building a view from them may refuse them. A
    kernel can still receive an empty input with a non-empty output (matmul with K == 0)."""
    if 0 not in op.shape or (op.offset == 0 and op.strides == contiguous_strides(op.shape)):
        return op
    return op._replace(strides=contiguous_strides(op.shape), offset=0)


def _queue(device: Device, stream: Stream, name: str, inputs: list[Any], result: Tensor,
           attrs: Mapping[str, Any], size: int) -> None:  # fmt: skip
    if size:
        device._impl.launch(stream.handle, name, inputs, [result._operand()], attrs)
    result._storage.mark_written(stream)


def cast(t: Tensor, dtype: DType, stream: Stream) -> Tensor:
    """``t`` converted to ``dtype`` on ``stream`` (a new tensor)."""
    return launch("astype", [t], {"dtype": dtype}, stream=stream)


def copy_into(dst: Tensor, src: Tensor, stream: Stream) -> None:
    """Queue ``dst[...] = src`` (same device and dtype; ``src`` broadcasts to ``dst``)."""
    src._storage.order_before(stream)
    if dst.size:
        dst.device._impl.copy(stream.handle, dst._operand(), src._operand(dst.shape))
    dst._storage.mark_written(stream)


def _configure_compiled(fallback: Any = None) -> Any:
    """Configure ``hwabstract._fastpath`` (where built and not turned off) and return its
    launch, which hands every call it cannot take to ``fallback`` (:func:`_launch_py`; a
    test passes a wrapper to count them); else return :func:`_launch_py` itself. With the
    compiled launch, ``Storage.__del__`` is the compiled twin of ``Storage._release`` and
    ``Stream.synchronize`` that of :func:`hwabstract.stream.synchronize_py`."""
    if FASTPATH is None:
        return _launch_py
    from . import stream as _stream_module
    from .device import Device as _Device  # (device.py does not import this module)

    FASTPATH.configure(
        fallback=fallback or _launch_py,
        tensor_type=Tensor,
        storage_type=Storage,
        device_type=_Device,
        stream_type=_stream_module.Stream,
        scalar_tensor=scalar_tensor,
        scalar_types=_SCALARS,
        stream_tls=_stream_module._tls,
        stream_entered=_stream_module._entered,
        plan_fields=_Plan._fields,
        specs=_SPECS,
    )
    Storage.__del__ = FASTPATH.storage_finalizer()
    _stream_module.Stream.synchronize = FASTPATH.stream_synchronizer(  # type: ignore[method-assign]
        _stream_module.synchronize_py
    )
    return FASTPATH.launch


#: :func:`_launch_py`, or its compiled steady state, which hands it every call it cannot
#: take (``hwabstract._compiled.STATUS`` says which runs; docs/architecture.md). Type
#: checkers see :func:`_launch_py`, whose signature the compiled one takes.
if TYPE_CHECKING:
    launch = _launch_py
else:
    launch = _configure_compiled()
