"""The conformance suite's pytest plugin: options, the target device, claims, expectations and
the report.

Registered as the ``hwabstract`` ``pytest11`` entry point, so it is loaded by every pytest
session of an environment where hwabstract is installed. It stays inert there: it only adds
its options and fixtures, and does nothing unless the session collects the suite's own tests
(``pytest --pyargs hwabstract.conformance.suite``).

Options::

    --hwabstract-backend NAME       the backend to certify (default: the default device's)
    --hwabstract-device SPEC        the device to certify (default: NAME:0)
    --hwabstract-report-dir DIR     write report.json, junit.xml, report.md, report.html
    --hwabstract-expectations FILE  known failures (default: the one the backend ships)
    --hwabstract-plugin MODULE      load a plugin that is not installed (a module name or a
                                    path to a .py file); repeatable
    --hwabstract-progress           one line per area as it finishes (the CLI's view)
    --hwabstract-shard I/N          run only the I-th of N slices of the suite (shard_of)
                                    (``hwabstract conformance --jobs N`` runs N of them)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from .report import Outcome, TestRecord, build_report, write_reports

SUITE_DIR = Path(__file__).resolve().parent / "suite"

_TARGET_KEY = pytest.StashKey["Target"]()
_SESSION_KEY = pytest.StashKey["ReportCollector"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hwabstract", "hwabstract conformance suite")
    group.addoption("--hwabstract-backend", metavar="NAME", help="backend to certify")
    group.addoption("--hwabstract-device", metavar="SPEC", help="device to certify (NAME:0)")
    group.addoption(
        "--hwabstract-report-dir", metavar="DIR", help="write the conformance reports here"
    )
    group.addoption(
        "--hwabstract-expectations",
        metavar="FILE",
        help="expectations file (known failures with reasons); default: the backend's own",
    )
    group.addoption(
        "--hwabstract-plugin",
        metavar="MODULE",
        action="append",
        default=[],
        help="load this hwabstract plugin (module name or .py path) as if it were installed",
    )
    group.addoption(
        "--hwabstract-progress",
        action="store_true",
        help="print a line per area as it finishes",
    )
    group.addoption(
        "--hwabstract-shard",
        metavar="I/N",
        type=_shard,
        help="run only the I-th (from 0) of N slices of the collected suite (each slice "
        "a set of short runs of neighbouring tests, dealt round-robin)",
    )


#: each slice of ``--hwabstract-shard`` gets about this many runs of neighbouring tests
RUNS_PER_SLICE = 32


def shard_of(index: int, total: int, slices: int) -> int:
    """The slice (of ``slices``) that runs test ``index`` of ``total``: the suite is cut
    into runs of neighbouring tests (about RUNS_PER_SLICE per slice), dealt round-robin.
    Neighbours share kernels and dtypes, so a backend's compiled-code caches still serve
    a run; dealing the runs spreads the suite's slow stretches (a GPU compiling each
    reduction on first use, property-based tests) over every slice instead of leaving them
    to the last one or two."""
    run = max(1, -(-total // (slices * RUNS_PER_SLICE)))
    return (index // run) % slices


def suite_order(parts: Sequence[Sequence[Any]]) -> list[Any] | None:
    """The tests of slices ``parts`` (in slice order, each in its own run order) back in
    the suite's order; None where the counts do not fit the dealing (a slice crashed)."""
    slices = len(parts)
    total = sum(len(p) for p in parts)
    owners = [shard_of(index, total, slices) for index in range(total)]
    if [owners.count(k) for k in range(slices)] != [len(p) for p in parts]:
        return None
    runs = [iter(p) for p in parts]
    return [next(runs[k]) for k in owners]


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--hwabstract-shard takes I/N, got {text!r}") from None
    if not 0 <= i < n:
        raise pytest.UsageError(f"--hwabstract-shard {text}: needs 0 <= I < N")
    return i, n


# -- the target ----------------------------------------------------------------------------------


class Target:
    """The device under test, resolved once per session, and what it claims."""

    def __init__(self, config: pytest.Config) -> None:
        from .. import registry as reg
        from ..errors import HwAbstractError

        self.config = config
        self.started = time.time()
        extra = [_plugin_source(spec) for spec in config.getoption("hwabstract_plugin") or []]
        if extra:
            reg.reset_registry(reg.Registry(sources=[*reg._entry_point_sources(), *extra]))
        registry = reg.get_registry()
        backend = config.getoption("hwabstract_backend")
        device_spec = config.getoption("hwabstract_device")
        self.unavailable: str | None = None
        self.status: reg.BackendStatus | None = None
        self.device: Any = None
        self.backend = backend or (device_spec.split(":")[0] if device_spec else None)
        statuses = {s.name: s for s in registry.backends()}
        if self.backend is None:
            try:
                self.device = registry.device(None)
                self.backend = self.device.backend
            except HwAbstractError as exc:
                self.unavailable = f"no device is available: {exc}"
                self.backend = "default"
        if self.backend is not None and self.device is None:
            status = statuses.get(self.backend)
            if status is None:
                known = ", ".join(sorted(statuses)) or "none"
                self.unavailable = (
                    f"no backend named {self.backend!r} is installed (installed: {known}); "
                    "install its plugin, or name a module with --hwabstract-plugin"
                )
            elif not status.ok:
                self.unavailable = f"backend {self.backend!r} is {status.status}: {status.reason}"
            else:
                try:
                    self.device = registry.device(device_spec or f"{self.backend}:0")
                except HwAbstractError as exc:
                    self.unavailable = str(exc)
        if self.backend is not None:
            self.status = statuses.get(self.backend)
        self.expectations = _load_expectations(config, self)

    # -- what the device claims ----------------------------------------------------------------

    @property
    def caps(self) -> Any:
        return None if self.device is None else self.device.capabilities

    def dtypes(self) -> list[Any]:
        """The dtypes the device declares, in hwabstract's order (none when unavailable)."""
        from ..dtypes import all_dtypes

        caps = self.caps
        return [] if caps is None else [d for d in all_dtypes() if caps.supports_dtype(d)]

    def claims_kernel(self, name: str, dtype: Any) -> bool:
        caps = self.caps
        return caps is not None and caps.supports_kernel(name, dtype)

    def peers(self) -> list[Any]:
        """Other devices of the same backend (for copies between devices)."""
        if self.device is None:
            return []
        from .. import registry as reg

        return [d for d in reg.get_registry().devices(self.backend) if d is not self.device]

    def foreign(self) -> Any:
        """A device of another backend (the cpu reference), or None."""
        if self.device is None:
            return None
        from .. import registry as reg

        for d in reg.get_registry().devices():
            if d.backend != self.backend:
                return d
        return None


def _plugin_source(spec: str) -> Any:
    from ..registry import PluginSource

    def load() -> Any:
        path = Path(spec)
        if spec.endswith(".py") or path.is_file():
            name = f"_hwabstract_conformance_plugin_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot load a plugin from {spec}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            return module
        return importlib.import_module(spec)

    return PluginSource(Path(spec).stem if spec.endswith(".py") else spec, load, None, None)


def _load_expectations(config: pytest.Config, target: Target) -> Any:
    from .expectations import Expectations

    given = config.getoption("hwabstract_expectations")
    if given:
        return Expectations.load(Path(given))
    if target.device is None:
        return Expectations.empty()
    return Expectations.for_backend(target.device._impl)


def target(config: pytest.Config) -> Target:
    """The session's :class:`Target`, resolved on first use."""
    found = config.stash.get(_TARGET_KEY, None)
    if found is None:
        found = config.stash[_TARGET_KEY] = Target(config)
    return found


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def conformance(request: pytest.FixtureRequest) -> Target:
    """The device under test and its claims."""
    t = target(request.config)
    if t.device is None:
        pytest.skip(f"unavailable: {t.unavailable}")
    return t


@pytest.fixture(scope="session")
def device(conformance: Target) -> Any:
    """The :class:`hwabstract.Device` under test."""
    return conformance.device


# -- collection: only the suite's own items are ours -----------------------------------------------


def _is_suite_item(item: pytest.Item) -> bool:
    try:
        return Path(str(item.path)).resolve().is_relative_to(SUITE_DIR)
    except (OSError, ValueError):
        return False


def area_of(item: pytest.Item) -> str:
    name = Path(str(item.path)).stem
    return name[5:] if name.startswith("test_") else name


def test_id(item: pytest.Item) -> str:
    """``area::test_name[params]``: stable across installations (no file system path)."""
    return f"{area_of(item)}::{item.name}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    ours = [item for item in items if _is_suite_item(item)]
    if not ours:
        return
    if len(ours) == len(items):  # a conformance session: run the areas in report order
        from . import AREAS

        rank = {a: i for i, a in enumerate(AREAS)}
        items.sort(key=lambda item: rank.get(area_of(item), len(rank)))
        shard = config.getoption("hwabstract_shard")
        if shard is not None:
            # runs of neighbouring tests dealt round-robin (shard_of); suite_order puts the
            # slices' tests back in order
            i, n = shard
            keep = [it for k, it in enumerate(items) if shard_of(k, len(items), n) == i]
            kept = {id(item) for item in keep}
            config.hook.pytest_deselected(items=[it for it in items if id(it) not in kept])
            items[:] = keep
        ours = list(items)
    t = target(config)
    for item in ours:
        if t.unavailable is not None:
            item.add_marker(pytest.mark.skip(reason=f"unavailable: {t.unavailable}"))
            continue
        reason = t.expectations.match(test_id(item), standin=bool(t.device.info.standin))
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=f"expected failure: {reason}", strict=False))
    collector = ReportCollector(config, t, ours)
    config.stash[_SESSION_KEY] = collector
    config.pluginmanager.register(collector, "hwabstract-conformance-report")


# -- the report ------------------------------------------------------------------------------------


class ReportCollector:
    """Records every suite test's outcome and writes the reports at the end."""

    def __init__(self, config: pytest.Config, t: Target, items: list[pytest.Item]) -> None:
        self.config = config
        self.target = t
        self.started = time.perf_counter()
        self.records: dict[str, TestRecord] = {}
        self.order: list[str] = []
        self.ids: dict[str, tuple[str, str]] = {}  # nodeid -> (test id, area)
        self.remaining: dict[str, int] = {}
        self.area_started: dict[str, float] = {}
        self.collection_errors: list[TestRecord] = []
        for item in items:
            tid, area = test_id(item), area_of(item)
            self.ids[item.nodeid] = (tid, area)
            self.order.append(item.nodeid)
            self.remaining[area] = self.remaining.get(area, 0) + 1
        self.progress = bool(config.getoption("hwabstract_progress"))

    # pytest hooks (this object is registered as a plugin)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = _longrepr_line(report)
            self.collection_errors.append(
                TestRecord(
                    f"collection::{report.nodeid}",
                    "collection",
                    Outcome.FAILED,
                    0.0,
                    text.strip().splitlines()[0][:500] if text.strip() else "",
                    text[:4000],
                )
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ids = self.ids.get(report.nodeid)
        if ids is None:
            return
        tid, area = ids
        self.area_started.setdefault(area, time.perf_counter())
        record = self.records.get(report.nodeid)
        if record is None:
            record = self.records[report.nodeid] = TestRecord(tid, area, Outcome.PASSED, 0.0, "")
        record.duration += report.duration
        outcome = _outcome(report)
        if outcome is not None and _worse(outcome, record.outcome):
            record.outcome = outcome
            full = _message(report, outcome)
            first = full.strip().splitlines()[0] if full.strip() else ""
            record.message = first[:500]
            record.detail = full[:4000] if full.strip() != first else ""
        if report.when == "teardown":
            self.remaining[area] -= 1
            if self.remaining[area] == 0 and self.progress:
                self._area_line(area)

    def _area_line(self, area: str) -> None:
        recs = [r for r in self.records.values() if r.area == area]
        counts: dict[str, int] = {}
        for r in recs:
            counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
        took = time.perf_counter() - self.area_started.get(area, self.started)
        text = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted(counts.items()))
        mark = "FAIL" if counts.get(Outcome.FAILED.value) else "ok"
        print(f"  [{self.target.backend}] {area:<10} {mark:<4} {text} ({took:.1f} s)", flush=True)

    def report(self) -> dict[str, Any]:
        records = [self.records[n] for n in self.order if n in self.records]
        return build_report(
            self.target, records + self.collection_errors, time.perf_counter() - self.started
        )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        out = self.config.getoption("hwabstract_report_dir")
        report = self.report()
        self.config.stash[_REPORT_KEY] = report
        if out:
            write_reports(report, Path(out))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .report import render_text

        report = self.config.stash.get(_REPORT_KEY, None) or self.report()
        terminalreporter.section("hwabstract conformance")
        for line in render_text(report).splitlines():
            terminalreporter.write_line(line)


_REPORT_KEY = pytest.StashKey[dict]()

_RANK = {
    Outcome.PASSED: 0,
    Outcome.NOT_CLAIMED: 1,
    Outcome.SKIPPED: 1,
    Outcome.XFAILED: 2,
    Outcome.XPASSED: 2,
    Outcome.FAILED: 3,
}


def _worse(new: Outcome, old: Outcome) -> bool:
    """Whether a later phase's outcome replaces the one recorded so far (the worst wins)."""
    return _RANK[new] >= _RANK[old]


def _outcome(report: pytest.TestReport) -> Outcome | None:
    wasxfail = hasattr(report, "wasxfail")
    if report.passed:
        if report.when == "call" and wasxfail:
            return Outcome.XPASSED
        return None if report.when != "call" else Outcome.PASSED
    if report.skipped:
        if wasxfail:
            return Outcome.XFAILED
        reason = _skip_reason(report)
        return Outcome.NOT_CLAIMED if reason.startswith("not claimed") else Outcome.SKIPPED
    return Outcome.FAILED


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason[len("Skipped: ") :] if reason.startswith("Skipped: ") else reason
    return str(longrepr or "")


def _longrepr_line(report: Any) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    text = str(getattr(report, "longrepr", "") or "")
    return text.strip().splitlines()[-1] if text.strip() else ""


def _message(report: pytest.TestReport, outcome: Outcome) -> str:
    if outcome in (Outcome.SKIPPED, Outcome.NOT_CLAIMED):
        return _skip_reason(report)
    if outcome in (Outcome.XFAILED, Outcome.XPASSED):
        reason = str(getattr(report, "wasxfail", ""))
        if outcome is Outcome.XPASSED:
            return f"passed although expected to fail ({reason}); remove the stale expectation"
        return reason
    where = "" if report.when == "call" else f"[{report.when}] "
    return where + _longrepr_line(report)
