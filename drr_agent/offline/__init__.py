"""DRR's offline steps: behavioural traces, labels without humans, DM training and evaluation.

`sample_traces` → `outcome_examples` / `mc_examples` → `train_dm` → `evaluate_dm`; every step
reads and writes resumable JSON Lines of the records in `drr_agent.offline.records`.
"""

from drr_agent.offline.dm_eval import DMReport, evaluate_dm, evaluate_scores
from drr_agent.offline.jsonl import RecordFile, RecordFileError
from drr_agent.offline.labels import LabelSummary, mc_examples, outcome_examples, summarize_labels
from drr_agent.offline.records import SamplingSettings, StepExample, TraceRecord
from drr_agent.offline.traces import TraceFileMismatchError, TraceSummary, sample_traces
from drr_agent.offline.train import (
    DM_RECIPES,
    DMRecipe,
    TrainConfig,
    TrainingDataError,
    TrainResult,
    train_dm,
)

__all__ = [
    "DM_RECIPES",
    "DMRecipe",
    "DMReport",
    "LabelSummary",
    "RecordFile",
    "RecordFileError",
    "SamplingSettings",
    "StepExample",
    "TraceFileMismatchError",
    "TraceRecord",
    "TraceSummary",
    "TrainConfig",
    "TrainResult",
    "TrainingDataError",
    "evaluate_dm",
    "evaluate_scores",
    "mc_examples",
    "outcome_examples",
    "sample_traces",
    "summarize_labels",
    "train_dm",
]
