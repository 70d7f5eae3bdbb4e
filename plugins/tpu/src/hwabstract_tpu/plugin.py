"""The hwabstract entry point of ``hwabstract-tpu``: imports no jax (the probe does)."""

from __future__ import annotations

from hwabstract.backend import Backend
from hwabstract.hookspecs import hookimpl


@hookimpl
def hwabstract_backends() -> list[type[Backend]]:
    from .backend import TpuBackend

    return [TpuBackend]
