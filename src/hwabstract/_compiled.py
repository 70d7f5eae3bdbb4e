"""The optional compiled modules: where they are built and not turned off.

``hwabstract._fastpath`` (from ``_fastpath.c``) holds the compiled steady state of
``dispatch.launch``; ``hwabstract.backends._pjrtfast`` (from ``backends/_pjrtfast.c``) the
PJRT backend's side of it (allocate, free, the bound launch). Both are built when hwabstract
is installed on a machine with a C compiler (optional extensions: without one the install
still succeeds). Setting ``HWABSTRACT_PURE_PYTHON=1`` before ``import hwabstract`` turns
them off; the Python definitions then run every call. docs/architecture.md, "The
steady-state launch is compiled, optionally", says why.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["FASTPATH", "STATUS", "load"]


def load(name: str) -> tuple[ModuleType | None, str]:
    """The compiled module ``name`` and ``"compiled (name)"``, or None and ``"pure Python
    (why)"`` where it is turned off or not built."""
    if os.environ.get("HWABSTRACT_PURE_PYTHON", "").strip() not in ("", "0"):
        return None, "pure Python (HWABSTRACT_PURE_PYTHON is set)"
    try:
        # (import_module: `from . import` would ask the package's lazy __getattr__ first)
        module = importlib.import_module(name)
    except ImportError as exc:
        return None, f"pure Python ({name} is not built: {exc})"
    return module, f"compiled ({name})"


#: the compiled module, or None
FASTPATH: ModuleType | None
#: how dispatch runs: "compiled (hwabstract._fastpath)" or "pure Python (why)"
STATUS: str
FASTPATH, STATUS = load("hwabstract._fastpath")
