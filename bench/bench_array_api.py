"""Benchmark: the Array API kernels and compositions on a device, against NumPy on the same
data, in one run.

Sorting (``sort``, ``argsort``), ``searchsorted``, ``take``, ``cumulative_sum``,
``unique_values`` (a composition: stable argsort, compare, count read back, gather) and the
``linalg`` factorizations (``svd``, ``eigh``, ``solve``) — each timed to completion on the
device (``--device``, default ``maia:0``: the emulator's C kernels on this host's cores)
and against the NumPy call computing the same thing (NumPy's stable sort where the
standard's sort is stable). Ratios above 1 mean hwabstract is slower.

    python bench/bench_array_api.py [--device maia:0] [--markdown] [--json FILE] [--quick]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import harness
import numpy as np
from harness import interleaved_medians, peer_report, peer_row, peer_table, peer_title

import hwabstract as hw

DEVICE = "maia:0"


def _cases(dev: hw.Device, quick: bool) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    rng = np.random.default_rng(0)
    n = (1 << 18) if quick else (1 << 22)
    x = rng.standard_normal(n).astype(np.float32)
    rows = x.reshape(-1, 1024)
    ints = rng.integers(0, 1000, n).astype(np.int64)
    idx = rng.integers(-n, n, n // 4).astype(np.int64)
    hay = np.sort(x)
    m = 128 if quick else 256
    a = rng.standard_normal((m, m)).astype(np.float32)
    spd = (a @ a.T / m + np.eye(m)).astype(np.float32)
    b = rng.standard_normal((m, 8)).astype(np.float32)

    t = {k: hw.asarray(v, device=dev) for k, v in
         dict(x=x, rows=rows, ints=ints, idx=idx, hay=hay, a=a, spd=spd, b=b).items()}  # fmt: skip
    mib = x.nbytes >> 20
    return [
        (f"sort {mib} MiB f32 (1-D)", lambda: hw.sort(t["x"]),
         lambda: np.sort(x, kind="stable")),
        (f"sort rows of 1024, {mib} MiB f32", lambda: hw.sort(t["rows"], axis=1),
         lambda: np.sort(rows, axis=1, kind="stable")),
        (f"argsort {mib} MiB f32", lambda: hw.argsort(t["x"]),
         lambda: np.argsort(x, kind="stable")),
        (f"searchsorted {n >> 10} Ki into {n >> 10} Ki", lambda: hw.searchsorted(t["hay"], t["x"]),
         lambda: np.searchsorted(hay, x)),
        (f"take {n >> 12} Ki of {n >> 10} Ki", lambda: hw.take(t["x"], t["idx"]),
         lambda: np.take(x, idx)),
        (f"cumulative_sum {mib} MiB f32", lambda: hw.cumulative_sum(t["x"]),
         lambda: np.cumsum(x)),
        (f"unique_values {n >> 10} Ki int64 (1000 values)", lambda: hw.unique_values(t["ints"]),
         lambda: np.unique(ints)),
        (f"linalg.svd {m}x{m} f32", lambda: hw.linalg.svd(t["a"]),
         lambda: np.linalg.svd(a)),
        (f"linalg.eigh {m}x{m} f32", lambda: hw.linalg.eigh(t["spd"]),
         lambda: np.linalg.eigh(spd)),
        (f"linalg.solve {m}x{m}, 8 rhs f32", lambda: hw.linalg.solve(t["a"], t["b"]),
         lambda: np.linalg.solve(a, b)),
    ]  # fmt: skip


def run(repeat: int, quick: bool) -> dict[str, Any]:
    dev = hw.device(DEVICE)
    results = []
    for case, hw_call, np_call in _cases(dev, quick):

        def on_device(call: Callable[[], Any] = hw_call) -> None:
            call()
            dev.synchronize()

        t_hw, t_np = interleaved_medians(on_device, np_call, max(3, repeat // 3), warmup=1)
        results.append(peer_row(case, t_hw, t_np))
    return peer_report("bench_array_api", dev.info.name, "NumPy", repeat, results)


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    args = list(sys.argv[1:] if argv is None else argv)
    if "--device" in args:
        i = args.index("--device")
        DEVICE = args[i + 1]
        del args[i : i + 2]
    backend = DEVICE.split(":")[0]
    status = {b.name: b for b in hw.backends()}.get(backend)
    if status is None or status.status != "ok":
        print(f"bench_array_api: the {backend} backend is unavailable: {status and status.reason}")
        return 3
    return harness.main(__doc__ or "", run, peer_title, peer_table("NumPy"), args)


if __name__ == "__main__":
    sys.exit(main())
