"""The ``hwabstract`` command (also ``python -m hwabstract``).

Subcommands: ``backends``, ``devices``, ``info DEVICE``, ``doctor``, ``demo``, ``conformance``,
``main-job`` (the demo and the conformance matrix in one HTML report) and ``new-plugin NAME``.
Each prints
an aligned table by default and machine-readable JSON with ``--json`` (the keys are
documented in ``docs/cli.md`` and stable). Errors raised by the SDK print one line on stderr
and exit with status 2; ``doctor`` exits 1 when nothing works, ``demo`` when a device
disagrees.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import hwabstract as hw

from . import _compiled
from .backend import SUPPORTED_API_LEVELS, Capabilities, DeviceInfo, MemoryStats
from .dtypes import DType, all_dtypes
from .errors import HwAbstractError
from .registry import BackendStatus, get_registry

__all__ = ["build_parser", "format_bytes", "format_table", "main"]

#: Exit statuses.
EXIT_OK, EXIT_PROBLEM, EXIT_ERROR = 0, 1, 2

#: The core's environment variables ``doctor`` reports, with what each does; each backend
#: adds its own (``Backend.environment``).
ENVIRONMENT = {
    "HWABSTRACT_DEVICE": "the default device (e.g. cpu:0)",
    "HWABSTRACT_PROBE_TIMEOUT": "seconds a plugin's probe may take in `doctor --isolate` (60)",
    "HWABSTRACT_PLUGINS": "allow list of plugin names; only these load",
    "HWABSTRACT_DISABLE_PLUGINS": "deny list of plugin names",
    "HWABSTRACT_PURE_PYTHON": "1: dispatch and PJRT run their Python definitions, not the compiled",
}

#: Vendor runtimes the shipped plugins load, found with importlib.util.find_spec (never
#: imported): (top-level module, which backends use it).
VENDOR_STACKS = (
    ("cupy", "nvidia: CUDA through CuPy"),
    ("jax", "tpu, trainium: PJRT through JAX"),
    ("jaxlib", "tpu, trainium: JAX's compiled runtime"),
    ("libtpu", "tpu: the TPU PJRT runtime"),
    ("libneuronxla", "trainium: the Neuron PJRT plugin"),
    ("jax_neuronx", "trainium: JAX integration of Neuron"),
    ("cffi", "maia: the binding to the C emulator"),
)

_WIDTH = 100


# -- formatting -----------------------------------------------------------------------------------


def format_bytes(n: int | None) -> str:
    """``25276510208`` -> ``"23.5 GiB"`` (binary units); None -> ``"-"``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split())  # one line, whatever the text held


def format_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Iterable[int] = ()
) -> str:
    """An aligned text table: a header row, a rule, and one line per row. Columns whose
    index is in ``right`` are right-aligned (numbers); None prints as ``-``."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    right_set = set(right)

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if i in right_set else v.ljust(widths[i])
            for i, v in enumerate(values)
        ]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _pairs(items: Sequence[tuple[str, Any]], indent: int = 2) -> str:
    """``key  value`` lines with the values aligned; long values wrap under themselves."""
    width = max((len(k) for k, _ in items), default=0)
    lines = []
    for key, value in items:
        prefix = " " * indent + key.ljust(width) + "  "
        text = _cell(value)
        wrapped = textwrap.wrap(text, max(40, _WIDTH - len(prefix))) or [""]
        lines.append(prefix + wrapped[0])
        lines.extend(" " * len(prefix) + w for w in wrapped[1:])
    return "\n".join(lines)


def _standin_text(standin: bool, standin_for: str | None) -> str:
    if not standin:
        return "no"
    return f"yes, for {standin_for}" if standin_for else "yes"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, allow_nan=False))


# -- backends -------------------------------------------------------------------------------------


def _backend_dict(s: BackendStatus) -> dict[str, Any]:
    return {
        "name": s.name,
        "status": s.status,
        "device_count": s.device_count,
        "api_level": s.api_level,
        "plugin": s.plugin,
        "distribution": s.distribution,
        "version": s.version,
        "priority": s.priority,
        "standin": s.standin,
        "reason": s.reason,
    }


def cmd_backends(args: argparse.Namespace) -> int:
    statuses = get_registry().backends()
    if args.json:
        _print_json({"backends": [_backend_dict(s) for s in statuses]})
        return EXIT_OK
    if not statuses:
        print("no backends discovered (not even cpu): the installation is broken")
        return EXIT_OK
    rows = [
        (
            s.name,
            s.status,
            s.device_count,
            s.api_level,
            s.plugin,
            s.distribution,
            s.version,
            s.standin if s.ok else None,
            s.reason,
        )
        for s in statuses
    ]
    headers = (
        "BACKEND", "STATUS", "DEVICES", "API", "PLUGIN", "DISTRIBUTION", "VERSION",
        "STAND-IN", "REASON",
    )  # fmt: skip
    print(format_table(headers, rows, right=(2, 3)))
    return EXIT_OK


# -- devices --------------------------------------------------------------------------------------


def _device_dict(device: hw.Device) -> dict[str, Any]:
    info = device.info
    return {
        "name": device.name,
        "backend": device.backend,
        "index": device.index,
        "description": info.name,
        "vendor": info.vendor,
        "model": info.model,
        "memory_capacity": info.memory_capacity,
        "standin": info.standin,
        "standin_for": info.standin_for,
    }


def cmd_devices(args: argparse.Namespace) -> int:
    devices = hw.devices(args.backend)
    if args.json:
        _print_json({"devices": [_device_dict(d) for d in devices]})
        return EXIT_OK
    if not devices:
        print("no devices: no backend works here; run `hwabstract doctor` to see why")
        return EXIT_OK
    rows = [
        (
            d.name,
            d.info.name,
            d.info.vendor,
            d.info.model,
            format_bytes(d.info.memory_capacity),
            _standin_text(d.info.standin, d.info.standin_for),
        )
        for d in devices
    ]
    headers = ("DEVICE", "DESCRIPTION", "VENDOR", "MODEL", "MEMORY", "STAND-IN")
    print(format_table(headers, rows, right=(4,)))
    return EXIT_OK


# -- info -----------------------------------------------------------------------------------------

_KIND_LABELS = (
    ("b", "bool"),
    ("i", "signed ints"),
    ("u", "unsigned ints"),
    ("f", "real floats"),
    ("c", "complex"),
)


def describe_dtypes(dtypes: Iterable[DType]) -> str:
    """A compact name for a set of dtypes: whole kinds by their kind name (``real floats``),
    the rest by dtype name, in :func:`~hwabstract.all_dtypes` order."""
    chosen = set(dtypes)
    if chosen == set(all_dtypes()):
        return f"all {len(chosen)} dtypes"
    parts: list[str] = []
    for kind, label in _KIND_LABELS:
        members = [d for d in all_dtypes() if d.kind == kind]
        have = [d for d in members if d in chosen]
        if have and len(have) == len(members) and len(members) > 1:
            parts.append(label)
        else:
            parts.extend(d.name for d in have)
    return ", ".join(parts) if parts else "(none)"


def _capabilities_dict(caps: Capabilities) -> dict[str, Any]:
    order = {d: i for i, d in enumerate(all_dtypes())}
    return {
        "dtypes": {
            d.name: support.value
            for d, support in sorted(caps.dtypes.items(), key=lambda kv: order[kv[0]])
        },
        "features": sorted(f.value for f in caps.features),
        "limits": {
            "memory_capacity": caps.limits.memory_capacity,
            "max_allocation": caps.limits.max_allocation,
            "max_dims": caps.limits.max_dims,
        },
        "kernels": {
            name: [d.name for d in sorted(dts, key=order.__getitem__)]
            for name, dts in sorted(caps.kernels.items())
        },
    }


def _memory_dict(stats: MemoryStats) -> dict[str, Any]:
    return {
        "in_use": stats.in_use,
        "peak": stats.peak,
        "capacity": stats.capacity,
        "free": stats.free,
        "allocations": stats.allocations,
        "largest_free_block": stats.largest_free_block,
    }


def _info_dict(info: DeviceInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "vendor": info.vendor,
        "model": info.model,
        "memory_capacity": info.memory_capacity,
        "standin": info.standin,
        "standin_for": info.standin_for,
        "modeled_memory_capacity": info.modeled_memory_capacity,
        "driver_version": info.driver_version,
        "description": info.description,
        "extra": dict(info.extra),
    }


def cmd_info(args: argparse.Namespace) -> int:
    device = hw.device(args.device)
    info, caps, stats = device.info, device.capabilities, device.memory_stats()
    if args.json:
        _print_json(
            {
                "device": device.name,
                "backend": device.backend,
                "index": device.index,
                "info": _info_dict(info),
                "capabilities": _capabilities_dict(caps),
                "memory": _memory_dict(stats),
            }
        )
        return EXIT_OK

    print(f"{device.name}: {info.name}")
    memory = format_bytes(info.memory_capacity) + f" ({info.memory_capacity:,} B)"
    if info.modeled_memory_capacity is not None:
        memory += f"; the modeled chip has {format_bytes(info.modeled_memory_capacity)}"
    items: list[tuple[str, Any]] = [
        ("vendor", info.vendor),
        ("model", info.model),
        ("memory", memory),
        ("stand-in", _standin_text(info.standin, info.standin_for)),
        ("driver", info.driver_version),
    ]
    if info.description:
        items.append(("description", info.description))
    if info.extra:
        items.append(("extra", ", ".join(f"{k}={v}" for k, v in sorted(info.extra.items()))))
    print(_pairs(items))

    native = [d for d, s in caps.dtypes.items() if s is hw.DTypeSupport.NATIVE]
    emulated = [d for d, s in caps.dtypes.items() if s is hw.DTypeSupport.EMULATED]
    limits = caps.limits
    print("\ncapabilities")
    print(
        _pairs(
            [
                ("native dtypes", describe_dtypes(native)),
                ("emulated dtypes", describe_dtypes(emulated) if emulated else "(none)"),
                ("features", ", ".join(sorted(f.value for f in caps.features)) or "(none)"),
                (
                    "limits",
                    f"memory {format_bytes(limits.memory_capacity)}, one allocation up to "
                    f"{format_bytes(limits.max_allocation)}, up to {limits.max_dims} dims",
                ),
            ]
        )
    )

    groups: dict[frozenset[DType], list[str]] = {}
    for name, dts in caps.kernels.items():
        groups.setdefault(frozenset(dts), []).append(name)
    print(f"\nkernels ({len(caps.kernels)}), grouped by the dtypes they are declared for")
    for dts, names in sorted(groups.items(), key=lambda kv: (-len(kv[1]), sorted(kv[1])[0])):
        print(f"  {describe_dtypes(dts)}:")
        body = ", ".join(sorted(names))
        print(textwrap.fill(body, _WIDTH, initial_indent="    ", subsequent_indent="    "))

    print("\nmemory")
    print(
        _pairs(
            [
                ("in use", f"{format_bytes(stats.in_use)} in {stats.allocations} allocation(s)"),
                ("peak", format_bytes(stats.peak)),
                ("free", f"{format_bytes(stats.free)} of {format_bytes(stats.capacity)}"),
                ("largest free block", format_bytes(stats.largest_free_block)),
            ]
        )
    )
    return EXIT_OK


# -- doctor ---------------------------------------------------------------------------------------


def advice(status: BackendStatus) -> str | None:
    """What to do about a backend that is not ok (None when it is)."""
    levels = ", ".join(map(str, sorted(SUPPORTED_API_LEVELS)))
    package = status.distribution or f"the package providing plugin {status.plugin!r}"
    hide = f"To hide it, set HWABSTRACT_DISABLE_PLUGINS={status.plugin}."
    reason = status.reason or ""
    if status.status == "ok":
        return None
    if status.status == "disabled":
        if "HWABSTRACT_DISABLE_PLUGINS" in reason:
            value = os.environ.get("HWABSTRACT_DISABLE_PLUGINS", "")
            return (
                f"HWABSTRACT_DISABLE_PLUGINS={value!r} disables it; remove {status.plugin!r} "
                "from that list to use it."
            )
        value = os.environ.get("HWABSTRACT_PLUGINS", "")
        return (
            f"HWABSTRACT_PLUGINS={value!r} does not list it; add {status.plugin!r} to that "
            "list, or unset the variable to load every plugin."
        )
    if status.status == "unavailable":
        return (
            "The plugin loaded but cannot run here: provide what the reason names (hardware, "
            f"driver, runtime or an opt-in variable), then rerun `hwabstract doctor`. {hide}"
        )
    if status.api_level is not None and status.api_level not in SUPPORTED_API_LEVELS:
        return (
            f"The plugin speaks contract API level {status.api_level}; this hwabstract "
            f"({hw.__version__}) speaks {levels}. Install a version of {package} built for "
            f"API level {hw.API_LEVEL}, or a hwabstract that speaks level {status.api_level}. "
            f"{hide}"
        )
    return (
        f"Reinstall {package} (pip install --force-reinstall ...) and check that the "
        f"installed version speaks contract API level {hw.API_LEVEL}; if it still fails, "
        f"report the reason above to the plugin's maintainers. {hide}"
    )


def _vendor_stacks() -> list[dict[str, Any]]:
    try:
        owners = md.packages_distributions()
    except Exception as exc:  # broken metadata must not stop the doctor
        print(f"note: could not read installed package metadata: {exc}", file=sys.stderr)
        owners = {}
    stacks = []
    for module, used_by in VENDOR_STACKS:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        version = None
        if found:
            for dist in owners.get(module, []):
                try:
                    version = md.version(dist)
                    break
                except md.PackageNotFoundError:
                    continue
        stacks.append(
            {"module": module, "used_by": used_by, "importable": found, "version": version}
        )
    return stacks


def _environment(statuses: Sequence[BackendStatus]) -> dict[str, tuple[str | None, str]]:
    """Every variable the core and the discovered backends declare, and any other
    ``HWABSTRACT_*`` variable that is set: name -> (value or None, what it does)."""
    meanings = dict(ENVIRONMENT)
    for status in statuses:
        for name, meaning in status.environment:
            meanings.setdefault(name, f"{status.name}: {meaning}")
    names = list(meanings) + sorted(
        n for n in os.environ if n.startswith("HWABSTRACT_") and n not in meanings
    )
    return {name: (os.environ.get(name), meanings.get(name, "")) for name in names}


def _backend_diagnoses(statuses: Sequence[BackendStatus]) -> str:
    """One block per backend: name, status and what it has (ok) or why not and what to do."""
    name_w = max((len(s.name) for s in statuses), default=0)
    status_w = max((len(s.status) for s in statuses), default=0)
    indent = " " * (2 + name_w + 2 + status_w + 2)
    width = max(40, _WIDTH - len(indent))
    lines = []
    for s in statuses:
        if s.ok:
            standin = ", stand-in devices" if s.standin else ""
            text = (
                f"{s.device_count} device(s){standin}; {s.distribution or '?'} "
                f"{s.version or '?'}, API level {s.api_level}"
            )
        else:
            plugin = f" (plugin {s.plugin!r})" if s.plugin != s.name else ""
            text = f"{_cell(s.reason)}{plugin}"
        wrapped = textwrap.wrap(text, width) or [""]
        lines.append(f"  {s.name.ljust(name_w)}  {s.status.ljust(status_w)}  {wrapped[0]}")
        lines.extend(indent + w for w in wrapped[1:])
        if not s.ok:
            for w in textwrap.wrap(f"what to do: {advice(s)}", width):
                lines.append(indent + w)
    return "\n".join(lines)


def _isolated_default(statuses: Sequence[BackendStatus]) -> tuple[str | None, str | None]:
    """The default device as discovery would pick it, from isolated probes' rows (the host
    loads no plugin): ``HWABSTRACT_DEVICE``, else device 0 of the top-priority backend."""
    usable = {s.name: s for s in statuses if s.ok and s.device_count}
    env = os.environ.get("HWABSTRACT_DEVICE")
    if env:
        name, _, index = env.strip().partition(":")
        status = usable.get(name)
        if status is None or not (index or "0").isdigit() or int(index or 0) >= status.device_count:
            return None, f"HWABSTRACT_DEVICE={env!r} names no usable device"
        return f"{name}:{int(index or 0)}", None
    if not usable:
        return None, "no working backend is installed; the reasons are listed above"
    return f"{next(iter(usable.values())).name}:0", None


def _pjrt_status() -> str:
    """Whether the PJRT backends (tpu, trainium) run their launch's steady state compiled:
    ``hwabstract.backends.pjrt.FAST_STATUS`` (importing that module imports no jax)."""
    from .backends import pjrt

    return pjrt.FAST_STATUS


def cmd_doctor(args: argparse.Namespace) -> int:
    default_device: str | None = None
    default_error: str | None = None
    if args.isolate:
        from .isolated_probe import probe_isolated, probe_timeout

        statuses = sorted(
            probe_isolated(args.timeout), key=lambda s: (not s.ok, -s.priority, s.name)
        )
        default_device, default_error = _isolated_default(statuses)
    else:
        statuses = get_registry().backends()
        try:
            default_device = hw.device().name
        except HwAbstractError as exc:
            default_error = str(exc)
    working = [s for s in statuses if s.ok]
    healthy = bool(working) and default_error is None
    python = f"{platform.python_version()} ({platform.python_implementation()})"
    environment = _environment(statuses)
    stacks = _vendor_stacks()
    report: dict[str, Any] = {
        "ok": healthy,
        "hwabstract_version": hw.__version__,
        "api_level": hw.API_LEVEL,
        "supported_api_levels": sorted(SUPPORTED_API_LEVELS),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "default_device": default_device,
        "default_device_error": default_error,
        "isolated": bool(args.isolate),
        "backends": [{**_backend_dict(s), "advice": advice(s)} for s in statuses],
        "environment": {name: value for name, (value, _) in environment.items()},
        "vendor_stacks": stacks,
        "dispatch": _compiled.STATUS,
        "pjrt_launch": _pjrt_status(),
    }
    if args.json:
        _print_json(report)
        return EXIT_OK if healthy else EXIT_PROBLEM

    print(
        f"hwabstract {hw.__version__} (contract API level {hw.API_LEVEL}) on Python {python}, "
        f"{platform.system()} {platform.machine()}"
    )
    isolation = (
        f" (each plugin probed in its own process, within {probe_timeout(args.timeout):g} s)"
        if args.isolate
        else ""
    )
    print(f"dispatch: {_compiled.STATUS}")
    print(f"PJRT backends' launch: {_pjrt_status()}")
    print(f"\nbackends: {len(working)} of {len(statuses)} usable{isolation}")
    print(_backend_diagnoses(statuses))
    print()
    if default_error is None:
        print(f"default device: {default_device}")
    else:
        _say(f"default device: PROBLEM: {default_error}")

    print("\nenvironment")
    print(
        format_table(
            ("VARIABLE", "VALUE", "MEANING"),
            [
                (name, "(unset)" if value is None else value, meaning)
                for name, (value, meaning) in environment.items()
            ],
        )
    )
    print("\nvendor stacks (located with importlib.util.find_spec; none is imported)")
    print(
        format_table(
            ("MODULE", "IMPORTABLE", "VERSION", "USED BY"),
            [(v["module"], v["importable"], v["version"], v["used_by"]) for v in stacks],
        )
    )
    print()
    if healthy:
        print(
            f"verdict: ok, {len(working)} backend(s) usable; the default device is {default_device}"
        )
    elif not working:
        print("verdict: PROBLEM: no backend works; see the reasons above")
    else:
        print("verdict: PROBLEM: the default device cannot be resolved; fix HWABSTRACT_DEVICE")
    return EXIT_OK if healthy else EXIT_PROBLEM


# -- demo -----------------------------------------------------------------------------------------

_CONFORMANCE_NOTE = (
    "conformance: the demo checks one block against NumPy; `hwabstract conformance` "
    "certifies every kernel, dtype and feature a device declares (the main job, `tox -e "
    "demo`, runs both)."
)


def _number(value: float | None, fmt: str) -> str | None:
    return None if value is None else format(value, fmt)


def _event_cell(ran: bool, event_ms: float | None) -> str | None:
    if not ran:
        return None
    return "no timing" if event_ms is None else format(event_ms, ".1f")


def _say(text: str) -> None:
    """Print a paragraph wrapped to the terminal width the tables assume."""
    print(textwrap.fill(text, _WIDTH, subsequent_indent="  "))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo

    config = DemoConfig(batches=args.batches, seed=args.seed)
    result = run_demo(args.device, config=config, tolerance=args.tolerance)
    if args.json:
        _print_json(result.to_dict())
        return EXIT_OK if result.ok else EXIT_PROBLEM
    _print_demo(result)
    return EXIT_OK if result.ok else EXIT_PROBLEM


def _print_demo(result: Any) -> None:
    """The demo's table, notes and verdict (``hwabstract demo``, ``hwabstract main-job``)."""
    c = result.config
    _say(
        f"hwabstract demo: a transformer block (layer_norm, matmul, softmax, gelu) on "
        f"{c.batches} batches of {c.batch_size}x{c.seq_len}x{c.d_model} float32. On each "
        "device an upload stream sends batch i+1 while a compute stream works on batch i, "
        "ordered by events."
    )
    print()
    base = result.baseline or "baseline"
    if result.runs:
        rows = [
            (
                r.device,
                r.description,
                _standin_text(r.standin, r.standin_for),
                r.status,
                _number(r.max_abs_error, ".1e"),
                _number(r.max_abs_diff_baseline, ".1e"),
                _number(r.wall_ms, ".1f"),
                _event_cell(r.ran, r.event_ms),
                _number(r.modeled_ms, ".3f") if r.ran else None,
            )
            for r in result.runs
        ]
        headers = (
            "DEVICE", "DESCRIPTION", "STAND-IN", "STATUS", "MAX ERR VS NUMPY", f"VS {base}",
            "WALL ms", "EVENT ms", "MODELED ms",
        )  # fmt: skip
        print(format_table(headers, rows, right=(4, 5, 6, 7, 8)))
        notes = [(r.device, r.reason) for r in result.runs if r.reason]
        if notes:
            print()
            for device, reason in notes:
                _say(f"{device}: {reason}")
        print()
    _say(
        f"tolerance: max abs error <= {result.tolerance:g} against float64 NumPy and against "
        f"{base}. WALL: host time for uploads, compute and download. EVENT: device time "
        "between two events on the compute stream, where the device declares event timing. "
        "MODELED: what the modeled hardware would take between the same events, where the "
        "device models it (an emulator's performance model, not a measurement)."
    )
    _say(_CONFORMANCE_NOTE)
    if not result.runs:
        _say("result: FAILED: no devices to run on; run `hwabstract doctor` to see why")
    elif result.ok:
        ran = sum(1 for r in result.runs if r.ran)
        skipped = len(result.runs) - ran
        extra = f" ({skipped} skipped: see above)" if skipped else ""
        _say(f"result: ok, {ran} device(s) agree{extra}")
    else:
        bad = [r.device for r in result.runs if r.status in ("mismatch", "error")]
        _say(f"result: FAILED on {', '.join(bad) or 'every device (none could run)'}")


# -- main-job -------------------------------------------------------------------------------------


def cmd_main_job(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .conformance.runner import run_conformance
    from .demo import DemoConfig, run_demo
    from .main_job import write_main_job_report

    report_dir = Path(args.report_dir)
    print("== devices")
    cmd_devices(argparse.Namespace(backend=None, json=False))
    print("\n== the portable demo")
    result = run_demo(None, config=DemoConfig(batches=args.batches, seed=args.seed))
    _print_demo(result)
    print("\n== the conformance matrix")
    combined = report_dir / "conformance.json"
    combined.unlink(missing_ok=True)  # (a run that stops early writes none: show no stale one)
    conformance_status = run_conformance(args.backend, report_dir, jobs=args.jobs)
    reports = json.loads(combined.read_text(encoding="utf-8")) if combined.exists() else []
    ok = result.ok and conformance_status == EXIT_OK
    page = write_main_job_report(
        report_dir,
        ok=ok,
        backends=hw.backends(),
        devices=hw.devices(),
        demo=result,
        reports=reports,
    )
    print()
    _say(
        f"main job: {'PASSED' if ok else 'FAILED'}; report: {page} (the demo, a timeline of "
        "the queues of every device that models time, and the conformance matrix)"
    )
    return EXIT_OK if ok else EXIT_PROBLEM


def _areas() -> tuple[str, ...]:
    from .conformance import AREAS

    return AREAS


def cmd_conformance(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .conformance.runner import run_conformance

    return run_conformance(
        args.backend,
        Path(args.report_dir) if args.report_dir else None,
        device=args.device,
        expectations=args.expectations,
        plugins=[str(Path(p).resolve()) if p.endswith(".py") else p for p in args.plugin],
        areas=args.area,
        select=args.select,
        allow_unavailable=args.allow_unavailable,
        json_output=args.json,
        jobs=args.jobs,
    )


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from .plugin_template import generate_plugin, plugin_tokens

    target, written = generate_plugin(args.name, args.output)
    tokens = plugin_tokens(args.name)
    if args.json:
        _print_json(
            {
                "name": args.name,
                "package": tokens["package"],
                "distribution": tokens["distribution"],
                "api_level": hw.API_LEVEL,
                "path": str(target.resolve()),
                "files": written,
            }
        )
        return EXIT_OK
    print(
        f"created {tokens['distribution']} in {target} (the {args.name} backend, contract API "
        f"level {hw.API_LEVEL}):"
    )
    for path in written:
        print(f"  {path}")
    backend_file = f"src/{tokens['package']}/backend.py"
    _say(
        f"next: cd {target}; pip install -e '.[test,conformance]'; pytest; hwabstract "
        f"conformance {args.name}. Then replace the parts of {backend_file} marked VENDOR: "
        "with calls into your driver (README.md says how), keeping `tox` green."
    )
    return EXIT_OK


# -- the parser -----------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwabstract",
        description="Inspect hwabstract backends and devices, diagnose plugins, run the "
        "portable demo and the conformance suite.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"hwabstract {hw.__version__} (contract API level {hw.API_LEVEL})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_text: str) -> Any:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.set_defaults(func=fn)
        return p

    add("backends", cmd_backends, "every discovered backend and its status")
    p = add("devices", cmd_devices, "the devices of every working backend")
    p.add_argument("--backend", metavar="NAME", help="only this backend's devices")
    p = add("info", cmd_info, "a device's info, capability manifest and memory")
    p.add_argument("device", metavar="DEVICE", help="a device spec, e.g. cpu or cpu:0")
    p = add("doctor", cmd_doctor, "why each backend is or is not usable, and what to do")
    p.add_argument(
        "--isolate",
        action="store_true",
        help="probe each plugin in its own subprocess, so one that crashes or hangs cannot "
        "take this process down (it is reported as failed, with the signal or the timeout)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="with --isolate: how long each plugin's probe may take (default: "
        "HWABSTRACT_PROBE_TIMEOUT, else 60)",
    )
    p = add(
        "conformance",
        cmd_conformance,
        "certify backends with the conformance suite and write reports",
    )
    p.add_argument(
        "backend",
        nargs="*",
        metavar="BACKEND",
        help="backends to certify (default: every discovered backend)",
    )
    p.add_argument(
        "--report-dir", metavar="DIR", help="write JSON, JUnit XML, Markdown and HTML reports"
    )
    p.add_argument("--device", metavar="SPEC", help="the device to certify (default NAME:0)")
    p.add_argument(
        "--expectations",
        metavar="FILE",
        help="known failures, each with a reason (default: the backend's own file)",
    )
    p.add_argument(
        "--plugin",
        metavar="MODULE",
        action="append",
        default=[],
        help="load a plugin that is not installed (module name or .py file)",
    )
    p.add_argument(
        "--area",
        action="append",
        default=[],
        metavar="AREA",
        help="run only this area (repeatable): " + ", ".join(_areas()),
    )
    p.add_argument("-k", "--select", metavar="EXPR", help="only tests matching (pytest -k)")
    p.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run each backend's areas in up to N processes at once, one report merged from "
        "them (default 1: one process per backend)",
    )
    p.add_argument(
        "--allow-unavailable",
        action="store_true",
        help="exit 0 when a named backend is unavailable here (still reported)",
    )
    p = add(
        "main-job",
        cmd_main_job,
        "the main job: the devices, the portable demo and the conformance matrix on every "
        "available backend, with an HTML report",
    )
    p.add_argument(
        "--report-dir",
        default=os.path.join("reports", "main-job"),
        metavar="DIR",
        help="where the report goes (default reports/main-job; index.html is the page)",
    )
    p.add_argument(
        "--backend",
        metavar="NAME",
        nargs="+",
        action="extend",
        default=[],
        help="certify these backends only (default: every installed backend)",
    )
    p.add_argument(
        "--jobs", "-j", type=_positive_int, default=1, metavar="N",
        help="conformance processes per backend (default 1)",
    )  # fmt: skip
    p.add_argument("--batches", type=_positive_int, default=4, help="demo batches (default 4)")
    p.add_argument("--seed", type=int, default=0, help="demo random seed (default 0)")
    p = add(
        "new-plugin",
        cmd_new_plugin,
        "generate a backend plugin project from the template (hwabstract-NAME), ready for "
        "a vendor's driver calls",
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help="the plugin and backend name: lowercase letters, digits and underscores",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="the project directory to create; must not exist or be empty "
        "(default: ./hwabstract-NAME)",
    )
    p = add("demo", cmd_demo, "run the portable demo on every available device")
    p.add_argument(
        "--device",
        metavar="SPEC",
        nargs="+",
        action="extend",
        help="run on these devices only (repeatable; default: every available device)",
    )
    p.add_argument("--batches", type=_positive_int, default=4, help="batches (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="largest max-abs error that counts as agreement (default 1e-3)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 problem found, 2 error)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "tolerance", 0) is None:
        from .demo import DEFAULT_TOLERANCE

        args.tolerance = DEFAULT_TOLERANCE
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return status
    except HwAbstractError as exc:
        print(f"hwabstract: error: {_cell(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`hwabstract info cpu:0 | head`): stop quietly, as Unix tools
        # do. Point stdout at /dev/null so the interpreter's final flush does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # as a process killed by SIGPIPE reports it
