"""The maia backend's linalg kernels (libmaia's C ``cholesky``, ``inv``, ``det``, ``slogdet``,
``solve``, ``qr``, ``eigh``, ``eigvalsh``, ``svd``, ``svdvals``), driven through the backend
contract (several outputs, so not through the single-output ``hwabstract.dispatch.launch``)
and checked against each spec's NumPy reference.

libmaia computes in double and rounds once, so against the reference (LAPACK in float32 for
every maia dtype, rounded to the dtype) the tolerance is the reference's own error: a few of
the dtype's epsilons, scaled by the condition number where the result depends on it. Against
float64 NumPy on the same (rounded) inputs, libmaia's well-conditioned results are within an
ulp or two of the dtype. Where a result is defined only up to signs (QR's factors, eigen- and
singular vectors) it is checked by reconstruction and orthogonality.

Skipped as a whole when the hwabstract-maia distribution is not installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip(
    "hwabstract_maia.backend",
    reason="hwabstract-maia is not installed (pip install ./plugins/maia)",
)

import hwabstract as hw
from hwabstract.dispatch import allocate
from hwabstract.kernels import get_spec

pytestmark = pytest.mark.usefixtures("maia_registry")

DTYPES = {"float32": hw.float32, "float16": hw.float16, "bfloat16": hw.bfloat16}
NP_DTYPES = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
}
#: machine epsilon of each dtype
EPS = {"float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
KERNELS = [
    "cholesky", "inv", "det", "slogdet", "solve", "qr", "eigh", "eigvalsh", "svd", "svdvals",
]  # fmt: skip


@pytest.fixture
def dev() -> hw.Device:
    return hw.device("maia:0")


def launch(
    dev: hw.Device,
    name: str,
    inputs: Sequence[np.ndarray | hw.Tensor],
    targets: Sequence[tuple[int, ...] | None] | None = None,
    **attrs: Any,
) -> list[np.ndarray]:
    """Run kernel ``name`` on maia through the backend contract; outputs as NumPy arrays.

    Inputs are uploaded (NumPy) or used as they are (tensors, strided views included), each
    broadcast to its entry of ``targets`` if given. Output shapes and normalized attributes
    come from the spec's shape rule; every output has the input's dtype (maia's floats are
    real)."""
    spec = get_spec(name)
    tensors = [
        x if isinstance(x, hw.Tensor) else hw.asarray(np.ascontiguousarray(x), device=dev)
        for x in inputs
    ]
    targets = list(targets) if targets is not None else [None] * len(tensors)
    shapes = [tuple(t) if t is not None else x.shape for x, t in zip(tensors, targets)]
    _, out_shapes, normalized = spec.shape_rule(shapes, attrs)
    dtype = tensors[0].dtype
    outs = [allocate(dev, tuple(s), dtype) for s in out_shapes]
    stream = dev.default_stream
    dev._impl.launch(
        stream.handle,
        name,
        [x._operand(t) for x, t in zip(tensors, targets)],
        [o._operand() for o in outs],
        normalized,
    )
    stream.synchronize()
    return [o.numpy() for o in outs]


def reference(name: str, inputs: Sequence[np.ndarray], **attrs: Any) -> list[np.ndarray]:
    spec = get_spec(name)
    merged = {**spec.attributes, **attrs}
    with np.errstate(all="ignore"):
        out = spec.reference(*inputs, **merged)
    return list(out) if isinstance(out, tuple) else [out]


def f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


def within(got: np.ndarray, want: np.ndarray, tol: Any) -> bool:
    """|got - want| <= tol elementwise; infinities (overflow in the dtype) must match."""
    got, want = np.broadcast_arrays(f64(got), f64(want))
    tol = np.broadcast_to(f64(tol), got.shape)
    inf = np.isinf(want)
    if not np.array_equal(got[inf], want[inf]):
        return False
    return bool(np.all(np.abs(got[~inf] - want[~inf]) <= tol[~inf]))


def ulp(x: np.ndarray, dtype: str) -> np.ndarray:
    """The spacing of the dtype at |x| (at least its smallest normal's)."""
    tiny = {"float32": 2.0**-126, "float16": 2.0**-14, "bfloat16": 2.0**-126}[dtype]
    mag = np.maximum(np.abs(f64(x)), tiny)
    return EPS[dtype] * 2.0 ** np.floor(np.log2(mag))


# -- inputs ---------------------------------------------------------------------------------


def general(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Well-conditioned square matrices (a random part plus a shifted diagonal), or random
    rectangular ones."""
    x = rng.standard_normal(shape)
    if shape[-1] == shape[-2] and shape[-1] > 0:
        x = x / np.sqrt(shape[-1]) + 2.0 * np.eye(shape[-1])
    return x.astype(NP_DTYPES[dtype])


def spd(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    n = shape[-1]
    b = rng.standard_normal(shape) / np.sqrt(max(n, 1))
    return (b @ np.swapaxes(b, -1, -2) + np.eye(n)).astype(NP_DTYPES[dtype])


def symmetric(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    x = rng.standard_normal(shape)
    return ((x + np.swapaxes(x, -1, -2)) / 2).astype(NP_DTYPES[dtype])


def cond(x: np.ndarray) -> float:
    x = f64(x)
    if x.size == 0:
        return 1.0
    return float(np.max(np.linalg.cond(x)))


SQUARE_SHAPES = [(1, 1), (3, 3), (2, 4, 4), (8, 8), (2, 3, 17, 17)]
RECT_SHAPES = [(1, 1), (4, 3), (3, 5), (2, 6, 6), (1, 9, 2), (2, 2, 16)]


# -- capabilities ---------------------------------------------------------------------------


def test_linalg_kernels_declare_exactly_the_three_floats(dev: hw.Device) -> None:
    caps = dev.capabilities
    for name in KERNELS:
        assert caps.kernels.get(name) == frozenset({hw.float32, hw.float16, hw.bfloat16}), name


# -- against the reference, element for element ---------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SQUARE_SHAPES, ids=str)
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky(dev: hw.Device, dtype: str, shape: tuple[int, ...], upper: bool) -> None:
    rng = np.random.default_rng(1)
    x = spd(rng, shape, dtype)
    # the upper triangle is never read: fill it with garbage
    garbage = np.triu(np.full(shape, 1e4), 1).astype(x.dtype)
    x_in = np.where(np.triu(np.ones(shape[-2:], bool), 1), garbage, x)
    (got,) = launch(dev, "cholesky", [x_in], upper=upper)
    (ref,) = reference("cholesky", [x], upper=upper)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    scale = np.sqrt(np.max(np.abs(f64(x))))
    tol = 8 * EPS[dtype] * np.sqrt(cond(x)) * scale
    assert np.max(np.abs(f64(got) - f64(ref)), initial=0) <= tol
    # triangular, and within about an ulp of the float64 factor
    tri = np.triu if upper else np.tril
    assert np.array_equal(got, tri(got))
    exact = np.linalg.cholesky(f64(x))
    exact = np.swapaxes(exact, -1, -2) if upper else exact
    assert np.all(np.abs(f64(got) - exact) <= 1.01 * ulp(exact, dtype) + 1e-6 * scale * EPS[dtype])


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SQUARE_SHAPES, ids=str)
def test_inv(dev: hw.Device, dtype: str, shape: tuple[int, ...]) -> None:
    x = general(np.random.default_rng(2), shape, dtype)
    (got,) = launch(dev, "inv", [x])
    (ref,) = reference("inv", [x])
    norm = np.max(np.abs(f64(ref)))
    assert np.max(np.abs(f64(got) - f64(ref))) <= 4 * EPS[dtype] * cond(x) * norm
    exact = np.linalg.inv(f64(x))
    assert np.all(np.abs(f64(got) - exact) <= 1.01 * ulp(exact, dtype) + 1e-9 * norm)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(0, 0), *SQUARE_SHAPES], ids=str)
def test_det_and_slogdet(dev: hw.Device, dtype: str, shape: tuple[int, ...]) -> None:
    x = general(np.random.default_rng(3), shape, dtype)
    n = max(shape[-1], 1)
    (det,) = launch(dev, "det", [x])
    sign, logabs = launch(dev, "slogdet", [x])
    (rdet,) = reference("det", [x])
    rsign, rlogabs = reference("slogdet", [x])
    assert det.dtype == rdet.dtype and det.shape == rdet.shape == sign.shape == logabs.shape
    tol = 4 * n * EPS[dtype] * cond(x)
    assert within(det, rdet, tol * np.abs(f64(rdet)) + ulp(rdet, dtype))
    assert np.array_equal(sign, rsign)
    assert within(logabs, rlogabs, tol + ulp(rlogabs, dtype))
    with np.errstate(over="ignore"):  # overflows where the dtype does
        exact = np.linalg.det(f64(x)).astype(NP_DTYPES[dtype])
    assert within(det, exact, 1.01 * ulp(np.linalg.det(f64(x)), dtype))
    if shape == (0, 0):
        assert det == 1 and sign == 1 and logabs == 0


def test_det_known_values(dev: hw.Device) -> None:
    cases = [
        ([[1, 2], [3, 4]], -2.0),
        ([[2, 0, 1], [1, 3, 2], [1, 1, 2]], 6.0),
        ([[0, 1, 0], [1, 0, 0], [0, 0, 1]], -1.0),
        ([[1, 2, 3], [2, 4, 6], [7, 8, 9]], 0.0),
    ]
    for matrix, want in cases:
        x = np.array(matrix, np.float32)
        (det,) = launch(dev, "det", [x])
        sign, logabs = launch(dev, "slogdet", [x])
        assert det == want
        assert sign == np.sign(want)
        assert logabs == (np.float32(np.log(abs(want))) if want else -np.inf)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(
    "shapes",
    [((1, 1), (1, 1)), ((3, 3), (3, 2)), ((2, 5, 5), (2, 5, 5)), ((9, 9), (9, 0))],
    ids=str,
)
def test_solve(dev: hw.Device, dtype: str, shapes: tuple[tuple[int, ...], ...]) -> None:
    rng = np.random.default_rng(4)
    a = general(rng, shapes[0], dtype)
    b = rng.standard_normal(shapes[1]).astype(NP_DTYPES[dtype])
    (got,) = launch(dev, "solve", [a, b])
    (ref,) = reference("solve", [a, b])
    norm = np.max(np.abs(f64(ref)), initial=0)
    assert np.max(np.abs(f64(got) - f64(ref)), initial=0) <= 4 * EPS[dtype] * cond(a) * norm
    exact = np.linalg.solve(f64(a), f64(b))
    assert np.all(np.abs(f64(got) - exact) <= 1.01 * ulp(exact, dtype) + 1e-9 * norm)


def test_solve_broadcast_batch(dev: hw.Device) -> None:
    """x1 broadcast over x2's batch (zero strides), as the core hands it over."""
    rng = np.random.default_rng(5)
    a = general(rng, (4, 4), "float32")
    b = rng.standard_normal((3, 4, 2)).astype(np.float32)
    (got,) = launch(dev, "solve", [a, b], targets=[(3, 4, 4), None])
    (ref,) = reference("solve", [np.broadcast_to(a, (3, 4, 4)), b])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(0, 0), *SQUARE_SHAPES], ids=str)
def test_eigvalsh(dev: hw.Device, dtype: str, shape: tuple[int, ...]) -> None:
    x = symmetric(np.random.default_rng(6), shape, dtype)
    x_in = np.where(np.triu(np.ones(shape[-2:], bool), 1), np.asarray(7, x.dtype), x)
    (got,) = launch(dev, "eigvalsh", [x_in])  # only the lower triangle is read
    (ref,) = reference("eigvalsh", [x])
    norm = np.max(np.abs(f64(x)), initial=0) * max(shape[-1], 1)
    assert got.shape == ref.shape
    assert np.max(np.abs(f64(got) - f64(ref)), initial=0) <= 4 * EPS[dtype] * norm
    exact = np.linalg.eigvalsh(f64(x))
    assert np.all(np.abs(f64(got) - exact) <= 1.01 * ulp(exact, dtype) + 1e-12 * norm)
    assert np.all(np.diff(f64(got), axis=-1) >= 0)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(0, 3), (3, 0), *RECT_SHAPES], ids=str)
def test_svdvals(dev: hw.Device, dtype: str, shape: tuple[int, ...]) -> None:
    x = general(np.random.default_rng(7), shape, dtype)
    (got,) = launch(dev, "svdvals", [x])
    (ref,) = reference("svdvals", [x])
    norm = np.max(f64(ref), initial=0)
    assert got.shape == ref.shape
    assert np.max(np.abs(f64(got) - f64(ref)), initial=0) <= 4 * EPS[dtype] * max(norm, 1e-30)
    exact = np.linalg.svd(f64(x), compute_uv=False)
    assert np.all(np.abs(f64(got) - exact) <= 1.01 * ulp(exact, dtype) + 1e-12 * norm)


# -- decompositions, by reconstruction -------------------------------------------------------


def orthonormal_error(q: np.ndarray) -> float:
    """max |Q^T Q - I| over the stack (Q's columns)."""
    q = f64(q)
    k = q.shape[-1]
    if q.size == 0:
        return 0.0
    return float(np.max(np.abs(np.swapaxes(q, -1, -2) @ q - np.eye(k))))


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(3, 0), (0, 3), *RECT_SHAPES, (20, 7), (7, 20)], ids=str)
@pytest.mark.parametrize("mode", ["reduced", "complete"])
def test_qr(dev: hw.Device, dtype: str, shape: tuple[int, ...], mode: str) -> None:
    x = general(np.random.default_rng(8), shape, dtype)
    q, r = launch(dev, "qr", [x], mode=mode)
    rq, rr = reference("qr", [x], mode=mode)
    assert q.shape == rq.shape and r.shape == rr.shape and q.dtype == rq.dtype
    m, n = shape[-2:]
    norm = np.max(np.abs(f64(x)), initial=0)
    tol = 4 * EPS[dtype] * (m + n + 1)
    assert np.max(np.abs(f64(q) @ f64(r) - f64(x)), initial=0) <= tol * max(norm, 1)
    assert orthonormal_error(q) <= tol
    assert np.array_equal(r, np.triu(r))
    # R matches the reference up to the sign of each row
    signs = np.where(
        np.sign(f64(np.diagonal(r, axis1=-2, axis2=-1)))
        == np.sign(f64(np.diagonal(rr, axis1=-2, axis2=-1))),
        1.0,
        -1.0,
    )
    k = min(m, n)
    if k:
        rows = f64(r)[..., :k, :] * signs[..., :, None]
        assert np.max(np.abs(rows - f64(rr)[..., :k, :])) <= tol * max(norm, 1) * cond(x)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(0, 0), *SQUARE_SHAPES, (30, 30)], ids=str)
def test_eigh(dev: hw.Device, dtype: str, shape: tuple[int, ...]) -> None:
    x = symmetric(np.random.default_rng(9), shape, dtype)
    w, v = launch(dev, "eigh", [x])
    rw, rv = reference("eigh", [x])
    assert w.shape == rw.shape and v.shape == rv.shape and v.dtype == rv.dtype
    n = shape[-1]
    norm = np.max(np.abs(f64(x)), initial=0) * max(n, 1)
    tol = 4 * EPS[dtype] * (n + 1)
    assert np.max(np.abs(f64(w) - f64(rw)), initial=0) <= 4 * EPS[dtype] * norm
    rebuilt = f64(v) @ (f64(w)[..., :, None] * np.swapaxes(f64(v), -1, -2))
    assert np.max(np.abs(rebuilt - f64(x)), initial=0) <= tol * max(norm, 1)
    assert orthonormal_error(v) <= tol
    assert np.all(np.diff(f64(w), axis=-1) >= 0)


def test_eigh_repeated_eigenvalues(dev: hw.Device) -> None:
    x = (np.eye(6) * 2 + np.ones((6, 6))).astype(np.float32)  # eigenvalues 2 (x5) and 8
    w, v = launch(dev, "eigh", [x])
    np.testing.assert_allclose(w, [2, 2, 2, 2, 2, 8], rtol=1e-6)
    assert orthonormal_error(v) <= 1e-6
    np.testing.assert_allclose(f64(v) @ np.diag(f64(w)) @ f64(v).T, x, atol=1e-5)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(0, 3), (3, 0), *RECT_SHAPES, (25, 9), (9, 25)], ids=str)
@pytest.mark.parametrize("full_matrices", [True, False])
def test_svd(dev: hw.Device, dtype: str, shape: tuple[int, ...], full_matrices: bool) -> None:
    x = general(np.random.default_rng(10), shape, dtype)
    u, s, vh = launch(dev, "svd", [x], full_matrices=full_matrices)
    ru, rs, rvh = reference("svd", [x], full_matrices=full_matrices)
    assert (u.shape, s.shape, vh.shape) == (ru.shape, rs.shape, rvh.shape)
    m, n = shape[-2:]
    k = min(m, n)
    norm = np.max(f64(rs), initial=0)
    tol = 4 * EPS[dtype] * (m + n + 1)
    assert np.max(np.abs(f64(s) - f64(rs)), initial=0) <= 4 * EPS[dtype] * max(norm, 1e-30)
    rebuilt = f64(u)[..., :, :k] @ (f64(s)[..., :, None] * f64(vh)[..., :k, :])
    assert np.max(np.abs(rebuilt - f64(x)), initial=0) <= tol * max(norm, 1)
    assert orthonormal_error(u) <= tol
    assert orthonormal_error(np.swapaxes(vh, -1, -2)) <= tol
    assert np.all(np.diff(f64(s), axis=-1) <= 0)


def test_svd_rank_deficient(dev: hw.Device) -> None:
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((7, 2)) @ rng.standard_normal((2, 5))).astype(np.float32)
    u, s, vh = launch(dev, "svd", [x], full_matrices=True)
    assert orthonormal_error(u) <= 1e-6 and orthonormal_error(vh.T) <= 1e-6
    assert np.all(s[2:] <= 1e-5 * s[0])
    np.testing.assert_allclose(f64(u)[:, :5] @ np.diag(f64(s)) @ f64(vh), x, atol=1e-5)


# -- strided operands ------------------------------------------------------------------------


def test_transposed_and_reversed_inputs(dev: hw.Device) -> None:
    """Inputs that are views: a transpose (swapped strides) and a reversal (negative stride)."""
    rng = np.random.default_rng(12)
    base = general(rng, (2, 5, 5), "float32")
    t = hw.permute_dims(hw.asarray(base, device=dev), (0, 2, 1))
    want_t = np.swapaxes(base, -1, -2)
    (inv,) = launch(dev, "inv", [t])
    np.testing.assert_allclose(inv, np.linalg.inv(f64(want_t)), rtol=1e-5, atol=1e-6)
    (det,) = launch(dev, "det", [t])
    np.testing.assert_allclose(det, np.linalg.det(f64(want_t)), rtol=1e-5)
    rect = rng.standard_normal((6, 4)).astype(np.float32)
    tr = hw.matrix_transpose(hw.asarray(rect, device=dev))
    (s,) = launch(dev, "svdvals", [tr])
    np.testing.assert_allclose(s, np.linalg.svd(f64(rect), compute_uv=False), rtol=1e-6)
    q, r = launch(dev, "qr", [tr], mode="complete")
    np.testing.assert_allclose(f64(q) @ f64(r), rect.T, atol=1e-5)
    flipped = hw.flip(hw.asarray(base[0], device=dev), axis=0)
    (det,) = launch(dev, "det", [flipped])
    np.testing.assert_allclose(det, np.linalg.det(f64(base[0][::-1])), rtol=1e-5)


# -- failures and special values -------------------------------------------------------------


def test_not_positive_definite_is_a_kernel_error(dev: hw.Device) -> None:
    x = np.stack([np.eye(2), [[1, 2], [2, 1]]]).astype(np.float32)
    with pytest.raises(hw.KernelError, match=r"batch index \(1,\) is not positive definite"):
        launch(dev, "cholesky", [x])


@pytest.mark.parametrize("name", ["inv", "solve"])
def test_singular_is_a_kernel_error(dev: hw.Device, name: str) -> None:
    x = np.array([[1, 2], [2, 4]], np.float32)
    inputs = [x] if name == "inv" else [x, np.ones((2, 1), np.float32)]
    with pytest.raises(hw.KernelError, match="singular"):
        launch(dev, name, inputs)


def test_singular_det_and_slogdet(dev: hw.Device) -> None:
    x = np.array([[1, 2], [2, 4]], np.float32)
    (det,) = launch(dev, "det", [x])
    sign, logabs = launch(dev, "slogdet", [x])
    assert det == 0 and sign == 0 and logabs == -np.inf


@pytest.mark.parametrize("name", ["eigh", "eigvalsh", "svd", "svdvals", "det", "inv", "qr"])
def test_nan_input_gives_nan_not_a_hang(dev: hw.Device, name: str) -> None:
    x = np.array([[1, np.nan, 0], [np.nan, 2, 0], [0, 0, np.inf]], np.float32)
    outs = launch(dev, name, [x])
    assert any(np.isnan(o).any() for o in outs)


def test_stream_keeps_working_after_a_failure(dev: hw.Device) -> None:
    with pytest.raises(hw.KernelError):
        launch(dev, "inv", [np.zeros((3, 3), np.float32)])
    (inv,) = launch(dev, "inv", [np.eye(3, dtype=np.float32) * 2])
    np.testing.assert_array_equal(inv, np.eye(3) / 2)


def test_mismatched_attribute_and_shapes_fail_cleanly(dev: hw.Device) -> None:
    """qr with mode "reduced" but complete-shaped outputs: the kernel says so."""
    x = hw.asarray(np.ones((4, 2), np.float32), device=dev)
    q, r = allocate(dev, (4, 4), hw.float32), allocate(dev, (4, 2), hw.float32)
    stream = dev.default_stream
    with pytest.raises(hw.KernelError, match="mode 'reduced'"):
        dev._impl.launch(
            stream.handle, "qr", [x._operand()], [q._operand(), r._operand()], {"mode": "reduced"}
        )
        stream.synchronize()
