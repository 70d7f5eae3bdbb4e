"""Reliability: fuzzing, fault injection and stress across the public API (issue 9)."""
