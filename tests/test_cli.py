"""The ``hwabstract`` command: every subcommand as a table and as JSON, doctor's diagnoses,
and SDK errors as one line on stderr with exit status 2."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hwabstract as hw
from hwabstract import _compiled, cli
from hwabstract.backends import pjrt
from hwabstract.backends.cpu import CpuBackend
from hwabstract.errors import BackendUnavailableError
from hwabstract.registry import PluginSource, Registry, reset_registry

ENV_VARS = (
    "HWABSTRACT_DEVICE",
    "HWABSTRACT_PLUGINS",
    "HWABSTRACT_DISABLE_PLUGINS",
    "HWABSTRACT_CPU_DEVICES",
    "HWABSTRACT_CPU_MEMORY",
)


def cpu_source() -> PluginSource:
    return PluginSource(
        "cpu",
        lambda: importlib.import_module("hwabstract.backends.cpu"),
        "hwabstract",
        hw.__version__,
    )


class NoDriverBackend(CpuBackend):
    name = "nodriver"

    def probe(self) -> None:
        raise BackendUnavailableError("nodriver", "no NoDriver device driver is loaded")


class FutureBackend(CpuBackend):
    name = "future"
    api_level = 99


class StandinBackend(CpuBackend):
    name = "standin"

    def device_info(self, index: int) -> hw.DeviceInfo:
        return hw.DeviceInfo(
            name="Model X (stand-in: host CPU)",
            vendor="Example",
            model="Model X",
            memory_capacity=2 * 1024**3,
            standin=True,
            standin_for="Example Model X",
            modeled_memory_capacity=96 * 1024**3,
        )


def plugin_for(*classes: type[hw.Backend]) -> object:
    class Plugin:
        @hw.hookimpl
        def hwabstract_backends(self) -> list[type[hw.Backend]]:
            return list(classes)

    return Plugin()


def broken_import() -> object:
    raise ImportError("No module named 'brokenvendor_runtime'")


def sources() -> list[PluginSource]:
    return [
        cpu_source(),
        PluginSource("broken", broken_import, "hwabstract-broken", "1.0"),
        PluginSource("nodriver", lambda: plugin_for(NoDriverBackend), "hwabstract-nodriver", "2.0"),
        PluginSource("future", lambda: plugin_for(FutureBackend), "hwabstract-future", "9.0"),
        PluginSource("standin", lambda: plugin_for(StandinBackend), "hwabstract-standin", "0.3"),
        PluginSource("muted", lambda: plugin_for(), "hwabstract-muted", "0.1"),
    ]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def install(registry: Registry) -> Iterator[Registry]:
    old = reset_registry(registry)
    try:
        yield registry
    finally:
        reset_registry(old)


@pytest.fixture
def cpu_only() -> Iterator[Registry]:
    yield from install(Registry(sources=[cpu_source()]))


@pytest.fixture
def mixed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """cpu, a plugin that fails to import, one that is unavailable, one at a future API
    level, a stand-in, and one disabled through HWABSTRACT_DISABLE_PLUGINS."""
    monkeypatch.setenv("HWABSTRACT_DISABLE_PLUGINS", "muted")
    yield from install(Registry(sources=sources()))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out, err = run(capsys, *argv, "--json")
    assert err == ""
    return code, json.loads(out)


# -- formatting ---------------------------------------------------------------------------------


def test_format_table_aligns_columns_and_right_aligns_numbers() -> None:
    text = cli.format_table(("NAME", "N"), [("a", 1), ("longer", 100), ("c", None)], right=(1,))
    lines = text.splitlines()
    assert lines == [
        "NAME      N",
        "------  ---",
        "a         1",
        "longer  100",
        "c         -",
    ]


def test_format_table_keeps_each_row_on_one_line() -> None:
    text = cli.format_table(("A", "B"), [("x", "two\nlines")])
    assert text.splitlines()[-1] == "x  two lines"


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (25276510208, "23.5 GiB"), (None, "-")],
)
def test_format_bytes(n: int | None, text: str) -> None:
    assert cli.format_bytes(n) == text


def test_describe_dtypes_names_whole_kinds() -> None:
    assert cli.describe_dtypes(hw.all_dtypes()) == "all 17 dtypes"
    assert cli.describe_dtypes([hw.int8, hw.int16, hw.int32, hw.int64, hw.float32]) == (
        "signed ints, float32"
    )
    assert cli.describe_dtypes([]) == "(none)"


# -- backends -----------------------------------------------------------------------------------


def test_backends_table(capsys: pytest.CaptureFixture[str], mixed: Registry) -> None:
    code, out, err = run(capsys, "backends")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == [
        "BACKEND", "STATUS", "DEVICES", "API", "PLUGIN", "DISTRIBUTION", "VERSION",
        "STAND-IN", "REASON",
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"cpu", "standin", "broken", "nodriver", "future", "muted"}
    assert rows["cpu"].split()[:8] == [
        "cpu",
        "ok",
        "1",
        "1",
        "cpu",
        "hwabstract",
        hw.__version__,
        "no",
    ]
    assert rows["standin"].split()[:8] == [
        "standin", "ok", "1", "1", "standin", "hwabstract-standin", "0.3", "yes",
    ]  # fmt: skip
    assert "failed" in rows["broken"] and "brokenvendor_runtime" in rows["broken"]
    assert "unavailable" in rows["nodriver"] and "no NoDriver device driver" in rows["nodriver"]
    assert "failed" in rows["future"] and " 99 " in rows["future"]
    assert "disabled" in rows["muted"] and "HWABSTRACT_DISABLE_PLUGINS" in rows["muted"]


def test_backends_json(capsys: pytest.CaptureFixture[str], mixed: Registry) -> None:
    code, data = run_json(capsys, "backends")
    assert code == 0
    by_name = {b["name"]: b for b in data["backends"]}
    assert set(by_name["cpu"]) == {
        "name", "status", "device_count", "api_level", "plugin", "distribution", "version",
        "priority", "standin", "reason",
    }  # fmt: skip
    assert by_name["cpu"]["status"] == "ok"
    assert by_name["cpu"]["device_count"] == 1
    assert by_name["cpu"]["api_level"] == hw.API_LEVEL
    assert by_name["cpu"]["reason"] is None
    assert by_name["standin"]["standin"] is True
    assert by_name["broken"]["status"] == "failed"
    assert by_name["nodriver"]["status"] == "unavailable"
    assert by_name["nodriver"]["reason"] == "no NoDriver device driver is loaded"
    assert by_name["future"]["api_level"] == 99
    assert by_name["muted"]["status"] == "disabled"


def test_python_m_hwabstract_backends_json() -> None:
    env_free = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    proc = subprocess.run(
        [sys.executable, "-m", "hwabstract", "backends", "--json"],
        capture_output=True,
        text=True,
        env=env_free,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    cpu = next(b for b in data["backends"] if b["name"] == "cpu")
    assert cpu["status"] == "ok" and cpu["device_count"] == 1


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"hwabstract {hw.__version__} (contract API level {hw.API_LEVEL})"
    )


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2
    assert "usage: hwabstract" in capsys.readouterr().err


# -- devices ------------------------------------------------------------------------------------


def test_devices_table(capsys: pytest.CaptureFixture[str], mixed: Registry) -> None:
    code, out, _ = run(capsys, "devices")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["DEVICE", "DESCRIPTION", "VENDOR", "MODEL", "MEMORY", "STAND-IN"]
    assert lines[2].startswith("cpu:0 ") or lines[3].startswith("cpu:0 ")
    standin = next(line for line in lines if line.startswith("standin:0"))
    assert "2.0 GiB" in standin
    assert standin.rstrip().endswith("yes, for Example Model X")


def test_devices_json_and_backend_filter(
    capsys: pytest.CaptureFixture[str], mixed: Registry
) -> None:
    code, data = run_json(capsys, "devices", "--backend", "standin")
    assert code == 0
    assert data == {
        "devices": [
            {
                "name": "standin:0",
                "backend": "standin",
                "index": 0,
                "description": "Model X (stand-in: host CPU)",
                "vendor": "Example",
                "model": "Model X",
                "memory_capacity": 2 * 1024**3,
                "standin": True,
                "standin_for": "Example Model X",
            }
        ]
    }


def test_devices_of_an_unavailable_backend_is_an_error(
    capsys: pytest.CaptureFixture[str], mixed: Registry
) -> None:
    code, out, err = run(capsys, "devices", "--backend", "nodriver")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("hwabstract: error: backend 'nodriver' is unavailable")


# -- info ---------------------------------------------------------------------------------------


def test_info_table(capsys: pytest.CaptureFixture[str], cpu_only: Registry) -> None:
    code, out, _ = run(capsys, "info", "cpu:0")
    assert code == 0
    device = hw.device("cpu:0")
    assert out.startswith(f"cpu:0: {device.info.name}\n")
    for section in ("\ncapabilities\n", "\nkernels (", "\nmemory\n"):
        assert section in out
    assert "native dtypes    all 17 dtypes" in out
    assert "event_timing" in out
    # every declared kernel is listed, under the dtypes it is declared for
    for name in device.capabilities.kernels:
        assert f" {name}," in out or f" {name}\n" in out, name
    assert "  real floats:\n" in out  # softmax, gelu, ... are declared for the real floats


def test_info_json(capsys: pytest.CaptureFixture[str], cpu_only: Registry) -> None:
    code, data = run_json(capsys, "info", "cpu")
    assert code == 0
    assert set(data) == {"device", "backend", "index", "info", "capabilities", "memory"}
    assert (data["device"], data["backend"], data["index"]) == ("cpu:0", "cpu", 0)
    device = hw.device("cpu:0")
    assert data["info"]["name"] == device.info.name
    assert data["info"]["standin"] is False
    caps = data["capabilities"]
    assert set(caps) == {"dtypes", "features", "limits", "kernels"}
    assert caps["dtypes"]["bfloat16"] == "native"
    assert list(caps["dtypes"]) == [d.name for d in hw.all_dtypes()]
    assert "event_timing" in caps["features"]
    assert caps["limits"]["max_dims"] == device.capabilities.limits.max_dims
    assert caps["kernels"]["softmax"] == [
        "float8_e4m3fn", "float8_e5m2", "bfloat16", "float16", "float32", "float64",
    ]  # fmt: skip
    assert set(caps["kernels"]) == set(device.capabilities.kernels)
    assert set(data["memory"]) == {
        "in_use", "peak", "capacity", "free", "allocations", "largest_free_block",
    }  # fmt: skip


def test_info_of_a_standin_says_so(capsys: pytest.CaptureFixture[str], mixed: Registry) -> None:
    code, out, _ = run(capsys, "info", "standin:0")
    assert code == 0
    fields = {
        line.split()[0]: " ".join(line.split()[1:])
        for line in section(out, "  vendor").splitlines()
    }
    assert fields["stand-in"] == "yes, for Example Model X"
    assert fields["memory"] == "2.0 GiB (2,147,483,648 B); the modeled chip has 96.0 GiB"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "nope:0"], "no backend named 'nope' is installed"),
        (["info", "cpu:7"], "device 'cpu:7' does not exist"),
        (["info", "cpu:x"], "bad device spec 'cpu:x'"),
        (["info", "cpu:0", "--json"], None),
    ],
)
def test_sdk_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], cpu_only: Registry, argv: list[str], message: str | None
) -> None:
    code, out, err = run(capsys, *argv)
    if message is None:  # the control case: a valid call succeeds
        assert code == 0 and err == ""
        return
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"hwabstract: error: {message}")
    assert "Traceback" not in err


# -- doctor -------------------------------------------------------------------------------------


def section(text: str, start: str) -> str:
    """The lines of ``text`` from the one starting with ``start`` to the next blank line."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(start))
    out = []
    for line in lines[i:]:
        if not line.strip():
            break
        out.append(line)
    return "\n".join(out)


def backend_block(text: str, name: str) -> str:
    """The doctor's block for one backend, its wrapped lines joined into one."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f"  {name} "))
    block = [lines[i]]
    for line in lines[i + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


def test_doctor_healthy(capsys: pytest.CaptureFixture[str], cpu_only: Registry) -> None:
    code, out, err = run(capsys, "doctor")
    assert code == 0 and err == ""
    assert out.startswith(f"hwabstract {hw.__version__} (contract API level {hw.API_LEVEL})")
    assert "backends: 1 of 1 usable" in out
    assert (
        backend_block(out, "cpu") == f"cpu ok 1 device(s); hwabstract {hw.__version__}, API level 1"
    )
    assert "default device: cpu:0" in out
    assert f"\ndispatch: {_compiled.STATUS}\n" in out
    assert f"\nPJRT backends' launch: {pjrt.FAST_STATUS}\n" in out
    assert out.rstrip().endswith("verdict: ok, 1 backend(s) usable; the default device is cpu:0")


def test_doctor_explains_each_problem(capsys: pytest.CaptureFixture[str], mixed: Registry) -> None:
    code, out, _ = run(capsys, "doctor")
    assert code == 0  # cpu and the stand-in work
    assert "backends: 2 of 6 usable" in out
    assert backend_block(out, "standin").startswith("standin ok 1 device(s), stand-in devices;")
    broken = backend_block(out, "broken")
    assert broken.startswith("broken failed plugin failed to import: ImportError: No module named")
    assert "what to do: Reinstall hwabstract-broken" in broken
    assert f"speaks contract API level {hw.API_LEVEL}" in broken
    nodriver = backend_block(out, "nodriver")
    assert nodriver.startswith("nodriver unavailable no NoDriver device driver is loaded")
    assert "HWABSTRACT_DISABLE_PLUGINS=nodriver" in nodriver
    future = backend_block(out, "future")
    assert "speaks contract API level 99" in future
    assert "built for API level 1" in future
    muted = backend_block(out, "muted")
    assert muted.startswith("muted disabled listed in HWABSTRACT_DISABLE_PLUGINS")
    assert "HWABSTRACT_DISABLE_PLUGINS='muted' disables it; remove 'muted'" in muted


def test_doctor_reports_environment_and_vendor_stacks(
    capsys: pytest.CaptureFixture[str], cpu_only: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HWABSTRACT_CPU_MEMORY", "1GiB")
    monkeypatch.setenv("HWABSTRACT_TPU_STANDIN", "cpu")
    before = set(sys.modules)
    code, out, _ = run(capsys, "doctor")
    assert code == 0
    env = section(out, "VARIABLE")
    rows = {line.split()[0]: line.split()[1] for line in env.splitlines()[2:]}
    assert rows["HWABSTRACT_CPU_MEMORY"] == "1GiB"
    assert rows["HWABSTRACT_DEVICE"] == "(unset)"
    assert rows["HWABSTRACT_PLUGINS"] == "(unset)"
    assert rows["HWABSTRACT_DISABLE_PLUGINS"] == "(unset)"
    assert rows["HWABSTRACT_CPU_DEVICES"] == "(unset)"
    assert rows["HWABSTRACT_TPU_STANDIN"] == "cpu"  # any other HWABSTRACT_* variable too
    meanings = {line.split()[0]: line for line in env.splitlines()[2:]}
    # the cpu backend's own variables come from its Backend.environment declaration
    assert "cpu: how many cpu devices to expose" in meanings["HWABSTRACT_CPU_DEVICES"]
    stacks = section(out, "MODULE")
    listed = {line.split()[0] for line in stacks.splitlines()[2:]}
    assert listed == {module for module, _ in cli.VENDOR_STACKS}
    # found with find_spec, never imported
    vendor = {module for module, _ in cli.VENDOR_STACKS}
    assert not (set(sys.modules) - before) & vendor


def test_doctor_json(capsys: pytest.CaptureFixture[str], mixed: Registry) -> None:
    code, data = run_json(capsys, "doctor")
    assert code == 0
    assert set(data) == {
        "ok", "hwabstract_version", "api_level", "supported_api_levels", "python_version",
        "python_implementation", "platform", "default_device", "default_device_error",
        "backends", "environment", "vendor_stacks", "isolated", "dispatch", "pjrt_launch",
    }  # fmt: skip
    assert data["dispatch"] == _compiled.STATUS  # compiled, or pure Python and why
    assert data["pjrt_launch"] == pjrt.FAST_STATUS
    assert data["ok"] is True
    assert data["isolated"] is False
    assert data["hwabstract_version"] == hw.__version__
    assert data["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert data["default_device"] == "cpu:0"
    by_name = {b["name"]: b for b in data["backends"]}
    assert by_name["cpu"]["advice"] is None
    assert "Reinstall hwabstract-broken" in by_name["broken"]["advice"]
    assert by_name["muted"]["status"] == "disabled"
    assert data["environment"]["HWABSTRACT_DISABLE_PLUGINS"] == "muted"
    assert data["environment"]["HWABSTRACT_DEVICE"] is None
    stacks = {s["module"]: s for s in data["vendor_stacks"]}
    assert set(stacks) == {module for module, _ in cli.VENDOR_STACKS}
    assert all(isinstance(s["importable"], bool) for s in stacks.values())


def test_doctor_fails_when_no_backend_works(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HWABSTRACT_PLUGINS", "nodriver")
    for _registry in install(Registry(sources=sources())):
        code, out, _ = run(capsys, "doctor")
        assert code == 1
        assert "backends: 0 of 6 usable" in out
        cpu = backend_block(out, "cpu")
        assert cpu.startswith("cpu disabled not in HWABSTRACT_PLUGINS")
        assert "HWABSTRACT_PLUGINS='nodriver' does not list it; add 'cpu'" in cpu
        assert "verdict: PROBLEM: no backend works" in out
        code, data = run_json(capsys, "doctor")
        assert code == 1 and data["ok"] is False and data["default_device"] is None


def test_doctor_flags_a_bad_default_device(
    capsys: pytest.CaptureFixture[str], cpu_only: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HWABSTRACT_DEVICE", "cpu:5")
    code, out, _ = run(capsys, "doctor")
    assert code == 1
    line = " ".join(section(out, "default device:").split())
    assert line.startswith("default device: PROBLEM:")
    assert "'cpu:5'" in line and "does not exist" in line
    assert "verdict: PROBLEM: the default device cannot be resolved" in out


# -- demo ---------------------------------------------------------------------------------------


def test_demo_table(capsys: pytest.CaptureFixture[str], cpu_only: Registry) -> None:
    code, out, _ = run(capsys, "demo", "--batches", "2")
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("DEVICE"))
    assert lines[header].split()[:4] == ["DEVICE", "DESCRIPTION", "STAND-IN", "STATUS"]
    row = lines[header + 2]
    assert row.startswith("cpu:0 ")
    assert " no " in row and " ok " in row
    assert "`hwabstract conformance`" in out
    assert out.rstrip().endswith("result: ok, 1 device(s) agree")


def test_demo_json(capsys: pytest.CaptureFixture[str], cpu_only: Registry) -> None:
    code, data = run_json(capsys, "demo", "--device", "cpu:0", "--batches", "1")
    assert code == 0
    assert data["ok"] is True and data["baseline"] == "cpu:0"
    assert data["config"]["batches"] == 1
    (run_,) = data["devices"]
    assert run_["device"] == "cpu:0" and run_["status"] == "ok"
    assert run_["max_abs_error"] <= data["tolerance"]
    assert run_["event_ms"] is not None  # the cpu backend declares event timing


def test_demo_exits_1_when_a_device_disagrees(
    capsys: pytest.CaptureFixture[str], cpu_only: Registry
) -> None:
    # float32 cannot match a float64 computation exactly, so a zero tolerance must fail
    code, out, _ = run(capsys, "demo", "--batches", "1", "--tolerance", "0")
    assert code == 1
    assert "mismatch" in out
    assert "result: FAILED on cpu:0" in out


def test_demo_of_an_unknown_device_is_an_sdk_error(
    capsys: pytest.CaptureFixture[str], cpu_only: Registry
) -> None:
    code, out, err = run(capsys, "demo", "--device", "nope")
    assert code == 2 and out == ""
    assert err.startswith("hwabstract: error: no backend named 'nope'")
    assert err.count("\n") == 1


def test_a_reader_closing_the_pipe_early_gets_no_traceback() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written (like `| head -0`)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hwabstract", "info", "cpu:0"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr
    assert proc.returncode == 141


# -- new-plugin ---------------------------------------------------------------------------------


def test_new_plugin_generates_the_project_and_says_what_next(
    capsys: pytest.CaptureFixture[str], mixed: Registry, tmp_path: Path
) -> None:
    target = tmp_path / "plugin"
    code, out, err = run(capsys, "new-plugin", "vendorx", "--output", str(target))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == (
        f"created hwabstract-vendorx in {target} (the vendorx backend, contract API level "
        f"{hw.API_LEVEL}):"
    )
    assert "  src/hwabstract_vendorx/backend.py" in lines and "  tox.ini" in lines
    assert "hwabstract conformance vendorx" in " ".join(lines)
    assert (target / "src" / "hwabstract_vendorx" / "backend.py").is_file()


def test_new_plugin_json(
    capsys: pytest.CaptureFixture[str], cpu_only: Registry, tmp_path: Path
) -> None:
    code, data = run_json(capsys, "new-plugin", "vendorx", "--output", str(tmp_path / "p"))
    assert code == 0
    assert data == {
        "name": "vendorx",
        "package": "hwabstract_vendorx",
        "distribution": "hwabstract-vendorx",
        "api_level": hw.API_LEVEL,
        "path": str((tmp_path / "p").resolve()),
        "files": data["files"],
    }
    assert "pyproject.toml" in data["files"]
    assert all((tmp_path / "p" / f).is_file() for f in data["files"])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Vendor-X", "plugin name 'Vendor-X' is not valid"),
        ("cpu", "plugin name 'cpu' is the name of hwabstract's own cpu backend"),
        # a plugin that failed to import, or is disabled, still holds its name
        ("broken", "a backend or plugin named 'broken' is already installed here"),
        ("muted", "a backend or plugin named 'muted' is already installed here"),
    ],
)
def test_new_plugin_refuses_a_name_with_exit_2(
    capsys: pytest.CaptureFixture[str], mixed: Registry, tmp_path: Path, name: str, message: str
) -> None:
    code, out, err = run(capsys, "new-plugin", name, "--output", str(tmp_path / "p"))
    assert code == 2 and out == ""
    assert err.startswith(f"hwabstract: error: {message}")
    assert err.count("\n") == 1
    assert not (tmp_path / "p").exists()


def test_new_plugin_refuses_a_directory_that_is_not_empty(
    capsys: pytest.CaptureFixture[str], cpu_only: Registry, tmp_path: Path
) -> None:
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    code, out, err = run(capsys, "new-plugin", "vendorx", "--output", str(tmp_path))
    assert code == 2 and out == ""
    assert "the directory is not empty (keep.txt)" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_new_plugin_without_a_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["new-plugin"])
    assert exc.value.code == 2
    assert "the following arguments are required: NAME" in capsys.readouterr().err
