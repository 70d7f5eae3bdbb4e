"""The entry point of the ``maia`` plugin: one pluggy hook returning the backend class.

Importing this module is cheap: it imports neither the compiled binding nor libmaia.
"""

from __future__ import annotations

from hwabstract import Backend, hookimpl

__all__ = ["hwabstract_backends"]


@hookimpl
def hwabstract_backends() -> list[type[Backend]]:
    from .backend import MaiaBackend

    return [MaiaBackend]
