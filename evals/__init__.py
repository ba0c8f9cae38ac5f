"""Evaluations and benchmarks of drr_agent (not part of the installed package)."""
