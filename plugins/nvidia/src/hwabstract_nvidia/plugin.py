"""The hwabstract entry point of ``hwabstract-nvidia``: imports no CuPy (the probe does)."""

from __future__ import annotations

from hwabstract.backend import Backend
from hwabstract.hookspecs import hookimpl


@hookimpl
def hwabstract_backends() -> list[type[Backend]]:
    from .backend import NvidiaBackend

    return [NvidiaBackend]
