"""Benchmarks (``python -m bench`` runs :mod:`bench.run`, the side-by-side comparison)."""
