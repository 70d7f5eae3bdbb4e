"""Discovery through real entry points: bad plugins are listed with the reason and never
break the others; allow and deny lists; default device selection; device specs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import hwabstract as hw
from hwabstract import registry as registry_mod
from hwabstract.backends.cpu import CpuBackend
from hwabstract.registry import BackendStatus, PluginSource, Registry

# -- the fake plugins -----------------------------------------------------------------------------

GOOD = """
    import hwabstract as hw
    from hwabstract.backends.cpu import CpuBackend

    class GoodBackend(CpuBackend):
        name = "good"
        priority = 10

    @hw.hookimpl
    def hwabstract_backends():
        return [GoodBackend]
"""

IMPORT_FAILS = """
    raise RuntimeError("vendor runtime missing at import")
"""

EXITS_ON_IMPORT = """
    import sys

    sys.exit("vendor SDK not licensed")
"""

HOOK_RAISES = """
    import hwabstract as hw

    @hw.hookimpl
    def hwabstract_backends():
        raise ValueError("hook exploded")
"""

PROBE_CRASHES = """
    import hwabstract as hw
    from hwabstract.backends.cpu import CpuBackend

    class ProbeCrash(CpuBackend):
        name = "probecrash"

        def probe(self):
            return 1 // 0

    @hw.hookimpl
    def hwabstract_backends():
        return [ProbeCrash]
"""

UNAVAILABLE = """
    import hwabstract as hw
    from hwabstract.backends.cpu import CpuBackend

    class Unavail(CpuBackend):
        name = "unavail"

        def probe(self):
            raise hw.BackendUnavailableError("unavail", "no such accelerator on this machine")

    @hw.hookimpl
    def hwabstract_backends():
        return [Unavail]
"""

WRONG_API_LEVEL = """
    import hwabstract as hw
    from hwabstract.backends.cpu import CpuBackend

    class Future(CpuBackend):
        name = "future"
        api_level = 99

    @hw.hookimpl
    def hwabstract_backends():
        return [Future]
"""

NOT_A_BACKEND = """
    import hwabstract as hw

    class NotBackend:
        name = "notbackend"

    @hw.hookimpl
    def hwabstract_backends():
        return [NotBackend]
"""

DUPLICATE_CPU = """
    import hwabstract as hw
    from hwabstract.backends.cpu import CpuBackend

    class Impostor(CpuBackend):
        name = "cpu"
        priority = 100

    @hw.hookimpl
    def hwabstract_backends():
        return [Impostor]
"""

NO_HOOK = """
    def unrelated():
        return 1
"""

RETURNS_NONE = """
    import hwabstract as hw

    @hw.hookimpl
    def hwabstract_backends():
        return None
"""

BAD_NAME = """
    import hwabstract as hw
    from hwabstract.backends.cpu import CpuBackend

    class BadName(CpuBackend):
        name = "bad:name"

    @hw.hookimpl
    def hwabstract_backends():
        return [BadName]
"""

PLUGINS = {
    # entry-point name: (module name, source)
    "good": ("hwa_t_good", GOOD),
    "importfails": ("hwa_t_importfails", IMPORT_FAILS),
    "exits": ("hwa_t_exits", EXITS_ON_IMPORT),
    "hookraises": ("hwa_t_hookraises", HOOK_RAISES),
    "probecrash": ("hwa_t_probecrash", PROBE_CRASHES),
    "unavail": ("hwa_t_unavail", UNAVAILABLE),
    "future": ("hwa_t_future", WRONG_API_LEVEL),
    "notbackend": ("hwa_t_notbackend", NOT_A_BACKEND),
    "impostor": ("hwa_t_impostor", DUPLICATE_CPU),
    "nohook": ("hwa_t_nohook", NO_HOOK),
    "returnsnone": ("hwa_t_returnsnone", RETURNS_NONE),
    "badname": ("hwa_t_badname", BAD_NAME),
}

DIST = "hwabstract-testplugins"


@pytest.fixture
def installed(plugin_dist: Callable[..., Path]) -> Path:
    """Every fake plugin, installed as one distribution on sys.path."""
    return plugin_dist(
        DIST,
        {ep: module for ep, (module, _) in PLUGINS.items()},
        {module: source for module, source in PLUGINS.values()},
    )


def status_of(name: str, plugin: str | None = None) -> BackendStatus:
    """The one row of hw.backends() for backend ``name`` (from ``plugin`` if given)."""
    rows = [s for s in hw.backends() if s.name == name and plugin in (None, s.plugin)]
    assert len(rows) == 1, rows
    return rows[0]


# -- discovery survives bad plugins ---------------------------------------------------------------


def test_every_bad_plugin_is_listed_with_its_reason(
    installed: Path, fresh_registry: Callable[..., Registry]
) -> None:
    fresh_registry(
        HWABSTRACT_PLUGINS=None, HWABSTRACT_DISABLE_PLUGINS=None, HWABSTRACT_CPU_DEVICES=None
    )

    s = status_of("importfails")
    assert (s.status, s.distribution, s.version) == ("failed", DIST, "0.1")
    assert "plugin failed to import" in s.reason
    assert "RuntimeError: vendor runtime missing at import" in s.reason
    assert "hwa_t_importfails.py" in s.reason  # where it happened

    s = status_of("exits")  # sys.exit() in a plugin does not end the program
    assert s.status == "failed"
    assert "plugin failed to import: SystemExit: vendor SDK not licensed" in s.reason

    s = status_of("hookraises")
    assert s.status == "failed"
    assert "hwabstract_backends hook raised ValueError: hook exploded" in s.reason

    s = status_of("probecrash")
    assert (s.status, s.plugin) == ("failed", "probecrash")
    assert "probe raised ZeroDivisionError" in s.reason

    s = status_of("unavail")
    assert (s.status, s.reason) == ("unavailable", "no such accelerator on this machine")

    s = status_of("future")
    assert (s.status, s.api_level) == ("failed", 99)
    assert "contract API level 99" in s.reason and "speaks 1" in s.reason

    s = status_of("notbackend")
    assert s.status == "failed"
    assert "not a Backend subclass" in s.reason

    s = status_of("cpu", plugin="impostor")
    assert s.status == "failed"
    assert "already provided by plugin 'cpu'" in s.reason

    s = status_of("nohook")
    assert (s.status, s.reason) == ("failed", "plugin implements no hwabstract_backends hook")

    s = status_of("returnsnone")
    assert s.status == "failed"
    assert "returned None; it must return a list of Backend subclasses" in s.reason

    s = status_of("bad:name")
    assert s.status == "failed"
    assert "not usable in a device spec" in s.reason

    good = status_of("good")
    assert (good.status, good.reason, good.device_count) == ("ok", None, 1)
    assert (good.distribution, good.version, good.api_level, good.priority) == (DIST, "0.1", 1, 10)
    assert good.ok and good.to_dict()["status"] == "ok"

    cpu = status_of("cpu", plugin="cpu")
    assert (cpu.status, cpu.distribution, cpu.version) == ("ok", "hwabstract", hw.__version__)

    # working backends come first, by priority
    names = [s.name for s in hw.backends()]
    assert names.index("good") < names.index("cpu") < names.index("importfails")


def test_the_working_backends_keep_working_beside_bad_plugins(
    installed: Path, fresh_registry: Callable[..., Registry]
) -> None:
    fresh_registry(HWABSTRACT_PLUGINS=None, HWABSTRACT_DISABLE_PLUGINS=None)
    good = hw.device("good")
    assert (good.name, good.backend, good.index) == ("good:0", "good", 0)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = hw.asarray(a, device=good)
    y = hw.matmul(x, x.T)
    assert y.device is good
    np.testing.assert_array_equal(y.numpy(), a @ a.T)

    cpu = hw.device("cpu")
    z = hw.add(hw.asarray([1, 2], device=cpu), hw.asarray([3, 4], device=cpu))
    assert z.tolist() == [4, 6]
    # the impostor did not replace the reference backend
    assert type(cpu._impl).__name__ == "CpuBackend"
    assert [d.name for d in hw.devices()][:2] == ["good:0", "cpu:0"]


def test_asking_for_a_bad_backend_raises_with_the_reason(
    installed: Path, fresh_registry: Callable[..., Registry]
) -> None:
    fresh_registry(HWABSTRACT_PLUGINS=None, HWABSTRACT_DISABLE_PLUGINS=None)
    with pytest.raises(hw.PluginError, match="vendor runtime missing at import") as info:
        hw.device("importfails")
    assert "hwabstract doctor" in str(info.value)
    with pytest.raises(hw.PluginError, match="probe raised ZeroDivisionError"):
        hw.device("probecrash:0")
    with pytest.raises(hw.BackendUnavailableError, match="no such accelerator") as unavailable:
        hw.devices("unavail")
    assert (unavailable.value.backend, unavailable.value.reason) == (
        "unavail",
        "no such accelerator on this machine",
    )


def test_an_entry_point_name_declared_by_two_distributions(
    plugin_dist: Callable[..., Path], fresh_registry: Callable[..., Registry]
) -> None:
    plugin_dist("hwabstract-first", {"good": "hwa_t_good"}, {"hwa_t_good": GOOD})
    # prepended later, so it comes first on sys.path: it still must not shadow the core's
    # own "cpu" entry point
    plugin_dist(
        "hwabstract-second",
        {"good": "hwa_t_second", "cpu": "hwa_t_second"},
        {"hwa_t_second": GOOD.replace('"good"', '"second"')},
    )
    fresh_registry(HWABSTRACT_PLUGINS=None, HWABSTRACT_DISABLE_PLUGINS=None)

    rows = [s for s in hw.backends() if s.plugin in ("good", "cpu")]
    by_dist = {(s.plugin, s.distribution): s for s in rows}
    assert by_dist["cpu", "hwabstract"].status == "ok"
    impostor = by_dist["cpu", "hwabstract-second"]
    assert impostor.status == "failed"
    assert "declared by distribution 'hwabstract' too" in impostor.reason
    first, second = by_dist["good", "hwabstract-second"], by_dist["good", "hwabstract-first"]
    # sys.path order decides which one loads; the other is listed, not silently dropped
    assert {first.status, second.status} == {"ok", "failed"}
    assert hw.device("cpu").backend == "cpu"
    assert hw.device("cpu")._impl.name == "cpu"


def test_one_module_behind_two_entry_points_fails_to_register_the_second(
    plugin_dist: Callable[..., Path], fresh_registry: Callable[..., Registry]
) -> None:
    plugin_dist("hwabstract-twice", {"good": "hwa_t_good", "again": "hwa_t_good"}, {
        "hwa_t_good": GOOD
    })  # fmt: skip
    fresh_registry(HWABSTRACT_PLUGINS=None, HWABSTRACT_DISABLE_PLUGINS=None)
    assert status_of("good").ok
    again = status_of("again")
    assert again.status == "failed"
    assert "failed to register with pluggy" in again.reason


def test_unreadable_entry_points_file_is_a_failed_plugin(
    plugin_dist: Callable[..., Path], fresh_registry: Callable[..., Registry]
) -> None:
    plugin_dist("hwabstract-garbled", {}, {}, entry_points_text="[hwabstract]\nno equals sign\n")
    fresh_registry(HWABSTRACT_PLUGINS=None, HWABSTRACT_DISABLE_PLUGINS=None)
    garbled = status_of("hwabstract-garbled")
    assert garbled.status == "failed"
    assert "unreadable entry_points.txt" in garbled.reason
    assert status_of("cpu", plugin="cpu").ok


def test_allow_list(installed: Path, fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry(HWABSTRACT_PLUGINS="cpu, good", HWABSTRACT_DISABLE_PLUGINS=None)
    assert status_of("good").ok
    assert status_of("cpu", plugin="cpu").ok
    for name in ("importfails", "probecrash", "unavail", "impostor"):
        s = status_of(name)
        assert s.status == "disabled"
        assert s.reason == "not in HWABSTRACT_PLUGINS=cpu,good"
    with pytest.raises(hw.PluginError, match="disabled: not in HWABSTRACT_PLUGINS"):
        hw.device("probecrash")


def test_deny_list_never_imports_the_plugin(
    installed: Path, fresh_registry: Callable[..., Registry]
) -> None:
    fresh_registry(HWABSTRACT_PLUGINS=None, HWABSTRACT_DISABLE_PLUGINS="importfails,good")
    for name in ("importfails", "good"):
        s = status_of(name)
        assert (s.status, s.reason) == ("disabled", "listed in HWABSTRACT_DISABLE_PLUGINS")
    assert "hwa_t_importfails" not in sys.modules
    with pytest.raises(hw.PluginError, match="listed in HWABSTRACT_DISABLE_PLUGINS"):
        hw.device("good")
    assert hw.device().name == "cpu:0"  # the good plugin would have won on priority


# -- default device and device specs --------------------------------------------------------------


def test_default_device_follows_priority_then_hwabstract_device(
    installed: Path, fresh_registry: Callable[..., Registry], monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_registry(HWABSTRACT_PLUGINS="cpu,good", HWABSTRACT_DEVICE=None)
    assert hw.device().name == "good:0"
    assert hw.device(None) is hw.device("good:0")
    monkeypatch.setenv("HWABSTRACT_DEVICE", "cpu")
    assert hw.device().name == "cpu:0"
    assert hw.asarray([1.0]).device.name == "cpu:0"  # creation uses the default device
    monkeypatch.setenv("HWABSTRACT_DEVICE", "cpu:3")
    with pytest.raises(hw.DeviceError, match=r"HWABSTRACT_DEVICE='cpu:3'.*does not exist"):
        hw.device()


def test_no_working_backend(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry(HWABSTRACT_PLUGINS="nothing-here", HWABSTRACT_DEVICE=None)
    assert status_of("cpu").status == "disabled"
    with pytest.raises(hw.DeviceError, match=r"no working backend.*hwabstract doctor"):
        hw.device()
    assert hw.devices() == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", r"no backend named 'nope' is installed \(known: .*cpu.*\)"),
        (
            "cpu:7",
            r"device 'cpu:7' does not exist: backend 'cpu' has 1 device\(s\), cpu:0 to cpu:0",
        ),
        ("cpu:x", r"bad device spec 'cpu:x': the part after ':' must be an integer index"),
        ("cpu:-1", r"device 'cpu:-1' does not exist"),
        (42, r"cannot interpret 42 as a device; pass a Device, a backend name like 'cpu'"),
        (True, r"cannot interpret True as a device"),
    ],
)
def test_bad_device_specs(
    fresh_registry: Callable[..., Registry], spec: object, message: str
) -> None:
    fresh_registry(HWABSTRACT_CPU_DEVICES=None, HWABSTRACT_PLUGINS=None)
    with pytest.raises(hw.DeviceError, match=message):
        hw.device(spec)


def test_device_specs_resolve_to_one_object_per_device(
    fresh_registry: Callable[..., Registry],
) -> None:
    fresh_registry(HWABSTRACT_CPU_DEVICES="3", HWABSTRACT_PLUGINS=None)
    devices = hw.devices("cpu")
    assert [d.name for d in devices] == ["cpu:0", "cpu:1", "cpu:2"]
    assert hw.device("cpu") is devices[0]
    assert hw.device(" cpu:2 ") is devices[2]
    assert hw.device(devices[1]) is devices[1]
    assert status_of("cpu").device_count == 3


def test_explicit_sources_and_reset_registry_restores_the_previous_one() -> None:
    previous = registry_mod.get_registry()
    test_registry = Registry([PluginSource("empty", lambda: object(), None, None)])
    old = registry_mod.reset_registry(test_registry)
    try:
        assert old is previous
        assert [(s.name, s.status) for s in hw.backends()] == [("empty", "failed")]
    finally:
        registry_mod.reset_registry(old)
    assert registry_mod.get_registry() is previous


# -- the package itself ---------------------------------------------------------------------------


def test_import_loads_no_vendor_stack_and_lists_cpu0() -> None:
    code = textwrap.dedent(
        """
        import sys
        import hwabstract as hw
        vendor = sorted(m for m in ("jax", "jaxlib", "cupy", "torch") if m in sys.modules)
        assert not vendor, vendor
        print([d.name for d in hw.devices()])
        """
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HWABSTRACT_") and k != "PYTHONWARNINGS"
    }
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "'cpu:0'" in proc.stdout.strip()


def test_hw_backends_stays_a_function_after_discovery() -> None:
    # regression: importing the subpackage hwabstract.backends (at discovery) used to rebind
    # the attribute hw.backends from the function to that subpackage
    code = "import hwabstract as hw; hw.backends(); print(callable(hw.backends))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_declared_environment_is_listed_and_malformed_declarations_are_ignored(
    fresh_registry: Callable[..., Registry],
) -> None:
    class Declares(CpuBackend):
        name = "declares"
        environment = {"HWABSTRACT_DECLARES_X": "what X does", "BAD": 3}  # type: ignore[dict-item]

    class Malformed(CpuBackend):
        name = "malformed"
        environment = ["not", "a", "mapping"]  # type: ignore[assignment]

    class Plugin:
        @hw.hookimpl
        def hwabstract_backends(self) -> list[type[hw.Backend]]:
            return [Declares, Malformed]

    plugin = Plugin()
    registry = fresh_registry([PluginSource("both", lambda: plugin, "tests", "0")])
    statuses = {s.name: s for s in registry.backends()}
    assert statuses["declares"].ok and statuses["malformed"].ok  # neither breaks discovery
    assert statuses["declares"].environment == (("HWABSTRACT_DECLARES_X", "what X does"),)
    assert statuses["malformed"].environment == ()
