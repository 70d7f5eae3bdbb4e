"""The main job: the portable demo and the conformance matrix on every available backend, in
one HTML report (``hwabstract main-job``, ``tox -e demo``).

The report (``index.html`` in the report directory) holds the backends found and why any is
unavailable, the devices (stand-ins marked as such), the demo's results per device, a
timeline picture of the queues of every device that models time -- the Maia emulator draws
its performance model's clock, what Maia 200 would take, not what this host took -- and the
conformance matrix with one section per backend. Beside it: ``demo.json``, one
``timeline-<backend>-<index>.svg`` per timeline, and the conformance reports
(``summary.html``, ``conformance.json``, one directory per backend).
"""

from __future__ import annotations

import datetime
import html
import json
import math
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .backend import TimelineEntry

__all__ = [
    "render_main_job_html",
    "render_timeline_svg",
    "timeline_summary",
    "write_main_job_report",
]

#: Bar colours by what a command did (copies by direction).
_COLOURS = {
    "kernel": "#e07b39",
    "copy h2d": "#3b7dd8",
    "copy d2h": "#2a9d8f",
    "copy": "#7a5cc4",
    "sync": "#b5b5b5",
    "other": "#666666",
}
_LEGEND = (
    ("kernel", "kernel"),
    ("copy h2d", "copy host to device"),
    ("copy d2h", "copy device to host"),
    ("copy", "copy on or between devices"),
    ("sync", "wait for another queue / event"),
)


def _colour_key(entry: TimelineEntry) -> str:
    if entry.kind == "copy" and entry.name in ("copy h2d", "copy d2h"):
        return entry.name
    return entry.kind if entry.kind in _COLOURS else "other"


def _nice_step(span: float, ticks: int = 8) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if raw <= m * power:
            return m * power
    return 10.0 * power


def _queue_labels(
    entries: Sequence[TimelineEntry], queues: Mapping[str, int] | None
) -> dict[int, str]:
    roles = {number: role for role, number in (queues or {}).items()}
    return {
        q: f"{roles[q]} (queue {q})" if q in roles else f"queue {q}"
        for q in sorted({e.queue for e in entries})
    }


def timeline_summary(
    entries: Sequence[TimelineEntry], queues: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Figures of a timeline: its span, each queue's busy time (commands other than waits),
    and how much of the queues' work ran at the same time as other queues' (the sum of busy
    times minus the span of the union of busy intervals), all in modeled microseconds."""
    labels = _queue_labels(entries, queues)
    work = [e for e in entries if e.kind != "sync"]
    busy = {labels[q]: sum(e.duration_us for e in work if e.queue == q) for q in labels}
    intervals = sorted((e.start_us, e.start_us + e.duration_us) for e in work)
    covered, reach = 0.0, -math.inf
    for start, end in intervals:
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    span = (
        max(e.start_us + e.duration_us for e in entries) - min(e.start_us for e in entries)
        if entries
        else 0.0
    )
    return {
        "commands": len(entries),
        "span_us": span,
        "busy_us": busy,
        "overlapped_us": max(0.0, sum(busy.values()) - covered),
    }


def render_timeline_svg(
    entries: Sequence[TimelineEntry],
    queues: Mapping[str, int] | None = None,
    *,
    title: str = "",
    width: int = 1000,
) -> str:
    """An SVG picture of a queue timeline: one row per queue (labelled with its role where
    ``queues`` maps roles to queue numbers), one bar per command on the modeled clock, a
    tooltip per bar (name, modeled start and duration, bytes, FLOPs), a time axis in
    microseconds and a legend."""
    e = html.escape
    if not entries:
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='40'>"
            "<text x='4' y='24' font-family='sans-serif' font-size='13'>"
            "no commands recorded</text></svg>"
        )
    labels = _queue_labels(entries, queues)
    rows = {q: i for i, q in enumerate(labels)}
    left, right, top, row_h, bar_h = 170, 20, 28 if title else 8, 34, 22
    plot_w = width - left - right
    t0 = min(x.start_us for x in entries)
    t1 = max(x.start_us + x.duration_us for x in entries)
    span = max(t1 - t0, 1e-9)
    axis_y = top + row_h * len(rows) + 4
    height = axis_y + 40 + 22 * math.ceil(len(_LEGEND) / 3)

    def x_of(t: float) -> float:
        return left + (t - t0) / span * plot_w

    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='12'>"
    ]
    if title:
        out.append(f"<text x='4' y='16' font-size='14' font-weight='bold'>{e(title)}</text>")
    for q, i in rows.items():
        y = top + i * row_h
        fill = "#f7f7f7" if i % 2 == 0 else "#ffffff"
        out.append(f"<rect x='{left}' y='{y}' width='{plot_w}' height='{row_h}' fill='{fill}'/>")
        out.append(f"<text x='{left - 6}' y='{y + row_h / 2 + 4}' text-anchor='end'>")
        out.append(f"{e(labels[q])}</text>")
    step = _nice_step(span)
    tick = math.ceil(t0 / step) * step
    while tick <= t1 + step * 1e-9:
        x = x_of(tick)
        out.append(
            f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{axis_y}' stroke='#ddd'/>"
            f"<text x='{x:.1f}' y='{axis_y + 14}' text-anchor='middle'>{tick:g}</text>"
        )
        tick += step
    out.append(
        f"<text x='{left + plot_w}' y='{axis_y + 28}' text-anchor='end'>"
        "modeled time, microseconds</text>"
    )
    for entry in sorted(entries, key=lambda x: (x.kind == "sync", x.start_us)):
        bar_y = top + rows[entry.queue] * row_h + (row_h - bar_h) / 2
        x = x_of(entry.start_us)
        w = max(entry.duration_us / span * plot_w, 0.6)
        colour = _COLOURS[_colour_key(entry)]
        stroke = " stroke='#b00020' stroke-width='2'" if entry.failed else ""
        tip = (
            f"{entry.name}{' (FAILED)' if entry.failed else ''}: {entry.duration_us:.3f} us "
            f"modeled, from {entry.start_us:.3f} us; {entry.nbytes:,} bytes"
            + (f", {entry.flops:,.0f} FLOPs" if entry.flops else "")
        )
        out.append(
            f"<rect x='{x:.2f}' y='{bar_y:.1f}' width='{w:.2f}' height='{bar_h}' fill='{colour}'"
            f"{stroke}><title>{e(tip)}</title></rect>"
        )
    for i, (key, text) in enumerate(_LEGEND):
        lx = left + (i % 3) * 260
        ly = axis_y + 50 + (i // 3) * 22
        out.append(
            f"<rect x='{lx}' y='{ly - 10}' width='14' height='12' fill='{_COLOURS[key]}'/>"
            f"<text x='{lx + 20}' y='{ly}'>{e(text)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _td(value: Any) -> str:
    return f"<td>{html.escape('-' if value is None else str(value))}</td>"


def _fmt(value: float | None, spec: str) -> str | None:
    return None if value is None else format(value, spec)


def render_main_job_html(
    *,
    ok: bool,
    backends: Sequence[Any],
    devices: Sequence[Any],
    demo: Any,
    reports: Sequence[Mapping[str, Any]],
    timelines: Mapping[str, str],
) -> str:
    """The main job's page. ``ok``: the main job's verdict (the command's exit status
    decides it; the page only shows it); ``backends``: :func:`hwabstract.backends`
    statuses; ``devices``: :class:`~hwabstract.Device` objects; ``demo``: a
    :class:`~hwabstract.demo.DemoResult`; ``reports``: the conformance reports;
    ``timelines``: device name -> its timeline picture (SVG markup, put inline so the page
    stands alone and its tooltips work)."""
    from . import __version__
    from .conformance.report import HTML_CSS, render_html_body

    e = html.escape
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    verdict = "PASSED" if ok else "FAILED"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>hwabstract main job</title>",
        f"<style>{HTML_CSS}.timeline{{overflow-x:auto}}</style></head><body>",
        f"<h1>hwabstract main job: <span class='{verdict.lower()}'>{verdict}</span></h1>",
        f"<p>hwabstract {e(__version__)}, Python {e(platform.python_version())} on "
        f"{e(platform.machine())} {e(platform.system())}; {e(now)}. The portable demo and the "
        "conformance suite on every backend installed here.</p>",
        "<h2>Backends</h2><table><tr><th>backend</th><th>status</th><th>devices</th>"
        "<th>why not available</th></tr>",
    ]
    for b in backends:
        parts.append(
            f"<tr><td>{e(b.name)}</td><td class='{'passed' if b.ok else 'unavailable'}'>"
            f"{e(b.status)}</td>{_td(b.device_count if b.ok else None)}{_td(b.reason)}</tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h2>Devices</h2><table><tr><th>device</th><th>description</th><th>memory</th>"
        "<th>stand-in</th></tr>"
    )
    for d in devices:
        info = d.info
        standin = (
            f"<td class='standin'>stand-in for {e(str(info.standin_for))}</td>"
            if info.standin
            else "<td>no</td>"
        )
        parts.append(
            f"<tr><td><code>{e(d.name)}</code></td>{_td(info.name)}"
            f"{_td(f'{info.memory_capacity / 2**30:,.1f} GiB')}{standin}</tr>"
        )
    parts.append("</table>")
    c = demo.config
    parts.append(
        "<h2>Portable demo</h2>"
        f"<p>A pre-LayerNorm transformer block (attention and MLP) on {c.batches} batches of "
        f"{c.batch_size}x{c.seq_len}x{c.d_model} float32, written once against the public "
        "API: an upload stream sends batch i+1 while a compute stream works on batch i, "
        "ordered by events. Each device is compared with a float64 NumPy computation and "
        f"with {e(str(demo.baseline or 'the baseline device'))} (tolerance "
        f"{demo.tolerance:g}).</p>"
        "<table><tr><th>device</th><th>status</th><th>max error vs NumPy</th>"
        "<th>vs baseline</th><th>wall ms</th><th>event ms</th><th>modeled ms</th>"
        "<th>note</th></tr>"
    )
    for r in demo.runs:
        parts.append(
            f"<tr><td><code>{e(r.device)}</code>"
            + (" <span class='standin'>stand-in</span>" if r.standin else "")
            + f"</td><td class='{'passed' if r.status == 'ok' else 'failed'}'>"
            f"{e(r.status)}</td>{_td(_fmt(r.max_abs_error, '.1e'))}"
            f"{_td(_fmt(r.max_abs_diff_baseline, '.1e'))}{_td(_fmt(r.wall_ms, '.1f'))}"
            f"{_td(_fmt(r.event_ms, '.2f'))}{_td(_fmt(r.modeled_ms, '.4f'))}{_td(r.reason)}</tr>"
        )
    parts.append(
        "</table><p>wall: host time of uploads, compute and download; event: device time "
        "between two events of the compute stream where the device times events; modeled: "
        "what the modeled hardware would take between the same events, where the device "
        "models time (an emulator's performance model, not a measurement).</p>"
    )
    for r in demo.runs:
        if r.timeline is None or r.device not in timelines:
            continue
        s = timeline_summary(r.timeline, r.queues)
        busy = ", ".join(f"{k} {v:.2f} us" for k, v in s["busy_us"].items())
        parts.append(
            f"<h3>Queue timeline of <code>{e(r.device)}</code> ({e(r.description)})</h3>"
            f"<p>The demo's {s['commands']} commands on the device's queues, placed on its "
            "performance model's clock (what the modeled hardware would take, not what this "
            f"host took; see docs/backends/maia.md). Span {s['span_us']:.2f} us; busy: {busy}; "
            f"work overlapped with another queue's: {s['overlapped_us']:.2f} us. Hover a bar "
            "for the command.</p>"
            f"<div class='timeline'>{timelines[r.device]}</div>"
        )
    parts.append("<h2>Conformance matrix</h2>")
    if reports:
        parts.append(
            "<p>Each backend certified by the conformance suite on its first device; per "
            "backend: <code>&lt;backend&gt;/report.html</code> beside this page, and "
            "<a href='summary.html'>summary.html</a>.</p>"
        )
        parts.append(render_html_body(reports, heading=3))
    else:
        parts.append("<p class='failed'>no backend was certified</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_main_job_report(
    report_dir: Path,
    *,
    ok: bool,
    backends: Sequence[Any],
    devices: Sequence[Any],
    demo: Any,
    reports: Sequence[Mapping[str, Any]],
) -> Path:
    """Write ``demo.json``, the timeline pictures and ``index.html`` into ``report_dir``;
    returns the page's path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "demo.json").write_text(
        json.dumps(demo.to_dict(), indent=1) + "\n", encoding="utf-8"
    )
    timelines: dict[str, str] = {}
    for r in demo.runs:
        if r.timeline is None:
            continue
        name = f"timeline-{r.device.replace(':', '-')}.svg"
        title = f"{r.device} ({r.description}): the demo's queues on the modeled clock"
        svg = render_timeline_svg(r.timeline, r.queues, title=title)
        (report_dir / name).write_text(svg, encoding="utf-8")
        timelines[r.device] = svg
    page = report_dir / "index.html"
    page.write_text(
        render_main_job_html(
            ok=ok,
            backends=backends,
            devices=devices,
            demo=demo,
            reports=reports,
            timelines=timelines,
        ),
        encoding="utf-8",
    )
    return page
