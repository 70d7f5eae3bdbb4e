"""The hwabstract-nvidia distribution without a GPU: discovery and its reasons, the GPU
profiles, NVRTC compilation to PTX and CUBIN (a library: no driver needed) and its cache,
and the kernel table built against CuPy. Tests that need a GPU are in test_nvidia_gpu.py."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hwabstract_nvidia", reason="hwabstract-nvidia is not installed")

from hwabstract_nvidia import CompiledModule, CudaKernel, compile_cuda
from hwabstract_nvidia import compiler as nvrtc_compiler
from hwabstract_nvidia.backend import NvidiaBackend, unavailable_reason
from hwabstract_nvidia.profiles import PROFILES, profile_for

from hwabstract import dtypes as dt
from hwabstract.errors import BackendUnavailableError, KernelError

AXPY = r"""
extern "C" __global__ void axpy(float a, const float* x, float* y, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"""


def _cupy() -> Any:
    return pytest.importorskip("cupy", reason="CuPy is not installed (hwabstract-nvidia[cuda12])")


def _has_gpu() -> bool:
    return unavailable_reason(_cupy()) is None


# -- discovery -----------------------------------------------------------------------------------


def test_the_entry_point_names_the_plugin_module() -> None:
    eps = importlib.metadata.entry_points(group="hwabstract")
    (ep,) = [e for e in eps if e.name == "nvidia"]
    assert ep.value == "hwabstract_nvidia.plugin"


def test_importing_the_plugin_imports_no_cupy() -> None:
    """CuPy loads when the backend is probed, never at import."""
    code = (
        "import sys, hwabstract, hwabstract_nvidia, hwabstract_nvidia.plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cupy', 'cupyx', 'jax')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_backend_declares_its_environment() -> None:
    assert {"HWABSTRACT_NVIDIA_MEMORY", "HWABSTRACT_NVRTC_CACHE", "CUDA_VISIBLE_DEVICES"} <= set(
        NvidiaBackend.environment
    )


def test_without_a_gpu_the_backend_is_unavailable_and_says_why() -> None:
    _cupy()
    if _has_gpu():
        pytest.skip("a GPU is present: the backend is available here")
    with pytest.raises(BackendUnavailableError, match="no NVIDIA driver is installed"):
        NvidiaBackend().probe()
    import hwabstract as hw

    (info,) = [b for b in hw.backends() if b.name == "nvidia"]
    assert info.status == "unavailable" and "driver" in (info.reason or "")


@pytest.mark.parametrize("driver", [False, True])
def test_without_cupy_the_reason_says_whether_a_driver_is_there(
    monkeypatch: pytest.MonkeyPatch, driver: bool
) -> None:
    import builtins

    from hwabstract_nvidia import backend as nvidia_backend

    real_import = builtins.__import__

    def no_cupy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    monkeypatch.setattr(nvidia_backend, "driver_present", lambda: driver)
    with pytest.raises(BackendUnavailableError) as info:
        NvidiaBackend().probe()
    text = str(info.value)
    assert "CuPy is not installed" in text and "hwabstract-nvidia[cuda12]" in text
    assert ("no NVIDIA driver on this machine" in text) is (not driver)


def _fake_cupy(driver: int = 12040, count: Any = 1) -> Any:
    """A stand-in for ``cupy`` with only what ``unavailable_reason`` reads: the decision
    logic is tested for drivers and GPUs this machine does not have."""

    def device_count() -> int:
        if isinstance(count, Exception):
            raise count
        return int(count)

    runtime = types.SimpleNamespace(
        runtimeGetVersion=lambda: 12090,
        driverGetVersion=lambda: driver,
        getDeviceCount=device_count,
    )
    return types.SimpleNamespace(__version__="14.2.0", cuda=types.SimpleNamespace(runtime=runtime))


class _CudaError(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("driver", "count", "expected"),
    [
        (0, 1, "no NVIDIA driver is installed"),
        (11080, _CudaError("cudaErrorInsufficientDriver: CUDA driver version is insufficient"),
         "supports CUDA up to 11.8, older than the CUDA 12.9"),
        (12040, _CudaError("cudaErrorNoDevice: no CUDA-capable device is detected"),
         "sees no NVIDIA GPU"),
        (12040, 0, "sees no NVIDIA GPU"),
        (12040, _CudaError("cudaErrorUnknown"), "CUDA failed to initialize"),
    ],
)  # fmt: skip
def test_unavailable_reasons_name_the_cause(driver: int, count: Any, expected: str) -> None:
    why = unavailable_reason(_fake_cupy(driver, count))
    assert why is not None and expected in why[0]


def test_a_usable_gpu_has_no_reason() -> None:
    assert unavailable_reason(_fake_cupy(12040, 2)) is None


def test_no_device_names_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    why = unavailable_reason(_fake_cupy(12040, _CudaError("cudaErrorNoDevice")))
    assert why is not None and "CUDA_VISIBLE_DEVICES=''" in why[0]


# -- profiles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(PROFILES))
def test_each_profile_is_complete_and_sourced(key: str) -> None:
    p = PROFILES[key]
    assert p.name.startswith("NVIDIA") and p.matches and p.hbm_bandwidth > 1e12
    assert p.sources and all(s.startswith("https://") for s in p.sources)
    for name in p.peak_ops:
        dt.dtype(name)
    assert p.peak_ops["bfloat16"] > 1e14


@pytest.mark.parametrize(
    ("cuda_name", "key"),
    [("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H100 PCIe", "h100-pcie"),
     ("NVIDIA H200", "h200"), ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA B200", "b200")],
)  # fmt: skip
def test_profiles_match_cudas_device_names(cuda_name: str, key: str) -> None:
    profile = profile_for(cuda_name)
    assert profile is not None and profile.key == key


def test_an_unknown_gpu_has_no_profile() -> None:
    assert profile_for("NVIDIA GeForce GTX 1080") is None


# -- NVRTC -----------------------------------------------------------------------------------------


@pytest.fixture
def nvrtc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NVRTC present (skip otherwise), a fresh disk cache and an empty memory cache."""
    _cupy()
    try:
        nvrtc_compiler.nvrtc_version()
    except KernelError as exc:
        pytest.skip(f"NVRTC is not available: {exc}")
    monkeypatch.setenv("HWABSTRACT_NVRTC_CACHE", str(tmp_path))
    monkeypatch.setattr(nvrtc_compiler, "_memory", {})
    return tmp_path


def test_compiles_to_ptx_without_a_gpu(nvrtc: Path) -> None:
    module = compile_cuda(AXPY, arch="compute_90")
    assert module.kind == "ptx" and module.arch == "compute_90"
    assert ".entry axpy" in module.text and ".target sm_90" in module.text


def test_every_direct_kernel_compiles_with_nvrtc(nvrtc: Path) -> None:
    """The backend's own elementwise kernels (hwabstract_nvidia.direct): each compiles
    without warnings; integer ones wrap in unsigned arithmetic (no signed overflow, which
    C leaves undefined)."""
    from hwabstract_nvidia import direct

    kernels = (*direct.BINARY, *direct.REDUCING)
    names = [(k, d) for k in kernels for d in direct.C_TYPES if direct.supported(k, d)]
    assert len(names) == 36  # (32 elementwise; sum and softmax in float32 and float64)
    for kernel, dtype in names:
        module = compile_cuda(direct.source(kernel, dtype), arch="compute_90")
        assert f".entry {direct.kernel_name(kernel, dtype)}(" in module.text, (kernel, dtype)
        assert module.log.strip() == "", module.log
    assert "(unsigned int)x * (unsigned int)y" in direct.source("multiply", "int16")
    with pytest.raises(ValueError, match="no direct kernel for divide on int32"):
        direct.source("divide", "int32")


def test_compiles_to_cubin_for_an_h100(nvrtc: Path) -> None:
    module = compile_cuda(AXPY, arch="sm_90")
    assert module.kind == "cubin" and module.image[:4] == b"\x7fELF"
    with pytest.raises(KernelError, match="binary"):
        module.text  # noqa: B018


def test_a_compile_error_reports_nvrtcs_log(nvrtc: Path) -> None:
    broken = AXPY.replace("y[i] = a", "y[i] = undefined_name * a")
    with pytest.raises(KernelError, match=r"axpy\.cu.*undefined_name|undefined") as info:
        compile_cuda(broken, arch="compute_90", filename="axpy.cu")
    assert "axpy.cu(" in (info.value.vendor_message or "")
    assert "error" in str(info.value)


@pytest.mark.parametrize("arch", ["sm90", "hopper", "compute_", "sm_90x"])
def test_an_architecture_that_is_not_one_is_refused(nvrtc: Path, arch: str) -> None:
    with pytest.raises(KernelError, match="unknown CUDA architecture"):
        compile_cuda(AXPY, arch=arch)


def test_an_architecture_nvrtc_does_not_support_is_refused(nvrtc: Path) -> None:
    with pytest.raises(KernelError, match=r"cannot compile for sm_10; it supports .*90"):
        compile_cuda(AXPY, arch="sm_10")


def test_the_architecture_goes_in_arch_not_options(nvrtc: Path) -> None:
    with pytest.raises(KernelError, match="arch="):
        compile_cuda(AXPY, arch="sm_90", options=["--gpu-architecture=sm_80"])


def test_compilations_are_cached_in_memory_and_on_disk(
    nvrtc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = nvrtc_compiler.compilations
    first = compile_cuda(AXPY, arch="sm_90")
    assert nvrtc_compiler.compilations == before + 1
    assert compile_cuda(AXPY, arch="sm_90") is first  # memory
    assert (nvrtc / f"{first.key}.cubin").read_bytes() == first.image
    monkeypatch.setattr(nvrtc_compiler, "_memory", {})
    again = compile_cuda(AXPY, arch="sm_90")  # disk
    assert again.image == first.image and nvrtc_compiler.compilations == before + 1
    # options, architecture and source are all part of the key
    fast = compile_cuda(AXPY, arch="sm_90", options=["--use_fast_math"])
    other = compile_cuda(AXPY, arch="sm_80")
    assert len({first.key, fast.key, other.key}) == 3
    assert nvrtc_compiler.compilations == before + 3


def test_the_disk_cache_can_be_turned_off(nvrtc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWABSTRACT_NVRTC_CACHE", "off")
    assert nvrtc_compiler.cache_dir() is None
    compile_cuda(AXPY, arch="compute_80")
    assert not list(nvrtc.iterdir())


def test_an_unwritable_cache_is_skipped(nvrtc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = nvrtc / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("HWABSTRACT_NVRTC_CACHE", str(blocker / "cache"))
    assert isinstance(compile_cuda(AXPY, arch="compute_80"), CompiledModule)


def test_a_cuda_kernel_compiles_without_a_gpu(nvrtc: Path) -> None:
    kernel = CudaKernel(AXPY, "axpy")
    assert ".entry axpy" in kernel.compile("compute_90").text


@pytest.mark.parametrize("name", ["", "axpy()", "1st", None])
def test_a_cuda_kernel_needs_a_c_identifier(name: Any) -> None:
    with pytest.raises(KernelError, match="C identifier"):
        CudaKernel(AXPY, name)


# -- the standard kernels, built against CuPy ----------------------------------------------------


def _attribute_sets(spec: Any) -> list[dict[str, Any]]:
    """Normalized attributes of the kinds the core hands a backend for ``spec``: its
    defaults, reductions over axis 0, an explicit dtype, every optional operand given, each
    boolean flipped (fft's ``inverse`` builds on ``ifft``)."""
    import hwabstract as hw

    base = dict(spec.attributes)
    if "keepdims" in base:
        base["axes"] = (0,)
    if "dtype" in base:
        base["dtype"] = hw.float32
    if "axis" in base and base["axis"] is None:
        base["axis"] = 0
    sets = [base]
    flags = {k: True for k in base if k.startswith("has_")}
    if flags:
        sets.append({**base, **flags})
    if spec.name == "gelu":
        sets.append({**base, "approximate": "tanh"})
    if "count" in base:
        base["count"] = 3
    sets += [{**base, k: not v} for k, v in base.items() if isinstance(v, bool)]
    return sets


def test_every_kernel_builds_against_cupy() -> None:
    """Building a kernel looks up every CuPy function it uses (calling one needs a GPU):
    a function CuPy lacks fails here, not on the first GPU that runs it."""
    _cupy()
    from hwabstract.backends.array_kernels import cupy_module, implemented, kernel_function
    from hwabstract.kernels import all_specs

    module = cupy_module()
    names = implemented(module)
    missing = [s.name for s in all_specs() if not s.composite and s.name not in names]
    assert not missing, f"kernels CuPy cannot run: {missing}"
    built = 0
    for spec in all_specs():
        if spec.composite:
            continue  # (carried out by the core as views and copies)
        for attrs in _attribute_sets(spec):
            assert callable(kernel_function(module, spec.name, attrs))
            built += 1
    assert built > len(names)


def test_the_expectations_file_ships_and_names_single_tests() -> None:
    """CUDA's known deviations load from the installed package, each entry one test id
    (no wildcard that could hide other cases of a kernel) with its reason."""
    from hwabstract_nvidia.backend import NvidiaBackend

    from hwabstract.conformance.expectations import Expectations

    exp = Expectations.for_backend(NvidiaBackend())
    assert exp.source is not None and exp.source.endswith("conformance-expectations.toml")
    assert exp.entries
    for test, reason in exp.entries:
        assert "*" not in test and "?" not in test and "::" in test, test
        assert len(reason) > 40, test
    assert exp.match("kernels::test_elementwise_special_values[hypot-float64]") is not None
    assert exp.match("kernels::test_elementwise[add-float32-contiguous]") is None
