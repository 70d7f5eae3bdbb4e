"""A three-layer MLP written once, run on every device, with MX-quantized weights where the
device declares the OCP Microscaling formats, and checked against NumPy.

The model (float32 activations, ReLU between layers)::

    h1 = relu(x  @ W1 + b1)      W1: 512 x 1024, weights in mxfp8_e4m3
    h2 = relu(h1 @ W2 + b2)      W2: 1024 x 1024, weights in mxfp4_e2m1
    y  =      h2 @ W3 + b3       W3: 1024 x 256, weights in mxfp8_e4m3

**Which path a device takes.** Where the device declares the formats in
``device.capabilities.mx_formats`` (``hw.mx`` and docs/mx.md: cpu and maia natively, nvidia,
tpu and trainium emulated), the weights are quantized once on the device
(``hw.mx.quantize(W, fmt, axis=0)``, blocks of 32 along the contracted dimension), each
layer's input is quantized to mxfp8_e4m3 along its rows, and the layer is an MX x MX
``hw.mx.matmul`` -- the operands an MX tensor unit takes (Maia 200 multiplies FP8 by FP4).
Elsewhere, or with ``--no-mx``, it is a plain float32 ``x @ W``. The output says which.

**What is compared.** Each layer's output is compared with the same layer computed in NumPy
on the *device's own* input to that layer (pulled to the host): for the MX path the
reference is ``hwabstract.mx.reference`` (quantize, then the exact product of the
dequantized operands rounded once to float32), for the float32 path the float64 product
rounded to float32. The allowed difference is the matmul's error bound, as the conformance
suite holds it (docs/mx.md): ``2 eps |A||B|`` for native MX kernels (exact block dot
products, one rounding), ``2 K eps |A||B|`` where the device accumulates in float32 (emulated
MX, and plain float32), plus ``2 eps`` for the bias add -- per element, not a loose
tolerance. On the native MX path each layer is rounded once, like the reference, so the whole
output must also agree with the reference run end to end (the requantized activations come
out the same); where the device accumulates in float32 an activation lying within rounding
of an MX code boundary may requantize the other way, so there the end-to-end difference and
the difference from the other devices are printed but only the per-layer checks decide.

**Timing.** A warm-up pass, then a timed pass per device: host wall time (upload of the batch
to download of the result), device time between two events where the device declares event
timing, and on Maia (``Feature.MODELED_TIME``) the time the performance model says Maia 200
would take. The emulator's own wall time says nothing about the chip.

    pip install hwabstract hwabstract-maia
    python examples/portable_mlp.py                     # every device of hw.devices()
    python examples/portable_mlp.py --device cpu:0 --device maia:0 --no-mx

Exit status 0 when every device that ran agrees with NumPy, 1 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import hwabstract as hw

BATCH = 64
DIMS = (512, 1024, 1024, 256)
#: the weight format of each layer on the MX path; activations are quantized to ACT_FORMAT
WEIGHT_FORMATS = ("mxfp8_e4m3", "mxfp4_e2m1", "mxfp8_e4m3")
ACT_FORMAT = "mxfp8_e4m3"
EPS = float(np.finfo(np.float32).eps)
REQUIRED_KERNELS = ("matmul", "add", "relu")


@dataclass
class Layer:
    """One layer's plan on a device: which weight format (None: float32) and how the device
    supports it (``native``, ``emulated``, or ``float32``)."""

    weight_format: str | None
    support: str


@dataclass
class DeviceResult:
    device: str
    description: str
    path: str  #: what the device ran, in words
    status: str  #: "ok", "MISMATCH" or "skipped"
    reason: str = ""
    output: np.ndarray | None = None
    layer_excess: list[float] = field(default_factory=list)  #: max |diff| / bound per layer
    end_to_end_diff: float | None = None  #: max |output - reference run end to end|
    identical: float | None = None  #: fraction of output elements bit-identical to it
    wall_ms: float | None = None
    event_ms: float | None = None
    modeled_ms: float | None = None
    weight_bytes: int = 0  #: device memory the weights take


def make_model(seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """The batch, the weights and the biases (float32), from ``seed``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, DIMS[0])).astype(np.float32)
    weights = [
        (rng.standard_normal((k, n)) * np.sqrt(2.0 / k)).astype(np.float32)
        for k, n in itertools.pairwise(DIMS)
    ]
    biases = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in DIMS[1:]]
    return x, weights, biases


def plan(device: hw.Device, use_mx: bool) -> list[Layer] | str:
    """The layers' plan on ``device``, or why it cannot run the MLP at all."""
    caps = device.capabilities
    missing = [k for k in REQUIRED_KERNELS if not caps.supports_kernel(k, hw.float32)]
    if not caps.supports_dtype(hw.float32) or missing:
        return f"does not declare float32 {', '.join(missing) or 'tensors'}"
    declared = caps.mx_formats
    if not use_mx or ACT_FORMAT not in declared:
        return [Layer(None, "float32") for _ in WEIGHT_FORMATS]
    layers = []
    for fmt in WEIGHT_FORMATS:
        chosen = fmt if fmt in declared else ACT_FORMAT  # e.g. no FP4: FP8 weights
        supports = {declared[chosen].value, declared[ACT_FORMAT].value}
        layers.append(Layer(chosen, "native" if supports == {"native"} else "emulated"))
    return layers


def describe(layers: list[Layer]) -> str:
    if layers[0].weight_format is None:
        return "float32 weights (no MX)"
    formats = " / ".join(layer.weight_format or "" for layer in layers)
    kinds = sorted({layer.support for layer in layers})
    return f"MX weights {formats} x {ACT_FORMAT} activations ({', '.join(kinds)})"


# -- the model on a device ---------------------------------------------------------------------


def upload(device: hw.Device, layers: list[Layer], weights: list[np.ndarray],
           biases: list[np.ndarray]) -> list[tuple[Any, Any]]:  # fmt: skip
    """Weights (MX-quantized on the device where the plan says so) and biases on ``device``."""
    params = []
    for layer, w, b in zip(layers, weights, biases):
        wd = hw.asarray(w, device=device)
        if layer.weight_format is not None:
            wd = hw.mx.quantize(wd, layer.weight_format, axis=0)  # blocked along K
        params.append((wd, hw.asarray(b, device=device)))
    return params


def forward(x: Any, layers: list[Layer], params: list[tuple[Any, Any]]) -> list[Any]:
    """The MLP on ``x``'s device, queued on the current stream; returns every layer's input
    and the output: ``[x, h1, h2, y]``."""
    states = [x]
    for i, (layer, (w, b)) in enumerate(zip(layers, params)):
        h = states[-1]
        if layer.weight_format is None:
            z = h @ w + b
        else:
            z = hw.mx.matmul(hw.mx.quantize(h, ACT_FORMAT, axis=1), w) + b
        states.append(hw.relu(z) if i < len(layers) - 1 else z)
    return states


# -- the NumPy reference -----------------------------------------------------------------------


def reference_layer(h: np.ndarray, layer: Layer, w: np.ndarray, b: np.ndarray, last: bool,
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The layer in NumPy on input ``h``: (output, per-element error bound for a device)."""
    ref = hw.mx.reference
    if layer.weight_format is None:
        a64, w64 = h.astype(np.float64), w.astype(np.float64)
        z = (a64 @ w64).astype(np.float32)
        factor = 2.0 * h.shape[1]  # float32 accumulation: 2 K eps |A||B|
    else:
        act, wfmt = hw.mx.mx_format(ACT_FORMAT), hw.mx.mx_format(layer.weight_format)
        qa, qw = ref.quantize(h, act, axis=1), ref.quantize(w, wfmt, axis=0)
        z = ref.matmul(qa, qw, np.float32, a_fmt=act, b_fmt=wfmt)
        a64, w64 = ref.dequantize(qa, act, np.float64), ref.dequantize(qw, wfmt, np.float64)
        factor = 2.0 if layer.support == "native" else 2.0 * h.shape[1]
    out = z + b  # float32, as on the device
    if not last:
        out = np.maximum(out, np.float32(0))
    magnitude = np.abs(a64) @ np.abs(w64) + np.abs(b.astype(np.float64))
    return out, (factor + 2.0) * EPS * magnitude  # + 2 eps: the rounding of the bias add


def reference_run(x: np.ndarray, layers: list[Layer], weights: list[np.ndarray],
                  biases: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """The whole MLP in NumPy from ``x``: (output, bound) of each layer."""
    results, h = [], x
    for i, (layer, w, b) in enumerate(zip(layers, weights, biases)):
        h, bound = reference_layer(h, layer, w, b, last=i == len(layers) - 1)
        results.append((h, bound))
    return results


# -- one device --------------------------------------------------------------------------------


def run(device_spec: Any, *, use_mx: bool = True, seed: int = 0) -> DeviceResult:
    """Run the MLP on one device and check it; see the module docstring."""
    device = hw.device(device_spec)
    x, weights, biases = make_model(seed)
    layers = plan(device, use_mx)
    result = DeviceResult(device.name, device.info.name, "", "skipped")
    if isinstance(layers, str):
        result.reason = layers
        return result
    result.path = describe(layers)
    caps = device.capabilities
    timing = caps.has_feature(hw.Feature.EVENT_TIMING)
    modeled = timing and caps.has_feature(hw.Feature.MODELED_TIME)

    stream = device.create_stream()
    with stream:
        params = upload(device, layers, weights, biases)
        result.weight_bytes = sum(w.nbytes for w, _ in params)
        forward(hw.asarray(x, device=device), layers, params)  # warm-up: compiles, allocates
    stream.synchronize()

    started = time.perf_counter()
    with stream:
        start = stream.record()
        states = forward(hw.asarray(x, device=device), layers, params)
        end = stream.record()
    output = states[-1].numpy()  # waits for the stream
    result.wall_ms = (time.perf_counter() - started) * 1e3
    if timing:
        result.event_ms = start.elapsed_time(end)
    if modeled:
        result.modeled_ms = start.modeled_elapsed_time(end)
    result.output = output

    # each layer against NumPy on the device's own input to it
    host = [t.numpy() for t in states]
    problems = []
    if not np.array_equal(host[0], x):
        problems.append("the batch changed on its way to the device")
    for i, layer in enumerate(layers):
        expected, bound = reference_layer(
            host[i], layer, weights[i], biases[i], last=i == len(layers) - 1
        )
        excess = float(np.max(np.abs(host[i + 1].astype(np.float64) - expected) / bound))
        result.layer_excess.append(excess)
        if not excess <= 1.0:  # NaN fails too
            problems.append(f"layer {i + 1} differs from NumPy by {excess:.3g}x its bound")

    # end to end, against the reference run from x alone
    final, bound = reference_run(x, layers, weights, biases)[-1]
    diff = np.abs(output.astype(np.float64) - final)
    result.end_to_end_diff = float(diff.max())
    result.identical = float(np.mean(output.view(np.uint32) == final.view(np.uint32)))
    if all(layer.support == "native" for layer in layers) and not np.all(diff <= bound):
        problems.append("the native MX output differs from the reference run end to end")

    result.status = "MISMATCH" if problems else "ok"
    result.reason = "; ".join(problems)
    return result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", action="append",
        help="a device to run on (repeatable); default: every device of hw.devices()",
    )  # fmt: skip
    parser.add_argument(
        "--no-mx", action="store_true",
        help="float32 weights everywhere, even where the device declares MX formats",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch and the weights")
    args = parser.parse_args(argv)
    devices = args.device or [d.name for d in hw.devices()]
    dims = " -> ".join(map(str, DIMS))
    print(f"MLP {dims}, batch {BATCH}, float32 activations, ReLU; seed {args.seed}")

    results = [run(name, use_mx=not args.no_mx, seed=args.seed) for name in devices]
    ran = [r for r in results if r.output is not None]
    dense = f"{sum(w.nbytes for w in make_model(args.seed)[1]) / 2**20:.2f} MiB"
    baseline = next((r for r in ran if r.device.startswith("cpu:")), ran[0] if ran else None)
    for r in results:
        print(f"\n{r.device} ({r.description})")
        if r.status == "skipped":
            print(f"  skipped: {r.reason}")
            continue
        print(f"  path: {r.path}")
        print(f"  weights: {r.weight_bytes / 2**20:.2f} MiB on the device ({dense} in float32)")
        per_layer = ", ".join(f"{e:.2g}" for e in r.layer_excess)
        print(f"  per layer, max |diff| / bound vs NumPy on the layer's input: {per_layer}")
        print(
            f"  end to end vs NumPy: max |diff| {r.end_to_end_diff:.3g}, "
            f"{r.identical:.1%} of outputs bit-identical"
        )
        if baseline is not None and baseline is not r:
            assert baseline.output is not None and r.output is not None
            cross = float(np.max(np.abs(r.output - baseline.output)))
            same = "same path" if r.path == baseline.path else "another path"
            print(f"  vs {baseline.device} ({same}): max |diff| {cross:.3g}")
        print(
            f"  time: wall {_ms(r.wall_ms)} ms, device (events) {_ms(r.event_ms)} ms, "
            f"modeled {_ms(r.modeled_ms)} ms"
            + (" (Maia 200 by the emulator's model)" if r.modeled_ms is not None else "")
        )
        print(f"  {r.status}" + (f": {r.reason}" if r.reason else ""))
    failed = [r.device for r in results if r.status == "MISMATCH"]
    if not ran:
        print("\nno device could run the MLP")
        return 1
    print(f"\n{'MISMATCH on ' + ', '.join(failed) if failed else 'every device agrees'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
