"""Plugin discovery: a pluggy PluginManager over the ``hwabstract`` entry-point group.

Discovery survives bad plugins. Each entry point is loaded, registered and asked for its
backends on its own; each backend is instantiated and probed on its own. Whatever fails is
recorded as a :class:`BackendStatus` with the reason, and everything else keeps working.

Environment:

* ``HWABSTRACT_PLUGINS`` -- comma-separated allow list of entry-point (plugin) names; when
  set, only those are loaded.
* ``HWABSTRACT_DISABLE_PLUGINS`` -- comma-separated deny list of plugin names.

Disabled plugins are still listed, with status ``disabled`` and the variable that did it.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import threading
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from . import hookspecs
from .backend import SUPPORTED_API_LEVELS, Backend
from .errors import BackendUnavailableError, DeviceError, PluginError

if TYPE_CHECKING:
    from .device import Device

__all__ = ["BackendStatus", "PluginSource", "Registry", "get_registry", "reset_registry"]

OK = "ok"
UNAVAILABLE = "unavailable"
FAILED = "failed"
DISABLED = "disabled"


@attrs.frozen
class BackendStatus:
    """One row of ``hw.backends()``: what a plugin provides and whether it works here."""

    name: str  #: backend name (``"cpu"``), or the plugin name when the plugin itself failed
    plugin: str  #: entry-point name
    distribution: str | None  #: the installed distribution providing it
    version: str | None  #: the distribution's version
    api_level: int | None  #: contract level the backend states
    status: str  #: ``ok``, ``unavailable``, ``failed`` or ``disabled``
    reason: str | None  #: why it is not ok (None when ok)
    device_count: int = 0
    priority: int = 0
    standin: bool = False  #: true when its devices are stand-ins for the hardware

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class PluginSource:
    """Where a plugin comes from: an entry point name and a loader returning the plugin."""

    name: str
    load: Any  # Callable[[], object]
    distribution: str | None = None
    version: str | None = None


def _entry_point_sources() -> list[PluginSource]:
    sources = []
    seen: set[str] = set()
    for ep in md.entry_points(group=hookspecs.PROJECT_NAME):
        if ep.name in seen:  # the same dist found twice on sys.path
            continue
        seen.add(ep.name)
        dist = getattr(ep, "dist", None)
        sources.append(
            PluginSource(
                ep.name,
                ep.load,
                dist.metadata["Name"] if dist is not None else None,
                dist.version if dist is not None else None,
            )
        )
    if "cpu" not in seen:
        # Running from a source tree without installed metadata: register the built-in
        # reference backend through the same hook path as an installed plugin would be.
        from . import __version__

        sources.insert(
            0,
            PluginSource(
                "cpu",
                lambda: importlib.import_module("hwabstract.backends.cpu"),
                "hwabstract",
                __version__,
            ),
        )
    return sources


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


class _Entry:
    """Mutable bookkeeping for one backend."""

    def __init__(self, status: BackendStatus, backend: Backend | None = None) -> None:
        self.status = status
        self.backend = backend
        self.devices: list[Device] = []


class Registry:
    """Discovers plugins and owns the backends and devices they provide.

    The process-wide instance is :func:`get_registry`; tests build their own from explicit
    :class:`PluginSource` lists.
    """

    def __init__(self, sources: Iterable[PluginSource] | None = None) -> None:
        self._sources = list(sources) if sources is not None else None
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] | None = None
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)

    # -- discovery -------------------------------------------------------------------------

    def _discover(self) -> dict[str, _Entry]:
        with self._lock:
            if self._entries is not None:
                return self._entries
            entries: dict[str, _Entry] = {}
            sources = self._sources if self._sources is not None else _entry_point_sources()
            allow = _env_list("HWABSTRACT_PLUGINS")
            deny = _env_list("HWABSTRACT_DISABLE_PLUGINS") or set()
            for source in sources:
                self._load_source(source, allow, deny, entries)
            self._entries = entries
            return entries

    def _load_source(
        self,
        source: PluginSource,
        allow: set[str] | None,
        deny: set[str],
        entries: dict[str, _Entry],
    ) -> None:
        def plugin_status(status: str, reason: str) -> None:
            entries[source.name] = _Entry(
                BackendStatus(
                    name=source.name,
                    plugin=source.name,
                    distribution=source.distribution,
                    version=source.version,
                    api_level=None,
                    status=status,
                    reason=reason,
                )
            )

        if allow is not None and source.name not in allow:
            plugin_status(DISABLED, "not in HWABSTRACT_PLUGINS")
            return
        if source.name in deny:
            plugin_status(DISABLED, "listed in HWABSTRACT_DISABLE_PLUGINS")
            return
        try:
            plugin = source.load()
        except Exception as exc:
            plugin_status(FAILED, f"plugin failed to import: {_describe(exc)}")
            return
        try:
            self.plugin_manager.register(plugin, name=source.name)
        except Exception as exc:
            plugin_status(FAILED, f"plugin failed to register with pluggy: {_describe(exc)}")
            return
        impls = [
            impl
            for impl in self.plugin_manager.hook.hwabstract_backends.get_hookimpls()
            if impl.plugin_name == source.name
        ]
        if not impls:
            plugin_status(FAILED, "plugin implements no hwabstract_backends hook")
            return
        classes: list[Any] = []
        for impl in impls:
            try:
                classes.extend(impl.function())
            except Exception as exc:
                plugin_status(FAILED, f"hwabstract_backends hook raised: {_describe(exc)}")
                return
        for cls in classes:
            self._add_backend(source, cls, entries)

    def _add_backend(self, source: PluginSource, cls: Any, entries: dict[str, _Entry]) -> None:
        name = getattr(cls, "name", None)
        level = getattr(cls, "api_level", None)
        base = dict(
            plugin=source.name,
            distribution=source.distribution,
            version=source.version,
            api_level=level if isinstance(level, int) else None,
            priority=getattr(cls, "priority", 0) if isinstance(cls, type) else 0,
        )
        if not (isinstance(cls, type) and issubclass(cls, Backend)) or not isinstance(name, str):
            label = name if isinstance(name, str) else source.name
            entries[label] = _Entry(
                BackendStatus(
                    name=label,
                    status=FAILED,
                    reason=f"hook returned {cls!r}, which is not a Backend subclass with a name",
                    **base,  # type: ignore[arg-type]
                )
            )
            return
        if name in entries:
            prev = entries[name].status
            entries[f"{name}@{source.name}"] = _Entry(
                BackendStatus(
                    name=name,
                    status=FAILED,
                    reason=f"backend name {name!r} is already provided by plugin {prev.plugin!r}",
                    **base,  # type: ignore[arg-type]
                )
            )
            return
        if level not in SUPPORTED_API_LEVELS:
            speaks = ", ".join(map(str, sorted(SUPPORTED_API_LEVELS)))
            entries[name] = _Entry(
                BackendStatus(
                    name=name,
                    status=FAILED,
                    reason=(
                        f"plugin implements contract API level {level!r}; this hwabstract "
                        f"speaks {speaks}. Install a plugin version built for it."
                    ),
                    **base,  # type: ignore[arg-type]
                )
            )
            return
        try:
            backend = cls()
            backend.probe()
            count = int(backend.device_count())
            standin = count > 0 and bool(backend.device_info(0).standin)
        except BackendUnavailableError as exc:
            entries[name] = _Entry(
                BackendStatus(name=name, status=UNAVAILABLE, reason=exc.reason, **base)  # type: ignore[arg-type]
            )
            return
        except Exception as exc:
            entries[name] = _Entry(
                BackendStatus(
                    name=name,
                    status=FAILED,
                    reason=f"probe raised {_describe(exc)}",
                    **base,  # type: ignore[arg-type]
                )
            )
            return
        if count <= 0:
            entries[name] = _Entry(
                BackendStatus(
                    name=name, status=UNAVAILABLE, reason="backend reports no devices", **base  # type: ignore[arg-type]
                )
            )
            return
        entries[name] = _Entry(
            BackendStatus(
                name=name, status=OK, reason=None, device_count=count, standin=standin, **base  # type: ignore[arg-type]
            ),
            backend,
        )

    # -- queries ---------------------------------------------------------------------------

    def backends(self) -> list[BackendStatus]:
        """Every discovered backend (and failed plugin), highest priority first."""
        entries = self._discover()
        return sorted(
            (e.status for e in entries.values()),
            key=lambda s: (not s.ok, -s.priority, s.name),
        )

    def backend(self, name: str) -> Backend:
        """The working backend called ``name``; raises with the reason if it does not work."""
        entries = self._discover()
        entry = entries.get(name)
        if entry is None:
            known = ", ".join(sorted(e.status.name for e in entries.values())) or "none"
            raise DeviceError(
                f"no backend named {name!r} is installed (known: {known}). Install its plugin "
                "package, then check `hwabstract backends`."
            )
        if entry.backend is None:
            if entry.status.status == UNAVAILABLE:
                raise BackendUnavailableError(name, entry.status.reason or "unknown reason")
            raise PluginError(
                f"backend {name!r} is {entry.status.status}: {entry.status.reason}. "
                "Run `hwabstract doctor` for details."
            )
        return entry.backend

    def devices(self, backend: str | None = None) -> list[Device]:
        """The devices of one backend, or of every working backend (by priority)."""
        from .device import Device

        entries = self._discover()
        names = [backend] if backend is not None else [s.name for s in self.backends() if s.ok]
        result: list[Device] = []
        for name in names:
            be = self.backend(name)
            entry = entries[name]
            with self._lock:
                if not entry.devices:
                    entry.devices = [
                        Device._create(self, name, be, i) for i in range(entry.status.device_count)
                    ]
            result.extend(entry.devices)
        return result

    def device(self, spec: Any = None) -> Device:
        """Resolve a device spec: ``"cpu"``, ``"cpu:1"``, a :class:`Device`, or None for the
        default (``HWABSTRACT_DEVICE``, then the highest-priority working backend)."""
        from .device import Device

        if isinstance(spec, Device):
            return spec
        if spec is None:
            env = os.environ.get("HWABSTRACT_DEVICE")
            if env:
                return self.device(env)
            ok = [s for s in self.backends() if s.ok]
            if not ok:
                raise DeviceError(
                    "no working backend is installed; run `hwabstract doctor` to see why"
                )
            return self.devices(ok[0].name)[0]
        if not isinstance(spec, str):
            raise DeviceError(
                f"cannot interpret {spec!r} as a device; pass a Device, a backend name like "
                "'cpu', or 'backend:index' like 'cpu:0'"
            )
        name, _, index_text = spec.strip().partition(":")
        index = 0
        if index_text:
            try:
                index = int(index_text)
            except ValueError:
                raise DeviceError(
                    f"bad device spec {spec!r}: the part after ':' must be an integer index"
                ) from None
        devices = self.devices(name)
        if not 0 <= index < len(devices):
            raise DeviceError(
                f"device {spec!r} does not exist: backend {name!r} has {len(devices)} "
                f"device(s), {name}:0 to {name}:{len(devices) - 1}"
            )
        return devices[index]


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry (discovery runs on first use)."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = Registry()
    return _registry


def reset_registry(registry: Registry | None = None) -> Registry | None:
    """Replace the process-wide registry (None: rediscover on next use). Returns the old
    one. Meant for tests and for tools that install plugins at run time."""
    global _registry
    with _registry_lock:
        old, _registry = _registry, registry
    return old
