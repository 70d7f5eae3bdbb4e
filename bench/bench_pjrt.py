"""Benchmark: the tpu backend on its stand-in (JAX's CPU client) against raw JAX, in one run.

The same operations on the same device, both sides warmed up (compiled) first, sampled
alternately; each figure includes waiting for the result (``synchronize`` /
``block_until_ready``):

* **per-op overhead** on a tiny operand (``add`` on 8 float32): what hwabstract's dispatch
  and the backend's launch add to a jitted JAX call;
* **operations on 1 MiB and 16 MiB** of float32 (add, multiply by a scalar, sum, softmax
  over rows) and matmul 512² / 1024² (target: hwabstract/JAX <= 1.1 at 1 MiB and more).

Raw JAX is ``jax.jit`` of the same ``jax.numpy`` expression, called on the very
``jax.Array`` that holds each hwabstract tensor's buffer: both sides read the same memory.
(With separate copies, where each copy happened to land moved one side by up to 25% on this
2-core VM, in either direction: a placement effect, not the SDK's.) Both sides run on the
stand-in's CPU device, so the figures measure the SDK's overhead on PJRT, not a TPU.

    HWABSTRACT_TPU_STANDIN=cpu python bench/bench_pjrt.py [--markdown] [--json FILE]
"""

from __future__ import annotations

import os
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
    os.environ.setdefault("HWABSTRACT_TPU_STANDIN", "cpu")
    import jax
    import jax.numpy as jnp

    dev = hw.device("tpu:0")
    jdev = dev._impl._devices[0]
    stream = dev.default_stream
    rng = np.random.default_rng(0)
    results: list[dict[str, Any]] = []

    def pair(a: np.ndarray) -> tuple[hw.Tensor, Any]:
        """A tensor and, for raw JAX, the flat array holding its buffer (the same memory;
        a 2-D case's jitted function reshapes it, free inside XLA, as the backend does)."""
        x = hw.asarray(a, device=dev)
        stream.synchronize()
        array = x._operand().buffer.array
        assert array is not None and jdev in array.devices() and array.size == a.size
        return x, array

    # -- per-op overhead ---------------------------------------------------------------------
    a8 = rng.standard_normal(8).astype(np.float32)
    x8, j8 = pair(a8)
    jadd = jax.jit(jnp.add)
    calls = 200 if quick else 1000

    def hw_tiny() -> None:
        for _ in range(calls):
            hw.add(x8, x8)
        stream.synchronize()

    def jax_tiny() -> None:
        r = None
        for _ in range(calls):
            r = jadd(j8, j8)
        r.block_until_ready()  # type: ignore[union-attr]

    t_h, t_j = interleaved_medians(hw_tiny, jax_tiny, repeat, warmup=2)
    results.append(peer_row("add f32[8], per op (enqueue, then one wait)", t_h / calls, t_j / calls,
                        f"overhead {(t_h - t_j) / calls * 1e6:.1f} us/op"))  # fmt: skip

    # -- large operations --------------------------------------------------------------------
    sizes = [("1 MiB", 1 << 18)] if quick else [("1 MiB", 1 << 18), ("16 MiB", 1 << 22)]
    for label, n in sizes:
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        rows = rng.standard_normal((n // 1024, 1024)).astype(np.float32)
        (xa, ja), (xb, jb), (xr, jr) = pair(a), pair(b), pair(rows)
        cases: list[tuple[str, Any, tuple[Any, ...], Any, tuple[Any, ...]]] = [
            ("add", hw.add, (xa, xb), jax.jit(jnp.add), (ja, jb)),
            ("multiply by 2.5", hw.multiply, (xa, 2.5), jax.jit(lambda v: v * 2.5), (ja,)),
            ("sum", hw.sum, (xa,), jax.jit(jnp.sum), (ja,)),
            ("softmax over rows of 1024", hw.softmax, (xr,),
             jax.jit(lambda v, s=rows.shape: jax.nn.softmax(v.reshape(s), axis=-1)), (jr,)),
        ]  # fmt: skip
        for name, hw_fn, hw_args, jfn, jargs in cases:

            def hw_side(fn: Any = hw_fn, args: Any = hw_args) -> None:
                fn(*args)
                stream.synchronize()

            def jax_side(fn: Any = jfn, args: Any = jargs) -> None:
                fn(*args).block_until_ready()

            t_h, t_j = interleaved_medians(hw_side, jax_side, repeat, warmup=3)
            results.append(peer_row(f"{name}, f32 {label}", t_h, t_j, added_note(t_h, t_j)))

    for m in (512,) if quick else (512, 1024):
        a = rng.standard_normal((m, m)).astype(np.float32)
        (xa, ja) = pair(a)
        jmm = jax.jit(
            lambda p, q, s=a.shape: jnp.matmul(
                p.reshape(s), q.reshape(s), precision=jax.lax.Precision.HIGHEST
            )
        )

        def hw_mm(x: Any = xa) -> None:
            hw.matmul(x, x)
            stream.synchronize()

        def jax_mm(j: Any = ja, fn: Any = jmm) -> None:
            fn(j, j).block_until_ready()

        t_h, t_j = interleaved_medians(hw_mm, jax_mm, max(3, repeat // 2), warmup=2)
        results.append(peer_row(f"matmul f32[{m},{m}]", t_h, t_j, added_note(t_h, t_j)))

    return peer_report(
        "bench_pjrt",
        dev.info.name,
        f"raw JAX {jax.__version__} (jax.jit on the same device)",
        repeat,
        results,
    )


def main(argv: list[str] | None = None) -> int:
    return harness.main(__doc__ or "", run, peer_title, peer_table("raw JAX"), argv)


if __name__ == "__main__":
    sys.exit(main())
