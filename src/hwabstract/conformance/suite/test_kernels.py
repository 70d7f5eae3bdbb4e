"""Kernels: every standard kernel the device declares, for every dtype it declares it for,
against the kernel's NumPy reference (``KernelSpec.reference``) within the tolerance policy
of :mod:`hwabstract.conformance.numerics`.

Layouts: contiguous, broadcasting, a Python scalar operand, 0-d, empty, non-contiguous
(strided, transposed and reversed views) and large (more than 2**17 elements, past the sizes
where implementations switch to parallel or vectorized paths); special values (NaN, +-inf,
-0.0, subnormals, the largest finite value, integer extremes and overflow); and Hypothesis
property tests with a fixed derandomized seed, so every run tries the same cases.

A (kernel, dtype) pair the device does not declare is *not claimed*, never a failure.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.conformance.helpers import not_claimed
from hwabstract.conformance.numerics import kernel_sample as sample
from hwabstract.conformance.numerics import (
    special_operands,
    special_values,
    subnormal_operands,
)
from hwabstract.conformance.reference import check_kernel
from hwabstract.dtypes import DType
from hwabstract.kernels import all_specs, get_spec

_SPECIAL = ("where", "clip", "astype")
ELEMENTWISE = [s for s in all_specs() if s.category == "elementwise" and s.name not in _SPECIAL]
REDUCTIONS = [s for s in all_specs() if s.category == "reduction"]
NN = [s for s in all_specs() if s.category == "nn"]

ELEMENTWISE_CASES = ("contiguous", "broadcast", "scalar", "0-d", "empty", "strided", "large")


def _all_pairs(specs: list[Any]) -> list[tuple[str, DType]]:
    """Every (kernel, dtype) the spec defines, in a stable order: the declared ones are
    checked, the rest reported as not claimed."""
    return [(s.name, d) for s in specs for d in dt.all_dtypes() if d in s.dtypes]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every (kernel, dtype) a spec defines is a test; the device fixture skips them all when
    # the backend is unavailable, and each test reports what the device does not claim.
    fn = metafunc.function.__name__
    if "kernel_dtype" in metafunc.fixturenames:
        specs = {
            "test_elementwise": ELEMENTWISE,
            "test_elementwise_special_values": ELEMENTWISE,
            "test_elementwise_subnormals": ELEMENTWISE,
            "test_reduction": REDUCTIONS,
            "test_nn": NN,
            "test_where_and_clip": [get_spec("where"), get_spec("clip")],
            "test_matmul": [get_spec("matmul")],
            "test_property_binary_broadcasting": [
                get_spec(n) for n in ("add", "multiply", "maximum", "less")
            ],
            "test_property_reduction_axes": [get_spec(n) for n in ("sum", "max")],
        }[fn]
        values = _all_pairs(specs)
        if fn == "test_elementwise_subnormals":  # a property of real floating dtypes
            values = [(k, d) for k, d in values if d.kind == "f"]
        if fn == "test_elementwise":
            params = [
                (k, d, c)
                for k, d in values
                for c in ELEMENTWISE_CASES
                if not (c in ("broadcast", "scalar") and len(get_spec(k).inputs) == 1)
            ]
            metafunc.parametrize(
                ("kernel_dtype", "case"),
                [((k, d), c) for k, d, c in params],
                ids=[f"{k}-{d.name}-{c}" for k, d, c in params],
            )
            return
        metafunc.parametrize("kernel_dtype", values, ids=[f"{k}-{d.name}" for k, d in values])
    elif "src_dst" in metafunc.fixturenames:
        combos = [(s, d) for s in dt.all_dtypes() for d in dt.all_dtypes()]
        metafunc.parametrize("src_dst", combos, ids=[f"{s.name}-to-{d.name}" for s, d in combos])


def _claim(device: hw.Device, kernel: str, dtype: DType) -> None:
    if not device.capabilities.supports_kernel(kernel, dtype):
        not_claimed(f"kernel {kernel} for {dtype.name}")


def _rng(*key: Any) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _upload(device: hw.Device, host: np.ndarray, layout: str = "contiguous") -> hw.Tensor:
    """``host`` on ``device``, as a dense tensor or (``strided``) as a non-contiguous view of
    a larger one: every second element, a reversed axis (negative stride) and, from two
    dimensions up, the last two axes swapped (a column-major matrix)."""
    if layout == "contiguous" or host.ndim == 0:
        return hw.asarray(host, device=device)
    if host.ndim == 1:
        big = np.repeat(host[::-1], 2)  # big[::2] == host reversed
        return hw.flip(hw.asarray(big, device=device)[::2])
    prep = np.ascontiguousarray(np.swapaxes(host, -1, -2)[..., ::-1, :])
    big = np.repeat(prep, 2, axis=-1)  # big[..., ::2] == prep
    view = hw.asarray(big, device=device)[..., ::2]
    return hw.flip(view, axis=-2).mT


def _scalar_for(name: str, dtype: DType) -> Any:
    if dtype.kind == "b":
        return True
    if dtype.kind in "iu":
        return 2 if name.startswith("bitwise_") or name == "pow" else 3
    return 1.5


def test_elementwise(device: hw.Device, kernel_dtype: tuple[str, DType], case: str) -> None:
    name, dtype = kernel_dtype
    _claim(device, name, dtype)
    spec = get_spec(name)
    nin = len(spec.inputs)
    rng = _rng(name, dtype.name, case)
    shapes = {
        "contiguous": (3, 17),
        "0-d": (),
        "empty": (0, 4),
        "strided": (3, 17),
        "large": ((1 << 17) + 3,),
        "broadcast": (4, 1, 5),
        "scalar": (2, 9),
    }
    shape = shapes[case]
    layout = "strided" if case == "strided" else "contiguous"
    operands: list[Any] = [_upload(device, sample(name, dtype, shape, rng), layout)]
    if nin == 2:
        if case == "scalar":
            operands.append(_scalar_for(name, dtype))
        else:
            second = (3, 1) if case == "broadcast" else shape
            operands.append(_upload(device, sample(name, dtype, second, rng, second=True), layout))
    check_kernel(spec, device, operands, context=f"({case})")


def test_elementwise_special_values(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    name, dtype = kernel_dtype
    _claim(device, name, dtype)
    nin = len(get_spec(name).inputs)
    operands = [hw.asarray(a, device=device) for a in special_operands(name, dtype, nin)]
    check_kernel(name, device, operands, context="(special values)")


def test_elementwise_subnormals(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    """Subnormal inputs, against zeros and the smallest normals. A device that declares
    ``subnormals`` must keep them (gradual underflow); one that does not must flush them to
    zero, inputs and results alike: the reference is flushed to match."""
    name, dtype = kernel_dtype
    _claim(device, name, dtype)
    arrays = subnormal_operands(name, dtype, len(get_spec(name).inputs))
    check_kernel(
        name, device, [hw.asarray(a, device=device) for a in arrays], context="(subnormals)"
    )


def test_where_and_clip(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    name, dtype = kernel_dtype
    _claim(device, name, dtype)
    rng = _rng(name, dtype.name)
    x = _upload(device, sample(name, dtype, (4, 6), rng))
    if name == "where":
        if not device.capabilities.supports_dtype(dt.bool_):
            not_claimed("dtype bool (the condition of where)")
        cond = hw.asarray(rng.random((1, 6)) < 0.5, device=device)
        y = _upload(device, sample(name, dtype, (4, 1), rng))
        check_kernel("where", device, [cond, x, y], context="(broadcast condition)")
        check_kernel("where", device, [cond, x, _scalar_for("add", dtype)], context="(scalar)")
        return
    if dtype.kind == "b":
        pytest.skip("clip is not defined for bool")
    low, high = sorted(sample(name, dtype, (2,), rng).tolist())
    check_kernel("clip", device, [x, low, high], context="(scalar bounds)")
    lo_t = _upload(device, sample(name, dtype, (1, 6), rng))
    check_kernel("clip", device, [x, lo_t, None], context="(tensor lower bound only)")


def test_astype(device: hw.Device, src_dst: tuple[DType, DType]) -> None:
    src, dst = src_dst
    _claim(device, "astype", src)
    if not device.capabilities.supports_dtype(dst):
        not_claimed(f"dtype {dst.name} (the target of astype)")
    rng = _rng("astype", src.name, dst.name)
    host = sample("astype", src, (5, 7), rng)
    if src.kind in "fc" and dst.kind in "iu":
        # integral values inside the target's range: out-of-range float-to-integer
        # conversion is implementation-defined (the Array API leaves it unspecified; CUDA
        # saturates where NumPy wraps). A complex value converts its real part.
        real = np.real(host).astype(np.float64)
        whole = np.trunc(real)
        whole = np.abs(whole) if dst.kind == "u" else whole
        host = (whole + (host - real) if src.kind == "c" else whole).astype(src.numpy_dtype)
    if src.kind in "iu" and dst.kind in "iu":
        info = np.iinfo(src.numpy_dtype)
        extremes = np.array([info.min, info.max, 0, 1], dtype=src.numpy_dtype)
        host = np.concatenate([host.reshape(-1), extremes])  # wrap-around is NumPy's
    if src.kind == "f" and dst.kind == "f":
        host = np.concatenate([host.reshape(-1), special_values(src)])
    x = hw.asarray(host, device=device)
    check_kernel("astype", device, [x], {"dtype": dst})


REDUCTION_CASES: tuple[tuple[str, tuple[int, ...], dict[str, Any]], ...] = (
    ("all axes", (5, 7), {}),
    ("axis 0", (5, 7), {"axis": 0}),
    ("last axis, keepdims", (3, 4, 6), {"axis": -1, "keepdims": True}),
    ("two axes", (3, 4, 6), {"axis": (0, 2)}),
    ("0-d", (), {}),
    ("empty", (0, 3), {"axis": 0}),
    ("strided", (6, 5), {"axis": 1}),
    ("large", (40, 4099), {"axis": 1}),
)


def test_reduction(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    name, dtype = kernel_dtype
    _claim(device, name, dtype)
    for label, shape, attrs in REDUCTION_CASES:
        if label == "empty" and name in ("min", "max", "argmin", "argmax"):
            continue  # an empty min/max is an error (the errors area checks it)
        if label == "two axes" and name in ("argmin", "argmax"):
            continue  # they take a single axis
        rng = _rng(name, dtype.name, label)
        host = sample(name, dtype, shape, rng)
        if name == "prod" and dtype.kind == "f":
            host = (np.abs(host.astype(np.float64)) * 0.25 + 0.875).astype(dtype.numpy_dtype)
        x = _upload(device, host, "strided" if label == "strided" else "contiguous")
        check_kernel(name, device, [x], attrs, context=f"({label})")


MATMUL_CASES = (
    ("small", (7, 5), (5, 3)),
    ("batched, broadcasting", (2, 1, 4, 5), (3, 5, 2)),
    ("empty M", (0, 5), (5, 3)),
    ("K = 0", (4, 0), (0, 3)),
    ("large", (130, 96), (96, 129)),
)


def test_matmul(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    name, dtype = kernel_dtype
    _claim(device, name, dtype)
    for label, sa, sb in MATMUL_CASES:
        rng = _rng(name, dtype.name, label)
        a = _upload(device, sample(name, dtype, sa, rng))
        b = _upload(device, sample(name, dtype, sb, rng))
        check_kernel(name, device, [a, b], context=f"({label})")
    rng = _rng(name, dtype.name, "transposed")
    a = _upload(device, sample(name, dtype, (9, 6), rng)).mT  # (6, 9), column-major
    b = _upload(device, sample(name, dtype, (9, 4), rng), "strided")
    check_kernel(name, device, [a, b], context="(transposed and strided operands)")


def test_nn(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    name, dtype = kernel_dtype
    _claim(device, name, dtype)
    cases: list[tuple[str, tuple[int, ...], dict[str, Any]]] = [
        ("rows", (4, 33), {}),
        ("other axes", (5, 3, 4), {"axis": 0} if name != "layer_norm" else {"axis": (-2, -1)}),
        ("large", (8, 4099), {}),
        ("empty", (0, 8), {}),
    ]
    if name in ("gelu", "silu", "relu"):
        cases = [(label, shape, {}) for label, shape, _ in cases]
        if name == "gelu":
            cases.append(("tanh approximation", (4, 33), {"approximate": "tanh"}))
    for label, shape, attrs in cases:
        rng = _rng(name, dtype.name, label)
        x = _upload(device, sample(name, dtype, shape, rng))
        operands: list[Any] = [x]
        if name == "layer_norm":
            if attrs.get("axis", -1) == -1:  # with weight and bias over the last axis
                n = shape[-1]
                operands += [
                    _upload(device, sample(name, dtype, (n,), rng)),
                    _upload(device, sample(name, dtype, (n,), rng)),
                ]
            else:
                operands += [None, None]
        check_kernel(name, device, operands, attrs, context=f"({label})")
    x = _upload(device, sample(name, dtype, (6, 10), _rng(name, dtype.name, "strided")), "strided")
    check_kernel(name, device, [x], context="(strided)")


# -- property tests (Hypothesis, derandomized: every run tries the same cases) --------------------

hypothesis = pytest.importorskip("hypothesis", reason="the property tests need hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_SETTINGS = settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_property_binary_broadcasting(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    name, dtype = kernel_dtype
    _claim(device, name, dtype)

    @_SETTINGS
    @given(
        shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=5),
        seed=st.integers(0, 2**32 - 1),
        layouts=st.tuples(
            st.sampled_from(["contiguous", "strided"]), st.sampled_from(["contiguous", "strided"])
        ),
    )
    def check(shapes: Any, seed: int, layouts: tuple[str, str]) -> None:
        rng = np.random.default_rng(seed)
        a_shape, b_shape = shapes.input_shapes
        a = _upload(device, sample(name, dtype, a_shape, rng), layouts[0])
        b = _upload(device, sample(name, dtype, b_shape, rng, second=True), layouts[1])
        check_kernel(name, device, [a, b], context=f"(shapes {a_shape} and {b_shape})")

    check()


def test_property_reduction_axes(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    name, dtype = kernel_dtype
    _claim(device, name, dtype)

    @_SETTINGS
    @given(
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6),
        data=st.data(),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(shape: tuple[int, ...], data: Any, seed: int) -> None:
        axes = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)))
        keepdims = data.draw(st.booleans())
        axis = tuple(axes) if axes else None
        x = _upload(device, sample(name, dtype, shape, np.random.default_rng(seed)))
        check_kernel(
            name,
            device,
            [x],
            {"axis": axis, "keepdims": keepdims},
            context=f"(shape {shape}, axis {axis}, keepdims {keepdims})",
        )

    check()
