"""hw.linalg: the extension's functions on cpu against NumPy, result types, and errors
(non-square, integer input, a singular matrix, undeclared kernels)."""

from __future__ import annotations

import numpy as np
import pytest

import hwabstract as hw

RNG = np.random.default_rng(7)
M = (RNG.standard_normal((3, 4, 4)) + 4 * np.eye(4)).astype(np.float64)
SPD = M @ np.swapaxes(M, -1, -2) + np.eye(4)
W = RNG.standard_normal((5, 3))


def t(a: np.ndarray) -> hw.Tensor:
    return hw.asarray(a, device="cpu")


def test_factorizations_and_solvers_match_numpy() -> None:
    np.testing.assert_allclose(hw.linalg.inv(t(M)).numpy(), np.linalg.inv(M), rtol=1e-10)
    np.testing.assert_allclose(hw.linalg.det(t(M)).numpy(), np.linalg.det(M), rtol=1e-10)
    sign, logabs = hw.linalg.slogdet(t(M))
    e_sign, e_log = np.linalg.slogdet(M)
    np.testing.assert_array_equal(sign.numpy(), e_sign)
    np.testing.assert_allclose(logabs.numpy(), e_log, rtol=1e-12)
    b = RNG.standard_normal((3, 4, 2))
    np.testing.assert_allclose(hw.linalg.solve(t(M), t(b)).numpy(), np.linalg.solve(M, b))
    v = RNG.standard_normal(4)
    np.testing.assert_allclose(hw.linalg.solve(t(M[0]), t(v)).numpy(), np.linalg.solve(M[0], v))
    u = hw.linalg.cholesky(t(SPD), upper=True).numpy()
    np.testing.assert_allclose(np.swapaxes(u, -1, -2) @ u, SPD, rtol=1e-10)
    w, vecs = hw.linalg.eigh(t(SPD))
    np.testing.assert_allclose(w.numpy(), np.linalg.eigvalsh(SPD), rtol=1e-10)
    rebuilt = (vecs.numpy() * w.numpy()[..., None, :]) @ np.swapaxes(vecs.numpy(), -1, -2)
    np.testing.assert_allclose(rebuilt, SPD, rtol=1e-10)
    q, r = hw.linalg.qr(t(W))
    assert q.shape == (5, 3) and r.shape == (3, 3)
    np.testing.assert_allclose(q.numpy() @ r.numpy(), W, atol=1e-12)
    assert hw.linalg.qr(t(W), mode="complete").Q.shape == (5, 5)
    U, S, Vh = hw.linalg.svd(t(W), full_matrices=False)
    np.testing.assert_allclose((U.numpy() * S.numpy()) @ Vh.numpy(), W, atol=1e-12)
    np.testing.assert_allclose(hw.linalg.svdvals(t(W)).numpy(), np.linalg.svd(W, compute_uv=False))


def test_compositions_match_numpy() -> None:
    np.testing.assert_allclose(hw.linalg.pinv(t(W)).numpy(), np.linalg.pinv(W), atol=1e-12)
    assert hw.linalg.matrix_rank(t(W @ W.T)).item() == 3
    np.testing.assert_allclose(
        hw.linalg.matrix_power(t(M), -2).numpy(), np.linalg.matrix_power(M, -2), rtol=1e-9
    )
    np.testing.assert_array_equal(
        hw.linalg.matrix_power(t(M), 0).numpy(), np.broadcast_to(np.eye(4), M.shape)
    )
    for order in ("fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf):
        np.testing.assert_allclose(
            hw.linalg.matrix_norm(t(M), ord=order).numpy(),
            np.linalg.norm(M, ord=order, axis=(-2, -1)),
            rtol=1e-10,
        )
    for order in (1, 2, 3.5, 0, np.inf, -np.inf):
        np.testing.assert_allclose(
            hw.linalg.vector_norm(t(W), axis=0, ord=order).numpy(),
            np.linalg.norm(W, ord=order, axis=0),
            rtol=1e-10,
        )
    assert hw.linalg.vector_norm(t(W), keepdims=True).shape == (1, 1)
    np.testing.assert_array_equal(
        hw.linalg.diagonal(t(M), offset=-1).numpy(), np.diagonal(M, -1, -2, -1)
    )
    np.testing.assert_allclose(hw.linalg.trace(t(M), offset=1).numpy(), np.trace(M, 1, -2, -1))
    np.testing.assert_allclose(
        hw.linalg.outer(t(W[:, 0]), t(W[0])).numpy(), np.outer(W[:, 0], W[0])
    )
    np.testing.assert_allclose(
        hw.linalg.cross(t(W[:2]), t(W[2:4])).numpy(), np.cross(W[:2], W[2:4])
    )


def test_complex_and_narrow_dtypes() -> None:
    z = (M + 1j * RNG.standard_normal(M.shape)).astype(np.complex64)
    got = hw.linalg.svdvals(t(z))
    assert got.dtype is hw.float32
    np.testing.assert_allclose(got.numpy(), np.linalg.svd(z, compute_uv=False), rtol=1e-4)
    half = hw.linalg.inv(hw.asarray(M[0], dtype=hw.float16))
    assert half.dtype is hw.float16


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: hw.linalg.inv(t(W)), hw.ShapeError, "square matrices"),
        (lambda: hw.linalg.det(hw.asarray(np.eye(2, dtype=np.int64))), hw.DTypeError, "floating"),
        (lambda: hw.linalg.qr(t(W), mode="r"), hw.ShapeError, "'reduced' or 'complete'"),
        (lambda: hw.linalg.solve(t(M), t(W)), hw.ShapeError, "needs x2 of shape"),
        (lambda: hw.linalg.matrix_norm(t(M), ord=3), hw.ShapeError, "ord must be"),
        (lambda: hw.linalg.cross(t(W[:, :2]), t(W[:, :2])), hw.ShapeError, "size 3"),
        (lambda: hw.linalg.outer(t(W), t(W)), hw.ShapeError, "1-D"),
        (lambda: hw.linalg.vector_norm(hw.asarray([1, 2])), hw.DTypeError, "floating-point"),
        (lambda: hw.linalg.inv(np.eye(2)), hw.DTypeError, "needs a hwabstract Tensor"),
    ],
)
def test_bad_input(call, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call()


def test_singular_matrix_is_a_kernel_error() -> None:
    with pytest.raises(hw.KernelError, match=r"[Ss]ingular"):
        hw.linalg.inv(t(np.zeros((2, 2)))).numpy()
    sign, logabs = hw.linalg.slogdet(t(np.zeros((2, 2))))
    assert sign.item() == 0 and logabs.item() == -np.inf
