"""The package's front door: lazy loading keeps ``import hwabstract`` cheap, and every public
name resolves."""

from __future__ import annotations

import subprocess
import sys

import hwabstract as hw
from hwabstract import operations


def test_all_lists_every_public_name_and_each_resolves() -> None:
    assert set(operations.__all__) <= set(hw.__all__)
    for name in hw.__all__:
        assert getattr(hw, name) is not None or name == "newaxis", name
    assert set(hw.__all__) <= set(dir(hw))


def test_unknown_attribute_raises_attribute_error() -> None:
    try:
        hw.no_such_function  # noqa: B018
    except AttributeError as exc:
        assert "no_such_function" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_loads_neither_vendor_stacks_nor_discovery() -> None:
    code = (
        "import sys, hwabstract; "
        "print(sorted(m for m in ('jax', 'cupy', 'torch', 'pluggy', 'importlib.metadata', "
        "'hwabstract.operations', 'hwabstract.registry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_first_use_lists_cpu_and_operators_work_without_touching_the_kernel_module() -> None:
    code = (
        "import hwabstract as hw, numpy as np; "
        "print([d.name for d in hw.devices()]); "
        "x = hw.asarray(np.arange(3, dtype=np.float32)); print((x @ x).item(), (-x).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["['cpu:0']", "5.0 [-0.0, -1.0, -2.0]"]


def test_composed_names_match_their_modules() -> None:
    from hwabstract import manipulation, searching

    assert hw._COMPOSED_NAMES["manipulation"] == set(manipulation.__all__)
    assert hw._COMPOSED_NAMES["searching"] == set(searching.__all__)
