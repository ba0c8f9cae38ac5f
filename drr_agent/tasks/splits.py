"""Deterministic train / held-out splits of a task, saved as JSON next to the data they split.

The DM is trained on traces of the *train* items; its thresholds are picked and the method is
evaluated on the *held-out* items, so no item may be in both. `split_task` sorts the item ids
and shuffles them with ``random.Random(seed)``: the same ids and seed always give the same
split, whatever order the loader returned the items in. By default items with the same
question text stay in the same part: generated tasks repeat questions (200 ``basic_arithmetic``
items hold only ~140 distinct ones), and a question seen in training is no held-out question.
A `TaskSplit` records the ids of both parts and a fingerprint of them, so two runs can tell
cheaply whether they used the same split.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from drr_agent.errors import describe_validation_error
from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.errors import SplitLeakError, TaskDataError

__all__ = ["GroupBy", "SplitPart", "TaskSplit", "check_no_leak", "split_fingerprint", "split_task"]

SplitPart = Literal["train", "held_out"]
GroupBy = Literal["question", "id"]


def check_no_leak(train_ids: Iterable[str], held_out_ids: Iterable[str]) -> None:
    """Raise `SplitLeakError` if any id is in both parts (the error lists a few of them)."""
    both = sorted(set(train_ids) & set(held_out_ids))
    if both:
        shown = ", ".join(repr(i) for i in both[:5]) + (", ..." if len(both) > 5 else "")
        raise SplitLeakError(
            f"{len(both)} item id(s) are in both the train and the held-out part: {shown}"
        )


def split_fingerprint(train_ids: Iterable[str], held_out_ids: Iterable[str]) -> str:
    """A short hash of which ids are in which part (independent of their order)."""
    payload = json.dumps({"held_out": sorted(held_out_ids), "train": sorted(train_ids)})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class TaskSplit(BaseModel):
    """Which items of a task are for training and which are held out.

    Attributes:
        task: Name of the task the ids belong to (`Task.name`).
        seed: Seed of the shuffle that made the split.
        group_by: ``"question"`` (items with the same question text were kept in one part)
            or ``"id"`` (every item on its own).
        train_ids: Ids of the training items, sorted.
        held_out_ids: Ids of the held-out items, sorted.
        fingerprint: `split_fingerprint` of the two parts; computed when omitted, checked
            when given (a hand-edited file is caught on load).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    seed: int
    group_by: GroupBy = "question"
    train_ids: tuple[str, ...]
    held_out_ids: tuple[str, ...]
    fingerprint: str

    @model_validator(mode="before")
    @classmethod
    def _fill_fingerprint(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("fingerprint"):
            data = dict(data)
            data["fingerprint"] = split_fingerprint(
                data.get("train_ids") or (), data.get("held_out_ids") or ()
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> TaskSplit:
        for name, ids in (("train_ids", self.train_ids), ("held_out_ids", self.held_out_ids)):
            if len(set(ids)) != len(ids):
                raise ValueError(f"{name} lists an id more than once")
        check_no_leak(self.train_ids, self.held_out_ids)
        expected = split_fingerprint(self.train_ids, self.held_out_ids)
        if self.fingerprint != expected:
            raise ValueError(
                f"fingerprint {self.fingerprint!r} does not match the ids (expected "
                f"{expected!r}): the ids were edited after the split was made"
            )
        return self

    def ids(self, part: SplitPart) -> tuple[str, ...]:
        """The ids of one part."""
        if part == "train":
            return self.train_ids
        if part == "held_out":
            return self.held_out_ids
        raise ValueError(f"unknown split part {part!r}; expected 'train' or 'held_out'")

    def items(self, task: Task, part: SplitPart) -> tuple[TaskItem, ...]:
        """The items of ``task`` in one part, in the task's order.

        Raises:
            ValueError: ``task`` is not the task this split was made for, or lacks some of the
                split's ids (e.g. it was loaded with another ``limit`` or generator seed).
        """
        if task.name != self.task:
            raise ValueError(f"this split is for task {self.task!r}, not {task.name!r}")
        wanted = set(self.ids(part))
        items = tuple(item for item in task.items if item.id in wanted)
        if len(items) != len(wanted):
            missing = sorted(wanted - {item.id for item in items})
            raise ValueError(
                f"task {task.name!r} lacks {len(missing)} id(s) of the {part} part "
                f"(first: {missing[0]!r}); was it loaded with another limit, seed or file?"
            )
        return items

    def subtask(self, task: Task, part: SplitPart) -> Task:
        """``task`` restricted to one part (same name, instruction and answer type)."""
        params = {**task.params, "split_part": part, "split_fingerprint": self.fingerprint}
        return task.model_copy(update={"items": self.items(task, part), "params": params})

    def save(self, path: str | Path) -> Path:
        """Write the split as JSON (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TaskSplit:
        """Read a split written by `save`.

        Raises:
            TaskDataError: The file is not valid JSON or not a valid split (the message names
                the file and the field).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{path}: not valid JSON: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            details = describe_validation_error(exc)
            raise TaskDataError(f"{path}: not a valid task split: {details}") from exc


def _question_key(question: str) -> str:
    return " ".join(question.split()).casefold()


def split_task(
    task: Task, held_out: int | float, seed: int, *, group_by: GroupBy = "question"
) -> TaskSplit:
    """Split ``task`` into train and held-out items, deterministically.

    Args:
        task: The task to split (its item ids must be unique).
        held_out: How many items to hold out: an ``int`` is a count (0 to all items), a
            ``float`` in [0, 1] a fraction of the items (rounded half up).
        seed: Seed of the shuffle. Ids are sorted before shuffling, so the split depends
            only on the set of ids (and questions) and the seed.
        group_by: ``"question"`` (default) keeps items whose question text is the same
            (ignoring case and spacing) in one part; the held-out part then gets at most
            ``held_out`` items, fewer only when a repeated question does not fit. ``"id"``
            treats every item on its own and holds out exactly ``held_out`` items.
    """
    ids = [item.id for item in task.items]
    if len(set(ids)) != len(ids):
        dupes = sorted(i for i, k in Counter(ids).items() if k > 1)
        raise ValueError(f"task {task.name!r} has duplicate item ids: {dupes[:5]}")
    n = len(ids)
    if isinstance(held_out, bool) or not isinstance(held_out, int | float):
        raise TypeError(f"held_out must be an int count or a float fraction, not {held_out!r}")
    if isinstance(held_out, float):
        if not 0.0 <= held_out <= 1.0:
            raise ValueError(f"held_out fraction must be in [0, 1], got {held_out}")
        count = math.floor(n * held_out + 0.5)
    else:
        if not 0 <= held_out <= n:
            raise ValueError(f"held_out count must be in [0, {n}] for task {task.name!r}")
        count = held_out
    if group_by not in ("question", "id"):
        raise ValueError(f"group_by must be 'question' or 'id', not {group_by!r}")

    # groups of ids, each sorted, listed by their first id: independent of the task's order
    groups: dict[str, list[str]] = {}
    for item in sorted(task.items, key=lambda it: it.id):
        key = _question_key(item.question) if group_by == "question" else item.id
        groups.setdefault(key, []).append(item.id)
    order = sorted(groups.values())
    random.Random(seed).shuffle(order)
    held: list[str] = []
    train: list[str] = []
    for group in order:
        if len(held) + len(group) <= count:
            held.extend(group)
        else:
            train.extend(group)
    return TaskSplit(
        task=task.name,
        seed=seed,
        group_by=group_by,
        train_ids=tuple(sorted(train)),
        held_out_ids=tuple(sorted(held)),
        fingerprint="",
    )
