"""The standard kernel set: one :class:`KernelSpec` per kernel, each with its NumPy
reference. Backends implement specs; the conformance suite checks every implementation
against the reference, so a kernel is covered the day its spec lands.
"""

from .spec import KernelSpec, all_specs, broadcast_shapes, get_spec, normalize_axes, register

__all__ = ["KernelSpec", "all_specs", "broadcast_shapes", "get_spec", "normalize_axes", "register"]
