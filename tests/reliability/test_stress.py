"""Stress: many Python threads x many streams x many launches, with cross-stream events.

Eight host threads each own three streams of one device and run ``rounds`` rounds. In round
``r`` thread ``t`` works on its stream ``r % 3`` (after waiting for an event recorded on the
stream it used in round ``r - 1``) and:

1. **consumes** the message another thread ``p`` produced in round ``r - 1`` (``p`` changes
   every round; each message has exactly one consumer): its stream waits for the event
   ``p`` recorded after writing the message, copies it into a fresh tensor, and records a
   "read" event that it hands back to ``p``;
2. runs an int32 elementwise chain on its accumulator (multiply, add, remainder, in place
   through ``out=``), reductions into a view of a per-round results vector, a float32
   matmul whose result replaces the previous matrix (freed mid-flight), a column reduction
   folded back into a slice of the accumulator, and every few rounds a host upload and a
   host read-back;
3. **produces** its message for round ``r`` into one of two mailbox tensors it reuses --
   after making its stream wait for the read event of the consumer of round ``r - 2``,
   which wrote nothing: the wait alone stops the overwrite from racing the copy (a
   write-after-read hazard no core convenience orders);
4. every ten rounds replaces one of its streams with a new one (stream creation and
   destruction while other threads launch).

Messages and read events go between threads through a host-side mailroom; every device-side
dependency is a ``Stream.wait`` on an event. The data are integers (the float32 matrices
hold small integers, so every matmul and sum is exact) and every result -- per-round
reductions, digests of periodic read-backs, final tensors -- must equal a sequential NumPy
replay of the same rounds exactly.

Afterwards every tensor and stream is dropped: ``memory_stats().in_use`` and
``.allocations`` must be back at their values before the run. The workload runs twice; the
second run must not grow the process's resident set by more than twice the workload's peak
live device bytes, computed from its configuration (see :func:`_rss_allowance`): run 1
leaves every allocator (glibc's arenas, NumPy's caches, the cpu backend's block pool,
libmaia's arena) holding what this workload needs, so an identical second run that still
grows beyond that keeps memory per launch. Before the resident set is read, glibc's free
lists go back to the system (``malloc_trim(0)``, where glibc is the C library).

Threads are joined with a timeout, again and again, and the test fails -- naming each stuck
thread's round and step -- once no thread has made progress for ``HANG_GUARD_S`` (two
minutes; a step takes milliseconds). That guards against hangs only: there is no speed
requirement. Sustained launches per second (kernels and copies queued, over the run's wall
time) are printed with ``pytest -s``, not asserted.

Threads run with ``sys.setswitchinterval(1e-5)`` (Python's default is 5 ms): the
interpreter then switches threads in the middle of far more operations, which is what
exposed the lost update of the cpu backend's stream list (see the regression below).
``HWABSTRACT_STRESS_SWITCH_INTERVAL`` (seconds) changes it; 0.005 measures throughput as
programs see it.

Size: ``HWABSTRACT_STRESS_SCALE=N`` (default 1: 120 rounds, about 13,000 launches per run,
a few seconds per device) multiplies the number of rounds by N; ``HWABSTRACT_STRESS_THREADS``
(default 8) and ``HWABSTRACT_STRESS_STREAMS`` (streams per thread, default 3) change the
fan-out. The long runs recorded in docs/reliability.md::

    HWABSTRACT_STRESS_SCALE=30 python -m pytest -p no:cacheprovider -s \\
        tests/reliability/test_stress.py -k "threads_streams_launches and cpu"
    HWABSTRACT_STRESS_SCALE=60 python -m pytest -p no:cacheprovider -s \\
        tests/reliability/test_stress.py -k "threads_streams_launches and maia"
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import hashlib
import importlib.util
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import hwabstract as hw

SEED = 20240909
#: the int32 chain stays in [0, MOD): acc * coeff + inbox < MOD * (COEFF_MAX + 1) < 2**31
MOD = 65521
COEFF_MAX = 32000
FMOD = 17.0  # float32 matrix entries stay integers in [0, 17): every matmul is exact
BMAX = 8  # right-hand matrices hold integers in [0, 8)
N = 4096  # accumulator length (int32)
M = 32  # matrix order (float32); the column sums are folded into acc[:M]
MAILBOXES = 2  # message tensors each thread reuses (ring)
UPLOAD_EVERY = 5  # rounds between host uploads
READBACK_EVERY = 8  # rounds between host read-backs
CHURN_EVERY = 10  # rounds between stream replacements
BASE_ROUNDS = 120
#: How often the interpreter may switch threads (Python's default: 5 ms). Switching every
#: 10 us interrupts far more operations halfway, which is what exposes lost updates.
SWITCH_INTERVAL = 1e-5
#: A run in which no thread has taken a step for this long has hung (a step takes
#: milliseconds): a hang guard, not a speed requirement, and independent of the run's length.
HANG_GUARD_S = 120.0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name) or ""
    if not text:
        return default
    value = int(text)
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {text!r}")
    return value


@dataclass(frozen=True)
class Config:
    threads: int
    streams: int
    rounds: int
    switch_interval: float  #: sys.setswitchinterval while the threads run

    @classmethod
    def from_env(cls) -> Config:
        scale = _env_int("HWABSTRACT_STRESS_SCALE", 1)
        threads = _env_int("HWABSTRACT_STRESS_THREADS", 8)
        if threads < 2:
            raise ValueError("HWABSTRACT_STRESS_THREADS must be at least 2 (threads exchange data)")
        streams = _env_int("HWABSTRACT_STRESS_STREAMS", 3)
        interval = float(os.environ.get("HWABSTRACT_STRESS_SWITCH_INTERVAL") or SWITCH_INTERVAL)
        if not interval > 0:
            raise ValueError("HWABSTRACT_STRESS_SWITCH_INTERVAL must be a positive number of s")
        return cls(threads, streams, BASE_ROUNDS * scale, interval)

    def producer(self, t: int, r: int) -> int:
        """The thread whose round ``r - 1`` message thread ``t`` consumes in round ``r``: a
        shift that changes every round, so each message has exactly one consumer."""
        return (t + 1 + r % (self.threads - 1)) % self.threads


# -- the inputs, shared by the device run and the NumPy replay ----------------------------------


def _thread_inputs(t: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([SEED, t])
    return {
        "acc": rng.integers(0, MOD, N, dtype=np.int32),
        "coeff": rng.integers(1, COEFF_MAX, N, dtype=np.int32),
        "F": rng.integers(0, int(FMOD), (M, M)).astype(np.float32),
        "B": rng.integers(0, BMAX, (M, M)).astype(np.float32),
    }


def _upload(t: int, r: int) -> np.ndarray:
    return np.random.default_rng([SEED, t, r, 1]).integers(0, MOD, N, dtype=np.int32)


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


@dataclass
class Outcome:
    """What one thread (or its replay) computed."""

    acc: np.ndarray
    F: np.ndarray
    sums: np.ndarray  # per round: sum(acc) after the chain (int64)
    fsums: np.ndarray  # per round: sum(F) after the matmul (float32)
    readbacks: list[str] = field(default_factory=list)  # digests of acc read mid-flight


def replay(cfg: Config) -> list[Outcome]:
    """The same rounds, sequentially, in NumPy (int64 / float64 with range checks)."""
    T, R = cfg.threads, cfg.rounds
    state = []
    for t in range(T):
        inp = _thread_inputs(t)
        state.append(
            {
                "acc": inp["acc"].astype(np.int64),
                "coeff": inp["coeff"].astype(np.int64),
                "F": inp["F"].astype(np.float64),
                "B": inp["B"].astype(np.float64),
            }
        )
    outs = [
        Outcome(s["acc"], s["F"], np.zeros(R, np.int64), np.zeros(R, np.float32)) for s in state
    ]
    messages: list[np.ndarray] = [np.zeros(0)] * T
    for r in range(R):
        new_messages: list[np.ndarray] = [np.zeros(0)] * T
        for t in range(T):
            s, out = state[t], outs[t]
            acc = s["acc"]
            inbox = messages[cfg.producer(t, r)] if r else np.zeros(N, np.int64)
            y = acc * s["coeff"] + inbox
            assert y.max() < 2**31  # the int32 chain never wraps
            acc = y % MOD
            out.sums[r] = acc.sum()
            G = s["F"] @ s["B"]
            assert G.max() < 2**24  # exact in float32
            s["F"] = G % FMOD
            out.fsums[r] = s["F"].sum()
            acc[:M] = (acc[:M] + s["F"].sum(axis=0).astype(np.int64)) % MOD
            if r % UPLOAD_EVERY == UPLOAD_EVERY - 1:
                acc = (acc + _upload(t, r)) % MOD
            if r % READBACK_EVERY == READBACK_EVERY - 1:
                out.readbacks.append(_digest(acc.astype(np.int32)))
            new_messages[t] = (acc * 3) % MOD
            s["acc"] = acc
        messages = new_messages
    for t in range(T):
        outs[t].acc = state[t]["acc"].astype(np.int32)
        outs[t].F = state[t]["F"].astype(np.float32)
    return outs


# -- the device run -----------------------------------------------------------------------------


class Aborted(Exception):
    """Another thread failed, or the hang guard ran out: stop."""


class Mailroom:
    """Values threads hand to each other by key -- (thread, round) -> a message and its
    event, or a read event -- each taken once. Entries exist only between put and take."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._cond = threading.Condition()
        self._items: dict[tuple[int, int], Any] = {}

    def put(self, key: tuple[int, int], value: Any) -> None:
        with self._cond:
            self._items[key] = value
            self._cond.notify_all()

    def take(self, key: tuple[int, int], what: str) -> Any:
        with self._cond:
            while key not in self._items:
                if self._run.abort.is_set():
                    raise Aborted(f"gave up waiting for {what} {key}: the run was aborted")
                self._cond.wait(0.05)
            return self._items.pop(key)


@dataclass
class Counts:
    launches: int = 0  # kernels and copies queued (uploads, read-backs included)
    events: int = 0  # events recorded
    waits: int = 0  # Stream.wait calls
    cross_thread_waits: int = 0  # ... on an event another thread recorded
    streams_created: int = 0

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Run:
    """One execution of the workload on a device."""

    def __init__(self, device: hw.Device, cfg: Config) -> None:
        self.device = device
        self.cfg = cfg
        self.abort = threading.Event()
        T = cfg.threads
        # messages (p, r): p's round r message and its event; reads (p, r): the event its
        # consumer recorded after copying it
        self.messages = Mailroom(self)
        self.reads = Mailroom(self)
        self.outcomes: list[Outcome | None] = [None] * T
        self.counts = [Counts() for _ in range(T)]
        self.errors: list[str] = []
        self.progress = [(-1, "not started")] * T
        self.last_progress = time.monotonic()

    def _at(self, t: int, r: int, step: str) -> None:
        self.progress[t] = (r, step)
        self.last_progress = time.monotonic()

    def worker(self, t: int) -> None:
        try:
            self.outcomes[t] = self._work(t)
            self._at(t, self.cfg.rounds, "done")
        except Aborted:
            pass
        except BaseException:
            self.errors.append(f"thread {t}:\n{traceback.format_exc()}")
            self.abort.set()

    def _work(self, t: int) -> Outcome:
        cfg, dev, c = self.cfg, self.device, self.counts[t]
        R, S = cfg.rounds, cfg.streams
        inp = _thread_inputs(t)
        streams = [dev.create_stream() for _ in range(S)]
        c.streams_created += S
        setup = streams[0]
        acc = hw.asarray(inp["acc"], device=dev, stream=setup)
        coeff = hw.asarray(inp["coeff"], device=dev, stream=setup)
        F = hw.asarray(inp["F"], device=dev, stream=setup)
        B = hw.asarray(inp["B"], device=dev, stream=setup)
        mail = [hw.empty(N, dtype=hw.int32, device=dev) for _ in range(MAILBOXES)]
        sums = hw.empty(R, dtype=hw.int64, device=dev)
        fsums = hw.empty(R, dtype=hw.float32, device=dev)
        c.launches += 4
        last = setup.record()
        c.events += 1
        readbacks: list[str] = []
        for r in range(R):
            if self.abort.is_set():
                raise Aborted
            s = streams[r % S]
            self._at(t, r, "ordering after the previous round")
            s.wait(last)  # the previous round ran on another stream of this thread
            c.waits += 1
            with s:  # everything below without stream= goes to s
                # 1. consume the message of thread p's round r - 1
                if r:
                    p = cfg.producer(t, r)
                    self._at(t, r, f"waiting for thread {p}'s round {r - 1} message")
                    msg, published = self.messages.take((p, r - 1), "the message")
                    s.wait(published)
                    c.waits += 1
                    c.cross_thread_waits += 1
                    inbox = hw.asarray(msg, copy=True)  # allocation + device copy on s
                    del msg
                    self.reads.put((p, r - 1), s.record())
                    c.launches += 1
                    c.events += 1
                else:
                    inbox = hw.zeros(N, dtype=hw.int32, device=dev)
                    c.launches += 1
                self._at(t, r, "computing")
                # 2. an elementwise chain, in place; its temporaries are freed mid-flight
                y = hw.multiply(acc, coeff)
                hw.add(y, inbox, out=y)
                hw.remainder(y, MOD, out=acc, stream=s)
                del y, inbox
                hw.sum(acc, out=sums[r])  # a reduction into a 0-d view
                G = hw.matmul(F, B)
                F = hw.remainder(G, FMOD)  # the previous F is freed while queued work holds it
                del G
                hw.sum(F, out=fsums[r])
                head = acc[:M]
                hw.add(head, hw.astype(hw.sum(F, axis=0), hw.int32), out=head)
                hw.remainder(head, MOD, out=head)
                del head
                c.launches += 11
                if r % UPLOAD_EVERY == UPLOAD_EVERY - 1:
                    u = hw.asarray(_upload(t, r), device=dev)
                    hw.add(acc, u, out=acc)
                    hw.remainder(acc, MOD, out=acc)
                    del u
                    c.launches += 3
                if r % READBACK_EVERY == READBACK_EVERY - 1:
                    self._at(t, r, "reading back")
                    readbacks.append(_digest(acc.numpy()))
                    c.launches += 1
                # 3. produce the round r message into a reused mailbox, once its consumer of
                # round r - MAILBOXES has read it (write-after-read: only the event orders it)
                if r >= MAILBOXES:
                    self._at(t, r, f"waiting for the read of round {r - MAILBOXES}")
                    s.wait(self.reads.take((t, r - MAILBOXES), "the read event"))
                    c.waits += 1
                    c.cross_thread_waits += 1
                box = mail[r % MAILBOXES]
                hw.multiply(acc, 3, out=box)
                hw.remainder(box, MOD, out=box)
                c.launches += 2
                if r + 1 < R:  # (the last round's message has no consumer)
                    self.messages.put((t, r), (box, s.record()))
                    c.events += 1
                last = s.record()
                c.events += 1
            # 4. replace a stream: the new one starts after the old one's work
            if r % CHURN_EVERY == CHURN_EVERY - 1:
                i = (r // CHURN_EVERY) % S
                fresh = dev.create_stream()
                fresh.wait(streams[i].record())
                streams[i] = fresh
                c.streams_created += 1
                c.events += 1
                c.waits += 1
        self._at(t, R, "final read-back")
        outcome = Outcome(acc.numpy(), F.numpy(), sums.numpy(), fsums.numpy(), readbacks)
        c.launches += 4
        # wait on the host for the events the readers of the last messages recorded (frees
        # are stream-ordered, so the mailboxes could go anyway: this is Event.synchronize on
        # another thread's stream)
        for r in range(max(0, R - MAILBOXES), R - 1):
            self.reads.take((t, r), "the read event").synchronize()
        return outcome

    def execute(self) -> tuple[float, Counts]:
        """Run every thread; returns (wall seconds, total counts). Fails on a hang."""
        cfg = self.cfg
        threads = [
            threading.Thread(target=self.worker, args=(t,), name=f"stress-{t}", daemon=True)
            for t in range(cfg.threads)
        ]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(cfg.switch_interval)
        try:
            start = time.perf_counter()
            for th in threads:
                th.start()
            # join with a timeout, again and again, until every thread is done or none has
            # moved for HANG_GUARD_S
            while any(th.is_alive() for th in threads):
                for th in threads:
                    th.join(0.2)
                if time.monotonic() - self.last_progress > HANG_GUARD_S:
                    break
            wall = time.perf_counter() - start
        finally:
            sys.setswitchinterval(interval)
        stuck = [i for i, th in enumerate(threads) if th.is_alive()]
        if stuck:
            self.abort.set()
            _KEEP_ALIVE.append(self)  # a hung device: never run its streams' finalizers here
            where = "; ".join(f"thread {i} in round {self.progress[i][0]}: {self.progress[i][1]}"
                              for i in stuck)  # fmt: skip
            pytest.fail(
                f"{len(stuck)} of {cfg.threads} threads made no progress for {HANG_GUARD_S:.0f} s "
                f"on {self.device.name} (hung): {where}" + "".join(f"\n{e}" for e in self.errors),
                pytrace=False,
            )
        if self.errors:
            pytest.fail("\n".join(self.errors), pytrace=False)
        total = Counts()
        for c in self.counts:
            total.add(c)
        return wall, total


#: Runs whose threads hung: kept so that no finalizer waits on their streams.
_KEEP_ALIVE: list[Run] = []


# -- memory ---------------------------------------------------------------------------------


def _trim_malloc() -> None:
    """Give glibc's free lists back to the system, so the resident set reflects live memory
    rather than what the allocator keeps cached (a no-op on other C libraries)."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def _rss() -> int | None:
    """The process's resident set in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _rss_allowance(cfg: Config) -> int:
    """How much the resident set may grow over a second, identical run: twice the
    workload's peak live device bytes, from its configuration.

    Allocators keep what they once held (glibc's arenas, the cpu backend's block pool,
    libmaia's arena pages), so a second run of the same workload needs nothing new -- except
    that threads interleave differently from run to run and may reach a different peak of
    live data. That peak is bounded: per thread, the persistent tensors (accumulator,
    coefficients, two matrices, the mailboxes, the per-round results vectors) and the
    temporaries of the rounds that can be queued and not yet executed, at most
    ``READBACK_EVERY + MAILBOXES`` (a read-back drains the thread's stream; a producer is at
    most ``MAILBOXES`` rounds ahead of its consumers). Each live byte counts twice: once on
    the device (host memory for cpu) and once on the host (staged uploads, read-backs).
    Growth beyond that is memory kept per launch: a leak. The allowance hardly grows with
    the number of rounds, so a long run detects leaks of a few bytes per launch (printed as
    "leak sensitivity").
    """
    persistent = 2 * N * 4 + 2 * M * M * 4 + MAILBOXES * N * 4 + cfg.rounds * (8 + 4)
    per_round = 3 * N * 4 + 2 * M * M * 4 + 2 * M * 4  # inbox, chain, upload; G, F; column sums
    in_flight = READBACK_EVERY + MAILBOXES
    return 2 * cfg.threads * (persistent + in_flight * per_round)


# -- the test -------------------------------------------------------------------------------


def _device(name: str) -> hw.Device:
    backend = name.split(":")[0]
    if backend == "maia" and importlib.util.find_spec("hwabstract_maia") is None:
        pytest.skip("the hwabstract-maia plugin is not installed (tox -e maia runs this)")
    try:
        return hw.device(name)
    except hw.HwAbstractError as exc:
        pytest.skip(f"{name} is not available here: {exc}")


@pytest.fixture(scope="module")
def config() -> Config:
    return Config.from_env()


@pytest.fixture(scope="module")
def reference(config: Config) -> list[Outcome]:
    return replay(config)


def _check(outcomes: list[Outcome | None], reference: list[Outcome], label: str) -> None:
    for t, (got, want) in enumerate(zip(outcomes, reference)):
        assert got is not None, f"{label}: thread {t} produced nothing"
        np.testing.assert_array_equal(got.sums, want.sums, err_msg=f"{label} thread {t} sums")
        np.testing.assert_array_equal(got.fsums, want.fsums, err_msg=f"{label} thread {t} fsums")
        assert got.readbacks == want.readbacks, f"{label} thread {t}: mid-flight read-backs"
        np.testing.assert_array_equal(got.acc, want.acc, err_msg=f"{label} thread {t} acc")
        np.testing.assert_array_equal(got.F, want.F, err_msg=f"{label} thread {t} F")


@pytest.mark.parametrize("device_name", ["cpu:0", "maia:0"])
def test_threads_streams_launches(
    device_name: str, config: Config, reference: list[Outcome]
) -> None:
    dev = _device(device_name)
    cfg = config
    gc.collect()
    before = dev.memory_stats()
    _trim_malloc()
    rss = [_rss()]
    lines = []
    for attempt in (1, 2):
        run = Run(dev, cfg)
        wall, counts = run.execute()
        _check(run.outcomes, reference, f"{device_name} run {attempt}")
        del run
        gc.collect()
        after = dev.memory_stats()
        assert (after.in_use, after.allocations) == (before.in_use, before.allocations), (
            f"{device_name} run {attempt}: device memory not returned: in use "
            f"{before.in_use} -> {after.in_use} bytes, allocations "
            f"{before.allocations} -> {after.allocations}"
        )
        _trim_malloc()
        rss.append(_rss())
        lines.append(
            f"  run {attempt}: {counts.launches} launches in {wall:.2f} s = "
            f"{counts.launches / wall:,.0f} launches/s; {counts.events} events, {counts.waits} "
            f"waits ({counts.cross_thread_waits} on other threads' events), "
            f"{counts.streams_created} streams created; in use {after.in_use} B in "
            f"{after.allocations} allocations (peak {after.peak} B, cached {after.cached} B); "
            f"RSS {_mib(rss[-1])}"
        )
    allowance = _rss_allowance(cfg)
    quarantine = _asan_quarantine()
    if quarantine:
        lines.append(f"  under AddressSanitizer: + its quarantine ({_mib(quarantine)}) allowed")
        allowance += quarantine
    print(
        f"\n[stress] {device_name}: {cfg.threads} threads x {cfg.streams} streams, "
        f"{cfg.rounds} rounds, switch interval {cfg.switch_interval:g} s; before: in use "
        f"{before.in_use} B in {before.allocations} allocations, RSS {_mib(rss[0])}\n"
        + "\n".join(lines)
    )
    if None not in rss:
        growth = rss[2] - rss[1]  # type: ignore[operator]
        print(
            f"  RSS growth over run 2: {growth / 2**20:+.1f} MiB (allowed {_mib(allowance)}; "
            f"leak sensitivity {allowance / counts.launches:,.0f} B per launch)"
        )
        assert growth <= allowance, (
            f"{device_name}: the second, identical run grew the resident set by "
            f"{growth / 2**20:.1f} MiB, beyond the workload's peak live bytes "
            f"({allowance / 2**20:.1f} MiB): memory is kept per launch"
        )


def _asan_quarantine() -> int:
    """Bytes AddressSanitizer's quarantine may hold, when ASan's runtime is in this process
    (``tox -e conformance-maia-asan`` preloads it), else 0. ASan keeps freed memory out of
    reuse, up to ``quarantine_size_mb`` (default 256), to catch use after free: under ASan
    the resident set grows by up to that much with no leak at all."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
            if "libasan" not in f.read():
                return 0
    except OSError:
        return 0
    options = dict(
        item.split("=", 1) for item in os.environ.get("ASAN_OPTIONS", "").split(":") if "=" in item
    )
    return int(options.get("quarantine_size_mb", "256")) * 2**20


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.1f} MiB"
