"""Array API consumers find hwabstract: array-api-compat (what SciPy and scikit-learn
dispatch through) resolves a Tensor's namespace to ``hwabstract`` and reads its device.
Runs where the ``examples`` extra is installed (tox -e examples)."""

from __future__ import annotations

import numpy as np
import pytest

import hwabstract as hw

compat = pytest.importorskip(
    "array_api_compat", reason="the examples extra: pip install .[examples]"
)


def test_array_api_compat_resolves_the_namespace_and_device() -> None:
    x = hw.asarray(np.arange(6, dtype=np.float32).reshape(2, 3), device="cpu")
    assert compat.is_array_api_obj(x)
    assert compat.array_namespace(x) is hw
    assert compat.array_namespace(x, x[0]) is hw
    assert compat.device(x) is hw.device("cpu")
    assert compat.size(x) == 6
    xp = compat.array_namespace(x)
    np.testing.assert_array_equal(xp.cumulative_sum(x, axis=1).numpy(), np.cumsum(x.numpy(), 1))


def test_mixing_namespaces_is_refused_by_the_consumer() -> None:
    with pytest.raises(TypeError, match=r"[Mm]ultiple namespaces"):
        compat.array_namespace(hw.asarray([1.0]), np.ones(1))
