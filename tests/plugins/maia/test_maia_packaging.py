"""The hwabstract-maia sdist is self-contained and the extension exports only libmaia's API.

The sdist vendors ``native/maia`` (setup.py's ``SdistWithNative``); built away from the
repository, it must compile; and the compiled module, like ``libmaia.so``, must export the
``MAIA_API`` functions of ``maia.h`` and hide everything internal (``-fvisibility=hidden``).
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("setuptools", reason="building the sdist needs setuptools")
pytest.importorskip("cffi", reason="building the extension needs cffi")

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = ROOT / "plugins" / "maia"
NATIVE = ROOT / "native" / "maia"


def _setup(cwd: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", *args], cwd=cwd, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"setup.py {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    _setup(PLUGIN, "sdist", "--dist-dir", str(out))
    (archive,) = out.glob("hwabstract_maia-*.tar.gz")
    return archive


def test_the_sdist_carries_every_libmaia_source(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    expected = {
        f"native/maia/{p.relative_to(NATIVE).as_posix()}"
        for sub in ("include", "src", "tests")
        for p in (NATIVE / sub).rglob("*")
        if p.is_file() and p.suffix in (".c", ".h")
    }
    assert expected, "no libmaia sources found in the repository"
    assert expected <= names, f"missing from the sdist: {sorted(expected - names)}"
    assert "native/maia/Makefile" in names
    assert not [n for n in names if n.endswith((".o", ".d", ".so"))], "build output in sdist"


def test_the_sdist_builds_away_from_the_repository(sdist: Path, tmp_path: Path) -> None:
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (project,) = tmp_path.glob("hwabstract_maia-*")
    _setup(project, "build_ext", "--inplace")
    # the sources came from the sdist itself, not from a mirror of the repository
    assert not (project / "build" / "libmaia").exists()
    (module,) = (project / "src" / "hwabstract_maia").glob("_maia*.so")
    lib = ctypes.CDLL(str(module))
    exported = re.findall(
        r"^MAIA_API [^(]*?[ *](maia_\w+)\(", (NATIVE / "include" / "maia.h").read_text(), re.M
    )
    assert len(exported) > 30
    for name in exported:
        assert hasattr(lib, name), f"{name} is part of maia.h but not exported"
    for internal in ("mk_matmul", "mk_parallel_for", "ht_lookup", "mem_resolve_view",
                     "maia_kernel_execute"):  # fmt: skip
        assert not hasattr(lib, internal), f"internal symbol {internal} is exported"
