"""Where one operation's host time goes: cProfile of a loop of ``hw.<op>`` on a device.

The benchmarks say *how much* time hwabstract adds per operation against a peer; this says
*where* it goes (dispatch, the backend, the vendor library, allocation and free), so an
optimisation can aim at the biggest part. The loop enqueues ``--calls`` operations on small
operands and waits once, so device time is negligible and what is left is host time.

    python bench/profile_op.py --device nvidia:0 [--op add] [--calls 2000] [--top 30]

Prints the µs per op without and with the profiler (the profiler inflates every Python call
about alike), then the functions by their own time.

    python bench/profile_op.py --device tpu:0 --bound-vs-unbound [--rounds 25]

instead measures what bound launches save (architecture.md, "A launch is bound to its
layouts once"): the same loops, alternately with each call signature's bound launch and
with it removed from the plan (the general path through ``Backend.launch``), in one
process; medians of ``--rounds`` loops each.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
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
    parser.add_argument(
        "--bound-vs-unbound",
        action="store_true",
        help="time each op with and without its bound launch instead",
    )
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args(argv)  # fmt: skip
    dev = hw.device(args.device) if args.device else hw.default_device()
    x = hw.asarray(np.arange(8, dtype=np.float32), device=dev)
    stream = dev.default_stream
    if args.bound_vs_unbound:
        return bound_vs_unbound(dev, x, args.op or sorted(OPS), args.calls, args.rounds)
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


def bound_vs_unbound(dev: hw.Device, x: hw.Tensor, names: list[str], calls: int,
                     rounds: int) -> int:  # fmt: skip
    """Enqueue µs per op with the plans' bound launches and without them, interleaved."""
    stream = dev.default_stream
    for name in names:
        OPS[name](x)
        OPS[name](x)  # the second call of a signature is bound
    stream.synchronize()
    plans = dev._plans
    bound = {k: p for k, p in plans.items() if p.bound is not None}
    if not bound:
        print(f"{dev.name}: its backend binds no launches (its Backend.bind_launch returns None)")
        return 1
    unbound = {k: p._replace(bound=None) for k, p in bound.items()}

    def loop(op: Any) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            op(x)
        elapsed = time.perf_counter() - started
        stream.synchronize()
        return elapsed / calls

    print(f"{dev.name} ({dev.info.name}): enqueue µs per op, {calls} calls a loop, "
          f"median of {rounds} loops each")  # fmt: skip
    samples: dict[tuple[str, bool], list[float]] = {
        (n, b): [] for n in names for b in (True, False)
    }
    for _ in range(rounds):
        for name in names:
            plans.update(bound)
            samples[(name, True)].append(loop(OPS[name]))
            plans.update(unbound)
            samples[(name, False)].append(loop(OPS[name]))
    plans.update(bound)
    for name in names:
        with_bound = statistics.median(samples[(name, True)]) * 1e6
        without = statistics.median(samples[(name, False)]) * 1e6
        print(f"  {name:16s} bound {with_bound:7.2f}   unbound {without:7.2f}   "
              f"saved {without - with_bound:6.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
