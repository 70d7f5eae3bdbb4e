"""The PJRT backend's compiled steady state (``src/hwabstract/backends/_pjrtfast.c``).

``Memory`` is the compiled twin of ``pjrt.PjrtMemory`` and ``synchronize`` of
``pjrt._synchronize``: the tests run the same sequences through both and compare values,
counts and error messages. ``BoundCall`` runs the bound launch of
:meth:`PjrtBackend.bind_launch` for the common case and hands every other case, untouched,
to the Python bound launch it wraps (a recording fallback here, so that a call that went
the wrong way fails the test). A whole program is also run on a compiled and a Python
backend and compared.

Skipped where jax or the tpu plugin is not installed, and where the module is not in use,
saying so; ``HWABSTRACT_REQUIRE_FASTPATH=1`` (``tox -e tpu``) makes its absence a failure.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed (tox -e tpu installs it)")
pytest.importorskip("hwabstract_tpu", reason="hwabstract-tpu is not installed")

from test_pjrt import _registry

import hwabstract as hw
from hwabstract.backends import pjrt
from hwabstract.errors import DeviceError, KernelError, OutOfMemoryError
from hwabstract.registry import reset_registry

compiled = pytest.mark.skipif(
    pjrt._FAST is None and not os.environ.get("HWABSTRACT_REQUIRE_FASTPATH"),
    reason=f"hwabstract.backends._pjrtfast is not in use: {pjrt.FAST_STATUS}",
)


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[hw.Device]:
    old = reset_registry(_registry(monkeypatch, HWABSTRACT_TPU_STANDIN="cpu",
                                   HWABSTRACT_TPU_MEMORY="64MiB"))  # fmt: skip
    yield hw.device("tpu:0")
    reset_registry(old)


def test_the_status_says_which_runs(standin: hw.Device) -> None:
    if os.environ.get("HWABSTRACT_REQUIRE_FASTPATH"):
        assert pjrt._FAST is not None, pjrt.FAST_STATUS
    impl = standin._impl
    x = hw.asarray(np.ones(4, np.float32), device=standin)
    hw.add(x, x)
    hw.add(x, x)
    (plan,) = [p for k, p in standin._plans.items() if k[0].name == "add"]
    # the memory's methods are called straight, compiled or not
    assert impl.allocate == impl._memory.allocate and impl.free == impl._memory.free
    if pjrt._FAST is None:
        assert pjrt.FAST_STATUS.startswith("pure Python (")
        assert type(impl._memory) is pjrt.PjrtMemory
        assert type(plan.bound).__name__ == "function"
    else:
        assert pjrt.FAST_STATUS == "compiled (hwabstract.backends._pjrtfast)"
        assert type(impl._memory) is pjrt._FAST.Memory
        assert isinstance(plan.bound, pjrt._FAST.BoundCall)


def test_pure_python_is_chosen_by_the_environment_variable() -> None:
    code = (
        "import hwabstract as hw; from hwabstract.backends import pjrt; "
        "d = hw.device('tpu:0'); print(pjrt.FAST_STATUS, type(d._impl._memory).__name__)"
    )
    env = {**os.environ, "HWABSTRACT_PURE_PYTHON": "1", "HWABSTRACT_TPU_STANDIN": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "pure Python (HWABSTRACT_PURE_PYTHON is set) PjrtMemory"


# -- the same program, compiled and in Python ------------------------------------------------


def _program(device: hw.Device) -> Iterator[tuple[str, Any]]:
    """Steps of a program; after each, what it yields is compared between the two runs."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((6, 8)).astype(np.float32)
    x = hw.asarray(a, device=device)
    y = hw.asarray(a[::-1].copy(), device=device)
    for _ in range(3):  # bound from the second call on
        r = hw.add(x, y)
        yield "add", r.numpy()
        yield "scalar", hw.multiply(x, 2.5).numpy()
        yield "views", hw.multiply(x[:, ::2], y.T[::2, :].T).numpy()
        yield "sum", hw.sum(x, axis=1).numpy()
        yield "softmax", hw.softmax(y).numpy()
        yield "int", hw.add(hw.astype(x, hw.int32), 3).numpy()
        out = hw.empty((6, 8), dtype=hw.float32, device=device)
        hw.subtract(x, y, out=out)
        yield "out=", out.numpy()
        x[1] = hw.negative(x[1])  # a partial write into x: its kind changes nothing
        yield "partial", x.numpy()
        del r, out
        device.default_stream.synchronize()
        gc.collect()
        s = device.memory_stats()
        yield "memory", (s.in_use, s.allocations)
    assert y.shape == (6, 8)  # (y lives to here)
    yield "peak", device.memory_stats().peak


@compiled
def test_compiled_and_python_give_the_same_values_and_accounting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = []
    for fast in (pjrt._FAST, None):
        monkeypatch.setattr(pjrt, "_FAST", fast)
        old = reset_registry(_registry(monkeypatch, HWABSTRACT_TPU_STANDIN="cpu"))
        try:
            device = hw.device("tpu:0")
            memory = type(device._impl._memory)
            assert memory is (pjrt.PjrtMemory if fast is None else fast.Memory)
            runs.append(list(_program(device)))
            bound = {type(p.bound).__name__ for p in device._plans.values() if p.bound}
            assert bound == ({"BoundCall"} if fast is not None else {"function"})
        finally:
            reset_registry(old)
    compiled_run, python_run = runs
    assert [k for k, _ in compiled_run] == [k for k, _ in python_run]
    for (what, got), (_, expected) in zip(compiled_run, python_run):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected), err_msg=what)


# -- Memory ---------------------------------------------------------------------------------


def _twins(capacity: int = 1 << 20, count: int = 2) -> list[tuple[Any, list[Any]]]:
    """A compiled Memory and a PjrtMemory made alike, each with the list of the capacities
    it asked for."""
    assert pjrt._FAST is not None, pjrt.FAST_STATUS

    def make(memory_type: Any) -> tuple[Any, list[Any]]:
        asked: list[Any] = []

        def capacity_of(index: int) -> int:
            asked.append(index)
            return capacity

        def out_of_memory(index: int, nbytes: int, free: int, cap: int) -> Exception:
            return OutOfMemoryError(f"tpu:{index}", nbytes, free, cap)

        return memory_type(count, pjrt.PjrtBuffer, capacity_of, out_of_memory,
                           pjrt.PjrtBackend._already_freed), asked  # fmt: skip

    return [make(pjrt._FAST.Memory), make(pjrt.PjrtMemory)]


@compiled
def test_the_compiled_memory_does_what_pjrt_memory_does() -> None:
    outcomes = []
    for memory, asked in _twins():
        seen: list[Any] = []
        buffers = [memory.allocate(i % 2, n) for i, n in enumerate((100, 4096, 1 << 19, 0))]
        for b in buffers:
            seen.append((type(b), b.device, b.nbytes, b.array, b.kind, b.freed))
        seen.append((memory.counts(0), memory.counts(1)))
        buffers[0].array = np.ones(3)
        memory.free(buffers[0])
        seen.append((buffers[0].freed, buffers[0].array, memory.counts(0)))
        with pytest.raises(OutOfMemoryError) as oom:
            memory.allocate(0, (1 << 20) - 4096 + 1)
        seen.append((str(oom.value), oom.value.capacity, memory.counts(0)))
        with pytest.raises(DeviceError, match="was already freed") as twice:
            memory.free(buffers[0])
        seen.append(str(twice.value))
        with pytest.raises(TypeError, match="takes a PjrtBuffer, not list"):
            memory.free([])
        for b in buffers[1:]:
            memory.free(b)
        seen.append((memory.counts(0), memory.counts(1), asked))
        outcomes.append(seen)
    compiled_run, python_run = outcomes
    assert compiled_run == python_run
    # (in_use, peak, live) after the four allocations: device 0 has 100 + 512 KiB
    assert compiled_run[4] == ((100 + (1 << 19), 100 + (1 << 19), 2), (4096, 4096, 2))
    assert compiled_run[-1] == ((0, 100 + (1 << 19), 0), (0, 4096, 0), [0, 1])


@compiled
def test_memory_refuses_what_the_core_never_passes() -> None:
    (memory, _), _ = _twins()
    with pytest.raises(IndexError, match="device index 2 out of range"):
        memory.allocate(2, 8)
    with pytest.raises(IndexError):
        memory.allocate(-1, 8)
    with pytest.raises(ValueError, match="negative byte count"):
        memory.allocate(0, -8)
    with pytest.raises(TypeError, match="2 positional arguments"):
        memory.allocate(0)
    with pytest.raises(TypeError):
        memory.allocate("0", 8)
    assert memory.counts(0) == (0, 0, 0)


@compiled
def test_allocate_and_free_run_compiled_on_the_stand_in(standin: hw.Device) -> None:
    impl = standin._impl
    before = standin.memory_stats()
    x = hw.empty((1 << 18,), dtype=hw.float32, device=standin)
    assert type(x._storage.buffer) is pjrt.PjrtBuffer
    during = standin.memory_stats()
    assert during.in_use == before.in_use + (1 << 20)
    assert during.allocations == before.allocations + 1
    with pytest.raises(OutOfMemoryError) as info:
        hw.empty((64 << 20,), dtype=hw.float32, device=standin)
    assert info.value.capacity == 64 << 20 and "tpu:0" in str(info.value)
    del x
    gc.collect()
    after = standin.memory_stats()
    assert (after.in_use, after.allocations) == (before.in_use, before.allocations)
    assert impl.memory_stats(0).peak == during.peak


def test_a_subclass_that_overrides_allocate_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hwabstract_tpu.backend as tpu

    class Counted(tpu.TpuBackend):  # type: ignore[misc,name-defined]
        allocations = 0

        def allocate(self, index: int, nbytes: int) -> pjrt.PjrtBuffer:
            Counted.allocations += 1
            return super().allocate(index, nbytes)

    monkeypatch.setenv("HWABSTRACT_TPU_STANDIN", "cpu")
    backend = Counted()
    backend.probe()
    assert "allocate" not in vars(backend) and "free" not in vars(backend)
    backend.free(backend.allocate(0, 8))
    assert Counted.allocations == 1
    assert backend.memory_stats(0).allocations == 0


def test_the_backend_and_its_memory_are_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    old = reset_registry(_registry(monkeypatch, HWABSTRACT_TPU_STANDIN="cpu"))
    try:
        impl = hw.device("tpu:0")._impl
        ref = weakref.ref(impl)
        del impl
    finally:
        reset_registry(old)
    gc.collect()
    assert ref() is None, "the backend <-> memory cycle was not collected"


# -- BoundCall ------------------------------------------------------------------------------


class _Array:
    """Stands for a jax.Array: where it is, whether it has finished (or was deleted), and
    its waits (``fails``: the exception its wait raises)."""

    def __init__(self, name: str, devices: tuple[Any, ...] = ("dev0",), ready: bool = False,
                 deleted: bool = False, fails: BaseException | None = None):  # fmt: skip
        self.name, self._devices, self.ready = name, devices, ready
        self.deleted, self.fails, self.waits = deleted, fails, 0

    def block_until_ready(self) -> _Array:
        self.waits += 1
        if self.deleted:  # (as jax does)
            raise RuntimeError("BlockHostUntilReady() called on deleted or donated buffer")
        if self.fails is not None:
            raise self.fails
        self.ready = True
        return self

    def devices(self) -> set[Any]:
        return set(self._devices)

    def is_ready(self) -> bool:
        return self.ready

    def is_deleted(self) -> bool:
        return self.deleted

    def __repr__(self) -> str:
        return self.name


class _SubBuffer(pjrt.PjrtBuffer):
    """Not the configured type: the compiled side reads slots of exact types only."""

    __slots__ = ()


def _buffer(nbytes: int, kind: Any, array: Any) -> pjrt.PjrtBuffer:
    b = pjrt.PjrtBuffer(0, nbytes)
    b.kind, b.array = kind, array
    return b


class _Bound:
    """A BoundCall over a recording executable, with counting Python halves."""

    def __init__(self, device: Any = None, exe: Any = None) -> None:
        assert pjrt._FAST is not None, pjrt.FAST_STATUS
        self.exe_calls: list[tuple[Any, ...]] = []
        self.fallback_calls: list[tuple[Any, ...]] = []
        self.refused: list[BaseException] = []

        def record(*arrays: Any) -> Any:
            self.exe_calls.append(arrays)
            return _Array(f"result{len(self.exe_calls)}")

        def fallback(*args: Any, **kwargs: Any) -> None:
            self.fallback_calls.append(args)

        def on_refused(exc: BaseException) -> KernelError:
            self.refused.append(exc)
            return KernelError(f"refused: {exc}")

        self.call = pjrt._FAST.BoundCall(
            exe or record, (hw.float32, hw.int32), (16, 8), hw.float32, device, fallback,
            pjrt._REFUSED, on_refused, pjrt._prune,
        )  # fmt: skip


@compiled
def test_a_bound_call_launches_the_executable_and_records_its_result() -> None:
    bound, stream = _Bound(), pjrt.PjrtStream(0)
    a, b = _Array("a"), _Array("b")
    out = pjrt.PjrtBuffer(0, 16)
    for buffers in ([_buffer(16, hw.float32, a), _buffer(8, hw.int32, b)],
                    (_buffer(16, hw.float32, a), _buffer(8, hw.int32, b))):  # fmt: skip
        out = pjrt.PjrtBuffer(0, 16)
        assert bound.call(stream, buffers, (out,)) is None
        assert bound.exe_calls[-1] == (a, b)
        assert out.array is stream.pending[-1] and out.kind is hw.float32
    assert not bound.fallback_calls
    assert [r.name for r in stream.pending] == ["result1", "result2"]


@compiled
@pytest.mark.parametrize(
    "case",
    ["another kind", "another size", "a written output", "a destroyed stream",
     "a keyword", "two outputs", "one input", "an iterator of inputs",
     "a buffer of a subclass", "an output of a subclass"],
)  # fmt: skip
def test_what_a_bound_call_was_not_made_for_goes_to_python(case: str) -> None:
    bound, stream = _Bound(), pjrt.PjrtStream(0)
    x, y = _buffer(16, hw.float32, _Array("a")), _buffer(8, hw.int32, _Array("b"))
    out = pjrt.PjrtBuffer(0, 16)
    args: tuple[Any, ...] = (stream, [x, y], (out,))
    kwargs: dict[str, Any] = {}
    if case == "another kind":
        y.kind = hw.int64
    elif case == "another size":
        y.nbytes = 16
    elif case == "a written output":
        out.kind = hw.float32
    elif case == "a destroyed stream":
        stream.destroyed = True
    elif case == "a keyword":
        args, kwargs = (stream, [x, y]), {"out_buffers": (out,)}
    elif case == "two outputs":
        args = (stream, [x, y], (out, pjrt.PjrtBuffer(0, 16)))
    elif case == "one input":
        args = (stream, [x], (out,))
    elif case == "an iterator of inputs":
        args = (stream, iter([x, y]), (out,))
    elif case == "a buffer of a subclass":
        y = _SubBuffer(0, 8)
        y.kind, y.array = hw.int32, _Array("b")
        args = (stream, [x, y], (out,))
    elif case == "an output of a subclass":
        args = (stream, [x, y], (_SubBuffer(0, 16),))
    bound.call(*args, **kwargs)
    assert len(bound.fallback_calls) == 1 and not bound.exe_calls
    assert not stream.pending


@compiled
def test_with_several_devices_an_array_elsewhere_goes_to_python() -> None:
    bound, stream = _Bound(device="dev0"), pjrt.PjrtStream(0)
    here = [_buffer(16, hw.float32, _Array("a")), _buffer(8, hw.int32, _Array("b"))]
    bound.call(stream, here, (pjrt.PjrtBuffer(0, 16),))
    assert len(bound.exe_calls) == 1 and not bound.fallback_calls
    elsewhere = [here[0], _buffer(8, hw.int32, _Array("c", devices=("dev1",)))]
    bound.call(stream, elsewhere, (pjrt.PjrtBuffer(0, 16),))
    assert len(bound.exe_calls) == 1 and len(bound.fallback_calls) == 1


@compiled
def test_a_refused_launch_raises_the_sdks_error_and_changes_nothing() -> None:
    def refuse(*arrays: Any) -> Any:
        raise ValueError("an index into an empty axis")

    bound, stream = _Bound(exe=refuse), pjrt.PjrtStream(0)
    buffers = [_buffer(16, hw.float32, _Array("a")), _buffer(8, hw.int32, _Array("b"))]
    out = pjrt.PjrtBuffer(0, 16)
    with pytest.raises(KernelError, match="refused: an index into an empty axis") as info:
        bound.call(stream, buffers, (out,))
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.__cause__ is bound.refused[0]
    assert (out.array, out.kind, stream.pending) == (None, None, [])

    def crash(*arrays: Any) -> Any:
        raise RuntimeError("XLA ran out of something")

    bound = _Bound(exe=crash)
    with pytest.raises(RuntimeError, match="XLA ran out"):  # not one it refuses: as it is
        bound.call(stream, buffers, (out,))
    assert not bound.refused and (out.array, stream.pending) == (None, [])


@compiled
def test_the_pending_list_is_pruned_of_finished_arrays() -> None:
    bound, stream = _Bound(), pjrt.PjrtStream(0)
    buffers = [_buffer(16, hw.float32, _Array("a")), _buffer(8, hw.int32, _Array("b"))]
    running = _Array("running")
    stream.pending[:] = [_Array(f"done{i}", ready=True) for i in range(4)] + [running]
    stream.pending += [_Array(f"done{i}", ready=True) for i in range(4, 8)]
    pending = stream.pending
    bound.call(stream, buffers, (pjrt.PjrtBuffer(0, 16),))
    assert [a.name for a in stream.pending] == ["running", "result1"]
    assert stream.pending is pending  # (the list is never replaced: see PjrtStream)


@compiled
def test_no_launch_is_lost_between_threads_appending_and_a_thread_taking() -> None:
    """Appends take no lock (see PjrtStream): with launches from four threads, prunes and
    a synchronizing thread taking the list meanwhile, every unfinished result is either
    taken once or still pending once."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    stream = pjrt.PjrtStream(0)
    made: list[_Array] = []
    lock = threading.Lock()

    def exe(*arrays: Any) -> _Array:
        with lock:
            a = _Array(f"r{len(made)}", ready=len(made) % 3 == 0)  # a third finish at once
            made.append(a)
        return a

    bound = _Bound(exe=exe)
    buffers = [_buffer(16, hw.float32, _Array("a")), _buffer(8, hw.int32, _Array("b"))]
    taken: list[_Array] = []
    done = threading.Event()

    def launches() -> None:
        for _ in range(2000):
            bound.call(stream, buffers, (pjrt.PjrtBuffer(0, 16),))

    def synchronizes() -> None:  # mostly queries (prunes of a long list), now and then a take
        while not done.is_set():
            for _ in range(20):
                pjrt._prune(stream)
            taken.extend(stream.take())

    try:
        taker = threading.Thread(target=synchronizes)
        taker.start()
        workers = [threading.Thread(target=launches) for _ in range(4)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        done.set()
        taker.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(made) == 8000 and not bound.fallback_calls
    seen = [id(a) for a in taken + stream.pending]
    assert len(seen) == len(set(seen)), "a result was taken twice"
    lost = [a.name for a in made if not a.ready and id(a) not in set(seen)]
    assert not lost, f"{len(lost)} unfinished launches were lost, e.g. {lost[:3]}"


@compiled
def test_a_bound_call_is_used_from_threads_without_losing_a_result(standin: hw.Device) -> None:
    x = hw.asarray(np.arange(64, dtype=np.float32), device=standin)
    hw.add(x, x)
    stream = standin.default_stream
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(200):
                hw.add(x, x)
        except BaseException as exc:  # (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stream.synchronize()
    assert stream._handle.pending == []
    np.testing.assert_array_equal(hw.add(x, x).numpy(), np.arange(64) * 2)


@compiled
def test_many_launches_leak_no_objects(standin: hw.Device) -> None:
    x = hw.asarray(np.ones(8, np.float32), device=standin)
    for _ in range(200):
        hw.add(x, 1.0)
    standin.default_stream.synchronize()
    stats = standin.memory_stats()

    def count() -> int:
        gc.collect()
        return len(gc.get_objects())

    before = count()
    for _ in range(2000):
        hw.add(x, x)
    standin.default_stream.synchronize()
    assert count() - before < 500  # (one object left per launch would be 2,000)
    after = standin.memory_stats()
    assert (after.in_use, after.allocations) == (stats.in_use, stats.allocations)


@compiled
def test_configure_takes_only_types_with_those_slots_and_an_unset_slot_raises() -> None:
    assert pjrt._FAST is not None

    class NoSlots:
        pass

    class ReadOnly:
        __slots__ = ("device", "freed", "kind", "nbytes")
        array = property(lambda self: None)

    for wrong in (NoSlots, ReadOnly):
        with pytest.raises(TypeError, match="slot"):
            pjrt._FAST.configure(
                buffer_type=wrong, stream_type=pjrt.PjrtStream, synchronize=pjrt._synchronize
            )
    # (a refused configure changes nothing: the real types still run compiled)
    bound, stream = _Bound(), pjrt.PjrtStream(0)
    x, y = _buffer(16, hw.float32, _Array("a")), _buffer(8, hw.int32, _Array("b"))
    bound.call(stream, [x, y], (pjrt.PjrtBuffer(0, 16),))
    assert len(bound.exe_calls) == 1
    del y.array  # an unset slot: the AttributeError Python would raise
    with pytest.raises(AttributeError, match="array"):
        bound.call(stream, [x, y], (pjrt.PjrtBuffer(0, 16),))
    assert len(bound.exe_calls) == 1


# -- synchronize ----------------------------------------------------------------------------


@compiled
def test_synchronize_waits_for_what_is_pending_as_python_does(standin: hw.Device) -> None:
    assert pjrt._FAST is not None
    assert standin._impl.stream_synchronize is pjrt._FAST.synchronize
    outcomes = []
    for synchronize in (pjrt._FAST.synchronize, pjrt._synchronize):
        stream = pjrt.PjrtStream(0)
        pending = stream.pending
        arrays = [_Array("a"), _Array("gone", deleted=True), _Array("b")]
        stream.pending[:] = arrays
        synchronize(stream)
        seen = [(a.name, a.waits) for a in arrays], list(stream.pending), stream.pending is pending
        # a wait that fails (an interrupt, say): what was not waited for stays pending, first
        late = _Array("late")
        arrays = [_Array("c"), _Array("d", fails=KeyboardInterrupt()), _Array("e")]
        stream.pending[:] = arrays
        with pytest.raises(KeyboardInterrupt):
            synchronize(stream)
        stream.pending.append(late)
        interrupted = [a.name for a in stream.pending], [a.waits for a in arrays]
        # a wait that fails on a live array (an Exception): raised, not taken for a deletion
        stream.pending[:] = [_Array("f", fails=RuntimeError("the device was lost"))]
        with pytest.raises(RuntimeError, match="the device was lost"):
            synchronize(stream)
        outcomes.append((seen, *interrupted, [a.name for a in stream.pending]))
    compiled_run, python_run = outcomes
    assert compiled_run == python_run
    assert compiled_run[3] == ["f"]
    # (a deleted array's wait is refused, and that refusal is not an error)
    assert compiled_run[0] == ([("a", 1), ("gone", 1), ("b", 1)], [], True)
    assert compiled_run[1:3] == (["d", "e", "late"], [1, 1, 0])


@compiled
def test_synchronize_hands_a_stream_of_another_type_to_python() -> None:
    assert pjrt._FAST is not None

    class Sub(pjrt.PjrtStream):
        __slots__ = ()

        def take(self) -> list[Any]:
            self.destroyed = True  # (marks that Python's _synchronize ran)
            return super().take()

    stream = Sub(0)
    stream.pending.append(_Array("a"))
    pjrt._FAST.synchronize(stream)
    assert stream.destroyed and stream.pending == []
