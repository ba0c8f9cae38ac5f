"""The evaluation harness of drr_agent (installed with it as the ``evals`` package) and benchmarks.

- `evals.methods`: the methods compared (``cot``, ``self_consistency``, ``stepwise``,
  ``self_critique``, ``drr``, ``lp_rank``, ``oracle``, ``best_of_n_dm``), one async function
  each, registered in `METHODS`.
- `evals.runner`: `run_eval`, the async, resumable batch runner (``drr eval`` on the command
  line).
- `evals.records`: `EvalRecord`, one JSON Lines row per (method, item).
- `evals.summary`: accuracy with 95% Wilson intervals, cost, abstention; JSON and Markdown.
- `evals.paired`: paired differences (bootstrap interval, McNemar's exact p), critic efficiency.
- `evals.seeds`: mean ± sd over seeds (``drr eval --seeds``).
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
from evals.paired import CriticEfficiency, PairedComparison, compare, critic_efficiency
from evals.records import EvalRecord, TokenUsage
from evals.runner import (
    EvalRunMismatchError,
    RunManifest,
    TrainedOnEvalItemsError,
    check_methods,
    run_eval,
)
from evals.seeds import SeedsSummary, summarize_seeds
from evals.summary import EvalSummary, MethodSummary, summarize, wilson_interval, write_summary

__all__ = [
    "DM_METHODS",
    "METHODS",
    "CriticEfficiency",
    "EvalRecord",
    "EvalRunMismatchError",
    "EvalSummary",
    "Method",
    "MethodContext",
    "MethodOutcome",
    "MethodSettings",
    "MethodSummary",
    "PairedComparison",
    "RunManifest",
    "SeedsSummary",
    "TokenUsage",
    "TrainedOnEvalItemsError",
    "check_methods",
    "compare",
    "critic_efficiency",
    "majority_answer",
    "run_eval",
    "summarize",
    "summarize_seeds",
    "wilson_interval",
    "write_summary",
]
