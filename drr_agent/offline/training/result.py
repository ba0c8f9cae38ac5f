"""`TrainResult`: what `drr_agent.offline.train.train_dm` produced, for the caller and the CLI.

The reports in it were computed on the exported folder reloaded through `HFScorer`, so they
are the numbers of the DM as the graph serves it, not of the in-memory training model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from drr_agent.offline.dm_eval import DMReport

__all__ = ["REPORT_TITLES", "TrainResult"]

REPORT_TITLES = {"eval": "Dev / eval part", "held_out": "Held out (test)"}
"""Headings of the ``eval`` and ``held_out`` reports, the same in the result and the model card."""


class TrainResult(BaseModel):
    """What `train_dm` produced.

    Attributes:
        output_dir: The exported DM folder (load it with ``load_dm(output_dir)``).
        eval_report: Step-level report on the eval part — the ``dev`` rows, else the
            questions held out of the training data — scored through `HFScorer` from the
            exported folder; `None` without either.
        held_out_report: The same on ``held_out`` (test rows), if given: reported only.
        thresholds: Written to ``drr_dm.json``; chosen on ``threshold_source``.
        class_counts: Hard-label counts of the training split (``bad`` / ``good``).
        class_weights: Loss weights per class, `None` without class weighting.
        epochs_run: Epochs trained (fewer than configured after early stopping).
        best_metric: Best eval value of ``early_stopping_metric`` (the exported model's).
        wall_time_s: Seconds from the call to the verified export.
        notes: Things worth knowing about this run (fallbacks, mismatches).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    output_dir: Path
    name: str
    base_model: str | None
    n_train: int
    n_eval: int
    n_held_out: int
    n_train_items: int
    n_eval_items: int
    class_counts: dict[str, int]
    class_weights: dict[str, float] | None
    thresholds: dict[str, float]
    threshold_source: Literal["dev", "eval_split"] | None
    eval_report: DMReport | None
    held_out_report: DMReport | None
    epochs_run: float
    best_metric: float | None
    stopped_early: bool
    wall_time_s: float
    notes: list[str] = []

    def to_markdown(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.class_counts.items())
        lines = [
            f"## DM `{self.name}` → `{self.output_dir}`",
            "",
            f"- base: `{self.base_model}`"
            if self.base_model
            else "- base: none (a likelihood head alone: nothing fine-tuned)",
            f"- training split: {self.n_train} steps from {self.n_train_items} items ({counts})",
            f"- eval part ({self.threshold_source or 'none'}): {self.n_eval} steps from "
            f"{self.n_eval_items} items; "
            f"held out: {self.n_held_out} steps",
            f"- epochs run: {self.epochs_run:g}"
            + (" (stopped early)" if self.stopped_early else "")
            + f"; wall time {self.wall_time_s:.1f} s",
            "- thresholds: "
            + (
                ", ".join(f"{k} = {v:.3f}" for k, v in self.thresholds.items())
                + f" (chosen on {self.threshold_source})"
                if self.thresholds
                else "none (the graph's defaults apply)"
            ),
            *(f"- note: {note}" for note in self.notes),
            "",
        ]
        reports = {"eval": self.eval_report, "held_out": self.held_out_report}
        lines += [r.to_markdown(REPORT_TITLES[k]) for k, r in reports.items() if r is not None]
        return "\n".join(lines)
