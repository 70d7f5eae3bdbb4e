"""The reference side of the suite: ``check_kernel`` and its accumulation bound."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hwabstract as hw
from hwabstract.conformance.reference import check_kernel, variance_scale
from hwabstract.registry import PluginSource, Registry

#: three equal float32 values whose float32 mean is not exact: NumPy's float32 variance of
#: them is 8.9e-16, the exact one 0 (found by the API fuzzer on maia, issue 9)
CONSTANT = np.full(3, 0.34899992, np.float32)


def _device_returning(
    monkeypatch: pytest.MonkeyPatch, name: str, value: Callable[[np.ndarray], Any]
) -> hw.Device:
    """cpu:0, with ``hw.<name>`` replaced by a backend that returns ``value(x)`` (computed
    on the host) for the tensor ``x``: a stand-in for a backend more -- or less -- accurate
    than NumPy's float32 reference."""
    device = hw.device("cpu:0")

    def kernel(x: hw.Tensor, **attrs: Any) -> hw.Tensor:
        result = np.asarray(value(x.numpy().astype(np.float64)), dtype=x.dtype.numpy_dtype)
        return hw.asarray(result, device=device)

    monkeypatch.setattr(hw, name, kernel)
    return device


@pytest.mark.parametrize("name", ["var", "std"])
def test_an_exact_variance_of_a_constant_vector_passes(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound used to scale by the kernel applied to ``|x|``: var(|x|) = 0 here, so a
    backend computing the exact 0 failed against NumPy's 8.9e-16 (std: 3e-8)."""
    assert float(np.var(CONSTANT)) == pytest.approx(8.88e-16, rel=0.01)
    assert float(np.var(np.abs(CONSTANT).astype(np.float64))) == 0.0
    exact = getattr(np, name)
    device = _device_returning(monkeypatch, name, exact)
    x = hw.asarray(CONSTANT, device=device)
    check_kernel(name, device, [x], {"axis": 0})
    check_kernel(name, device, [x], {"axis": 0, "correction": 1.0})


@pytest.mark.parametrize("name", ["var", "std"])
def test_a_variance_that_cancels_catastrophically_fails(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound is the two-pass algorithm's, not one loose enough for the textbook formula
    ``mean(x**2) - mean(x)**2`` in float32, which loses every digit when the mean is large
    beside the spread."""
    rng = np.random.default_rng(9)
    x = (1000 + rng.standard_normal(16)).astype(np.float32)

    def one_pass(values: np.ndarray) -> Any:
        v = values.astype(np.float32)
        variance = np.mean(v * v, dtype=np.float32) - np.mean(v, dtype=np.float32) ** 2
        return np.sqrt(np.abs(variance)) if name == "std" else variance

    exact = float(np.var(x.astype(np.float64)))
    assert abs(float(one_pass(x)) ** (2 if name == "std" else 1) - exact) > 0.01 * exact
    device = _device_returning(monkeypatch, name, one_pass)
    with pytest.raises(AssertionError, match="off by more than"):
        check_kernel(name, device, [hw.asarray(x, device=device)], {})
    monkeypatch.undo()
    device = _device_returning(monkeypatch, name, getattr(np, name))  # exact: passes
    check_kernel(name, device, [hw.asarray(x, device=device)], {})


def test_variance_scale() -> None:
    x = np.array([[1.0, -1.0, 3.0], [2.0, 2.0, 2.0]])
    eps = 2.0**-23
    got = variance_scale(x, axes=(1,), keepdims=False, correction=1.0, epsilon=eps)
    sum_sq = np.array([11.0, 12.0])
    np.testing.assert_allclose(got, (np.var(x, axis=1, ddof=1) * 2 + 3 * eps * sum_sq) / 2)
    assert got[1] > 0, "a constant row still has the mean's rounding"
    kept = variance_scale(x, axes=(0, 1), keepdims=True, correction=0.0, epsilon=eps)
    assert kept.shape == (1, 1)
    none_left = variance_scale(x, axes=(1,), keepdims=False, correction=3.0, epsilon=eps)
    assert none_left.shape == (2,) and np.isnan(none_left).all()


def test_maia_passes_var_and_std_of_a_constant_vector(
    fresh_registry: Callable[..., Registry],
) -> None:
    """The case as the fuzzer found it: the Maia emulator computes var in two passes in
    double, exactly 0 here."""
    if importlib.util.find_spec("hwabstract_maia") is None:
        pytest.skip("the hwabstract-maia plugin is not installed (tox -e maia installs it)")
    plugin = importlib.import_module("hwabstract_maia.plugin")
    version = importlib.metadata.version("hwabstract-maia")
    fresh_registry([PluginSource("maia", lambda: plugin, "hwabstract-maia", version)])
    device = hw.device("maia:0")
    x = hw.asarray(CONSTANT, device=device)
    assert hw.var(x).item() == 0.0 and hw.std(x).item() == 0.0
    for name in ("var", "std"):
        check_kernel(name, device, [x], {"axis": 0})
