"""The pluggy hook specifications a hwabstract plugin implements.

A plugin is a module (or object) named by an entry point in the ``hwabstract`` group::

    [project.entry-points.hwabstract]
    myvendor = "myvendor_hwabstract.plugin"

whose ``@hookimpl`` functions implement the hooks below. Importing the plugin module must be
cheap and must not import the vendor's runtime; do that in :meth:`Backend.probe`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .backend import Backend

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

#: The pluggy project name and the entry-point group plugins register under.
PROJECT_NAME = "hwabstract"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def hwabstract_backends() -> Sequence[type[Backend]]:  # type: ignore[empty-body]
    """Return the :class:`~hwabstract.backend.Backend` subclasses this plugin provides.

    Return classes, not instances: the core instantiates each backend with no arguments
    only when it is first needed, then calls ``probe()``. An exception raised here marks
    the plugin as failed (with the reason) without affecting other plugins.
    """
