"""Chip profiles of the Google Cloud TPU generations the ``tpu`` backend knows.

One :class:`~hwabstract.backends.pjrt_profiles.ChipProfile` per generation, per chip (not
per Pod, not per host), from public figures; each profile lists its sources and says in
``notes`` what is assumed. The key is the short name users pass (``"v5e"``, ...).

Units are as documented: a capacity documented in GB is written ``N * 10**9``, one in GiB
``N * 2**30``; bandwidth in bytes per second; peak throughput is dense (no sparsity), in
operations per second.

Dtypes: a TPU computes natively in bfloat16, float32, int8, int32 and bool (uint8 is a
native MXU input too, per JAX's ``tpu_info``). XLA offers float16, int16 and the wider
unsigned types on top of those, and JAX emulates 64-bit integers (with x64 enabled): they
are declared emulated. float64 and the complex types are not declared. FP8 is declared
(float8_e5m2 only) where a Google-authored public source gives an FP8 peak for the chip;
see each profile's notes.

``device_kinds`` are lower-case substrings of ``jax.Device.device_kind`` (``"TPU v5 lite"``
on v5e, ``"TPU v5"`` on v5p, ``"TPU v6 lite"`` on v6e, per JAX's own tables). The order of
:data:`PROFILES` matters to a first-match lookup: ``"tpu v5"`` (v5p) is a substring of
``"tpu v5 lite"`` (v5e), so v5e comes first.
"""

from __future__ import annotations

from hwabstract.backend import DTypeSupport
from hwabstract.backends.pjrt_profiles import ChipProfile

__all__ = ["DEFAULT", "PROFILES"]

NATIVE = DTypeSupport.NATIVE
EMULATED = DTypeSupport.EMULATED

_CLOUD_TPU_V5E = "Cloud TPU documentation, 'TPU v5e': https://cloud.google.com/tpu/docs/v5e"
_CLOUD_TPU_V5P = "Cloud TPU documentation, 'TPU v5p': https://cloud.google.com/tpu/docs/v5p"
_CLOUD_TPU_V5P_TRAINING = (
    "Cloud TPU documentation, 'TPU v5p' (revision with the FP8 row): "
    "https://docs.cloud.google.com/tpu/docs/v5p-training"
)
_CLOUD_TPU_V6E = "Cloud TPU documentation, 'TPU v6e': https://cloud.google.com/tpu/docs/v6e"
_JAX_TPU_INFO = (
    "JAX source, jax/_src/pallas/mosaic/tpu_info.py (device kinds, per-chip figures, native "
    "matmul input dtypes): https://github.com/jax-ml/jax/blob/main/jax/_src/pallas/mosaic/"
    "tpu_info.py"
)


def _tpu_dtypes(*, fp8: bool) -> dict[str, DTypeSupport]:
    """The dtypes of a TPU generation; ``fp8`` adds float8_e5m2 (see the module docstring)."""
    dtypes: dict[str, DTypeSupport] = {
        "bool": NATIVE,
        "int8": NATIVE,
        "int32": NATIVE,
        "uint8": NATIVE,
        "bfloat16": NATIVE,
        "float32": NATIVE,
        "int16": EMULATED,
        "uint16": EMULATED,
        "uint32": EMULATED,
        "float16": EMULATED,
        "int64": EMULATED,
        "uint64": EMULATED,
    }
    if fp8:
        dtypes["float8_e5m2"] = NATIVE
    return dtypes


_COMMON_NOTES = (
    "Dtypes: bfloat16/float32/int8/int32/bool native per the TPU architecture; uint8 native "
    "as an MXU input per JAX's tpu_info; float16, int16, uint16, uint32 assumed emulated "
    "(XLA supports them on TPU, no source says native); int64/uint64 emulated by JAX with "
    "x64; float64 and complex not declared. No float32 peak is published (XLA runs float32 "
    "matmuls as bf16 passes), so none is given."
)

PROFILES: dict[str, ChipProfile] = {
    "v5e": ChipProfile(
        key="v5e",
        name="Google Cloud TPU v5e",
        vendor="Google",
        hbm_bytes=16 * 10**9,
        hbm_bandwidth=819e9,
        peak_ops={
            "bfloat16": 197e12,
            "int8": 393e12,
        },
        dtypes=_tpu_dtypes(fp8=False),
        device_kinds=("tpu v5 lite", "tpu v5e"),
        sources=(_CLOUD_TPU_V5E, _CLOUD_TPU_V6E, _JAX_TPU_INFO),
        notes=(
            "Verified on the Cloud TPU v5e page: 197 TFLOPs bf16, 393 TOPs int8, 16 GB HBM2, "
            "819 GBps (one revision of the page says '800 GiBps' and the v6e page's "
            "comparison '800 GBps'; 819e9 is the figure most revisions give and matches "
            "JAX's 8.20e11). Capacity is the documented '16 GB'; JAX's tpu_info gives "
            "17.2e9 bytes, so the physical stack is likely 16 GiB. FP8 not declared: no "
            "Google document gives a v5e FP8 figure and JAX's tpu_info lists its FP8 peak "
            "as not available. device_kinds from JAX's tpu_info ('TPU v5 lite', with "
            "'TPU v5e' as an alias). " + _COMMON_NOTES
        ),
    ),
    "v5p": ChipProfile(
        key="v5p",
        name="Google Cloud TPU v5p",
        vendor="Google",
        hbm_bytes=95 * 2**30,
        hbm_bandwidth=2765e9,
        peak_ops={
            "bfloat16": 459e12,
            "int8": 918e12,
            "float8_e5m2": 459e12,
        },
        dtypes=_tpu_dtypes(fp8=True),
        device_kinds=("tpu v5p", "tpu v5"),
        sources=(_CLOUD_TPU_V5P, _CLOUD_TPU_V5P_TRAINING, _JAX_TPU_INFO),
        notes=(
            "Verified on the Cloud TPU v5p page: 459 TFLOPs bf16, 2765 GBps, 95 of HBM "
            "(the current revision's table says 'HBM capacity per chip (GiB) 95'; older "
            "revisions say '95GB'; JAX's tpu_info gives 103e9 bytes per chip, which fits "
            "GiB, so 95 GiB is used). FP8: the current page lists 'Peak compute per chip "
            "(FP8) 459 TFLOPs' (the bf16 rate) without naming the format; JAX's tpu_info "
            "lists float8_e5m2 (and float8_e4m3 / e4m3b11fnuz, not e4m3fn) as native matmul "
            "inputs on TPU v5/v6, so only float8_e5m2 is declared. Assumed: int8 918 TOPs "
            "is not on the Cloud TPU page; it is from JAX's tpu_info (9.18e14) and matches "
            "2x bf16. device_kinds: JAX reports 'TPU v5' ('TPU v5p' accepted as an alias); "
            "'tpu v5' is also a substring of 'tpu v5 lite', so v5e must be matched first. "
            + _COMMON_NOTES
        ),
    ),
    "v6e": ChipProfile(
        key="v6e",
        name="Google Cloud TPU v6e (Trillium)",
        vendor="Google",
        hbm_bytes=32 * 10**9,
        hbm_bandwidth=1640e9,
        peak_ops={
            "bfloat16": 918e12,
            "int8": 1836e12,
            "float8_e5m2": 918e12,
        },
        dtypes=_tpu_dtypes(fp8=True),
        device_kinds=("tpu v6 lite", "tpu v6e"),
        sources=(_CLOUD_TPU_V6E, _JAX_TPU_INFO),
        notes=(
            "Verified on the Cloud TPU v6e page: 918 TFLOPs bf16, 1836 TOPs int8, 32 GB "
            "HBM, 1640 GBps (some revisions say 1638 or 1600 GBps; JAX's tpu_info gives "
            "1.64e12). Capacity is the documented '32 GB'; JAX's tpu_info gives 34.4e9 "
            "bytes, so the physical stack is likely 32 GiB. Assumed: FP8 is not on the "
            "Cloud TPU v6e page; JAX's tpu_info gives an FP8 peak of 9.20e14 (the bf16 "
            "rate) and lists float8_e5m2 as a native matmul input on TPU v6, so "
            "float8_e5m2 is declared at the documented bf16 rate (918e12); float8_e4m3fn is "
            "not declared (not a native TPU v6 matmul input in JAX's tpu_info). device_kinds from "
            "JAX's tpu_info ('TPU v6 lite', with 'TPU v6e' as an alias). " + _COMMON_NOTES
        ),
    ),
}

#: the profile a stand-in declares when none is named
DEFAULT = "v5e"
