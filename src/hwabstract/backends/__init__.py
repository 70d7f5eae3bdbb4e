"""Backends that ship inside the core distribution: the ``cpu`` reference backend."""
