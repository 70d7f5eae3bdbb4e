"""The docs cannot go stale: the kernel page lists every registered spec, the examples on
every page run, the example plugin works, and the names, error classes, JSON keys and links
the pages mention exist."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import hwabstract
import hwabstract as hw
from hwabstract import cli, errors
from hwabstract.demo import run_demo
from hwabstract.kernels import all_specs
from hwabstract.registry import PluginSource, Registry, reset_registry

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_kernels", DOCS / "generate_kernels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- kernels.md ---------------------------------------------------------------------------------


def generated_part(page: str) -> str:
    generator = load_generator()
    start, end = page.index(generator.BEGIN), page.index(generator.END)
    return page[start:end]


def test_kernels_page_lists_every_registered_kernel_spec() -> None:
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", generated_part(read("kernels.md")), re.M)
    assert len(rows) == len(set(rows)), "a kernel is listed twice"
    assert set(rows) == {spec.name for spec in all_specs()}


def test_kernels_page_is_regenerated() -> None:
    generator = load_generator()
    page = read("kernels.md")
    assert generator.render(page) == page, "run: python docs/generate_kernels.py"


def test_kernels_page_shows_each_spec_with_its_category() -> None:
    sections = re.split(r"^### ", generated_part(read("kernels.md")), flags=re.M)[1:]
    by_title = {s.splitlines()[0]: s for s in sections}
    generator = load_generator()
    for spec in all_specs():
        title = next(t for t in by_title if t.startswith(generator.CATEGORY_TITLES[spec.category]))
        assert f"| `{spec.name}` |" in by_title[title], (spec.name, title)


# -- examples -----------------------------------------------------------------------------------

RUNNER = r"""
import doctest, pathlib, re, sys
path = pathlib.Path(sys.argv[1])
text = path.read_text(encoding="utf-8")
parser = doctest.DocTestParser()
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
globs = {"__name__": "__docs__"}
for i, m in enumerate(re.finditer(r"```pycon\n(.*?)```", text, re.S)):
    lineno = text[: m.start()].count("\n") + 1
    test = parser.get_doctest(m.group(1), globs, f"{path.name}[{i}]", str(path), lineno)
    runner.run(test, clear_globs=False)
    globs.update(test.globs)
result = runner.summarize(verbose=False)
sys.exit(1 if result.failed or not result.attempted else 0)
"""

EXAMPLE_PAGES = [p.name for p in PAGES if "```pycon" in p.read_text(encoding="utf-8")]


def test_the_pages_that_promise_runnable_examples_have_them() -> None:
    assert {"getting-started.md", "kernels.md"} <= set(EXAMPLE_PAGES)


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_examples_run(page: str) -> None:
    """Each page's ``pycon`` examples, in a fresh interpreter as a reader would run them,
    with only the cpu backend active (the pages say so)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWABSTRACT_")}
    env["HWABSTRACT_PLUGINS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(DOCS / page)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- plugins.md: the example plugin -------------------------------------------------------------


def example_plugin_source() -> str:
    page = read("plugins.md")
    match = re.search(
        r"<!-- example plugin: toy_hwabstract\.py -->\n```python\n(.*?)```", page, re.S
    )
    assert match, "plugins.md lost its example plugin"
    return match.group(1)


@pytest.fixture
def toy_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    (tmp_path / "toy_hwabstract.py").write_text(example_plugin_source(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_hwabstract", raising=False)
    for name in ("HWABSTRACT_PLUGINS", "HWABSTRACT_DISABLE_PLUGINS", "HWABSTRACT_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    registry = Registry(
        sources=[
            PluginSource(
                "cpu", lambda: importlib.import_module("hwabstract.backends.cpu"), "hwabstract"
            ),
            PluginSource(
                "toy", lambda: importlib.import_module("toy_hwabstract"), "toy-hwabstract", "0.1"
            ),
        ]
    )
    old = reset_registry(registry)
    try:
        yield registry
    finally:
        reset_registry(old)
        sys.modules.pop("toy_hwabstract", None)


def test_example_plugin_is_discovered_and_runs_the_demo(toy_registry: Registry) -> None:
    status = {s.name: s for s in toy_registry.backends()}["toy"]
    assert (status.status, status.api_level, status.device_count) == ("ok", hw.API_LEVEL, 1)
    result = run_demo(["toy:0", "cpu:0"])
    runs = {r.device: r for r in result.runs}
    assert runs["toy:0"].status == "ok", runs["toy:0"].reason
    assert runs["toy:0"].event_ms is None  # it declares no event timing
    assert result.ok


def test_example_plugin_refuses_what_it_does_not_declare(toy_registry: Registry) -> None:
    import numpy as np

    x = hw.asarray(np.ones((2, 2), np.float32), device="toy")
    with pytest.raises(hw.UnsupportedError) as kernel:
        hw.exp(x)
    assert kernel.value.capability == "kernel:exp[float32]"
    with pytest.raises(hw.UnsupportedError) as dtype:
        hw.asarray([1, 2], device="toy")
    assert dtype.value.capability == "dtype:int64"
    assert (x @ x + 1).numpy().tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_plugins_page_entry_point_matches_the_example() -> None:
    page = read("plugins.md")
    assert '[project.entry-points.hwabstract]\ntoy = "toy_hwabstract"' in page
    assert hwabstract.hookspecs.PROJECT_NAME == "hwabstract"


def test_plugins_page_documents_every_backend_method() -> None:
    page = read("plugins.md")
    methods = [
        name
        for name, value in vars(hw.Backend).items()
        if callable(value) and not name.startswith("_")
    ]
    assert len(methods) >= 20
    for name in methods:
        assert f"| `{name}(" in page, name


# -- names, errors, JSON keys, links ------------------------------------------------------------


def test_every_hw_name_the_docs_use_exists() -> None:
    for page in PAGES:
        for name in set(re.findall(r"\bhw\.([A-Za-z_][A-Za-z0-9_]*)", page.read_text("utf-8"))):
            assert hasattr(hwabstract, name), f"{page.name} mentions hw.{name}"


def test_errors_page_covers_every_error_class() -> None:
    page = read("errors.md")
    for name in errors.__all__:
        assert re.search(rf"^#+ `{name}`", page, re.M), f"errors.md has no section for {name}"


def keys_of(data: Any, prefix: str = "") -> set[str]:
    """Every dict key in ``data``, except those of free-form mappings (kernel, dtype and
    environment-variable names, DeviceInfo.extra)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            found.add(key)
            if key not in ("kernels", "dtypes", "environment", "extra"):
                found |= keys_of(value)
    elif isinstance(data, list):
        for item in data:
            found |= keys_of(item)
    return found


def test_cli_page_documents_every_json_key(capsys: pytest.CaptureFixture[str]) -> None:
    registry = Registry(
        sources=[
            PluginSource(
                "cpu", lambda: importlib.import_module("hwabstract.backends.cpu"), "hwabstract"
            )
        ]
    )
    old = reset_registry(registry)
    try:
        page = read("cli.md")
        for argv in (
            ["backends"],
            ["devices"],
            ["info", "cpu:0"],
            ["doctor"],
            ["demo", "--batches", "1"],
        ):
            assert cli.main([*argv, "--json"]) == 0
            data = json.loads(capsys.readouterr().out)
            for key in keys_of(data):
                assert f"`{key}`" in page, f"cli.md does not document {argv[0]} key {key!r}"
    finally:
        reset_registry(old)


def test_cli_page_documents_every_subcommand() -> None:
    page = read("cli.md")
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(sub.choices, dict)
    for name in sub.choices:
        assert f"## `hwabstract {name}" in page, name


def local_links() -> list[tuple[str, str]]:
    links = []
    for page in PAGES:
        text = page.read_text("utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not re.match(r"[a-z]+:", target):
                links.append((page.name, target))
    return links


@pytest.mark.parametrize(("page", "target"), local_links())
def test_local_links_resolve(page: str, target: str) -> None:
    path = (DOCS / target).resolve()
    assert path.exists(), f"{page} links to missing {target}"


def test_index_maps_every_page() -> None:
    index = read("index.md")
    for page in PAGES:
        if page.name != "index.md":
            assert f"]({page.name})" in index, page.name
