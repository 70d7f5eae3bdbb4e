"""Copy/compute overlap with two streams and events: the same pipeline scheduled serially
and overlapped, on every device, with identical results.

The pipeline: ``--chunks`` batches of 128 x 1024 float32 rows (512 KiB each) are uploaded
from the host, and each goes through three layers, ``h = relu(h @ W_i)`` with 1024 x 1024
weights already on the device; the outputs are gathered and downloaded once.

* **serial**: one stream does everything in order -- upload chunk 0, compute it, upload
  chunk 1, ... -- so no upload can run while a chunk is computed.
* **overlapped**: an *upload* stream copies chunk ``i + 1`` while the *compute* stream works
  on chunk ``i``. An event recorded on the upload stream after each copy is waited for by
  the compute stream before it reads the chunk (streams are not ordered with each other
  unless you say so; docs/getting-started.md). Both streams first wait for a *start* event,
  so both schedules are timed from the same point. The upload of chunk ``i + 1`` is
  *queued* after chunk ``i``'s compute, and runs beside it: when a kernel reads a tensor
  last written on another stream, hwabstract orders the read after everything queued on
  that stream so far (an event at its end, not at the write), so an upload queued first
  would be waited for too -- on Maia's model that hides one upload fewer.

Both schedules run the same kernels on the same data, so their outputs must be
bit-identical; each is also checked against NumPy (float64 products rounded to float32,
within the float32 matmul bound ``2 K eps |A||B|`` per layer, as the conformance suite holds
``matmul``). Printed per schedule: host wall time (first upload queued to the result on the
host), the device time between the start and end events where the device declares event
timing, and -- on Maia -- the modeled Maia 200 time between them.

**What overlap a device can actually give** (and what the figures do and do not show):

* ``cpu``: a stream is a worker thread, and a host-to-device "copy" is a memcpy the calling
  thread does itself (at once when the stream is idle, else into a staging array that the
  worker then copies). So uploads run on the Python thread while the compute stream's
  worker runs BLAS, in *both* schedules: the serial one already overlaps the staging copy
  with the previous chunk's compute. What the second stream adds is that the compute worker
  never waits behind a copy. NumPy's BLAS uses every core for a matmul, so on a busy or
  small host the two schedules take about the same wall time, and either may come out
  ahead: the printed ratio is a measurement of this host, not a promise.
* ``maia`` (the emulator): each stream is a hardware queue with its own worker thread;
  copies are memcpys on the queue's worker, kernels run on the emulator's kernel threads.
  The *modeled* time is the honest overlap figure for the chip: every queue has its own
  modeled clock, a cross-queue wait moves the waiting clock forward, a host-to-device copy
  costs ``bytes / 64 GB/s + 1 us`` and a kernel ``max(flops / peak, bytes / 7 TB/s) + 2 us``
  (docs/backends/maia.md). The model does not charge contention between a DMA and a kernel
  for HBM bandwidth, so the overlapped figure is the ideal pipeline -- a lower bound for
  the chip. The emulator's *wall* time is the host's, like cpu's.
* ``nvidia``: uploads from NumPy (pageable) memory are staged by the CUDA driver, which
  limits how much a copy engine can overlap with kernels; page-locked host memory would be
  needed for full overlap. Not measured by this example's authors on a GPU.
* ``tpu``/``trainium`` stand-ins: JAX's CPU client; its dispatch is asynchronous but the
  stand-in declares no event timing, so only wall time is shown.

    pip install hwabstract hwabstract-maia
    python examples/stream_overlap.py                  # every device of hw.devices()
    python examples/stream_overlap.py --device maia:0 --chunks 16

Exit status 0 when on every device both schedules give the same, correct result; 1
otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import hwabstract as hw

ROWS, WIDTH, LAYERS = 128, 1024, 3
EPS = float(np.finfo(np.float32).eps)


@dataclass
class Timing:
    wall_ms: float
    event_ms: float | None  #: device time between the start and end events
    modeled_ms: float | None  #: modeled hardware time between them (Maia)


def make_data(chunks: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    batches = [rng.standard_normal((ROWS, WIDTH)).astype(np.float32) for _ in range(chunks)]
    weights = [
        (rng.standard_normal((WIDTH, WIDTH)) * np.sqrt(2.0 / WIDTH)).astype(np.float32)
        for _ in range(LAYERS)
    ]
    return batches, weights


def layers(x: Any, weights: list[Any]) -> Any:
    """The per-chunk computation, queued on the current stream."""
    for w in weights:
        x = hw.relu(x @ w)
    return x


def serial(device: hw.Device, batches: list[np.ndarray], weights: list[Any]) -> Any:
    """Everything on one stream: upload, compute, upload, compute, ..."""
    stream = device.create_stream()
    outputs = []
    with stream:
        start = stream.record()
        for batch in batches:
            x = hw.asarray(batch, device=device)  # queued on the current stream
            outputs.append(layers(x, weights))
        result = hw.concat(outputs, axis=0)
        end = stream.record()
    return result, start, end


def overlapped(device: hw.Device, batches: list[np.ndarray], weights: list[Any]) -> Any:
    """Uploads on one stream, compute on another, ordered by events."""
    upload, compute = device.create_stream(), device.create_stream()
    start = compute.record()
    upload.wait(start)  # both streams start from the same point (and modeled clock)

    def send(i: int) -> tuple[Any, hw.Event]:
        x = hw.asarray(batches[i], device=device, stream=upload)
        return x, upload.record(timing=False)

    outputs = []
    pending = send(0)
    for i in range(len(batches)):
        x, ready = pending
        compute.wait(ready)  # chunk i is on the device before the compute stream reads it
        with compute:
            outputs.append(layers(x, weights))
        if i + 1 < len(batches):
            # queued after chunk i's compute, and still run beside it (the streams are
            # independent); queued before it, it would be waited for too (see above)
            pending = send(i + 1)
    with compute:
        result = hw.concat(outputs, axis=0)
        end = compute.record()
    return result, start, end


def timed(schedule: Any, device: hw.Device, batches: list[np.ndarray], weights: list[Any],
          ) -> tuple[np.ndarray, Timing]:  # fmt: skip
    caps = device.capabilities
    timing = caps.has_feature(hw.Feature.EVENT_TIMING)
    started = time.perf_counter()
    result, start, end = schedule(device, batches, weights)
    host = result.numpy()  # waits for the stream that wrote it
    wall_ms = (time.perf_counter() - started) * 1e3
    return host, Timing(
        wall_ms,
        start.elapsed_time(end) if timing else None,
        start.modeled_elapsed_time(end)
        if timing and caps.has_feature(hw.Feature.MODELED_TIME)
        else None,
    )


def reference_check(batches: list[np.ndarray], weights: list[np.ndarray],
                    output: np.ndarray) -> float:  # fmt: skip
    """Largest |output - NumPy| / bound over all elements, layer by layer on NumPy's own
    chain (float64 products rounded to float32; the bound propagates each layer's
    ``2 K eps |A||B|`` through the next layers' ``|W|``)."""
    h = np.concatenate(batches).astype(np.float32)
    error = np.zeros(h.shape)
    for w in weights:
        magnitude = (np.abs(h.astype(np.float64)) + error) @ np.abs(w.astype(np.float64))
        error = error @ np.abs(w.astype(np.float64)) + 2.0 * WIDTH * EPS * magnitude
        h = np.maximum((h.astype(np.float64) @ w.astype(np.float64)).astype(np.float32), 0)
    diff = np.abs(output.astype(np.float64) - h)
    return float(np.max(diff / np.maximum(error, np.finfo(np.float64).tiny)))


def run(device_spec: Any, *, chunks: int = 8, seed: int = 0) -> dict[str, Any]:
    """Both schedules on one device (after a warm-up of each); returns their outputs'
    agreement and their timings."""
    device = hw.device(device_spec)
    caps = device.capabilities
    missing = [k for k in ("matmul", "relu", "concat") if not caps.supports_kernel(k, hw.float32)]
    if missing:
        return {"device": device.name, "skipped": f"does not declare float32 {missing}"}
    batches, weights = make_data(chunks, seed)
    on_device = [hw.asarray(w, device=device) for w in weights]
    device.synchronize()
    for schedule in (serial, overlapped):  # warm-up: allocations, compilation (PJRT)
        timed(schedule, device, batches, on_device)
    out_serial, t_serial = timed(serial, device, batches, on_device)
    out_overlap, t_overlap = timed(overlapped, device, batches, on_device)
    return {
        "device": device.name,
        "description": device.info.name,
        "identical": bool(np.array_equal(out_serial.view(np.uint32), out_overlap.view(np.uint32))),
        "excess": reference_check(batches, weights, out_overlap),
        "serial": t_serial,
        "overlapped": t_overlap,
    }


def _fmt(t: Timing) -> str:
    parts = [f"wall {t.wall_ms:8.3f} ms"]
    parts.append(f"device {t.event_ms:8.3f} ms" if t.event_ms is not None else "device -")
    if t.modeled_ms is not None:
        parts.append(f"modeled {t.modeled_ms * 1e3:8.1f} us")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", action="append",
        help="a device to run on (repeatable); default: every device of hw.devices()",
    )  # fmt: skip
    parser.add_argument("--chunks", type=int, default=8, help="batches to stream (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.chunks < 2:
        parser.error(
            f"--chunks must be at least 2 (there is nothing to overlap), got {args.chunks}"
        )
    devices = args.device or [d.name for d in hw.devices()]
    print(
        f"{args.chunks} chunks of {ROWS} x {WIDTH} float32 "
        f"({ROWS * WIDTH * 4 // 1024} KiB each) uploaded, then {LAYERS} x relu(h @ W)"
    )
    ok = True
    for name in devices:
        r = run(name, chunks=args.chunks, seed=args.seed)
        if "skipped" in r:
            print(f"\n{r['device']}: skipped: {r['skipped']}")
            continue
        good = r["identical"] and r["excess"] <= 1.0
        ok &= good
        s, o = r["serial"], r["overlapped"]
        print(f"\n{r['device']} ({r['description']})")
        print(f"  serial     (1 stream):  {_fmt(s)}")
        print(f"  overlapped (2 streams): {_fmt(o)}")
        ratios = [f"wall {s.wall_ms / o.wall_ms:.2f}x"]
        if s.modeled_ms is not None and o.modeled_ms is not None:
            ratios.append(f"modeled {s.modeled_ms / o.modeled_ms:.2f}x")
        print(f"  serial / overlapped: {', '.join(ratios)}")
        print(
            f"  results: {'bit-identical' if r['identical'] else 'DIFFERENT'} between the "
            f"schedules; max |diff| / bound vs NumPy {r['excess']:.2g} -- "
            f"{'ok' if good else 'MISMATCH'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
