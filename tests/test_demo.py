"""The portable demo: it runs on every device, agrees with NumPy, and reports honestly when a
device is skipped, fails, disagrees, lacks event timing or is a stand-in."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import pytest

import hwabstract as hw
from hwabstract.backends.cpu import CpuBackend, CpuStream
from hwabstract.demo import (
    DEFAULT_TOLERANCE,
    REQUIRED_KERNELS,
    DemoConfig,
    reference_block,
    run_demo,
)
from hwabstract.registry import PluginSource, Registry, reset_registry

SMALL = DemoConfig(batches=2, batch_size=1, seq_len=8, d_model=16, d_hidden=32)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HWABSTRACT_DEVICE", "HWABSTRACT_PLUGINS", "HWABSTRACT_DISABLE_PLUGINS",
                 "HWABSTRACT_CPU_DEVICES", "HWABSTRACT_CPU_MEMORY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def cpu_source() -> PluginSource:
    return PluginSource(
        "cpu", lambda: importlib.import_module("hwabstract.backends.cpu"), "hwabstract", "0"
    )


def plugin_source(cls: type[hw.Backend]) -> PluginSource:
    class Plugin:
        @hw.hookimpl
        def hwabstract_backends(self) -> list[type[hw.Backend]]:
            return [cls]

    return PluginSource(cls.name, Plugin, f"hwabstract-{cls.name}", "0")


def installed(*sources: PluginSource) -> Iterator[Registry]:
    registry = Registry(sources=list(sources))
    old = reset_registry(registry)
    try:
        yield registry
    finally:
        reset_registry(old)


@pytest.fixture
def cpu_only() -> Iterator[Registry]:
    yield from installed(cpu_source())


# -- backends that misbehave in one way each ------------------------------------------------------


class NoGeluBackend(CpuBackend):
    """Does not declare gelu: the demo must skip it, naming the capability."""

    name = "nogelu"

    def capabilities(self, index: int) -> hw.Capabilities:
        caps = super().capabilities(index)
        kernels = {k: v for k, v in caps.kernels.items() if k != "gelu"}
        return attrs.evolve(caps, kernels=kernels)


class NoTimingBackend(CpuBackend):
    """Declares no event timing: the demo still runs, without an event time."""

    name = "notiming"

    def capabilities(self, index: int) -> hw.Capabilities:
        caps = super().capabilities(index)
        return attrs.evolve(caps, features=caps.features - {hw.Feature.EVENT_TIMING})


class WrongGeluBackend(CpuBackend):
    """Computes relu where gelu is asked for: the demo must call it a mismatch."""

    name = "wronggelu"

    def launch(
        self, stream: Any, kernel: str, inputs: Sequence[hw.Operand],
        outputs: Sequence[hw.Operand], attributes: Mapping[str, Any],
    ) -> None:  # fmt: skip
        if kernel == "gelu":
            kernel, attributes = "relu", {}
        super().launch(stream, kernel, inputs, outputs, attributes)


class FailingSoftmaxBackend(CpuBackend):
    """Its softmax fails while executing on the stream (reported at the next sync)."""

    name = "failing"

    def launch(
        self, stream: CpuStream, kernel: str, inputs: Sequence[hw.Operand],
        outputs: Sequence[hw.Operand], attributes: Mapping[str, Any],
    ) -> None:  # fmt: skip
        if kernel == "softmax":

            def explode() -> None:
                raise FloatingPointError("simulated device fault in softmax")

            stream.submit(explode, "kernel 'softmax'")
            return
        super().launch(stream, kernel, inputs, outputs, attributes)


class SlowUploadBackend(CpuBackend):
    """Copies of 3-D host arrays (the demo's batches, not its weights) are queued behind a
    delay, and the memory holds NaN until they land: a consumer that does not wait for the
    upload stream's event reads NaN."""

    name = "slowupload"

    def copy_from_host(self, stream: CpuStream, dst: hw.Operand, src: np.ndarray) -> None:
        staged = np.array(src, copy=True)
        target = np.ndarray(
            dst.shape,
            dtype=dst.dtype.numpy_dtype,
            buffer=dst.buffer.array,
            offset=dst.offset * dst.dtype.itemsize,
            strides=tuple(s * dst.dtype.itemsize for s in dst.strides),
        )
        target[...] = np.nan  # what an unordered reader would see

        delay = 0.05 if src.ndim == 3 else 0.0

        def late_copy() -> None:
            time.sleep(delay)  # widens the window a missing wait would fall into
            np.copyto(target, staged, casting="no")

        stream.submit(late_copy, "copy_from_host")


class StandinBackend(CpuBackend):
    name = "standin"

    def device_info(self, index: int) -> hw.DeviceInfo:
        return hw.DeviceInfo(
            name="Model X (stand-in: host CPU)",
            vendor="Example",
            model="Model X",
            memory_capacity=2**30,
            standin=True,
            standin_for="Example Model X",
        )


# -- tests ----------------------------------------------------------------------------------------


def test_demo_runs_on_cpu_and_agrees_with_numpy(cpu_only: Registry) -> None:
    result = run_demo()
    assert result.ok
    assert result.baseline == "cpu:0"
    (run,) = result.runs
    assert run.device == "cpu:0" and run.status == "ok" and run.reason is None
    assert run.standin is False and run.standin_for is None
    assert run.output is not None
    c = result.config
    assert run.output.shape == (c.batches * c.batch_size, c.seq_len, c.d_model)
    assert run.output.dtype == np.float32
    np.testing.assert_allclose(run.output, result.reference, rtol=1e-4, atol=1e-4)
    assert run.max_abs_error is not None and run.max_abs_error <= DEFAULT_TOLERANCE
    assert run.max_abs_diff_baseline == 0.0
    assert run.wall_ms is not None and run.wall_ms > 0
    assert run.event_ms is not None and run.event_ms >= 0  # cpu declares event timing
    assert run.modeled_ms is None  # but models no other hardware


def test_reference_block_is_a_transformer_block() -> None:
    """The NumPy side checks itself: with zero weights the block adds b2 to its input, and
    the attention rows it computes are convex combinations of the values."""
    d = 8
    zeros = {k: np.zeros((d, d), np.float32) for k in ("wq", "wk", "wv", "wo")}
    params = {
        **zeros,
        "ln1_w": np.ones(d, np.float32), "ln1_b": np.zeros(d, np.float32),
        "ln2_w": np.ones(d, np.float32), "ln2_b": np.zeros(d, np.float32),
        "w1": np.zeros((d, 4), np.float32), "b1": np.zeros(4, np.float32),
        "w2": np.zeros((4, d), np.float32), "b2": np.full(d, 0.5, np.float32),
    }  # fmt: skip
    x = np.random.default_rng(1).standard_normal((2, 3, d)).astype(np.float32)
    np.testing.assert_allclose(reference_block(x, params), x.astype(np.float64) + 0.5, rtol=1e-12)
    # values = tokens (wv = wo = identity), no MLP: each output token is x plus a convex
    # combination of the normalized tokens, so it lies within their range
    eye = np.eye(d, dtype=np.float32)
    params = {**params, "wv": eye, "wo": eye, "b2": np.zeros(d, np.float32)}
    params["wq"] = params["wk"] = (
        np.random.default_rng(2).standard_normal((d, d)).astype(np.float32)
    )
    x64 = x.astype(np.float64)
    out = reference_block(x, params) - x64
    normed = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    low, high = normed.min(axis=1, keepdims=True), normed.max(axis=1, keepdims=True)
    assert np.all(out >= low - 1e-9) and np.all(out <= high + 1e-9)


def test_demo_runs_on_two_cpu_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWABSTRACT_CPU_DEVICES", "2")
    for _ in installed(cpu_source()):
        result = run_demo(config=SMALL)
        assert [r.device for r in result.runs] == ["cpu:0", "cpu:1"]
        assert result.ok and result.baseline == "cpu:0"
        for run in result.runs:
            assert run.status == "ok"
            assert run.max_abs_diff_baseline is not None
            assert run.max_abs_diff_baseline <= DEFAULT_TOLERANCE


def test_device_specs_select_and_deduplicate(cpu_only: Registry) -> None:
    result = run_demo(["cpu", "cpu:0", hw.device("cpu:0")], config=SMALL)
    assert [r.device for r in result.runs] == ["cpu:0"]


def test_unknown_device_spec_raises(cpu_only: Registry) -> None:
    with pytest.raises(hw.DeviceError, match="no backend named 'nope'"):
        run_demo(["nope:0"], config=SMALL)


def test_zero_tolerance_is_a_mismatch(cpu_only: Registry) -> None:
    result = run_demo(config=SMALL, tolerance=0.0)
    (run,) = result.runs
    assert run.status == "mismatch" and run.reason == "disagrees with NumPy"
    assert not result.ok


def test_device_missing_a_kernel_is_skipped() -> None:
    for _ in installed(cpu_source(), plugin_source(NoGeluBackend)):
        result = run_demo(config=SMALL)
        runs = {r.device: r for r in result.runs}
        assert runs["nogelu:0"].status == "skipped"
        assert runs["nogelu:0"].reason == "does not declare kernel:gelu[float32]"
        assert runs["cpu:0"].status == "ok"
        assert result.ok  # skipping an undeclared capability is not a failure


def test_only_skipped_devices_is_not_ok() -> None:
    for _ in installed(plugin_source(NoGeluBackend)):
        result = run_demo(config=SMALL)
        assert [r.status for r in result.runs] == ["skipped"]
        assert result.baseline is None and not result.ok


def test_wrong_kernel_is_a_mismatch_against_numpy_and_the_baseline() -> None:
    for _ in installed(cpu_source(), plugin_source(WrongGeluBackend)):
        result = run_demo(config=SMALL)
        runs = {r.device: r for r in result.runs}
        wrong = runs["wronggelu:0"]
        assert wrong.status == "mismatch"
        assert wrong.reason == "disagrees with NumPy; disagrees with cpu:0"
        assert wrong.max_abs_error is not None and wrong.max_abs_error > DEFAULT_TOLERANCE
        assert runs["cpu:0"].status == "ok"
        assert not result.ok


def test_device_failing_at_run_time_is_an_error_and_others_still_run() -> None:
    for _ in installed(plugin_source(FailingSoftmaxBackend), cpu_source()):
        result = run_demo(config=SMALL)
        runs = {r.device: r for r in result.runs}
        failing = runs["failing:0"]
        assert failing.status == "error"
        assert failing.reason is not None
        assert failing.reason.startswith("KernelError: queued command kernel 'softmax' failed")
        assert "simulated device fault" in failing.reason
        assert runs["cpu:0"].status == "ok"
        assert not result.ok


def test_streams_are_ordered_by_events_even_when_uploads_are_slow() -> None:
    for _ in installed(plugin_source(SlowUploadBackend)):
        result = run_demo(config=SMALL)
        (run,) = result.runs
        assert run.status == "ok", run.reason
        assert run.max_abs_error is not None and run.max_abs_error <= DEFAULT_TOLERANCE


def test_device_without_event_timing_has_no_event_time() -> None:
    for _ in installed(plugin_source(NoTimingBackend)):
        (run,) = run_demo(config=SMALL).runs
        assert run.status == "ok"
        assert run.event_ms is None
        assert run.wall_ms is not None


def test_standin_status_is_reported() -> None:
    for _ in installed(cpu_source(), plugin_source(StandinBackend)):
        result = run_demo(config=SMALL)
        runs = {r.device: r for r in result.runs}
        assert runs["standin:0"].standin is True
        assert runs["standin:0"].standin_for == "Example Model X"
        assert runs["standin:0"].description == "Model X (stand-in: host CPU)"
        assert runs["cpu:0"].standin is False


def test_result_is_json_ready(cpu_only: Registry) -> None:
    result = run_demo(config=SMALL, tolerance=0.0)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["ok"] is False
    assert data["config"] == attrs.asdict(SMALL)
    assert set(data["devices"][0]) == {
        "device", "description", "standin", "standin_for", "status", "reason", "wall_ms",
        "event_ms", "modeled_ms", "max_abs_error", "max_abs_diff_baseline", "timeline",
        "queues",
    }  # fmt: skip
    assert data["devices"][0]["timeline"] is None  # the cpu backend models no time


def test_nan_output_is_a_mismatch_and_serializes_as_null() -> None:
    class NanBackend(CpuBackend):
        name = "nanny"

        def launch(self, stream: CpuStream, kernel: str, inputs: Any, outputs: Any,
                   attributes: Any) -> None:  # fmt: skip
            super().launch(stream, kernel, inputs, outputs, attributes)
            if kernel == "gelu":
                out = outputs[0]
                view = np.ndarray(out.shape, out.dtype.numpy_dtype, out.buffer.array,
                                  out.offset * 4, tuple(s * 4 for s in out.strides))  # fmt: skip
                stream.submit(lambda: view.fill(np.nan), "poison")

    for _ in installed(plugin_source(NanBackend)):
        result = run_demo(config=SMALL)
        (run,) = result.runs
        assert run.status == "mismatch"
        assert result.to_dict()["devices"][0]["max_abs_error"] is None


def test_demo_config_is_validated() -> None:
    with pytest.raises(ValueError, match="batches must be at least 1"):
        DemoConfig(batches=0)


def test_required_kernels_are_standard_kernels() -> None:
    names = {spec.name for spec in hw.kernels.all_specs()}
    assert set(REQUIRED_KERNELS) <= names
