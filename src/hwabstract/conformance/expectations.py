"""Expectations files: the failures a backend knows about, each with its reason.

A backend ships one (``conformance_expectations`` on its class names a file next to the
module that defines the class), or a conformance run is given one with
``--hwabstract-expectations`` / ``hwabstract conformance --expectations``. TOML::

    # expectations of the acme backend
    [[expected_failure]]
    test = "kernels::test_elementwise[tan-float16-*]"   # a pattern over test ids
    reason = "the Acme math library computes tan in float16 (2 ulps); fixed in driver 5"

In a pattern ``*`` matches any run of characters and ``?`` one character; everything else,
brackets included, matches itself. A matching test that fails is reported ``xfailed`` with
the reason; one that passes is
reported ``xpassed`` so the stale entry can be removed. Test ids are ``area::name[params]``
as the reports print them. Every entry needs both keys; a malformed file is an error, not a
silently empty list.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from ..errors import PluginError

__all__ = ["Expectations"]


class Expectations:
    """Known failures: (pattern, reason) pairs, and where they came from."""

    def __init__(
        self, entries: list[tuple[str, str]], source: str | None,
        standin_only: list[bool] | None = None,
    ) -> None:  # fmt: skip
        self.entries = entries
        self.source = source
        flags = standin_only or [False] * len(entries)
        self._compiled = [
            (_compile(pattern), reason, only) for (pattern, reason), only in zip(entries, flags)
        ]

    @classmethod
    def empty(cls) -> Expectations:
        return cls([], None)

    @classmethod
    def load(cls, path: Path) -> Expectations:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PluginError(f"cannot read the expectations file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise PluginError(f"the expectations file {path} is not valid TOML: {exc}") from None
        entries, flags = _entries(data, path)
        return cls(entries, str(path), flags)

    @classmethod
    def for_backend(cls, backend: Any) -> Expectations:
        """The file a backend class names in ``conformance_expectations`` (a path relative
        to the file of the module of the class that sets the attribute, so a shared base
        class can ship one for all its subclasses), or none."""
        name = getattr(type(backend), "conformance_expectations", None)
        if not name:
            return cls.empty()
        owner = next(k for k in type(backend).__mro__ if "conformance_expectations" in vars(k))
        module = sys.modules.get(owner.__module__)
        base = Path(getattr(module, "__file__", "") or ".").parent
        path = Path(name) if Path(name).is_absolute() else base / name
        if not path.is_file():
            raise PluginError(
                f"backend {getattr(backend, 'name', '?')!r} names the expectations file "
                f"{path}, which does not exist; ship it with the plugin or drop the attribute"
            )
        return cls.load(path)

    def match(self, test_id: str, standin: bool = False) -> str | None:
        """The reason of the first entry matching ``test_id`` (on a stand-in device if
        ``standin``), or None."""
        for pattern, reason, only in self._compiled:
            if (standin or not only) and pattern.fullmatch(test_id):
                return reason
        return None


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    )


def _entries(data: dict[str, Any], path: Path) -> tuple[list[tuple[str, str]], list[bool]]:
    unknown = set(data) - {"expected_failure"}
    if unknown:
        raise PluginError(
            f"{path}: unknown table(s) {sorted(unknown)}; the file holds [[expected_failure]] "
            "entries only"
        )
    raw = data.get("expected_failure", [])
    if not isinstance(raw, list):
        raise PluginError(f"{path}: expected_failure must be an array of tables ([[...]])")
    entries = []
    flags = []
    for i, entry in enumerate(raw):
        test, reason = (
            (entry.get("test"), entry.get("reason")) if isinstance(entry, dict) else (None, None)
        )
        if (
            not isinstance(test, str)
            or not test
            or not isinstance(reason, str)
            or not reason.strip()
        ):
            raise PluginError(
                f"{path}: expected_failure entry {i + 1} needs a non-empty 'test' pattern and "
                "a non-empty 'reason'"
            )
        only = entry.get("standin", False)
        if not isinstance(only, bool):
            raise PluginError(
                f"{path}: expected_failure entry {i + 1}: 'standin' must be true or false"
            )
        extra = set(entry) - {"test", "reason", "standin"}
        if extra:
            raise PluginError(
                f"{path}: expected_failure entry {i + 1} has unknown keys {sorted(extra)}"
            )
        entries.append((test, reason.strip()))
        flags.append(only)
    return entries, flags
