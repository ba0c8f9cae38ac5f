"""The names of a run's files, in one place.

DRR's steps hand each other files, not options: ``drr traces`` records the task spec and the
train / dev / test split beside its trace file, and ``drr labels``, ``drr siblings`` and
``drr eval --traces`` read them back from there; ``drr quickstart`` lays a whole run out in one
folder that those single-step commands and the benchmark scripts (``evals/benchmarks``) also
read. Every reader and every writer takes the names from here, so they cannot drift apart.
The names are the ones run folders on disk already use: changing one orphans those folders.

Two rules:

- *Sidecars* of a trace file ``X.jsonl``: its task spec ``X.task.json`` and its split
  ``X.split.json`` (`task_spec_path`, `split_path`), wherever the trace file lives; of a label
  file ``X.jsonl`` (``drr labels``, ``drr siblings``): the settings that made it,
  ``X.settings.json`` (`label_settings_path`).
- A quickstart *run folder* (`RunFolder`)::

      quickstart.json         the plan (sizes, seeds, budgets); a rerun must match it
      traces.jsonl            traces (+ traces.task.json, traces.split.json)
      labels.jsonl            labelled steps (+ labels.settings.json)
      siblings.jsonl          labelled sibling candidates, when the plan asks for them
                              (+ siblings.settings.json)
      dm/                     the trained DM (safetensors, drr_dm.json, model card)
      critic_thresholds.json  the self-critique baseline's calibrated thresholds
      eval/                   the test evaluation: records.jsonl, summary.md / .json, plots
      dev-sweep/              ``evals.benchmarks.dev_sweep``'s settings, one eval folder each

  The files inside ``eval/`` are the evaluation runner's (`drr_agent.evaluation.runner`), those
  inside ``dm/`` the DM card's (`drr_agent.scorers.card`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LABEL_SETTINGS_SUFFIX",
    "SPLIT_SUFFIX",
    "TASK_SPEC_SUFFIX",
    "RunFolder",
    "label_settings_path",
    "split_path",
    "task_spec_path",
]

TASK_SPEC_SUFFIX = ".task.json"
SPLIT_SUFFIX = ".split.json"
LABEL_SETTINGS_SUFFIX = ".settings.json"


def task_spec_path(traces: Path) -> Path:
    """Where the task spec of trace file ``X.jsonl`` lives: ``X.task.json`` beside it."""
    return traces.with_name(traces.stem + TASK_SPEC_SUFFIX)


def split_path(traces: Path) -> Path:
    """Where the train / dev / test split of trace file ``X.jsonl`` lives: ``X.split.json``
    beside it."""
    return traces.with_name(traces.stem + SPLIT_SUFFIX)


def label_settings_path(labels: Path) -> Path:
    """Where the settings that made label file ``X.jsonl`` are recorded (`LabelSettings`):
    ``X.settings.json`` beside it."""
    return labels.with_name(labels.stem + LABEL_SETTINGS_SUFFIX)


@dataclass(frozen=True)
class RunFolder:
    """The paths of one quickstart run folder (see the module docstring); nothing is created."""

    root: Path

    @property
    def plan(self) -> Path:
        """The recorded `QuickstartPlan`."""
        return self.root / "quickstart.json"

    @property
    def traces(self) -> Path:
        """The sampled traces (JSON Lines of `TraceRecord`)."""
        return self.root / "traces.jsonl"

    @property
    def task_spec(self) -> Path:
        """The traces' task spec (their sidecar)."""
        return task_spec_path(self.traces)

    @property
    def split(self) -> Path:
        """The traces' train / dev / test split (their sidecar)."""
        return split_path(self.traces)

    @property
    def labels(self) -> Path:
        """The labelled steps (JSON Lines of `StepExample`)."""
        return self.root / "labels.jsonl"

    @property
    def siblings(self) -> Path:
        """The labelled sibling candidates (JSON Lines of `StepExample`)."""
        return self.root / "siblings.jsonl"

    @property
    def dm(self) -> Path:
        """The trained DM's folder."""
        return self.root / "dm"

    @property
    def critic_thresholds(self) -> Path:
        """The self-critique baseline's thresholds, chosen on dev steps."""
        return self.root / "critic_thresholds.json"

    @property
    def eval(self) -> Path:
        """The evaluation on the test questions (a ``drr eval`` folder)."""
        return self.root / "eval"

    @property
    def eval_dm_lm(self) -> Path:
        """The DM's own language model as the Reasoner, no critic, on the same test
        questions (a ``drr eval`` folder; only for a DM that reads one)."""
        return self.root / "eval-dm-lm"

    @property
    def dev_sweep(self) -> Path:
        """Where ``evals.benchmarks.dev_sweep`` writes by default."""
        return self.root / "dev-sweep"
