"""Probe each plugin in its own subprocess, with a timeout (``hwabstract doctor --isolate``).

In-process discovery (:mod:`hwabstract.registry`) survives a plugin that *raises*; it cannot
survive one that crashes the interpreter (a segfault in a vendor driver, an ``abort()``) or
never returns (a hung driver call). Here the host process loads no plugin at all: it reads
the entry points from the installed metadata, and for each plugin runs
``python -m hwabstract.isolated_probe NAME`` -- which loads only that plugin
(``HWABSTRACT_PLUGINS=NAME``), probes it, and prints its :class:`BackendStatus` rows as
JSON. A child killed by a signal, exiting without an answer, or still running at the
timeout becomes a ``failed`` row saying which, with the end of its stderr; the child is
killed (with any processes it started) and the others are unaffected.

The children run concurrently and inherit the environment and ``sys.path`` of the host.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .registry import (
    DISABLED,
    FAILED,
    BackendStatus,
    PluginSource,
    _entry_point_sources,
    _env_list,
    disabled_reason,
    plugin_row,
)

__all__ = ["DEFAULT_TIMEOUT", "probe_isolated", "probe_timeout"]

#: Seconds each plugin's probe may take (``--timeout`` or ``HWABSTRACT_PROBE_TIMEOUT``).
DEFAULT_TIMEOUT = 60.0

_MARK = "hwabstract-isolated-probe:"  # the child's answer line starts with this


def probe_timeout(value: float | None = None) -> float:
    """``value``, else ``HWABSTRACT_PROBE_TIMEOUT``, else :data:`DEFAULT_TIMEOUT` seconds."""
    if value is None:
        value = float(os.environ.get("HWABSTRACT_PROBE_TIMEOUT", DEFAULT_TIMEOUT))
    if not value > 0:
        raise ValueError(f"the probe timeout must be a positive number of seconds, got {value}")
    return value


def _tail(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else "..." + text[-limit:]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HWABSTRACT_DISABLE_PLUGINS", None)
    # the host's sys.path, so the child finds exactly the plugins the host would
    paths = [p for p in sys.path if p]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _answer(
    source: PluginSource, proc: subprocess.Popen[str], out: str, err: str
) -> list[BackendStatus]:
    code = proc.returncode
    for line in out.splitlines():
        if line.startswith(_MARK):
            try:
                rows = json.loads(line[len(_MARK) :])
                return [_status(row) for row in rows]
            except (ValueError, TypeError, KeyError) as exc:
                return [plugin_row(source, FAILED, f"isolated probe: unreadable answer ({exc})")]
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = f"the plugin crashed its process with {name} while loading or probing"
    else:
        what = f"the probe process exited with status {code} without an answer"
    stderr = f"; its stderr ends: {_tail(err)}" if err.strip() else ""
    return [
        plugin_row(
            source, FAILED, f"isolated probe: {what} (the host process is unaffected){stderr}"
        )
    ]


def _status(row: dict[str, Any]) -> BackendStatus:
    row = dict(row)
    row["environment"] = tuple(tuple(pair) for pair in row.get("environment", ()))
    return BackendStatus(**row)


def probe_isolated(
    timeout: float | None = None, sources: Sequence[PluginSource] | None = None
) -> list[BackendStatus]:
    """Every plugin's rows, each plugin probed in its own subprocess within ``timeout``
    seconds. ``HWABSTRACT_PLUGINS``/``HWABSTRACT_DISABLE_PLUGINS`` apply as in discovery."""
    timeout = probe_timeout(timeout)
    sources = list(sources) if sources is not None else _entry_point_sources()
    allow = _env_list("HWABSTRACT_PLUGINS")
    deny = _env_list("HWABSTRACT_DISABLE_PLUGINS") or set()
    env = _child_env()
    running: list[tuple[PluginSource, subprocess.Popen[str] | None]] = []
    results: dict[int, list[BackendStatus]] = {}
    for i, source in enumerate(sources):
        disabled = disabled_reason(source.name, allow, deny)
        if disabled is not None:  # as discovery does: listed, not started
            results[i] = [plugin_row(source, DISABLED, disabled)]
            running.append((source, None))
            continue
        child_env = {**env, "HWABSTRACT_PLUGINS": source.name}
        child = subprocess.Popen(
            [sys.executable, "-m", "hwabstract.isolated_probe", source.name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True, env=child_env, start_new_session=True,
        )  # fmt: skip
        running.append((source, child))
    deadline = time.monotonic() + timeout

    def collect(source: PluginSource, proc: subprocess.Popen[str]) -> list[BackendStatus]:
        try:
            out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if proc.poll() is None:
                _kill(proc)
                _, err = proc.communicate()
                ends = f"; its stderr ends: {_tail(err)}" if err.strip() else ""
                return [
                    plugin_row(
                        source,
                        FAILED,
                        f"isolated probe: no answer within {timeout:g} s (a hung import or "
                        "probe); the probe process was killed and the host process is "
                        f"unaffected{ends}",
                    )
                ]
            out, err = proc.communicate()  # it ended just at the deadline
        return _answer(source, proc, out, err)

    # one thread per child drains its pipes, so no child blocks on a full pipe while
    # another is being waited for
    with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
        futures = {
            i: pool.submit(collect, source, proc)
            for i, (source, proc) in enumerate(running)
            if proc is not None
        }
        for i, future in futures.items():
            results[i] = future.result()
    return [row for i in range(len(running)) for row in results[i]]


def _kill(proc: subprocess.Popen[str]) -> None:
    """Kill the probe and every process it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def main(argv: Sequence[str] | None = None) -> int:
    """The child: load and probe the one plugin named, print its rows as one JSON line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m hwabstract.isolated_probe PLUGIN", file=sys.stderr)
        return 2
    from .registry import get_registry

    rows = [s.to_dict() for s in get_registry().backends() if s.plugin == args[0]]
    print(_MARK + json.dumps(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
