"""Handing tensors to and from NumPy, JAX and (if installed) PyTorch through DLPack, on every
device, saying at each step whether the memory was shared or copied.

For each device the round trip is::

    t    = hw.asarray(x, device=d)          # x: 256 x 1024 float32 from NumPy
    j    = jnp.from_dlpack(t)               # hwabstract -> JAX
    k    = j * 2                            # JAX computes (exact in float32)
    back = hw.from_dlpack(k, device=d)      # JAX -> hwabstract
    hw.multiply(back, 0.5) == x             # hwabstract computes; checked bit for bit

and the same with ``torch.from_dlpack`` where PyTorch is importable (it is optional: the
step says it skipped otherwise), and ``np.from_dlpack(t)`` for NumPy.

What to expect (docs/dlpack.md):

* **cpu**: tensors are host memory, exported as ``kDLCPU``. NumPy and PyTorch take the
  tensor's memory as it is (zero-copy; the example checks that both see the same address).
  JAX's CPU client shares it only if the buffer is 64-byte aligned and copies it otherwise
  (``jnp.from_dlpack(t, copy=False)`` then raises); the cpu backend aligns its buffers to 64
  bytes, so JAX shares them. The example reports which happened.
  Back from JAX or PyTorch, ``hw.from_dlpack`` adopts their memory without a copy -- but a
  JAX array is immutable and JAX does not mark its export read-only, so do not write to a
  tensor imported from JAX (pass ``copy=True`` if you will).
* **maia** (and tpu/trainium): the device's memory is not host memory and the backend does
  not export it, so ``jnp.from_dlpack(t)``, ``torch.from_dlpack(t)`` and
  ``np.from_dlpack(t)`` raise ``hw.DLPackError`` (from ``__dlpack_device__``), saying to ask
  for a host copy; the example then goes through the host, ``t.numpy()`` (a copy). The other
  way, ``hw.from_dlpack(k, device="maia:0")`` copies the data onto the device, and with
  ``copy=False`` raises ``DLPackError`` because sharing is impossible.
* **nvidia**: tensors are exported as ``kDLCUDA`` device memory; a CUDA-enabled JAX or
  PyTorch imports them on the GPU. This example reports what happened without comparing
  addresses there (there is no host address to compare).

JAX dispatches asynchronously: after importing a copied buffer, wait for a result
(``block_until_ready()``) before the interpreter exits -- jaxlib 0.10's CPU client can hang
at exit while an import's copy is still pending.

    pip install hwabstract hwabstract-maia jax   # torch optional
    python examples/dlpack_interop.py                    # every device of hw.devices()
    python examples/dlpack_interop.py --device cpu:0 --device maia:0

Exit status 0 when every value matches and every documented sharing/copy rule held; 1
otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import hwabstract as hw

KDLCPU = 1  #: DLPack's device type for host memory


class Report:
    """The lines printed for one device, and whether every check held."""

    def __init__(self, device: hw.Device) -> None:
        self.device = device
        self.lines: list[str] = []
        self.ok = True

    def step(self, what: str, outcome: str, good: bool = True) -> None:
        self.lines.append(f"  {what:<22} {outcome}" + ("" if good else "  <-- MISMATCH"))
        self.ok &= good


def _host_address(obj: Any) -> int | None:
    """The host address of a DLPack producer's data, or None if it is not host memory."""
    try:
        if obj.__dlpack_device__()[0] != KDLCPU:
            return None
        return int(np.from_dlpack(obj).ctypes.data)
    except (BufferError, TypeError, RuntimeError):  # hw.DLPackError is a BufferError
        return None


def _framework(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _shares(t: Any) -> bool:
    """Whether the device's memory is host memory DLPack exports as is."""
    try:
        return bool(t.__dlpack_device__()[0] == KDLCPU)
    except hw.DLPackError:
        return False


def numpy_step(t: Any, x: np.ndarray, report: Report) -> None:
    try:
        view = np.from_dlpack(t)
    except hw.DLPackError as exc:
        report.step("hwabstract -> NumPy", f"not possible: {_short(exc)}", not _shares(t))
        host = t.numpy()
        report.step(
            "", "t.numpy() instead: a host copy, values equal", bool(np.array_equal(host, x))
        )
        return
    same = view.ctypes.data == _host_address(t)
    view[0, 0] = 42.0  # a write through the NumPy view ...
    seen = float(t[0, 0]) == 42.0  # ... is seen by the tensor: the memory is shared
    view[0, 0] = x[0, 0]
    report.step(
        "hwabstract -> NumPy",
        "np.from_dlpack(t): shared (a write through NumPy is seen by t)"
        if seen and same
        else "np.from_dlpack(t): NOT shared",
        seen and same,
    )


def round_trip(framework: str, t: Any, x: np.ndarray, report: Report,
               to_framework: Callable[[Any], Any], compute: Callable[[Any], Any],
               address: Callable[[Any], int | None], from_host: Callable[[np.ndarray], Any],
               ) -> None:  # fmt: skip
    """t -> framework -> compute -> back onto t's device -> compute -> check."""
    device = t.device
    try:
        f = to_framework(t)
        theirs = address(f)
        mine = _host_address(t)
        if mine is None or theirs is None:
            how = "imported (device memory: no host address to compare)"
        elif theirs == mine:
            how = "shared (same address)"
        else:
            how = f"copied by {framework}" + (
                " (the buffer is not 64-byte aligned, as XLA's CPU client needs)"
                if framework == "JAX" and mine % 64
                else ""
            )
        good = bool(np.array_equal(np.asarray(_to_host(f)), x))
        report.step(f"hwabstract -> {framework}", f"{how}; values equal" if good else how, good)
    except hw.DLPackError as exc:
        report.step(
            f"hwabstract -> {framework}",
            f"not possible: {_short(exc)}",
            not _shares(t),  # documented for devices whose memory is not exported
        )
        f = from_host(t.numpy())
        report.step("", f"through the host instead: t.numpy() -> {framework} (copies)")
    k = compute(f)  # 2 x, exact in float32
    back = hw.from_dlpack(k, device=device)
    host_k = _host_address(k)
    if host_k is not None and _host_address(back) == host_k:
        how = "shared (same address)"
    else:
        how = f"copied onto {device.name}" if host_k is not None else "imported"
    if host_k is not None and not _shares(back):
        try:
            hw.from_dlpack(k, device=device, copy=False)
            refused = "copy=False did not refuse"
        except hw.DLPackError:
            refused = "copy=False refuses it (DLPackError)"
        how += f"; {refused}"
        good_refusal = refused.endswith("(DLPackError)")
    else:
        good_refusal = True
    report.step(f"{framework} -> hwabstract", f"hw.from_dlpack(k, device=...): {how}", good_refusal)
    result = hw.multiply(back, 0.5).numpy()
    exact = bool(np.array_equal(result, x))
    report.step(
        "check",
        "hw.multiply(back, 0.5) == x, bit for bit" if exact else "values DIFFER from x",
        exact,
    )


def _to_host(f: Any) -> Any:
    """A framework array's values on the host (PyTorch tensors through .cpu())."""
    return f.cpu() if hasattr(f, "cpu") and not hasattr(f, "block_until_ready") else f


def _short(exc: Exception) -> str:
    """The error's first clause (the whole message is longer)."""
    return f"{type(exc).__name__}: {str(exc).split(';')[0]}"


def run(device_spec: Any, *, seed: int = 0) -> Report:
    """The NumPy, JAX and PyTorch round trips on one device."""
    device = hw.device(device_spec)
    report = Report(device)
    if not device.capabilities.supports_kernel("multiply", hw.float32):
        report.step("skipped", "the device does not declare float32 multiply")
        return report
    x = np.random.default_rng(seed).standard_normal((256, 1024)).astype(np.float32)
    t = hw.asarray(x, device=device)
    numpy_step(t, x, report)

    jax = _framework("jax")
    if jax is None:
        report.step("JAX", "skipped: jax is not installed (pip install jax)")
    else:
        jnp = jax.numpy

        def jax_compute(j: Any) -> Any:
            return (j * 2).block_until_ready()  # wait: see the module docstring

        round_trip(
            "JAX", t, x, report,
            to_framework=jnp.from_dlpack,
            compute=jax_compute,
            address=lambda j: j.unsafe_buffer_pointer() if _on_host(j) else None,
            from_host=jnp.asarray,
        )  # fmt: skip
    torch = _framework("torch")
    if torch is None:
        report.step("PyTorch", "skipped: torch is not installed (pip install torch)")
    else:
        round_trip(
            "PyTorch", t, x, report,
            to_framework=torch.from_dlpack,
            compute=lambda u: u * 2,
            address=lambda u: u.data_ptr() if u.device.type == "cpu" else None,
            from_host=torch.from_numpy,
        )  # fmt: skip
    return report


def _on_host(j: Any) -> bool:
    return all(d.platform == "cpu" for d in j.devices())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", action="append",
        help="a device to run on (repeatable); default: every device of hw.devices()",
    )  # fmt: skip
    args = parser.parse_args(argv)
    devices = args.device or [d.name for d in hw.devices()]
    ok = True
    for name in devices:
        report = run(name)
        print(f"{report.device.name} ({report.device.info.name})")
        print("\n".join(report.lines))
        print(f"  {'ok' if report.ok else 'MISMATCH'}\n")
        ok &= report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
