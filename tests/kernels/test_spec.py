"""The spec registry and the shared shape rules (hwabstract.kernels.spec)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwabstract as hw
from hwabstract import dispatch
from hwabstract import dtypes as dt
from hwabstract.errors import DTypeError, KernelError, ShapeError
from hwabstract.kernels import all_specs, broadcast_shapes, get_spec, normalize_axes, register
from hwabstract.kernels.spec import check_kinds

from .conftest import cpu

#: Every kernel the issue names, by group.
EXPECTED_KERNELS = {
    "elementwise": """abs acos acosh add asin asinh atan atan2 atanh bitwise_and
        bitwise_invert bitwise_left_shift bitwise_or bitwise_right_shift bitwise_xor ceil
        clip conj copysign cos cosh divide equal exp expm1 floor floor_divide greater
        greater_equal hypot imag isfinite isinf isnan less less_equal log log1p log2 log10
        logaddexp logical_and logical_not logical_or logical_xor maximum minimum multiply
        negative nextafter not_equal positive pow real reciprocal remainder round sign
        signbit sin sinh sqrt square subtract tan tanh trunc where astype""",
    "reduction": "sum prod min max mean var std argmin argmax any all",
    "linalg": "matmul cholesky inv det slogdet solve qr eigh eigvalsh svd svdvals",
    "sorting": "sort argsort searchsorted",
    "indexing": "take take_along_axis flatnonzero",
    "cumulative": "cumulative_sum cumulative_prod",
    "fft": "fft rfft irfft",
    "manipulation": "permute_dims reshape concat stack flip broadcast_to",
    "nn": "softmax log_softmax layer_norm gelu silu relu",
}


def test_registry_holds_exactly_the_standard_set_by_category() -> None:
    by_category: dict[str, set[str]] = {}
    for spec in all_specs():
        by_category.setdefault(spec.category, set()).add(spec.name)
    assert by_category == {k: set(v.split()) for k, v in EXPECTED_KERNELS.items()}


def test_names_are_unique_and_get_spec_returns_the_registered_object() -> None:
    specs = all_specs()
    assert len({s.name for s in specs}) == len(specs)
    for spec in specs:
        assert get_spec(spec.name) is spec
        assert repr(spec) == f"<KernelSpec {spec.name} ({spec.category})>"


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_spec_is_well_formed(spec: hw.KernelSpec) -> None:
    assert spec.dtypes, "a spec must be defined for some dtype"
    assert spec.dtypes <= set(dt.all_dtypes())
    assert callable(spec.reference)
    assert spec.doc, "every spec documents what it computes"
    assert spec.input_names == tuple(n.rstrip("?") for n in spec.inputs)
    assert set(spec.required_inputs) <= set(spec.inputs)
    if spec.promoted is not None:
        assert len(spec.promoted) == len(spec.inputs)
    assert spec.composite == (spec.category == "manipulation")


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_cpu_declares_every_dtype_of_every_spec(spec: hw.KernelSpec) -> None:
    assert cpu().capabilities.kernels[spec.name] == spec.dtypes


def test_optional_inputs_are_marked_and_reported() -> None:
    clip = get_spec("clip")
    assert clip.inputs == ("x", "min?", "max?")
    assert clip.required_inputs == ("x",)
    assert clip.input_names == ("x", "min", "max")
    assert [clip.is_promoted(i) for i in range(3)] == [True, True, True]
    where = get_spec("where")
    assert [where.is_promoted(i) for i in range(3)] == [False, True, True]


def test_unknown_kernel_is_a_kernel_error_naming_it() -> None:
    with pytest.raises(KernelError, match=r"no kernel named 'frobnicate'.*all_specs"):
        get_spec("frobnicate")


def test_launching_an_unknown_kernel_by_name_fails_before_touching_the_device() -> None:
    x = hw.asarray(np.ones(3, np.float32), device=cpu())
    with pytest.raises(KernelError, match="frobnicate"):
        dispatch.launch("frobnicate", [x])


def test_registering_a_duplicate_name_is_refused() -> None:
    before = all_specs()
    with pytest.raises(KernelError, match="'add' is already registered"):
        register(get_spec("add"))
    assert all_specs() == before


def test_check_kinds_names_the_kinds_the_kernel_takes() -> None:
    allowed = frozenset({dt.float32, dt.int8, dt.uint8})
    check_kinds("demo", dt.float32, allowed)  # allowed: no error
    with pytest.raises(DTypeError) as info:
        check_kinds("demo", dt.bool_, allowed)
    message = str(info.value)
    assert "demo() is not defined for bool inputs" in message
    assert "real floating or signed integer or unsigned integer" in message
    assert "astype" in message


# -- broadcast_shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ((), ()),
        (((),), ()),
        (((), ()), ()),
        (((3,), ()), (3,)),
        (((2, 3), (3,)), (2, 3)),
        (((2, 1), (1, 3)), (2, 3)),
        (((4, 1, 5), (3, 1)), (4, 3, 5)),
        (((0,), (1,)), (0,)),
        (((2, 0), (2, 1)), (2, 0)),
        (((1, 1), (1,), ()), (1, 1)),
        (((5, 1, 2), (1, 7, 1), (2,)), (5, 7, 2)),
    ],
)
def test_broadcast_shapes(shapes: tuple[tuple[int, ...], ...], expected: tuple[int, ...]) -> None:
    assert broadcast_shapes(*shapes) == expected
    assert expected == np.broadcast_shapes(*shapes)


@pytest.mark.parametrize(
    ("shapes", "dimension"),
    [
        (((2,), (3,)), 0),
        (((2, 3), (3, 2)), 0),
        (((4, 3), (2, 3)), 0),
        (((0,), (2,)), 0),
        (((5, 2, 3), (2, 4)), 2),
    ],
)
def test_broadcast_shapes_mismatch_names_the_dimension(
    shapes: tuple[tuple[int, ...], ...], dimension: int
) -> None:
    with pytest.raises(ShapeError, match=rf"do not broadcast: dimension {dimension} is"):
        broadcast_shapes(*shapes)


_shape = st.lists(st.integers(0, 3), max_size=4).map(tuple)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.lists(_shape, min_size=1, max_size=3))
def test_broadcast_shapes_agrees_with_numpy(shapes: list[tuple[int, ...]]) -> None:
    try:
        expected = np.broadcast_shapes(*shapes)
    except ValueError:
        with pytest.raises(ShapeError):
            broadcast_shapes(*shapes)
    else:
        assert broadcast_shapes(*shapes) == expected


# -- normalize_axes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axis", "ndim", "expected"),
    [
        (None, 3, (0, 1, 2)),
        (None, 0, ()),
        (0, 1, (0,)),
        (-1, 3, (2,)),
        (np.int64(-3), 3, (0,)),
        ((2, 0), 3, (0, 2)),
        ([-1, 0], 2, (0, 1)),
        ((), 2, ()),
        ((), 0, ()),
    ],
)
def test_normalize_axes(axis: object, ndim: int, expected: tuple[int, ...]) -> None:
    result = normalize_axes(axis, ndim)
    assert result == expected
    assert all(type(a) is int for a in result)


@pytest.mark.parametrize(
    ("axis", "ndim", "message"),
    [
        (3, 3, r"axis 3 is out of range for a tensor with 3 dimension\(s\); use -3 to 2"),
        (-4, 3, r"axis -4 is out of range"),
        (0, 0, r"axis 0 is invalid for a 0-d tensor"),
        ((0, -2), 2, r"names the same dimension twice"),
        (True, 2, r"must be an int or a tuple of ints, got True"),
        ((0, 1.0), 2, r"must be an int or a tuple of ints, got 1.0"),
        (1.0, 2, r"must be an int or a tuple of ints, got 1.0"),
        ("0", 2, r"must be an int or a tuple of ints, got '0'"),
    ],
)
def test_normalize_axes_errors(axis: object, ndim: int, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        normalize_axes(axis, ndim)


def test_normalize_axes_uses_the_given_parameter_name() -> None:
    with pytest.raises(ShapeError, match=r"^axes 5 is out of range"):
        normalize_axes(5, 2, name="axes")


# found by tests/reliability/test_stress.py
_FIRST_USE = """
import threading
from hwabstract.kernels import all_specs, get_spec

barrier = threading.Barrier(8)
seen = []
def first_use():
    barrier.wait()
    try:
        seen.append(len(all_specs()) and get_spec("sum") and len(all_specs()))
    except Exception as exc:
        seen.append(f"{type(exc).__name__}: {exc}")
threads = [threading.Thread(target=first_use) for _ in range(8)]
for th in threads:
    th.start()
for th in threads:
    th.join(60)
print(sorted(map(str, seen)), len(all_specs()))
"""


def test_kernel_specs_load_completely_for_concurrent_first_users() -> None:
    """Eight threads of a fresh interpreter that first touch the kernel set at once must
    all see every spec. (In a program that starts workers which first use hwabstract
    together: ``no kernel named 'sum'``, or a device capability manifest built from a
    partial set -- "cpu:0 does not implement multiply() for int32" -- which
    ``Device.capabilities`` then caches for good.)"""
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_USE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen, full = done.stdout.rsplit(" ", 1)
    assert seen == str([full.strip()] * 8), f"8 first users saw {seen}; the full set is {full}"
