"""The default sampling settings of the Reasoner, stated once.

A Reasoner is sampled three ways: one graph step at a time (`Reasoner.propose`), one whole
trace (`Reasoner.asample_trace`, shared by ``drr traces`` and the evaluation's whole-trace
methods), and a continuation from a step (`Reasoner.acontinue`, ``drr labels --kind mc`` /
``answer``). Each way has its default temperature and length here. The CLI options,
`choose_reasoner` and `QuickstartPlan` take their defaults from these constants (``--help``
shows the values).
"""

from __future__ import annotations

__all__ = [
    "ROLLOUT_MAX_TOKENS",
    "STEP_MAX_TOKENS",
    "STEP_TEMPERATURE",
    "TRACE_MAX_TOKENS",
    "TRACE_TEMPERATURE",
]

STEP_TEMPERATURE = 0.7
"""Temperature of the graph's steps. Retries after a rejection and the other candidates are
sampled at it; under `DRRConfig.greedy_first` the first candidate at a new point is greedy."""

STEP_MAX_TOKENS = 64
"""Longest graph step (completion tokens)."""

TRACE_TEMPERATURE = 0.8
"""Temperature of whole traces (``drr traces``, ``self_consistency``'s samples) and of their
Monte-Carlo continuations. The embedded Reasoner's headroom was measured at it
(``docs/environment.md``)."""

TRACE_MAX_TOKENS = 200
"""Longest whole trace (completion tokens). The headroom was measured at this length too."""

ROLLOUT_MAX_TOKENS = 160
"""Longest continuation from a step that ``drr labels`` rolls out (``--kind mc`` / ``answer``)."""
