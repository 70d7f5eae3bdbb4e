"""examples/stream_overlap.py: the serial and the overlapped schedule give bit-identical
results that agree with NumPy, on cpu and on maia where the plugin is installed; on Maia the
modeled time shows the overlap; a difference between the schedules fails the run."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import hwabstract as hw


@pytest.fixture
def overlap(load_example: Callable[[str], ModuleType]) -> ModuleType:
    return load_example("stream_overlap")


@pytest.mark.parametrize("device", ["cpu:0", "maia:0"])
def test_both_schedules_agree(
    overlap: ModuleType, available: Callable[[str], str], device: str
) -> None:
    r = overlap.run(available(device), chunks=3)
    assert r["identical"]
    assert r["excess"] <= 1.0
    for schedule in ("serial", "overlapped"):
        t = r[schedule]
        assert t.wall_ms > 0 and t.event_ms is not None and t.event_ms >= 0
        assert (t.modeled_ms is not None) == device.startswith("maia")


def test_the_maia_model_overlaps_uploads_with_compute(
    overlap: ModuleType, available: Callable[[str], str]
) -> None:
    r = overlap.run(available("maia:0"), chunks=4)
    serial, overlapped = r["serial"].modeled_ms, r["overlapped"].modeled_ms
    # the model is deterministic: the overlapped pipeline hides all but the first upload
    # (4 x 512 KiB at 64 GB/s + 1 us each) behind compute
    assert overlapped < serial
    upload_ms = (512 * 1024 / 64e9 + 1e-6) * 1e3
    assert serial - overlapped == pytest.approx(3 * upload_ms, rel=0.05)


def test_main_prints_both_schedules(
    overlap: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert overlap.main(["--device", "cpu:0", "--chunks", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 chunks of 128 x 1024 float32 (512 KiB each) uploaded, then 3 x relu(h @ W)" in out
    assert "  serial     (1 stream):  wall " in out
    assert "  overlapped (2 streams): wall " in out
    assert "results: bit-identical between the schedules" in out and "-- ok" in out


def test_one_chunk_is_refused(overlap: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        overlap.main(["--chunks", "1"])
    assert exit_.value.code == 2
    assert "--chunks must be at least 2" in capsys.readouterr().err


def test_schedules_that_differ_fail(
    overlap: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    original = overlap.overlapped

    def racy(device: hw.Device, batches: Any, weights: Any) -> Any:
        result, start, end = original(device, batches, weights)
        return hw.add(result, 1e-3), start, end  # as a missing event wait could leave it

    monkeypatch.setattr(overlap, "overlapped", racy)
    assert overlap.main(["--device", "cpu:0", "--chunks", "2"]) == 1
    assert "results: DIFFERENT between the schedules" in capsys.readouterr().out
