"""hwabstract-maia: the ``maia`` backend of hwabstract, on the libmaia Maia 200 emulator.

Importing this package does not load the compiled binding; the backend does that in
:meth:`~hwabstract_maia.backend.MaiaBackend.probe`.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
