"""The hwabstract-trainium distribution: entry point, environment, chip profiles, and the
backend on its stand-in (the shared PJRT code is tested in tests/backends/test_pjrt.py)."""

from __future__ import annotations

import importlib
import importlib.metadata

import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed (tox -e trainium installs it)")
pytest.importorskip("hwabstract_trainium", reason="hwabstract-trainium is not installed")

from hwabstract_trainium.backend import TrainiumBackend
from hwabstract_trainium.profiles import DEFAULT, PROFILES

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.registry import PluginSource, Registry, reset_registry


def _registry(monkeypatch: pytest.MonkeyPatch, **env: str) -> Registry:
    for var in ("HWABSTRACT_TRAINIUM_STANDIN", "HWABSTRACT_TRAINIUM_STANDIN_MODEL",
                "HWABSTRACT_DEVICE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = importlib.import_module("hwabstract_trainium.plugin")
    version = importlib.metadata.version("hwabstract-trainium")
    return Registry(
        sources=[PluginSource("trainium", lambda: plugin, "hwabstract-trainium", version)]
    )


def test_the_entry_point_names_the_plugin_module() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="hwabstract") if e.name == "trainium"]
    assert ep.value == "hwabstract_trainium.plugin"
    assert "HWABSTRACT_TRAINIUM_STANDIN" in TrainiumBackend.environment


@pytest.mark.parametrize("key", sorted(PROFILES))
def test_each_profile_is_complete_and_sourced(key: str) -> None:
    p = PROFILES[key]
    assert p.key == key and p.vendor in ("AWS", "Amazon Web Services")
    assert p.hbm_bytes > 10**9 and p.hbm_bandwidth > 1e11 and p.sources
    for name in (*p.dtypes, *p.peak_ops):
        dt.dtype(name)
    assert "float64" not in p.dtypes, "Trainium has no float64"
    assert "float8_e5m2" in p.dtypes, "Trainium computes in FP8"
    assert DEFAULT in PROFILES


def test_without_the_chip_and_without_the_opt_in_it_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (status,) = _registry(monkeypatch).backends()
    assert status.status == "unavailable"
    assert "no AWS Trainium found through JAX" in status.reason
    assert "HWABSTRACT_TRAINIUM_STANDIN=cpu" in status.reason


def test_the_standin_runs_and_says_what_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    old = reset_registry(_registry(monkeypatch, HWABSTRACT_TRAINIUM_STANDIN="cpu"))
    try:
        d = hw.device("trainium:0")
        assert d.info.standin and "stand-in (PJRT CPU)" in d.info.name
        assert d.info.standin_for == PROFILES[DEFAULT].name
        assert hw.float8_e5m2 in d.capabilities.dtypes
        assert hw.float64 not in d.capabilities.dtypes
        x = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3), device=d)
        np.testing.assert_array_equal(hw.sum(x * 2, axis=0).numpy(), [6, 10, 14])
    finally:
        reset_registry(old)
