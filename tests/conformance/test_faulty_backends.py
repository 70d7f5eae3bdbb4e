"""The suite's own power: each deliberately faulty backend (``faulty_backends.py``) fails
the conformance suite, in the area its defect belongs to.

Each run selects the area (and, for the big kernels area, the tests that exercise the
defect) to stay quick; the unmodified cpu backend passes the whole suite in the
``conformance-cpu`` tox environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import FAULTY, conformance

CASES = [
    # backend, area, -k selection, words one failing test's message must contain
    (
        "faulty_rounding",
        "kernels",
        "float16 and (add or multiply or divide) and not property",
        "ulp",
    ),
    ("faulty_ordering", "streams", None, ""),
    ("faulty_dtype_claim", "dtypes", None, "byte(s) changed"),
    ("faulty_leak", "memory", None, "leak"),
    ("faulty_broadcast", "kernels", "float32 and (add or multiply) and broadcast", ""),
    ("faulty_async_copy", "transfers", None, "differ"),
    ("faulty_mx_packing", "mx", "mxfp4", "packed element byte(s) differ"),
]


@pytest.mark.parametrize(("backend", "area", "select", "words"), CASES, ids=[c[0] for c in CASES])
def test_the_suite_catches_the_fault(
    tmp_path: Path, backend: str, area: str, select: str | None, words: str
) -> None:
    args = [backend, "--plugin", FAULTY, "--area", area]
    if select:
        args += ["-k", select]
    code, out, reports = conformance(*args, report_dir=tmp_path)
    assert code == 1, f"exit status {code}, expected 1 (a failure):\n{out}"
    report = reports[backend]
    assert report["status"] == "failed"
    assert report["areas"][area]["failed"] >= 1, report["areas"]
    failed = [t for t in report["tests"] if t["outcome"] == "failed"]
    assert all(t["area"] == area for t in failed)
    assert any(words in t["message"] for t in failed), [t["message"] for t in failed]
    assert f"{area}" in out and "FAILED" in out  # the matrix names the area
