"""Install hwabstract-nvidia with the CuPy wheel that matches this machine's NVIDIA driver.

``nvidia-smi`` prints the newest CUDA version the driver supports; CUDA 13 drivers get the
``cuda13`` extra, CUDA 12 drivers the ``cuda12`` extra. Without a driver (no
``nvidia-smi``) the plugin is installed without CuPy: the backend is then listed as
unavailable, with the reason, and nothing large is downloaded. The main job (``tox -e
demo``) and ``tox -e conformance-nvidia`` install the plugin this way.

    python plugins/nvidia/install_for_driver.py [--print]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path


def driver_cuda_major() -> int | None:
    """The CUDA major version the driver supports, or None without a working driver."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"CUDA Version:\s*(\d+)\.", out)
    return int(match.group(1)) if match else None


def requirement(major: int | None) -> str:
    here = Path(__file__).resolve().parent
    if major is None or major < 12:
        return str(here)  # no usable driver: the plugin alone, which says why it is unavailable
    return f"{here}[cuda{13 if major >= 13 else 12}]"


def main(argv: list[str]) -> int:
    major = driver_cuda_major()
    req = requirement(major)
    what = f"a driver for CUDA {major}" if major else "no NVIDIA driver"
    print(f"hwabstract-nvidia: {what} here; installing {req}")
    if "--print" in argv:
        return 0
    return subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", req])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
