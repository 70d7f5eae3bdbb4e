"""What every benchmark in bench/ shares: alternate sampling against a named peer, the
table (text or Markdown), and the command line (--repeat, --quick, --markdown, --json,
--processes)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from hwabstract.cli import format_table


def interleaved_medians(
    a: Callable[[], Any], b: Callable[[], Any], repeat: int, warmup: int = 1,
    settle: float = 0.0,
) -> tuple[float, float]:  # fmt: skip
    """Median seconds of ``a`` and of ``b``, sampled alternately so that drift in the
    machine's speed (shared, virtualized cores) hits both alike. ``warmup`` unrecorded calls
    of each first (allocations, caches, first touch of memory, thread start).

    ``settle`` seconds of untimed sleep precede each sample of ``a``: OpenBLAS's worker
    threads busy-wait for a while after every BLAS call (its thread timeout), so a sample
    taken right after ``b`` ran a multithreaded BLAS call would compete with them for the
    cores."""
    for _ in range(warmup):
        a()
        b()
    sa, sb = [], []
    for _ in range(repeat):
        if settle:
            time.sleep(settle)
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        sa.append(t1 - t0)
        sb.append(t2 - t1)
    return statistics.median(sa), statistics.median(sb)


def peer_row(case: str, t_hw: float, t_peer: float, note: str = "") -> dict[str, Any]:
    """One result of a hwabstract-vs-peer benchmark (seconds in, microseconds kept)."""
    return {"case": case, "hw_us": t_hw * 1e6, "peer_us": t_peer * 1e6,
            "ratio": t_hw / t_peer, "note": note}  # fmt: skip


def added_note(t_hw: float, t_peer: float) -> str:
    """The note of an operation held to the 1.1x target: the target and the time added."""
    return f"target <= 1.1x; {(t_hw - t_peer) * 1e6:+.0f} us"


def peer_report(benchmark: str, device: str, peer: str, repeat: int,
                results: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """A benchmark's report: what ran, against which peer, on which machine."""
    return {
        "benchmark": benchmark,
        "device": device,
        "peer": peer,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "repeat": repeat,
        "results": results,
    }


def peer_title(report: dict[str, Any], repeat: int) -> str:
    processes = report.get("processes", 1)
    across = f", median over {processes} processes" if processes > 1 else ""
    pinned = report.get("affinity")
    cpus = f", pinned to CPU {','.join(map(str, pinned))}" if pinned else ""
    return (
        f"{report['device']} vs {report['peer']} — Python {report['python']}, "
        f"{report['machine']}, {report['cpu_count']} cores{cpus}, median of {repeat}{across}"
    )


def across_processes(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from the reports of several processes: per case, the row of the process
    whose ratio is the median (the lower middle one for an even count: its times and note),
    with the median ratio and every process's ratio."""
    merged = dict(reports[0])
    merged["processes"] = len(reports)
    results = []
    for rows in zip(*(r["results"] for r in reports)):
        if not all(isinstance(row.get("ratio"), (int, float)) for row in rows):
            results.append(rows[0])
            continue
        ordered = sorted(rows, key=lambda row: row["ratio"])
        middle = ordered[(len(ordered) - 1) // 2]
        ratios = [row["ratio"] for row in rows]
        results.append({
            **middle,
            "ratio": statistics.median(ratios),
            "ratios": ratios,
        })  # fmt: skip
    merged["results"] = results
    return merged


def peer_table(peer: str) -> Callable[[dict[str, Any], bool], str]:
    """The renderer of :func:`peer_row` results, the peer's column named ``peer``."""

    def render(report: dict[str, Any], markdown: bool) -> str:
        short = peer.split()[-1]  # "raw JAX" -> "JAX"
        header = ["case", "hwabstract µs", f"{peer} µs", f"ratio (hw/{short})", "note"]
        several = report.get("processes", 1) > 1
        if several:
            header.insert(4, "ratio per process")
        rows = []
        for r in report["results"]:
            row = [r["case"], f"{r['hw_us']:.1f}", f"{r['peer_us']:.1f}", f"{r['ratio']:.2f}x",
                   r["note"]]  # fmt: skip
            if several:
                row.insert(4, " / ".join(f"{x:.2f}" for x in r.get("ratios", ())))
            rows.append(row)
        return table(header, rows, markdown)

    return render


def table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    """The results as an aligned text table, or as Markdown for docs/performance.md."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    return format_table(header, rows)


def main(
    doc: str,
    run: Callable[[int, bool], dict[str, Any]],
    title: Callable[[dict[str, Any], int], str],
    render: Callable[[dict[str, Any], bool], str],
    argv: list[str] | None = None,
) -> int:
    """Parse the common options, run the benchmark, print its title and table, and write
    the report as JSON if asked."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs per case (median kept)")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="run the whole benchmark in N fresh interpreters, one after the other, and "
        "report per case the median of their ratios, with each process's ratio (where a "
        "process's memory placement moves a ratio, one process is one sample)",
    )
    parser.add_argument(
        "--affinity",
        metavar="CPUS",
        help="run on these CPUs only (a comma-separated list, as taskset -c takes: '1' or "
        "'0,1'), both sides and every process; on a VM this takes the cost of waking "
        "another virtual CPU out of the comparison (docs/performance.md)",
    )
    args = parser.parse_args(argv)
    if args.affinity:
        cpus = {int(c) for c in args.affinity.split(",") if c.strip()}
        os.sched_setaffinity(0, cpus)  # (inherited by the processes of --processes)
    if args.processes > 1:
        report = across_processes([
            _in_new_process(run, args.repeat, args.quick) for _ in range(args.processes)
        ])  # fmt: skip
    else:
        report = run(args.repeat, args.quick)
    if args.affinity:
        report["affinity"] = sorted(os.sched_getaffinity(0))
    print(title(report, args.repeat))
    print(render(report, args.markdown))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


def _in_new_process(run: Callable[[int, bool], dict[str, Any]], repeat: int,
                    quick: bool) -> dict[str, Any]:  # fmt: skip
    """The report of one run of the benchmark that defines ``run``, in a new interpreter."""
    script = sys.modules[run.__module__].__file__
    assert script is not None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "report.json")
        command = [sys.executable, script, "--repeat", str(repeat), "--json", path]
        subprocess.run([*command, *(["--quick"] if quick else [])], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        with open(path) as fh:
            report: dict[str, Any] = json.load(fh)
    return report
