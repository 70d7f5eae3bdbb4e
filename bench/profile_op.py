"""Where one operation's host time goes: cProfile of a loop of ``hw.<op>`` on a device.

The benchmarks say *how much* time hwabstract adds per operation against a peer; this says
*where* it goes (dispatch, the backend, the vendor library, allocation and free), so an
optimisation can aim at the biggest part. The loop enqueues ``--calls`` operations on small
operands and waits once, so device time is negligible and what is left is host time.

    python bench/profile_op.py --device nvidia:0 [--op add] [--calls 2000] [--top 30]

Prints the µs per op without and with the profiler (the profiler inflates every Python call
about alike), then the functions by their own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from typing import Any

import numpy as np

import hwabstract as hw

#: op -> how to call it on operands x (f32[8]) and a scalar
OPS: dict[str, Any] = {
    "add": lambda x: hw.add(x, x),
    "multiply_scalar": lambda x: hw.multiply(x, 2.5),
    "sum": lambda x: hw.sum(x),
    "softmax": lambda x: hw.softmax(x),
    "matmul": lambda x: hw.matmul(hw.reshape(x, (2, 4)), hw.reshape(x, (4, 2))),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="device spec (default: the default)")
    parser.add_argument("--op", action="append", choices=sorted(OPS), help="repeatable")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    dev = hw.device(args.device) if args.device else hw.default_device()
    x = hw.asarray(np.arange(8, dtype=np.float32), device=dev)
    stream = dev.default_stream
    print(f"{dev.name} ({dev.info.name}); {args.calls} calls per op, one wait after them")
    for name in args.op or ["add", "sum"]:
        op = OPS[name]

        def loop(op: Any = op) -> None:
            for _ in range(args.calls):
                op(x)
            stream.synchronize()

        loop()  # warm: compiled kernels, pools
        started = time.perf_counter()
        loop()
        plain = (time.perf_counter() - started) / args.calls
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.runcall(loop)
        profiled = (time.perf_counter() - started) / args.calls
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
        print(f"\n== {name}: {plain * 1e6:.1f} µs/op ({profiled * 1e6:.1f} µs/op profiled)")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
