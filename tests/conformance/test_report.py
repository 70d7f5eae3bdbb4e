"""Report rendering: the matrix, Markdown, HTML (escaped) and JUnit XML, from synthetic
reports."""

from __future__ import annotations

import subprocess
import sys
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from hwabstract.conformance.report import (
    merge_reports,
    render_html,
    render_junit,
    render_markdown,
    render_matrix,
    unavailable_report,
)


def _report(backend: str, outcomes: dict[str, list[str]]) -> dict[str, Any]:
    report = unavailable_report(backend, "")
    report.update(status="passed", reason=None)
    tests = []
    for area, results in outcomes.items():
        for i, outcome in enumerate(results):
            tests.append(
                {
                    "id": f"{area}::test_{i}<&>",
                    "area": area,
                    "outcome": outcome,
                    "duration_s": 0.01,
                    "message": f"why <{outcome}>",
                }
            )
    areas: dict[str, Any] = {}
    for t in tests:
        a = areas.setdefault(
            t["area"],
            {o: 0 for o in ("passed", "failed", "not_claimed", "skipped", "xfailed", "xpassed")},
        )
        a[t["outcome"]] += 1
        a["duration_s"] = 0.1
    report["tests"], report["areas"] = tests, areas
    if any(t["outcome"] == "failed" for t in tests):
        report.update(status="failed", reason="1 test(s) failed")
    return report


def test_the_matrix_has_an_area_per_row_and_a_backend_per_column() -> None:
    good = _report("good", {"memory": ["passed", "not_claimed"], "kernels": ["passed"]})
    bad = _report("bad", {"memory": ["failed"], "kernels": ["passed", "xpassed"]})
    gone = unavailable_report("gone", "no driver")
    text = render_matrix([good, bad, gone])
    lines = text.splitlines()
    assert lines[0].split() == ["AREA", "good", "bad", "gone"]
    memory = next(line for line in lines if line.startswith("memory"))
    assert "1 ok, 1 not claimed" in memory and "1 FAILED" in memory and "UNAVAILABLE" in memory
    kernels = next(line for line in lines if line.startswith("kernels"))
    assert "STALE expectation" in kernels
    assert lines[-1].startswith("RESULT") and "FAILED" in lines[-1] and "no driver" in lines[-1]
    assert lines.index(memory) < lines.index(kernels)  # report order, not alphabetical


def test_a_long_reason_goes_under_the_matrix_instead_of_widening_it() -> None:
    good = _report("good", {"memory": ["passed"]})
    reason = "no driver on this machine; install the driver, then the extra matching it " * 3
    text = render_matrix([good, unavailable_report("gone", reason.strip())])
    lines = text.splitlines()
    result = next(line for line in lines if line.startswith("RESULT"))
    assert result.split() == ["RESULT", "PASSED", "UNAVAILABLE", "(below)"]
    assert max(len(line) for line in lines[: lines.index(result) + 1]) < 80
    assert lines[-1] == f"gone: UNAVAILABLE: {reason.strip()}"


def test_merging_reports_of_parts_tallies_again_in_area_order() -> None:
    errors = _report("cpu", {"errors": ["passed", "failed"]})
    memory = _report("cpu", {"memory": ["passed", "not_claimed"]})
    merged = merge_reports([errors, memory], duration=2.5)
    assert list(merged["areas"]) == ["memory", "errors"]
    assert merged["totals"]["passed"] == 2 and merged["totals"]["failed"] == 1
    assert merged["status"] == "failed" and merged["reason"] == "1 test(s) failed"
    assert merged["duration_s"] == 2.5
    clean = merge_reports([memory, _report("cpu", {"errors": ["passed"]})], duration=1)
    assert clean["status"] == "passed" and clean["reason"] is None
    gone = unavailable_report("cpu", "no device")
    assert merge_reports([memory, gone], duration=1)["status"] == "unavailable"
    with pytest.raises(ValueError, match="different backends"):
        merge_reports([memory, _report("maia", {"errors": ["passed"]})], duration=1)
    # the tests listed in the order given (the suite's, for dealt slices), tallied alike
    order = [memory["tests"][1], errors["tests"][0], memory["tests"][0], errors["tests"][1]]
    listed = merge_reports([errors, memory], duration=2.5, tests=order)
    assert [t["id"] for t in listed["tests"]] == [t["id"] for t in order]
    assert (listed["areas"], listed["totals"]) == (merged["areas"], merged["totals"])


def test_html_escapes_what_tests_report() -> None:
    html = render_html([_report("b<x>", {"errors": ["failed"]})])
    assert "<x>" not in html and "b&lt;x&gt;" in html
    assert "why &lt;failed&gt;" in html and "test_0&lt;&amp;&gt;" in html


def test_markdown_lists_failures_and_claims_not_made() -> None:
    md = render_markdown([_report("b", {"errors": ["failed", "not_claimed"]})])
    assert "## b: FAILED" in md
    assert "`errors::test_0<&>` (failed): why <failed>" in md
    assert "1 claims not made" in md


def test_junit_counts_failures_and_skips_per_area() -> None:
    xml = render_junit(_report("b", {"memory": ["passed", "failed", "not_claimed", "xfailed"]}))
    root = ET.fromstring(xml)
    (suite,) = list(root)
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "2")
    skipped = [s.get("message") for s in root.iter("skipped")]
    assert "not claimed: why <not_claimed>" in skipped


def test_importing_the_package_imports_neither_pytest_nor_a_backend() -> None:
    code = (
        "import sys, hwabstract.conformance, hwabstract.conformance.report; "
        "print('pytest' in sys.modules, 'hwabstract.backends.cpu' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_model_named_after_its_vendor_is_not_prefixed_twice() -> None:
    report = _report("nvidia", {"errors": ["passed"]})
    report["device"] = {
        "spec": "nvidia:0",
        "name": "NVIDIA H200",
        "vendor": "NVIDIA",
        "model": "NVIDIA H200 (sm_90)",
        "standin": False,
        "fingerprint": "0" * 16,
    }
    text = render_markdown([report])
    assert "(NVIDIA H200 (sm_90))" in text and "NVIDIA NVIDIA" not in text
    assert "NVIDIA NVIDIA" not in render_html([report])
