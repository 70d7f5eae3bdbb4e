"""hwabstract-nvidia: the ``nvidia`` backend of hwabstract, CUDA through CuPy.

:class:`CudaKernel` launches custom CUDA C++ kernels; :func:`compile_cuda` compiles CUDA
C++ to PTX or CUBIN with NVRTC (no GPU or driver needed). Importing this package does not
import CuPy.
"""

from __future__ import annotations

from .compiler import CompiledModule, compile_cuda
from .kernels import CudaKernel

__all__ = ["CompiledModule", "CudaKernel", "compile_cuda"]
