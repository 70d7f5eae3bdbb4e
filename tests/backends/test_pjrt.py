"""The shared PJRT backend (``hwabstract.backends.pjrt``), through the ``tpu`` plugin on its
stand-in (JAX's CPU client): availability and its reasons, honest naming, the contract
mapped onto JAX (views as index arithmetic, bit-exact data movement, asynchronous
launches, events, memory accounting, donation), and that ``import hwabstract`` stays free
of jax. Skipped where jax or the tpu plugin is not installed (``tox -e tpu`` has both).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed (tox -e tpu installs it)")
pytest.importorskip("hwabstract_tpu", reason="hwabstract-tpu is not installed")

import hwabstract as hw
from hwabstract.conformance.helpers import settled_in_use
from hwabstract.errors import BackendUnavailableError, OutOfMemoryError
from hwabstract.registry import PluginSource, Registry, reset_registry


def _registry(monkeypatch: pytest.MonkeyPatch, **env: str) -> Registry:
    for var in ("HWABSTRACT_TPU_STANDIN", "HWABSTRACT_TPU_STANDIN_MODEL",
                "HWABSTRACT_TPU_MEMORY", "HWABSTRACT_DEVICE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import hwabstract_tpu.plugin

    cpu = importlib.import_module("hwabstract.backends.cpu")
    registry = Registry(
        sources=[
            PluginSource("cpu", lambda: cpu, "hwabstract", hw.__version__),
            PluginSource("tpu", lambda: hwabstract_tpu.plugin, "hwabstract-tpu",
                         importlib.metadata.version("hwabstract-tpu")),
        ]
    )  # fmt: skip
    return registry


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    old = reset_registry(_registry(monkeypatch, HWABSTRACT_TPU_STANDIN="cpu"))
    yield hw.device("tpu:0")
    reset_registry(old)


def test_without_a_tpu_and_without_the_opt_in_it_is_unavailable_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = _registry(monkeypatch)
    (status,) = [s for s in registry.backends() if s.name == "tpu"]
    assert status.status == "unavailable"
    assert "no Google Cloud TPU found through JAX" in status.reason
    assert "HWABSTRACT_TPU_STANDIN=cpu" in status.reason  # says what to do
    with pytest.raises(BackendUnavailableError):
        registry.device("tpu:0")


def test_a_bad_setting_is_unavailable_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = _registry(monkeypatch, HWABSTRACT_TPU_STANDIN="gpu")
    (status,) = [s for s in registry.backends() if s.name == "tpu"]
    assert status.status == "unavailable" and "HWABSTRACT_TPU_STANDIN='gpu'" in status.reason
    registry = _registry(monkeypatch, HWABSTRACT_TPU_STANDIN="cpu",
                         HWABSTRACT_TPU_STANDIN_MODEL="v9z")  # fmt: skip
    (status,) = [s for s in registry.backends() if s.name == "tpu"]
    assert "v9z" in status.reason and "v5e" in status.reason


def test_the_standin_says_what_it_is_everywhere(standin: hw.Device) -> None:
    info = standin.info
    assert info.standin and info.standin_for == "Google Cloud TPU v5e"
    assert "stand-in (PJRT CPU)" in info.name
    assert info.modeled_memory_capacity == 16 * 10**9
    assert info.memory_capacity == 2 << 30  # the emulated capacity, host RAM backs it
    assert info.extra["pjrt_platform"] == "cpu"
    (status,) = [s for s in hw.backends() if s.name == "tpu"]
    assert status.standin


def test_the_standin_declares_the_chip_profile_not_the_host(standin: hw.Device) -> None:
    caps = standin.capabilities
    assert hw.bfloat16 in caps.dtypes and hw.float32 in caps.dtypes
    assert hw.float64 not in caps.dtypes and hw.complex64 not in caps.dtypes
    assert not caps.supports_kernel("exp", hw.float64)
    with pytest.raises(hw.UnsupportedError):
        hw.zeros((2,), dtype=hw.float64, device=standin)


def test_another_generation_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    old = reset_registry(_registry(monkeypatch, HWABSTRACT_TPU_STANDIN="cpu",
                                   HWABSTRACT_TPU_STANDIN_MODEL="v6e"))  # fmt: skip
    try:
        d = hw.device("tpu:0")
        assert d.info.standin_for.startswith("Google Cloud TPU v6e")
        assert hw.float8_e5m2 in d.capabilities.dtypes
    finally:
        reset_registry(old)


def test_views_reads_and_writes_go_through_index_arithmetic(standin: hw.Device) -> None:
    a = np.arange(48, dtype=np.float32).reshape(6, 8)
    x = hw.asarray(a, device=standin)
    np.testing.assert_array_equal(x[1::2, ::-3].numpy(), a[1::2, ::-3])
    np.testing.assert_array_equal(hw.add(x.mT, 1.0).numpy(), a.T + 1)
    x[::2, 2:6] = hw.zeros((3, 4), device=standin)
    a[::2, 2:6] = 0
    np.testing.assert_array_equal(x.numpy(), a)


def test_data_moves_as_bits(standin: hw.Device) -> None:
    # bfloat16 NaN payloads and subnormals: a copy through a view keeps every bit
    raw = np.arange(65536, dtype=np.uint16)
    host = raw.view(hw.bfloat16.numpy_dtype)
    x = hw.asarray(host, device=standin)
    y = hw.empty((65536,), dtype=hw.bfloat16, device=standin)
    y[::2] = x[::2]
    y[1::2] = x[1::2]
    assert np.array_equal(y.numpy().view(np.uint16), raw)


def test_a_view_in_another_dtype_is_a_bitcast(standin: hw.Device) -> None:
    x = hw.asarray(np.array([1.0, -2.0], np.float32), device=standin)
    storage = x._storage
    as_int = hw.Tensor._wrap(storage, hw.int32, (2,))
    assert as_int.numpy().tolist() == np.array([1.0, -2.0], np.float32).view(np.int32).tolist()


def test_launches_are_asynchronous_and_events_mark_readiness(standin: hw.Device) -> None:
    s = standin.create_stream()
    x = hw.ones((256, 256), device=standin, stream=s)
    for _ in range(4):
        x = hw.matmul(x, x, stream=s)
        x = hw.multiply(x, 1 / 256, stream=s)
    done = s.record()
    done.synchronize()
    assert done.query() and s.query()
    np.testing.assert_allclose(x.numpy(), np.ones((256, 256)), rtol=1e-5)


def test_memory_is_accounted_and_out_of_memory_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = reset_registry(_registry(monkeypatch, HWABSTRACT_TPU_STANDIN="cpu",
                                   HWABSTRACT_TPU_MEMORY="64MiB"))  # fmt: skip
    try:
        d = hw.device("tpu:0")
        before = settled_in_use(d)
        t = hw.empty((1 << 20,), dtype=hw.float32, device=d)
        assert d.memory_stats().in_use == before + (4 << 20)
        with pytest.raises(OutOfMemoryError) as info:
            hw.empty((64 << 20,), dtype=hw.float32, device=d)
        assert info.value.capacity == 64 << 20 and "tpu:0" in str(info.value)
        del t
        assert settled_in_use(d) == before
    finally:
        reset_registry(old)


def test_a_partial_write_donates_the_old_array(standin: hw.Device) -> None:
    x = hw.zeros((1024,), device=standin)
    old = x._storage.buffer.array
    x[::2] = hw.ones((512,), device=standin)
    assert old.is_deleted(), "the partial write should have updated the buffer in place"
    np.testing.assert_array_equal(x.numpy()[:4], [1, 0, 1, 0])


def test_executables_are_cached_per_kernel_and_layout(standin: hw.Device) -> None:
    impl = standin._impl
    x = hw.ones((33,), device=standin)
    hw.add(x, x)
    count = len(impl._executables)
    for _ in range(5):
        hw.add(x, x)
    assert len(impl._executables) == count
    hw.add(x[::2], x[::2])
    assert len(impl._executables) == count + 1


def test_pallas_custom_kernel_in_interpret_mode(standin: hw.Device) -> None:
    from hwabstract_tpu import pallas_call

    def axpy(x_ref, y_ref, o_ref):  # type: ignore[no-untyped-def]
        o_ref[...] = 2.0 * x_ref[...] + y_ref[...]

    run = pallas_call(axpy, out_shape=(16,), out_dtype=hw.float32)
    x = hw.asarray(np.arange(16, dtype=np.float32), device=standin)
    y = hw.ones((16,), device=standin)
    np.testing.assert_array_equal(run(x, y).numpy(), 2 * np.arange(16) + 1)
    np.testing.assert_array_equal(run(hw.flip(x), y).numpy(), 2 * np.arange(16)[::-1] + 1)
    assert hw.Feature.CUSTOM_KERNELS in standin.capabilities.features
    with pytest.raises(hw.DeviceError):
        run(hw.ones((16,), device="cpu:0"), hw.ones((16,), device="cpu:0"))


def test_an_unknown_device_kind_is_not_passed_off_as_a_known_chip(standin: hw.Device) -> None:
    class Fake:
        device_kind = "TPU v9 ultra"

    profile = standin._impl._profile_of(Fake())
    assert profile.key == "unknown" and "TPU v9 ultra" in profile.name
    assert not profile.peak_ops and "matches no known generation" in profile.notes

    class V6:
        device_kind = "TPU v6 lite"

    assert standin._impl._profile_of(V6()).key == "v6e"


def test_importing_hwabstract_and_the_plugin_does_not_import_jax() -> None:
    code = (
        "import sys, hwabstract, hwabstract_tpu, hwabstract_tpu.plugin; print('jax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
