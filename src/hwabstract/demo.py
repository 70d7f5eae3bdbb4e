"""The portable demo: one transformer-style block, written once against the public API, run
on every available device and checked against NumPy and across devices.

The block is a pre-LayerNorm transformer layer with single-head attention::

    h   = layer_norm(x) ;  q, k, v = h @ Wq, h @ Wk, h @ Wv
    x   = x + softmax(q @ k^T / sqrt(d)) @ v @ Wo
    out = x + gelu(layer_norm(x) @ W1 + b1) @ W2 + b2

Each device gets two streams. The *upload* stream copies batch ``i + 1`` to the device while
the *compute* stream works on batch ``i``; an event recorded on the upload stream after each
copy is waited for by the compute stream before it reads the batch (streams are not ordered
with each other unless you say so -- the CUDA rule, see ``docs/getting-started.md``).

Every device's output is compared with a float64 NumPy computation of the same block on the
same float32 inputs, and with the output of a baseline device (the ``cpu`` reference backend
when it ran, else the first device that ran). The wall time of the whole run (uploads,
compute, download) is measured per device, and the device time between two events where the
device declares event timing. Stand-in devices say so.

This demo does not certify a backend: the conformance suite does, and its matrix joins the
main job in a later issue.

Use it from the command line (``hwabstract demo``, ``tox -e demo``) or from Python::

    from hwabstract.demo import run_demo
    result = run_demo()                 # every device of hw.devices()
    assert result.ok
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

import hwabstract
from hwabstract.backend import TimelineEntry

#: The public API, typed loosely here: hwabstract generates most kernel functions and installs
#: Tensor's operators at import time, which type checkers cannot follow.
hw: Any = hwabstract

__all__ = [
    "DEFAULT_TOLERANCE",
    "REQUIRED_KERNELS",
    "DemoConfig",
    "DemoResult",
    "DeviceRun",
    "reference_block",
    "run_demo",
]

#: The largest max-abs error (against NumPy, and against the baseline device) that counts as
#: agreement. The block's outputs are of order 1 to 10; float32 rounding gives about 1e-6.
DEFAULT_TOLERANCE = 1e-3

#: The kernels the demo launches; a device must declare each for float32.
REQUIRED_KERNELS = ("layer_norm", "matmul", "multiply", "softmax", "add", "gelu")

#: What ``DeviceRun.status`` can be.
OK, MISMATCH, ERROR, SKIPPED = "ok", "mismatch", "error", "skipped"

_EPS = 1e-5
_DTYPE = np.float32


@attrs.frozen
class DemoConfig:
    """Sizes of the demo workload."""

    batches: int = 4  #: batches streamed through the block
    batch_size: int = 2
    seq_len: int = 16
    d_model: int = 64
    d_hidden: int = 256
    seed: int = 0  #: seed of the random inputs and weights

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(DemoConfig):
            value = getattr(self, field.name)
            if field.name != "seed" and value < 1:
                raise ValueError(f"DemoConfig.{field.name} must be at least 1, got {value}")

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.frozen
class DeviceRun:
    """The demo's outcome on one device."""

    device: str  #: ``backend:index``
    description: str  #: ``DeviceInfo.name``
    standin: bool  #: ``DeviceInfo.standin``: the device is not the hardware it models
    standin_for: str | None  #: ``DeviceInfo.standin_for``
    status: str  #: ``ok``, ``mismatch``, ``error`` or ``skipped``
    reason: str | None = None  #: why it is not ``ok``
    wall_ms: float | None = None  #: host wall time of the whole run, uploads to download
    event_ms: float | None = None  #: device time between events (None without event timing)
    #: modeled hardware time between the same events (None unless the device models time)
    modeled_ms: float | None = None
    max_abs_error: float | None = None  #: against the float64 NumPy computation
    max_abs_diff_baseline: float | None = None  #: against the baseline device's output
    #: what the device's queues executed on its performance model's clock (None unless the
    #: device models time: :meth:`hwabstract.Device.queue_timeline`)
    timeline: tuple[TimelineEntry, ...] | None = attrs.field(default=None, repr=False, eq=False)
    #: the demo's streams by role (``"compute"``, ``"upload"``) -> their timeline queue number
    queues: Mapping[str, int] | None = attrs.field(default=None, repr=False, eq=False)
    output: np.ndarray | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def ran(self) -> bool:
        """True if the block ran to completion (whether or not it agreed)."""
        return self.status in (OK, MISMATCH)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the output array is left out; non-finite floats become None)."""
        data = attrs.asdict(
            self, recurse=False, filter=lambda a, _: a.name not in ("output", "timeline")
        )
        data = {k: _finite_or_none(v) for k, v in data.items()}
        data["queues"] = dict(self.queues) if self.queues is not None else None
        data["timeline"] = (
            None if self.timeline is None else [attrs.asdict(e) for e in self.timeline]
        )
        return data


@attrs.frozen
class DemoResult:
    """Everything :func:`run_demo` found."""

    config: DemoConfig
    tolerance: float
    baseline: str | None  #: the device the others were compared with
    runs: tuple[DeviceRun, ...]
    reference: np.ndarray = attrs.field(repr=False, eq=False)  #: the NumPy output

    @property
    def ok(self) -> bool:
        """True if the block ran on at least one device and every device that ran agreed
        with NumPy and with the baseline. Skipped devices do not count against it; devices
        that raised do."""
        ran = [r for r in self.runs if r.status != SKIPPED]
        return bool(ran) and all(r.status == OK for r in ran)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tolerance": self.tolerance,
            "baseline": self.baseline,
            "dtype": "float32",
            "config": self.config.to_dict(),
            "devices": [r.to_dict() for r in self.runs],
        }


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- the workload -------------------------------------------------------------------------------


def _make_inputs(config: DemoConfig) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(config.seed)
    d, hdim = config.d_model, config.d_hidden

    def weight(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / math.sqrt(rows)).astype(_DTYPE)

    def vector(n: int, center: float) -> np.ndarray:
        return (center + 0.1 * rng.standard_normal(n)).astype(_DTYPE)

    params = {
        "ln1_w": vector(d, 1.0),
        "ln1_b": vector(d, 0.0),
        "wq": weight(d, d),
        "wk": weight(d, d),
        "wv": weight(d, d),
        "wo": weight(d, d),
        "ln2_w": vector(d, 1.0),
        "ln2_b": vector(d, 0.0),
        "w1": weight(d, hdim),
        "b1": vector(hdim, 0.0),
        "w2": weight(hdim, d),
        "b2": vector(d, 0.0),
    }
    batches = [
        rng.standard_normal((config.batch_size, config.seq_len, d)).astype(_DTYPE)
        for _ in range(config.batches)
    ]
    return batches, params


def _block(x: Any, p: Mapping[str, Any]) -> Any:
    """The block, on whatever device ``x`` lives; queued on the current stream."""
    scale = 1.0 / math.sqrt(x.shape[-1])
    h = hw.layer_norm(x, p["ln1_w"], p["ln1_b"], eps=_EPS)
    q, k, v = h @ p["wq"], h @ p["wk"], h @ p["wv"]
    attention = hw.softmax((q @ k.mT) * scale, axis=-1)
    x = x + (attention @ v) @ p["wo"]
    h = hw.layer_norm(x, p["ln2_w"], p["ln2_b"], eps=_EPS)
    return x + hw.gelu(h @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def reference_block(x: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """The same block in float64 NumPy, written independently of the kernels' references."""
    f = {k: v.astype(np.float64) for k, v in p.items()}
    x = x.astype(np.float64)

    def layer_norm(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        mean = a.mean(axis=-1, keepdims=True)
        var = ((a - mean) ** 2).mean(axis=-1, keepdims=True)
        return (a - mean) / np.sqrt(var + _EPS) * w + b

    def softmax(a: np.ndarray) -> np.ndarray:
        e = np.exp(a - a.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    erf = np.vectorize(math.erf, otypes=[np.float64])

    h = layer_norm(x, f["ln1_w"], f["ln1_b"])
    q, k, v = h @ f["wq"], h @ f["wk"], h @ f["wv"]
    attention = softmax(q @ np.swapaxes(k, -1, -2) / math.sqrt(x.shape[-1]))
    x = x + attention @ v @ f["wo"]
    h = layer_norm(x, f["ln2_w"], f["ln2_b"]) @ f["w1"] + f["b1"]
    return np.asarray(x + 0.5 * h * (1.0 + erf(h / math.sqrt(2.0))) @ f["w2"] + f["b2"])


def _missing_capabilities(device: hwabstract.Device) -> list[str]:
    caps = device.capabilities
    missing = [] if caps.supports_dtype(hw.float32) else ["dtype:float32"]
    missing += [
        f"kernel:{name}[float32]"
        for name in REQUIRED_KERNELS
        if not caps.supports_kernel(name, hw.float32)
    ]
    return missing


def _run_on(
    device: hwabstract.Device, batches: Sequence[np.ndarray], params: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Run the block on ``device``; returns the output and the :class:`DeviceRun` fields
    of its timings (wall, event and modeled ms, the queue timeline and queue numbers)."""
    timing = device.capabilities.has_feature(hw.Feature.EVENT_TIMING)
    device.clear_queue_timeline()  # (the device's whole timeline: this run's alone after)
    started = time.perf_counter()
    compute = device.create_stream()
    upload = device.create_stream()
    start_event = compute.record()
    # Weights go up on the compute stream: ordered before every use there, no event needed.
    weights = {k: hw.asarray(v, device=device, stream=compute) for k, v in params.items()}

    def send(i: int) -> tuple[hwabstract.Tensor, hwabstract.Event]:
        x = hw.asarray(batches[i], device=device, stream=upload)
        return x, upload.record(timing=False)

    outputs = []
    pending = send(0)
    for i in range(len(batches)):
        x, ready = pending
        if i + 1 < len(batches):
            pending = send(i + 1)  # overlaps the compute of batch i below
        compute.wait(ready)  # batch i is on the device before the compute stream reads it
        with compute:
            outputs.append(_block(x, weights))
    with compute:
        result = hw.concat(outputs, axis=0)
    end_event = compute.record()
    host = result.numpy()  # waits for the compute stream, the last writer of `result`
    wall_ms = (time.perf_counter() - started) * 1000.0
    event_ms = start_event.elapsed_time(end_event) if timing else None
    modeled_ms = (
        start_event.modeled_elapsed_time(end_event)
        if timing and device.capabilities.has_feature(hw.Feature.MODELED_TIME)
        else None
    )
    timeline = device.queue_timeline()
    queues = {"compute": compute.queue_number, "upload": upload.queue_number}
    return {
        "output": host,
        "wall_ms": wall_ms,
        "event_ms": event_ms,
        "modeled_ms": modeled_ms,
        "timeline": None if timeline is None else tuple(timeline),
        "queues": None if None in queues.values() else queues,
    }


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return math.inf
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def run_demo(
    devices: Iterable[Any] | None = None,
    *,
    config: DemoConfig | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> DemoResult:
    """Run the block on each of ``devices`` (device specs or :class:`~hwabstract.Device`
    objects; default: every device of every working backend, ``hw.devices()``).

    A device that does not declare what the block needs is *skipped* with the missing
    capabilities named; a device on which the block raises is recorded as *error* with the
    message; the others are *ok* or *mismatch* against ``tolerance`` (max abs error).
    Device specs that do not resolve raise :class:`~hwabstract.HwAbstractError`.
    """
    config = config or DemoConfig()
    if devices is None:
        targets = list(hw.devices())
    else:
        targets = []
        for spec in devices:
            device = hw.device(spec)
            if device not in targets:  # "cpu" and "cpu:0" are one device: run it once
                targets.append(device)
    batches, params = _make_inputs(config)
    reference = np.concatenate([reference_block(b, params) for b in batches], axis=0)

    runs: list[DeviceRun] = []
    for device in targets:
        info = device.info
        run = DeviceRun(
            device=device.name,
            description=info.name,
            standin=info.standin,
            standin_for=info.standin_for,
            status=SKIPPED,
        )
        missing = _missing_capabilities(device)
        if missing:
            runs.append(attrs.evolve(run, reason=f"does not declare {', '.join(missing)}"))
            continue
        try:
            measured = _run_on(device, batches, params)
        except Exception as exc:  # a broken backend is reported, and the others still run
            runs.append(attrs.evolve(run, status=ERROR, reason=f"{type(exc).__name__}: {exc}"))
            continue
        error = _max_abs(measured["output"], reference)
        agrees = error <= tolerance
        runs.append(
            attrs.evolve(
                run,
                status=OK if agrees else MISMATCH,
                reason=None if agrees else "disagrees with NumPy",
                max_abs_error=error,
                **measured,
            )
        )

    ran = [r for r in runs if r.ran]
    baseline = next((r for r in ran if r.device.startswith("cpu:")), ran[0] if ran else None)
    if baseline is not None:
        assert baseline.output is not None
        for i, run in enumerate(runs):
            if not run.ran:
                continue
            assert run.output is not None
            diff = _max_abs(run.output, baseline.output)
            if diff <= tolerance:
                runs[i] = attrs.evolve(run, max_abs_diff_baseline=diff)
            else:
                reasons = [r for r in (run.reason, f"disagrees with {baseline.device}") if r]
                runs[i] = attrs.evolve(
                    run, max_abs_diff_baseline=diff, status=MISMATCH, reason="; ".join(reasons)
                )
    return DemoResult(
        config=config,
        tolerance=tolerance,
        baseline=baseline.device if baseline is not None else None,
        runs=tuple(runs),
        reference=reference,
    )
