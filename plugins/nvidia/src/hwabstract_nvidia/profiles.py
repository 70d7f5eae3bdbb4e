"""Public figures of NVIDIA data-center GPUs, matched by the device's name.

What CUDA itself reports (memory, compute capability, SM count) always comes from the
device; these profiles add what CUDA cannot say -- peak dense throughput and memory
bandwidth from NVIDIA's datasheets -- for ``DeviceInfo.extra`` and the benchmarks. A GPU
no profile matches is described with CUDA's figures only, and says its peaks are unknown.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["PROFILES", "GpuProfile", "profile_for"]

_H100 = "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet"
_H200 = "https://www.nvidia.com/en-us/data-center/h200/"
_A100 = "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"
_B200 = "https://www.nvidia.com/en-us/data-center/dgx-b200/"


@attrs.frozen
class GpuProfile:
    """Datasheet figures of one GPU model (dense peaks, without sparsity)."""

    key: str
    name: str
    #: lower-case substrings of CUDA's device name that identify the model
    matches: tuple[str, ...]
    hbm_bandwidth: float  #: bytes/s
    peak_ops: Mapping[str, float] = attrs.field(hash=False)  #: dtype name -> ops/s (dense)
    sources: tuple[str, ...] = ()


PROFILES: dict[str, GpuProfile] = {
    p.key: p
    for p in (
        GpuProfile(
            "h200", "NVIDIA H200 SXM", ("h200",), 4.8e12,
            {"float64": 67e12, "float32": 67e12, "bfloat16": 989e12, "float16": 989e12,
             "float8_e4m3fn": 1979e12},
            (_H200,),
        ),
        GpuProfile(
            "h100-pcie", "NVIDIA H100 PCIe", ("h100 pcie",), 2.0e12,
            {"float64": 51e12, "float32": 51e12, "bfloat16": 756e12, "float16": 756e12,
             "float8_e4m3fn": 1513e12},
            (_H100,),
        ),
        GpuProfile(
            "h100", "NVIDIA H100 SXM", ("h100",), 3.35e12,
            {"float64": 67e12, "float32": 67e12, "bfloat16": 989e12, "float16": 989e12,
             "float8_e4m3fn": 1979e12},
            (_H100,),
        ),
        GpuProfile(
            "a100", "NVIDIA A100 SXM 80GB", ("a100",), 2.039e12,
            {"float64": 19.5e12, "float32": 19.5e12, "bfloat16": 312e12, "float16": 312e12},
            (_A100,),
        ),
        GpuProfile(
            "b200", "NVIDIA B200", ("b200",), 8e12,
            {"float64": 40e12, "bfloat16": 2250e12, "float16": 2250e12,
             "float8_e4m3fn": 4500e12},
            (_B200,),
        ),
    )
}  # fmt: skip


def profile_for(device_name: str) -> GpuProfile | None:
    """The profile of the GPU CUDA calls ``device_name`` (first match wins: the PCIe H100
    is listed before the SXM one), or None."""
    lowered = device_name.lower()
    for profile in PROFILES.values():
        if any(m in lowered for m in profile.matches):
            return profile
    return None
