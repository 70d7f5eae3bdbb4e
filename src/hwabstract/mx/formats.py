"""The OCP Microscaling (MX) v1.0 formats: six element formats sharing one E8M0 scale per
block of 32 elements.

=============  =========  ====  ===  ====  ============  ============  =========  ======
format         element    bits  exp  mant  largest       smallest      Inf / NaN  DLPack
                                           normal        subnormal     elements   code
=============  =========  ====  ===  ====  ============  ============  =========  ======
MXFP8_E4M3     E4M3       8     4    3     448           2^-9          -- / yes   10
MXFP8_E5M2     E5M2       8     5    2     57344         2^-16         yes / yes  12
MXFP6_E3M2     E3M2       6     3    2     28            2^-4          -- / --    16
MXFP6_E2M3     E2M3       6     2    3     7.5           2^-3          -- / --    15
MXFP4_E2M1     E2M1       4     2    1     6             0.5           -- / --    17
MXINT8         INT8       8     --   6     127/64        2^-6          -- / --    0
=============  =========  ====  ===  ====  ============  ============  =========  ======

MXINT8 elements are two's-complement integers with an implicit scale of 2^-6 (so they span
-2 to 127/64). The shared scale is E8M0: an unsigned biased exponent, ``2^(code - 127)``
for codes 0..254, and NaN for 255 (DLPack code 14, ``float8_e8m0fnu``).
"""

from __future__ import annotations

import attrs

__all__ = [
    "BLOCK",
    "FORMATS",
    "MXFP4_E2M1",
    "MXFP6_E2M3",
    "MXFP6_E3M2",
    "MXFP8_E4M3",
    "MXFP8_E5M2",
    "MXINT8",
    "SCALE_BIAS",
    "SCALE_DLPACK_CODE",
    "SCALE_NAN",
    "MXFormat",
    "mx_format",
]

#: elements per block sharing one scale (OCP MX v1.0: k = 32)
BLOCK = 32
#: E8M0: the scale of code c is 2^(c - SCALE_BIAS); SCALE_NAN is NaN
SCALE_BIAS = 127
SCALE_NAN = 0xFF
#: DLPack 1.1 type code of the E8M0 scale
SCALE_DLPACK_CODE = 14


@attrs.frozen
class MXFormat:
    """One MX element format. Floating formats are sign, ``ebits`` exponent bits (bias
    ``bias``) and ``mbits`` mantissa bits, with subnormals; MXINT8 is an int8 times 2^-6."""

    name: str  #: e.g. ``"mxfp8_e4m3"``
    element: str  #: ``"e4m3"``, ``"e5m2"``, ``"e3m2"``, ``"e2m3"``, ``"e2m1"``, ``"int8"``
    bits: int  #: bits per element (8, 6 or 4)
    ebits: int  #: exponent bits (0 for MXINT8)
    mbits: int  #: mantissa bits (MXINT8: the 6 fraction bits)
    bias: int  #: exponent bias (floating formats)
    #: the exponent of the largest power of two the element format represents: the shared
    #: scale is 2^(floor(log2(amax)) - emax), so the block's largest element lands in
    #: [2^emax, 2^(emax+1))
    emax: int
    max_normal: float  #: the largest finite element magnitude
    has_inf: bool  #: the element format encodes +-Inf (E5M2 only)
    has_nan: bool  #: the element format encodes NaN (E4M3 and E5M2)
    dlpack_code: int  #: DLPack 1.1 type code of the element type
    #: the ml_dtypes type of the element, for cross-checks (None for MXINT8)
    ml_dtype: str | None

    @property
    def is_int(self) -> bool:
        return self.ebits == 0

    @property
    def emin(self) -> int:
        """The exponent of the smallest normal (floating formats)."""
        return 1 - self.bias

    @property
    def block_bytes(self) -> int:
        """Bytes of one packed block of :data:`BLOCK` elements."""
        return BLOCK * self.bits // 8

    @property
    def codes(self) -> int:
        """How many element codes there are (2^bits)."""
        return 1 << self.bits

    def __str__(self) -> str:
        return self.name


MXFP8_E4M3 = MXFormat("mxfp8_e4m3", "e4m3", 8, 4, 3, 7, 8, 448.0, False, True, 10,
                      "float8_e4m3fn")  # fmt: skip
MXFP8_E5M2 = MXFormat("mxfp8_e5m2", "e5m2", 8, 5, 2, 15, 15, 57344.0, True, True, 12,
                      "float8_e5m2")  # fmt: skip
MXFP6_E3M2 = MXFormat("mxfp6_e3m2", "e3m2", 6, 3, 2, 3, 4, 28.0, False, False, 16,
                      "float6_e3m2fn")  # fmt: skip
MXFP6_E2M3 = MXFormat("mxfp6_e2m3", "e2m3", 6, 2, 3, 1, 2, 7.5, False, False, 15,
                      "float6_e2m3fn")  # fmt: skip
MXFP4_E2M1 = MXFormat("mxfp4_e2m1", "e2m1", 4, 2, 1, 1, 2, 6.0, False, False, 17,
                      "float4_e2m1fn")  # fmt: skip
MXINT8 = MXFormat("mxint8", "int8", 8, 0, 6, 0, 0, 127 / 64, False, False, 0, None)

FORMATS: dict[str, MXFormat] = {
    f.name: f for f in (MXFP8_E4M3, MXFP8_E5M2, MXFP6_E3M2, MXFP6_E2M3, MXFP4_E2M1, MXINT8)
}


def mx_format(spec: MXFormat | str) -> MXFormat:
    """The format named ``spec`` (``"mxfp8_e4m3"``, case-insensitive; ``"mxfp4"`` and
    ``"mxint8"`` are unambiguous short names), or ``spec`` itself."""
    from ..errors import DTypeError

    if isinstance(spec, MXFormat):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        found = FORMATS.get(key) or FORMATS.get({"mxfp4": "mxfp4_e2m1"}.get(key, ""))
        if found is not None:
            return found
    raise DTypeError(
        f"unknown MX format {spec!r}; the OCP MX v1.0 formats are "
        f"{', '.join(FORMATS)} (mxfp4 for mxfp4_e2m1)"
    )
