"""Deliberately faulty backends: the cpu reference backend with one defect each. The
conformance suite must fail every one of them, in the area the defect belongs to
(``test_faulty_backends.py``). Loaded as a plugin with ``hwabstract conformance
--plugin tests/conformance/faulty_backends.py``; never installed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hwabstract.backend import Operand
from hwabstract.backends.cpu import CpuBackend, CpuBuffer, CpuStream, _view
from hwabstract.hookspecs import hookimpl
from hwabstract.kernels import get_spec


class _Faulty(CpuBackend):
    priority = -10  # never the default device
    environment: Mapping[str, str] = {}


class WrongRounding(_Faulty):
    """float16 arithmetic truncates toward zero instead of rounding to nearest even."""

    name = "faulty_rounding"
    _ARITHMETIC = ("add", "subtract", "multiply", "divide")

    def launch(
        self,
        stream: CpuStream,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> None:
        if kernel not in self._ARITHMETIC or outputs[0].dtype.name != "float16":
            return super().launch(stream, kernel, inputs, outputs, attributes)
        ins = [_view(op) for op in inputs]
        out = _view(outputs[0])
        reference = get_spec(kernel).reference

        def run() -> None:
            wide = np.asarray(reference(*[a.astype(np.float32) for a in ins]), np.float32)
            nearest = wide.astype(np.float16)
            away = np.abs(nearest.astype(np.float32)) > np.abs(wide)
            toward_zero = np.where(away, np.nextafter(nearest, np.float16(0)), nearest)
            np.copyto(out, toward_zero)

        stream.submit(run, f"kernel {kernel!r}")
        return None


class IgnoresStreamOrder(_Faulty):
    """A slow device whose streams do not wait for events (so nothing orders them)."""

    name = "faulty_ordering"

    def stream_wait_event(self, stream: CpuStream, event: Any) -> None:
        return None

    def launch(
        self,
        stream: CpuStream,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> None:
        stream.submit(lambda: time.sleep(0.003), "slow")
        super().launch(stream, kernel, inputs, outputs, attributes)


class MishandlesItsDType(_Faulty):
    """Claims bfloat16 but drops the low three bits of its mantissa on the way in."""

    name = "faulty_dtype_claim"

    def copy_from_host(self, stream: CpuStream, dst: Operand, src: np.ndarray) -> None:
        if dst.dtype.name == "bfloat16":
            bits = np.ascontiguousarray(src).view(np.uint16) & np.uint16(0xFFF8)
            src = bits.view(src.dtype)
        super().copy_from_host(stream, dst, src)


class LeaksMemory(_Faulty):
    """Frees allocations of 4 KiB and more without returning them to the accounting."""

    name = "faulty_leak"

    def free(self, buffer: CpuBuffer) -> None:
        if buffer.nbytes >= 4096:
            buffer.freed = True  # dropped, never given back
            return
        super().free(buffer)


class BroadcastsWrongly(_Faulty):
    """Treats every broadcast input as if it were its first element."""

    name = "faulty_broadcast"

    def launch(
        self,
        stream: CpuStream,
        kernel: str,
        inputs: Sequence[Operand],
        outputs: Sequence[Operand],
        attributes: Mapping[str, Any],
    ) -> None:
        bent = [
            op._replace(strides=(0,) * len(op.shape)) if 0 in op.strides and op.size else op
            for op in inputs
        ]
        super().launch(stream, kernel, bent, outputs, attributes)


class ReturnsBeforeTheCopy(_Faulty):
    """Device-to-host copies land 50 ms after the stream says it is done."""

    name = "faulty_async_copy"

    def copy_to_host(self, stream: CpuStream, dst: np.ndarray, src: Operand) -> None:
        source = _view(src)
        snapshot: list[np.ndarray] = []
        stream.submit(lambda: snapshot.append(np.array(source, copy=True)), "copy_to_host")

        def land() -> None:
            time.sleep(0.05)
            while not snapshot:
                time.sleep(0.001)
            np.copyto(dst, snapshot[0], casting="no")

        threading.Thread(target=land, daemon=True).start()


class LeaksMemoryKnowingly(LeaksMemory):
    """The leaking backend again, shipping an expectations file that lists its failures."""

    name = "faulty_leak_known"
    conformance_expectations = "faulty_leak_expectations.toml"


class PacksFp4Backwards(_Faulty):
    """MX: puts FP4 element 0 in the *high* nibble (the opposite of DLPack's convention)."""

    name = "faulty_mx_packing"

    def _launch_mx(self, stream: CpuStream, kernel: str, inputs: Sequence[Operand],
                   outputs: Sequence[Operand], attributes: Mapping[str, Any]) -> None:  # fmt: skip
        super()._launch_mx(stream, kernel, inputs, outputs, attributes)
        if kernel == "mx_quantize" and attributes["format"] == "mxfp4_e2m1":
            packed = _view(outputs[0])

            def swap() -> None:
                packed[...] = (packed >> 4) | (packed << 4)

            stream.submit(swap, "swap nibbles")


class Crashes(_Faulty):
    """Kills its process (as a segfault in a vendor library would) on the first download."""

    name = "faulty_crash"

    def copy_to_host(self, stream: CpuStream, dst: np.ndarray, src: Operand) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)


FAULTY = {
    cls.name: cls
    for cls in (
        WrongRounding,
        IgnoresStreamOrder,
        MishandlesItsDType,
        LeaksMemory,
        BroadcastsWrongly,
        ReturnsBeforeTheCopy,
        LeaksMemoryKnowingly,
        PacksFp4Backwards,
        Crashes,
    )
}


@hookimpl
def hwabstract_backends() -> list[type[CpuBackend]]:
    return list(FAULTY.values())
