"""The evaluation harness: methods, the resumable runner, records, summaries, paired statistics.

- `methods`: the methods compared (``cot``, ``self_consistency``, ``deepconf``,
  ``deepconf_online``, ``stepwise``, ``self_critique``, ``drr``, ``lp_rank``, ``oracle``,
  ``best_of_n_dm``), one async function each, registered in `METHODS`; the graph methods
  live there, the whole-trace ones in `whole_traces`, DeepConf in `deepconf`, and what a
  method is (`MethodContext`, `MethodSettings`, `MethodOutcome`) in `context`.
- `runner`: `run_eval`, the async, resumable batch runner (``drr eval`` on the command
  line).
- `records`: `EvalRecord`, one JSON Lines row per (method, item).
- `summary`: accuracy with 95% Wilson intervals, cost, abstention; JSON and Markdown.
- `paired`: paired differences (bootstrap interval, McNemar's exact p), critic efficiency.
- `seeds`: mean ± sd over seeds (``drr eval --seeds``).
- `plots`: accuracy vs Reasoner tokens; where the graph backtracked
  (matplotlib, imported on use).

Recipes and rerunnable benchmarks that use it live in the repository's top-level ``evals/``
folder (``python -m evals.benchmarks.<name>`` from a checkout); they are not installed.
"""

from drr_agent.evaluation.methods import (
    DM_METHODS,
    METHODS,
    Method,
    MethodContext,
    MethodOutcome,
    MethodSettings,
    majority_answer,
)
from drr_agent.evaluation.paired import (
    CriticEfficiency,
    PairedComparison,
    compare,
    critic_efficiency,
)
from drr_agent.evaluation.records import EvalRecord, TokenUsage
from drr_agent.evaluation.runner import (
    EvalRunMismatchError,
    RunManifest,
    TrainedOnEvalItemsError,
    check_methods,
    run_eval,
)
from drr_agent.evaluation.seeds import SeedsSummary, summarize_seeds
from drr_agent.evaluation.summary import (
    EvalSummary,
    MethodSummary,
    summarize,
    wilson_interval,
    write_summary,
)

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
