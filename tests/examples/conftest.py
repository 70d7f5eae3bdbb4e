"""Fixtures for the tests of ``examples/``: load an example script as a module, and name a
device only where its backend is installed (the ``examples`` tox environment installs the
maia plugin; elsewhere the maia cases skip, saying so)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import hwabstract as hw

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def load_example() -> Callable[[str], ModuleType]:
    """``load_example("portable_mlp")``: ``examples/portable_mlp.py``, freshly imported."""

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while defining
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def available() -> Callable[[str], str]:
    """``available("maia:0")``: the device spec, or a skip naming what is missing."""

    def check(spec: str) -> str:
        backend = spec.split(":")[0]
        status = {b.name: b for b in hw.backends()}.get(backend)
        if status is None or not status.ok:
            why = "not installed" if status is None else f"{status.status}: {status.reason}"
            pytest.skip(
                f"the {backend} backend is {why} (tox -e examples installs the maia plugin)"
            )
        return spec

    return check
