"""Benchmark: MX on the Maia emulator, in one run, against named peers.

* **quantize throughput**: ``hw.mx.quantize`` of 16 MiB of float32 (4 Mi elements) on
  ``maia:0`` (libmaia's C kernel, timed to completion) against the NumPy reference
  (``hwabstract.mx.reference.quantize``, the definition it is bit-identical to), for each
  format: input GB/s and the ratio;
* **MX matmul**: ``hw.mx.matmul`` of two MX operands (1024 x 1024 x 1024) against float32
  ``hw.matmul`` of the same shape on the same device: host wall time of the emulator, and the
  time the performance model gives Maia 200 (``Event.modeled_elapsed_time``), for MXFP8,
  MXFP6 and MXFP4; the modeled speed-up is what MX buys on the chip, the wall time what the
  emulator costs here.

    python bench/bench_mx.py [--markdown] [--json FILE] [--quick]
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import harness
import numpy as np
from harness import interleaved_medians, table

import hwabstract as hw
from hwabstract.mx import reference as R

FORMATS = ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8")


def _modeled_ms(dev: hw.Device, fn: Any) -> tuple[float, float]:
    """Host wall ms and modeled Maia ms of ``fn()`` queued on the default stream."""
    s = dev.default_stream
    s.synchronize()
    start = s.record(timing=True)
    t0 = time.perf_counter()
    fn()
    end = s.record(timing=True)
    end.synchronize()
    wall = (time.perf_counter() - t0) * 1e3
    return wall, start.modeled_elapsed_time(end)


def run(repeat: int, quick: bool) -> dict[str, Any]:
    dev = hw.device("maia:0")
    s = dev.default_stream
    rows: list[dict[str, Any]] = []
    n = (1 << 20) if quick else (1 << 22)
    data = np.random.default_rng(0).standard_normal((n // 1024, 1024)).astype(np.float32)
    x = hw.asarray(data, device=dev)
    for name in FORMATS:
        fmt = hw.mx.mx_format(name)

        def maia_side(f: Any = fmt) -> None:
            hw.mx.quantize(x, f)
            s.synchronize()

        def numpy_side(f: Any = fmt) -> None:
            R.quantize(data, f)

        t_m, t_n = interleaved_medians(maia_side, numpy_side, max(3, repeat // 3), warmup=1)
        gb = data.nbytes / 1e9
        rows.append({
            "case": f"quantize {name}, {data.nbytes >> 20} MiB f32",
            "maia": f"{gb / t_m:.2f} GB/s", "peer": f"{gb / t_n:.3f} GB/s (NumPy reference)",
            "ratio": f"{t_n / t_m:.1f}x faster", "modeled": "",
        })  # fmt: skip

    m = 256 if quick else 1024
    rng = np.random.default_rng(1)
    a = hw.asarray(rng.standard_normal((m, m)).astype(np.float32), device=dev)
    b = hw.asarray(rng.standard_normal((m, m)).astype(np.float32), device=dev)
    dense_wall, dense_model = min(
        (_modeled_ms(dev, lambda: hw.matmul(a, b)) for _ in range(3)), key=lambda r: r[0]
    )
    rows.append({"case": f"matmul float32 {m}^3", "maia": f"{dense_wall:.1f} ms wall",
                 "peer": "", "ratio": "",
                 "modeled": f"{dense_model * 1e3:.1f} us Maia 200"})  # fmt: skip
    for name in ("mxfp8_e4m3", "mxfp6_e3m2", "mxfp4_e2m1"):
        ma, mb = hw.mx.quantize(a, name, axis=1), hw.mx.quantize(b, name, axis=0)
        s.synchronize()
        wall, model = min(
            (_modeled_ms(dev, lambda ma=ma, mb=mb: hw.mx.matmul(ma, mb)) for _ in range(3)),
            key=lambda r: r[0],
        )
        rows.append({
            "case": f"mx.matmul {name} x {name} {m}^3", "maia": f"{wall:.1f} ms wall",
            "peer": f"float32 matmul: {dense_wall:.1f} ms wall",
            "ratio": f"wall {dense_wall / wall:.2f}x, modeled {dense_model / model:.1f}x",
            "modeled": f"{model * 1e3:.1f} us Maia 200",
        })  # fmt: skip
    return {
        "benchmark": "bench_mx",
        "device": dev.info.name,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "repeat": repeat,
        "results": rows,
    }


def _table(report: dict[str, Any], markdown: bool) -> str:
    header = ["case", "maia", "peer", "ratio", "modeled"]
    return table(header, [[r[k] for k in ("case", "maia", "peer", "ratio", "modeled")]
                          for r in report["results"]], markdown)  # fmt: skip


def _title(report: dict[str, Any], repeat: int) -> str:
    return (f"MX on {report['device']} — Python {report['python']}, {report['machine']}, "
            f"{report['cpu_count']} cores")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    status = {b.name: b for b in hw.backends()}.get("maia")
    if status is None or status.status != "ok":
        print(f"bench_mx: the maia backend is unavailable: {status and status.reason}")
        return 3
    caps = hw.device("maia:0").capabilities.mx_formats
    if not all(caps.get(f) is not None for f in FORMATS):
        print(f"bench_mx: maia:0 declares MX formats {sorted(caps)}; it needs all six")
        return 3
    return harness.main(__doc__ or "", run, _title, _table, argv)


if __name__ == "__main__":
    sys.exit(main())
