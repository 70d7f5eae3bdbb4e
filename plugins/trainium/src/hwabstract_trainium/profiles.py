"""Chip profiles of the AWS Trainium generations the ``trainium`` backend knows.

One :class:`~hwabstract.backends.pjrt_profiles.ChipProfile` per generation, per chip (not
per NeuronCore, not per instance), from the AWS Neuron documentation; each profile lists
its sources and says in ``notes`` what is assumed. The key is the short name users pass
(``"trn1"``, ``"trn2"``).

Units are as documented: a capacity documented in GiB is written ``N * 2**30``; bandwidth
in bytes per second; peak throughput is dense (no sparsity), in operations per second.

Note that a JAX device on Neuron is a (logical) NeuronCore, not a chip: a Trainium chip has
two NeuronCore-v2, a Trainium2 chip eight NeuronCore-v3 (four logical ones with the default
logical NeuronCore configuration LNC=2). The figures here are per chip.

Dtypes: the Neuron "Data Types" page lists FP32, TF32, FP16, BF16, cFP8 (FP8_e5m2, FP8_e4m3,
FP8_e3m4) and UINT8 for NeuronCore-v2; its Scalar and Vector engines also handle INT8, INT16
and INT32. The FP8 E4M3 of Trainium1/2 is the IEEE-style variant, not ``float8_e4m3fn``: the
Neuron compiler rejects F8E4M3FN on Trn1/Trn2 (error NCC_EVRF051, native only from
Trainium3), so only float8_e5m2 is declared. 64-bit integers are emulated by JAX (x64);
float64 and the complex types are not declared.

``device_kinds`` are lower-case substrings of ``jax.Device.device_kind`` under the Neuron
PJRT plugin (platform ``"neuron"``): ``"NC_v3d"`` on Trainium2 with LNC=2 is seen in public
code; ``"nc_v2"`` and ``"nc_v3"`` otherwise are assumed from that naming.
"""

from __future__ import annotations

from hwabstract.backend import DTypeSupport
from hwabstract.backends.pjrt_profiles import ChipProfile

__all__ = ["DEFAULT", "PROFILES"]

NATIVE = DTypeSupport.NATIVE
EMULATED = DTypeSupport.EMULATED

_NEURON = "https://awsdocs-neuron.readthedocs-hosted.com/en"
_TRAINIUM_ARCH = (
    "AWS Neuron documentation, 'Trainium Architecture': "
    f"{_NEURON}/latest/general/arch/neuron-hardware/trainium.html"
)
_TRN1_ARCH = (
    "AWS Neuron documentation, 'AWS Trn1/Trn1n Architecture' (instance table): "
    f"{_NEURON}/v2.9.1/_sources/general/arch/neuron-hardware/trn1-arch.rst.txt"
)
_NC_V2 = (
    "AWS Neuron documentation, 'NeuronCore-v2 Architecture': "
    f"{_NEURON}/latest/general/arch/neuron-hardware/neuron-core-v2.html"
)
_TRAINIUM2_ARCH = (
    "AWS Neuron documentation, 'Trainium2 Architecture': "
    f"{_NEURON}/v2.29.0/_sources/about-neuron/arch/neuron-hardware/trainium2.rst "
    "(also aws-neuron/aws-neuron-sdk, about-neuron/arch/neuron-hardware/trainium2.rst)"
)
_TRN2_ARCH = (
    "AWS Neuron documentation, 'Amazon EC2 Trn2 Architecture' (instance table): "
    f"{_NEURON}/latest/general/arch/neuron-hardware/trn2-arch.html"
)
_NC_V3 = (
    "AWS Neuron documentation, 'NeuronCore-v3 Architecture': "
    f"{_NEURON}/latest/about-neuron/arch/neuron-hardware/neuron-core-v3.html"
)
_NKI_TRN2 = (
    "AWS Neuron documentation, 'Trainium2 Architecture Guide for NKI': "
    f"{_NEURON}/latest/nki/arch/trainium2_arch.html"
)
_DATA_TYPES = (
    "AWS Neuron documentation, 'Data Types': "
    f"{_NEURON}/latest/general/arch/neuron-features/data-types.html"
)
_EVRF051 = (
    "AWS Neuron documentation, 'NCC_EVRF051' (F8E4M3FN not supported on TRN1/TRN2): "
    f"{_NEURON}/latest/compiler/error-codes/EVRF051.html"
)
_AXLEARN = (
    "axlearn (apple/axlearn and AWS contributors' forks), "
    "axlearn/common/flash_attention/neuron_attention.py, some revisions: "
    "lnc = 2 if jax.devices()[0].device_kind == 'NC_v3d' else 1 (kernels 'tested on trn1 "
    "& trn2'): https://github.com/apple/axlearn"
)


def _neuron_dtypes() -> dict[str, DTypeSupport]:
    """The dtypes of a Trainium1/Trainium2 chip (see the module docstring)."""
    return {
        "bool": NATIVE,
        "int8": NATIVE,
        "int16": NATIVE,
        "int32": NATIVE,
        "uint8": NATIVE,
        "float8_e5m2": NATIVE,
        "bfloat16": NATIVE,
        "float16": NATIVE,
        "float32": NATIVE,
        "uint16": EMULATED,
        "uint32": EMULATED,
        "int64": EMULATED,
        "uint64": EMULATED,
    }


_COMMON_NOTES = (
    "Dtypes: float32, float16, bfloat16, float8_e5m2 (cFP8) and uint8 are listed on the "
    "Neuron 'Data Types' page; int8/int16/int32 are handled by the NeuronCore-v2 Scalar and "
    "Vector engines (int8 is a TensorEngine input too). Assumed: bool native (stored as an "
    "8-bit integer, no source says so); uint16/uint32 emulated (not listed); int64/uint64 "
    "emulated by JAX with x64. float8_e4m3fn not declared: Trn1/Trn2 compute FP8 E4M3 in the "
    "IEEE-style variant and the compiler rejects F8E4M3FN (NCC_EVRF051) unless an "
    "'unsafe' flag reinterprets it as F8E4M3, which is not a faithful emulation."
)

PROFILES: dict[str, ChipProfile] = {
    "trn1": ChipProfile(
        key="trn1",
        name="AWS Trainium",
        vendor="AWS",
        hbm_bytes=32 * 2**30,
        hbm_bandwidth=820e9,
        peak_ops={
            "bfloat16": 190e12,
            "float16": 190e12,
            "float8_e5m2": 190e12,
            "float32": 47.5e12,
            "int8": 380e12,
        },
        dtypes=_neuron_dtypes(),
        device_kinds=("nc_v2",),
        sources=(_TRAINIUM_ARCH, _TRN1_ARCH, _NC_V2, _TRAINIUM2_ARCH, _DATA_TYPES, _EVRF051),
        notes=(
            "Verified on the Neuron 'Trainium Architecture' page: two NeuronCore-v2 per chip "
            "delivering 190 FP16/BF16/cFP8/TF32 TFLOPS, 47.5 FP32 TFLOPS and 380 INT8 TOPS "
            "(an older revision said 420 INT8 TOPS), 32 GiB of device memory (an older "
            "revision: 32GB). Bandwidth: the current page and the Trn1 instance table say "
            "820 GiB/sec, an older revision of the page 820 GB/sec, and the Trainium2 "
            "comparison table 0.8 TB/sec; the conservative 820e9 bytes/s is used. The "
            "Trainium2 page's comparison rounds the Trainium figures to 191 TFLOPS and 48 "
            "FP32 TFLOPS. "
            "Assumed: device_kind 'NC_v2' (not verified on hardware; Inferentia2 also has "
            "NeuronCore-v2 and would match too). " + _COMMON_NOTES
        ),
    ),
    "trn2": ChipProfile(
        key="trn2",
        name="AWS Trainium2",
        vendor="AWS",
        hbm_bytes=96 * 2**30,
        hbm_bandwidth=2.9e12,
        peak_ops={
            "bfloat16": 667e12,
            "float16": 667e12,
            "float8_e5m2": 1299e12,
            "float32": 181e12,
        },
        dtypes=_neuron_dtypes(),
        device_kinds=("nc_v3",),
        sources=(
            _TRAINIUM2_ARCH,
            _TRN2_ARCH,
            _NC_V3,
            _NKI_TRN2,
            _DATA_TYPES,
            _EVRF051,
            _AXLEARN,
        ),
        notes=(
            "Verified on the Neuron 'Trainium2 Architecture' page: eight NeuronCore-v3 per "
            "chip delivering 1,299 FP8 TFLOPS, 667 BF16/FP16/TF32 TFLOPS and 181 FP32 "
            "TFLOPS (dense; 2,563 sparse), 96 GiB of device memory at 2.9 TB/sec (the Trn2 "
            "instance table agrees: 16 chips, 1,536 GiB, 46.4 TB/sec, 20.8 FP8 PFLOPS; one "
            "revision of the NKI guide says 3 TB/s). Assumed: no INT8 peak is published for "
            "Trainium2, so none is given; the integer dtypes are assumed as on "
            "NeuronCore-v2 (the NeuronCore-v3 page names only the TensorEngine's cFP8, "
            "FP16, BF16, TF32 and FP32). device_kind: 'NC_v3d' (LNC=2, the default) is seen "
            "in apple/axlearn's Neuron kernels; 'nc_v3' matches it and, assumed, the LNC=1 "
            "kind. " + _COMMON_NOTES
        ),
    ),
}

#: the profile a stand-in declares when none is named
DEFAULT = "trn2"
