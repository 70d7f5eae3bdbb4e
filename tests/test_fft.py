"""hw.fft: the extension's functions on cpu against NumPy (lengths, norms, axes, the n-D
forms, hfft/ihfft, frequencies and shifts) and its errors."""

from __future__ import annotations

import numpy as np
import pytest

import hwabstract as hw

RNG = np.random.default_rng(3)
X = RNG.standard_normal((4, 6, 5))
Z = (X + 1j * RNG.standard_normal(X.shape)).astype(np.complex128)


def t(a: np.ndarray) -> hw.Tensor:
    return hw.asarray(a, device="cpu")


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_one_dimensional_transforms(norm: str) -> None:
    for n in (None, 4, 9):
        np.testing.assert_allclose(
            hw.fft.fft(t(Z), n=n, axis=1, norm=norm).numpy(),
            np.fft.fft(Z, n=n, axis=1, norm=norm),
            atol=1e-12,
        )
        np.testing.assert_allclose(
            hw.fft.ifft(t(Z), n=n, norm=norm).numpy(), np.fft.ifft(Z, n=n, norm=norm), atol=1e-12
        )
        np.testing.assert_allclose(
            hw.fft.rfft(t(X), n=n, axis=0, norm=norm).numpy(),
            np.fft.rfft(X, n=n, axis=0, norm=norm),
            atol=1e-12,
        )
        np.testing.assert_allclose(
            hw.fft.irfft(t(Z), n=n, norm=norm).numpy(), np.fft.irfft(Z, n=n, norm=norm), atol=1e-12
        )
        np.testing.assert_allclose(
            hw.fft.hfft(t(Z), n=n, norm=norm).numpy(), np.fft.hfft(Z, n=n, norm=norm), atol=1e-10
        )
        np.testing.assert_allclose(
            hw.fft.ihfft(t(X), n=n, norm=norm).numpy(), np.fft.ihfft(X, n=n, norm=norm), atol=1e-12
        )


def test_n_dimensional_transforms() -> None:
    np.testing.assert_allclose(hw.fft.fftn(t(Z)).numpy(), np.fft.fftn(Z), atol=1e-10)
    np.testing.assert_allclose(
        hw.fft.ifftn(t(Z), s=(3, 8), axes=(0, 2)).numpy(),
        np.fft.ifftn(Z, s=(3, 8), axes=(0, 2)),
        atol=1e-12,
    )
    np.testing.assert_allclose(hw.fft.rfftn(t(X)).numpy(), np.fft.rfftn(X), atol=1e-10)
    spectrum = np.fft.rfftn(X, axes=(1, 2))
    np.testing.assert_allclose(
        hw.fft.irfftn(t(spectrum), s=(6, 5), axes=(1, 2)).numpy(),
        np.fft.irfftn(spectrum, s=(6, 5), axes=(1, 2)),
        atol=1e-12,
    )


def test_single_precision_stays_single() -> None:
    got = hw.fft.rfft(hw.asarray(X.astype(np.float32)))
    assert got.dtype is hw.complex64
    assert hw.fft.irfft(got).dtype is hw.float32


def test_frequencies_and_shifts() -> None:
    freq = hw.fft.fftfreq(7, d=0.5).numpy()
    np.testing.assert_allclose(freq, np.fft.fftfreq(7, 0.5), rtol=1e-6)
    assert hw.fft.rfftfreq(8, dtype=hw.float64).numpy().tolist() == np.fft.rfftfreq(8).tolist()
    np.testing.assert_array_equal(hw.fft.fftshift(t(X)).numpy(), np.fft.fftshift(X))
    np.testing.assert_array_equal(
        hw.fft.ifftshift(t(X), axes=(0, 2)).numpy(), np.fft.ifftshift(X, axes=(0, 2))
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: hw.fft.fft(t(X)), hw.DTypeError, "use rfft"),
        (lambda: hw.fft.rfft(t(Z)), hw.DTypeError, "float32 or float64"),
        (lambda: hw.fft.fft(t(Z), n=0), hw.ShapeError, "positive int"),
        (lambda: hw.fft.fft(t(Z), norm="none"), hw.ShapeError, "norm must be"),
        (lambda: hw.fft.fftn(t(Z), s=(2,), axes=(0, 1)), hw.ShapeError, "one size in s per axis"),
        (lambda: hw.fft.fftn(t(Z), axes=(0, 0)), hw.ShapeError, "distinct"),
        (lambda: hw.fft.fftfreq(4, dtype=hw.int32), hw.DTypeError, "real floating"),
    ],
)
def test_bad_input(call, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call()
