"""examples/dlpack_interop.py: tensors go to NumPy, JAX and PyTorch and back through
DLPack with the values intact; on cpu the memory is shared where docs/dlpack.md says it is,
on maia (memory DLPack cannot reach) the exchange goes through host copies and refuses
``copy=False``. The JAX and PyTorch steps skip, saying so, where those are not installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest


@pytest.fixture
def interop(load_example: Callable[[str], ModuleType]) -> ModuleType:
    return load_example("dlpack_interop")


def _lines(report: Any) -> str:
    return "\n".join(report.lines)


def test_numpy_shares_cpu_memory(interop: ModuleType) -> None:
    report = interop.run("cpu:0")
    assert report.ok, _lines(report)
    assert "np.from_dlpack(t): shared (a write through NumPy is seen by t)" in _lines(report)


def test_jax_round_trip_on_cpu(interop: ModuleType) -> None:
    pytest.importorskip("jax", reason="jax is in the examples extra: pip install .[examples]")
    report = interop.run("cpu:0")
    text = _lines(report)
    assert report.ok, text
    to_jax = next(line for line in report.lines if "hwabstract -> JAX" in line)
    # XLA's CPU client shares 64-byte aligned buffers, which the cpu backend's all are
    assert "shared (same address); values equal" in to_jax, to_jax
    assert "JAX -> hwabstract      hw.from_dlpack(k, device=...): shared (same address)" in text
    assert text.count("hw.multiply(back, 0.5) == x, bit for bit") >= 1


def test_jax_round_trip_through_the_host_on_maia(
    interop: ModuleType, available: Callable[[str], str]
) -> None:
    pytest.importorskip("jax", reason="jax is in the examples extra: pip install .[examples]")
    report = interop.run(available("maia:0"))
    text = _lines(report)
    assert report.ok, text
    refused = "not possible: DLPackError: maia:0 does not expose its memory to DLPack"
    assert f"hwabstract -> NumPy    {refused}" in text
    assert f"hwabstract -> JAX      {refused}" in text
    assert "through the host instead: t.numpy() -> JAX (copies)" in text
    assert "copied onto maia:0; copy=False refuses it (DLPackError)" in text
    assert "hw.multiply(back, 0.5) == x, bit for bit" in text


def test_pytorch_round_trip_or_its_skip(interop: ModuleType) -> None:
    report = interop.run("cpu:0")
    text = _lines(report)
    assert report.ok, text
    if importlib.util.find_spec("torch") is None:
        assert "PyTorch                skipped: torch is not installed (pip install torch)" in text
    else:
        assert "hwabstract -> PyTorch  shared (same address); values equal" in text
        assert "PyTorch -> hwabstract  hw.from_dlpack(k, device=...): shared (same address)" in text


def test_missing_frameworks_are_skipped_saying_so(
    interop: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(interop, "_framework", lambda name: None)
    assert interop.main(["--device", "cpu:0"]) == 0
    out = capsys.readouterr().out
    assert "JAX                    skipped: jax is not installed (pip install jax)" in out
    assert "PyTorch                skipped: torch is not installed (pip install torch)" in out
    assert out.rstrip().endswith("ok")


def test_a_value_lost_on_the_way_is_a_mismatch(
    interop: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    fake_jax = SimpleNamespace(numpy=SimpleNamespace(from_dlpack=None, asarray=None))
    monkeypatch.setattr(interop, "_framework", lambda name: fake_jax if name == "jax" else None)
    # a "framework" whose import and compute lose precision: float16 on the way
    original = interop.round_trip

    def lossy(framework: str, t: Any, x: Any, report: Any, **kw: Any) -> None:
        kw["to_framework"] = lambda tensor: np.from_dlpack(tensor).astype(np.float16)
        kw["compute"] = lambda f: (f * 2).astype(np.float32)
        kw["address"] = lambda f: None
        original(framework, t, x, report, **kw)

    monkeypatch.setattr(interop, "round_trip", lossy)
    assert interop.main(["--device", "cpu:0"]) == 1
    out = capsys.readouterr().out
    assert "values DIFFER from x  <-- MISMATCH" in out
    assert "MISMATCH" in out.splitlines()[-2]
