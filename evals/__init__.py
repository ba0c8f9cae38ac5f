"""The evaluation harness of drr_agent (installed with it as the ``evals`` package) and benchmarks.

- `evals.methods`: the methods compared (``cot``, ``self_consistency``, ``self_critique``,
  ``drr``, ``best_of_n_dm``), one async function each, registered in `METHODS`.
- `evals.runner`: `run_eval`, the async, resumable batch runner (``drr eval`` on the command
  line).
- `evals.records`: `EvalRecord`, one JSON Lines row per (method, item).
- `evals.summary`: accuracy with 95% Wilson intervals, cost, abstention; JSON and Markdown.
- `evals.plots`: accuracy vs Reasoner tokens; where the graph backtracked (matplotlib, imported
  on use).
- `evals.benchmarks`: rerunnable performance benchmarks.
"""

from evals.methods import (
    DM_METHODS,
    METHODS,
    Method,
    MethodContext,
    MethodOutcome,
    MethodSettings,
    majority_answer,
)
from evals.records import EvalRecord, TokenUsage
from evals.runner import EvalRunMismatchError, RunManifest, check_methods, run_eval
from evals.summary import EvalSummary, MethodSummary, summarize, wilson_interval, write_summary

__all__ = [
    "DM_METHODS",
    "METHODS",
    "EvalRecord",
    "EvalRunMismatchError",
    "EvalSummary",
    "Method",
    "MethodContext",
    "MethodOutcome",
    "MethodSettings",
    "MethodSummary",
    "RunManifest",
    "TokenUsage",
    "check_methods",
    "majority_answer",
    "run_eval",
    "summarize",
    "wilson_interval",
    "write_summary",
]
