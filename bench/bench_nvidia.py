"""Benchmark: the nvidia backend against raw CuPy on the same GPU, in one run.

The same operations on the same device arrays, both sides warmed up first (CuPy compiles
each elementwise kernel on first use), sampled alternately; each figure includes waiting
for the result (``synchronize`` on both sides):

* **per-op overhead** on a tiny operand (``add`` on 8 float32, 1000 launches then one
  wait): what hwabstract's dispatch and the backend add to a CuPy call;
* **operations on 1 MiB and 16 MiB** of float32 (add, multiply by a scalar, sum, softmax
  over rows) and matmul 1024² / 4096² (target: hwabstract/CuPy <= 1.1 at 1 MiB and more).

Raw CuPy runs on the very memory that holds each hwabstract tensor (a ``cupy.ndarray``
view of it), on a stream of its own, so placement cannot favour either side.

    python bench/bench_nvidia.py [--markdown] [--json FILE]

Exit status 3, with the reason, where no GPU is usable.
"""

from __future__ import annotations

import sys
from typing import Any

import harness
import numpy as np
from harness import (
    added_note,
    interleaved_medians,
    peer_report,
    peer_row,
    peer_table,
    peer_title,
)

import hwabstract as hw


def run(repeat: int, quick: bool) -> dict[str, Any]:
    import cupy as cp

    dev = hw.device("nvidia:0")
    impl = dev._impl
    stream = dev.default_stream
    cstream = cp.cuda.Stream(non_blocking=True)
    rng = np.random.default_rng(0)
    results: list[dict[str, Any]] = []

    def pair(a: np.ndarray) -> tuple[hw.Tensor, Any]:
        x = hw.asarray(a, device=dev)
        stream.synchronize()
        return x, impl.view(x._operand())

    def timed_cupy(fn: Any) -> Any:
        def side() -> None:
            with cstream:
                fn()
            cstream.synchronize()

        return side

    x8, c8 = pair(rng.standard_normal(8).astype(np.float32))
    calls = 200 if quick else 1000

    def hw_tiny() -> None:
        for _ in range(calls):
            hw.add(x8, x8)
        stream.synchronize()

    def cp_tiny() -> None:
        for _ in range(calls):
            cp.add(c8, c8)

    t_h, t_c = interleaved_medians(hw_tiny, timed_cupy(cp_tiny), repeat, warmup=2)
    results.append(peer_row("add f32[8], per op (enqueue, then one wait)", t_h / calls, t_c / calls,
                        f"overhead {(t_h - t_c) / calls * 1e6:.1f} us/op"))  # fmt: skip

    sizes = [("1 MiB", 1 << 18)] if quick else [("1 MiB", 1 << 18), ("16 MiB", 1 << 22)]
    for label, n in sizes:
        (xa, ca), (xb, cb) = (pair(rng.standard_normal(n).astype(np.float32)) for _ in range(2))
        xr, cr = pair(rng.standard_normal((n // 1024, 1024)).astype(np.float32))

        def cp_softmax(v: Any = cr) -> Any:
            e = cp.exp(v - v.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)

        cases: list[tuple[str, Any, tuple[Any, ...], Any]] = [
            ("add", hw.add, (xa, xb), lambda a=ca, b=cb: cp.add(a, b)),
            ("multiply by 2.5", hw.multiply, (xa, 2.5), lambda a=ca: cp.multiply(a, 2.5)),
            ("sum", hw.sum, (xa,), lambda a=ca: cp.sum(a)),
            ("softmax over rows of 1024", hw.softmax, (xr,), cp_softmax),
        ]
        for name, hw_fn, hw_args, cp_fn in cases:

            def hw_side(fn: Any = hw_fn, args: Any = hw_args) -> None:
                fn(*args)
                stream.synchronize()

            t_h, t_c = interleaved_medians(hw_side, timed_cupy(cp_fn), repeat, warmup=3)
            results.append(peer_row(f"{name}, f32 {label}", t_h, t_c, added_note(t_h, t_c)))

    for m in (1024,) if quick else (1024, 4096):
        xm, cm = pair(rng.standard_normal((m, m)).astype(np.float32))

        def hw_mm(x: Any = xm) -> None:
            hw.matmul(x, x)
            stream.synchronize()

        t_h, t_c = interleaved_medians(
            hw_mm, timed_cupy(lambda c=cm: cp.matmul(c, c)), max(3, repeat // 2), warmup=2
        )
        results.append(peer_row(f"matmul f32[{m},{m}]", t_h, t_c, added_note(t_h, t_c)))

    return peer_report(
        "bench_nvidia", dev.info.name, f"raw CuPy {cp.__version__} on the same GPU", repeat, results
    )


def main(argv: list[str] | None = None) -> int:
    status = {b.name: b for b in hw.backends()}.get("nvidia")
    if status is None or status.status != "ok":
        why = "hwabstract-nvidia is not installed" if status is None else status.reason
        print(f"bench_nvidia: the nvidia backend is unavailable: {why}")
        return 3
    return harness.main(__doc__ or "", run, peer_title, peer_table("raw CuPy"), argv)


if __name__ == "__main__":
    sys.exit(main())
