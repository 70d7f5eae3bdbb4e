"""What the maia plugin's tests share: a registry of exactly the backends a test asks for,
whatever else is installed or configured. The plugin is imported only when a fixture runs
(this folder is collected, and skipped, where hwabstract-maia is not installed)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

import pytest

import hwabstract as hw
from hwabstract.registry import PluginSource, Registry, reset_registry


def maia_source() -> PluginSource:
    import hwabstract_maia.plugin

    return PluginSource(
        "maia",
        lambda: hwabstract_maia.plugin,
        "hwabstract-maia",
        importlib.metadata.version("hwabstract-maia"),
    )


def cpu_source() -> PluginSource:
    import hwabstract.backends.cpu

    return PluginSource("cpu", lambda: hwabstract.backends.cpu, "hwabstract", hw.__version__)


def _install(monkeypatch: pytest.MonkeyPatch, sources: list[PluginSource]) -> Iterator[None]:
    for var in ("HWABSTRACT_DEVICE", "HWABSTRACT_PLUGINS", "HWABSTRACT_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    old = reset_registry(Registry(sources=sources))
    yield
    reset_registry(old)


@pytest.fixture
def maia_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A registry of the maia backend alone."""
    yield from _install(monkeypatch, [maia_source()])


@pytest.fixture
def maia_and_cpu_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A registry of exactly maia and cpu."""
    yield from _install(monkeypatch, [maia_source(), cpu_source()])
