"""StrategyQA (2290 yes/no questions whose reasoning steps are implicit) in BIG-bench format.

Sources, in order: ``path=`` (any BIG-bench ``task.json``), the installed ``bigbench``
package (``benchmark_tasks/strategyqa/task.json``), the copy next to this repository that its
tests use (``../shared/data/strategyqa/task.json``); or the Hugging Face Hub with
``source="hub"`` (default ``ChilleD/StrategyQA`` split ``test``; fields ``question``,
``answer`` and ``qid``). BIG-bench items get ids ``strategyqa/<index>``, Hub items
``strategyqa/<qid>``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Literal

from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.errors import TaskDataError, TaskSourceMissingError
from drr_agent.tasks.instructions import instruction_for
from drr_agent.tasks.sources._common import (
    canonical_gold,
    check_limit,
    load_hub_rows,
    shared_data_file,
    take,
)

__all__ = ["default_task_json", "load_bigbench_yes_no", "load_strategyqa"]

_RELATIVE = "strategyqa/task.json"


def default_task_json() -> Path:
    """Where StrategyQA's ``task.json`` is found without ``path=`` (or an error saying how)."""
    try:
        spec = importlib.util.find_spec("bigbench")
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "benchmark_tasks" / _RELATIVE
        if candidate.is_file():
            return candidate
    candidate = shared_data_file(_RELATIVE)
    if candidate.is_file():
        return candidate
    raise TaskSourceMissingError(
        "StrategyQA's task.json was not found: pass path= to a BIG-bench "
        "benchmark_tasks/strategyqa/task.json (it ships in the `bigbench` sdist on PyPI: "
        "pip download --no-deps --no-binary :all: bigbench), or use source='hub'"
    )


def load_bigbench_yes_no(file: Path, *, task_name: str, limit: int | None) -> list[TaskItem]:
    """Items of a BIG-bench ``task.json`` whose ``target_scores`` are Yes/No (one of them 1)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TaskDataError(f"{file}: not valid JSON: {exc}") from exc
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list):
        raise TaskDataError(f"{file}: field 'examples' (a list) is missing")
    items = []
    for index, example in enumerate(take(examples, limit)):
        where = f"{file} examples[{index}]"
        if not isinstance(example, dict):
            raise TaskDataError(f"{where}: an example must be a JSON object")
        question = example.get("input")
        if not isinstance(question, str) or not question.strip():
            raise TaskDataError(f"{where}: field 'input' is missing or empty")
        scores = example.get("target_scores")
        if (
            not isinstance(scores, dict)
            or set(scores) != {"Yes", "No"}
            or (sorted(scores.values()) != [0, 1])
        ):
            raise TaskDataError(
                f"{where}: field 'target_scores' must be {{'Yes': 0/1, 'No': 0/1}} with one 1"
            )
        gold = "yes" if scores["Yes"] == 1 else "no"
        metadata: dict[str, Any] = {"index": index}
        if isinstance(example.get("target"), str):
            metadata["rationale"] = example["target"]
        items.append(
            TaskItem(
                id=f"{task_name}/{index}",
                question=question.strip(),
                gold=gold,
                answer_type="boolean",
                metadata=metadata,
            )
        )
    return items


def load_strategyqa(
    *,
    limit: int | None = None,
    seed: int = 0,
    path: str | Path | None = None,
    source: Literal["bigbench", "hub"] = "bigbench",
    hub_id: str = "ChilleD/StrategyQA",
    split: str = "test",
) -> Task:
    """StrategyQA; the first ``limit`` items in file order (``seed`` is not used).

    Args:
        path: A BIG-bench ``task.json``; default: see `default_task_json`.
        source: ``"bigbench"`` (a task.json, default) or ``"hub"``.
        hub_id, split: What to load from the Hub with ``source="hub"``.
    """
    limit = check_limit(limit)
    if source == "bigbench":
        file = Path(path) if path is not None else default_task_json()
        if not file.is_file():
            raise TaskSourceMissingError(f"{file}: no such file")
        items = load_bigbench_yes_no(file, task_name="strategyqa", limit=limit)
        origin = f"bigbench:{file.resolve()}"
        params: dict[str, Any] = {"source": source, "path": str(file)}
    elif source == "hub":
        if path is not None:
            raise ValueError("strategyqa with source='hub' takes hub_id=, not path=")
        items = []
        rows = load_hub_rows("strategyqa", hub_id, split=split)
        for index, row in enumerate(take(rows, limit)):
            where = f"{hub_id}[{split}][{index}]"
            question = row.get("question")
            if not isinstance(question, str) or not question.strip():
                raise TaskDataError(f"{where}: field 'question' is missing or empty")
            qid = row.get("qid")
            metadata = {k: row[k] for k in ("facts", "term", "description") if k in row}
            items.append(
                TaskItem(
                    id=f"strategyqa/{qid if qid else index}",
                    question=question.strip(),
                    gold=canonical_gold(row.get("answer"), "boolean", where),
                    answer_type="boolean",
                    metadata=metadata,
                )
            )
        origin = f"hub:{hub_id}/{split}"
        params = {"source": source, "hub_id": hub_id, "split": split}
    else:
        raise ValueError(f"strategyqa source must be 'bigbench' or 'hub', not {source!r}")
    return Task(
        name="strategyqa",
        source=origin,
        items=tuple(items),
        answer_type="boolean",
        instruction=instruction_for("boolean"),
        params={**params, "limit": limit},
    )
