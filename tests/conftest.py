"""Shared fixtures: fresh registries, fake plugin distributions, a capability-limited backend,
and gates that hold a cpu stream until the test lets it go."""

from __future__ import annotations

import gc
import importlib
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

import hwabstract as hw
from hwabstract import dispatch
from hwabstract import registry as registry_mod
from hwabstract.backend import Capabilities, Feature
from hwabstract.backends.cpu import CpuBackend
from hwabstract.registry import PluginSource, Registry


def cpu_source() -> PluginSource:
    """The core's reference backend, loaded the way its entry point loads it."""
    return PluginSource(
        "cpu",
        lambda: importlib.import_module("hwabstract.backends.cpu"),
        "hwabstract",
        hw.__version__,
    )


class LimitedBackend(CpuBackend):
    """The cpu backend with a smaller manifest: no float64, no matmul, no event timing and
    no peer copies. Everything it does declare works (it is the cpu backend)."""

    name = "limited"

    def capabilities(self, index: int) -> Capabilities:
        full = super().capabilities(index)
        return attrs.evolve(
            full,
            dtypes={d: s for d, s in full.dtypes.items() if d is not hw.float64},
            kernels={k: v - {hw.float64} for k, v in full.kernels.items() if k != "matmul"},
            features=full.features - {Feature.EVENT_TIMING, Feature.PEER_COPY},
        )


@hw.hookimpl
def _limited_backends() -> list[type[hw.Backend]]:
    return [LimitedBackend]


def limited_source() -> PluginSource:
    plugin = types.SimpleNamespace(hwabstract_backends=_limited_backends)
    return PluginSource("limited", lambda: plugin, "hwabstract-tests", "0")


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Registry]]:
    """``make(sources=None, **env)``: set environment variables (None deletes one), build a
    new :class:`Registry`, run its discovery now and install it for the process. The
    previous registry comes back after the test."""
    saved: list[Registry | None] = []

    def make(sources: list[PluginSource] | None = None, **env: str | None) -> Registry:
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        registry = Registry(sources)
        registry.backends()  # discover while the environment is set
        old = registry_mod.reset_registry(registry)
        if not saved:
            saved.append(old)
        return registry

    yield make
    if saved:
        registry_mod.reset_registry(saved[0])
    # cached scalar tensors keep their device (and so the test registry) alive
    cache = getattr(dispatch, "_SCALAR_CACHE", None)
    if cache is not None:
        cache.clear()
    gc.collect()


@pytest.fixture
def two_cpus(fresh_registry: Callable[..., Registry]) -> tuple[hw.Device, hw.Device]:
    """cpu:0 and cpu:1 of a fresh registry (HWABSTRACT_CPU_DEVICES=2)."""
    fresh_registry(HWABSTRACT_CPU_DEVICES="2", HWABSTRACT_CPU_MEMORY=None)
    return hw.device("cpu:0"), hw.device("cpu:1")


@pytest.fixture
def limited_device(fresh_registry: Callable[..., Registry]) -> hw.Device:
    """A device of :class:`LimitedBackend` (two of them exist: limited:0 and limited:1)."""
    fresh_registry([cpu_source(), limited_source()], HWABSTRACT_CPU_DEVICES="2")
    return hw.device("limited:0")


@pytest.fixture
def gate() -> Iterator[Callable[[hw.Stream], threading.Event]]:
    """``gate(stream)`` queues, through the cpu backend, a command that blocks ``stream``
    until the returned ``threading.Event`` is set. Every gate is opened after the test."""
    opened: list[threading.Event] = []

    def close(stream: hw.Stream) -> threading.Event:
        event = threading.Event()
        opened.append(event)
        stream.handle.submit(event.wait, "test gate")
        return event

    yield close
    for event in opened:
        event.set()


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """``make(dist_name, entry_points, modules, entry_points_text=None)`` writes an installed
    distribution into its own folder under ``tmp_path``: ``<name>-0.1.dist-info/`` with
    METADATA and an ``entry_points.txt`` declaring ``entry_points`` (name -> module) in the
    ``[hwabstract]`` group, plus ``modules`` (name -> source) as .py files; the folder goes
    to the front of ``sys.path``. The modules are dropped from ``sys.modules`` afterwards."""
    created: list[str] = []

    def make(
        dist_name: str,
        entry_points: dict[str, str],
        modules: dict[str, str],
        entry_points_text: str | None = None,
    ) -> Path:
        root = tmp_path / f"site-{dist_name}"
        info = root / f"{dist_name.replace('-', '_')}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1\n", encoding="utf-8"
        )
        if entry_points_text is None:
            lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
            entry_points_text = f"[hwabstract]\n{lines}"
        (info / "entry_points.txt").write_text(entry_points_text, encoding="utf-8")
        for module, source in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            created.append(module)
        monkeypatch.syspath_prepend(str(root))
        importlib.invalidate_caches()
        return root

    yield make
    for module in created:
        sys.modules.pop(module, None)
