"""examples/portable_mlp.py: the MLP with MX weights where the device declares MX formats
agrees with hwabstract.mx.reference layer by layer and end to end, on cpu and on maia where
the plugin is installed; the float32 path agrees within the matmul bound; a wrong layer is
reported as a mismatch with a nonzero exit status."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

import attrs
import numpy as np
import pytest

import hwabstract as hw


@pytest.fixture
def mlp(load_example: Callable[[str], ModuleType]) -> ModuleType:
    return load_example("portable_mlp")


@pytest.mark.parametrize("device", ["cpu:0", "maia:0"])
def test_the_mx_path_matches_the_mx_reference(
    mlp: ModuleType, available: Callable[[str], str], device: str
) -> None:
    r = mlp.run(available(device))
    assert r.status == "ok", r.reason
    assert r.path == (
        "MX weights mxfp8_e4m3 / mxfp4_e2m1 / mxfp8_e4m3 x mxfp8_e4m3 activations (native)"
    )
    assert len(r.layer_excess) == 3 and all(e <= 1.0 for e in r.layer_excess)
    # native MX kernels round once, as the reference does: the same output, bit for bit
    assert r.identical == 1.0 and r.end_to_end_diff == 0.0
    dense = sum(w.nbytes for w in mlp.make_model()[1])
    assert r.weight_bytes < dense / 3  # 8.25 and 4.25 bits per weight, against 32
    assert r.wall_ms is not None and r.event_ms is not None
    if device.startswith("maia"):
        assert r.modeled_ms is not None and r.modeled_ms > 0
    else:
        assert r.modeled_ms is None


@pytest.mark.parametrize("device", ["cpu:0", "maia:0"])
def test_the_float32_path_matches_numpy(
    mlp: ModuleType, available: Callable[[str], str], device: str
) -> None:
    r = mlp.run(available(device), use_mx=False)
    assert r.status == "ok", r.reason
    assert r.path == "float32 weights (no MX)"
    assert all(e <= 1.0 for e in r.layer_excess)
    assert r.end_to_end_diff is not None and r.end_to_end_diff < 1e-4


def _device_declaring(mx_formats: dict[str, hw.DTypeSupport]) -> Any:
    caps = attrs.evolve(hw.device("cpu:0").capabilities, mx_formats=mx_formats)
    return SimpleNamespace(capabilities=caps)


def test_the_plan_follows_the_declared_formats(mlp: ModuleType) -> None:
    native, emulated = hw.DTypeSupport.NATIVE, hw.DTypeSupport.EMULATED
    no_mx = mlp.plan(_device_declaring({}), True)
    assert [layer.weight_format for layer in no_mx] == [None, None, None]
    # no FP4 declared: FP8 weights there too
    fp8 = mlp.plan(_device_declaring({"mxfp8_e4m3": emulated}), True)
    assert [(layer.weight_format, layer.support) for layer in fp8] == [
        ("mxfp8_e4m3", "emulated")
    ] * 3
    mixed = mlp.plan(_device_declaring({"mxfp8_e4m3": native, "mxfp4_e2m1": emulated}), True)
    assert [layer.support for layer in mixed] == ["native", "emulated", "native"]
    assert mlp.describe(mixed).endswith("(emulated, native)")
    limited = SimpleNamespace(
        capabilities=attrs.evolve(hw.device("cpu:0").capabilities, kernels={})
    )
    assert mlp.plan(limited, True) == "does not declare float32 matmul, add, relu"


def test_an_emulated_layer_is_held_to_the_float32_accumulation_bound(mlp: ModuleType) -> None:
    x, weights, biases = mlp.make_model()
    native = mlp.Layer("mxfp8_e4m3", "native")
    emulated = mlp.Layer("mxfp8_e4m3", "emulated")
    out_n, bound_n = mlp.reference_layer(x, native, weights[0], biases[0], last=False)
    out_e, bound_e = mlp.reference_layer(x, emulated, weights[0], biases[0], last=False)
    assert np.array_equal(out_n, out_e)
    k = x.shape[1]
    np.testing.assert_allclose(bound_e, bound_n * (2 * k + 2) / 4)


def test_a_wrong_layer_is_a_mismatch(
    mlp: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    forward = mlp.forward

    def off_by_a_little(x: Any, layers: Any, params: Any) -> list[Any]:
        states = forward(x, layers, params)
        states[2] = states[2] + 1e-3  # layer 2's output, as a broken kernel might leave it
        return states

    monkeypatch.setattr(mlp, "forward", off_by_a_little)
    assert mlp.main(["--device", "cpu:0"]) == 1
    out = capsys.readouterr().out
    assert "  MISMATCH: layer 2 differs from NumPy by " in out  # layer 1 is fine
    assert out.rstrip().endswith("MISMATCH on cpu:0")


def test_main_reports_each_device(
    mlp: ModuleType, available: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    devices = ["cpu:0"]
    if any(b.name == "maia" and b.ok for b in hw.backends()):
        devices.append(available("maia:0"))
    argv = [arg for d in devices for arg in ("--device", d)]
    assert mlp.main(argv) == 0
    out = capsys.readouterr().out
    assert "MLP 512 -> 1024 -> 1024 -> 256, batch 64" in out
    assert "weights: 1.30 MiB on the device (7.00 MiB in float32)" in out
    assert "per layer, max |diff| / bound vs NumPy on the layer's input: 0, 0, 0" in out
    assert "end to end vs NumPy: max |diff| 0, 100.0% of outputs bit-identical" in out
    assert out.rstrip().endswith("every device agrees")
    if "maia:0" in devices:
        assert "vs cpu:0 (same path): max |diff| 0" in out
        assert "(Maia 200 by the emulator's model)" in out
