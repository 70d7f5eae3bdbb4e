"""CUDA C++ compiled with NVRTC, CUDA's runtime compiler, and cached.

NVRTC is a library: it needs neither a GPU nor a driver, so :func:`compile_cuda` works on
any machine with the NVRTC shared library (the ``nvidia-cuda-nvrtc`` wheel that the
``cuda12``/``cuda13`` extras bring in). It is reached through CuPy's binding
(``cupy.cuda.nvrtc``), imported on first use.

* ``arch="sm_90"`` produces a CUBIN: machine code for exactly that architecture.
* ``arch="compute_90"`` produces PTX, which the driver compiles for the GPU it runs on
  (any architecture at least as new) when the module is loaded.

Results are cached in memory and on disk (``HWABSTRACT_NVRTC_CACHE``, default
``~/.cache/hwabstract/nvrtc``; set it to ``off`` to disable the disk cache), keyed by a
SHA-256 of the source, the options, the architecture and NVRTC's version, so an upgrade
of NVRTC never serves a stale image. A failed compilation raises
:class:`~hwabstract.errors.KernelError` with NVRTC's log, file and line included.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from hwabstract.errors import KernelError

__all__ = ["CompiledModule", "cache_dir", "compile_cuda", "nvrtc_version", "supported_archs"]

_ARCH = re.compile(r"(sm|compute)_(\d+)([af]?)")
_memory: dict[str, CompiledModule] = {}
_lock = threading.Lock()
#: how many times NVRTC itself ran in this process (the cache's tests read it)
compilations = 0


@attrs.frozen
class CompiledModule:
    """The output of one NVRTC compilation."""

    image: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")  #: CUBIN or PTX
    kind: str  #: ``"cubin"`` or ``"ptx"``
    arch: str  #: e.g. ``"sm_90"`` or ``"compute_90"``
    log: str  #: NVRTC's log (warnings), empty when it had nothing to say
    key: str  #: the cache key (hex SHA-256)

    @property
    def text(self) -> str:
        """The PTX as text (PTX modules only)."""
        if self.kind != "ptx":
            raise KernelError(f"a {self.kind} image is binary; compile for compute_XY for PTX")
        return self.image.rstrip(b"\0").decode()


def _nvrtc() -> Any:
    try:
        from cupy.cuda import nvrtc
    except ImportError as exc:
        raise KernelError(
            "CUDA C++ kernels need NVRTC through CuPy, which is not installed: install "
            "hwabstract-nvidia[cuda12] or hwabstract-nvidia[cuda13] (matching the CUDA "
            "version your driver supports)",
            vendor_message=str(exc),
        ) from exc
    return nvrtc


def nvrtc_version() -> tuple[int, int]:
    """NVRTC's (major, minor) version; :class:`KernelError` when the library is missing."""
    nvrtc = _nvrtc()
    try:
        return tuple(nvrtc.getVersion())
    except Exception as exc:  # the binding loads libnvrtc on first call
        raise KernelError(
            "the NVRTC library could not be loaded: install the nvidia-cuda-nvrtc wheel for "
            "your CUDA version (hwabstract-nvidia[cuda12] or [cuda13] brings it)",
            vendor_message=f"{type(exc).__name__}: {exc}",
        ) from exc


def supported_archs() -> tuple[int, ...]:
    """The SM versions NVRTC can compile for, e.g. ``(75, 80, 86, 89, 90, ...)``."""
    nvrtc_version()
    return tuple(int(a) for a in _nvrtc().getSupportedArchs())


def cache_dir() -> Path | None:
    """Where compiled images are kept on disk, or None when the disk cache is off."""
    setting = os.environ.get("HWABSTRACT_NVRTC_CACHE", "").strip()
    if setting.lower() in ("off", "0", "none", "false"):
        return None
    if setting:
        return Path(setting)
    return Path.home() / ".cache" / "hwabstract" / "nvrtc"


def _check_arch(arch: str) -> tuple[str, bool]:
    match = _ARCH.fullmatch(arch)
    if match is None:
        raise KernelError(
            f"unknown CUDA architecture {arch!r}: use sm_XY for a CUBIN (e.g. 'sm_90' for "
            "an H100) or compute_XY for PTX the driver compiles at load time"
        )
    number = int(match.group(2))
    archs = supported_archs()
    if number not in archs:
        raise KernelError(
            f"NVRTC {'.'.join(map(str, nvrtc_version()))} cannot compile for {arch}; it "
            f"supports {', '.join(str(a) for a in archs)}"
        )
    return arch, match.group(1) == "sm"


def compile_cuda(
    source: str,
    *,
    arch: str,
    options: Sequence[str] = (),
    filename: str = "kernel.cu",
) -> CompiledModule:
    """Compile CUDA C++ ``source`` for ``arch`` (``sm_XY``: CUBIN, ``compute_XY``: PTX).

    ``options`` are NVRTC options (``-std=c++17``, ``--use_fast_math``, ``-DNAME=value``,
    ...); the architecture option is added from ``arch``. Kernels meant to be launched by
    name should be declared ``extern "C"`` (no C++ name mangling).
    """
    if not isinstance(source, str) or not source.strip():
        raise KernelError("compile_cuda needs the CUDA C++ source as a non-empty string")
    opts = tuple(str(o) for o in options)
    if any(o.startswith(("-arch", "--gpu-architecture")) for o in opts):
        raise KernelError("pass the architecture as arch=..., not in options")
    arch, binary = _check_arch(arch)
    version = nvrtc_version()
    h = hashlib.sha256()
    for part in (source, "\0".join(opts), arch, f"{version[0]}.{version[1]}", filename):
        h.update(part.encode())
        h.update(b"\xff")
    key = h.hexdigest()
    with _lock:
        hit = _memory.get(key)
    if hit is not None:
        return hit
    kind = "cubin" if binary else "ptx"
    folder = cache_dir()
    if folder is not None:
        image = _load(folder / f"{key}.{kind}")
        if image is not None:
            module = CompiledModule(image, kind, arch, "", key)
            with _lock:
                _memory[key] = module
            return module
    module = _run_nvrtc(source, opts, arch, kind, key, filename)
    if folder is not None:
        _store(folder / f"{key}.{kind}", module.image)
    with _lock:
        _memory[key] = module
    return module


def _run_nvrtc(source: str, opts: tuple[str, ...], arch: str, kind: str, key: str,
               filename: str) -> CompiledModule:  # fmt: skip
    global compilations
    nvrtc = _nvrtc()
    program = nvrtc.createProgram(source, filename, [], [])
    try:
        try:
            nvrtc.compileProgram(program, [f"--gpu-architecture={arch}", *opts])
        except nvrtc.NVRTCError as exc:
            log = nvrtc.getProgramLog(program).strip()
            first = next((line for line in log.splitlines() if "error" in line), log[:200])
            raise KernelError(
                f"NVRTC could not compile {filename} for {arch}: {first.strip()} (the whole "
                "log is in vendor_message)",
                vendor_message=log or str(exc),
            ) from None
        log = nvrtc.getProgramLog(program).strip()
        image = nvrtc.getCUBIN(program) if kind == "cubin" else nvrtc.getPTX(program)
    finally:
        nvrtc.destroyProgram(program)
    compilations += 1
    return CompiledModule(bytes(image), kind, arch, log, key)


def _load(path: Path) -> bytes | None:
    """A cached image, or None when there is none (or it cannot be read: then NVRTC runs
    again, which is slower but never wrong)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def _store(path: Path, image: bytes) -> None:
    """Write atomically (a concurrent reader sees the old file or the whole new one); a
    cache that cannot be written is skipped, never an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(image)
        os.replace(tmp, path)
    except OSError:
        return
