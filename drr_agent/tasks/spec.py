"""`TaskSpec`: everything needed to load the same task again, saved next to the data.

A trace file is only meaningful with the exact task it was sampled on (generator seed and
parameters included). ``drr traces`` writes the spec beside its output and later steps
(``drr labels``, ``drr train``, evaluations) reload the task from it instead of asking the
user to repeat every option.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drr_agent.errors import describe_validation_error
from drr_agent.tasks.base import Task
from drr_agent.tasks.errors import TaskDataError


class TaskSpec(BaseModel):
    """Arguments of `drr_agent.tasks.load_task`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    limit: int | None = None
    seed: int = 0
    path: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    distinct: bool = False
    """Keep each normalised question once (`Task.distinct`), after generating ``limit``."""

    def load(self) -> Task:
        from drr_agent.tasks import load_task

        task = load_task(self.name, limit=self.limit, seed=self.seed, path=self.path, **self.params)
        return task.distinct() if self.distinct else task

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> TaskSpec:
        path = Path(path)
        if not path.is_file():
            raise TaskDataError(f"{path}: no task spec (written by `drr traces` beside its output)")
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{path}: not a valid task spec: {exc}") from exc
        except ValidationError as exc:  # one line, naming the fields
            details = describe_validation_error(exc)
            raise TaskDataError(f"{path}: not a valid task spec: {details}") from exc
