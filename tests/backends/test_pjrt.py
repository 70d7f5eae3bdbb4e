"""The shared PJRT backend (``hwabstract.backends.pjrt``), through the ``tpu`` plugin on its
stand-in (JAX's CPU client): availability and its reasons, honest naming, the contract
mapped onto JAX (views as index arithmetic, bit-exact data movement, asynchronous
launches, events, memory accounting, donation), and that ``import hwabstract`` stays free
of jax. Skipped where jax or the tpu plugin is not installed (``tox -e tpu`` has both).

The sorting, indexing, cumulative, FFT and linear-algebra kernels run on the TPU stand-in for
every dtype its profile declares them for, and on a stand-in declaring every dtype for the
rest (complex, float64, float8, the FFTs), against the references (array_kernel_cases.py);
kernels with several outputs are launched through the backend contract with one output
tensor each.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import types
import warnings
from collections.abc import Iterator
from typing import Any

import array_kernel_cases
import numpy as np
import pytest

pytest.importorskip("jax", reason="jax is not installed (tox -e tpu installs it)")
pytest.importorskip("hwabstract_tpu", reason="hwabstract-tpu is not installed")

import hwabstract as hw
from hwabstract import dispatch
from hwabstract.conformance.helpers import settled_in_use
from hwabstract.dtypes import DType
from hwabstract.errors import BackendUnavailableError, KernelError, OutOfMemoryError
from hwabstract.kernels import get_spec
from hwabstract.registry import PluginSource, Registry, reset_registry


def _registry(monkeypatch: pytest.MonkeyPatch, *extra: PluginSource, **env: str) -> Registry:
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
            *extra,
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


def test_a_result_keeps_its_shape_in_its_buffer_and_reads_as_any_view(
    standin: hw.Device,
) -> None:
    """A launch that writes a buffer whole leaves its result in its own shape (flattening it
    in the same program costs XLA:CPU its vectorized loop); every reader sees the buffer's
    contents in C order whatever that shape is."""
    a = np.arange(24, dtype=np.float32).reshape(4, 6) / 7
    x = hw.asarray(a, device=standin)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    expected = e / e.sum(axis=-1, keepdims=True)
    y = hw.softmax(x)
    assert y._storage.buffer.array.shape == (4, 6)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(y.reshape((24,)).numpy(), expected.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(y.T.numpy(), expected.T, rtol=1e-6)
    np.testing.assert_allclose(hw.add(y.reshape((2, 12)), 1.0).numpy(),
                               expected.reshape(2, 12) + 1, rtol=1e-6)  # fmt: skip
    bits = hw.Tensor._wrap(y._storage, hw.int32, (4, 6))  # the buffer in another dtype
    np.testing.assert_array_equal(bits.numpy(), y.numpy().view(np.int32))
    # a partial write still donates the old array, and keeps its shape
    old = y._storage.buffer.array
    y[1:3, ::2] = hw.zeros((2, 3), device=standin)
    assert old.is_deleted() and y._storage.buffer.array.shape == (4, 6)
    expected[1:3, ::2] = 0
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    # a sum's 0-d result, read back and used again
    total = hw.sum(y)
    assert total._storage.buffer.array.shape == ()
    assert abs(float(hw.multiply(total, 2.0).item()) - 2 * expected.sum()) < 1e-4


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint8", "uint16", "uint32"])
def test_integer_matmul_wraps_like_numpy_and_warns_nothing(standin: hw.Device, dtype: str) -> None:
    """Integer matmul accumulates in 32 bits: without x64, asking JAX for 64-bit integers
    would warn (and truncate) on every launch. Cast back, the sum is the same modulo the
    dtype's width (found by the API fuzzer run on the stand-in)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(0)
    a = rng.integers(info.min, info.max, (3, 40), dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, (40, 2), dtype=dtype, endpoint=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = hw.matmul(hw.asarray(a, device=standin), hw.asarray(b, device=standin)).numpy()
    expected = (a.astype(np.int64) @ b.astype(np.int64)).astype(dtype)  # wraps
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint16", "uint32"])
def test_integer_pow_wraps_like_numpy_for_any_exponent(standin: hw.Device, dtype: str) -> None:
    """``jnp.power`` multiplies for the low 6 bits of an integer exponent only, so 3 ** 100
    in int32 was not NumPy's wrapped product; the table squares and multiplies over every
    bit (found by the API fuzzer's long run on the stand-in)."""
    a, b, expected = array_kernel_cases.integer_pow_case(dtype)
    got = hw.pow(hw.asarray(a, device=standin), hw.asarray(b, device=standin)).numpy()
    np.testing.assert_array_equal(got, expected)


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


def test_launches_after_the_first_take_the_bound_executable(standin: hw.Device) -> None:
    impl = standin._impl
    calls: list[str] = []
    original = impl.launch

    def counting(stream, kernel, inputs, outputs, attributes):  # type: ignore[no-untyped-def]
        calls.append(kernel)
        original(stream, kernel, inputs, outputs, attributes)

    impl.launch = counting
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = hw.asarray(a, device=standin)
    results = [hw.multiply(x, 0.5) for _ in range(4)]
    assert calls == ["multiply"]  # the first; the others went through the bound launch
    for r in results:
        np.testing.assert_array_equal(r.numpy(), a * 0.5)


def test_a_bound_launch_checks_the_buffers_it_was_not_specialized_on(
    standin: hw.Device,
) -> None:
    # x[:8] of a 16-element buffer has the layout of a whole 8-element tensor (shape (8,),
    # strides (1,), offset 0): the core's signature is the same, the buffer's size is not
    whole = hw.asarray(np.arange(8, dtype=np.float32), device=standin)
    big = hw.asarray(np.arange(16, dtype=np.float32) * 10, device=standin)
    for _ in range(2):
        np.testing.assert_array_equal(hw.add(whole, whole).numpy(), np.arange(8) * 2)
    np.testing.assert_array_equal(hw.add(big[:8], big[:8]).numpy(), np.arange(8) * 20)
    # a buffer holding another dtype's array (a bitcast view) is read through its bits
    bits = np.array([1.0, -2.0, 0.5, 3.0, 0, 0, 0, 0], np.float32).view(np.int32)
    as_int = hw.Tensor._wrap(hw.asarray(bits.view(np.float32), device=standin)._storage,
                             hw.int32, (8,))  # fmt: skip
    ints = hw.asarray(np.arange(8, dtype=np.int32), device=standin)
    for _ in range(2):
        assert hw.add(ints, ints).tolist() == list(range(0, 16, 2))
    impl, launched = standin._impl, []
    original = impl.launch
    impl.launch = lambda *args: (launched.append(args[1]), original(*args))  # type: ignore
    assert hw.add(as_int, as_int).tolist() == (bits * 2).tolist()
    assert launched == ["add"]  # not the executable traced for int32 arrays


def test_a_bound_launch_refuses_a_destroyed_stream(standin: hw.Device) -> None:
    s = standin.create_stream()
    x = hw.asarray(np.ones(4, np.float32), device=standin, stream=s)
    hw.exp(x, stream=s)
    hw.exp(x, stream=s)  # bound by now
    standin._impl.destroy_stream(s.handle)
    with pytest.raises(hw.StreamError, match="destroyed"):
        hw.exp(x, stream=s)


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


# -- sorting, indexing, cumulative, FFT and linalg, on the stand-ins ------------------------------


@hw.hookimpl
def _every_dtype_backends() -> list[type[hw.Backend]]:
    return [array_kernel_cases.EveryDtypeStandin]


@pytest.fixture(scope="module")
def standins() -> Iterator[tuple[hw.Device, hw.Device]]:
    """The TPU stand-in and the every-dtype stand-in, for the whole module (their compiled
    executables are kept between tests)."""
    with pytest.MonkeyPatch.context() as mp:
        plugin = types.SimpleNamespace(hwabstract_backends=_every_dtype_backends)
        every = PluginSource("every", lambda: plugin, "hwabstract-tests", "0")
        registry = _registry(mp, every, HWABSTRACT_TPU_STANDIN="cpu",
                             HWABSTRACT_TEST_PJRT_STANDIN="cpu")  # fmt: skip
        old = reset_registry(registry)
        try:
            yield hw.device("tpu:0"), hw.device("pjrt-every-dtype:0")
        finally:
            reset_registry(old)
            dispatch._SCALAR_CACHE.clear()  # (cached scalar tensors keep their devices alive)


def _param(name: str, dtype: DType) -> Any:
    """Every kernel runs in float32 (complex64 for the complex-only FFTs) at every commit;
    its other dtypes (about two minutes of compiling on the CPU client) are marked slow:
    ``tox -e tpu`` runs them."""
    first = dtype is (hw.float32 if hw.float32 in get_spec(name).dtypes else hw.complex64)
    marks = () if first else (pytest.mark.slow,)
    return pytest.param(name, dtype, marks=marks, id=f"{name}-{dtype.name}")


@pytest.mark.parametrize(("name", "dtype"), [_param(k, d) for k, d in array_kernel_cases.pairs()])
def test_sorting_indexing_cumulative_fft_and_linalg_match_the_reference(
    standins: tuple[hw.Device, hw.Device], name: str, dtype: DType
) -> None:
    tpu, every = standins
    device = tpu if tpu.capabilities.supports_kernel(name, dtype) else every
    spec = get_spec(name)
    for label, operands, attributes in array_kernel_cases.cases(name, dtype):
        actual, want, host, normalized = array_kernel_cases.run(device, spec, operands, attributes)
        where = f"{name}[{dtype}] on {device.name} ({label})"
        array_kernel_cases.check(spec, actual, want, host, normalized, where)


def test_the_tpu_declares_these_kernels_for_its_real_dtypes_only(
    standins: tuple[hw.Device, hw.Device],
) -> None:
    caps = standins[0].capabilities
    for name in array_kernel_cases.NAMES:
        declared = caps.kernels.get(name, frozenset())
        assert all(d.kind != "c" and d is not hw.float64 for d in declared), name
        if get_spec(name).category != "fft":
            assert hw.float32 in declared or hw.int32 in declared, name
    assert not {"fft", "rfft", "irfft"} & set(caps.kernels)  # (rfft's output is complex)
    assert caps.kernels["cholesky"] == {hw.float16, hw.bfloat16, hw.float32}


def _gather(device: hw.Device, name: str, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    args = [hw.asarray(x, device=device), hw.asarray(idx, device=device)]
    return dispatch.launch(name, args, {"axis": 0}).numpy()


@pytest.mark.parametrize("name", ["take", "take_along_axis"])
def test_out_of_range_indices_give_the_fill_value(
    standins: tuple[hw.Device, hw.Device], name: str
) -> None:
    """JAX cannot raise from a kernel: ``mode="fill"`` (see array_kernels) -- NaN for
    floats, the most negative signed value, the largest unsigned one, True for bool --
    wherever an index is outside [-n, n), whatever its dtype; valid ones are read."""
    tpu = standins[0]
    for idx in (np.array([5, -6, 4, -5, 127], np.int8), np.array([5, 4, 255], np.uint8),
                np.array([2**32 - 1, 2**31, 4], np.uint32)):  # fmt: skip
        bad = (idx.astype(np.int64) >= 5) | (idx.astype(np.int64) < -5)
        got = _gather(tpu, name, np.arange(5, dtype=np.float32) + 1, idx)
        assert np.array_equal(np.isnan(got), bad), (idx, got)
        assert got[~bad].tolist() == (np.arange(5)[idx[~bad].astype(np.int64)] + 1).tolist()
    for dtype, fill in ((np.int32, np.iinfo(np.int32).min), (np.uint16, 2**16 - 1),
                        (np.bool_, True)):  # fmt: skip
        got = _gather(tpu, name, np.zeros(5, dtype), np.array([0, 9], np.int32))
        assert got.tolist() == [0, fill], dtype
    # an axis of length 0: every index is out of range, which the shapes alone say
    with pytest.raises(KernelError, match="an index into an axis of length 0"):
        _gather(tpu, name, np.zeros(0, np.float32), np.array([0], np.int32))


def test_a_wrong_nonzero_count_pads_or_truncates(standins: tuple[hw.Device, hw.Device]) -> None:
    """JAX needs flatnonzero's size when it traces: the core's count, taken as given."""
    x = hw.asarray(np.array([0, 3, 0, 4, 5], np.int32), device=standins[0])
    assert dispatch.launch("flatnonzero", [x], {"count": 3}).numpy().tolist() == [1, 3, 4]
    assert dispatch.launch("flatnonzero", [x], {"count": 5}).numpy().tolist() == [1, 3, 4, 0, 0]
    assert dispatch.launch("flatnonzero", [x], {"count": 2}).numpy().tolist() == [1, 3]


def test_several_outputs_into_views_of_one_buffer(standins: tuple[hw.Device, hw.Device]) -> None:
    """The outputs of one launch may be views, even of one buffer: each is written in place
    (a partial write) and the buffer keeps every one of them."""
    tpu = standins[0]
    a = np.array([[[2.0, 1.0], [1.0, 3.0]], [[0.0, 1.0], [1.0, 0.0]]], np.float32)
    x = hw.asarray(a, device=tpu)
    both = hw.asarray(np.full((3, 2), 9.0, np.float32), device=tpu)
    outs = [both[0], both[2]]  # sign, logabsdet: rows 0 and 2, row 1 untouched
    stream = tpu.default_stream
    tpu._impl.launch(stream.handle, "slogdet", [x._operand()], [o._operand() for o in outs],
                     {})  # fmt: skip
    both._storage.mark_written(stream)
    sign, logabs = np.linalg.slogdet(a)
    np.testing.assert_allclose(both.numpy(), [sign, [9.0, 9.0], logabs], rtol=1e-6)


def test_a_multi_output_kernel_asked_for_its_first_output_only(
    standins: tuple[hw.Device, hw.Device],
) -> None:
    """``dispatch.launch`` of a kernel with several outputs hands the backend the first one
    (as the cpu backend writes it): the PJRT backend writes that one."""
    a = np.array([[4.0, 1.0], [2.0, 3.0]], np.float32)
    x = hw.asarray(a, device=standins[0])
    sign = dispatch.launch("slogdet", [x]).numpy()
    assert sign.dtype == np.float32 and sign.tolist() == 1.0


def test_multi_output_executables_are_cached(standins: tuple[hw.Device, hw.Device]) -> None:
    tpu = standins[0]
    impl: Any = tpu._impl
    x = hw.asarray(np.eye(3, dtype=np.float32) * 2, device=tpu)
    spec = get_spec("qr")
    array_kernel_cases.run(tpu, spec, [x.numpy()], {})
    count = len(impl._executables)
    for _ in range(3):
        array_kernel_cases.run(tpu, spec, [x.numpy()], {})
    assert len(impl._executables) == count
