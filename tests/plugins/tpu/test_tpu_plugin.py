"""The hwabstract-tpu distribution: its entry point, environment and chip profiles. (The
backend's behaviour is tested with the shared PJRT code in tests/backends/test_pjrt.py.)"""

from __future__ import annotations

import importlib.metadata

import pytest

pytest.importorskip("hwabstract_tpu", reason="hwabstract-tpu is not installed")

from hwabstract_tpu.backend import TpuBackend
from hwabstract_tpu.profiles import DEFAULT, PROFILES

from hwabstract import dtypes as dt


def test_the_entry_point_names_the_plugin_module() -> None:
    eps = importlib.metadata.entry_points(group="hwabstract")
    (ep,) = [e for e in eps if e.name == "tpu"]
    assert ep.value == "hwabstract_tpu.plugin"


def test_the_backend_declares_its_environment() -> None:
    env = TpuBackend.environment
    assert {"HWABSTRACT_TPU_STANDIN", "HWABSTRACT_TPU_STANDIN_MODEL",
            "HWABSTRACT_TPU_STANDIN_DEVICES", "HWABSTRACT_TPU_MEMORY"} <= set(env)  # fmt: skip
    assert "v5e, v5p, v6e" in env["HWABSTRACT_TPU_STANDIN_MODEL"]


@pytest.mark.parametrize("key", sorted(PROFILES))
def test_each_profile_is_complete_and_sourced(key: str) -> None:
    p = PROFILES[key]
    assert p.key == key and p.vendor == "Google" and p.name.startswith("Google Cloud TPU")
    assert p.hbm_bytes > 10**9 and p.hbm_bandwidth > 1e11
    assert p.sources and all(("http" in s) for s in p.sources)
    for name in (*p.dtypes, *p.peak_ops):
        dt.dtype(name)  # every name is a hwabstract dtype
    assert "bfloat16" in p.dtypes and "float32" in p.dtypes
    assert "float64" not in p.dtypes and "complex64" not in p.dtypes
    assert p.peak_ops["bfloat16"] > 1e14
    assert p.device_kinds
    assert DEFAULT in PROFILES
