"""hwabstract-tpu: the ``tpu`` backend of hwabstract, on Google Cloud TPUs through PJRT.

``pallas_call`` launches custom kernels written with Pallas (see :mod:`.pallas`). Importing
this package does not import jax.
"""

from __future__ import annotations

from .pallas import pallas_call

__all__ = ["pallas_call"]
