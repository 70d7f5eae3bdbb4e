"""The ``tpu`` backend: Google Cloud TPU through PJRT (libtpu) via JAX.

Everything but the chip's identity is shared with the Trainium backend in
:mod:`hwabstract.backends.pjrt`. On a machine without a TPU, ``HWABSTRACT_TPU_STANDIN=cpu``
runs the backend on JAX's CPU client, declaring a TPU generation's profile
(``HWABSTRACT_TPU_STANDIN_MODEL``, default v5e); its devices say "stand-in (PJRT CPU)".
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from hwabstract.backend import Capabilities, Feature
from hwabstract.backends.pjrt import PjrtBackend

from .profiles import DEFAULT, PROFILES


class TpuBackend(PjrtBackend):
    name = "tpu"
    priority = 40
    platform = "tpu"
    family = "Google Cloud TPU"
    env_prefix = "HWABSTRACT_TPU"
    install_hint = "on a Cloud TPU VM, pip install 'hwabstract-tpu[tpu]' (JAX with libtpu)"
    profiles = PROFILES
    default_profile = DEFAULT
    environment: ClassVar[dict[str, str]] = PjrtBackend.environment_for(
        "HWABSTRACT_TPU", DEFAULT, list(PROFILES)
    )

    def capabilities(self, index: int) -> Capabilities:
        caps = super().capabilities(index)
        if Feature.CUSTOM_KERNELS not in caps.features:
            # evolve, not rebuild: every other field of the manifest stays as the base set it
            caps = self._caps[index] = attrs.evolve(
                caps, features=caps.features | {Feature.CUSTOM_KERNELS}
            )
        return caps

    def pallas_function(
        self, kernel: Any, shape: tuple[int, ...], dtype: Any, grid: tuple[int, ...],
        in_specs: Any, out_specs: Any,
    ) -> Any:  # fmt: skip
        """The ``pl.pallas_call`` of ``kernel`` (interpreted on the stand-in)."""
        import jax
        from jax.experimental import pallas as pl

        kwargs: dict[str, Any] = {"grid": grid} if grid else {}
        if in_specs is not None:
            kwargs["in_specs"] = in_specs
        if out_specs is not None:
            kwargs["out_specs"] = out_specs
        return pl.pallas_call(
            kernel,
            out_shape=jax.ShapeDtypeStruct(shape, dtype.numpy_dtype),
            interpret=self.standin,
            **kwargs,
        )
