"""Tensors: metadata, host transfer, scalars, basic indexing (reads and writes), reshape,
transposes, astype, moves between devices, memory lifetime, repr."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hwabstract as hw
from hwabstract.registry import Registry

Gate = Callable[[hw.Stream], threading.Event]

BASE = np.arange(24, dtype=np.int32).reshape(2, 3, 4)


@pytest.fixture
def t() -> hw.Tensor:
    return hw.asarray(BASE)


# -- metadata -------------------------------------------------------------------------------------


def test_metadata(t: hw.Tensor) -> None:
    assert t.shape == (2, 3, 4)
    assert t.dtype is hw.int32 and t.dtype == "int32" and t.dtype == np.int32
    assert t.device is hw.device("cpu:0")
    assert t.strides == (12, 4, 1)  # elements, not bytes
    assert (t.ndim, t.size, t.itemsize, t.nbytes) == (3, 24, 4, 96)
    assert t.is_contiguous
    view = t[:, ::2, 1:]
    assert view.shape == (2, 2, 3) and view.strides == (12, 8, 1)
    assert view.nbytes == 2 * 2 * 3 * 4  # the elements, not the shared buffer
    assert not view.is_contiguous
    scalar = hw.asarray(7.5)
    assert (scalar.shape, scalar.strides, scalar.ndim, scalar.size) == ((), (), 0, 1)
    empty = hw.empty((0, 5))
    assert (empty.size, empty.nbytes, empty.strides) == (0, 0, (5, 1))


def test_tensors_cannot_be_constructed_directly() -> None:
    with pytest.raises(TypeError, match=r"hwabstract\.asarray"):
        hw.Tensor()


# -- host transfer and scalars --------------------------------------------------------------------


def test_numpy_and_the_array_protocol(t: hw.Tensor) -> None:
    out = t.numpy()
    assert isinstance(out, np.ndarray) and out.dtype == np.int32
    np.testing.assert_array_equal(out, BASE)
    out[0, 0, 0] = 99  # a copy: the tensor is unchanged
    assert t[0, 0, 0].item() == 0
    np.testing.assert_array_equal(np.asarray(t), BASE)
    as_float = np.asarray(t, dtype=np.float64)
    assert as_float.dtype == np.float64
    np.testing.assert_array_equal(as_float, BASE)
    np.testing.assert_array_equal(np.array(t[1]), BASE[1])
    with pytest.raises(ValueError, match="cannot be viewed by NumPy without a copy"):
        np.asarray(t, copy=False)
    assert hw.empty((0, 3)).numpy().shape == (0, 3)


def test_bfloat16_round_trips() -> None:
    values = np.array([1.5, -2.25, 3.0], dtype=hw.bfloat16.numpy_dtype)
    x = hw.asarray(values)
    assert x.dtype is hw.bfloat16
    assert x.numpy().dtype == values.dtype
    np.testing.assert_array_equal(x.numpy(), values)


def test_python_scalars() -> None:
    x = hw.asarray([[3]])
    assert (x.item(), int(x), float(x), complex(x), bool(x)) == (3, 3, 3.0, 3 + 0j, True)
    assert isinstance(x.item(), int)
    assert [10, 20, 30, 40][hw.asarray(2)] == 30  # __index__
    assert hw.asarray([1.5, 2.5]).tolist() == [1.5, 2.5]
    assert hw.asarray(True).tolist() is True
    assert bool(hw.asarray(0.0)) is False
    with pytest.raises(hw.ShapeError, match="one element, this one has 2"):
        hw.asarray([1, 2]).item()
    with pytest.raises(hw.ShapeError, match="truth value of a tensor with 2 elements"):
        bool(hw.asarray([1, 2]))
    with pytest.raises(TypeError, match="only integer tensors can be used as an index"):
        [1, 2][hw.asarray(1.0)]


def test_len_and_iteration(t: hw.Tensor) -> None:
    assert len(t) == 2
    rows = list(t)
    assert len(rows) == 2 and all(r.shape == (3, 4) for r in rows)
    np.testing.assert_array_equal(rows[1].numpy(), BASE[1])
    with pytest.raises(TypeError, match="len"):
        len(hw.asarray(1))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(hw.asarray(1)).__next__()


def test_repr() -> None:
    assert repr(hw.asarray([1, 2, 3])) == "Tensor([1, 2, 3], dtype=int64, device='cpu:0')"
    assert repr(hw.asarray(2.5)) == "Tensor(2.5, dtype=float32, device='cpu:0')"
    assert repr(hw.asarray([True])) == "Tensor([ True], dtype=bool, device='cpu:0')"


# -- indexing -------------------------------------------------------------------------------------

READ_KEYS: list[Any] = [
    1,
    -1,
    (0, 2),
    (1, -1, -4),
    slice(None),
    slice(1, None),
    (slice(None), slice(None, None, 2)),
    (slice(None), slice(None, None, -1)),
    (slice(None), slice(2, 0, -1), slice(3, None, -2)),
    (slice(5, 9),),  # empty
    (slice(None, None, -1), 1, slice(-3, None)),
    Ellipsis,
    (Ellipsis, 1),
    (1, Ellipsis, 2),
    (None,),
    (None, 1, None, Ellipsis, None),
    (Ellipsis, None),
    (slice(None), None, 0),
    np.int64(1),
    (),
]


@pytest.mark.parametrize("key", READ_KEYS, ids=repr)
def test_basic_indexing_reads_like_numpy(t: hw.Tensor, key: Any) -> None:
    view = t[key]
    expected = BASE[key]
    assert view.shape == expected.shape
    assert view.strides == tuple(s // BASE.itemsize for s in expected.strides) or expected.size <= 1
    np.testing.assert_array_equal(view.numpy(), expected)


def test_views_of_views_and_tensor_indices(t: hw.Tensor) -> None:
    np.testing.assert_array_equal(t[1][::-1][:, 1:3].numpy(), BASE[1][::-1][:, 1:3])
    np.testing.assert_array_equal(t[hw.asarray(1), hw.asarray(-1)].numpy(), BASE[1, -1])
    scalar = hw.asarray(5)
    assert scalar[()].item() == 5 and scalar[...].item() == 5 and scalar[None].shape == (1,)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (2, r"index 2 is out of bounds for dimension 0 with size 2; valid indices are -2 to 1"),
        (-3, "index -3 is out of bounds for dimension 0"),
        ((0, 3), "index 3 is out of bounds for dimension 1 with size 3"),
        ((0, 0, 0, 0), r"too many indices: the tensor has 3 dimension\(s\), the index has 4"),
        ((Ellipsis, 0, Ellipsis), "only have a single ellipsis"),
        (slice(None, None, 0), "invalid slice .* step is not zero"),
        (slice(0.5, 2), "invalid slice"),
        (1.0, "unsupported index 1.0 of type float"),
        ([0, 1], "unsupported index .*Convert host arrays and lists with hw.asarray"),
        (np.array([0, 1]), "unsupported index"),
        ((np.array([0, 1]), Ellipsis), "unsupported index"),
        (True, "unsupported index True of type bool"),
        ("a", "unsupported index 'a'"),
    ],
    ids=repr,
)
def test_bad_indices(t: hw.Tensor, key: Any, message: str) -> None:
    with pytest.raises(hw.InvalidIndexError, match=message):
        t[key]
    with pytest.raises(IndexError):  # the built-in category too
        t[key]


def test_index_into_an_empty_dimension() -> None:
    with pytest.raises(hw.InvalidIndexError, match="dimension 0, which is empty"):
        hw.empty((0, 2))[0]


# -- writes ---------------------------------------------------------------------------------------


def test_setitem_with_scalars_like_numpy() -> None:
    x = hw.asarray(BASE)
    expected = BASE.copy()
    for key, value in [
        ((0, 1, 2), 100),
        ((1, slice(None), 0), -5),
        ((Ellipsis, slice(None, None, -2)), 7),
        ((slice(None), None, 2), 9),
        ((), 1),
    ]:
        x[key] = value
        expected[key] = value
        np.testing.assert_array_equal(x.numpy(), expected)


def test_setitem_with_tensors_broadcast_and_converted() -> None:
    x = hw.zeros((3, 4), dtype="int32")
    x[1] = hw.asarray([1, 2, 3, 4], dtype="int64")  # converted to int32
    x[:, 0] = hw.asarray(9)  # broadcast from 0-d
    x[2:, ::2] = hw.asarray([[-1.9, 5.7]])  # float -> int truncates toward zero
    expected = np.zeros((3, 4), np.int32)
    expected[1] = [1, 2, 3, 4]
    expected[:, 0] = 9
    expected[2:, ::2] = np.array([[-1.9, 5.7]]).astype(np.int32)
    np.testing.assert_array_equal(x.numpy(), expected)
    assert x.dtype is hw.int32

    y = hw.zeros(3)  # float32
    y[...] = True
    assert y.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(hw.ShapeError, match="broadcast"):
        x[0] = hw.asarray([1, 2, 3])


@pytest.mark.parametrize(
    ("dst", "src"),
    [
        (slice(1, None), slice(None, -1)),
        (slice(None, -1), slice(1, None)),
        (slice(None), slice(None, None, -1)),
        (slice(None, None, 2), slice(1, None, 2)),
    ],
    ids=repr,
)
def test_overlapping_self_assignment_gives_numpys_answer(dst: slice, src: slice) -> None:
    x = hw.arange(8)
    x[dst] = x[src]
    expected = np.arange(8)
    expected[dst] = expected[src]
    np.testing.assert_array_equal(x.numpy(), expected)


def test_setitem_rejects_what_it_cannot_take(two_cpus: tuple[hw.Device, hw.Device]) -> None:
    d0, d1 = two_cpus
    x = hw.zeros(3, device=d0)
    with pytest.raises(hw.DeviceError, match="cannot assign a tensor on cpu:1 into one on cpu:0"):
        x[0] = hw.asarray(1.0, device=d1)
    with pytest.raises(hw.DTypeError, match="cannot assign a list"):
        x[:] = [1, 2, 3]
    with pytest.raises(hw.InvalidIndexError):
        x[3] = 1.0
    with pytest.raises(hw.DTypeError, match="out of range for int8"):
        hw.zeros(2, dtype="int8")[0] = 1000


# -- reshape, transposes, astype ------------------------------------------------------------------


def test_reshape_of_a_contiguous_tensor_is_a_view(t: hw.Tensor) -> None:
    flat = t.reshape(-1)
    assert flat.shape == (24,)
    assert flat._storage is t._storage
    assert t.reshape(4, 6).shape == (4, 6) and t.reshape((6, 4)).shape == (6, 4)
    flat[0] = -1  # writes through to t
    assert t[0, 0, 0].item() == -1
    copied = t.reshape(24, copy=True)
    assert copied._storage is not t._storage
    copied[1] = 555
    assert t[0, 0, 1].item() == 1


def test_reshape_of_a_strided_tensor_copies(t: hw.Tensor) -> None:
    strided = t[:, :, ::2]
    flat = strided.reshape(-1)
    np.testing.assert_array_equal(flat.numpy(), BASE[:, :, ::2].reshape(-1))
    assert flat._storage is not t._storage
    with pytest.raises(hw.ShapeError, match=r"reshape\(copy=False\) of a non-contiguous tensor"):
        strided.reshape(-1, copy=False)
    with pytest.raises(hw.ShapeError):
        t.reshape(5, 5)


def test_transposes(t: hw.Tensor) -> None:
    m = t[0]
    assert m.T.shape == (4, 3) and m.T.strides == (1, 4)
    np.testing.assert_array_equal(m.T.numpy(), BASE[0].T)
    np.testing.assert_array_equal(t.mT.numpy(), np.swapaxes(BASE, -1, -2))
    assert m.T._storage is t._storage
    with pytest.raises(hw.ShapeError, match=r"\.T needs a 2-D tensor, this one is 3-D; use \.mT"):
        t.T  # noqa: B018
    with pytest.raises(hw.ShapeError, match=r"\.mT needs at least 2 dimensions"):
        hw.asarray([1, 2]).mT  # noqa: B018


def test_astype(t: hw.Tensor) -> None:
    f = t.astype("float16")
    assert f.dtype is hw.float16
    np.testing.assert_array_equal(f.numpy(), BASE.astype(np.float16))
    assert t.astype(hw.int32, copy=False) is t
    same = t.astype(np.int32)
    assert same is not t and same._storage is not t._storage
    back = hw.asarray([1.7, -1.7, 2.5]).astype("int8")
    assert back.tolist() == [1, -1, 2]
    with pytest.raises(hw.DTypeError, match="unknown dtype 'float128'"):
        t.astype("float128")


# -- moving between devices -----------------------------------------------------------------------


def test_to_another_device_uses_a_peer_copy(
    two_cpus: tuple[hw.Device, hw.Device], gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    d0, d1 = two_cpus
    impl = d1._impl
    calls: list[str] = []
    original = impl.copy_peer
    monkeypatch.setattr(impl, "copy_peer", lambda *a: (calls.append("peer"), original(*a))[1])
    s0 = d0.create_stream()
    x = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3), device=d0, stream=s0)
    release = gate(s0)
    doubled = hw.add(x, x, stream=s0)  # not computed yet
    moved = doubled.to(d1)  # ordered after it by an event, without blocking the host
    assert moved.device is d1 and moved.shape == (2, 3) and moved.dtype is hw.float32
    release.set()
    np.testing.assert_array_equal(moved.numpy(), 2 * np.arange(6).reshape(2, 3))
    assert calls == ["peer"]
    assert x.to(d0) is x and x.to("cpu:0") is x
    back = moved.to("cpu:0", stream=d0.create_stream())
    assert back.device is d0
    np.testing.assert_array_equal(back.numpy(), 2 * np.arange(6).reshape(2, 3))
    strided = hw.asarray(BASE, device=d0)[:, ::-1, ::2]
    np.testing.assert_array_equal(strided.to(d1).numpy(), BASE[:, ::-1, ::2])


def test_to_another_device_without_peer_copies_stages_through_the_host(
    limited_device: hw.Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    d0, d1 = limited_device, hw.device("limited:1")
    impl = d0._impl
    monkeypatch.setattr(impl, "copy_peer", lambda *a: pytest.fail("copy_peer was called"))
    x = hw.asarray(BASE, device=d0)[1, :, 1:]
    moved = x.to(d1)
    assert moved.device is d1
    np.testing.assert_array_equal(moved.numpy(), BASE[1, :, 1:])
    assert hw.asarray([]).to(d1).shape == (0,)


def test_memory_returns_to_its_baseline(fresh_registry: Callable[..., Registry]) -> None:
    fresh_registry(HWABSTRACT_CPU_MEMORY="64MiB", HWABSTRACT_CPU_DEVICES=None)
    dev = hw.device("cpu")
    x0 = hw.asarray(np.ones(4, np.float32))  # the first use creates the default stream
    del x0
    gc.collect()
    baseline = dev.memory_stats()
    a = hw.asarray(np.ones((256, 256), np.float32))
    b = hw.matmul(a, a)
    view = b[1:, ::2].T
    c = view.reshape(-1)  # a copy
    assert dev.memory_stats().allocations == baseline.allocations + 3
    assert dev.memory_stats().in_use == baseline.in_use + 2 * 256 * 256 * 4 + c.nbytes
    del a, b, c
    gc.collect()
    assert dev.memory_stats().in_use == baseline.in_use + 256 * 256 * 4  # the view holds b
    del view
    gc.collect()
    after = dev.memory_stats()
    assert (after.in_use, after.allocations) == (baseline.in_use, baseline.allocations)
