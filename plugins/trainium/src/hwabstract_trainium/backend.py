"""The ``trainium`` backend: AWS Trainium through PJRT (the Neuron plugin) via JAX.

Everything but the chip's identity is shared with the TPU backend in
:mod:`hwabstract.backends.pjrt`. On a machine without Trainium,
``HWABSTRACT_TRAINIUM_STANDIN=cpu`` runs the backend on JAX's CPU client, declaring a
Trainium generation's profile (``HWABSTRACT_TRAINIUM_STANDIN_MODEL``, default trn2); its
devices say "stand-in (PJRT CPU)".
"""

from __future__ import annotations

from typing import ClassVar

from hwabstract.backends.pjrt import PjrtBackend

from .profiles import DEFAULT, PROFILES


class TrainiumBackend(PjrtBackend):
    name = "trainium"
    priority = 40
    platform = "neuron"
    family = "AWS Trainium"
    env_prefix = "HWABSTRACT_TRAINIUM"
    install_hint = (
        "on a Trainium instance, install the Neuron SDK's JAX plugin "
        "(pip install 'hwabstract-trainium[neuron]' from AWS's Neuron package index)"
    )
    profiles = PROFILES
    default_profile = DEFAULT
    environment: ClassVar[dict[str, str]] = PjrtBackend.environment_for(
        "HWABSTRACT_TRAINIUM", DEFAULT, list(PROFILES)
    )
