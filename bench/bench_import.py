"""Benchmark: the wall time of ``import hwabstract`` in a fresh interpreter, against the
import of NumPy (which hwabstract needs, so it is the floor) measured in the same run.

    python bench/bench_import.py [--runs 21]

Each run starts a new interpreter that times its own import with ``time.perf_counter``; the
median over the runs is reported, with hwabstract's share on top of NumPy.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

_PROBE = (
    "import time; t0 = time.perf_counter(); import numpy; t1 = time.perf_counter(); "
    "{extra}t2 = time.perf_counter(); print(t1 - t0, t2 - t1)"
)


def measure(runs: int) -> dict[str, float]:
    numpy_alone, total, on_top = [], [], []
    for _ in range(runs):
        for extra, sink in (("", None), ("import hwabstract; ", on_top)):
            out = subprocess.run(
                [sys.executable, "-c", _PROBE.format(extra=extra)],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            t_numpy, t_rest = float(out[0]), float(out[1])
            if sink is None:
                numpy_alone.append(t_numpy)
            else:
                sink.append(t_rest)
                total.append(t_numpy + t_rest)
    return {
        "numpy_ms": 1000 * statistics.median(numpy_alone),
        "hwabstract_on_top_of_numpy_ms": 1000 * statistics.median(on_top),
        "import_hwabstract_total_ms": 1000 * statistics.median(total),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args(argv)
    r = measure(args.runs)
    version = sys.version.split()[0]
    print(f"import time, median of {args.runs} fresh interpreters (Python {version})")
    rows = [
        ("import numpy (the peer, and a dependency)", r["numpy_ms"]),
        ("import hwabstract, total", r["import_hwabstract_total_ms"]),
        ("hwabstract's own share (on top of numpy)", r["hwabstract_on_top_of_numpy_ms"]),
    ]
    for label, ms in rows:
        print(f"  {label + ':':<44} {ms:.1f} ms")
    ratio = r["import_hwabstract_total_ms"] / r["numpy_ms"]
    print(f"  {'ratio (import hwabstract / import numpy):':<44} {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
