"""The question the quickstart's "Try it" line suggests: one its DM handled on test."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from drr_agent.errors import DRRError

if TYPE_CHECKING:
    from drr_agent.tasks import TaskItem

__all__ = ["EXAMPLE_QUESTION", "example_question"]


EXAMPLE_QUESTION = "Calculate 6 + 5."
"""The "Try it" question when the run's ``drr`` answered no test question right (a one-digit
sum, the default task's kind)."""


def example_question(eval_dir: str | Path, test_items: Sequence[TaskItem]) -> str:
    """The question the quickstart's "Try it" command suggests: one the run's ``drr`` method
    answered right on its test split, so the first thing a user tries is a question the DM
    handles.

    Among those, one answered with no rejection and no backtrack comes first (the graph's
    first proposals were right and accepted, so a rerun most likely goes the same way), then
    the test order. With none (no records, ``drr`` not among the methods, or every answer
    wrong): `EXAMPLE_QUESTION` on a numeric task, else the first test question.

    Args:
        eval_dir: The evaluation folder (its ``records.jsonl``, `EvalRecord` rows).
        test_items: The test split, in order.
    """
    from drr_agent.evaluation.records import RECORDS_FILE, EvalRecord
    from drr_agent.offline.jsonl import RecordFile

    order = {item.id: n for n, item in enumerate(test_items)}
    try:
        records = RecordFile(Path(eval_dir) / RECORDS_FILE, EvalRecord).read()
    except (DRRError, OSError):
        records = []
    right = [
        r
        for r in records
        if r.method == "drr" and r.correct and r.error is None and r.item_id in order
    ]
    if right:
        best = min(
            right,
            key=lambda r: (
                bool(r.backtracks or r.details.get("rejections")),
                order[r.item_id],
            ),
        )
        return test_items[order[best.item_id]].question.strip()
    if not test_items or test_items[0].answer_type == "number":
        return EXAMPLE_QUESTION
    return test_items[0].question.strip()
