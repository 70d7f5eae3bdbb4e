"""Inputs and checks for the sorting, indexing, cumulative, FFT and linear-algebra kernels,
shared by the tests of the array-module table on NumPy (test_array_kernels.py), on the PJRT
stand-in (test_pjrt.py) and on the nvidia backend's CuPy double
(tests/plugins/nvidia/test_nvidia_on_fake_cupy.py).

:func:`cases` gives a kernel's inputs for one dtype, :func:`run` launches it on a device --
kernels with one output through ``dispatch.launch``, the others through the backend's
``launch`` with outputs allocated by ``dispatch.allocate`` -- and :func:`expected` and
:func:`check` compare with the spec's NumPy reference: by value (exactly for sorts, gathers
and integer results; within an error bound for floating results), and by what defines them
for the factors only defined up to sign or phase (QR's Q, eigenvectors, singular vectors):
reconstruction, orthonormality, and the magnitudes of R.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import ml_dtypes
import numpy as np

import hwabstract as hw
from hwabstract import dispatch
from hwabstract import dtypes as dt
from hwabstract.backend import DTypeSupport
from hwabstract.backends.pjrt import PjrtBackend
from hwabstract.backends.pjrt_profiles import ChipProfile
from hwabstract.conformance.numerics import sample, special_values
from hwabstract.dtypes import DType
from hwabstract.kernels import KernelSpec, all_specs, get_spec

#: the categories of the kernels checked here (linalg without matmul, which the table's
#: elementwise-style tests cover)
CATEGORIES = ("sorting", "indexing", "cumulative", "fft", "linalg")
NAMES = tuple(s.name for s in all_specs() if s.category in CATEGORIES and s.name != "matmul")
#: the kernels with several outputs
MULTI = frozenset({"slogdet", "qr", "eigh", "svd"})
#: results compared element for element, exactly (NaN payloads and signs of zeros too)
EXACT = frozenset({"sort", "argsort", "searchsorted", "take", "take_along_axis", "flatnonzero"})

Case = tuple[str, list[Any], dict[str, Any]]


def pairs(dtypes: Sequence[DType] | None = None) -> list[tuple[str, DType]]:
    """Every (kernel, dtype) of :data:`NAMES` the spec defines, among ``dtypes``."""
    from hwabstract.kernels import get_spec

    pool = dt.all_dtypes() if dtypes is None else dtypes
    return [(name, d) for name in NAMES for d in pool if d in get_spec(name).dtypes]


def _rng(*key: Any) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _narrow(dtype: Any) -> bool:
    d = dt.dtype(np.dtype(dtype))
    return d.kind == "f" and d.itemsize < 4


def _eps(dtype: Any) -> float:
    real = {np.dtype(np.complex64): np.float32, np.dtype(np.complex128): np.float64}
    return float(ml_dtypes.finfo(real.get(np.dtype(dtype), dtype)).eps)


def _ties(dtype: DType, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values with many ties (and, for floats, zeros of both signs)."""
    values = rng.integers(-3, 4, size=shape)
    if dtype.kind == "u":
        values = np.abs(values)
    out = values.astype(np.float64)
    if dtype.kind == "f":
        out = np.where(values == 0, np.where(rng.random(shape) < 0.5, -0.0, 0.0), out / 2)
    return out.astype(dtype.numpy_dtype)


def _float32_order(x: np.ndarray) -> np.ndarray:
    return np.sort(x.astype(np.float32) if _narrow(x.dtype) else x, kind="stable").astype(x.dtype)


def _matrix(dtype: DType, shape: tuple[int, ...], rng: np.random.Generator, *,
            hermitian: bool = False, dominant: float = 0.0) -> np.ndarray:  # fmt: skip
    """Matrices with entries in [-1, 1] (complex ones for complex dtypes); ``dominant`` on
    the diagonal makes them well conditioned (positive definite if ``hermitian``)."""
    a = rng.uniform(-1, 1, shape)
    if dtype.kind == "c":
        a = a + 1j * rng.uniform(-1, 1, shape)
    if hermitian:
        a = (a + np.conj(np.swapaxes(a, -1, -2))) / 2
    if dominant:
        a = a + dominant * np.eye(shape[-1])
    return a.astype(dtype.numpy_dtype)


def _with_upper_garbage(h: np.ndarray) -> np.ndarray:
    """``h`` with its strict upper triangle overwritten: kernels that read only the lower
    triangle must not see it."""
    m = h.shape[-1]
    out = h.copy()
    out[..., np.triu_indices(m, 1)[0], np.triu_indices(m, 1)[1]] = np.asarray(7).astype(h.dtype)
    return out


def cases(name: str, dtype: DType) -> Iterator[Case]:
    """The inputs (host arrays) and attributes of ``name`` for ``dtype``."""
    rng = _rng(name, dtype.name)
    if name in ("sort", "argsort"):
        x = _ties(dtype, (4, 9), rng)
        yield "rows with ties", [x], {}
        yield "rows with ties, descending", [x], {"descending": True}
        yield "axis 0, descending", [_ties(dtype, (5, 3), rng)], {"axis": 0, "descending": True}
        yield "unstable allowed", [_ties(dtype, (7,), rng)], {"stable": False}
        if dtype.kind == "f":
            s = special_values(dtype)
            yield "special values", [s], {}
            yield "special values, descending", [s], {"descending": True}
        return
    if name == "searchsorted":
        x1 = _float32_order(_ties(dtype, (9,), rng))
        x2 = _ties(dtype, (3, 5), rng)
        yield "left", [x1, x2], {}
        yield "right", [x1, x2], {"side": "right"}
        yield "0-d x2", [x1, x2[0, 0].reshape(())], {"side": "right"}
        if dtype.kind == "f":
            s = special_values(dtype)
            yield "special values (NaN last)", [_float32_order(s), s], {}
            yield "special values, right", [_float32_order(s), s], {"side": "right"}
        return
    if name == "take":
        x = sample(dtype, (3, 6), rng)
        yield "axis 1, negative indices", [x, np.array([0, -1, 5, -6, 2, 2], np.int64)], {"axis": 1}
        yield "axis 0, int8 indices", [x, np.array([2, -3, 1], np.int8)], {"axis": 0}
        yield "1-D, uint16 indices", [x[1], np.array([5, 0, 3], np.uint16)], {}
        return
    if name == "take_along_axis":
        x = sample(dtype, (4, 5), rng)
        idx = rng.integers(-5, 5, size=(4, 3))
        yield "last axis", [x, idx.astype(np.int32)], {}
        yield "axis 0", [x, rng.integers(-4, 4, size=(2, 5)).astype(np.int64)], {"axis": 0}
        yield "broadcast", [x[:1], idx[:, :2].astype(np.uint8) % 5], {"axis": 1}
        return
    if name == "flatnonzero":
        x = sample(dtype, (3, 5), rng)
        x = np.where(rng.random((3, 5)) < 0.4, np.zeros((), x.dtype), x)
        yield "mixed", [x], {"count": int(np.count_nonzero(x))}
        y = np.where(
            rng.random((2, 3, 4)) < 0.8, np.zeros((), x.dtype), sample(dtype, (2, 3, 4), rng)
        )
        yield "3-D, mostly zeros", [y], {"count": int(np.count_nonzero(y))}
        if dtype.kind == "f":
            s = special_values(dtype)  # NaN counts, -0.0 does not
            yield "special values", [s], {"count": int(np.count_nonzero(s))}
        return
    if name in ("cumulative_sum", "cumulative_prod"):
        low, high = (-4.0, 4.0) if name == "cumulative_sum" else (0.5, 1.5)
        if dtype.kind in "iu":
            low, high = (-3, 3) if name == "cumulative_sum" else (-2, 2)
        x = sample(dtype, (3, 6), rng, low=low, high=high)
        yield "axis 1", [x], {"axis": 1}
        yield "axis 0, with the initial value", [x], {"axis": 0, "include_initial": True}
        yield "1-D", [x[0]], {"include_initial": True}
        yield "accumulated in the input's dtype", [x], {"axis": 1, "dtype": dtype}
        return
    if name in ("fft", "rfft", "irfft"):
        x = sample(dtype, (3, 8), rng, low=-1.0, high=1.0)
        yield "default", [x], {}
        yield "n shorter, ortho", [x], {"n": 5, "norm": "ortho"}
        yield "axis 0, n longer, forward", [x], {"axis": 0, "n": 7, "norm": "forward"}
        if name == "fft":
            yield "inverse", [x], {"inverse": True}
            yield "inverse, ortho", [x], {"inverse": True, "norm": "ortho", "n": 6}
        return
    if name in ("cholesky", "eigh", "eigvalsh"):
        h = _matrix(dtype, (2, 4, 4), rng, hermitian=True, dominant=4.0)
        yield "batch, upper triangle ignored", [_with_upper_garbage(h)], {}
        if name == "cholesky":
            yield "upper", [h[0]], {"upper": True}
        else:
            yield "one matrix", [h[1]], {}
        yield "0 x 0", [np.zeros((0, 0), dtype.numpy_dtype)], {}
        return
    if name in ("inv", "det", "slogdet"):
        a = _matrix(dtype, (2, 3, 3), rng, dominant=3.0)
        a[1, 0] *= np.asarray(-1).astype(dtype.numpy_dtype)  # a negative determinant
        yield "batch", [a], {}
        yield "one matrix", [_matrix(dtype, (5, 5), rng, dominant=4.0)], {}
        if name != "inv":
            yield "singular", [np.ones((3, 3), dtype.numpy_dtype)], {}
            yield "0 x 0", [np.zeros((0, 0), dtype.numpy_dtype)], {}
        return
    if name == "solve":
        a = _matrix(dtype, (2, 3, 3), rng, dominant=3.0)
        yield "batch", [a, _matrix(dtype, (2, 3, 2), rng)], {}
        yield "batch broadcast", [a[0], _matrix(dtype, (2, 3, 1), rng)], {}
        return
    if name == "qr":
        yield "tall, reduced", [_matrix(dtype, (5, 3), rng)], {}
        yield "tall, complete", [_matrix(dtype, (5, 3), rng)], {"mode": "complete"}
        yield "wide batch", [_matrix(dtype, (2, 3, 4), rng)], {}
        return
    if name in ("svd", "svdvals"):
        yield "tall", [_matrix(dtype, (5, 3), rng)], {}
        yield "wide batch", [_matrix(dtype, (2, 3, 4), rng)], {}
        if name == "svd":
            yield "reduced", [_matrix(dtype, (4, 6), rng)], {"full_matrices": False}
            yield "3 x 0", [np.zeros((3, 0), dtype.numpy_dtype)], {}
        return
    raise AssertionError(f"no cases for {name}")


# -- the reference and the launch -----------------------------------------------------------------


def expected(spec: KernelSpec, host: Sequence[np.ndarray], attrs: Mapping[str, Any]
             ) -> tuple[np.ndarray, ...]:  # fmt: skip
    """The reference's outputs, as a tuple."""
    with np.errstate(all="ignore"):
        result = spec.reference(*host, **attrs)
    return tuple(np.asarray(r) for r in (result if isinstance(result, tuple) else (result,)))


def run(
    device: hw.Device, spec: KernelSpec, operands: Sequence[np.ndarray], attrs: Mapping[str, Any]
) -> tuple[list[np.ndarray], tuple[np.ndarray, ...], list[np.ndarray], Mapping[str, Any]]:
    """Launch ``spec`` on ``device``: the outputs, the reference's outputs, and the inputs
    and normalized attributes the reference saw (for :func:`check`)."""
    tensors = [hw.asarray(op, device=device) for op in operands]
    plan = dispatch._make_plan(spec, device, tensors, attrs)
    host = []
    for op, target, cast in zip(operands, plan.targets, plan.cast):
        a = op.astype(plan.compute.numpy_dtype) if cast else op
        host.append(np.broadcast_to(a, tuple(target)) if target is not None else a)
    want = expected(spec, host, plan.attrs)
    if spec.name not in MULTI:
        outs = [dispatch.launch(spec, tensors, attrs)]
    elif not any(w.size for w in want):  # (nothing to launch, as dispatch has it)
        outs = [dispatch.allocate(device, w.shape, dt.dtype(w.dtype)) for w in want]
    else:
        stream = device.default_stream
        ins = [dispatch.cast(t, plan.compute, stream) if c else t
               for t, c in zip(tensors, plan.cast)]  # fmt: skip
        outs = [dispatch.allocate(device, w.shape, dt.dtype(w.dtype)) for w in want]
        device._impl.launch(
            stream.handle,
            spec.name,
            [t._operand(target) for t, target in zip(ins, plan.targets)],
            [o._operand() for o in outs],
            plan.attrs,
        )
        for o in outs:
            o._storage.mark_written(stream)
    return [o.numpy() for o in outs], want, host, plan.attrs


# -- the comparison --------------------------------------------------------------------------------


def _same(actual: np.ndarray, want: np.ndarray, where: str) -> None:
    """Equal element for element: floats bit for bit (the signs of zeros too), NaNs where
    the reference has NaNs (their payloads aside)."""
    report = f"{where}\nactual:   {actual!r}\nexpected: {want!r}"
    if actual.dtype.kind in "biu":
        assert np.array_equal(actual, want), report
        return
    nan = np.isnan(want.astype(np.complex128))
    assert np.array_equal(np.isnan(actual.astype(np.complex128)), nan), report
    a, w = np.ascontiguousarray(actual[~nan]), np.ascontiguousarray(want[~nan])
    bits = np.dtype(f"u{actual.dtype.itemsize // (2 if actual.dtype.kind == 'c' else 1)}")
    assert np.array_equal(a.view(bits), w.view(bits)), report


def _close(actual: np.ndarray, want: np.ndarray, where: str, *, terms: float,
           scale: float | None = None) -> None:  # fmt: skip
    """Within ``2 eps(dtype) |want| + terms * eps(computation) * scale`` (the computation
    in float32 for 8- and 16-bit floats; ``scale`` by default the largest ``|want|``):
    one rounding to the output dtype each side, and ``terms`` roundings of the magnitude
    of the problem in the arithmetic."""
    assert actual.dtype == want.dtype and actual.shape == want.shape, (
        f"{where}: {actual.dtype}{actual.shape}, reference {want.dtype}{want.shape}"
    )
    a, w = actual.astype(np.complex128), want.astype(np.complex128)
    assert np.array_equal(np.isnan(a), np.isnan(w)), f"{where}: NaNs differ\n{actual!r}\n{want!r}"
    finite = np.isfinite(w)
    infinite = ~finite & ~np.isnan(w)
    assert np.array_equal(a[infinite], w[infinite]), f"{where}: infinities differ"
    if not finite.any():
        return
    if scale is None:
        scale = float(np.max(np.abs(w[finite])))
    computation = np.float32 if _narrow(want.dtype) else want.dtype
    bound = 2 * _eps(want.dtype) * np.abs(w[finite]) + terms * _eps(computation) * max(scale, 1e-30)
    err = np.abs(a[finite] - w[finite])
    assert (err <= bound).all(), (
        f"{where}: off by up to {float(np.max(err - bound)):.3g} beyond the bound"
        f"\nactual:   {actual!r}\nexpected: {want!r}"
    )


def _mT(x: np.ndarray) -> np.ndarray:
    return np.conj(np.swapaxes(x, -1, -2))


def _wide(x: np.ndarray) -> np.ndarray:
    return x.astype(np.complex128 if x.dtype.kind == "c" else np.float64)


def _orthonormal(q: np.ndarray, eps: float, where: str, *, rows: bool = False) -> None:
    """``q``'s columns (or rows) orthonormal, within ``eps`` per term."""
    q = _wide(q)
    gram = q @ _mT(q) if rows else _mT(q) @ q
    k = gram.shape[-1]
    err = float(np.max(np.abs(gram - np.eye(k)), initial=0.0))
    assert err <= 8 * max(k, 1) * eps, f"{where}: not orthonormal (off by {err:.3g})"


def _reconstructs(product: np.ndarray, x: np.ndarray, eps: float, k: int, where: str) -> None:
    err = float(np.max(np.abs(product - _wide(x)), initial=0.0))
    size = float(np.max(np.abs(_wide(x)), initial=0.0))
    assert err <= 8 * max(k, 1) * eps * max(size, 1.0), (
        f"{where}: the factors reconstruct the input only within {err:.3g}"
    )


def check(spec: KernelSpec, actual: Sequence[np.ndarray], want: Sequence[np.ndarray],
          host: Sequence[np.ndarray], attrs: Mapping[str, Any], where: str) -> None:  # fmt: skip
    """Compare a launch's outputs with the reference's (see the module docstring)."""
    name = spec.name
    assert len(actual) == len(want), f"{where}: {len(actual)} outputs, reference {len(want)}"
    for a, w in zip(actual, want):
        assert a.dtype == w.dtype, f"{where}: dtype {a.dtype}, reference {w.dtype}"
        assert a.shape == w.shape, f"{where}: shape {a.shape}, reference {w.shape}"
    if name in EXACT or all(w.dtype.kind in "biu" for w in want):
        for a, w in zip(actual, want):
            _same(a, w, where)
        return
    if name in ("cumulative_sum", "cumulative_prod"):
        n = host[0].shape[attrs["axis"]] if host[0].ndim else 1
        magnitude = np.abs(_wide(host[0]))
        reach = (np.cumsum if name == "cumulative_sum" else np.cumprod)(
            magnitude, axis=attrs["axis"]
        )
        _close(actual[0], want[0], where, terms=2 * n, scale=float(np.max(reach, initial=0)))
        return
    if spec.category == "fft":
        n = attrs["n"]
        terms = 8 * np.log2(max(n, 2)) * np.sqrt(n)
        _close(actual[0], want[0], where, terms=terms)
        return
    x = host[0]
    m = max(x.shape[-2:], default=1) if x.ndim >= 2 else 1
    terms = 64.0 * max(m, 1)
    # linear algebra: errors relative to the size of the problem (at least 1: the entries
    # and the determinants' logs are of order 1 here)
    eps = _eps(np.float32 if _narrow(x.dtype) else x.dtype) + 2 * _eps(x.dtype)
    if name == "qr":
        q, r = actual
        _orthonormal(q, eps, f"{where} (Q)")
        _reconstructs(_wide(q) @ _wide(r), x, eps, m, f"{where} (Q @ R)")
        assert np.array_equal(np.triu(r), r), f"{where}: R is not upper triangular"
        k = min(x.shape[-2:])
        _close(np.abs(r[..., :k, :]), np.abs(want[1][..., :k, :]), f"{where} (|R|)", terms=terms)
        return
    if name == "eigh":
        values, vectors = actual
        _close(values, want[0], f"{where} (eigenvalues)", terms=terms)
        _orthonormal(vectors, eps, f"{where} (eigenvectors)")
        lower = np.tril(_wide(x), -1)
        hermitian = lower + _mT(lower) + np.real(_wide(x)) * np.eye(x.shape[-1])
        v = _wide(vectors)
        _reconstructs(v * _wide(values)[..., None, :] @ _mT(v), hermitian, eps, m,
                      f"{where} (V diag(w) V^H)")  # fmt: skip
        return
    if name == "svd":
        u, s, vh = actual
        _close(s, want[1], f"{where} (singular values)", terms=terms)
        _orthonormal(u, eps, f"{where} (U)")
        _orthonormal(vh, eps, f"{where} (Vh)", rows=True)
        k = s.shape[-1]
        product = _wide(u)[..., :, :k] * _wide(s)[..., None, :] @ _wide(vh)[..., :k, :]
        _reconstructs(product, x, eps, m, f"{where} (U diag(S) Vh)")
        return
    for i, (a, w) in enumerate(zip(actual, want)):
        size = np.abs(w.astype(np.complex128))
        scale = max(float(np.max(size[np.isfinite(size)], initial=0.0)), 1.0)
        _close(a, w, f"{where} (output {i})", terms=terms, scale=scale)


class EveryDtypeStandin(PjrtBackend):
    """A PJRT chip declaring every dtype (on JAX's CPU client when probed): the manifest
    any PJRT chip profile could declare, and the JAX path of the kernels and dtypes no TPU
    or Trainium profile declares (complex, float64, float8)."""

    name = "pjrt-every-dtype"
    platform = "no-such-platform"
    family = "test chip"
    env_prefix = "HWABSTRACT_TEST_PJRT"
    install_hint = "nothing to install"
    profiles: ClassVar[dict[str, ChipProfile]] = {
        "all": ChipProfile(
            key="all",
            name="every dtype",
            vendor="tests",
            hbm_bytes=1 << 30,
            hbm_bandwidth=1e9,
            peak_ops={},
            dtypes={d.name: DTypeSupport.NATIVE for d in dt.all_dtypes()},
        )
    }
    default_profile = "all"
    environment: ClassVar[dict[str, str]] = PjrtBackend.environment_for(
        "HWABSTRACT_TEST_PJRT", "all", ["all"]
    )


def integer_pow_case(dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pow`` on integers: bases, exponents over the dtype's range (around 63-65 too: JAX's
    ``power`` multiplies for the low 6 bits of an exponent only) and the reference's
    wrapped results."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    bases = np.array([v for v in (0, 1, -1, 2, 3, -7, 101) if info.min <= v <= info.max], dtype)
    exponents = rng.integers(max(info.min, -3), min(info.max, 2**31 - 1), 512, dtype=dtype)
    exponents[:6] = [0, 1, 2, 63, 64, 65]  # around the 6-bit edge
    a = np.repeat(bases, exponents.size)
    b = np.tile(exponents, bases.size)
    with np.errstate(all="ignore"):
        expected = get_spec("pow").reference(a, b)
    return a, b, expected
