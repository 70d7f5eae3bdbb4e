"""Benchmark: what host code costs right after a wait, on the TPU stand-in (JAX's CPU client).

``bench_pjrt.py`` times an operation and its wait, over and over, so every call of the SDK
starts right after a wait. This measures what that does to host code, in one run:

* **cold start**: after ``block_until_ready`` of an ``add`` on 1 MiB / 16 MiB, a fixed piece
  of pure Python (a 40-step loop, about 2 µs on its own) is timed five times in a row; the
  first piece against the same piece timed with no wait before it (peer). Only the first
  piece after the wait is slow: the cost is a fixed price per line of code and data first
  touched after the operation streamed its data through the caches, not a slow window;
* **how much a wrapper may do**: an ``add`` on 1 MiB and its wait, alternately through
  raw JAX (peer) and through (a) the tpu backend's own executable called directly, (b) a
  minimal wrapper around it (an object holding the result, a list of pending results, a
  synchronize that empties it: about a microsecond of Python), (c) ``hw.add`` +
  ``synchronize``. The gap between (b) and (c) is the SDK's host code, priced as it is
  after a wait.

    HWABSTRACT_TPU_STANDIN=cpu python bench/after_wait.py [--markdown] [--json FILE]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

import harness
import numpy as np
from harness import interleaved_medians, peer_report, peer_row, peer_table, peer_title

import hwabstract as hw


def _piece() -> int:
    s = 0
    for i in range(40):
        s += i
    return s


def run(repeat: int, quick: bool) -> dict[str, Any]:
    os.environ.setdefault("HWABSTRACT_TPU_STANDIN", "cpu")
    import jax
    import jax.numpy as jnp

    dev = hw.device("tpu:0")
    stream = dev.default_stream
    rng = np.random.default_rng(0)
    jadd = jax.jit(jnp.add)
    clock = time.perf_counter
    results: list[dict[str, Any]] = []

    # -- cold start -----------------------------------------------------------------------------
    reference = []
    for _ in range(max(repeat, 200)):
        t0 = clock()
        _piece()
        reference.append(clock() - t0)
    ref = statistics.median(reference)
    sizes = [("1 MiB", 1 << 18)] if quick else [("1 MiB", 1 << 18), ("16 MiB", 1 << 22)]
    for label, n in sizes:
        x = jnp.asarray(rng.standard_normal(n).astype(np.float32))
        jadd(x, x).block_until_ready()
        pieces: list[list[float]] = [[] for _ in range(5)]
        for _ in range(repeat):
            jadd(x, x).block_until_ready()
            for k in range(5):
                t0 = clock()
                _piece()
                pieces[k].append(clock() - t0)
        for k in (0, 1, 4):
            results.append(peer_row(
                f"piece {k + 1} of Python after a {label} add's wait",
                statistics.median(pieces[k]), ref, "peer: the same piece, no wait before it",
            ))  # fmt: skip

    # -- how much a wrapper may do ---------------------------------------------------------------
    n = 1 << 18
    xa = hw.asarray(rng.standard_normal(n).astype(np.float32), device=dev)
    xb = hw.asarray(rng.standard_normal(n).astype(np.float32), device=dev)
    stream.synchronize()
    ja, jb = xa._operand().buffer.array, xb._operand().buffer.array
    hw.add(xa, xb)
    hw.add(xa, xb)  # (bound by now)
    stream.synchronize()
    prepared = dev._impl._prepared.items()
    exe = next(v[0] for k, v in prepared if k[0][0] == "add" and k[1][0][1] == (n,))

    class Box:
        __slots__ = ("array",)

    pending: list[Any] = []

    def minimal() -> None:
        box = Box()
        box.array = exe(ja, jb)
        pending.append(box.array)
        waiting = pending[:]
        pending.clear()
        for array in waiting:
            array.block_until_ready()

    def raw() -> None:
        jadd(ja, jb).block_until_ready()

    def direct() -> None:
        exe(ja, jb).block_until_ready()

    def sdk() -> None:
        hw.add(xa, xb)
        stream.synchronize()

    for name, fn in [
        ("the backend's executable, called directly", direct),
        ("a minimal wrapper around it (~1 us of Python)", minimal),
        ("hw.add + synchronize", sdk),
    ]:
        t_h, t_j = interleaved_medians(fn, raw, repeat, warmup=3)
        results.append(peer_row(f"add f32 1 MiB + wait: {name}", t_h, t_j,
                                f"{(t_h - t_j) * 1e6:+.0f} us against raw JAX"))  # fmt: skip

    return peer_report(
        "after_wait", dev.info.name, f"raw JAX {jax.__version__} / no wait", repeat, results
    )


def main(argv: list[str] | None = None) -> int:
    return harness.main(__doc__ or "", run, peer_title, peer_table("peer"), argv)


if __name__ == "__main__":
    sys.exit(main())
