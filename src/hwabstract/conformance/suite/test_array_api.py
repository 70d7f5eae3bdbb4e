"""The Array API namespace on the device: the kernels it added (sorting, searching, indexing,
cumulative, the ``linalg`` factorizations and the ``fft`` transforms) for every dtype the
device declares them for, against their NumPy references; then every namespace function
that is a composition (manipulation, set functions, ``nonzero``, boolean-mask and integer
indexing, the ``linalg`` and ``fft`` helpers, ``__array_namespace_info__``) against NumPy.

A kernel the device does not declare is *not claimed*; a namespace function needing such a
kernel is not claimed either (the namespace raises UnsupportedError, naming it, before any
work is queued). Factorizations defined only up to sign or phase (``qr``, ``eigh``, ``svd``)
are checked by what defines them: reconstruction, orthonormality, order.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hwabstract as hw
from hwabstract import dtypes as dt
from hwabstract.conformance.helpers import declared, float_dtype, not_claimed
from hwabstract.conformance.numerics import accumulator, eps, kernel_sample
from hwabstract.conformance.reference import check_kernel
from hwabstract.dispatch import launch, launch_all
from hwabstract.dtypes import DType
from hwabstract.errors import UnsupportedError
from hwabstract.kernels import all_specs, get_spec

SORTING = [s for s in all_specs() if s.category in ("sorting", "indexing", "cumulative")]
LINALG = [s for s in all_specs() if s.category == "linalg" and s.name != "matmul"]
FFT = [s for s in all_specs() if s.category == "fft"]


def _pairs(specs: list[Any]) -> list[tuple[str, DType]]:
    return [(s.name, d) for s in specs for d in dt.all_dtypes() if d in s.dtypes]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kernel_dtype" in metafunc.fixturenames:
        specs = {
            "test_sorting_kernels": SORTING,
            "test_linalg_kernels": LINALG,
            "test_fft_kernels": FFT,
        }[metafunc.function.__name__]
        values = _pairs(specs)
        metafunc.parametrize("kernel_dtype", values, ids=[f"{k}-{d.name}" for k, d in values])


def _rng(*key: Any) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _claim(device: hw.Device, kernel: str, dtype: DType) -> None:
    if not device.capabilities.supports_kernel(kernel, dtype):
        not_claimed(f"kernel {kernel} for {dtype.name}")


def _with_ties(rng: np.random.Generator, shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    """Samples with repeated values (and NaN, -0.0 for floats), so order and stability show."""
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    base = kernel_sample("sort", dtype, shape, rng)
    pool = base.reshape(-1)[: max(1, base.size // 3)]
    out = rng.choice(pool, size=shape) if base.size else base
    if dtype.kind == "f" and out.size >= 4:
        flat = out.reshape(-1)
        flat[0] = np.nan
        flat[1] = -0.0
        flat[2] = 0.0
    return np.asarray(out, dtype=dtype.numpy_dtype)


# -- kernels: sorting, searching, indexing, cumulative --------------------------------------------


def test_sorting_kernels(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    kernel, dtype = kernel_dtype
    _claim(device, kernel, dtype)
    rng = _rng(kernel, dtype.name)
    x = _with_ties(rng, (6, 37), dtype)
    t = hw.asarray(x, device=device)
    strided = hw.flip(hw.asarray(np.ascontiguousarray(x.T), device=device), axis=0).mT
    if kernel in ("sort", "argsort"):
        for axis in (0, -1):
            for descending in (False, True):
                attrs = {"axis": axis, "descending": descending, "stable": True}
                check_kernel(kernel, device, [t], attrs, context=f"axis={axis} {attrs}")
        check_kernel(kernel, device, [strided], {"axis": -1}, context="strided")
        check_kernel(
            kernel, device, [hw.asarray(x[:, :0], device=device)], {"axis": -1}, context="empty"
        )
    elif kernel == "searchsorted":
        haystack = hw.sort(hw.asarray(x.reshape(-1), device=device))
        needles = hw.asarray(_with_ties(rng, (5, 9), dtype), device=device)
        for side in ("left", "right"):
            check_kernel(kernel, device, [haystack, needles], {"side": side}, context=side)
            check_kernel(
                kernel,
                device,
                [haystack, haystack],
                {"side": side},
                context=f"{side}, every element of x1",
            )
    elif kernel == "take":
        for axis, n in ((0, 6), (1, 37)):
            idx = rng.integers(-n, n, 11)
            for idx_dtype in ("int64", "int32"):
                indices = hw.asarray(idx.astype(idx_dtype), device=device)
                check_kernel(
                    kernel,
                    device,
                    [t, indices],
                    {"axis": axis},
                    context=f"axis={axis} {idx_dtype} indices",
                )
        check_kernel(
            kernel,
            device,
            [strided, hw.asarray(np.array([0, -1, 3]), device=device)],
            {"axis": 1},
            context="strided",
        )
    elif kernel == "take_along_axis":
        order = np.argsort(x, axis=1, kind="stable")
        check_kernel(
            kernel,
            device,
            [t, hw.asarray(order, device=device)],
            {"axis": 1},
            context="argsort indices",
        )
        picks = hw.asarray(rng.integers(-6, 6, (3, 1)), device=device)
        check_kernel(kernel, device, [t, picks], {"axis": 0}, context="broadcast indices")
    elif kernel == "flatnonzero":
        for what, data in (("random", x), ("strided", np.asarray(strided.numpy()))):
            source = t if what == "random" else strided
            count = int(np.count_nonzero(data))
            got = launch(kernel, (source,), {"count": count}).numpy()
            np.testing.assert_array_equal(
                got, np.flatnonzero(data), err_msg=f"flatnonzero[{dtype}] {what}"
            )
    else:  # cumulative_sum, cumulative_prod
        data = (
            x
            if kernel == "cumulative_sum" or dtype.kind != "f"
            else (1 + rng.standard_normal(x.shape) / 8).astype(dtype.numpy_dtype)
        )
        if kernel == "cumulative_prod" and dtype.kind in "iu":
            data = rng.integers(0, 3, x.shape).astype(dtype.numpy_dtype)
        src = hw.asarray(data, device=device)
        for axis in (0, 1):
            for initial in (False, True):
                attrs = {"axis": axis, "include_initial": initial}
                check_kernel(kernel, device, [src], attrs, context=str(attrs))


# -- kernels: linalg -------------------------------------------------------------------------


def _matrices(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: DType, kind: str = "general"
) -> np.ndarray:
    """Well-conditioned test matrices (so the checks measure the device, not the problem)."""
    a = rng.standard_normal(shape)
    if dtype.kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    if kind in ("spd", "hermitian"):
        a = a @ np.conj(np.swapaxes(a, -1, -2)) / shape[-1]
        if kind == "spd":
            a = a + np.eye(shape[-1])
    elif kind == "square":
        a = a + 2 * np.eye(shape[-1]) * np.sqrt(shape[-1])
    return a.astype(dtype.numpy_dtype)


def _tol(dtype: DType, n: int, scale: float = 1.0) -> float:
    """A backward-stable algorithm's error on a well-conditioned n x n problem, with slack:
    c * n * eps of the dtype the kernel computes in (float32 for narrower floats)."""
    rounding = 2 * eps(dtype) * scale if dtype.itemsize < 4 else 0.0  # the one final rounding
    return 30.0 * max(n, 1) * eps(accumulator(dtype)) * scale + rounding


def _wide(t: hw.Tensor) -> np.ndarray:
    a = t.numpy()
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def _ct(a: np.ndarray) -> np.ndarray:
    return np.conj(np.swapaxes(a, -1, -2))


def test_linalg_kernels(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    kernel, dtype = kernel_dtype
    _claim(device, kernel, dtype)
    rng = _rng(kernel, dtype.name)
    kind = {
        "cholesky": "spd",
        "eigh": "hermitian",
        "eigvalsh": "hermitian",
        "inv": "square",
        "solve": "square",
        "det": "square",
        "slogdet": "square",
    }.get(kernel, "general")
    shapes = [(2, 5, 5), (1, 1), (8, 8)] if kind != "general" else [(2, 6, 4), (4, 6), (1, 1)]
    for shape in shapes:
        a = _matrices(rng, shape, dtype, kind)
        t = hw.asarray(a, device=device)
        n = shape[-1]
        where = f"{kernel}[{dtype.name}] shape {shape}"
        spec = get_spec(kernel)
        if kernel in ("qr", "eigh", "svd"):
            _check_factorization(kernel, t, a, dtype, where)
            continue
        if kernel == "solve":
            b = _matrices(rng, (*shape[:-1], 3), dtype)
            got = launch(kernel, (t, hw.asarray(b, device=device))).numpy()
            expected = spec.reference(a, b)
        else:
            attrs = {"upper": n > 2} if kernel == "cholesky" else None
            outputs = launch_all(kernel, (t,), attrs)
            got = outputs[0].numpy() if len(outputs) == 1 else outputs[1].numpy()
            ref = spec.reference(a, **(attrs or {}))
            expected = ref[1] if isinstance(ref, tuple) else ref
            if kernel == "slogdet" and dtype.kind == "c":
                # a complex sign is a unit number computed from the factorization: as
                # accurate as the determinant, not exact
                np.testing.assert_allclose(
                    outputs[0].numpy().astype(np.complex128),
                    ref[0].astype(np.complex128),
                    atol=_tol(dtype, n, 1.0),
                    rtol=0,
                    err_msg=f"{where}: sign",
                )
            elif kernel == "slogdet":  # a real sign is -1, 0 or 1: exact
                np.testing.assert_array_equal(outputs[0].numpy(), ref[0], err_msg=f"{where}: sign")
        scale = float(np.max(np.abs(expected.astype(np.complex128)), initial=1.0))
        np.testing.assert_allclose(
            got.astype(np.complex128),
            expected.astype(np.complex128),
            atol=_tol(dtype, n, scale),
            rtol=0,
            err_msg=where,
        )


def _check_factorization(
    kernel: str, t: hw.Tensor, a: np.ndarray, dtype: DType, where: str
) -> None:
    wide = a.astype(np.complex128 if dtype.kind == "c" else np.float64)
    n = max(a.shape[-2:])
    scale = float(np.max(np.abs(wide), initial=1.0))
    tol = _tol(dtype, n, scale)
    if kernel == "qr":
        for mode in ("reduced", "complete"):
            q, r = (_wide(o) for o in launch_all("qr", (t,), {"mode": mode}))
            k = q.shape[-1]
            np.testing.assert_allclose(q @ r, wide, atol=tol, err_msg=f"{where} {mode}: Q @ R")
            np.testing.assert_allclose(
                _ct(q) @ q,
                np.broadcast_to(np.eye(k), (*q.shape[:-2], k, k)),
                atol=_tol(dtype, n),
                err_msg=f"{where}: Q^H Q",
            )
            assert np.allclose(np.tril(r, -1), 0, atol=tol), f"{where}: R not upper triangular"
    elif kernel == "eigh":
        w, v = (_wide(o) for o in launch_all("eigh", (t,)))
        assert np.all(np.diff(w, axis=-1) >= -tol), f"{where}: eigenvalues not ascending"
        np.testing.assert_allclose(
            w, np.linalg.eigvalsh(wide), atol=tol, err_msg=f"{where}: eigenvalues"
        )
        np.testing.assert_allclose(
            (v * w[..., None, :]) @ _ct(v), wide, atol=tol, err_msg=f"{where}: V diag(w) V^H"
        )
    else:  # svd
        for full in (True, False):
            u, s, vh = (_wide(o) for o in launch_all("svd", (t,), {"full_matrices": full}))
            k = s.shape[-1]
            assert np.all(np.diff(s, axis=-1) <= tol), f"{where}: singular values not descending"
            np.testing.assert_allclose(
                s,
                np.linalg.svd(wide, compute_uv=False),
                atol=tol,
                err_msg=f"{where}: singular values",
            )
            rebuilt = (u[..., :, :k] * s[..., None, :]) @ vh[..., :k, :]
            np.testing.assert_allclose(rebuilt, wide, atol=tol, err_msg=f"{where}: U S Vh")
            for m, what in ((u, "U"), (_ct(vh), "V")):
                c = m.shape[-1]
                np.testing.assert_allclose(
                    _ct(m) @ m,
                    np.broadcast_to(np.eye(c), (*m.shape[:-2], c, c)),
                    atol=_tol(dtype, n),
                    err_msg=f"{where}: {what} orthonormal",
                )


# -- kernels: fft -----------------------------------------------------------------------------


def test_fft_kernels(device: hw.Device, kernel_dtype: tuple[str, DType]) -> None:
    kernel, dtype = kernel_dtype
    _claim(device, kernel, dtype)
    rng = _rng(kernel, dtype.name)
    spec = get_spec(kernel)
    for shape, axis, n in (
        ((4, 16), -1, None),
        ((12, 3), 0, None),
        ((5, 9), 1, 12),
        ((5, 9), 1, 7),
    ):
        a = rng.standard_normal(shape)
        if dtype.kind == "c":
            a = a + 1j * rng.standard_normal(shape)
        a = a.astype(dtype.numpy_dtype)
        for norm in ("backward", "ortho", "forward"):
            variants = [{"inverse": False}, {"inverse": True}] if kernel == "fft" else [{}]
            for extra in variants:
                attrs = {"axis": axis, "n": n, "norm": norm, **extra}
                got = launch(kernel, (hw.asarray(a, device=device),), attrs).numpy()
                plan_attrs = spec.shape_rule([a.shape], attrs)[2]
                expected = spec.reference(a, **plan_attrs)
                length = max(a.shape[axis], plan_attrs["n"])
                scale = float(np.max(np.abs(expected), initial=1.0))
                tol = 10 * math.log2(max(length, 2)) * eps(dtype) * scale * math.sqrt(length)
                np.testing.assert_allclose(
                    got,
                    expected,
                    atol=tol,
                    rtol=0,
                    err_msg=f"{kernel}[{dtype.name}] {shape} {attrs}",
                )


# -- the namespace's compositions -----------------------------------------------------------------


def _run(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; a kernel the device does not declare makes the test not claimed."""
    try:
        return fn()
    except UnsupportedError as exc:
        not_claimed(exc.capability)


def _same(got: Any, expected: Any, what: str, tol: float = 0.0) -> None:
    if isinstance(expected, (tuple, list)):
        assert len(got) == len(expected), f"{what}: {len(got)} results, expected {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            _same(g, e, f"{what}[{i}]", tol)
        return
    assert isinstance(got, hw.Tensor), f"{what}: returned {type(got).__name__}, not a Tensor"
    actual = got.numpy()
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape}, expected {expected.shape}"
    )
    if tol:
        np.testing.assert_allclose(actual, expected, atol=tol, rtol=tol, err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


#: name -> (the call on the namespace, the same call on NumPy); ``a`` is a (4, 6) float sample
#: with ties, ``i`` a (4, 6) int64 sample, ``v`` a 1-D float sample of 6.
CASES: dict[str, tuple[Callable[..., Any], str | None]] = {
    "arange": (lambda xp, a, i, v, idx: xp.arange(1, 9, 2, dtype=xp.int64, device=a.device), None),
    "linspace": (lambda xp, a, i, v, idx: xp.linspace(-1, 2, 7, device=a.device), "tol"),
    "eye": (lambda xp, a, i, v, idx: xp.eye(3, 5, k=1, device=a.device), None),
    "full": (lambda xp, a, i, v, idx: xp.full((2, 3), 7, device=a.device), None),
    "zeros_like": (lambda xp, a, i, v, idx: xp.zeros_like(a), None),
    "ones_like": (lambda xp, a, i, v, idx: xp.ones_like(i), None),
    "full_like": (lambda xp, a, i, v, idx: xp.full_like(v, 2.5), None),
    "permute_dims": (lambda xp, a, i, v, idx: xp.permute_dims(a[None], (2, 0, 1)), None),
    "reshape": (lambda xp, a, i, v, idx: xp.reshape(a.mT, (3, 8)), None),
    "flip": (lambda xp, a, i, v, idx: xp.flip(a, axis=1), None),
    "broadcast_to": (lambda xp, a, i, v, idx: xp.broadcast_to(v, (4, 6)), None),
    "concat": (lambda xp, a, i, v, idx: xp.concat([a, a[:1]], axis=0), None),
    "concat-flat": (lambda xp, a, i, v, idx: xp.concat([a, v], axis=None), None),
    "stack": (lambda xp, a, i, v, idx: xp.stack([a, a], axis=1), None),
    "expand_dims": (lambda xp, a, i, v, idx: xp.expand_dims(a, axis=(0, 2)), None),
    "squeeze": (lambda xp, a, i, v, idx: xp.squeeze(a[None, :, None], axis=(0, 2)), None),
    "moveaxis": (lambda xp, a, i, v, idx: xp.moveaxis(a[None], 0, -1), None),
    "roll": (lambda xp, a, i, v, idx: xp.roll(a, (2, -1), axis=(1, 0)), None),
    "roll-flat": (lambda xp, a, i, v, idx: xp.roll(a, 5), None),
    "repeat": (lambda xp, a, i, v, idx: xp.repeat(a, 3, axis=1), None),
    "repeat-counts": (lambda xp, a, i, v, idx: xp.repeat(a, idx([0, 2, 1, 3]), axis=0), None),
    "tile": (lambda xp, a, i, v, idx: xp.tile(a, (2, 1, 3)), None),
    "unstack": (lambda xp, a, i, v, idx: xp.unstack(a, axis=1), None),
    "broadcast_arrays": (lambda xp, a, i, v, idx: xp.broadcast_arrays(a, v), None),
    "matrix_transpose": (lambda xp, a, i, v, idx: xp.matrix_transpose(a), None),
    "tensordot": (lambda xp, a, i, v, idx: xp.tensordot(a, a, axes=([1], [1])), "tol"),
    "vecdot": (lambda xp, a, i, v, idx: xp.vecdot(a, v), "tol"),
    "tril": (lambda xp, a, i, v, idx: xp.tril(a, k=1), None),
    "triu": (lambda xp, a, i, v, idx: xp.triu(a, k=-1), None),
    "meshgrid": (lambda xp, a, i, v, idx: xp.meshgrid(v, v[:3]), None),
    "diff": (lambda xp, a, i, v, idx: xp.diff(i, axis=1, n=2), None),
    "count_nonzero": (lambda xp, a, i, v, idx: xp.count_nonzero(a, axis=1), None),
    "nonzero": (lambda xp, a, i, v, idx: xp.nonzero(a), None),
    "unique_values": (lambda xp, a, i, v, idx: xp.unique_values(i), None),
    "unique_counts": (lambda xp, a, i, v, idx: tuple(xp.unique_counts(i)), None),
    "unique_inverse": (lambda xp, a, i, v, idx: tuple(xp.unique_inverse(i)), None),
    "unique_all": (lambda xp, a, i, v, idx: tuple(xp.unique_all(i)), None),
    "sort": (lambda xp, a, i, v, idx: xp.sort(a, axis=0, descending=True), None),
    "argsort": (lambda xp, a, i, v, idx: xp.argsort(i, axis=1), None),
    "searchsorted": (lambda xp, a, i, v, idx: xp.searchsorted(xp.sort(v), a, side="right"), None),
    "take": (lambda xp, a, i, v, idx: xp.take(a, idx([3, -1, 0]), axis=1), None),
    "take_along_axis": (
        lambda xp, a, i, v, idx: xp.take_along_axis(a, xp.argsort(a, axis=0), axis=0),
        None,
    ),
    "cumulative_sum": (
        lambda xp, a, i, v, idx: xp.cumulative_sum(i, axis=1, include_initial=True),
        None,
    ),
    "mask-getitem": (lambda xp, a, i, v, idx: a[i > 3], None),
    "integer-getitem": (lambda xp, a, i, v, idx: a[idx([0, -1, 2]), idx([5, 0, 1])], None),
    "linalg.vector_norm": (lambda xp, a, i, v, idx: xp.linalg.vector_norm(v, ord=3), "tol"),
    "linalg.matrix_norm": (lambda xp, a, i, v, idx: xp.linalg.matrix_norm(a, ord=1), "tol"),
    "linalg.diagonal": (lambda xp, a, i, v, idx: xp.linalg.diagonal(a, offset=1), None),
    "linalg.trace": (lambda xp, a, i, v, idx: xp.linalg.trace(i, offset=-1), None),
    "linalg.outer": (lambda xp, a, i, v, idx: xp.linalg.outer(v, v), "tol"),
    "linalg.cross": (lambda xp, a, i, v, idx: xp.linalg.cross(a[:, :3], a[:, 3:]), "tol"),
    "linalg.matrix_power": (
        lambda xp, a, i, v, idx: xp.linalg.matrix_power(a[:, :4] / 4, 3),
        "tol",
    ),
    "linalg.matrix_rank": (lambda xp, a, i, v, idx: xp.linalg.matrix_rank(a), None),
    "linalg.pinv": (lambda xp, a, i, v, idx: xp.linalg.pinv(a), "tol"),
    "fft.fftn": (lambda xp, a, i, v, idx: xp.fft.fftn(xp.astype(a, xp.complex64)), "tol"),
    "fft.rfftn": (lambda xp, a, i, v, idx: xp.fft.rfftn(a), "tol"),
    "fft.irfftn": (lambda xp, a, i, v, idx: xp.fft.irfftn(xp.fft.rfftn(a), s=a.shape), "tol"),
    "fft.hfft": (lambda xp, a, i, v, idx: xp.fft.hfft(xp.astype(a, xp.complex64)), "tol"),
    "fft.ihfft": (lambda xp, a, i, v, idx: xp.fft.ihfft(a), "tol"),
    "fft.fftshift": (lambda xp, a, i, v, idx: xp.fft.fftshift(a), None),
    "fft.ifftshift": (lambda xp, a, i, v, idx: xp.fft.ifftshift(a, axes=1), None),
}


class _NumPyNamespace:
    """NumPy under the Array API's names, for the expected side of :data:`CASES`."""

    def __getattr__(self, name: str) -> Any:
        aliases = {
            "permute_dims": np.transpose,
            "matrix_transpose": lambda a: np.swapaxes(a, -1, -2),
            "unstack": lambda a, axis=0: tuple(np.moveaxis(a, axis, 0)),
            "count_nonzero": np.count_nonzero,
            "unique_values": np.unique,
            "unique_counts": lambda a: tuple(np.unique(a, return_counts=True)),
            "unique_inverse": lambda a: (
                np.unique(a),
                np.unique(a, return_inverse=True)[1].reshape(a.shape),
            ),
            "unique_all": lambda a: (
                *np.unique(a, return_index=True)[:2],
                np.unique(a, return_inverse=True)[1].reshape(a.shape),
                np.unique(a, return_counts=True)[1],
            ),
            "sort": lambda a, axis=-1, descending=False: (
                np.flip(np.sort(np.flip(a, axis), axis, kind="stable"), axis)
                if descending
                else np.sort(a, axis)
            ),
            "argsort": lambda a, axis=-1: np.argsort(a, axis=axis, kind="stable"),
            "cumulative_sum": lambda a, axis=None, include_initial=False: np.concatenate(
                [np.zeros_like(np.take(a, [0], axis=axis)), np.cumsum(a, axis=axis)], axis=axis
            ),
            "astype": lambda a, d: a.astype(d),
            "complex64": np.complex64,
            "asarray": np.asarray,
            "tile": np.tile,
            "repeat": np.repeat,
            "roll": np.roll,
            "moveaxis": np.moveaxis,
            "tensordot": np.tensordot,
            "take_along_axis": np.take_along_axis,
            "vecdot": lambda a, b, axis=-1: np.sum(np.conj(a) * b, axis=axis),
            "broadcast_arrays": lambda *xs: list(np.broadcast_arrays(*xs)),
            "meshgrid": lambda *xs, indexing="xy": list(np.meshgrid(*xs, indexing=indexing)),
        }
        if name in aliases:
            return aliases[name]
        if name == "linalg":
            return _NumPyLinalg()
        return getattr(np, name)


class _NumPyLinalg:
    def __getattr__(self, name: str) -> Any:
        aliases = {
            "vector_norm": lambda x, ord=2: np.linalg.norm(x, ord=ord),
            "matrix_norm": lambda x, ord="fro": np.linalg.norm(x, ord=ord, axis=(-2, -1)),
            "diagonal": lambda x, offset=0: np.diagonal(x, offset, -2, -1),
            "trace": lambda x, offset=0: np.trace(x, offset, -2, -1),
            "cross": lambda a, b: np.cross(a, b),
            "pinv": lambda x: np.linalg.pinv(x.astype(np.float64)),
        }
        return aliases.get(name) or getattr(np.linalg, name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_namespace_function(device: hw.Device, case: str) -> None:
    fdt = float_dtype(device)
    if dt.int64 not in declared(device, "i"):
        not_claimed("dtype int64 (the default integer)")
    rng = _rng("namespace", case)
    a = np.round(rng.standard_normal((4, 6)) * 3).astype(fdt.numpy_dtype)
    a[0, 0] = a[1, 1]  # a tie
    i = rng.integers(0, 6, (4, 6))
    v = rng.standard_normal(6).astype(fdt.numpy_dtype)
    call, mode = CASES[case]

    def on_device(values: list[int]) -> hw.Tensor:
        return hw.asarray(np.asarray(values, dtype=np.int64), device=device)

    got = _run(
        lambda: call(
            hw,
            hw.asarray(a, device=device),
            hw.asarray(i, device=device),
            hw.asarray(v, device=device),
            on_device,
        )
    )
    expected_fn = _EXPECTED.get(case)
    expected = expected_fn(a, i, v) if expected_fn else call(_NumPyNamespace(), a, i, v, np.asarray)
    tol = 0.0
    if mode == "tol":
        tol = 1e3 * eps(fdt) * max(1.0, float(np.max(np.abs(np.asarray(expected, dtype=complex)))))
    _same(got, _cast_like(expected, got), f"{case} on {device.name}", tol)


def _cast_like(expected: Any, got: Any) -> Any:
    """NumPy's result in the dtype the namespace gives (NumPy computes some in float64)."""
    if isinstance(expected, (tuple, list)):
        return type(expected)(_cast_like(e, g) for e, g in zip(expected, got))
    if isinstance(got, hw.Tensor):
        return np.asarray(expected).astype(got.numpy().dtype)
    return expected


_EXPECTED: dict[str, Callable[..., Any]] = {
    "repeat-counts": lambda a, i, v: np.repeat(a, [0, 2, 1, 3], axis=0),
    "take": lambda a, i, v: np.take(a, [3, -1, 0], axis=1),
    "mask-getitem": lambda a, i, v: a[i > 3],
    "integer-getitem": lambda a, i, v: a[[0, -1, 2], [5, 0, 1]],
    "roll-flat": lambda a, i, v: np.roll(a, 5),
    "linalg.matrix_power": lambda a, i, v: np.linalg.matrix_power(a[:, :4] / 4, 3),
    "linalg.matrix_rank": lambda a, i, v: np.linalg.matrix_rank(a.astype(np.float64)),
    "fft.fftn": lambda a, i, v: np.fft.fftn(a),
    "fft.rfftn": lambda a, i, v: np.fft.rfftn(a),
    "fft.irfftn": lambda a, i, v: np.fft.irfftn(np.fft.rfftn(a), s=a.shape),
    "fft.hfft": lambda a, i, v: np.fft.hfft(a),
    "fft.ihfft": lambda a, i, v: np.fft.ihfft(a),
    "fft.fftshift": lambda a, i, v: np.fft.fftshift(a),
    "fft.ifftshift": lambda a, i, v: np.fft.ifftshift(a, axes=1),
}


def test_namespace_info_reflects_the_manifest(device: hw.Device) -> None:
    info = hw.__array_namespace_info__()
    caps = device.capabilities
    found = info.dtypes(device=device)
    for name, d in found.items():
        assert d.name == name and caps.supports_dtype(d), f"{name} listed but not declared"
    from hwabstract.info import STANDARD_DTYPES

    for name, d in STANDARD_DTYPES.items():
        assert (name in found) == caps.supports_dtype(d), f"{name}: listed {name in found}"
    floats = info.dtypes(device=device, kind="real floating")
    assert set(floats) == {n for n in found if dt.dtype(n).kind == "f"}
    defaults = info.default_dtypes(device=device)
    for key, default in defaults.items():
        assert default is None or caps.supports_dtype(default), f"default {key} {default}"
    assert device in info.devices()
    assert info.capabilities()["max dimensions"] <= caps.limits.max_dims
