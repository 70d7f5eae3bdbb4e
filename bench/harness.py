"""What every benchmark in bench/ shares: alternate sampling against a named peer, the
table (text or Markdown), and the command line (--repeat, --quick, --markdown, --json)."""

from __future__ import annotations

import argparse
import json
import statistics
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
    args = parser.parse_args(argv)
    report = run(args.repeat, args.quick)
    print(title(report, args.repeat))
    print(render(report, args.markdown))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0
