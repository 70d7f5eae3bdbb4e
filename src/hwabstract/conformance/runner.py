"""``hwabstract conformance``: run the suite against one or more backends, each in its own
pytest process, and combine their reports.

Each backend runs in a subprocess so that a backend that crashes the interpreter (a
segfault in a vendor library) is reported as a failed run instead of taking the command
down, and so that each run discovers plugins afresh. The subprocess ignores the caller's
pytest configuration (``-c`` names an empty one): a project's ``addopts`` or warning
filters do not change what the suite certifies.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import AREAS
from .report import (
    load_report,
    merge_reports,
    render_html,
    render_markdown,
    render_matrix,
    unavailable_report,
    write_reports,
)

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_UNAVAILABLE", "run_conformance"]

EXIT_OK = 0
EXIT_FAILED = 1  #: some test failed, or a run crashed
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3  #: a backend named on the command line could not be certified here


def _plugin_registered() -> bool:
    """Whether the pytest11 entry point of the suite's plugin is installed."""
    return any(ep.name == "hwabstract" for ep in md.entry_points(group="pytest11"))


def _pytest_available() -> str | None:
    try:
        import pytest  # noqa: F401
    except ImportError:
        return "pytest is not installed; pip install 'hwabstract[conformance]'"
    return None


def _statuses(plugins: Sequence[str]) -> dict[str, Any]:
    from .. import registry as reg

    if plugins:
        from .plugin import _plugin_source

        registry = reg.Registry(
            sources=[*reg._entry_point_sources(), *(_plugin_source(p) for p in plugins)]
        )
    else:
        registry = reg.get_registry()
    return {s.name: s for s in registry.backends()}


def _pytest_command(
    backend: str,
    out: Path,
    ini: Path,
    *,
    device: str | None,
    expectations: str | None,
    plugins: Sequence[str],
    areas: Sequence[str],
    select: str | None,
) -> list[str]:
    targets = [f"hwabstract.conformance.suite.test_{a}" for a in areas] or [
        "hwabstract.conformance.suite"
    ]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        *targets,
        "-c",
        str(ini),
        "--rootdir",
        str(ini.parent),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",
        "--hwabstract-backend",
        backend,
        "--hwabstract-report-dir",
        str(out),
        "--hwabstract-progress",
    ]
    if not _plugin_registered():
        cmd += ["-p", "hwabstract.conformance.plugin"]
    if device:
        cmd += ["--hwabstract-device", device]
    if expectations:
        cmd += ["--hwabstract-expectations", expectations]
    for p in plugins:
        cmd += ["--hwabstract-plugin", p]
    if select:
        cmd += ["-k", select]
    return cmd


def _crashed_report(backend: str, rc: int, status: Any) -> dict[str, Any]:
    report = unavailable_report(backend, "", status)
    how = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
    report["status"] = "failed"
    report["reason"] = (
        f"the conformance run of {backend} ended with {how} before writing its report "
        "(a crash in the backend, or an internal error; run the suite with pytest to see it)"
    )
    return report


def run_conformance(
    backends: Sequence[str],
    report_dir: Path | None,
    *,
    device: str | None = None,
    expectations: str | None = None,
    plugins: Sequence[str] = (),
    areas: Sequence[str] = (),
    select: str | None = None,
    allow_unavailable: bool = False,
    json_output: bool = False,
    jobs: int = 1,
) -> int:
    """Certify ``backends`` (default: every discovered one) and print the matrix. Returns
    the exit status: 0 all passed, 1 a failure, 3 a named backend was unavailable."""
    problem = _pytest_available()
    if problem:
        print(f"hwabstract conformance: {problem}", file=sys.stderr)
        return EXIT_USAGE
    unknown_areas = [a for a in areas if a not in AREAS]
    if unknown_areas:
        print(
            f"hwabstract conformance: unknown area(s) {unknown_areas}; the areas are "
            f"{', '.join(AREAS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if expectations:
        from ..errors import PluginError
        from .expectations import Expectations

        try:
            Expectations.load(Path(expectations))
        except PluginError as exc:
            print(f"hwabstract conformance: {exc}", file=sys.stderr)
            return EXIT_USAGE
        expectations = str(Path(expectations).resolve())
    statuses = _statuses(plugins)
    named = list(dict.fromkeys(backends))
    chosen = named or [name for name, s in statuses.items() if s.status != "disabled"]
    with tempfile.TemporaryDirectory(prefix="hwabstract-conformance-") as tmp:
        base = Path(report_dir) if report_dir is not None else Path(tmp) / "reports"
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        reports = []
        for backend in chosen:
            reports.append(
                _certify(
                    backend,
                    base / backend,
                    ini,
                    statuses,
                    device,
                    expectations,
                    plugins,
                    areas,
                    select,
                    jobs=jobs,
                    quiet=json_output,
                )
            )
        if report_dir is not None:
            _write_combined(reports, base)
    if json_output:
        print(json.dumps(reports, indent=1))
    else:
        print()
        print(render_matrix(reports))
        for r in reports:
            for t in [t for t in r["tests"] if t["outcome"] in ("failed", "xpassed")][:10]:
                print(f"  {r['backend']}: {t['outcome'].upper()} {t['id']}: {t['message']}")
        if report_dir is not None:
            print(
                f"\nreports: {base / 'summary.html'} (and summary.md, conformance.json, "
                "one directory per backend with report.json, junit.xml, report.md, "
                "report.html)"
            )
    if any(r["status"] == "failed" for r in reports):
        return EXIT_FAILED
    if not allow_unavailable and any(
        r["status"] == "unavailable" and r["backend"] in named for r in reports
    ):
        return EXIT_UNAVAILABLE
    if not reports:
        print("hwabstract conformance: no backend to certify", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _certify(
    backend: str,
    out: Path,
    ini: Path,
    statuses: dict[str, Any],
    device: str | None,
    expectations: str | None,
    plugins: Sequence[str],
    areas: Sequence[str],
    select: str | None,
    *,
    jobs: int = 1,
    quiet: bool,
) -> dict[str, Any]:
    status = statuses.get(backend)
    if status is None or not status.ok:
        reason = (
            f"no backend named {backend!r} is installed (installed: "
            f"{', '.join(sorted(statuses)) or 'none'})"
            if status is None
            else f"{status.status}: {status.reason}"
        )
        report = unavailable_report(backend, reason, status)
        write_reports(report, out)
        if not quiet:
            print(f"{backend}: UNAVAILABLE ({reason})", flush=True)
        return report
    if not quiet:
        standin = " (stand-in)" if status.standin else ""
        print(f"{backend}{standin}: certifying {device or backend + ':0'} ...", flush=True)
    report_file = out / "report.json"
    if report_file.exists():
        report_file.unlink()
    started = time.perf_counter()

    def command(out_dir: Path) -> list[str]:
        return _pytest_command(
            backend,
            out_dir,
            ini,
            device=device,
            expectations=expectations,
            plugins=plugins,
            areas=areas,
            select=select,
        )

    if jobs > 1:
        report = _certify_in_shards(backend, out, ini, status, command, jobs=jobs, quiet=quiet)
    else:
        proc = subprocess.run(
            command(out),
            stdout=subprocess.DEVNULL if quiet else None,
            env=_child_env(),
            check=False,
        )
        if not report_file.exists():
            report = _crashed_report(backend, proc.returncode, status)
            write_reports(report, out)
        else:
            report = load_report(report_file)
    if not quiet:
        took = time.perf_counter() - started
        print(f"{backend}: {report['status'].upper()} in {took:.1f} s", flush=True)
    return report


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def _certify_in_shards(
    backend: str,
    out: Path,
    ini: Path,
    status: Any,
    command: Callable[[Path], list[str]],
    *,
    jobs: int,
    quiet: bool,
) -> dict[str, Any]:
    """``--jobs N``: N pytest processes at once, each running one slice of the suite
    (``--hwabstract-shard I/N``: runs of neighbouring tests dealt round-robin, so that the
    slow stretches are shared), their reports merged into one, in the suite's order.
    Every test makes its own tensors, so this changes how long the run takes, not what it
    certifies; each process is still isolated from the command."""
    started = time.perf_counter()
    children = []
    for i in range(jobs):
        part_out = ini.parent / "shards" / backend / str(i)
        cmd = [*command(part_out), "--hwabstract-shard", f"{i}/{jobs}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=_child_env())
        children.append((proc, part_out))
    parts = []
    for i, (proc, part_out) in enumerate(children):
        rc = proc.wait()
        part_file = part_out / "report.json"
        if part_file.exists():
            part = load_report(part_file)
        else:
            part = _crashed_report(backend, rc, status)
            part["reason"] = part["reason"].replace(
                f"conformance run of {backend}",
                f"conformance run of {backend} (slice {i + 1} of {jobs})",
            )
        parts.append(part)
        if not quiet:
            took = time.perf_counter() - started
            print(
                f"  {backend} slice {i + 1}/{jobs}: {part['status'].upper()}, "
                f"{len(part['tests'])} tests, done after {took:.1f} s",
                flush=True,
            )
    from .plugin import suite_order

    # the tests back in the suite's order (where a slice crashed, in slice order)
    ordered = suite_order([p["tests"] for p in parts])
    report = merge_reports(parts, time.perf_counter() - started, ordered)
    write_reports(report, out)
    return report


def _write_combined(reports: list[dict[str, Any]], base: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    (base / "conformance.json").write_text(json.dumps(reports, indent=1) + "\n", encoding="utf-8")
    (base / "summary.md").write_text(render_markdown(reports), encoding="utf-8")
    (base / "summary.html").write_text(render_html(reports), encoding="utf-8")
