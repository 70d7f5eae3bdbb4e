"""The kernel functions library authors call: ``hw.add``, ``hw.sum``, ``hw.matmul``, ...

Most are generated from their :class:`~hwabstract.kernels.KernelSpec` and go straight to
:func:`~hwabstract.dispatch.launch`. Every kernel function takes ``out=`` (an existing tensor
to write into, checked for shape, dtype and device) and ``stream=`` (default: the current
stream of the operands' device) and returns without waiting for the device.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

from . import dtypes as dt
from ._compiled import FASTPATH
from .backend import Feature
from .dispatch import allocate, copy_into, launch, resolve_stream, scalar_tensor
from .errors import DeviceError, DTypeError, ShapeError
from .kernels import KernelSpec, all_specs, get_spec
from .kernels.manipulation import (
    concat_shape,
    permute_shape,
    reshape_target,
    stack_shape,
)
from .kernels.spec import normalize_axes
from .stream import Stream
from .tensor import Tensor, contiguous_strides

__all__: list[str] = []  # filled below with every generated and hand-written function

_Fn = Callable[..., Tensor]


def _export(fn: _Fn) -> _Fn:
    __all__.append(fn.__name__)
    return fn


def _compiled(fn: _Fn, spec: KernelSpec, tensors: int) -> _Fn:
    """``fn`` as a compiled kernel function (``_fastpath.KernelFunction``: the same calls
    without a Python frame of its own; docs/architecture.md, "Kernel functions and
    Stream.synchronize are compiled too") where the compiled launch runs, else ``fn``.

    ``fn`` must be a one-line definition: its positional-only parameters (no defaults) are
    the operands, the first ``tensors`` of them required to be Tensors; every keyword-only
    parameter but ``out`` and ``stream`` is an attribute of ``spec``, which ``fn`` passes to
    launch() in a dict in the order of its parameters (None where it has none). The compiled
    function takes the calls that match that; every other goes to ``fn``."""
    if FASTPATH is None:
        return fn
    code = fn.__code__
    nin = code.co_posonlyargcount
    keywords = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    defaults = fn.__kwdefaults__ or {}
    if code.co_argcount != nin or fn.__defaults__ or set(keywords) - set(defaults):
        raise TypeError(f"{fn.__name__}: not a kernel function's signature")
    attributes = {k: defaults[k] for k in keywords if k not in ("out", "stream")}
    compiled = FASTPATH.KernelFunction(spec, fn, nin, attributes, tensors)
    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(compiled, attribute, getattr(fn, attribute))
    return compiled


def _kernel_function(name: str, tensors: int = 1) -> Callable[[_Fn], _Fn]:
    """Export a hand-written one-line kernel function, compiled (:func:`_compiled`)."""

    def export(fn: _Fn) -> _Fn:
        return _export(_compiled(fn, get_spec(name), tensors))

    return export


def _elementwise_fn(name: str, nin: int, doc: str) -> _Fn:
    spec = get_spec(name)
    if nin == 1:

        def fn1(x: Any, /, *, out: Tensor | None = None, stream: Stream | None = None) -> Tensor:
            return launch(spec, (x,), None, out=out, stream=stream)

        fn: _Fn = fn1
    else:

        def fn2(
            x1: Any, x2: Any, /, *, out: Tensor | None = None, stream: Stream | None = None
        ) -> Tensor:
            return launch(spec, (x1, x2), None, out=out, stream=stream)

        fn = fn2
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{doc}\n\nElementwise kernel ``{name}``; inputs broadcast and promote."
    fn.__module__ = "hwabstract"
    return _export(_compiled(fn, spec, tensors=0))


def _reduction_fn(name: str, doc: str) -> _Fn:
    spec = get_spec(name)
    extras = [k for k in spec.attributes if k not in ("axis", "keepdims")]

    def fn(
        x: Tensor,
        /,
        *,
        axis: int | Sequence[int] | None = None,
        keepdims: bool = False,
        out: Tensor | None = None,
        stream: Stream | None = None,
        **kwargs: Any,
    ) -> Tensor:
        if kwargs:
            unknown = set(kwargs).difference(extras)
            if unknown:
                raise TypeError(f"{name}() got unexpected keyword argument(s) {sorted(unknown)}")
        if not isinstance(x, Tensor):
            require_tensor(name, x)
        attrs = {"axis": axis, "keepdims": keepdims, **kwargs}
        return launch(spec, (x,), attrs, out=out, stream=stream)

    fn.__name__ = fn.__qualname__ = name
    extra_doc = f" Extra keyword arguments: {', '.join(extras)}." if extras else ""
    fn.__doc__ = (
        f"{doc}\n\nReduction kernel ``{name}`` over ``axis`` (all axes if None).{extra_doc}"
    )
    fn.__module__ = "hwabstract"
    return _export(_compiled(fn, spec, tensors=1))


def require_tensor(name: str, x: Any) -> Tensor:
    """``x`` itself if it is a Tensor; else :class:`DTypeError` naming the function."""
    if not isinstance(x, Tensor):
        raise DTypeError(f"{name}() needs a hwabstract Tensor, got {type(x).__name__}")
    return x


for _spec in all_specs():
    if _spec.category == "elementwise" and _spec.name not in ("where", "clip", "astype"):
        globals()[_spec.name] = _elementwise_fn(_spec.name, len(_spec.inputs), _spec.doc)
    elif _spec.category == "reduction":
        globals()[_spec.name] = _reduction_fn(_spec.name, _spec.doc)


@_export
def where(
    condition: Any, x1: Any, x2: Any, /, *, out: Tensor | None = None,
    stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """Elements of ``x1`` where ``condition`` is true, else of ``x2``."""
    return launch("where", (condition, x1, x2), None, out=out, stream=stream)


@_export
def clip(
    x: Tensor, /, min: Any = None, max: Any = None, *, out: Tensor | None = None,
    stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """Clamp ``x`` to ``[min, max]``; either bound may be None. Keeps ``x``'s dtype."""
    require_tensor("clip", x)
    return launch("clip", (x, min, max), None, out=out, stream=stream)


@_export
def astype(
    x: Tensor, dtype: Any, /, *, copy: bool = True, device: Any = None,
    out: Tensor | None = None, stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """``x`` converted to ``dtype`` (round to nearest even; float to int truncates toward zero;
    complex to real keeps the real part). With ``copy=False`` and nothing to convert,
    returns ``x`` itself."""
    require_tensor("astype", x)
    target = dt.dtype(dtype)
    if device is not None:
        x = to_device(x, device)
    if target is x.dtype and not copy and out is None:
        return x
    return launch("astype", (x,), {"dtype": target}, out=out, stream=stream)


@_export
def matmul(
    x1: Tensor, x2: Tensor, /, *, out: Tensor | None = None, stream: Stream | None = None
) -> Tensor:
    """Matrix product with broadcasting batch dimensions (the ``@`` operator).

    A 1-D first operand is treated as a row vector and a 1-D second operand as a column
    vector; the added dimension is removed from the result, as the Array API specifies.
    """
    require_tensor("matmul", x1)
    require_tensor("matmul", x2)
    if x1.ndim == 0 or x2.ndim == 0:
        raise ShapeError("matmul() does not take 0-d tensors; use multiply()")
    a = x1[None, :] if x1.ndim == 1 else x1
    b = x2[:, None] if x2.ndim == 1 else x2
    squeeze = (x1.ndim == 1, x2.ndim == 1)
    # NB: this module defines its own any/all/min/max/sum (the kernels): use builtins here
    if out is not None and builtins.any(squeeze):
        if not isinstance(out, Tensor):
            raise DTypeError(f"matmul(out=...) takes a hwabstract Tensor, got {type(out).__name__}")
        if squeeze[0] and squeeze[1]:
            if out.ndim != 0:
                raise ShapeError(
                    f"matmul(out=...) needs shape (), the given tensor has {out.shape}"
                )
            target = out[None, None]
        elif squeeze[0]:
            if out.ndim == 0:
                raise ShapeError("matmul(out=...) got a 0-d tensor for a non-scalar result")
            target = out[..., None, :]  # the removed row dimension sits before the last
        else:
            if out.ndim == 0:
                raise ShapeError("matmul(out=...) got a 0-d tensor for a non-scalar result")
            target = out[..., None]
        launch("matmul", (a, b), None, out=target, stream=stream)
        return out
    result = launch("matmul", (a, b), None, out=out, stream=stream)
    if squeeze[0]:
        result = result[..., 0, :]
    if squeeze[1]:
        result = result[..., 0]
    return result


@_kernel_function("softmax")
def softmax(x: Tensor, /, *, axis: int = -1, out: Tensor | None = None,
            stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Softmax along ``axis`` (numerically stable: the maximum is subtracted first)."""
    require_tensor("softmax", x)
    return launch("softmax", (x,), {"axis": axis}, out=out, stream=stream)


@_kernel_function("log_softmax")
def log_softmax(x: Tensor, /, *, axis: int = -1, out: Tensor | None = None,
                stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Log of softmax along ``axis``, computed stably."""
    require_tensor("log_softmax", x)
    return launch("log_softmax", (x,), {"axis": axis}, out=out, stream=stream)


@_export
def layer_norm(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, /, *,
    axis: int | Sequence[int] = -1, eps: float = 1e-5, out: Tensor | None = None,
    stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """Normalize over the trailing ``axis`` dimensions, then scale by ``weight`` and shift by
    ``bias`` (each of the normalized shape, or broadcastable to it)."""
    require_tensor("layer_norm", x)
    return launch("layer_norm", (x, weight, bias), {"axis": axis, "eps": eps},
                  out=out, stream=stream)  # fmt: skip


@_kernel_function("gelu")
def gelu(x: Tensor, /, *, approximate: str = "none", out: Tensor | None = None,
         stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Gaussian error linear unit: ``x * Phi(x)``; ``approximate='tanh'`` for the tanh form."""
    require_tensor("gelu", x)
    return launch("gelu", (x,), {"approximate": approximate}, out=out, stream=stream)


@_kernel_function("silu")
def silu(x: Tensor, /, *, out: Tensor | None = None, stream: Stream | None = None) -> Tensor:
    """``x * sigmoid(x)``."""
    require_tensor("silu", x)
    return launch("silu", (x,), None, out=out, stream=stream)


@_kernel_function("relu")
def relu(x: Tensor, /, *, out: Tensor | None = None, stream: Stream | None = None) -> Tensor:
    """``max(x, 0)``; NaN propagates."""
    require_tensor("relu", x)
    return launch("relu", (x,), None, out=out, stream=stream)


# -- sorting, searching, indexing, cumulative ------------------------------------------------


@_kernel_function("sort")
def sort(x: Tensor, /, *, axis: int = -1, descending: bool = False, stable: bool = True,
         out: Tensor | None = None, stream: Stream | None = None) -> Tensor:  # fmt: skip
    """``x`` sorted along ``axis`` (NaNs last; ``descending`` reverses the order exactly, so
    NaNs come first and, when ``stable``, equal elements keep their order)."""
    require_tensor("sort", x)
    attrs = {"axis": axis, "descending": descending, "stable": stable}
    return launch("sort", (x,), attrs, out=out, stream=stream)


@_kernel_function("argsort")
def argsort(x: Tensor, /, *, axis: int = -1, descending: bool = False, stable: bool = True,
            out: Tensor | None = None, stream: Stream | None = None) -> Tensor:  # fmt: skip
    """The int64 indices that sort ``x`` along ``axis`` (the order :func:`sort` uses)."""
    require_tensor("argsort", x)
    attrs = {"axis": axis, "descending": descending, "stable": stable}
    return launch("argsort", (x,), attrs, out=out, stream=stream)


@_export
def searchsorted(x1: Tensor, x2: Any, /, *, side: str = "left", sorter: Tensor | None = None,
                 out: Tensor | None = None, stream: Stream | None = None) -> Tensor:  # fmt: skip
    """For each element of ``x2``, the index in the sorted 1-D ``x1`` where inserting it
    keeps ``x1`` sorted (the first such index for ``side='left'``, the last for
    ``'right'``). With ``sorter`` (indices that sort ``x1``), ``x1`` need not be sorted."""
    require_tensor("searchsorted", x1)
    if sorter is not None:
        x1 = take(x1, sorter, axis=0, stream=stream)
    return launch("searchsorted", (x1, x2), {"side": side}, out=out, stream=stream)


@_kernel_function("take", tensors=2)
def take(x: Tensor, indices: Tensor, /, *, axis: int | None = None,
         out: Tensor | None = None, stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Elements of ``x`` at the 1-D integer ``indices`` along ``axis`` (``axis`` may be None
    only for 1-D ``x``). Negative indices count from the end; an index out of range is a
    :class:`~hwabstract.errors.KernelError` where the device checks (see docs/array-api.md)."""
    require_tensor("take", x)
    require_tensor("take", indices)
    return launch("take", (x, indices), {"axis": axis}, out=out, stream=stream)


@_kernel_function("take_along_axis", tensors=2)
def take_along_axis(x: Tensor, indices: Tensor, /, *, axis: int = -1,
                    out: Tensor | None = None, stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Elements of ``x`` chosen along ``axis`` by ``indices`` (of ``x``'s rank; the other
    dimensions broadcast), e.g. with the result of :func:`argsort`."""
    require_tensor("take_along_axis", x)
    require_tensor("take_along_axis", indices)
    return launch("take_along_axis", (x, indices), {"axis": axis}, out=out, stream=stream)


def _cumulative_fn(name: str) -> _Fn:
    spec = get_spec(name)

    def fn(x: Tensor, /, *, axis: int | None = None, dtype: Any = None,
           include_initial: bool = False, out: Tensor | None = None,
           stream: Stream | None = None) -> Tensor:  # fmt: skip
        require_tensor(name, x)
        if x.ndim == 0:
            raise ShapeError(f"{name}() needs a tensor of at least one dimension")
        attrs = {"axis": axis, "dtype": dtype, "include_initial": include_initial}
        return launch(spec, (x,), attrs, out=out, stream=stream)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (
        f"{spec.doc}\n\nAlong ``axis`` (may be None for 1-D ``x``); ``include_initial`` "
        "prepends the identity, making the result one longer along ``axis``."
    )
    fn.__module__ = "hwabstract"
    return _export(fn)


cumulative_sum = _cumulative_fn("cumulative_sum")
cumulative_prod = _cumulative_fn("cumulative_prod")


# -- manipulation (composite: views and copies) --------------------------------------------------


@_export
def permute_dims(x: Tensor, /, axes: Sequence[int], *, out: Tensor | None = None,
                 stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Reorder the dimensions of ``x`` (a view; with ``out=``, copied into ``out``)."""
    require_tensor("permute_dims", x)
    perm = permute_shape(x.shape, axes)
    view = x._view(tuple(x.shape[i] for i in perm), tuple(x.strides[i] for i in perm), x._offset)
    return _deliver("permute_dims", view, out, stream)


def _deliver(name: str, view: Tensor, out: Tensor | None, stream: Stream | None) -> Tensor:
    """``view`` itself, or with ``out=`` its elements copied into ``out`` (checked for shape,
    dtype and device like every kernel's ``out=``) on ``stream``."""
    if out is None:
        return view
    if not isinstance(out, Tensor):
        raise DTypeError(f"{name}(out=...) takes a hwabstract Tensor, got {type(out).__name__}")
    if out.device is not view.device:
        raise DeviceError(
            f"{name}(out=...) is on {out.device.name} but the input is on {view.device.name}"
        )
    if out.shape != view.shape:
        raise ShapeError(
            f"{name}(out=...) needs shape {view.shape}, the given tensor has {out.shape}"
        )
    if out.dtype is not view.dtype:
        raise DTypeError(
            f"{name}(out=...) needs dtype {view.dtype}, the given tensor is {out.dtype}"
        )
    assign(out, view, stream=stream)
    return out


@_export
def reshape(x: Tensor, /, shape: Sequence[int] | int, *, copy: bool | None = None,
            out: Tensor | None = None, stream: Stream | None = None) -> Tensor:  # fmt: skip
    """``x`` with a new shape. A view when ``x`` is contiguous (and ``copy`` is not True),
    otherwise a copy; ``copy=False`` makes a needed copy an error. With ``out=``, the
    reshaped elements are copied into ``out``."""
    require_tensor("reshape", x)
    new = reshape_target(x.shape, (shape,) if isinstance(shape, int) else shape)
    if out is not None:
        if not x.is_contiguous:
            x = reshape(x, x.shape, copy=True, stream=stream)
        return _deliver("reshape", x._view(new, contiguous_strides(new), x._offset), out, stream)
    if copy is not True and x.is_contiguous:
        return x._view(new, contiguous_strides(new), x._offset)
    if copy is False:
        raise ShapeError(
            f"reshape(copy=False) of a non-contiguous tensor (shape {x.shape}, strides "
            f"{x.strides}) needs a copy; pass copy=None to allow it"
        )
    dense = allocate(x.device, x.shape, x.dtype)
    copy_into(dense, x, resolve_stream(x.device, stream))
    return dense._view(new, contiguous_strides(new), 0)


@_export
def flip(x: Tensor, /, *, axis: int | Sequence[int] | None = None, out: Tensor | None = None,
         stream: Stream | None = None) -> Tensor:  # fmt: skip
    """Reverse the order of elements along ``axis`` (all axes if None); a view (with
    ``out=``, copied into ``out``)."""
    require_tensor("flip", x)
    axes = normalize_axes(axis, x.ndim)
    strides = list(x.strides)
    offset = x._offset
    for a in axes:
        if x.size:  # an empty view keeps its offset: there is no last element to start at
            offset += (x.shape[a] - 1) * strides[a]
        strides[a] = -strides[a]
    return _deliver("flip", x._view(x.shape, tuple(strides), offset), out, stream)


@_export
def broadcast_to(x: Tensor, /, shape: Sequence[int], *, out: Tensor | None = None,
                 stream: Stream | None = None) -> Tensor:  # fmt: skip
    """``x`` broadcast to ``shape`` (a view with zero strides; do not write into it). With
    ``out=``, the broadcast elements are copied into ``out``."""
    require_tensor("broadcast_to", x)
    spec = get_spec("broadcast_to")
    _, (target,), _ = spec.shape_rule([x.shape], {"shape": shape})
    op = x._operand(tuple(target))
    return _deliver("broadcast_to", x._view(op.shape, op.strides, op.offset), out, stream)


def _join_dtype(name: str, tensors: Sequence[Tensor]) -> dt.DType:
    if not tensors:
        raise ShapeError(f"{name}() needs at least one tensor")
    for t in tensors:
        require_tensor(name, t)
    return dt.result_type(*tensors)


@_export
def concat(
    arrays: Sequence[Tensor], /, *, axis: int | None = 0, out: Tensor | None = None,
    stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """Join tensors along an existing axis (``axis=None``: flatten each first)."""
    arrays = list(arrays)
    result_dtype = _join_dtype("concat", arrays)
    if axis is None:
        arrays = [reshape(t, (-1,), stream=stream) for t in arrays]
        axis = 0
    shape, ax = concat_shape([t.shape for t in arrays], axis)
    assert ax is not None
    return _join(
        "concat", arrays, result_dtype, shape, out, stream,
        lambda result, i, start: _slice_along(result, ax, start, start + arrays[i].shape[ax]),
        lambda i: arrays[i].shape[ax],
    )  # fmt: skip


@_export
def stack(
    arrays: Sequence[Tensor], /, *, axis: int = 0, out: Tensor | None = None,
    stream: Stream | None = None,
) -> Tensor:  # fmt: skip
    """Join tensors of one shape along a new axis."""
    arrays = list(arrays)
    result_dtype = _join_dtype("stack", arrays)
    shape, ax = stack_shape([t.shape for t in arrays], axis)
    return _join(
        "stack", arrays, result_dtype, shape, out, stream,
        lambda result, i, start: result[(slice(None),) * ax + (i,)],
        lambda i: 1,
    )  # fmt: skip


def _slice_along(t: Tensor, axis: int, start: int, stop: int) -> Tensor:
    return t[(slice(None),) * axis + (slice(start, stop),)]


def _join(name: str, arrays: list[Tensor], result_dtype: dt.DType, shape: tuple[int, ...],
          out: Tensor | None, stream: Stream | None, part: Callable[[Tensor, int, int], Tensor],
          extent: Callable[[int], int]) -> Tensor:  # fmt: skip
    from .dispatch import common_device

    device = common_device(arrays, out, name)
    s = resolve_stream(device, stream)
    if out is not None:
        if out.shape != shape or out.dtype is not result_dtype:
            raise ShapeError(
                f"{name}(out=...) needs shape {shape} and dtype {result_dtype}, got "
                f"{out.shape} and {out.dtype}"
            )
        result = out
    else:
        result = allocate(device, shape, result_dtype)
    start = 0
    for i, t in enumerate(arrays):
        assign(part(result, i, start), t, stream=s)
        start += extent(i)
    return result


# -- assignment and movement ---------------------------------------------------------------------


def assign(target: Tensor, value: Any, *, stream: Stream | None = None) -> None:
    """``target[...] = value``: a scalar, or a tensor on the same device broadcast to
    ``target``'s shape and converted to its dtype."""
    device = target.device
    s = resolve_stream(device, stream)
    if isinstance(value, Tensor):
        if value.device is not device:
            raise DeviceError(
                f"cannot assign a tensor on {value.device.name} into one on {device.name}; "
                f"move it first with value.to({device.name!r})"
            )
        if value._storage is target._storage:
            # overlapping source and destination: copy the source out first
            tmp = allocate(device, value.shape, value.dtype)
            copy_into(tmp, value, s)
            value = tmp
        if value.dtype is target.dtype:
            copy_into(target, value, s)
        else:
            launch("astype", (broadcast_to(value, target.shape),), {"dtype": target.dtype},
                   out=target, stream=s)  # fmt: skip
        return
    if isinstance(value, (bool, int, float, complex)) or hasattr(value, "dtype"):
        if hasattr(value, "shape") and getattr(value, "shape", ()) != ():
            raise DeviceError(
                "cannot assign a host array into a tensor; convert it with "
                "hw.asarray(array, device=...) first"
            )
        copy_into(target, scalar_tensor(device, value, target.dtype, s), s)
        return
    raise DTypeError(f"cannot assign a {type(value).__name__} into a tensor")


@_export
def to_device(x: Tensor, device: Any, /, *, stream: Stream | None = None) -> Tensor:
    """``x`` on ``device``: itself if already there; a peer copy between devices of one
    backend that declares peer copies; otherwise staged through host memory."""
    from .registry import get_registry

    require_tensor("to_device", x)
    target = get_registry().device(device)
    if target is x.device:
        return x
    src_stream = x._storage.last_stream or x.device.default_stream
    dst_stream = resolve_stream(target, stream)
    result = allocate(target, x.shape, x.dtype)
    if (
        target.backend == x.device.backend
        and target.capabilities.has_feature(Feature.PEER_COPY)
        and x.device.capabilities.has_feature(Feature.PEER_COPY)
    ):
        dst_stream.wait(src_stream.record(timing=False))
        if result.size:
            target._impl.copy_peer(dst_stream.handle, result._operand(), x._operand())
        result._storage.mark_written(dst_stream)
        return result
    host = x.numpy()
    if result.size:
        target._impl.copy_from_host(dst_stream.handle, result._operand(), host)
    result._storage.mark_written(dst_stream)
    return result
