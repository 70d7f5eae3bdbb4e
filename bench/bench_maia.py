"""Benchmark: the maia backend (the libmaia emulator) against NumPy, measured in the same run.

Issue 3's questions, each answered as a ratio against a peer doing the same work on the same
data, the two sampled alternately:

* **enqueue cost** of a tiny kernel launch (``add`` on 8 float32): many launches, then one
  synchronize; the time until the last launch has returned, per launch. Through the public API
  (``hw.add``, with a new result each call, and into an existing one with ``out=``) and
  straight through libmaia's C API (``maia_launch`` via the cffi ``lib``, the views and
  attributes built once), which separates libmaia's own enqueue cost from Python
  dispatch. "drained" adds the final synchronize, per launch. Peer: ``np.add`` on the same
  arrays (target: enqueue <= 3 us; NumPy's call is about 1.3 us);
* **round trip**: one launch and a synchronize, per call (target <= 20 us);
* **large elementwise add**, 16 MiB of float32 each operand: ``hw.add`` + synchronize, and
  ``maia_launch`` into a preallocated output + synchronize, vs ``np.add(a, b, out=c)`` and vs a
  memcpy of the same bytes (``np.copyto``). Every side runs warm: its buffers are touched by
  warm-up calls before the first timed sample, so first-touch page faults of NumPy's output or
  of libmaia's lazily backed arena are in no figure (target >= 1.2x NumPy, i.e. hw/NumPy <= 0.83);
* **matmul** float32 1024x1024 and 2048x2048 vs ``np.matmul`` (NumPy's BLAS) (target: BLAS
  time / maia time >= 0.7). Each maia sample follows a 0.3 s untimed pause: OpenBLAS's worker
  threads keep spinning for a while after each call and, on a 2-core host, would otherwise
  take a core from the emulator's kernel threads (the maia figure halves without the pause);
* **two streams vs one** on one device: the same launches split over two streams; the figure is
  the device throughput ratio (one-stream time / two-stream time; target >= 1.7 on 2 cores),
  measured from the moment a host-signalled gate releases the queued launches until the
  queues drain. For kernels that each run on one kernel thread (small matmuls, row-wise NN
  ops) a second stream uses the second core; a kernel that already spreads over every core
  (a 512x512 matmul, a 16 MiB add at memory bandwidth) leaves a second stream nothing idle
  to use, and those rows say so.

Every maia figure that claims completed work includes the synchronize that waits for it.

    python bench/bench_maia.py                 # table
    python bench/bench_maia.py --markdown      # the table for docs/performance.md
    python bench/bench_maia.py --json out.json
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import harness
import numpy as np
from harness import interleaved_medians, table

import hwabstract as hw

try:
    from hwabstract_maia import _maia
except ImportError:  # pragma: no cover - reported below
    _maia = None


def _row(name: str, peer: str, t_maia: float, t_peer: float, note: str = "") -> dict[str, Any]:
    return {
        "case": name,
        "peer": peer,
        "maia_us": t_maia * 1e6,
        "peer_us": t_peer * 1e6,
        "ratio": t_maia / t_peer,
        "note": note,
    }


class _CView:
    """libmaia's C API with prebuilt operands: ``maia_launch`` costs nothing from Python but
    the cffi call itself."""

    def __init__(self, kernel: str, inputs: list[hw.Tensor], outputs: list[hw.Tensor]) -> None:
        ffi = _maia.ffi
        self.lib = _maia.lib
        self.kernel = kernel.encode()
        self.ins = ffi.new("maia_buffer_view[]", len(inputs))
        self.outs = ffi.new("maia_buffer_view[]", len(outputs))
        for views, tensors in ((self.ins, inputs), (self.outs, outputs)):
            for view, t in zip(views, tensors):
                code = {"float32": 13}[t.dtype.name]
                view.buffer = t._storage.buffer.handle
                view.offset = t._offset * t.dtype.itemsize
                view.dtype = code
                view.ndim = len(t.shape)
                view.shape[0 : len(t.shape)] = t.shape
                view.strides[0 : len(t.shape)] = t._strides
        self.n_in, self.n_out = len(inputs), len(outputs)
        self.attrs = ffi.new("maia_attrs *")

    def launch(self, queue: int) -> None:
        status = self.lib.maia_launch(
            queue, self.kernel, self.ins, self.n_in, self.outs, self.n_out, self.attrs
        )
        if status:
            raise RuntimeError(_maia.ffi.string(self.lib.maia_last_error()).decode())

    def synchronize(self, queue: int) -> None:
        if self.lib.maia_queue_synchronize(queue):
            raise RuntimeError(_maia.ffi.string(self.lib.maia_last_error()).decode())


def _enqueue(
    launch: Callable[[], Any],
    synchronize: Callable[[], None],
    np_op: Callable[[], Any],
    calls: int,
    repeat: int,
) -> tuple[float, float, float]:
    """Median per-call seconds of: ``calls`` launches (enqueue only), the same plus the final
    synchronize (drained), and ``calls`` NumPy calls; the three sampled alternately."""
    keep: list[Any] = []  # results stay alive until after the synchronize (no frees timed)

    def one_round() -> tuple[float, float, float]:
        keep.clear()
        t0 = time.perf_counter()
        for _ in range(calls):
            keep.append(launch())
        t1 = time.perf_counter()
        synchronize()
        t2 = time.perf_counter()
        keep.clear()
        synchronize()  # frees of the results are queued; let them pass before NumPy runs
        t3 = time.perf_counter()
        for _ in range(calls):
            np_op()
        t4 = time.perf_counter()
        return t1 - t0, t2 - t0, t4 - t3

    one_round()
    samples = [one_round() for _ in range(repeat)]
    enq, drained, peer = (statistics.median(s[i] for s in samples) / calls for i in range(3))
    return enq, drained, peer


def run(repeat: int, quick: bool) -> dict[str, Any]:
    if _maia is None:
        raise SystemExit("hwabstract-maia is not installed: pip install ./plugins/maia")
    dev = hw.device("maia:0")
    stream = dev.default_stream
    queue = stream._handle.handle
    rng = np.random.default_rng(0)
    results: list[dict[str, Any]] = []

    # -- tiny: enqueue cost and round trip ----------------------------------------------------
    a8 = rng.standard_normal(8).astype(np.float32)
    b8 = rng.standard_normal(8).astype(np.float32)
    c8 = np.empty_like(a8)
    x8, y8 = hw.asarray(a8, device=dev), hw.asarray(b8, device=dev)
    z8 = hw.asarray(c8, device=dev)
    c_add8 = _CView("add", [x8, y8], [z8])
    dev.synchronize()
    calls = 500 if quick else 2000

    def np_add8() -> None:
        np.add(a8, b8)

    enq, drained, t_np = _enqueue(
        lambda: hw.add(x8, y8), stream.synchronize, np_add8, calls, repeat
    )
    results.append(_row("enqueue add f32[8], hw.add", "np.add", enq, t_np, "target <= 3 us"))
    results.append(_row("  same, drained (+ synchronize)", "np.add", drained, t_np))
    enq, drained, t_np = _enqueue(
        lambda: hw.add(x8, y8, out=z8), stream.synchronize,
        lambda: np.add(a8, b8, out=c8), calls, repeat,
    )  # fmt: skip
    results.append(
        _row("enqueue add f32[8], hw.add(out=)", "np.add(out=)", enq, t_np, "target <= 3 us")
    )
    results.append(_row("  same, drained (+ synchronize)", "np.add(out=)", drained, t_np))
    enq, drained, t_np = _enqueue(
        lambda: c_add8.launch(queue), lambda: c_add8.synchronize(queue), np_add8, calls, repeat
    )
    results.append(
        _row("enqueue add f32[8], C maia_launch", "np.add", enq, t_np, "no Python dispatch")
    )
    results.append(_row("  same, drained (+ synchronize)", "np.add", drained, t_np))

    rt_calls = calls // 4

    def rt_hw() -> None:
        for _ in range(rt_calls):
            hw.add(x8, y8)
            stream.synchronize()

    def rt_c() -> None:
        for _ in range(rt_calls):
            c_add8.launch(queue)
            c_add8.synchronize(queue)

    def rt_np() -> None:
        for _ in range(rt_calls):
            np.add(a8, b8)

    for name, fn in (("hw.add", rt_hw), ("C maia_launch", rt_c)):
        t_m, t_n = interleaved_medians(fn, rt_np, repeat)
        results.append(
            _row(f"round trip add f32[8], {name} + sync", "np.add",
                 t_m / rt_calls, t_n / rt_calls, "target <= 20 us")
        )  # fmt: skip

    # -- large elementwise add: 16 MiB of float32 per operand ---------------------------------
    n = 1 << 22
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    c = np.empty_like(a)
    d = np.empty_like(a)
    x, y = hw.asarray(a, device=dev), hw.asarray(b, device=dev)
    z = hw.asarray(c, device=dev)
    c_add = _CView("add", [x, y], [z])
    dev.synchronize()
    big_calls, big_warm = 5, 3

    def hw_add() -> None:
        for _ in range(big_calls):
            hw.add(x, y)
        stream.synchronize()

    def c_add_run() -> None:
        for _ in range(big_calls):
            c_add.launch(queue)
        c_add.synchronize(queue)

    def np_add() -> None:
        for _ in range(big_calls):
            np.add(a, b, out=c)

    def memcpy() -> None:
        for _ in range(big_calls):
            np.copyto(d, a)

    warm = "warm: first touch excluded"
    for name, fn in (("hw.add", hw_add), ("C maia_launch, out preallocated", c_add_run)):
        for peer_name, peer in (("np.add(out=)", np_add), ("memcpy (np.copyto)", memcpy)):
            t_m, t_p = interleaved_medians(fn, peer, repeat, warmup=big_warm)
            results.append(
                _row(f"add f32 16 MiB, {name}", peer_name,
                     t_m / big_calls, t_p / big_calls, warm)
            )  # fmt: skip

    # -- matmul vs BLAS ---------------------------------------------------------------------
    for m in [1024] if quick else [1024, 2048]:
        am = rng.standard_normal((m, m)).astype(np.float32)
        cm = np.empty_like(am)
        xm = hw.asarray(am, device=dev)
        dev.synchronize()

        def hw_mm(xm: hw.Tensor = xm) -> None:
            hw.matmul(xm, xm)
            stream.synchronize()

        def np_mm(am: np.ndarray = am, cm: np.ndarray = cm) -> None:
            np.matmul(am, am, out=cm)

        t_m, t_p = interleaved_medians(hw_mm, np_mm, max(3, repeat // 3), settle=0.3)
        results.append(
            _row(f"matmul f32[{m},{m}], hw.matmul + sync", "np.matmul (BLAS)", t_m, t_p,
                 f"BLAS/maia = {t_p / t_m:.2f} (target >= 0.7)")
        )  # fmt: skip

    # -- two streams vs one -------------------------------------------------------------------
    # Device throughput: every launch is queued first behind a user event (a host-signalled
    # gate), then the gate opens and the clock runs until both queues are drained. Host-side
    # Python dispatch is thus in neither figure, as a GPU's stream throughput is measured with
    # its events; one stream's run and two streams' run alternate.
    impl = dev._impl
    s1, s2 = dev.create_stream(), dev.create_stream()
    time.sleep(0.5)  # let OpenBLAS's threads, still spinning after the matmul rows, go idle

    def gated(streams: list[hw.Stream], jobs: int, op: Any, xs: Any, outs: list[Any]) -> float:
        gate = impl.create_user_event()
        for s in streams:
            impl.stream_wait_event(s.handle, gate)
        for i in range(jobs):
            k = i % len(streams)
            op(*xs, stream=streams[k], out=outs[k])
        t0 = time.perf_counter()
        impl.signal_user_event(gate)
        for s in streams:
            s.synchronize()
        return time.perf_counter() - t0

    def rand(*shape: int) -> hw.Tensor:
        return hw.asarray(rng.standard_normal(shape).astype(np.float32), device=dev)

    x96, x512, srow, a64k = rand(96, 96), rand(512, 512), rand(16, 512), rand(65536)
    compute_bound = " (target >= 1.7)"
    for label, op, xs, jobs, note in (
        ("matmul f32[96,96]", hw.matmul, (x96, x96), 64, compute_bound),
        ("softmax f32[16,512]", hw.softmax, (srow,), 64, compute_bound),
        ("add f32 256 KiB", hw.add, (a64k, a64k), 64,
         " (memory-bound: the two cores share the cache and memory bandwidth)"),
        ("matmul f32[512,512]", hw.matmul, (x512, x512), 8,
         " (one kernel already fills both cores)"),
        ("add f32 16 MiB", hw.add, (x, y), 8, " (one kernel already fills both cores)"),
    ):  # fmt: skip
        outs = [op(*xs), op(*xs)]
        dev.synchronize()
        args = (jobs, op, xs, outs)
        t_two, t_one = interleaved_medians(
            lambda args=args: gated([s1, s2], *args),
            lambda args=args: gated([s1], *args),
            repeat, warmup=2,
        )  # fmt: skip
        results.append(
            _row(f"{jobs} x {label} on 2 streams", "the same on 1 stream", t_two, t_one,
                 f"throughput 2 vs 1 = {t_one / t_two:.2f}x{note}")
        )  # fmt: skip

    info = dev.info
    return {
        "benchmark": "bench_maia",
        "peer": f"NumPy {np.__version__}",
        "hwabstract": hw.__version__,
        "device": info.name,
        "kernel_threads": info.extra.get("kernel_threads"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "repeat": repeat,
        "results": results,
    }


def _table(report: dict[str, Any], markdown: bool) -> str:
    header = ["case", "maia µs", "peer", "peer µs", "ratio (maia/peer)", "note"]
    rows = [
        [
            r["case"],
            f"{r['maia_us']:.1f}",
            r["peer"],
            f"{r['peer_us']:.1f}",
            f"{r['ratio']:.2f}x",
            r["note"],
        ]
        for r in report["results"]
    ]
    return table(header, rows, markdown)


def _title(report: dict[str, Any], repeat: int) -> str:
    return (
        f"{report['device']} (maia:0, {report['kernel_threads']} kernel threads) vs "
        f"{report['peer']} — Python {report['python']}, {report['machine']}, "
        f"{report['cpu_count']} cores, median of {repeat}"
    )


def main(argv: list[str] | None = None) -> int:
    return harness.main(__doc__ or "", run, _title, _table, argv)


if __name__ == "__main__":
    sys.exit(main())
