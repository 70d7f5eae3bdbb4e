"""The hwabstract conformance suite: certifies a backend against the contract.

Run it with the CLI (``hwabstract conformance [BACKEND ...] --report-dir DIR``) or with
pytest (``pytest --pyargs hwabstract.conformance.suite --hwabstract-backend NAME``). The
suite is driven by the device's capability manifest: what a device declares must pass,
what it does not declare is reported as *not claimed*. See ``docs/conformance.md``.

* :mod:`~hwabstract.conformance.plugin` -- the pytest plugin (options, target, reports);
* :mod:`~hwabstract.conformance.suite` -- the tests, one module per area;
* :mod:`~hwabstract.conformance.report` -- JSON, JUnit XML, Markdown and HTML reports;
* :mod:`~hwabstract.conformance.numerics` -- test data and the tolerance policy;
* :mod:`~hwabstract.conformance.expectations` -- a backend's known failures.

Importing this package imports neither pytest nor any backend.
"""

from __future__ import annotations

__all__ = ["AREAS"]

#: The areas of the suite, in report order (one test module each).
AREAS = (
    "discovery",
    "memory",
    "transfers",
    "dtypes",
    "streams",
    "kernels",
    "array_api",
    "mx",
    "errors",
)
