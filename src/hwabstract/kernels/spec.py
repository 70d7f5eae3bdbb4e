"""KernelSpec: the declarative description of one standard kernel, and the spec registry.

A spec says what a kernel computes, independent of any backend:

* ``inputs`` -- operand names; a trailing ``?`` marks an optional operand (absent operands
  are not passed to the backend; ``attributes["has_<name>"]`` says whether each was given);
* ``attributes`` -- names and defaults of the non-tensor parameters;
* ``dtypes`` -- the compute dtypes the kernel is defined for;
* the **dtype rule** -- from the operands to ``(compute dtype, output dtypes)``;
* the **shape rule** -- from input shapes and attributes to the shapes inputs are broadcast
  to, the output shapes, and the normalized attributes the backend receives;
* ``reference`` -- the NumPy reference: takes NumPy arrays (already in the compute dtype and
  broadcast as the shape rule says) and the normalized attributes, returns the output(s) in
  the output dtype(s). Every backend is checked against it.

``composite`` specs (views and copies such as ``reshape`` or ``concat``) are carried out by
the core from other operations; backends never receive them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from ..dtypes import DType, result_type
from ..errors import DTypeError, KernelError, ShapeError

__all__ = [
    "KernelSpec",
    "all_specs",
    "broadcast_shapes",
    "get_spec",
    "normalize_axes",
    "register",
]

Shape = tuple[int, ...]
DTypeRule = Callable[[Sequence[Any], Mapping[str, Any]], tuple[DType, tuple[DType, ...]]]
ShapeRule = Callable[
    [Sequence[Shape], Mapping[str, Any]],
    tuple[Sequence[Shape | None], Sequence[Shape], Mapping[str, Any]],
]


@attrs.frozen(eq=False)
class KernelSpec:
    """The declarative description of a kernel. See the module docstring."""

    name: str
    category: str
    inputs: tuple[str, ...]
    dtypes: frozenset[DType]
    dtype_rule: DTypeRule
    shape_rule: ShapeRule
    reference: Callable[..., Any]
    attributes: Mapping[str, Any] = attrs.field(factory=dict)
    #: which inputs take part in type promotion and are cast to the compute dtype
    promoted: tuple[bool, ...] | None = None
    #: a NumPy ufunc computing exactly the reference in the compute dtype (a fast path)
    ufunc: np.ufunc | None = None
    composite: bool = False
    doc: str = ""

    @property
    def required_inputs(self) -> tuple[str, ...]:
        return tuple(n for n in self.inputs if not n.endswith("?"))

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n.rstrip("?") for n in self.inputs)

    def is_promoted(self, i: int) -> bool:
        return True if self.promoted is None else self.promoted[i]

    def __repr__(self) -> str:
        return f"<KernelSpec {self.name} ({self.category})>"


_SPECS: dict[str, KernelSpec] = {}


def register(spec: KernelSpec) -> KernelSpec:
    """Add a spec to the registry (names are unique)."""
    if spec.name in _SPECS:
        raise KernelError(f"a kernel spec named {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def get_spec(name: str) -> KernelSpec:
    """The spec called ``name``."""
    _ensure_loaded()
    try:
        return _SPECS[name]
    except KeyError:
        raise KernelError(
            f"no kernel named {name!r}; see hwabstract.kernels.all_specs() for the set"
        ) from None


def all_specs() -> tuple[KernelSpec, ...]:
    """Every registered spec, in registration order."""
    _ensure_loaded()
    return tuple(_SPECS.values())


_loaded = False
#: held while the kernel modules register their specs: a thread that finds the set not
#: loaded waits for the one loading it instead of seeing it half-registered (re-entrant:
#: a module being imported may itself look up a spec)
_loading = threading.RLock()


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    with _loading:
        if _loaded:
            return
        from . import (  # noqa: F401
            cumulative,
            elementwise,
            fft,
            indexing,
            linalg,
            manipulation,
            nn,
            reduction,
            sorting,
        )

        _loaded = True


# --- shared rules -----------------------------------------------------------------------------


def broadcast_shapes(*shapes: Shape) -> Shape:
    """The Array API broadcast of ``shapes``; :class:`ShapeError` if they do not broadcast."""
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for k in range(-ndim, 0):
        size = 1
        for s in shapes:
            if len(s) >= -k:
                d = s[k]
                if d != 1:
                    if size not in (1, d):
                        raise ShapeError(
                            f"shapes {' and '.join(map(str, shapes))} do not broadcast: "
                            f"dimension {ndim + k} is {size} in one and {d} in another"
                        )
                    size = d
        result.append(size)
    return tuple(result)


def normalize_axes(axis: Any, ndim: int, *, name: str = "axis") -> tuple[int, ...]:
    """``None`` -> all axes; an int or a sequence of ints -> sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        items: tuple[Any, ...] = (axis,)
    else:
        try:
            items = tuple(axis)
        except TypeError:
            raise ShapeError(f"{name} must be an int or a tuple of ints, got {axis!r}") from None
    out = []
    for a in items:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise ShapeError(f"{name} must be an int or a tuple of ints, got {a!r}")
        if not -ndim <= a < ndim:
            raise ShapeError(
                f"{name} {a} is out of range for a tensor with {ndim} dimension(s); "
                f"use -{ndim} to {ndim - 1}"
                if ndim
                else f"{name} {a} is invalid for a 0-d tensor"
            )
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{name} {axis!r} names the same dimension twice")
    return tuple(sorted(out))


def check_kinds(spec_name: str, dt: DType, allowed: frozenset[DType]) -> None:
    if dt not in allowed:
        kinds = sorted({_KIND_NAMES[d.kind] for d in allowed})
        raise DTypeError(
            f"{spec_name}() is not defined for {dt} inputs; it takes {' or '.join(kinds)} "
            f"dtypes. Convert first, e.g. x.astype(...)."
        )


_KIND_NAMES = {
    "b": "bool",
    "i": "signed integer",
    "u": "unsigned integer",
    "f": "real floating",
    "c": "complex floating",
}


def promote(operands: Sequence[Any], spec: KernelSpec) -> DType:
    """Promote the operands that take part in promotion (tensors and weak scalars)."""
    parts = [op for i, op in enumerate(operands) if op is not None and spec.is_promoted(i)]
    return result_type(*parts)
