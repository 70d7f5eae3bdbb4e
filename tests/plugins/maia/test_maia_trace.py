"""The maia backend's timeline trace: Chrome/Perfetto trace-event JSON of the queues.

Skipped as a whole when the hwabstract-maia distribution is not installed.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "hwabstract_maia.backend",
    reason="hwabstract-maia is not installed (pip install ./plugins/maia)",
)

import hwabstract as hw

HOST_LINK = 64e9  # bytes/s, libmaia's modeled host link (docs/backends/maia.md)
COPY_LAUNCH_US = 1.0


pytestmark = pytest.mark.usefixtures("maia_registry")


def _workload() -> tuple[object, dict[tuple[int, int], list[str]], int]:
    """A few kernels and copies on two streams of each of two devices; returns the backend,
    the expected command names per (device, queue) and the bytes of each host copy."""
    devs = [hw.device("maia:0"), hw.device("maia:1")]
    impl = devs[0]._impl
    assert devs[1]._impl is impl
    for d in devs:
        d.synchronize()
    impl.clear_trace()
    rng = np.random.default_rng(7)
    a = rng.standard_normal((128, 128)).astype(np.float32)
    expected: dict[tuple[int, int], list[str]] = {}
    keep = []
    for d in devs:
        s1, s2 = d.create_stream(), d.create_stream()
        x = hw.asarray(a, device=d, stream=s1)  # copy h2d
        y = hw.matmul(x, x, stream=s1)  # matmul
        z = hw.exp(y, stream=s1)  # exp
        w = hw.asarray(a, device=d, stream=s2)  # copy h2d
        v = hw.tanh(w, stream=s2)  # tanh
        keep += [s1, s2, z, v]
        expected[(d.index, impl.stream_queue_index(s1.handle))] = ["copy h2d", "matmul", "exp"]
        expected[(d.index, impl.stream_queue_index(s2.handle))] = ["copy h2d", "tanh"]
    for s in keep[::4] + keep[1::4]:
        s.synchronize()
    return impl, expected, a.nbytes


def _complete(doc: dict) -> list[dict]:
    return [e for e in doc["traceEvents"] if e["ph"] == "X"]


def test_export_trace_modeled_clock(tmp_path: Path) -> None:
    impl, expected, nbytes = _workload()
    path = tmp_path / "maia.trace.json"
    written = impl.export_trace(path)  # clock="modeled"
    doc = json.loads(path.read_text())
    events = _complete(doc)
    assert written == len(events) == sum(len(v) for v in expected.values())
    assert doc["otherData"]["clock"] == "modeled"
    assert doc["otherData"]["dropped"] == {"maia:0": 0, "maia:1": 0}

    per_queue: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for e in events:
        assert {"name", "ph", "ts", "dur", "pid", "tid", "args"} <= e.keys()
        assert e["args"]["status"] == "ok"
        per_queue[(e["pid"], e["tid"])].append(e)
    assert per_queue.keys() == expected.keys()
    for key, evs in per_queue.items():
        assert [e["name"] for e in evs] == expected[key]
        seqs = [e["args"]["sequence"] for e in evs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # in order, none missing
        for prev, nxt in itertools.pairwise(evs):  # a queue's modeled timeline never overlaps
            assert prev["ts"] + prev["dur"] <= nxt["ts"] + 1e-9
        copy = evs[0]
        assert copy["args"]["bytes"] == nbytes
        assert copy["dur"] == pytest.approx(nbytes / HOST_LINK * 1e6 + COPY_LAUNCH_US)
        matmul = [e for e in evs if e["name"] == "matmul"]
        if matmul:
            assert matmul[0]["args"]["flops"] == pytest.approx(2 * 128**3, rel=0.01)
            assert matmul[0]["cat"] == "kernel"

    names = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in doc["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert names.keys() == expected.keys()


def test_export_trace_wall_clock_and_peer_copy(tmp_path: Path) -> None:
    impl, expected, _ = _workload()
    x = hw.asarray(np.arange(1000, dtype=np.float32), device="maia:0")
    y = x.to("maia:1")
    np.testing.assert_array_equal(y.numpy(), np.arange(1000, dtype=np.float32))
    path = tmp_path / "wall.json"
    impl.export_trace(path, clock="wall")
    events = _complete(json.loads(path.read_text()))
    assert min(e["ts"] for e in events) == 0.0
    assert all(e["dur"] >= 0 for e in events)
    peer = [e for e in events if e["name"] == "copy d2d" and e["args"].get("src_device") == 0]
    assert len(peer) == 1 and peer[0]["pid"] == 1 and peer[0]["args"]["bytes"] == 4000
    for key, names in expected.items():
        got = [e["name"] for e in events if (e["pid"], e["tid"]) == key]
        assert got == names


def test_trace_capacity_failed_commands_and_bad_clock(tmp_path: Path) -> None:
    dev = hw.device("maia:0")
    impl = dev._impl
    dev.synchronize()
    try:
        impl.set_trace_capacity(2, index=0)
        s = dev.create_stream()
        x = hw.asarray(np.ones(16, np.float32), device=dev, stream=s)
        for _ in range(3):
            x = hw.exp(x, stream=s)
        impl.inject_kernel_fault(0, "exp")
        hw.exp(x, stream=s)
        with pytest.raises(hw.KernelError):
            s.synchronize()
        info = impl.trace_info(0)
        assert info["capacity"] == 2 and info["held"] == 2 and info["dropped"] == 3
        entries = impl.trace_entries(0)
        assert [e["status"] for e in entries] == ["ok", "failed"]
        path = tmp_path / "t.json"
        assert impl.export_trace(path, index=0) == 2
        assert json.loads(path.read_text())["otherData"]["dropped"] == {"maia:0": 3}
        with pytest.raises(ValueError, match="clock"):
            impl.export_trace(path, clock="cpu")
        impl.set_trace_capacity(0, index=0)  # off
        hw.exp(x, stream=s)
        s.synchronize()
        assert impl.trace_entries(0) == []
    finally:
        impl.set_trace_capacity(4096)


# -- the contract's view: Device.queue_timeline, Stream.queue_number ------------------------------


def test_queue_timeline_is_the_trace_on_the_modeled_clock() -> None:
    impl, expected, nbytes = _workload()
    for index in (0, 1):
        dev = hw.device(f"maia:{index}")
        timeline = dev.queue_timeline()
        assert timeline is not None
        raw = impl.trace_entries(index)
        assert len(timeline) == len(raw)
        for entry, e in zip(timeline, raw):
            assert entry.queue == e["queue_index"] and entry.name == e["name"]
            assert entry.start_us == e["modeled_start_ps"] / 1e6
            assert entry.duration_us == e["modeled_duration_ps"] / 1e6
            assert entry.nbytes == e["bytes"] and entry.flops == e["flops"]
            assert not entry.failed
        names: dict[int, list[str]] = defaultdict(list)
        for entry in timeline:
            names[entry.queue].append(entry.name)
        assert dict(names) == {q: v for (d, q), v in expected.items() if d == index}
        copy = next(e for e in timeline if e.name == "copy h2d")
        assert copy.kind == "copy" and copy.nbytes == nbytes
        assert copy.duration_us == pytest.approx(nbytes / HOST_LINK * 1e6 + COPY_LAUNCH_US)
        assert {e.kind for e in timeline if e.name in ("matmul", "exp", "tanh")} == {"kernel"}


def test_stream_queue_number_names_its_commands_and_clear_forgets() -> None:
    dev = hw.device("maia:0")
    dev.synchronize()
    dev.clear_queue_timeline()
    assert dev.queue_timeline() == []
    a, b = dev.create_stream(), dev.create_stream()
    assert a.queue_number is not None and b.queue_number is not None
    assert a.queue_number != b.queue_number
    x = hw.asarray(np.ones(8, np.float32), device=dev, stream=a)
    hw.exp(x, stream=a)
    b.wait(a.record(timing=False))
    hw.tanh(x, stream=b)
    timeline = dev.queue_timeline()  # waits for the device itself
    assert timeline is not None
    by_queue = {q: [e.name for e in timeline if e.queue == q] for q in {e.queue for e in timeline}}
    assert by_queue[a.queue_number][:2] == ["copy h2d", "exp"]
    assert "tanh" in by_queue[b.queue_number] and "wait" in by_queue[b.queue_number]
    assert next(e for e in timeline if e.name == "wait").kind == "sync"
    # b's wait held its clock until a's work was done: tanh starts after exp ends
    exp = next(e for e in timeline if e.name == "exp")
    tanh = next(e for e in timeline if e.name == "tanh")
    assert tanh.start_us >= exp.start_us + exp.duration_us
    dev.clear_queue_timeline()
    assert dev.queue_timeline() == []


def test_a_failed_command_is_marked_in_the_timeline() -> None:
    dev = hw.device("maia:0")
    dev.synchronize()
    dev.clear_queue_timeline()
    s = dev.create_stream()
    x = hw.asarray(np.ones(8, np.float32), device=dev, stream=s)
    dev._impl.inject_kernel_fault(0, "exp")
    hw.exp(x, stream=s)
    with pytest.raises(hw.KernelError):
        s.synchronize()
    timeline = dev.queue_timeline()
    assert timeline is not None
    assert [(e.name, e.failed) for e in timeline] == [("copy h2d", False), ("exp", True)]
