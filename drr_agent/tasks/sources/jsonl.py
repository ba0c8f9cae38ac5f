"""Any local JSON Lines file of questions with gold answers: bring your own task.

One JSON object per line (blank lines are skipped)::

    {"question": "What is 2 + 3?", "answer": 5}
    {"id": "q2", "question": "Pick one", "choices": ["red", "blue"], "answer": "B"}

Fields: ``question`` (text) and ``answer`` (text, number or true/false) are required; ``id``
(default ``<task name>/<index>``), ``choices`` (option texts, appended to the question as
"A) ..." lines), ``answer_type`` and ``metadata`` are optional; other fields go to the
item's metadata. A malformed line raises `TaskDataError` naming the file, line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drr_agent.errors import describe_validation_error
from drr_agent.tasks.base import AnswerType, Task, TaskItem
from drr_agent.tasks.errors import TaskDataError, TaskSourceMissingError
from drr_agent.tasks.instructions import instruction_for
from drr_agent.tasks.sources._common import (
    LETTERS,
    canonical_gold,
    check_limit,
    format_choices,
    is_plain_number,
    jsonl_objects,
)

__all__ = ["JsonlRow", "load_jsonl"]


class JsonlRow(BaseModel):
    """One line of a ``jsonl`` task file."""

    model_config = ConfigDict(extra="allow")

    id: str | int | None = None
    question: str = Field(min_length=1)
    answer: str | bool | int | float
    choices: list[str] | None = Field(default=None, min_length=2, max_length=len(LETTERS))
    answer_type: AnswerType | None = None
    metadata: dict[str, Any] | None = None


def _infer_answer_type(rows: list[JsonlRow]) -> AnswerType:
    """choice if every row has choices, number/boolean if every answer is one, else text."""
    if all(r.choices for r in rows):
        return "choice"
    answers = [r.answer for r in rows]
    if all(isinstance(a, bool) or str(a).strip().lower() in {"yes", "no"} for a in answers):
        return "boolean"
    if all(not isinstance(a, bool) and is_plain_number(str(a)) for a in answers):
        return "number"
    return "text"


def load_jsonl(
    *,
    limit: int | None = None,
    seed: int = 0,
    path: str | Path | None = None,
    name: str | None = None,
    answer_type: AnswerType | None = None,
    instruction: str | None = None,
) -> Task:
    """Items of a local JSON Lines file, the first ``limit`` in file order.

    Args:
        path: The file (required).
        name: Task name (default: the file name without extension).
        answer_type: Default answer type of rows that give none; inferred from the rows
            when omitted (choice if all have choices, boolean if all answers are yes/no,
            number if all are plain numbers, else text). All items must end up with one type.
        instruction: Overrides the answer type's instruction (`instruction_for`).
        seed: Not used (see `split_task` for shuffled splits).
    """
    limit = check_limit(limit)
    if path is None:
        raise ValueError("the 'jsonl' task needs path= to a JSON Lines file")
    file = Path(path)
    if not file.is_file():
        raise TaskSourceMissingError(f"{file}: no such file")
    task_name = name or file.stem
    rows: list[tuple[int, JsonlRow]] = []
    for line_no, raw in jsonl_objects(file, limit):
        try:
            rows.append((line_no, JsonlRow.model_validate(raw)))
        except ValidationError as exc:
            raise TaskDataError(f"{file}:{line_no}: {describe_validation_error(exc)}") from exc
    if not rows:
        raise TaskDataError(f"{file}: no items")

    default_type = answer_type or _infer_answer_type(
        [r for _, r in rows if r.answer_type is None] or [r for _, r in rows]
    )
    items: list[TaskItem] = []
    seen: dict[str, int] = {}
    for index, (line_no, row) in enumerate(rows):
        where = f"{file}:{line_no}"
        item_type = row.answer_type or default_type
        choices = tuple(c.strip() for c in row.choices) if row.choices else None
        if item_type == "choice" and not choices:
            raise TaskDataError(f"{where}: field 'choices' is required for choice answers")
        item_id = str(row.id) if row.id not in (None, "") else f"{task_name}/{index}"
        if item_id in seen:
            raise TaskDataError(
                f"{where}: field 'id' = {item_id!r} repeats the id of line {seen[item_id]}"
            )
        seen[item_id] = line_no
        metadata = {**(row.metadata or {}), **(row.model_extra or {})}
        items.append(
            TaskItem(
                id=item_id,
                question=format_choices(row.question, choices) if choices else row.question,
                gold=canonical_gold(row.answer, item_type, where, choices=choices),
                answer_type=item_type,
                choices=choices,
                metadata=metadata,
            )
        )
    types = {item.answer_type for item in items}
    if len(types) > 1:
        raise TaskDataError(
            f"{file}: field 'answer_type' mixes {sorted(types)}; a task has one answer type "
            "(put each type in its own file)"
        )
    task_type = types.pop()
    return Task(
        name=task_name,
        source=f"file:{file.resolve()}",
        items=tuple(items),
        answer_type=task_type,
        instruction=instruction or instruction_for(task_type),
        params={"path": str(file), "limit": limit},
    )
