"""Build hook: cffi compiles the libmaia sources into ``hwabstract_maia._maia``.

Metadata lives in pyproject.toml; this file only names the cffi build script, which
setuptools' ``cffi_modules`` keyword (provided by cffi) turns into an extension module.
"""

from setuptools import setup

setup(cffi_modules=["src/hwabstract_maia/_build.py:ffibuilder"])
