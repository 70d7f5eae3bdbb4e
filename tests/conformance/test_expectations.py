"""Expectations files: parsing, matching, and clear errors for malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwabstract.conformance.expectations import Expectations
from hwabstract.errors import PluginError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


def test_patterns_match_test_ids_in_order(tmp_path: Path) -> None:
    exp = Expectations.load(
        _write(
            tmp_path,
            """
[[expected_failure]]
test = "kernels::test_elementwise[tan-float16-*]"
reason = "first"

[[expected_failure]]
test = "kernels::*"
reason = "second"
""",
        )
    )
    assert exp.match("kernels::test_elementwise[tan-float16-large]") == "first"
    assert exp.match("kernels::test_matmul[matmul-float32]") == "second"
    assert exp.match("memory::test_zero_size_tensors") is None
    assert len(exp.entries) == 2 and exp.source == str(tmp_path / "exp.toml")


def test_an_empty_file_lists_nothing(tmp_path: Path) -> None:
    assert Expectations.load(_write(tmp_path, "# nothing known\n")).entries == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[expected_failure]]\ntest = 'x'\n", "non-empty 'reason'"),
        ("[[expected_failure]]\nreason = 'x'\n", "non-empty 'test'"),
        ("[[expected_failure]]\ntest = 'x'\nreason = '  '\n", "non-empty 'reason'"),
        ("expected_failure = 3\n", "array of tables"),
        ("[[expected_failures]]\ntest = 'x'\nreason = 'y'\n", "unknown table"),
        ("[[expected_failure]\n", "not valid TOML"),
    ],
)
def test_malformed_files_are_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        Expectations.load(_write(tmp_path, text))


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="cannot read"):
        Expectations.load(tmp_path / "absent.toml")


def test_a_backend_naming_a_missing_file_is_an_error() -> None:
    class Named:
        name = "named"
        conformance_expectations = "does-not-exist.toml"

    with pytest.raises(PluginError, match="does not exist"):
        Expectations.for_backend(Named())
    Named.conformance_expectations = None  # type: ignore[assignment]
    assert Expectations.for_backend(Named()).entries == []


def test_standin_entries_apply_to_stand_ins_only(tmp_path: Path) -> None:
    exp = Expectations.load(
        _write(
            tmp_path,
            """
[[expected_failure]]
test = "kernels::*"
reason = "the emulator's libm"
standin = true
""",
        )
    )
    assert exp.match("kernels::test_x", standin=True) == "the emulator's libm"
    assert exp.match("kernels::test_x", standin=False) is None
    assert exp.match("kernels::test_x") is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [("standin = 'yes'", "'standin' must be true or false"), ("when = 1", "unknown keys")],
)
def test_entry_keys_are_checked(tmp_path: Path, extra: str, message: str) -> None:
    text = f"[[expected_failure]]\ntest = 'x'\nreason = 'y'\n{extra}\n"
    with pytest.raises(PluginError, match=message):
        Expectations.load(_write(tmp_path, text))


def test_a_subclass_inherits_the_file_of_the_class_that_names_it() -> None:
    from hwabstract.backends.pjrt import PjrtBackend

    class Sub(PjrtBackend):  # defined here, in the tests: the file is the base class's
        name = "sub"

    exp = Expectations.for_backend(object.__new__(Sub))
    assert exp.source is not None and exp.source.endswith("pjrt-standin-expectations.toml")
    assert exp.entries, "the shared stand-in file lists XLA's known departures"
