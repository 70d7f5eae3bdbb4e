"""Benchmark: the cpu backend against NumPy, measured in the same run.

Two questions, each answered as a ratio against NumPy doing the same work:

* **per-op overhead** on tiny tensors: what dispatch (validation, promotion, allocation,
  queueing to the stream's worker thread) costs per call, in microseconds over NumPy;
* **large-op throughput** on tensors of 1 MiB and more: hwabstract time / NumPy time, which
  should approach 1.0 because both end in the same NumPy kernel.

Each hwabstract figure includes the final synchronize, so asynchronous queueing cannot hide
work. Each case runs ``--repeat`` times and reports the median.

    python bench/bench_cpu.py                 # table
    python bench/bench_cpu.py --markdown      # the table for docs/performance.md
    python bench/bench_cpu.py --json out.json
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import harness
import numpy as np
from harness import interleaved_medians, table

import hwabstract as hw


def _case(
    name: str,
    kind: str,
    nbytes: int,
    calls: int,
    hw_op: Callable[[], Any],
    np_op: Callable[[], Any],
    device: hw.Device,
    repeat: int,
) -> dict[str, Any]:
    def run_hw() -> None:
        for _ in range(calls):
            hw_op()
        device.synchronize()

    def run_np() -> None:
        for _ in range(calls):
            np_op()

    t_hw, t_np = interleaved_medians(run_hw, run_np, repeat)
    t_hw, t_np = t_hw / calls, t_np / calls
    return {
        "case": name,
        "kind": kind,
        "bytes": nbytes,
        "hwabstract_us": t_hw * 1e6,
        "numpy_us": t_np * 1e6,
        "overhead_us": (t_hw - t_np) * 1e6,
        "ratio": t_hw / t_np,
    }


def run(repeat: int, quick: bool) -> dict[str, Any]:
    dev = hw.device("cpu")
    rng = np.random.default_rng(0)
    results = []

    # -- tiny: per-op overhead ------------------------------------------------------------
    a8 = rng.standard_normal(8).astype(np.float32)
    b8 = rng.standard_normal(8).astype(np.float32)
    x8, y8 = hw.asarray(a8, device=dev), hw.asarray(b8, device=dev)
    m8 = rng.standard_normal((8, 8)).astype(np.float32)
    xm8 = hw.asarray(m8, device=dev)
    calls = 500 if quick else 2000
    tiny = [
        ("add f32[8]", lambda: hw.add(x8, y8), lambda: np.add(a8, b8)),
        ("add f32[8] + python scalar", lambda: x8 + 1.0, lambda: a8 + np.float32(1.0)),
        ("exp f32[8]", lambda: hw.exp(x8), lambda: np.exp(a8)),
        ("sum f32[8]", lambda: hw.sum(x8), lambda: np.sum(a8)),
        ("matmul f32[8,8]", lambda: hw.matmul(xm8, xm8), lambda: np.matmul(m8, m8)),
        ("slice view x[2:6]", lambda: x8[2:6], lambda: a8[2:6]),
    ]
    for name, hop, nop in tiny:
        results.append(_case(name, "tiny", 32, calls, hop, nop, dev, repeat))

    # -- large: throughput ----------------------------------------------------------------
    sizes = [1 << 18] if quick else [1 << 18, 1 << 22]  # 1 MiB and 16 MiB of float32
    for n in sizes:
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        x, y = hw.asarray(a, device=dev), hw.asarray(b, device=dev)
        mib = n * 4 / 2**20
        big_calls = 20 if n <= 1 << 18 else 5
        for name, hop, nop in [
            (f"add f32 {mib:g} MiB", partial(hw.add, x, y), partial(np.add, a, b)),
            (f"exp f32 {mib:g} MiB", partial(hw.exp, x), partial(np.exp, a)),
            (f"sum f32 {mib:g} MiB", partial(hw.sum, x), partial(np.sum, a)),
            (
                f"asarray upload {mib:g} MiB",
                partial(hw.asarray, a, device=dev),
                partial(np.array, a, copy=True),
            ),
            (f"numpy() download {mib:g} MiB", x.numpy, partial(np.array, a, copy=True)),
        ]:
            results.append(_case(name, "large", n * 4, big_calls, hop, nop, dev, repeat))
    for n in [512] if quick else [512, 1024]:
        a = rng.standard_normal((n, n)).astype(np.float32)
        x = hw.asarray(a, device=dev)
        hop, nop = partial(hw.matmul, x, x), partial(np.matmul, a, a)
        results.append(_case(f"matmul f32[{n},{n}]", "large", n * n * 4, 3, hop, nop, dev, repeat))
    return {
        "benchmark": "bench_cpu",
        "peer": f"NumPy {np.__version__}",
        "hwabstract": hw.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "repeat": repeat,
        "results": results,
    }


def _table(report: dict[str, Any], markdown: bool) -> str:
    header = ["case", "hwabstract µs/op", "NumPy µs/op", "overhead µs", "ratio (hw/NumPy)"]
    rows = [
        [
            r["case"],
            f"{r['hwabstract_us']:.1f}",
            f"{r['numpy_us']:.1f}",
            f"{r['overhead_us']:.1f}",
            f"{r['ratio']:.2f}x",
        ]
        for r in report["results"]
    ]
    return table(header, rows, markdown)


def _title(report: dict[str, Any], repeat: int) -> str:
    return (
        f"cpu backend vs {report['peer']} — Python {report['python']}, "
        f"{report['machine']}, {report['cpu_count']} cores, median of {repeat}"
    )


def main(argv: list[str] | None = None) -> int:
    return harness.main(__doc__ or "", run, _title, _table, argv)


if __name__ == "__main__":
    sys.exit(main())
