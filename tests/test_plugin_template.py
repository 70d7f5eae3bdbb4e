"""The plugin template (``hwabstract.plugin_template``, ``hwabstract new-plugin NAME``): what
it generates, the names and directories it refuses, that the template ships as package data,
and that the generated backend works. The generated project's own tests, lint and a full
conformance run are the ``template`` tox env."""

from __future__ import annotations

import ast
import configparser
import importlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import cpu_source

import hwabstract as hw
from hwabstract import plugin_template as pt
from hwabstract.registry import PluginSource, Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "src" / "hwabstract" / "plugin_template" / "files"
EXPECTED = {
    "README.md",
    "pyproject.toml",
    "tox.ini",
    "src/hwabstract_vendorx/__init__.py",
    "src/hwabstract_vendorx/backend.py",
    "src/hwabstract_vendorx/py.typed",
    "tests/test_backend.py",
}
#: nothing installed: check_plugin_name consults only these names
NOTHING: dict[str, str | None] = {}


def generate(tmp_path: Path, name: str = "vendorx") -> Path:
    target, _ = pt.generate_plugin(name, tmp_path / f"hwabstract-{name}", installed=NOTHING)
    return target


# -- the template and its packaging ---------------------------------------------------------------


def test_every_template_file_is_shipped_as_package_data() -> None:
    on_disk = sorted(
        p.relative_to(TEMPLATE).as_posix()
        for p in TEMPLATE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert on_disk == pt.template_files(), "a template file lacks the .tmpl suffix"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["hwabstract.plugin_template"]
    # setuptools expands the patterns as pathlib's glob does (``**`` spans directories)
    shipped = {p for pattern in patterns for p in TEMPLATE.parent.glob(pattern)}
    for rel in on_disk:
        assert TEMPLATE / rel in shipped, f"{rel} is not covered by {patterns}"


def test_the_generated_project(tmp_path: Path) -> None:
    target, written = pt.generate_plugin("vendorx", tmp_path / "out", installed=NOTHING)
    assert target == tmp_path / "out"
    assert set(written) == EXPECTED
    assert {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} == EXPECTED
    for rel in EXPECTED:
        text = (target / rel).read_text(encoding="utf-8")
        assert "@@" not in text, f"{rel} kept a template token"
        if rel.endswith(".py"):
            ast.parse(text, rel)  # valid Python

    project = tomllib.loads((target / "pyproject.toml").read_text(encoding="utf-8"))
    meta = project["project"]
    assert meta["name"] == "hwabstract-vendorx"
    assert meta["entry-points"]["hwabstract"] == {"vendorx": "hwabstract_vendorx"}
    assert f"hwabstract>={hw.__version__}" in meta["dependencies"]
    assert project["tool"]["setuptools"]["packages"] == ["hwabstract_vendorx"]

    tox = configparser.ConfigParser(interpolation=None)
    tox.read(target / "tox.ini", encoding="utf-8")
    assert [e.strip() for e in tox["tox"]["env_list"].split(",")] == [
        "tests",
        "conformance",
        "lint",
    ]
    assert "hwabstract conformance vendorx" in tox["testenv:conformance"]["commands"]
    assert "pytest" in tox["testenv:tests"]["commands"]

    backend = (target / "src/hwabstract_vendorx/backend.py").read_text(encoding="utf-8")
    assert "class VendorxBackend(hw.Backend):" in backend
    assert 'name = "vendorx"' in backend and f"api_level = {hw.API_LEVEL} " in backend
    assert 'DEVICES_VARIABLE = "HWABSTRACT_VENDORX_DEVICES"' in backend
    readme = (target / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# hwabstract-vendorx\n") and "VENDOR:" in readme


def test_names_become_class_package_and_variable_names(tmp_path: Path) -> None:
    assert pt.plugin_tokens("acme_labs2") == {
        "name": "acme_labs2",
        "NAME": "ACME_LABS2",
        "Name": "AcmeLabs2",
        "package": "hwabstract_acme_labs2",
        "distribution": "hwabstract-acme_labs2",
        "api_level": str(hw.API_LEVEL),
        "hwabstract_version": hw.__version__,
    }
    target = generate(tmp_path, "acme_labs2")
    init = (target / "src/hwabstract_acme_labs2/__init__.py").read_text(encoding="utf-8")
    assert "from .backend import AcmeLabs2Backend" in init


def test_the_default_output_is_hwabstract_name_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target, _ = pt.generate_plugin("vendorx", installed=NOTHING)
    assert target.resolve() == (tmp_path / "hwabstract-vendorx").resolve()
    assert (target / "pyproject.toml").is_file()


def test_an_existing_empty_directory_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    target, written = pt.generate_plugin("vendorx", tmp_path / "empty", installed=NOTHING)
    assert set(written) == EXPECTED and (target / "tox.ini").is_file()


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("Acme", "; try 'acme'"),
        ("acme-labs", "; try 'acme_labs'"),
        ("acme.labs", "; try 'acme_labs'"),
        ("9acme", ")"),  # no usable suggestion
        ("_acme", "; try 'acme'"),
        ("acme labs", "; try 'acme_labs'"),
        ("a" * 33, ")"),
        ("ácme", ")"),
    ],
)
def test_invalid_names_are_refused_with_what_to_use(name: str, hint: str) -> None:
    with pytest.raises(hw.PluginError) as info:
        pt.check_plugin_name(name, NOTHING)
    message = str(info.value)
    assert f"plugin name {name!r} is not valid" in message
    assert "lowercase letters, digits and underscores, starting with a letter" in message
    assert message.endswith(hint)


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(hw.PluginError, match="a plugin name is needed"):
        pt.check_plugin_name("", NOTHING)


@pytest.mark.parametrize("name", sorted(pt.SHIPPED_BACKENDS))
def test_the_names_of_hwabstracts_own_backends_are_refused(name: str) -> None:
    with pytest.raises(hw.PluginError) as info:
        pt.check_plugin_name(name, NOTHING)
    assert f"hwabstract's own {name} backend" in str(info.value)
    assert pt.SHIPPED_BACKENDS[name] in str(info.value)


def test_an_installed_backend_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(hw.PluginError) as info:
        pt.generate_plugin("vendorx", tmp_path / "x", installed={"vendorx": "hwabstract-vendorx"})
    assert "already installed here (from hwabstract-vendorx)" in str(info.value)
    assert "pip uninstall hwabstract-vendorx" in str(info.value)
    assert not (tmp_path / "x").exists(), "nothing is written for a refused name"


def test_names_are_checked_against_discovered_plugins(
    fresh_registry: Callable[..., Registry],
) -> None:
    """By default the names come from discovery: backends and plugin (entry-point) names,
    those of plugins that failed included."""

    def broken() -> object:
        raise ImportError("No module named 'vendor_runtime'")

    fresh_registry(
        [cpu_source(), PluginSource("brokenvendor", broken, "hwabstract-brokenvendor", "1.0")]
    )
    assert pt.installed_plugin_names() == {
        "cpu": "hwabstract",
        "brokenvendor": "hwabstract-brokenvendor",
    }
    with pytest.raises(hw.PluginError, match="from hwabstract-brokenvendor"):
        pt.check_plugin_name("brokenvendor")
    pt.check_plugin_name("vendorx")  # free


def test_an_importable_module_of_the_package_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hwabstract_shadowed.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(hw.PluginError) as info:
        pt.check_plugin_name("shadowed", NOTHING)
    assert "a module named hwabstract_shadowed is already importable" in str(info.value)
    assert "hwabstract_shadowed.py" in str(info.value)


def test_a_directory_that_is_not_empty_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(hw.PluginError) as info:
        pt.generate_plugin("vendorx", tmp_path, installed=NOTHING)
    assert "the directory is not empty (notes.txt)" in str(info.value)
    assert "choose another --output" in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_file_as_the_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("", encoding="utf-8")
    with pytest.raises(hw.PluginError, match="it exists and is not a directory"):
        pt.generate_plugin("vendorx", tmp_path / "afile", installed=NOTHING)


def test_a_target_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("", encoding="utf-8")
    with pytest.raises(hw.PluginError) as info:
        pt.generate_plugin("vendorx", tmp_path / "afile" / "below", installed=NOTHING)
    assert "cannot write the plugin into" in str(info.value)
    assert "choose a directory you can write to with --output" in str(info.value)


# -- the generated backend ------------------------------------------------------------------------


@pytest.fixture
def vendorx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: Callable[..., Registry]
) -> Iterator[Registry]:
    """The generated plugin, imported from its source tree (not installed), beside cpu."""
    target = generate(tmp_path)
    monkeypatch.syspath_prepend(str(target / "src"))
    plugin = PluginSource(
        "vendorx", lambda: importlib.import_module("hwabstract_vendorx"), "hwabstract-vendorx"
    )
    unset = dict.fromkeys(("HWABSTRACT_PLUGINS", "HWABSTRACT_DISABLE_PLUGINS", "HWABSTRACT_DEVICE"))
    try:
        yield fresh_registry([cpu_source(), plugin], **unset)
    finally:
        for module in [m for m in sys.modules if m.split(".")[0] == "hwabstract_vendorx"]:
            del sys.modules[module]


def test_the_generated_backend_is_discovered_and_computes(vendorx: Registry) -> None:
    status = {s.name: s for s in vendorx.backends()}["vendorx"]
    assert (status.status, status.api_level, status.device_count) == ("ok", hw.API_LEVEL, 1)
    assert status.standin and status.priority < 0
    assert hw.device().name == "cpu:0", "the template never becomes the default device"
    device = hw.device("vendorx:0")
    assert device.info.standin and "NumPy" in device.info.name
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = hw.asarray(a, device=device)
    np.testing.assert_array_equal((x @ x.T - hw.sum(x)).numpy(), a @ a.T - a.sum())
    with pytest.raises(hw.UnsupportedError) as refused:
        hw.exp(x)
    assert refused.value.capability == "kernel:exp[float32]"


def test_the_generated_manifest_declares_exactly_the_kernel_table(vendorx: Registry) -> None:
    module = importlib.import_module("hwabstract_vendorx.backend")
    caps = hw.device("vendorx:0").capabilities
    assert dict(caps.kernels) == {name: dtypes for name, (dtypes, _) in module.KERNELS.items()}
    assert set(caps.dtypes) == {hw.float32, hw.int32}


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed (tox -e template)")
def test_generated_code_passes_ruff_with_the_longest_name(tmp_path: Path) -> None:
    """Names sit in the template where no line can outgrow the limit: a project generated
    with the longest name is as clean as one named acme."""
    target = generate(tmp_path, "n" * pt.NAME_MAX)
    for command in (["ruff", "check"], ["ruff", "format", "--check"]):
        proc = subprocess.run(
            [*command, "--no-cache", "src", "tests"],
            cwd=target,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
