"""The optional compiled module, ``hwabstract._fastpath``: where it is built and not turned off.

It is built from ``_fastpath.c`` when hwabstract is installed on a machine with a C compiler
(an optional extension: without one the install still succeeds) and holds the compiled
steady state of ``dispatch.launch``. Setting
``HWABSTRACT_PURE_PYTHON=1`` before ``import hwabstract`` turns it off; the Python
definitions then run every call. docs/architecture.md, "The steady-state launch is compiled,
optionally", says why.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["FASTPATH", "STATUS"]


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("HWABSTRACT_PURE_PYTHON", "").strip() not in ("", "0"):
        return None, "pure Python (HWABSTRACT_PURE_PYTHON is set)"
    try:
        # (import_module: `from . import` would ask the package's lazy __getattr__ first)
        module = importlib.import_module("hwabstract._fastpath")
    except ImportError as exc:
        return None, f"pure Python (hwabstract._fastpath is not built: {exc})"
    return module, "compiled (hwabstract._fastpath)"


#: the compiled module, or None
FASTPATH: ModuleType | None
#: how dispatch runs: "compiled (hwabstract._fastpath)" or "pure Python (why)"
STATUS: str
FASTPATH, STATUS = _load()
