"""examples/sklearn_array_api.py: unmodified scikit-learn estimators (LDA, PCA) with
``array_api_dispatch=True`` on hwabstract tensors match the same estimators on NumPy -- on
cpu always, on maia where the hwabstract-maia plugin is installed (the ``examples`` tox
environment installs both, with the ``examples`` extra that brings scikit-learn)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import hwabstract as hw

pytest.importorskip("sklearn", reason="scikit-learn is the examples extra: pip install .[examples]")
if "scipy" in sys.modules and os.environ.get("SCIPY_ARRAY_API") != "1":
    pytest.skip(
        "SciPy was imported before SCIPY_ARRAY_API=1 could be set; run this module alone "
        "(tox -e examples does)",
        allow_module_level=True,
    )

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sklearn_array_api.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("sklearn_array_api", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _device(name: str) -> str:
    backend = name.split(":")[0]
    status = {b.name: b for b in hw.backends()}.get(backend)
    if status is None or not status.ok:
        pytest.skip(f"the {backend} backend is not installed here (tox -e examples installs it)")
    return name


@pytest.mark.parametrize("device", ["cpu:0", "maia:0"])
def test_estimators_on_the_device_match_numpy(device: str) -> None:
    example = _example()
    result = example.run(_device(device))
    assert result["device"] == device
    assert example.matches(result), result


def test_main_reports_each_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert _example().main(["--device", "cpu:0"]) == 0
    assert "cpu:0: LDA predictions agree 100%" in capsys.readouterr().out
