"""Chip profiles: what a PJRT device generation is, from public figures.

A backend on PJRT (the TPU and Trainium plugins) declares, per chip generation, the memory,
bandwidth, peak throughput and dtypes of the real chip. On real hardware the profile
describes the chip found; on a stand-in (JAX's CPU client standing in for the chip) it is
the profile the stand-in declares, so code sees the chip's dtypes and limits, not the
host's. Every figure names its public source. No jax import here.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ..backend import DTypeSupport

__all__ = ["ChipProfile"]


@attrs.frozen
class ChipProfile:
    """One chip generation, from public figures (per chip, not per pod or per instance)."""

    key: str  #: the short name users pass (``"v5e"``, ``"trn2"``)
    name: str  #: the full name (``"Google Cloud TPU v5e"``)
    vendor: str  #: ``"Google"``, ``"AWS"``
    hbm_bytes: int  #: HBM capacity per chip, bytes
    hbm_bandwidth: float  #: HBM bandwidth per chip, bytes per second
    #: dense peak throughput per chip by dtype name (``"bfloat16"``, ``"int8"``,
    #: ``"float8_e4m3fn"``, ...), operations per second
    peak_ops: Mapping[str, float] = attrs.field(hash=False)
    #: the dtypes the chip computes in: name -> native or emulated. What is absent is not
    #: declared (no float64 where the chip has none).
    dtypes: Mapping[str, DTypeSupport] = attrs.field(hash=False)
    #: what the device kind reported by PJRT looks like for this chip (lower-case
    #: substrings of ``jax.Device.device_kind``), to recognise it on real hardware
    device_kinds: tuple[str, ...] = ()
    #: where the figures come from: titles and URLs of public documents
    sources: tuple[str, ...] = ()
    notes: str = ""  #: what is assumed or approximate
