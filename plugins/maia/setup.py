"""Build hook: cffi compiles the libmaia sources into ``hwabstract_maia._maia``.

Metadata lives in pyproject.toml; this file names the cffi build script, which setuptools'
``cffi_modules`` keyword (provided by cffi) turns into an extension module, and makes an
sdist self-contained: libmaia's sources (``native/maia`` of the repository) are vendored
into it as ``native/maia``, where ``_build.py`` looks first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.sdist import sdist

_HERE = Path(__file__).resolve().parent
_VENDORED = ("include", "src", "tests", "Makefile", "README.md")


class SdistWithNative(sdist):
    """An sdist that carries libmaia's C sources, so it builds away from the repository."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        target = Path(base_dir) / "native" / "maia"
        if target.exists():  # an sdist built from an sdist already vendored them
            return
        source = next(
            (p for p in (_HERE / "native" / "maia", _HERE.parents[1] / "native" / "maia")
             if (p / "include" / "maia.h").is_file()),
            None,
        )  # fmt: skip
        if source is None:
            raise SystemExit(
                "cannot vendor libmaia into the sdist: native/maia not found next to this "
                "project or in the repository two levels up"
            )
        target.mkdir(parents=True)
        ignore = shutil.ignore_patterns("*.o", "*.d", "build")
        for name in _VENDORED:
            path = source / name
            if path.is_dir():
                shutil.copytree(path, target / name, ignore=ignore)
            elif path.is_file():
                shutil.copy2(path, target / name)


setup(
    cffi_modules=["src/hwabstract_maia/_build.py:ffibuilder"],
    cmdclass={"sdist": SdistWithNative},
)
