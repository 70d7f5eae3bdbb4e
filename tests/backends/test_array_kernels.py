"""The array-module kernel table (``hwabstract.backends.array_kernels``), run on NumPy.

Every kernel the table implements, for every dtype its spec defines (ml_dtypes' bfloat16
and float8 arrays included), is checked against the spec's NumPy reference with the
conformance suite's own inputs (:mod:`hwabstract.conformance.numerics`) and tolerance policy
(:func:`hwabstract.conformance.reference.check_kernel`). The table runs behind a device: the
cpu backend with its kernels replaced by the table's functions on NumPy, so dispatch derives
the compute and output dtypes, the broadcast shapes and the normalized attributes exactly as
it does for a PJRT or NVIDIA device. Each launch also checks the function's result dtype and
shape (the cpu backend would otherwise cast on copy), and that the function looks nothing up
in the namespace once it is built.

The sorting, indexing, cumulative, FFT and linear-algebra kernels take their inputs and
checks from array_kernel_cases.py (shared with the PJRT and nvidia tests): by value against
the reference, and by reconstruction where a factor is only defined up to sign or phase.

Also: the table covers every kernel the PJRT backends declare, and a namespace lacking a
function fails when the kernel is built, naming the function.
"""

from __future__ import annotations

import types
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import array_kernel_cases
import attrs
import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dispatch
from hwabstract import dtypes as dt
from hwabstract.backend import DTypeSupport, Operand
from hwabstract.backends.array_kernels import (
    ArrayModule,
    implemented,
    kernel_function,
    numpy_module,
)
from hwabstract.backends.cpu import CpuBackend
from hwabstract.conformance.numerics import (
    kernel_sample,
    special_operands,
    special_values,
    subnormal_operands,
)
from hwabstract.conformance.reference import check_kernel
from hwabstract.dtypes import DType
from hwabstract.kernels import KernelSpec, all_specs, get_spec
from hwabstract.registry import PluginSource, Registry, reset_registry

# -- the table behind a device ---------------------------------------------------------------------


class _BuildTimeOnly:
    """A namespace that answers lookups until :meth:`close`, and fails any lookup after it:
    a kernel function must have taken every function it uses while it was built."""

    def __init__(self, xp: Any, kernel: str) -> None:
        self._xp, self._kernel, self._open = xp, kernel, True

    def close(self) -> None:
        self._open = False

    def __getattr__(self, name: str) -> Any:
        if not self._open:
            raise AssertionError(
                f"kernel {self._kernel!r} looked up {name!r} in the namespace when called, "
                "not when built"
            )
        return getattr(self._xp, name)


class ArrayTableBackend(CpuBackend):
    """The cpu backend computing every kernel with the array-module table on NumPy."""

    name = "arraytable"

    def launch(self, stream: Any, kernel: str, inputs: Sequence[Operand],
               outputs: Sequence[Operand], attributes: Mapping[str, Any]) -> None:  # fmt: skip
        xp = _BuildTimeOnly(np, kernel)
        fn = kernel_function(attrs.evolve(numpy_module(), xp=xp), kernel, attributes)
        xp.close()
        want = [(out.dtype.numpy_dtype, tuple(out.shape)) for out in outputs]

        def table(*arrays: Any, **_: Any) -> Any:
            result = fn(*arrays)  # (a tuple for a kernel with several outputs)
            results = tuple(np.asarray(r) for r in (result if isinstance(result, tuple)
                                                    else (result,)))  # fmt: skip
            got = [(r.dtype, r.shape) for r in results]
            assert got == want, f"kernel {kernel!r} returned {got}, the outputs are {want}"
            return results

        # the cpu backend runs (ufunc, reference) entries; this launch runs the table's
        self._kernels[kernel] = (None, table)
        super().launch(stream, kernel, inputs, outputs, attributes)


@hw.hookimpl
def _array_table_backends() -> list[type[hw.Backend]]:
    return [ArrayTableBackend]


@pytest.fixture(scope="module")
def device() -> Iterator[hw.Device]:
    plugin = types.SimpleNamespace(hwabstract_backends=_array_table_backends)
    registry = Registry([PluginSource("arraytable", lambda: plugin, "hwabstract-tests", "0")])
    old = reset_registry(registry)
    yield hw.device("arraytable:0")
    reset_registry(old)
    cache = getattr(dispatch, "_SCALAR_CACHE", None)
    if cache is not None:  # cached scalar tensors keep their device alive
        cache.clear()


# -- the inputs: the conformance suite's, a few layouts each ---------------------------------------

Case = tuple[str, list[Any], dict[str, Any]]


def _rng(*key: Any) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _scalar_for(name: str, dtype: DType) -> Any:
    if dtype.kind == "b":
        return True
    if dtype.kind in "iu":
        return 2 if name.startswith("bitwise_") or name == "pow" else 3
    return 1.5


def _elementwise_cases(name: str, dtype: DType, nin: int) -> Iterator[Case]:
    rng = _rng(name, dtype.name)

    def operands(shapes: Sequence[tuple[int, ...]]) -> list[Any]:
        return [kernel_sample(name, dtype, shape, rng, second=i == 1)
                for i, shape in enumerate(shapes)]  # fmt: skip

    yield "contiguous", operands([(3, 17)] * nin), {}
    yield "0-d", operands([()] * nin), {}
    yield "empty", operands([(0, 4)] * nin), {}
    if nin == 2:
        yield "broadcast", operands([(4, 1, 5), (3, 1)]), {}
        yield "scalar", [*operands([(2, 9)]), _scalar_for(name, dtype)], {}
    yield "special values", special_operands(name, dtype, nin), {}
    if dtype.kind == "f":
        yield "subnormals", subnormal_operands(name, dtype, nin), {}


def _where_clip_cases(name: str, dtype: DType) -> Iterator[Case]:
    rng = _rng(name, dtype.name)
    x = kernel_sample(name, dtype, (4, 6), rng)
    if name == "where":
        cond = rng.random((1, 6)) < 0.5
        yield "broadcast condition", [cond, x, kernel_sample(name, dtype, (4, 1), rng)], {}
        yield "scalar", [cond, x, _scalar_for("add", dtype)], {}
        return
    low, high = sorted(kernel_sample(name, dtype, (2,), rng).tolist())
    yield "scalar bounds", [x, low, high], {}
    yield "tensor lower bound only", [x, kernel_sample(name, dtype, (1, 6), rng), None], {}
    yield "special values", [special_values(dtype), low, high], {}


def _astype_cases(src: DType) -> Iterator[Case]:
    for dst in dt.all_dtypes():
        host = kernel_sample("astype", src, (5, 7), _rng("astype", src.name, dst.name))
        if src.kind == "f" and dst.kind in "iu":
            # integral values in the target's range (out-of-range conversion is unspecified)
            whole = np.trunc(host.astype(np.float64))
            host = (np.abs(whole) if dst.kind == "u" else whole).astype(src.numpy_dtype)
        if src.kind in "iu" and dst.kind in "iu":
            info = np.iinfo(src.numpy_dtype)
            extremes = np.array([info.min, info.max, 0, 1], dtype=src.numpy_dtype)
            host = np.concatenate([host.reshape(-1), extremes])  # NumPy's wrap-around
        if src.kind == "f" and dst.kind == "f":
            host = np.concatenate([host.reshape(-1), special_values(src)])
        yield f"to {dst.name}", [host], {"dtype": dst}


_REDUCTION_CASES: tuple[tuple[str, tuple[int, ...], dict[str, Any]], ...] = (
    ("all axes", (5, 7), {}),
    ("axis 0", (5, 7), {"axis": 0}),
    ("last axis, keepdims", (3, 4, 6), {"axis": -1, "keepdims": True}),
    ("two axes", (3, 4, 6), {"axis": (0, 2)}),
    ("0-d", (), {}),
    ("empty", (0, 3), {"axis": 0}),
    ("long rows", (4, 1000), {"axis": 1}),
)


def _reduction_cases(name: str, dtype: DType) -> Iterator[Case]:
    for label, shape, attributes in _REDUCTION_CASES:
        if label == "empty" and name in ("min", "max", "argmin", "argmax"):
            continue  # an error, not a kernel launch
        if label == "two axes" and name in ("argmin", "argmax"):
            continue  # they take one axis
        host = kernel_sample(name, dtype, shape, _rng(name, dtype.name, label))
        if name == "prod" and dtype.kind == "f":  # products of magnitudes near 1
            host = (np.abs(host.astype(np.float64)) * 0.25 + 0.875).astype(dtype.numpy_dtype)
        yield label, [np.asarray(host)], attributes
    if name in ("sum", "prod") and dtype.kind in "iu":
        host = kernel_sample(name, dtype, (4, 6), _rng(name, dtype.name, "dtype"))
        yield "accumulated in int64", [host], {"axis": 1, "dtype": dt.int64}


_MATMUL_CASES = (
    ("small", (7, 5), (5, 3)),
    ("batched, broadcasting", (2, 1, 4, 5), (3, 5, 2)),
    ("empty M", (0, 5), (5, 3)),
    ("K = 0", (4, 0), (0, 3)),
    ("long K", (3, 300), (300, 2)),
)


def _matmul_cases(dtype: DType) -> Iterator[Case]:
    for label, sa, sb in _MATMUL_CASES:
        rng = _rng("matmul", dtype.name, label)
        yield label, [kernel_sample("matmul", dtype, s, rng) for s in (sa, sb)], {}


def _nn_cases(name: str, dtype: DType) -> Iterator[Case]:
    def sample(label: str, *shapes: tuple[int, ...]) -> list[Any]:
        rng = _rng(name, dtype.name, label)
        return [kernel_sample(name, dtype, shape, rng) for shape in shapes]

    if name == "layer_norm":
        yield "rows, weight and bias", sample("rows", (4, 33), (33,), (33,)), {}
        yield "two axes", [*sample("two axes", (5, 3, 4)), None, None], {"axis": (-2, -1)}
        yield "weight only", [*sample("weight", (3, 8), (8,)), None], {"eps": 1e-3}
        yield "empty", [*sample("empty", (0, 8)), None, None], {}
        return
    yield "rows", sample("rows", (4, 33)), {}
    yield "empty", sample("empty", (0, 8)), {}
    if name in ("softmax", "log_softmax"):
        yield "axis 0", sample("axis 0", (5, 3, 4)), {"axis": 0}
        return
    yield "special values", [special_values(dtype)], {}
    if name == "gelu":
        yield "tanh approximation", sample("tanh", (4, 33)), {"approximate": "tanh"}
        yield "tanh, special values", [special_values(dtype)], {"approximate": "tanh"}


def _cases(spec: KernelSpec, dtype: DType) -> Iterator[Case]:
    name = spec.name
    if name in ("where", "clip"):
        return _where_clip_cases(name, dtype)
    if name == "astype":
        return _astype_cases(dtype)
    if name == "matmul":
        return _matmul_cases(dtype)
    if spec.category == "reduction":
        return _reduction_cases(name, dtype)
    if spec.category == "nn":
        return _nn_cases(name, dtype)
    return _elementwise_cases(name, dtype, len(spec.inputs))


# -- the tests -------------------------------------------------------------------------------------

#: kernels whose sign of a zero result IEEE 754 leaves open (maximum(0.0, -0.0)): NumPy's
#: own loops differ between float16 and float32. Every other kernel must give the zero the
#: reference gives (stricter than the suite, which does not check the sign of zeros).
_ZERO_SIGN_UNSPECIFIED = frozenset({"maximum", "minimum"})

_PAIRS = [
    (spec.name, d)
    for spec in all_specs()
    if spec.name in implemented(numpy_module()) and spec.name not in array_kernel_cases.NAMES
    for d in dt.all_dtypes()
    if d in spec.dtypes
]
#: the sorting, indexing, cumulative, FFT and linalg kernels (array_kernel_cases.py)
_MORE_PAIRS = array_kernel_cases.pairs()


@pytest.mark.parametrize(("name", "dtype"), _PAIRS, ids=[f"{k}-{d.name}" for k, d in _PAIRS])
def test_the_table_on_numpy_matches_the_reference(
    device: hw.Device, name: str, dtype: DType
) -> None:
    spec = get_spec(name)
    checked = 0
    for label, operands, attributes in _cases(spec, dtype):
        tensors = [hw.asarray(op, device=device) if isinstance(op, np.ndarray) else op
                   for op in operands]  # fmt: skip
        check_kernel(spec, device, tensors, attributes, context=f"({label})",
                     zero_sign=name not in _ZERO_SIGN_UNSPECIFIED)  # fmt: skip
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize(
    ("name", "dtype"), _MORE_PAIRS, ids=[f"{k}-{d.name}" for k, d in _MORE_PAIRS]
)
def test_sorting_indexing_cumulative_fft_and_linalg_on_numpy_match_the_reference(
    device: hw.Device, name: str, dtype: DType
) -> None:
    spec = get_spec(name)
    checked = 0
    for label, operands, attributes in array_kernel_cases.cases(name, dtype):
        actual, want, host, normalized = array_kernel_cases.run(device, spec, operands, attributes)
        where = f"{name}[{dtype}] ({label})"
        array_kernel_cases.check(spec, actual, want, host, normalized, where)
        checked += 1
    assert checked >= 2


def test_every_dtype_of_every_implemented_kernel_is_checked() -> None:
    """Nothing is left out for being ml_dtypes: all seventeen dtypes NumPy can hold."""
    assert {d for _, d in _PAIRS} == set(dt.all_dtypes())
    assert {k for k, _ in _PAIRS} | {k for k, _ in _MORE_PAIRS} == implemented(numpy_module())
    for name in array_kernel_cases.NAMES:  # every dtype its spec defines
        assert {d for k, d in _MORE_PAIRS if k == name} == set(get_spec(name).dtypes), name


def test_the_table_covers_every_kernel_the_pjrt_backends_declare() -> None:
    backend = array_kernel_cases.EveryDtypeStandin()  # (not probed: the manifest needs no jax)
    backend.standin = True
    backend._devices = [None]
    backend._profiles = [backend.profiles["all"]]
    declared = backend.capabilities(0).kernels
    launched = {name for name in declared if not get_spec(name).composite}
    composite = {spec.name for spec in all_specs() if spec.composite}
    assert launched and set(declared) - launched <= composite  # the core does those
    assert launched <= implemented(numpy_module())
    assert implemented(numpy_module()) <= {spec.name for spec in all_specs()}


def test_a_chip_without_complex_dtypes_declares_no_kernel_making_them() -> None:
    """A PJRT chip declares each kernel for the profile's dtypes (float64 and complex
    excluded where the profile has none, as on TPU and Trainium), and not for a dtype whose
    outputs it lacks: rfft of float32 makes complex64. Nothing else changes."""
    real_only = attrs.evolve(
        array_kernel_cases.EveryDtypeStandin.profiles["all"],
        dtypes={d.name: DTypeSupport.NATIVE for d in dt.all_dtypes() if d.kind != "c"},
    )
    backend = array_kernel_cases.EveryDtypeStandin()
    backend.standin = True
    backend._devices = [None]
    backend._profiles = [real_only]
    declared = backend.capabilities(0).kernels
    for spec in all_specs():
        kinds = {d for d in spec.dtypes if d.kind != "c"}
        if spec.name == "rfft":
            kinds = set()
        assert declared.get(spec.name, frozenset()) == kinds, spec.name
    assert not {"fft", "rfft", "irfft"} & set(declared)
    assert declared["eigh"] == {d for d in get_spec("eigh").dtypes if d.kind == "f"}


class _Without:
    """NumPy without the functions named in ``missing``."""

    def __init__(self, *missing: str) -> None:
        self._missing = missing

    def __getattr__(self, name: str) -> Any:
        if name in self._missing:
            raise AttributeError(name)
        return getattr(np, name)


def _numpy_without(*missing: str) -> ArrayModule:
    return attrs.evolve(numpy_module(), name="numpy-without", xp=_Without(*missing))


def test_a_namespace_missing_a_function_fails_when_the_kernel_is_built() -> None:
    module = _numpy_without("sin")
    with pytest.raises(AttributeError, match=r"numpy-without namespace has no 'sin'.*'sin'"):
        kernel_function(module, "sin", {})
    kernel_function(module, "cos", {})  # the others build
    # a kernel built on a function it only calls in one branch still needs it to be built
    with pytest.raises(AttributeError, match="'nextafter'"):
        kernel_function(_numpy_without("nextafter"), "nextafter", {})
    with pytest.raises(AttributeError, match="'sum'"):
        kernel_function(_numpy_without("sum"), "var", {"axes": (0,), "keepdims": False,
                                                       "correction": 0.0})  # fmt: skip


def test_a_submodule_function_is_named_when_missing() -> None:
    module = attrs.evolve(
        numpy_module(),
        name="numpy-without",
        xp=types.SimpleNamespace(linalg=types.SimpleNamespace()),
    )
    with pytest.raises(AttributeError, match=r"no 'linalg.cholesky', which kernel 'cholesky'"):
        kernel_function(module, "cholesky", {"upper": False})
    with pytest.raises(AttributeError, match=r"no 'fft', which kernel 'rfft'"):
        kernel_function(module, "rfft", {"axis": 0, "n": 4, "norm": "backward"})


def test_a_module_may_bring_its_own_stable_argsort() -> None:
    """CuPy's argsort takes no ``stable=`` (its sorts are stable): its module says how to
    call it, and the table looks up no ``argsort`` of its own."""
    calls: list[int] = []

    def stable(x: Any, axis: int) -> Any:
        calls.append(axis)
        return np.argsort(x, axis=axis, kind="stable")

    module = attrs.evolve(_numpy_without("argsort"), stable_argsort=stable)
    x = np.array([[3, 1, 3, 0]], np.int16)
    attributes = {"axis": 1, "descending": True, "stable": True}
    got = kernel_function(module, "argsort", attributes)(x)
    assert calls == [1] and got.dtype == np.int64
    assert np.array_equal(got, get_spec("argsort").reference(x, **attributes))


def test_out_of_range_indices_raise_in_numpy() -> None:
    """What the table hands NumPy: valid negative indices wrapped, out-of-range ones
    replaced by n (one past the end), which NumPy refuses. (JAX and CuPy: their tests.)"""
    take = kernel_function(numpy_module(), "take", {"axis": 0})
    along = kernel_function(numpy_module(), "take_along_axis", {"axis": 0})
    x = np.arange(5, dtype=np.float32)
    assert np.array_equal(take(x, np.array([-5, -1, 4], np.int8)), [0, 4, 4])
    for bad in (np.array([5], np.int8), np.array([-6], np.int64), np.array([255], np.uint8)):
        with pytest.raises(IndexError, match="index 5 is out of bounds"):
            take(x, bad)
        with pytest.raises(IndexError, match="index 5 is out of bounds"):
            along(x, bad)
    # indices wider than the axis length's dtype, and uint64 as the reference reads it
    long = np.arange(300, dtype=np.int16)
    assert take(long, np.array([255, -300], np.int16)).tolist() == [255, 0]
    assert take(long, np.array([255], np.uint8)).tolist() == [255]
    with pytest.raises(IndexError, match="an index into an axis of length 0"):
        take(x[:0], np.array([0], np.int8))
    top = np.array([2**64 - 1], np.uint64)  # out of range, not -1 (as the reference has it)
    with pytest.raises(IndexError, match="index 5 is out of bounds"):
        take(x, top)
    with pytest.raises(IndexError, match="index 18446744073709551615 is out of bounds"):
        get_spec("take").reference(x, top, axis=0)


def test_a_wrong_nonzero_count_is_an_error_on_numpy() -> None:
    x = np.array([0, 2, 0, 3], np.int32)
    fn = kernel_function(numpy_module(), "flatnonzero", {"count": 2})
    assert fn(x).tolist() == [1, 3] and fn(x).dtype == np.int64
    with pytest.raises(ValueError, match="count is 3 but the input has 2"):
        kernel_function(numpy_module(), "flatnonzero", {"count": 3})(x)


def test_older_spellings_are_the_fallback() -> None:
    module = _numpy_without("acos", "pow", "bitwise_left_shift", "bitwise_invert")
    x = np.array([0.5, -0.25], np.float32)
    assert np.array_equal(kernel_function(module, "acos", {})(x), np.arccos(x))
    i = np.array([3, 5], np.int32)
    assert np.array_equal(kernel_function(module, "pow", {})(i, i), np.power(i, i))
    assert np.array_equal(kernel_function(module, "bitwise_left_shift", {})(i, i), i << i)
    assert np.array_equal(kernel_function(module, "bitwise_invert", {})(i), ~i)
    with pytest.raises(AttributeError, match="no 'acos' nor 'arccos'"):
        kernel_function(_numpy_without("acos", "arccos"), "acos", {})


def test_an_unknown_kernel_is_a_key_error_naming_it_and_the_module() -> None:
    with pytest.raises(KeyError, match=r"'reshape'.*'numpy'"):
        kernel_function(numpy_module(), "reshape", {"shape": (2,)})
    assert "reshape" not in implemented(numpy_module())
