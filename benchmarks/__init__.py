"""Benchmarks of docs/performance.md; run with ``python benchmarks/run.py``."""
