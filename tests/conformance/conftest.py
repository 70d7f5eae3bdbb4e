"""Helpers for running ``hwabstract conformance`` in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

FAULTY = str(Path(__file__).with_name("faulty_backends.py"))


def conformance(
    *args: str, report_dir: Path, timeout: float = 600
) -> tuple[int, str, dict[str, Any]]:
    """Run ``hwabstract conformance ARGS --report-dir DIR``; returns the exit status, the
    output, and the combined reports by backend."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWABSTRACT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "hwabstract", "conformance", *args, "--report-dir", str(report_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    combined = report_dir / "conformance.json"
    reports = {}
    if combined.exists():
        reports = {r["backend"]: r for r in json.loads(combined.read_text())}
    return proc.returncode, proc.stdout + proc.stderr, reports
