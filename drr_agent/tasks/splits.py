"""Deterministic train / dev / test splits of a task, by question, saved beside the data.

The evaluation protocol has three parts, and every number the project reports depends on
keeping them apart:

- **train**: the Reasoner's traces on these questions are labelled and train the DM;
- **dev**: every choice — the DM's thresholds and early stopping, budgets, label kind,
  candidates per step, blend weights — is made on these questions;
- **test**: reported, never used to choose anything.

`split_task` groups items by their *normalised question* (`question_key`: case and runs of
whitespace ignored), sorts the groups and shuffles them with ``random.Random(seed)``, so the
same items and seed always give the same split whatever order the loader returned them in,
and a question asked twice (generated tasks repeat questions: 200 ``basic_arithmetic`` items
hold only ~140 distinct ones) is never on two sides. A `TaskSplit` records the ids of the
three parts and a fingerprint of them, so two runs can tell cheaply whether they used the same
split. ``held_out`` is the old name of the test part and is still accepted everywhere (files
written before the dev part existed load with an empty dev part).
"""

from __future__ import annotations

import hashlib
import itertools
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
from drr_agent.tasks.questions import question_fingerprint, question_hash, question_key

__all__ = [
    "PARTS",
    "GroupBy",
    "SplitPart",
    "TaskSplit",
    "check_no_leak",
    "question_fingerprint",
    "question_hash",
    "question_key",
    "resolve_part",
    "split_fingerprint",
    "split_task",
]

SplitPart = Literal["train", "dev", "test", "held_out"]
"""A part of a split; ``held_out`` is the legacy name of ``test``."""
PARTS: tuple[str, ...] = ("train", "dev", "test")
GroupBy = Literal["question", "id"]


def resolve_part(part: str) -> Literal["train", "dev", "test"]:
    """The canonical name of a part (``held_out`` -> ``test``); `ValueError` for others."""
    if part == "held_out":
        return "test"
    if part not in PARTS:
        raise ValueError(f"unknown split part {part!r}; expected one of train, dev, test")
    return part  # type: ignore[return-value]


def check_no_leak(*parts: tuple[str, Iterable[str]]) -> None:
    """Raise `SplitLeakError` if any id is in two of the named parts (lists a few)."""
    named = [(name, set(ids)) for name, ids in parts]
    for (first, a), (second, b) in itertools.combinations(named, 2):
        both = sorted(a & b)
        if both:
            shown = ", ".join(repr(x) for x in both[:5]) + (", ..." if len(both) > 5 else "")
            raise SplitLeakError(
                f"{len(both)} item id(s) are in both the {first} and the {second} part: {shown}"
            )


def split_fingerprint(
    train_ids: Iterable[str], test_ids: Iterable[str], dev_ids: Iterable[str] = ()
) -> str:
    """A short hash of which ids are in which part (independent of their order).

    Without a dev part the hash is the one two-part splits always had, so old split files
    keep their fingerprint.
    """
    data: dict[str, list[str]] = {"held_out": sorted(test_ids), "train": sorted(train_ids)}
    dev = sorted(dev_ids)
    if dev:
        data["dev"] = dev
    return hashlib.sha256(json.dumps(data, sort_keys=bool(dev)).encode()).hexdigest()[:16]


class TaskSplit(BaseModel):
    """Which items of a task train the DM, which choose settings, which are reported.

    Attributes:
        task: Name of the task the ids belong to (`Task.name`).
        seed: Seed of the shuffle that made the split.
        group_by: ``"question"`` (items with the same normalised question were kept in one
            part) or ``"id"`` (every item on its own: only for tasks without repeats).
        train_ids / dev_ids / test_ids: Ids of each part, sorted. ``held_out_ids`` (the
            old name of ``test_ids``) is accepted on input.
        fingerprint: `split_fingerprint` of the parts; computed when omitted, checked when
            given (a hand-edited file is caught on load).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    seed: int
    group_by: GroupBy = "question"
    train_ids: tuple[str, ...]
    dev_ids: tuple[str, ...] = ()
    test_ids: tuple[str, ...]
    fingerprint: str

    @model_validator(mode="before")
    @classmethod
    def _legacy_and_fingerprint(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "held_out_ids" in data:
            if "test_ids" in data:
                raise ValueError("give test_ids or its old name held_out_ids, not both")
            data["test_ids"] = data.pop("held_out_ids")
        if not data.get("fingerprint"):
            data["fingerprint"] = split_fingerprint(
                data.get("train_ids") or (), data.get("test_ids") or (), data.get("dev_ids") or ()
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> TaskSplit:
        named = (("train", self.train_ids), ("dev", self.dev_ids), ("test", self.test_ids))
        for name, ids in named:
            if len(set(ids)) != len(ids):
                raise ValueError(f"{name}_ids lists an id more than once")
        check_no_leak(*named)
        expected = split_fingerprint(self.train_ids, self.test_ids, self.dev_ids)
        if self.fingerprint != expected:
            raise ValueError(
                f"fingerprint {self.fingerprint!r} does not match the ids (expected "
                f"{expected!r}): the ids were edited after the split was made"
            )
        return self

    @property
    def held_out_ids(self) -> tuple[str, ...]:
        """The test part under its old name."""
        return self.test_ids

    def ids(self, part: str) -> tuple[str, ...]:
        """The ids of one part (``held_out`` = ``test``)."""
        return {"train": self.train_ids, "dev": self.dev_ids, "test": self.test_ids}[
            resolve_part(part)
        ]

    def part_of(self, item_id: str) -> str | None:
        """Which part an id is in (``None``: in none)."""
        for part in PARTS:
            if item_id in self.ids(part):
                return part
        return None

    def items(self, task: Task, part: str) -> tuple[TaskItem, ...]:
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

    def subtask(self, task: Task, part: str) -> Task:
        """``task`` restricted to one part (same name, instruction and answer type)."""
        canonical = resolve_part(part)
        params = {**task.params, "split_part": canonical, "split_fingerprint": self.fingerprint}
        return task.model_copy(update={"items": self.items(task, part), "params": params})

    def counts(self) -> dict[str, int]:
        """Items per part."""
        return {part: len(self.ids(part)) for part in PARTS}

    def save(self, path: str | Path) -> Path:
        """Write the split as JSON (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TaskSplit:
        """Read a split written by `save` (or by a version without a dev part).

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


def _count(amount: int | float, n: int, what: str, task: str) -> int:
    """An amount of items: an ``int`` count (0..n) or a ``float`` fraction (rounded half up)."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise TypeError(f"{what} must be an int count or a float fraction, not {amount!r}")
    if isinstance(amount, float):
        if not 0.0 <= amount <= 1.0:
            raise ValueError(f"{what} fraction must be in [0, 1], got {amount}")
        return math.floor(n * amount + 0.5)
    if not 0 <= amount <= n:
        raise ValueError(f"{what} count must be in [0, {n}] for task {task!r}")
    return amount


def split_task(
    task: Task,
    test: int | float,
    seed: int,
    *,
    dev: int | float = 0,
    group_by: GroupBy = "question",
) -> TaskSplit:
    """Split ``task`` into train, dev and test items, deterministically and by question.

    Args:
        task: The task to split (its item ids must be unique).
        test: How many items to report on: an ``int`` is a count, a ``float`` in [0, 1] a
            fraction of the items (rounded half up).
        seed: Seed of the shuffle. Ids are sorted before shuffling, so the split depends
            only on the set of ids (and questions) and the seed.
        dev: How many items to choose settings on (count or fraction, as ``test``); they
            are taken after the test part, from the same shuffled order.
        group_by: ``"question"`` (default) keeps items whose normalised question is the same
            in one part; a part then gets at most the asked number of items, fewer only when
            a repeated question does not fit. ``"id"`` treats every item on its own.
    """
    ids = [item.id for item in task.items]
    if len(set(ids)) != len(ids):
        dupes = sorted(i for i, k in Counter(ids).items() if k > 1)
        raise ValueError(f"task {task.name!r} has duplicate item ids: {dupes[:5]}")
    n = len(ids)
    n_test = _count(test, n, "test", task.name)
    n_dev = _count(dev, n, "dev", task.name)
    if n_test + n_dev > n:
        raise ValueError(
            f"test ({n_test}) + dev ({n_dev}) items exceed the {n} items of task {task.name!r}"
        )
    if group_by not in ("question", "id"):
        raise ValueError(f"group_by must be 'question' or 'id', not {group_by!r}")

    # groups of ids, each sorted, listed by their first id: independent of the task's order
    groups: dict[str, list[str]] = {}
    for item in sorted(task.items, key=lambda it: it.id):
        key = question_key(item.question) if group_by == "question" else item.id
        groups.setdefault(key, []).append(item.id)
    order = sorted(groups.values())
    random.Random(seed).shuffle(order)
    test_part: list[str] = []
    dev_part: list[str] = []
    train: list[str] = []
    for group in order:
        if len(test_part) + len(group) <= n_test:
            test_part.extend(group)
        elif len(dev_part) + len(group) <= n_dev:
            dev_part.extend(group)
        else:
            train.extend(group)
    return TaskSplit(
        task=task.name,
        seed=seed,
        group_by=group_by,
        train_ids=tuple(sorted(train)),
        dev_ids=tuple(sorted(dev_part)),
        test_ids=tuple(sorted(test_part)),
        fingerprint="",
    )
