"""Unmodified scikit-learn estimators on any hwabstract device, through the Array API.

scikit-learn dispatches to whatever array namespace its inputs belong to when
``array_api_dispatch=True``; hwabstract tensors answer ``__array_namespace__`` with the
``hwabstract`` module, so the estimators below run their arithmetic as hwabstract kernels on
the tensors' device (the Maia emulator, a TPU stand-in, a GPU) -- no line of scikit-learn
changed. Each result is compared with the same estimator fitted on NumPy arrays.

    pip install "hwabstract[examples]" hwabstract-maia
    python examples/sklearn_array_api.py --device maia:0

Exit status 0 when every device matches NumPy within the tolerance, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

# SciPy reads this once, at import: scikit-learn's Array API support needs it.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np

import hwabstract as hw


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 8 dimensions, float32 (every device here has float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 8)) * 2
    y = rng.integers(0, 3, 600)
    x = centres[y] + rng.standard_normal((600, 8))
    return x.astype(np.float32), y.astype(np.int64)


def run(device: str) -> dict[str, Any]:
    """Fit LinearDiscriminantAnalysis and PCA on ``device`` and on NumPy; returns the
    comparison (largest differences, prediction agreement, wall times)."""
    import sklearn
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x, y = _data()
    xd, yd = hw.asarray(x, device=device), hw.asarray(y, device=device)

    start = time.perf_counter()
    lda_ref = LinearDiscriminantAnalysis().fit(x, y)
    pca_ref = PCA(n_components=3, svd_solver="full").fit(x)
    numpy_s = time.perf_counter() - start

    start = time.perf_counter()
    with sklearn.config_context(array_api_dispatch=True):
        lda = LinearDiscriminantAnalysis().fit(xd, yd)
        predicted = lda.predict(xd)
        proba = lda.predict_proba(xd)
        pca = PCA(n_components=3, svd_solver="full").fit(xd)
        projected = pca.transform(xd)
    hw.synchronize(device)
    device_s = time.perf_counter() - start

    for name, t in (("predict", predicted), ("predict_proba", proba), ("transform", projected)):
        if not isinstance(t, hw.Tensor) or t.device is not hw.device(device):
            raise AssertionError(f"{name} did not stay on {device}: got {type(t).__name__}")
    # principal axes are defined up to sign; scikit-learn fixes one (svd_flip), but a tie in
    # its rule could flip a component, so compare magnitudes of the projection
    return {
        "device": hw.device(device).name,
        "predict_agree": float(np.mean(predicted.numpy() == lda_ref.predict(x))),
        "proba_max_diff": float(np.max(np.abs(proba.numpy() - lda_ref.predict_proba(x)))),
        "pca_max_diff": float(
            np.max(np.abs(np.abs(projected.numpy()) - np.abs(pca_ref.transform(x))))
        ),
        "explained_variance_ratio_diff": float(
            np.max(
                np.abs(pca.explained_variance_ratio_.numpy() - pca_ref.explained_variance_ratio_)
            )
        ),
        "device_s": device_s,
        "numpy_s": numpy_s,
    }


def matches(result: dict[str, Any]) -> bool:
    """Agreement with NumPy within float32 rounding (a few ulps of the values involved)."""
    return (
        result["predict_agree"] == 1.0
        and result["proba_max_diff"] < 1e-4
        and result["pca_max_diff"] < 1e-3
        and result["explained_variance_ratio_diff"] < 1e-5
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", action="append",
        help="a device to run on (repeatable); default: cpu:0 and maia:0 where available",
    )  # fmt: skip
    args = parser.parse_args(argv)
    devices = args.device or [d.name for d in hw.devices() if d.backend in ("cpu", "maia")][:2]
    ok = True
    for name in devices:
        r = run(name)
        good = matches(r)
        ok &= good
        print(
            f"{r['device']:>8}: LDA predictions agree {r['predict_agree']:.0%}, "
            f"max |proba diff| {r['proba_max_diff']:.1e}; PCA max |projection diff| "
            f"{r['pca_max_diff']:.1e}; {r['device_s'] * 1e3:.0f} ms on the device vs "
            f"{r['numpy_s'] * 1e3:.0f} ms NumPy -- {'matches' if good else 'DIFFERS'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
