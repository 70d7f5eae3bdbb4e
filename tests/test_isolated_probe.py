"""hwabstract.isolated_probe and ``hwabstract doctor --isolate``: a plugin whose probe
segfaults, one that hangs and one that calls ``os._exit`` are each reported as failed --
with the signal, the timeout or the exit status -- while the host process (this test, and
the ``hwabstract`` command) keeps running and the working plugins are listed as usual."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hwabstract.isolated_probe import probe_isolated, probe_timeout

PLUGIN = """
    import os, signal, time
    import hwabstract as hw
    from hwabstract.backends.cpu import CpuBackend

    class {cls}(CpuBackend):
        name = "{name}"
        priority = {priority}

        def probe(self):
            {probe}
            return super().probe()

    @hw.hookimpl
    def hwabstract_backends():
        return [{cls}]
"""

FAKES = {
    # entry point: (class, probe body, priority)
    "isogood": ("IsoGood", "pass", 5),
    "segfaults": ("Segfaults", "os.kill(os.getpid(), signal.SIGSEGV)", 0),
    "hangs": ("Hangs", "time.sleep(600)", 0),
    "exits": ("Exits", "os._exit(7)", 0),
}


@pytest.fixture
def fakes(plugin_dist: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ("HWABSTRACT_PLUGINS", "HWABSTRACT_DISABLE_PLUGINS", "HWABSTRACT_DEVICE"):
        monkeypatch.delenv(variable, raising=False)
    return plugin_dist(
        "hwabstract-isolation-fakes",
        {ep: f"hwa_iso_{ep}" for ep in FAKES},
        {
            f"hwa_iso_{ep}": PLUGIN.format(cls=cls, name=ep, probe=probe, priority=prio)
            for ep, (cls, probe, prio) in FAKES.items()
        },
    )


def test_crashing_and_hanging_probes_are_reported_and_the_host_survives(fakes: Path) -> None:
    start = time.monotonic()
    rows = {s.name: s for s in probe_isolated(timeout=8)}
    elapsed = time.monotonic() - start
    assert rows["cpu"].ok and rows["isogood"].ok and rows["isogood"].device_count == 1
    crash = rows["segfaults"]
    assert crash.status == "failed" and "crashed its process with SIGSEGV" in crash.reason
    assert "host process is unaffected" in crash.reason
    hang = rows["hangs"]
    assert hang.status == "failed" and "no answer within 8 s" in hang.reason
    exited = rows["exits"]
    assert exited.status == "failed" and "exited with status 7 without an answer" in exited.reason
    assert elapsed < 60  # the hung probe was killed at its deadline (8 s), not waited for
    # probes ran concurrently: the whole run took one timeout, not one per plugin


def test_disabled_plugins_are_not_started(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWABSTRACT_DISABLE_PLUGINS", "segfaults,hangs")
    rows = {s.name: s for s in probe_isolated(timeout=30)}
    assert rows["segfaults"].status == "disabled"
    assert "HWABSTRACT_DISABLE_PLUGINS" in rows["hangs"].reason
    assert rows["isogood"].ok


def test_doctor_isolate_reports_them_and_exits_normally(fakes: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-m", "hwabstract", "doctor", "--isolate", "--timeout", "8", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr  # cpu and isogood work: a healthy machine
    report = json.loads(out.stdout)
    assert report["isolated"] is True
    assert report["default_device"] == "isogood:0"  # the highest priority
    by_name = {b["name"]: b for b in report["backends"]}
    assert "SIGSEGV" in by_name["segfaults"]["reason"]
    assert by_name["segfaults"]["advice"]  # what to do, as for any failed plugin
    text = subprocess.run(
        [sys.executable, "-m", "hwabstract", "doctor", "--isolate", "--timeout", "8"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert "each plugin probed in its own process, within 8 s" in text.stdout
    assert "no answer within 8 s" in text.stdout


def test_timeout_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWABSTRACT_PROBE_TIMEOUT", "12.5")
    assert probe_timeout() == 12.5
    assert probe_timeout(3) == 3
    with pytest.raises(ValueError, match="positive number of seconds"):
        probe_timeout(0)
