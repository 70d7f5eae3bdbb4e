"""The hwabstract-trainium distribution: entry point, environment, chip profiles, and the
backend on its stand-in (the shared PJRT code is tested in tests/backends/test_pjrt.py)."""

from __future__ import annotations

import importlib
import importlib.metadata

import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed (tox -e trainium installs it)")
pytest.importorskip("hwabstract_trainium", reason="hwabstract-trainium is not installed")

from hwabstract_trainium.backend import TrainiumBackend
from hwabstract_trainium.profiles import DEFAULT, PROFILES

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.registry import PluginSource, Registry, reset_registry


def _registry(monkeypatch: pytest.MonkeyPatch, **env: str) -> Registry:
    for var in ("HWABSTRACT_TRAINIUM_STANDIN", "HWABSTRACT_TRAINIUM_STANDIN_MODEL",
                "HWABSTRACT_DEVICE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = importlib.import_module("hwabstract_trainium.plugin")
    version = importlib.metadata.version("hwabstract-trainium")
    return Registry(
        sources=[PluginSource("trainium", lambda: plugin, "hwabstract-trainium", version)]
    )


def test_the_entry_point_names_the_plugin_module() -> None:
    (ep,) = [e for e in importlib.metadata.entry_points(group="hwabstract") if e.name == "trainium"]
    assert ep.value == "hwabstract_trainium.plugin"
    assert "HWABSTRACT_TRAINIUM_STANDIN" in TrainiumBackend.environment


@pytest.mark.parametrize("key", sorted(PROFILES))
def test_each_profile_is_complete_and_sourced(key: str) -> None:
    p = PROFILES[key]
    assert p.key == key and p.vendor in ("AWS", "Amazon Web Services")
    assert p.hbm_bytes > 10**9 and p.hbm_bandwidth > 1e11 and p.sources
    for name in (*p.dtypes, *p.peak_ops):
        dt.dtype(name)
    assert "float64" not in p.dtypes, "Trainium has no float64"
    assert "float8_e5m2" in p.dtypes, "Trainium computes in FP8"
    assert DEFAULT in PROFILES


def test_without_the_chip_and_without_the_opt_in_it_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (status,) = _registry(monkeypatch).backends()
    assert status.status == "unavailable"
    assert "no AWS Trainium found through JAX" in status.reason
    assert "HWABSTRACT_TRAINIUM_STANDIN=cpu" in status.reason


def test_the_standin_runs_and_says_what_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    old = reset_registry(_registry(monkeypatch, HWABSTRACT_TRAINIUM_STANDIN="cpu"))
    try:
        d = hw.device("trainium:0")
        assert d.info.standin and "stand-in (PJRT CPU)" in d.info.name
        assert d.info.standin_for == PROFILES[DEFAULT].name
        assert hw.float8_e5m2 in d.capabilities.dtypes
        assert hw.float64 not in d.capabilities.dtypes
        x = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3), device=d)
        np.testing.assert_array_equal(hw.sum(x * 2, axis=0).numpy(), [6, 10, 14])
    finally:
        reset_registry(old)


def test_the_standin_declares_and_runs_the_sorting_and_linalg_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Declared for the chip's real dtypes (never float64 or complex: no FFT, whose inputs
    or outputs are complex), launched through the shared PJRT code -- a kernel with several
    outputs included."""
    old = reset_registry(_registry(monkeypatch, HWABSTRACT_TRAINIUM_STANDIN="cpu"))
    try:
        d = hw.device("trainium:0")
        kernels = d.capabilities.kernels
        for name in ("sort", "take", "cumulative_sum", "cholesky", "eigh", "svd", "solve"):
            assert hw.float32 in kernels[name] and hw.bfloat16 in kernels[name], name
            assert not any(t.kind == "c" or t is hw.float64 for t in kernels[name]), name
        assert hw.float8_e5m2 in kernels["sort"] and hw.float8_e5m2 in kernels["qr"]
        assert not {"fft", "rfft", "irfft"} & set(kernels)
        x = np.array([3.0, -1.0, 2.0, -0.0, 0.0], np.float32)
        t = hw.asarray(x.astype(hw.float8_e5m2.numpy_dtype), device=d)
        got = hw.dispatch.launch("sort", [t], {"descending": True}).numpy()
        assert got.astype(np.float32).tolist() == [3.0, 2.0, -0.0, 0.0, -1.0]
        # ties keep their order (-0.0 first), as in the reversed ascending sort
        assert np.signbit(got.astype(np.float32)).tolist() == [False, False, True, False, True]
        h = np.array([[2.0, 0.0], [1.0, 2.0]], np.float32)  # the lower triangle is read
        a = hw.asarray(h, device=d)
        outs = [hw.dispatch.allocate(d, (2,), hw.float32),
                hw.dispatch.allocate(d, (2, 2), hw.float32)]  # fmt: skip
        stream = d.default_stream
        d._impl.launch(stream.handle, "eigh", [a._operand()], [o._operand() for o in outs], {})
        for o in outs:
            o._storage.mark_written(stream)
        np.testing.assert_allclose(outs[0].numpy(), [1.0, 3.0], rtol=1e-6)
        v = outs[1].numpy()
        np.testing.assert_allclose(v @ np.diag([1.0, 3.0]) @ v.T, [[2, 1], [1, 2]], atol=1e-6)
    finally:
        reset_registry(old)
