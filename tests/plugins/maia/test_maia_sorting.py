"""The maia backend's sorting, indexing and cumulative kernels (libmaia's sorting.c,
indexing.c and cumulative.c) against the specs' NumPy references: for every dtype maia
declares for each kernel, the same NumPy input through ``hwabstract.dispatch.launch`` and
through ``get_spec(name).reference``.

Integers, bools, and the element bits that sort, argsort, take and take_along_axis move are
compared exactly (so -0.0 and NaN payloads count); cumulative results exactly as values.

One deviation from calling the reference as is: for bfloat16 and the float8 formats, NumPy's
sort through ml_dtypes does not put NaNs last, so the order references (sort, argsort,
searchsorted) run on the float32 widening of the input (exact, and order-preserving), as the
spec's text describes.

Skipped as a whole when the hwabstract-maia distribution is not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("hwabstract_maia.backend", reason="hwabstract-maia is not installed")

import hwabstract as hw
from hwabstract.dispatch import launch
from hwabstract.dtypes import DType
from hwabstract.kernels import get_spec

pytestmark = pytest.mark.usefixtures("maia_registry")

MAIA_DTYPES = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float8_e4m3fn", "float8_e5m2", "bfloat16", "float16", "float32",
}  # fmt: skip
REAL = MAIA_DTYPES - {"bool"}
ML_DTYPES = {"bfloat16", "float8_e4m3fn", "float8_e5m2"}  # sorted wrongly by NumPy with NaN
INDEX_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


@pytest.fixture
def dev() -> hw.Device:
    return hw.device("maia:0")


def declared(dev: hw.Device, name: str) -> list[DType]:
    return sorted(dev.capabilities.kernels.get(name, ()), key=lambda d: d.name)


def data(dtype: DType, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Many ties, both zeros, NaN and the infinities (floats), the extremes (integers)."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if dtype.kind == "b":
        return rng.integers(0, 2, size).astype(bool).reshape(shape)
    if dtype.kind == "f":
        special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -1.0, 2.5], np.float32)
        values = rng.integers(-12, 13, size).astype(np.float32) / 4
        pick = rng.random(size) < 0.3
        values[pick] = rng.choice(special, int(pick.sum()))
        with np.errstate(over="ignore", invalid="ignore"):
            return values.astype(dtype.numpy_dtype).reshape(shape)
    info = np.iinfo(dtype.numpy_dtype)
    lo = 0 if dtype.kind == "u" else -6
    values = rng.integers(lo, lo + 12, size).astype(np.int64)
    out = values.astype(dtype.numpy_dtype)
    edges = rng.random(size)
    out[edges < 0.05] = info.min
    out[edges > 0.95] = info.max
    return out.reshape(shape)


def bits(a: np.ndarray) -> np.ndarray:
    """The element bits (an unsigned view), so -0.0 and NaN payloads compare exactly."""
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize > 1 else a.view(np.uint8)


def assert_same_bits(got: np.ndarray, want: np.ndarray, context: Any) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (context, got.dtype, want.dtype)
    np.testing.assert_array_equal(bits(got), bits(want), err_msg=str(context))


def assert_same_values(got: np.ndarray, want: np.ndarray, context: Any) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (context, got.dtype, want.dtype)
    if hw.dtypes.dtype(want.dtype).kind == "f":
        got, want = got.astype(np.float32), want.astype(np.float32)
    np.testing.assert_array_equal(got, want, err_msg=str(context))


def order_input(x: np.ndarray, dtype: DType) -> np.ndarray:
    """What the order references run on: x, or its exact float32 widening (see the module
    docstring)."""
    return x.astype(np.float32) if dtype.name in ML_DTYPES else x


def put(dev: hw.Device, a: np.ndarray) -> hw.Tensor:
    return hw.asarray(a, device=dev)


# -- the manifest -----------------------------------------------------------------------------


def test_manifest_declares_every_dtype_the_specs_allow(dev: hw.Device) -> None:
    for name in ("sort", "argsort", "searchsorted", "cumulative_sum", "cumulative_prod"):
        assert {d.name for d in declared(dev, name)} == REAL, name
    for name in ("take", "take_along_axis", "flatnonzero"):
        assert {d.name for d in declared(dev, name)} == MAIA_DTYPES, name


# -- sort and argsort -------------------------------------------------------------------------


def check_sort(x: np.ndarray, t: hw.Tensor, dtype: DType, axis: int, descending: bool) -> None:
    attrs = {"axis": axis, "descending": descending}
    norm = {"axis": axis % x.ndim, "descending": descending, "stable": True}
    idx = get_spec("argsort").reference(order_input(x, dtype), **norm)
    context = (dtype.name, x.shape, axis, descending)
    got_idx = launch("argsort", (t,), attrs).numpy()
    assert got_idx.dtype == np.int64, context
    np.testing.assert_array_equal(got_idx, idx, err_msg=str(context))
    want = np.take_along_axis(x, idx, axis=norm["axis"])
    if dtype.name not in ML_DTYPES:
        want = get_spec("sort").reference(x, **norm)
    assert_same_bits(launch("sort", (t,), attrs).numpy(), want, context)


def test_sort_and_argsort_match_the_reference_for_every_declared_dtype(dev: hw.Device) -> None:
    for i, dtype in enumerate(declared(dev, "sort")):
        x = data(dtype, (3, 4, 33), seed=i)
        t = put(dev, x)
        for axis in (0, 1, 2, -1):
            for descending in (False, True):
                check_sort(x, t, dtype, axis, descending)


def test_sort_specials_nan_last_zeros_tie_descending_reverses_exactly(dev: hw.Device) -> None:
    x = np.array([np.nan, -0.0, 1.0, 0.0, -np.inf, -np.nan, -0.0, -1.0], np.float32)
    t = put(dev, x)
    assert launch("argsort", (t,), {"axis": 0}).numpy().tolist() == [4, 7, 1, 3, 6, 2, 0, 5]
    assert launch("argsort", (t,), {"axis": 0, "descending": True}).numpy().tolist() == [
        0, 5, 2, 1, 3, 6, 7, 4,
    ]  # fmt: skip
    got = launch("sort", (t,), {"axis": 0}).numpy()
    assert np.signbit(got[2:5]).tolist() == [True, False, True]  # -0.0, 0.0, -0.0 in order
    # stable=False may still sort stably
    assert launch("argsort", (t,), {"axis": 0, "stable": False}).numpy().tolist() == [
        4, 7, 1, 3, 6, 2, 0, 5,
    ]  # fmt: skip


def test_sort_on_strided_views_and_long_rows(dev: hw.Device) -> None:
    x = data(hw.float32, (6, 40), seed=7)
    t = put(dev, x)
    for view, ref in ((t[:, ::-1], x[:, ::-1]), (t.mT, x.T), (t[::-2, 3:30:3], x[::-2, 3:30:3])):
        for axis in (0, 1):
            check_sort(np.ascontiguousarray(ref), view, hw.float32, axis, axis == 1)
    # rows long enough to sort on several host threads, one row and several
    for shape in ((120_001,), (5, 30_000)):
        big = data(hw.int32, shape, seed=11)
        check_sort(big, put(dev, big), hw.int32, -1, False)
    big = data(hw.bfloat16, (70_000,), seed=12)
    check_sort(big, put(dev, big), hw.bfloat16, 0, True)


def test_sort_of_empty_and_single_element_rows(dev: hw.Device) -> None:
    for shape in ((0,), (3, 0), (4, 1)):
        x = np.zeros(shape, np.float32)
        assert launch("sort", (put(dev, x),), {"axis": -1}).numpy().shape == shape
        got = launch("argsort", (put(dev, x),), {"axis": -1}).numpy()
        np.testing.assert_array_equal(got, np.zeros(shape, np.int64))


# -- searchsorted -----------------------------------------------------------------------------


def test_searchsorted_matches_the_reference_for_every_declared_dtype(dev: hw.Device) -> None:
    for i, dtype in enumerate(declared(dev, "searchsorted")):
        raw = data(dtype, (41,), seed=100 + i)
        x1 = raw[np.argsort(order_input(raw, dtype), kind="stable")]
        x2 = np.concatenate([raw, data(dtype, (19,), seed=200 + i)]).reshape(3, 20)
        t1, t2 = put(dev, x1), put(dev, x2)
        for side in ("left", "right"):
            want = get_spec("searchsorted").reference(
                order_input(x1, dtype), order_input(x2, dtype), side=side
            )
            got = launch("searchsorted", (t1, t2), {"side": side}).numpy()
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, want, err_msg=f"{dtype} {side}")


def test_searchsorted_nan_is_above_every_number(dev: hw.Device) -> None:
    x1 = put(dev, np.array([-1.0, -0.0, 0.0, 2.0, np.nan], np.float32))
    x2 = put(dev, np.array([np.nan, 0.0, np.inf, -np.inf], np.float32))
    assert launch("searchsorted", (x1, x2), {"side": "left"}).numpy().tolist() == [4, 1, 4, 0]
    assert launch("searchsorted", (x1, x2), {"side": "right"}).numpy().tolist() == [5, 3, 4, 0]
    # a strided (reversed) x1 and an empty x1
    desc = put(dev, np.array([9, 7, 7, 3, 1], np.int16))
    q = put(dev, np.array([[7, 0], [10, 3]], np.int16))
    got = launch("searchsorted", (desc[::-1], q), {"side": "right"}).numpy()
    assert got.tolist() == [[4, 0], [5, 2]]
    empty = put(dev, np.zeros(0, np.int16))
    assert launch("searchsorted", (empty, q), {}).numpy().tolist() == [[0, 0], [0, 0]]


# -- take and take_along_axis -----------------------------------------------------------------


def indices(n: int, count: int, index_dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, count)
    if index_dtype.startswith("int"):
        flip = rng.random(count) < 0.5
        idx[flip] -= n  # negative indices count from the end
    return idx.astype(index_dtype)


def test_take_matches_the_reference_for_every_declared_dtype(dev: hw.Device) -> None:
    ref = get_spec("take").reference
    for i, dtype in enumerate(declared(dev, "take")):
        x = data(dtype, (3, 4, 5), seed=300 + i)
        t = put(dev, x)
        for axis in (0, 1, 2):
            index_dtype = INDEX_DTYPES[(i + axis) % len(INDEX_DTYPES)]
            idx = indices(x.shape[axis], 7, index_dtype, seed=i * 3 + axis)
            got = launch("take", (t, put(dev, idx)), {"axis": axis}).numpy()
            assert_same_bits(got, ref(x, idx, axis=axis), (dtype.name, index_dtype, axis))
        # a negative-stride view of x
        got = launch("take", (t[:, ::-1], put(dev, np.array([-1, 0], np.int32))), {"axis": 1})
        want = ref(np.ascontiguousarray(x[:, ::-1]), np.array([-1, 0], np.int32), axis=1)
        assert_same_bits(got.numpy(), want, (dtype.name, "reversed"))


def test_take_along_axis_matches_the_reference_for_every_declared_dtype(dev: hw.Device) -> None:
    ref = get_spec("take_along_axis").reference
    for i, dtype in enumerate(declared(dev, "take_along_axis")):
        x = data(dtype, (4, 6), seed=400 + i)
        index_dtype = INDEX_DTYPES[i % len(INDEX_DTYPES)]
        for axis, ishape in ((1, (4, 3)), (0, (5, 6)), (1, (1, 8)), (0, (2, 1))):
            idx = indices(x.shape[axis], int(np.prod(ishape)), index_dtype, seed=i).reshape(ishape)
            got = launch("take_along_axis", (put(dev, x), put(dev, idx)), {"axis": axis})
            xb = x
            if ishape[1 - axis] != x.shape[1 - axis]:  # the indices broadcast against x
                shape = list(x.shape)
                shape[1 - axis] = max(ishape[1 - axis], x.shape[1 - axis])
                ib = list(shape)
                ib[axis] = ishape[axis]
                idx = np.broadcast_to(idx, ib)
            assert_same_bits(got.numpy(), ref(xb, idx, axis=axis), (dtype.name, axis, ishape))
    # x broadcast along the other axis: (1, 6) against indices (3, 2)
    x = np.arange(6, dtype=np.float32).reshape(1, 6)
    idx = np.array([[0, -1], [2, 3], [5, -6]], np.int64)
    got = launch("take_along_axis", (put(dev, x), put(dev, idx)), {"axis": 1}).numpy()
    np.testing.assert_array_equal(got, [[0, 5], [2, 3], [5, 0]])


@pytest.mark.parametrize("kernel", ["take", "take_along_axis"])
@pytest.mark.parametrize("bad", [4, -5, 1000])
def test_an_index_out_of_range_fails_the_kernel_cleanly(
    dev: hw.Device, kernel: str, bad: int
) -> None:
    x = put(dev, np.arange(8, dtype=np.float32).reshape(2, 4))
    idx = np.array([0, bad, 1], np.int16)
    if kernel == "take_along_axis":
        idx = np.stack([idx, idx])
    s = dev.default_stream
    launch(kernel, (x, put(dev, idx)), {"axis": 1})
    with pytest.raises(hw.KernelError) as info:
        s.synchronize()
    assert f"index {bad} is out of bounds for axis 1 of size 4" in str(info.value)
    # the stream keeps working
    fixed = np.where(idx == bad, -4, idx).astype(np.int16)
    ok = launch(kernel, (x, put(dev, fixed)), {"axis": 1}).numpy()
    assert ok[0].tolist() == [0.0, 0.0, 1.0]


def test_a_uint64_index_above_int64_is_out_of_range(dev: hw.Device) -> None:
    x = put(dev, np.arange(4, dtype=np.int32))
    idx = put(dev, np.array([0, 2**64 - 1], np.uint64))
    launch("take", (x, idx), {"axis": 0})
    with pytest.raises(hw.KernelError, match="index 18446744073709551615 is out of bounds"):
        dev.default_stream.synchronize()


# -- flatnonzero ------------------------------------------------------------------------------


def test_flatnonzero_matches_the_reference_for_every_declared_dtype(dev: hw.Device) -> None:
    ref = get_spec("flatnonzero").reference
    for i, dtype in enumerate(declared(dev, "flatnonzero")):
        x = data(dtype, (5, 7), seed=500 + i)
        if dtype.kind != "b":
            x[x.astype(np.float32) == 1] = 0  # more zeros (and -0.0 stays zero)
        t = put(dev, x)
        for view, arr in ((t, x), (t[::-1, ::2], x[::-1, ::2]), (t.mT, x.T)):
            arr = np.ascontiguousarray(arr)
            count = int(np.count_nonzero(arr.astype(np.float32) if dtype.kind == "f" else arr))
            got = launch("flatnonzero", (view,), {"count": count}).numpy()
            np.testing.assert_array_equal(got, ref(arr, count=count), err_msg=dtype.name)
            assert got.dtype == np.int64


def test_flatnonzero_nan_is_nonzero_and_a_wrong_count_fails(dev: hw.Device) -> None:
    x = put(dev, np.array([0.0, np.nan, -0.0, 2.0], np.float32))
    assert launch("flatnonzero", (x,), {"count": 2}).numpy().tolist() == [1, 3]
    launch("flatnonzero", (x,), {"count": 3})
    with pytest.raises(hw.KernelError, match="count is 3 but the input has 2"):
        dev.default_stream.synchronize()
    big = np.zeros(300_000, np.uint8)
    big[::7] = 3
    got = launch("flatnonzero", (put(dev, big),), {"count": int(np.count_nonzero(big))})
    np.testing.assert_array_equal(got.numpy(), np.flatnonzero(big))


# -- cumulative_sum and cumulative_prod -------------------------------------------------------


@pytest.mark.parametrize("name", ["cumulative_sum", "cumulative_prod"])
def test_cumulative_matches_the_reference_for_every_declared_dtype(
    dev: hw.Device, name: str
) -> None:
    ref = get_spec(name).reference
    for i, dtype in enumerate(declared(dev, name)):
        x = data(dtype, (3, 5, 9), seed=600 + i)
        if name == "cumulative_prod" and dtype.kind == "f":
            x = (x.astype(np.float32) / 2).astype(dtype.numpy_dtype)  # keep products finite
        t = put(dev, x)
        for axis in (0, 1, 2):
            for initial in (False, True):
                attrs = {"axis": axis, "dtype": dtype, "include_initial": initial}
                got = launch(name, (t,), attrs).numpy()
                with np.errstate(all="ignore"):
                    want = ref(x, axis=axis, dtype=dtype, include_initial=initial)
                assert_same_values(got, want, (name, dtype.name, axis, initial))
        # a negative-stride view
        got = launch(name, (t[:, ::-1, :],), {"axis": 1, "dtype": dtype}).numpy()
        with np.errstate(all="ignore"):
            want = ref(np.ascontiguousarray(x[:, ::-1, :]), axis=1, dtype=dtype,
                       include_initial=False)  # fmt: skip
        assert_same_values(got, want, (name, dtype.name, "reversed"))


def test_cumulative_default_dtypes_and_wrapping(dev: hw.Device) -> None:
    x = np.array([100, 100, -128, 1], np.int8)
    # the default output dtype of an int8 input is int64 (the core casts x first)
    got = launch("cumulative_sum", (put(dev, x),), {"axis": 0}).numpy()
    assert got.dtype == np.int64 and got.tolist() == [100, 200, 72, 73]
    # asking for int8 wraps as NumPy does
    got = launch("cumulative_sum", (put(dev, x),), {"axis": 0, "dtype": hw.int8}).numpy()
    assert got.tolist() == np.cumsum(x, dtype=np.int8).tolist() == [100, -56, 72, 73]
    b = np.array([True, False, True, True])
    got = launch("cumulative_sum", (put(dev, b),), {"axis": 0, "include_initial": True})
    assert got.numpy().tolist() == [0, 1, 1, 2, 3] and got.dtype == hw.int64
    u = np.array([2**63, 3, 5], np.uint64)
    got = launch("cumulative_prod", (put(dev, u),), {"axis": 0}).numpy()
    assert got.tolist() == np.cumprod(u).tolist()


def test_cumulative_float32_is_sequential_and_narrow_floats_round_once(dev: hw.Device) -> None:
    x = np.random.default_rng(3).standard_normal(10_000).astype(np.float32)
    got = launch("cumulative_sum", (put(dev, x),), {"axis": 0}).numpy()
    np.testing.assert_array_equal(bits(got), bits(np.cumsum(x)))
    bf = np.array([256, 1, 1], np.float32).astype(hw.bfloat16.numpy_dtype)
    got = launch("cumulative_sum", (put(dev, bf),), {"axis": 0}).numpy()
    assert got.astype(np.float32).tolist() == [256.0, 256.0, 258.0]  # 257 rounds to 256 once


def test_cumulative_of_an_empty_axis_with_include_initial(dev: hw.Device) -> None:
    x = put(dev, np.zeros((3, 0), np.float32))
    got = launch("cumulative_prod", (x,), {"axis": 1, "include_initial": True}).numpy()
    assert got.shape == (3, 1) and got.tolist() == [[1.0], [1.0], [1.0]]
    got = launch("cumulative_sum", (x,), {"axis": 1}).numpy()
    assert got.shape == (3, 0)
