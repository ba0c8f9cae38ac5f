"""Benchmarks: run each with ``python -m evals.benchmarks.<name>``."""
