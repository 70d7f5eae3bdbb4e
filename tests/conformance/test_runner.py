"""``hwabstract conformance``: exit statuses, unavailable backends, expectations, crash
isolation and the reports it writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

from .conftest import FAULTY, conformance


def test_a_clean_run_writes_every_report(tmp_path: Path) -> None:
    code, out, reports = conformance("cpu", "--area", "discovery", report_dir=tmp_path)
    assert code == 0, out
    report = reports["cpu"]
    assert report["schema"] == "hwabstract-conformance/1"
    assert report["status"] == "passed" and report["reason"] is None
    device = report["device"]
    assert device["spec"] == "cpu:0" and device["standin"] is False
    assert len(device["fingerprint"]) == 16 and device["manifest"]["dtypes"]
    versions = report["versions"]
    assert versions["contract_api_level"] == 1 and versions["backend_api_level"] == 1
    assert versions["plugin_distribution"] == "hwabstract"
    assert report["areas"]["discovery"]["passed"] == report["totals"]["passed"] > 5
    assert all(t["id"].startswith("discovery::") for t in report["tests"])
    per_backend = tmp_path / "cpu"
    for name in ("report.json", "junit.xml", "report.md", "report.html"):
        assert (per_backend / name).is_file(), name
    suites = ET.parse(per_backend / "junit.xml").getroot()
    (suite,) = list(suites)
    assert suite.get("name") == "cpu.discovery" and suite.get("failures") == "0"
    assert "cpu: PASSED" in (per_backend / "report.md").read_text()
    assert "<table>" in (tmp_path / "summary.html").read_text()
    assert "discovery" in out and "PASSED" in out  # the live lines and the matrix


def test_a_named_backend_that_is_missing_is_unavailable_not_passed(tmp_path: Path) -> None:
    code, out, reports = conformance("nosuch", report_dir=tmp_path)
    assert code == 3, out
    report = reports["nosuch"]
    assert report["status"] == "unavailable"
    assert "no backend named 'nosuch' is installed" in report["reason"]
    assert "UNAVAILABLE" in out
    assert "UNAVAILABLE" in (tmp_path / "summary.html").read_text()
    junit = ET.parse(tmp_path / "nosuch" / "junit.xml").getroot()
    assert junit.find(".//skipped") is not None
    code, _, _ = conformance("nosuch", "--allow-unavailable", report_dir=tmp_path / "again")
    assert code == 0


def test_expected_failures_and_stale_expectations(tmp_path: Path) -> None:
    code, out, reports = conformance(
        "faulty_leak_known", "--plugin", FAULTY, "--area", "memory", report_dir=tmp_path
    )
    assert code == 0, out  # every failure is expected
    report = reports["faulty_leak_known"]
    totals = report["totals"]
    assert totals["failed"] == 0 and totals["xfailed"] == 2 and totals["xpassed"] == 1
    assert report["expectations"]["entries"] == 3
    assert report["expectations"]["source"].endswith("faulty_leak_expectations.toml")
    stale = [t for t in report["tests"] if t["outcome"] == "xpassed"]
    assert stale[0]["id"] == "memory::test_zero_size_tensors"
    assert "remove the stale expectation" in stale[0]["message"]
    assert "STALE" in out


def test_an_expectations_file_from_the_command_line(tmp_path: Path) -> None:
    exp = tmp_path / "exp.toml"
    exp.write_text('[[expected_failure]]\ntest = "memory::*"\nreason = "known leak"\n')
    code, out, reports = conformance(
        "faulty_leak",
        "--plugin",
        FAULTY,
        "--area",
        "memory",
        "--expectations",
        str(exp),
        report_dir=tmp_path / "r",
    )
    assert code == 0, out
    assert reports["faulty_leak"]["totals"]["xfailed"] == 2


def test_a_malformed_expectations_file_is_an_error(tmp_path: Path) -> None:
    exp = tmp_path / "bad.toml"
    exp.write_text('[[expected_failure]]\ntest = "memory::*"\n')  # no reason
    code, out, _ = conformance("cpu", "--expectations", str(exp), report_dir=tmp_path / "r")
    assert code == 2
    assert "needs a non-empty 'test' pattern and a non-empty 'reason'" in out


def test_a_backend_that_crashes_is_a_failed_run_not_a_crashed_command(tmp_path: Path) -> None:
    code, out, reports = conformance(
        "faulty_crash", "cpu", "--plugin", FAULTY, "--area", "transfers", report_dir=tmp_path
    )
    assert code == 1, out
    crashed = reports["faulty_crash"]
    assert crashed["status"] == "failed"
    assert "signal 11" in crashed["reason"]
    assert reports["cpu"]["status"] == "passed"  # the next backend still ran


def test_jobs_run_slices_in_parallel_and_merge_one_report(tmp_path: Path) -> None:
    areas = ("--area", "errors", "--area", "discovery", "--area", "streams")
    code, out, serial = conformance("cpu", *areas, report_dir=tmp_path / "serial")
    assert code == 0, out
    code, out, parallel = conformance("cpu", "-j", "3", *areas, report_dir=tmp_path / "par")
    assert code == 0, out
    one, many = serial["cpu"], parallel["cpu"]
    assert many["status"] == "passed" and many["totals"] == one["totals"]
    # the areas in the suite's order, whatever order they were asked or finished in
    assert list(many["areas"]) == list(one["areas"]) == ["discovery", "streams", "errors"]
    assert [t["id"] for t in many["tests"]] == [t["id"] for t in one["tests"]]
    assert many["device"]["fingerprint"] == one["device"]["fingerprint"]
    assert "cpu slice 1/3: PASSED" in out and "cpu slice 3/3: PASSED" in out
    # one set of reports per backend, as without --jobs
    assert (tmp_path / "par" / "cpu" / "junit.xml").is_file()
    assert sorted(p.name for p in (tmp_path / "par").iterdir()) == [
        "conformance.json",
        "cpu",
        "summary.html",
        "summary.md",
    ]
    # more slices than tests: the empty ones add nothing
    code, out, tiny = conformance(
        "cpu", "-j", "4", "--area", "discovery", "-k", "listed", report_dir=tmp_path / "tiny"
    )
    assert code == 0, out
    assert tiny["cpu"]["status"] == "passed"
    assert 0 < tiny["cpu"]["totals"]["passed"] == len(tiny["cpu"]["tests"]) < 4


def test_jobs_a_crash_in_one_slice_fails_the_backend_and_names_the_slice(tmp_path: Path) -> None:
    # the discovery area and one download (the backend crashes on its first): one slice
    # crashes, the others pass
    code, out, reports = conformance(
        "faulty_crash",
        "-j",
        "3",
        "--plugin",
        FAULTY,
        "--area",
        "transfers",
        "--area",
        "discovery",
        "-k",
        "discovery or test_large_transfer",
        report_dir=tmp_path,
    )
    assert code == 1, out
    crashed = reports["faulty_crash"]
    assert crashed["status"] == "failed"
    assert re.search(r"faulty_crash \(slice [123] of 3\) ended with signal 11", crashed["reason"])
    assert crashed["areas"]["discovery"]["passed"] > 0  # the other slices' results are kept


def test_jobs_must_be_positive(tmp_path: Path) -> None:
    code, out, _ = conformance("cpu", "-j", "0", report_dir=tmp_path)
    assert code == 2 and "must be at least 1" in out


def test_an_unknown_area_is_a_usage_error(tmp_path: Path) -> None:
    code, out, _ = conformance("cpu", "--area", "nonsense", report_dir=tmp_path)
    assert code == 2 and "unknown area" in out


def test_json_output(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hwabstract", "conformance", "cpu", "--area", "errors", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (report,) = json.loads(proc.stdout)
    assert report["backend"] == "cpu" and report["status"] == "passed"


def test_the_suite_runs_under_plain_pytest(tmp_path: Path) -> None:
    (tmp_path / "none.ini").write_text("[pytest]\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--pyargs",
            "hwabstract.conformance.suite.test_discovery",
            "--hwabstract-backend",
            "cpu",
            "--hwabstract-report-dir",
            str(tmp_path),
            "-c",
            str(tmp_path / "none.ini"),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hwabstract conformance" in proc.stdout and "cpu: PASSED" in proc.stdout
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "passed"


def test_slices_deal_runs_of_neighbours_and_come_back_in_suite_order() -> None:
    from hwabstract.conformance.plugin import RUNS_PER_SLICE, shard_of, suite_order

    for total in (0, 1, 5, 100, 6201):
        for slices in (1, 3, 14):
            parts = [[i for i in range(total) if shard_of(i, total, slices) == k]
                     for k in range(slices)]  # fmt: skip
            assert sorted(i for p in parts for i in p) == list(range(total))
            assert suite_order(parts) == list(range(total))
            if total >= slices * RUNS_PER_SLICE:  # every slice gets a fair share
                run = -(-total // (slices * RUNS_PER_SLICE))
                assert max(map(len, parts)) - min(map(len, parts)) <= run
    # the suite's last stretch (its slowest, on a GPU) is shared by many slices
    tail = {shard_of(i, 6201, 14) for i in range(6201 - 900, 6201)}
    assert len(tail) >= 10
    # a slice that crashed (no tests) leaves the order to the caller
    parts = [[i for i in range(100) if shard_of(i, 100, 3) == k] for k in range(3)]
    assert suite_order([parts[0], [], parts[2]]) is None
