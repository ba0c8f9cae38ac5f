"""SVAMP (arithmetic word problems with simple variations); numeric gold answers.

No installable package ships SVAMP, so it comes from a local file (``path=``: the original
``SVAMP.json`` list, or JSON Lines, with fields ``Body``, ``Question``, ``Answer`` and
optional ``ID``) or from the Hugging Face Hub (``source="hub"``, default ``ChilleD/SVAMP``
split ``test``; same fields). The question is ``Body`` and ``Question`` joined by a space,
as in the dataset's own ``question_concat``. Ids: ``svamp/<ID>`` (``svamp/<index>`` without).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drr_agent.errors import describe_validation_error
from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.errors import TaskDataError, TaskSourceMissingError
from drr_agent.tasks.instructions import instruction_for
from drr_agent.tasks.sources._common import (
    canonical_gold,
    check_limit,
    load_hub_rows,
    take,
)

__all__ = ["SvampRow", "load_svamp"]


class SvampRow(BaseModel):
    """One SVAMP problem as the dataset writes it (other fields are kept as metadata)."""

    model_config = ConfigDict(extra="allow")

    ID: str | int | None = None
    Body: str = Field(min_length=1)
    Question: str = Field(min_length=1)
    Answer: float | int | str
    Equation: str | None = None
    Type: str | None = None


def _file_rows(file: Path) -> Iterator[tuple[str, Any]]:
    """(location, raw row) for a JSON list or a JSON Lines file."""
    text = file.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{file}: not valid JSON: {exc}") from exc
        for index, row in enumerate(rows):
            yield f"{file} item {index}", row
        return
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{file}:{line_no}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{file}:{line_no}: not valid JSON: {exc}") from exc


def _item(index: int, raw: Any, where: str) -> TaskItem:
    if not isinstance(raw, dict):
        raise TaskDataError(f"{where}: a row must be a JSON object")
    try:
        row = SvampRow.model_validate(raw)
    except ValidationError as exc:
        raise TaskDataError(f"{where}: {describe_validation_error(exc)}") from exc
    metadata: dict[str, Any] = {"equation": row.Equation, "type": row.Type}
    metadata.update(row.model_extra or {})
    metadata.pop("question_concat", None)
    return TaskItem(
        id=f"svamp/{row.ID if row.ID not in (None, '') else index}",
        question=f"{row.Body.strip()} {row.Question.strip()}",
        gold=canonical_gold(row.Answer, "number", where, field="Answer"),
        answer_type="number",
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def load_svamp(
    *,
    limit: int | None = None,
    seed: int = 0,
    path: str | Path | None = None,
    source: Literal["file", "hub"] | None = None,
    hub_id: str = "ChilleD/SVAMP",
    split: str = "test",
) -> Task:
    """SVAMP; the first ``limit`` items in file order (``seed`` is not used).

    Args:
        path: A local SVAMP file (JSON list or JSON Lines).
        source: ``"file"`` (implied by ``path=``) or ``"hub"``; one of the two is required.
        hub_id, split: What to load from the Hub with ``source="hub"``.
    """
    limit = check_limit(limit)
    source = source or ("file" if path is not None else None)
    items: list[TaskItem] = []
    if source == "file":
        if path is None:
            raise ValueError("svamp with source='file' needs path=")
        file = Path(path)
        if not file.is_file():
            raise TaskSourceMissingError(f"{file}: no such file")
        for index, (where, raw) in enumerate(take(_file_rows(file), limit)):
            items.append(_item(index, raw, where))
        origin = f"file:{file.resolve()}"
        params: dict[str, Any] = {"source": source, "path": str(file)}
    elif source == "hub":
        rows = load_hub_rows("svamp", hub_id, split=split)
        for index, raw in enumerate(take(rows, limit)):
            items.append(_item(index, dict(raw), f"{hub_id}[{split}][{index}]"))
        origin = f"hub:{hub_id}/{split}"
        params = {"source": source, "hub_id": hub_id, "split": split}
    elif source is None:
        raise TaskSourceMissingError(
            "no installable package ships SVAMP: pass path= to a local SVAMP.json / .jsonl "
            "(fields Body, Question, Answer) or source='hub' (needs `datasets` and the Hub)"
        )
    else:
        raise ValueError(f"svamp source must be 'file' or 'hub', not {source!r}")
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise TaskDataError(f"svamp ({origin}): field 'ID' repeats an id")
    return Task(
        name="svamp",
        source=origin,
        items=tuple(items),
        answer_type="number",
        instruction=instruction_for("number"),
        params={**params, "limit": limit},
    )
