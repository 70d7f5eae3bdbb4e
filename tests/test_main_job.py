"""The main job's report: the queue-timeline picture, its figures and the HTML page; and the
``hwabstract main-job`` command end to end on cpu (with the conformance run replaced by a
stand-in that writes reports, so this stays fast: the conformance envs certify for real)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import cpu_source

import hwabstract as hw
from hwabstract import cli
from hwabstract.backend import TimelineEntry
from hwabstract.conformance import report as report_mod
from hwabstract.demo import DemoConfig, run_demo
from hwabstract.main_job import (
    render_main_job_html,
    render_timeline_svg,
    timeline_summary,
    write_main_job_report,
)
from hwabstract.registry import Registry

SVG = "{http://www.w3.org/2000/svg}"


def entry(queue: int, name: str, kind: str, start: float, duration: float) -> TimelineEntry:
    return TimelineEntry(queue, name, kind, start, duration, nbytes=64, flops=0.0)


TIMELINE = [
    entry(0, "copy h2d", "copy", 0.0, 2.0),
    entry(0, "matmul", "kernel", 2.0, 10.0),
    entry(1, "copy h2d", "copy", 0.0, 4.0),
    entry(1, "copy h2d", "copy", 4.0, 4.0),  # overlaps the matmul for 6 us in all
    entry(0, "wait", "sync", 12.0, 3.0),  # waits are not work
    entry(0, "copy d2h", "copy", 15.0, 1.0),
]


def test_timeline_entry_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="kernel, copy, sync or other"):
        TimelineEntry(0, "x", "compute", 0.0, 1.0)


def test_timeline_summary_counts_busy_time_and_overlap() -> None:
    s = timeline_summary(TIMELINE, {"compute": 0, "upload": 1})
    assert s["commands"] == 6 and s["span_us"] == 16.0
    assert s["busy_us"] == {"compute (queue 0)": 13.0, "upload (queue 1)": 8.0}
    # union of busy intervals: [0, 12] and [15, 16] = 13 us; 21 us of work -> 8 us overlapped
    assert s["overlapped_us"] == 8.0
    assert timeline_summary([])["span_us"] == 0.0


def test_timeline_svg_draws_every_command_on_its_queue_row() -> None:
    svg = render_timeline_svg(TIMELINE, {"compute": 0, "upload": 1}, title="t <&>")
    root = ET.fromstring(svg)  # well-formed, and the title was escaped
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "t <&>" in texts and "compute (queue 0)" in texts and "upload (queue 1)" in texts
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == len(TIMELINE)
    tips = sorted("".join(r.find(f"{SVG}title").itertext()) for r in bars)  # type: ignore[union-attr]
    assert tips[0].startswith("copy d2h: 1.000 us modeled, from 15.000 us")
    rows = {float(r.get("y", "nan")) for r in bars}
    assert len(rows) == 2  # one row per queue
    # bars are placed in time order on the same scale: the matmul starts where the first
    # copy of queue 0 ends, and the d2h copy is the rightmost bar
    by_tip = {"".join(r.find(f"{SVG}title").itertext()): r for r in bars}  # type: ignore[union-attr]
    first = next(r for t, r in by_tip.items() if t.startswith("copy h2d") and "from 0.000" in t)
    matmul = next(r for t, r in by_tip.items() if t.startswith("matmul"))
    end_of_first = float(first.get("x", "0")) + float(first.get("width", "0"))
    assert float(matmul.get("x", "0")) == pytest.approx(end_of_first, abs=0.02)
    failed = render_timeline_svg([attrs.evolve(TIMELINE[1], failed=True)])
    assert "(FAILED)" in failed and "#b00020" in failed


def test_an_empty_timeline_says_so() -> None:
    assert "no commands recorded" in render_timeline_svg([])


def _fake_conformance(reports: list[dict[str, Any]]) -> Any:
    def run_conformance(backends: Any, report_dir: Path, **kwargs: Any) -> int:
        for r in reports:
            report_mod.write_reports(r, report_dir / r["backend"])
        (report_dir / "conformance.json").write_text(json.dumps(reports), encoding="utf-8")
        return 0

    return run_conformance


@pytest.fixture
def cpu_only(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry([cpu_source()])


@pytest.mark.usefixtures("cpu_only")
def test_main_job_writes_one_page_with_demo_devices_and_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hwabstract.conformance import runner

    fake = [report_mod.unavailable_report("acme", "no Acme device: driver not loaded")]
    monkeypatch.setattr(runner, "run_conformance", _fake_conformance(fake))
    status = cli.main(["main-job", "--report-dir", str(tmp_path), "--batches", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "== devices" in out and "== the portable demo" in out and "main job: PASSED" in out
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<h2>Conformance matrix</h2>" in page and "no Acme device: driver not loaded" in page
    assert "cpu:0" in page and "Portable demo" in page
    assert "Queue timeline" not in page  # cpu models no time
    demo = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
    assert demo["ok"] and demo["devices"][0]["timeline"] is None


@pytest.mark.usefixtures("cpu_only")
def test_a_failing_conformance_run_fails_the_main_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hwabstract.conformance import runner

    def failed(backends: Any, report_dir: Path, **kwargs: Any) -> int:
        return 1  # (and wrote nothing: the page says no backend was certified)

    # a previous run's matrix must not be shown as this run's
    stale = [report_mod.unavailable_report("old", "from an earlier run")]
    (tmp_path / "conformance.json").write_text(json.dumps(stale), encoding="utf-8")
    monkeypatch.setattr(runner, "run_conformance", failed)
    assert cli.main(["main-job", "--report-dir", str(tmp_path), "--batches", "1"]) == 1
    assert "main job: FAILED" in capsys.readouterr().out
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "main job: <span class='failed'>FAILED</span>" in page
    assert "no backend was certified" in page and "from an earlier run" not in page


@pytest.mark.usefixtures("cpu_only")
def test_the_page_shows_the_commands_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A named backend that is unavailable fails the command (exit 3 from the conformance
    run), although no report says "failed": the page says what the exit status says."""
    from hwabstract.conformance import runner

    fake = [report_mod.unavailable_report("acme", "no Acme device")]
    write = _fake_conformance(fake)

    def unavailable(backends: Any, report_dir: Path, **kwargs: Any) -> int:
        write(backends, report_dir, **kwargs)
        return 3

    monkeypatch.setattr(runner, "run_conformance", unavailable)
    argv = ["main-job", "--report-dir", str(tmp_path), "--batches", "1", "--backend", "acme"]
    assert cli.main(argv) == 1
    assert "main job: FAILED" in capsys.readouterr().out
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "main job: <span class='failed'>FAILED</span>" in page


def test_the_page_draws_a_timeline_for_a_device_that_models_time(tmp_path: Path) -> None:
    result = run_demo(["cpu:0"], config=DemoConfig(batches=1))
    modeled = attrs.evolve(
        result.runs[0], timeline=tuple(TIMELINE), queues={"compute": 0, "upload": 1}
    )
    result = attrs.evolve(result, runs=(modeled,))
    page = write_main_job_report(
        tmp_path, ok=True, backends=hw.backends(), devices=hw.devices(), demo=result, reports=[]
    )
    html = page.read_text(encoding="utf-8")
    assert "Queue timeline of <code>cpu:0</code>" in html
    assert "work overlapped with another queue's: 8.00 us" in html
    assert html.count("<svg") == 1  # inline, so its tooltips work
    assert (tmp_path / "timeline-cpu-0.svg").read_text(encoding="utf-8").startswith("<svg")
    assert "no backend was certified" in html
    assert "main job: <span class='passed'>PASSED</span>" in html  # (the verdict it was given)
    again = render_main_job_html(
        ok=False, backends=[], devices=[], demo=result, reports=[], timelines={}
    )
    assert "Queue timeline" not in again and "<span class='failed'>FAILED</span>" in again
