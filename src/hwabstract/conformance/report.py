"""Conformance reports: the JSON a machine checks, JUnit XML for CI systems, and Markdown and
HTML summaries a person reads; plus the terminal matrix of areas x backends.

One run certifies one device; its report is a JSON document (schema
``hwabstract-conformance/1``)::

    {"schema", "generated", "status", "reason", "backend", "device": {...fingerprint...},
     "versions": {...}, "capabilities": {...}, "expectations": {...}, "duration_s",
     "areas": {area: {outcome: count, "duration_s": ...}}, "totals": {outcome: count},
     "tests": [{"id", "area", "outcome", "duration_s", "message"}, ...]}

``status`` is ``passed`` (nothing failed), ``failed`` or ``unavailable`` (the backend could
not be certified here; ``reason`` says why). Outcomes: ``passed``, ``failed``,
``not_claimed`` (the device does not declare what the test needs), ``skipped`` (the test
cannot run here, e.g. it needs a second device), ``xfailed`` (a failure the backend's
expectations file lists) and ``xpassed`` (a listed failure that passed: the entry is stale).
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import html
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from . import AREAS  # the areas of the suite, in the order reports list them

__all__ = [
    "AREAS",
    "HTML_CSS",
    "SCHEMA",
    "Outcome",
    "TestRecord",
    "build_report",
    "load_report",
    "render_html",
    "render_html_body",
    "render_markdown",
    "render_matrix",
    "render_text",
    "unavailable_report",
    "write_reports",
]

SCHEMA = "hwabstract-conformance/1"


class Outcome(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_CLAIMED = "not_claimed"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"


_OUTCOME_ORDER = [o.value for o in Outcome]

NO_TESTS = "no conformance test ran"  #: the reason of a run that collected nothing


class TestRecord:
    """One test's result (mutable while the test's phases are reported)."""

    __slots__ = ("area", "detail", "duration", "id", "message", "outcome")
    __test__ = False  # not a pytest test class

    def __init__(
        self, id: str, area: str, outcome: Outcome, duration: float, message: str, detail: str = ""
    ) -> None:
        self.id = id
        self.area = area
        self.outcome = outcome
        self.duration = duration
        self.message = message  #: one line: what went wrong
        self.detail = detail  #: the full failure text (values, inputs), when there is more

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "area": self.area,
            "outcome": self.outcome.value,
            "duration_s": round(self.duration, 6),
            "message": self.message,
        }
        if self.detail:
            out["detail"] = self.detail
        return out


# -- building --------------------------------------------------------------------------------------


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _versions(status: Any) -> dict[str, Any]:
    import numpy as np

    from .. import __version__
    from ..backend import API_LEVEL

    return {
        "hwabstract": __version__,
        "contract_api_level": API_LEVEL,
        "backend_api_level": getattr(status, "api_level", None),
        "plugin": getattr(status, "plugin", None),
        "plugin_distribution": getattr(status, "distribution", None),
        "plugin_version": getattr(status, "version", None),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
    }


def device_fingerprint(device: Any) -> dict[str, Any]:
    """What the device is, as a report records it; ``fingerprint`` hashes the identity and
    the capability manifest, so two reports of the same fingerprint certify the same claims."""
    info = device.info
    caps = device.capabilities
    manifest = {
        "dtypes": {
            d.name: s.value for d, s in sorted(caps.dtypes.items(), key=lambda i: i[0].name)
        },
        "kernels": {k: sorted(d.name for d in v) for k, v in sorted(caps.kernels.items())},
        "features": sorted(f.value for f in caps.features),
        "limits": {
            "memory_capacity": caps.limits.memory_capacity,
            "max_allocation": caps.limits.max_allocation,
            "max_dims": caps.limits.max_dims,
        },
    }
    identity = {
        "name": info.name,
        "vendor": info.vendor,
        "model": info.model,
        "driver_version": info.driver_version,
        "standin": info.standin,
        "standin_for": info.standin_for,
    }
    digest = hashlib.sha256(
        json.dumps({"identity": identity, "manifest": manifest}, sort_keys=True).encode()
    ).hexdigest()[:16]
    return {
        "spec": device.name,
        **identity,
        "description": info.description,
        "memory_capacity": info.memory_capacity,
        "modeled_memory_capacity": info.modeled_memory_capacity,
        "fingerprint": digest,
        "manifest": manifest,
    }


def _tally(records: Iterable[TestRecord]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    areas: dict[str, dict[str, Any]] = {}
    totals: dict[str, int] = dict.fromkeys(_OUTCOME_ORDER, 0)
    for r in records:
        a = areas.setdefault(r.area, {**dict.fromkeys(_OUTCOME_ORDER, 0), "duration_s": 0.0})
        a[r.outcome.value] += 1
        a["duration_s"] = round(a["duration_s"] + r.duration, 3)
        totals[r.outcome.value] += 1
    ordered = {a: areas[a] for a in (*AREAS, *sorted(set(areas) - set(AREAS))) if a in areas}
    return ordered, totals


def _status(totals: Mapping[str, int], ran: int) -> tuple[str, str | None]:
    """A run's status and reason from its totals and the number of tests it ran."""
    if totals[Outcome.FAILED.value]:
        return "failed", f"{totals[Outcome.FAILED.value]} test(s) failed"
    if not ran:
        return "failed", NO_TESTS
    return "passed", None


def build_report(target: Any, records: Sequence[TestRecord], duration: float) -> dict[str, Any]:
    """The JSON-ready report of one run against ``target`` (a plugin ``Target``)."""
    areas, totals = _tally(records)
    if target.unavailable is not None:
        status, reason = "unavailable", target.unavailable
    else:
        status, reason = _status(totals, len(records))
    device = target.device
    expectations = target.expectations
    return {
        "schema": SCHEMA,
        "generated": _now(),
        "status": status,
        "reason": reason,
        "backend": target.backend,
        "device": None if device is None else device_fingerprint(device),
        "versions": _versions(target.status),
        "expectations": {"source": expectations.source, "entries": len(expectations.entries)},
        "duration_s": round(duration, 3),
        "areas": areas,
        "totals": totals,
        "tests": [r.to_dict() for r in records],
    }


def merge_reports(parts: Sequence[Mapping[str, Any]], duration: float,
                  tests: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """One backend's report from the reports of runs over disjoint slices of the suite
    (``hwabstract conformance --jobs``): their tests tallied again, listed as ``tests``
    gives them (the parts' tests in the suite's order), else concatenated in part order;
    unavailable if any part was, failed if a part crashed or a test failed. A slice that
    held no test (more slices than tests) adds nothing."""
    if not parts:
        raise ValueError("merge_reports needs at least one report")
    backends = {p["backend"] for p in parts}
    if len(backends) != 1:
        raise ValueError(f"cannot merge reports of different backends: {sorted(backends)}")
    unavailable = [p for p in parts if p["status"] == "unavailable"]
    if unavailable:
        return dict(unavailable[0])
    records = [
        TestRecord(
            t["id"],
            t["area"],
            Outcome(t["outcome"]),
            t["duration_s"],
            t["message"],
            t.get("detail", ""),
        )
        for t in (tests if tests is not None else [t for p in parts for t in p["tests"]])
    ]
    areas, totals = _tally(records)
    crashed = [
        p for p in parts if p["status"] == "failed" and not p["tests"] and p["reason"] != NO_TESTS
    ]
    if crashed:
        status, reason = "failed", crashed[0]["reason"]
    else:
        status, reason = _status(totals, len(records))
    device = next((p["device"] for p in parts if p["device"] is not None), None)
    return {
        **parts[0],
        "generated": _now(),
        "status": status,
        "reason": reason,
        "device": device,
        "duration_s": round(duration, 3),
        "areas": areas,
        "totals": totals,
        "tests": [r.to_dict() for r in records],
    }


def unavailable_report(backend: str, reason: str, status: Any = None) -> dict[str, Any]:
    """The report of a backend that could not be certified at all (never a silent pass)."""
    return {
        "schema": SCHEMA,
        "generated": _now(),
        "status": "unavailable",
        "reason": reason,
        "backend": backend,
        "device": None,
        "versions": _versions(status),
        "expectations": {"source": None, "entries": 0},
        "duration_s": 0.0,
        "areas": {},
        "totals": dict.fromkeys(_OUTCOME_ORDER, 0),
        "tests": [],
    }


def load_report(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a {SCHEMA} report")
    return data


# -- writing ---------------------------------------------------------------------------------------


def write_reports(report: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """Write report.json, junit.xml, report.md and report.html into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "report.json",
        "junit": out / "junit.xml",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    paths["json"].write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    paths["junit"].write_bytes(render_junit(report))
    paths["markdown"].write_text(render_markdown([report]), encoding="utf-8")
    paths["html"].write_text(render_html([report]), encoding="utf-8")
    return paths


def render_junit(report: Mapping[str, Any]) -> bytes:
    """JUnit XML: one testsuite per area; not-claimed tests are skipped with that reason."""
    backend = str(report["backend"])
    root = ET.Element("testsuites", name=f"hwabstract conformance: {backend}")
    by_area: dict[str, list[Mapping[str, Any]]] = {}
    for t in report["tests"]:
        by_area.setdefault(t["area"], []).append(t)
    if report["status"] == "unavailable":
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{backend}.availability",
            tests="1",
            failures="0",
            errors="0",
            skipped="1",
        )
        case = ET.SubElement(suite, "testcase", classname=backend, name="available")
        ET.SubElement(case, "skipped", message=f"unavailable: {report['reason']}")
    for area, tests in by_area.items():
        failures = sum(t["outcome"] == "failed" for t in tests)
        skipped = sum(t["outcome"] in ("not_claimed", "skipped", "xfailed") for t in tests)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{backend}.{area}",
            tests=str(len(tests)),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
            time=f"{sum(t['duration_s'] for t in tests):.3f}",
        )
        for t in tests:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{backend}.{area}",
                name=t["id"].split("::", 1)[-1],
                time=f"{t['duration_s']:.6f}",
            )
            outcome = t["outcome"]
            if outcome == "failed":
                failure = ET.SubElement(case, "failure", message=t["message"][:2000])
                failure.text = t.get("detail") or t["message"]
            elif outcome in ("not_claimed", "skipped", "xfailed"):
                label = outcome.replace("_", " ")
                ET.SubElement(case, "skipped", message=f"{label}: {t['message']}"[:2000])
            elif outcome == "xpassed":
                ET.SubElement(case, "system-out").text = t["message"]
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# -- rendering -------------------------------------------------------------------------------------

_SHORT = {
    "passed": "ok",
    "failed": "FAILED",
    "not_claimed": "not claimed",
    "skipped": "skipped",
    "xfailed": "expected fail",
    "xpassed": "STALE expectation",
}


def _cell(area: Mapping[str, Any] | None) -> str:
    if not area:
        return "-"
    parts = [f"{area[o]} {_SHORT[o]}" for o in _OUTCOME_ORDER if area.get(o)]
    return ", ".join(parts) or "-"


def _make(d: Mapping[str, Any]) -> str:
    """Vendor and model, once: a model that already starts with its vendor's name (CUDA
    calls an H200 "NVIDIA H200") is not prefixed again."""
    vendor, model = str(d["vendor"]), str(d["model"])
    return model if model.startswith(vendor) else f"{vendor} {model}"


def _device_line(report: Mapping[str, Any]) -> str:
    d = report.get("device")
    if not d:
        return f"{report['backend']}: no device"
    standin = f"; STAND-IN for {d['standin_for']}" if d.get("standin") else ""
    what = f"{d['name']} ({_make(d)}{standin})"
    return f"{d['spec']}: {what}, fingerprint {d['fingerprint']}"


def _status_text(report: Mapping[str, Any]) -> str:
    status = str(report["status"]).upper()
    return f"{status}: {report['reason']}" if report.get("reason") else status


def render_matrix(reports: Sequence[Mapping[str, Any]]) -> str:
    """The terminal matrix: one row per area, one column per backend."""
    from ..cli import format_table

    areas = [a for a in AREAS if any(a in r["areas"] for r in reports)]
    areas += sorted({a for r in reports for a in r["areas"]} - set(areas))
    headers = ["AREA", *[str(r["backend"]) for r in reports]]
    rows = []
    for area in areas:
        row = [area]
        for r in reports:
            row.append(
                "UNAVAILABLE" if r["status"] == "unavailable" else _cell(r["areas"].get(area))
            )
        rows.append(row)
    # A short reason stays in its cell; a long one (an unavailable backend's install hint)
    # would widen its column to hundreds of characters, so it goes under the table.
    notes = []
    result = ["RESULT"]
    for r in reports:
        text = _status_text(r) if r["status"] != "passed" else "PASSED"
        if len(text) > _MATRIX_CELL:
            notes.append(f"{r['backend']}: {text}")
            text = f"{str(r['status']).upper()} (below)"
        result.append(text)
    rows.append(result)
    return "\n".join([format_table(headers, rows), *notes])


#: The widest RESULT cell of the terminal matrix; longer statuses are printed under it.
_MATRIX_CELL = 40


def render_text(report: Mapping[str, Any]) -> str:
    lines = [f"{report['backend']}: {_status_text(report)}", _device_line(report)]
    if report["areas"]:
        lines.append(render_matrix([report]))
    lines += _problem_lines(report, limit=20)
    return "\n".join(lines)


def _problems(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in report["tests"] if t["outcome"] in ("failed", "xpassed")]


def _problem_lines(report: Mapping[str, Any], limit: int) -> list[str]:
    problems = _problems(report)
    lines = [f"  {t['outcome'].upper()} {t['id']}: {t['message']}" for t in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more (see report.json)")
    return lines


def _claims_not_made(report: Mapping[str, Any]) -> list[str]:
    """What the device does not claim, once each (many tests skip for one missing claim)."""
    return sorted({t["message"] for t in report["tests"] if t["outcome"] == "not_claimed"})


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(reports: Sequence[Mapping[str, Any]]) -> str:
    out = ["# hwabstract conformance report", ""]
    for r in reports:
        v = r["versions"]
        out += [f"## {r['backend']}: {_status_text(r)}", ""]
        d = r.get("device")
        if d:
            standin = (
                f"**stand-in** for {d['standin_for']}" if d.get("standin") else "real hardware"
            )
            out += [
                f"- device: `{d['spec']}`, {d['name']} ({_make(d)}), {standin}",
                f"- fingerprint: `{d['fingerprint']}`; driver: {d.get('driver_version') or '-'}",
            ]
        out += [
            f"- hwabstract {v['hwabstract']} (contract API level {v['contract_api_level']}); "
            f"plugin {v.get('plugin_distribution') or v.get('plugin') or '-'} "
            f"{v.get('plugin_version') or ''}; Python {v['python']}, NumPy {v['numpy']}, "
            f"{v['platform']}",
            f"- expectations: {r['expectations']['entries']} known failure(s) listed"
            + (f" in `{r['expectations']['source']}`" if r["expectations"]["source"] else ""),
            f"- generated {r['generated']}, {r['duration_s']:.1f} s",
            "",
        ]
        if r["areas"]:
            out += [
                "| area | " + " | ".join(_SHORT[o] for o in _OUTCOME_ORDER) + " | time (s) |",
                "|---|" + "---|" * (len(_OUTCOME_ORDER) + 1),
            ]
            for area, a in r["areas"].items():
                counts = " | ".join(str(a[o]) for o in _OUTCOME_ORDER)
                out.append(f"| {area} | {counts} | {a['duration_s']:.1f} |")
            out.append("")
        problems = _problems(r)
        if problems:
            out += ["### Failures and stale expectations", ""]
            out += [
                f"- `{t['id']}` ({t['outcome']}): {_md_escape(t['message'])}"
                for t in problems[:200]
            ]
            out.append("")
        not_claimed = _claims_not_made(r)
        if not_claimed:
            out += [f"<details><summary>{len(not_claimed)} claims not made</summary>", ""]
            out += [f"- {_md_escape(m)}" for m in not_claimed]
            out += ["", "</details>", ""]
    return "\n".join(out)


#: The style sheet of the HTML reports (summary.html, report.html, the main job's page).
HTML_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left}th{background:#f3f3f3}.passed{color:#176b2c}.failed{color:#b00020;
font-weight:bold}.unavailable{color:#8a6d00;font-weight:bold}.standin{background:#fff4cc;
padding:0 4px}code{background:#f6f6f6;padding:0 3px}details{margin:.5em 0}
"""


def render_html(reports: Sequence[Mapping[str, Any]], title: str = "hwabstract conformance") -> str:
    e = html.escape
    return "\n".join(
        [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
            f"<style>{HTML_CSS}</style></head><body><h1>{e(title)}</h1>",
            render_html_body(reports),
            "</body></html>",
        ]
    )


def render_html_body(reports: Sequence[Mapping[str, Any]], heading: int = 2) -> str:
    """The matrix (areas x backends) and one section per backend, as an HTML fragment for a
    page styled with :data:`HTML_CSS`; backend sections use ``<h{heading}>``."""
    e = html.escape
    h, h3 = f"h{heading}", f"h{heading + 1}"
    parts: list[str] = []
    if len(reports) > 1 or (reports and reports[0]["areas"]):
        areas = [a for a in AREAS if any(a in r["areas"] for r in reports)]
        parts.append(
            "<table><tr><th>area</th>"
            + "".join(f"<th>{e(str(r['backend']))}</th>" for r in reports)
            + "</tr>"
        )
        for area in areas:
            cells = "".join(
                f"<td class='{_css_class(r, area)}'>{e(_area_text(r, area))}</td>" for r in reports
            )
            parts.append(f"<tr><td>{e(area)}</td>{cells}</tr>")
        parts.append(
            "<tr><th>result</th>"
            + "".join(f"<th class='{e(r['status'])}'>{e(_status_text(r))}</th>" for r in reports)
            + "</tr>"
        )
        parts.append("</table>")
    for r in reports:
        parts.append(
            f"<{h} class='{e(r['status'])}'>{e(str(r['backend']))}: {e(_status_text(r))}</{h}>"
        )
        d = r.get("device")
        if d:
            standin = (
                f"<span class='standin'>stand-in for {e(str(d['standin_for']))}</span>"
                if d.get("standin")
                else "real hardware"
            )
            parts.append(
                f"<p><code>{e(d['spec'])}</code> {e(d['name'])} ({e(_make(d))}), "
                f"{standin}; fingerprint <code>{e(d['fingerprint'])}"
                "</code></p>"
            )
        v = r["versions"]
        parts.append(
            f"<p>hwabstract {e(str(v['hwabstract']))}, API level "
            f"{e(str(v['contract_api_level']))}; plugin "
            f"{e(str(v.get('plugin_distribution') or v.get('plugin') or '-'))} "
            f"{e(str(v.get('plugin_version') or ''))}; {e(r['generated'])}, "
            f"{r['duration_s']:.1f} s</p>"
        )
        problems = _problems(r)
        if problems:
            parts.append(f"<{h3}>Failures and stale expectations</{h3}><ul>")
            parts += [
                f"<li><code>{e(t['id'])}</code> ({e(t['outcome'])}): {e(t['message'])}</li>"
                for t in problems[:500]
            ]
            parts.append("</ul>")
        not_claimed = _claims_not_made(r)
        if not_claimed:
            parts.append(f"<details><summary>{len(not_claimed)} claims not made</summary><ul>")
            parts += [f"<li>{e(m)}</li>" for m in not_claimed]
            parts.append("</ul></details>")
    return "\n".join(parts)


def _area_text(report: Mapping[str, Any], area: str) -> str:
    if report["status"] == "unavailable":
        return "UNAVAILABLE"
    return _cell(report["areas"].get(area))


def _css_class(report: Mapping[str, Any], area: str) -> str:
    if report["status"] == "unavailable":
        return "unavailable"
    a = report["areas"].get(area) or {}
    return "failed" if a.get("failed") else "passed"
