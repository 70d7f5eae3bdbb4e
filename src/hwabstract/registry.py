"""Plugin discovery: a pluggy PluginManager over the ``hwabstract`` entry-point group.

Discovery survives bad plugins. Each entry point is loaded, registered and asked for its
backends on its own; each backend is instantiated and probed on its own. Whatever fails is
recorded as a :class:`BackendStatus` with the reason, and everything else keeps working.

Environment:

* ``HWABSTRACT_PLUGINS`` -- comma-separated allow list of entry-point (plugin) names; when
  set, only those are loaded.
* ``HWABSTRACT_DISABLE_PLUGINS`` -- comma-separated deny list of plugin names.

Disabled plugins are still listed, with status ``disabled`` and the variable that did it.
Nothing a plugin does replaces another's row: an entry-point name declared by two
distributions, or a backend name provided twice, lists the later one as ``failed`` and
keeps the first (the core's own ``cpu`` entry point always loads first).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import re
import threading
import traceback
from collections.abc import Iterable, Mapping
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
    #: the environment variables the backend reads, as (name, what it does) pairs
    environment: tuple[tuple[str, str], ...] = ()

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


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _failing_loader(exc: BaseException) -> Any:
    def load() -> Any:
        raise exc

    return load


def _entry_point_sources() -> list[PluginSource]:
    """One source per ``hwabstract`` entry point of every installed distribution.

    Each distribution is read on its own, so one with unreadable metadata becomes a failed
    source instead of stopping discovery. A distribution found twice on ``sys.path`` counts
    once (the first, as ``importlib.metadata`` does). Two *different* distributions declaring
    the same entry-point name are both kept: the registry lists the second as failed. The
    core's own entry points come first, so a third-party entry point reusing the name
    ``cpu`` cannot shadow the reference backend.
    """
    group = hookspecs.PROJECT_NAME
    sources: list[PluginSource] = []
    seen: set[str] = set()
    for dist in md.distributions():
        error: Exception | None = None
        try:
            eps = [ep for ep in dist.entry_points if ep.group == group]
        except Exception as exc:
            text = dist.read_text("entry_points.txt") or ""
            if f"[{group}]" not in text.replace(" ", ""):
                continue  # broken, but not a hwabstract plugin: not ours to report
            eps, error = [], exc
        if not eps and error is None:
            continue  # (reading METADATA only for plugin distributions keeps this fast)
        dist_name = dist.metadata["Name"]
        if dist_name:
            key = _normalized(dist_name)
            if key in seen:
                continue
            seen.add(key)
        version = dist.version
        if error is not None:
            label = dist_name or "unnamed distribution"
            failure = PluginError(
                f"distribution {label!r} has an unreadable entry_points.txt: "
                f"{type(error).__name__}: {error}"
            )
            sources.append(PluginSource(label, _failing_loader(failure), dist_name, version))
        for ep in eps:
            sources.append(PluginSource(ep.name, ep.load, dist_name, version))
    # stable sort: the core's own plugin first, then sys.path order
    sources.sort(key=lambda src: src.distribution != "hwabstract")
    if not any(src.name == "cpu" and src.distribution == "hwabstract" for src in sources):
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


def _unavailable_reason(exc: BackendUnavailableError) -> str:
    if exc.vendor_message:
        return f"{exc.reason} (vendor: {exc.vendor_message})"
    return exc.reason


#: What a plugin may raise without breaking discovery (a plugin calling sys.exit() on import
#: included; KeyboardInterrupt still stops the program).
_PLUGIN_FAILURES = (Exception, SystemExit)

#: Backend names must work in device specs ("name:index") and environment lists.
_BACKEND_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _environment_of(cls: Any) -> tuple[tuple[str, str], ...]:
    """A backend class's declared environment variables; anything malformed is left out
    (discovery must survive a plugin's mistakes)."""
    declared = getattr(cls, "environment", None) if isinstance(cls, type) else None
    if not isinstance(declared, Mapping):
        return ()
    return tuple(
        (name, meaning)
        for name, meaning in declared.items()
        if isinstance(name, str) and isinstance(meaning, str)
    )


def plugin_row(source: PluginSource, status: str, reason: str) -> BackendStatus:
    """The row of a plugin that provides no backend row of its own (disabled or failed)."""
    return BackendStatus(
        name=source.name, plugin=source.name, distribution=source.distribution,
        version=source.version, api_level=None, status=status, reason=reason,
    )  # fmt: skip


def disabled_reason(name: str, allow: set[str] | None, deny: set[str]) -> str | None:
    """Why ``HWABSTRACT_PLUGINS``/``HWABSTRACT_DISABLE_PLUGINS`` disable plugin ``name``
    (None when they do not)."""
    if allow is not None and name not in allow:
        return f"not in HWABSTRACT_PLUGINS={','.join(sorted(allow)) or '(empty)'}"
    if name in deny:
        return "listed in HWABSTRACT_DISABLE_PLUGINS"
    return None


class _Entry:
    """Mutable bookkeeping for one backend."""

    def __init__(self, status: BackendStatus, backend: Backend | None = None) -> None:
        self.status = status
        self.backend = backend
        self.devices: list[Device] = []


def _put(entries: dict[str, _Entry], key: str, entry: _Entry) -> None:
    """Add ``entry`` under ``key``, or under a unique variant of it: a failure reported for
    one plugin must never replace what another plugin (or backend) already provided."""
    if key in entries:
        base = f"{key}@{entry.status.plugin}"
        key, n = base, 2
        while key in entries:
            key, n = f"{base}#{n}", n + 1
    entries[key] = entry


class Registry:
    """Discovers plugins and owns the backends and devices they provide.

    The process-wide instance is :func:`get_registry`. Without ``sources`` a registry
    discovers the ``hwabstract`` entry points installed on ``sys.path`` (when it is first
    used); tests may pass an explicit list of :class:`PluginSource` instead.
    ``HWABSTRACT_PLUGINS`` and ``HWABSTRACT_DISABLE_PLUGINS`` are read at discovery.
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
            loaded: dict[str, PluginSource] = {}
            for source in sources:
                self._load_source(source, allow, deny, entries, loaded)
            self._entries = entries
            return entries

    def _load_source(
        self,
        source: PluginSource,
        allow: set[str] | None,
        deny: set[str],
        entries: dict[str, _Entry],
        loaded: dict[str, PluginSource],
    ) -> None:
        def plugin_status(status: str, reason: str) -> None:
            _put(entries, source.name, _Entry(plugin_row(source, status, reason)))

        disabled = disabled_reason(source.name, allow, deny)
        if disabled is not None:
            plugin_status(DISABLED, disabled)
            return
        previous = loaded.get(source.name)
        if previous is not None:
            plugin_status(
                FAILED,
                f"entry point {source.name!r} is declared by distribution "
                f"{previous.distribution!r} too, which was loaded first; uninstall one of the "
                "two or rename one entry point",
            )
            return
        loaded[source.name] = source
        try:
            plugin = source.load()
        except _PLUGIN_FAILURES as exc:
            plugin_status(FAILED, f"plugin failed to import: {_describe(exc)}")
            return
        try:
            self.plugin_manager.register(plugin, name=source.name)
        except _PLUGIN_FAILURES as exc:
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
                provided: Any = impl.function()
            except _PLUGIN_FAILURES as exc:
                plugin_status(FAILED, f"hwabstract_backends hook raised {_describe(exc)}")
                return
            if isinstance(provided, type):
                provided = [provided]
            if not isinstance(provided, Iterable) or isinstance(provided, (str, bytes)):
                plugin_status(
                    FAILED,
                    f"hwabstract_backends hook returned {provided!r}; it must return a list "
                    "of Backend subclasses",
                )
                return
            try:
                classes.extend(provided)
            except _PLUGIN_FAILURES as exc:
                plugin_status(FAILED, f"hwabstract_backends hook raised {_describe(exc)}")
                return
        for cls in classes:
            self._add_backend(source, cls, entries)

    def _add_backend(self, source: PluginSource, cls: Any, entries: dict[str, _Entry]) -> None:
        name = getattr(cls, "name", None) if isinstance(cls, type) else None
        level = getattr(cls, "api_level", None) if isinstance(cls, type) else None
        priority = getattr(cls, "priority", 0) if isinstance(cls, type) else 0
        if not isinstance(priority, int) or isinstance(priority, bool):
            priority = 0
        plugin_level = level if isinstance(level, int) and not isinstance(level, bool) else None
        environment = _environment_of(cls)

        def record(
            status: str,
            reason: str | None,
            backend: Backend | None = None,
            count: int = 0,
            standin: bool = False,
            label: str | None = None,
        ) -> None:
            _put(
                entries,
                label or str(name),
                _Entry(
                    BackendStatus(
                        name=label or str(name),
                        plugin=source.name,
                        distribution=source.distribution,
                        version=source.version,
                        api_level=plugin_level,
                        status=status,
                        reason=reason,
                        device_count=count,
                        priority=priority,
                        standin=standin,
                        environment=environment,
                    ),
                    backend,
                ),
            )

        if not (isinstance(cls, type) and issubclass(cls, Backend)) or not isinstance(name, str):
            label = name if isinstance(name, str) and name else source.name
            record(
                FAILED,
                f"hwabstract_backends hook returned {cls!r}, which is not a Backend subclass "
                "with a name",
                label=label,
            )
            return
        if not _BACKEND_NAME.fullmatch(name):
            record(
                FAILED,
                f"backend name {name!r} is not usable in a device spec; use letters, digits, "
                "'_', '-' and '.' (no ':' or spaces), starting with a letter",
            )
            return
        if name in entries:
            prev = entries[name].status
            record(
                FAILED,
                f"backend name {name!r} is already provided by plugin {prev.plugin!r} "
                f"(distribution {prev.distribution!r}); uninstall one of them",
            )
            return
        if plugin_level is None or plugin_level not in SUPPORTED_API_LEVELS:
            speaks = ", ".join(map(str, sorted(SUPPORTED_API_LEVELS)))
            record(
                FAILED,
                f"plugin implements contract API level {level!r}; this hwabstract speaks "
                f"{speaks}. Install a plugin version built for it.",
            )
            return
        try:
            backend = cls()
        except BackendUnavailableError as exc:
            record(UNAVAILABLE, _unavailable_reason(exc))
            return
        except _PLUGIN_FAILURES as exc:
            record(FAILED, f"backend could not be created: {_describe(exc)}")
            return
        try:
            backend.probe()
            count = int(backend.device_count())
            standin = count > 0 and bool(backend.device_info(0).standin)
        except BackendUnavailableError as exc:
            record(UNAVAILABLE, _unavailable_reason(exc))
            return
        except _PLUGIN_FAILURES as exc:
            record(FAILED, f"probe raised {_describe(exc)}")
            return
        if count <= 0:
            record(UNAVAILABLE, "backend reports no devices")
            return
        record(OK, None, backend, count, standin)

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
                try:
                    return self.device(env)
                except DeviceError as exc:
                    raise DeviceError(
                        f"HWABSTRACT_DEVICE={env!r} names no usable device: {exc}"
                    ) from exc
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
