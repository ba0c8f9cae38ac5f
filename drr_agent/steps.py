"""Step segmentation and final-answer extraction.

The Reasoner writes free text; DRR needs it as a sequence of *steps* (one thought node each)
and needs to know when a step carries a final answer. Both rules live here, in one
configurable `StepFormat`, so the graph, trace sampling and evaluations cut text the same way.
Tasks with another answer convention (``#### 42``, ``\\boxed{42}``, "The answer is B") pass
their own patterns.
"""

from __future__ import annotations

import re
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_ANSWER_PATTERNS = (
    # \boxed{X} first: maths models write "The answer is $\boxed{42}$" and mean 42
    r"\\boxed\{(?P<answer>[^{}]+)\}",
    # "Answer: X" only as a line's marker, so "to find the answer: add 5" is not an answer
    r"(?i)^\W*(?:final\s+)?answer\W*\s*(?:is\s*)?[:=]\s*(?P<answer>.+?)\s*$",
    r"(?i)\bthe (?:final )?answer is\s*[:=]?\s*(?P<answer>.+?)\s*$",
    # "11 is the answer." / "(B) is the correct answer": a line that names a number, a choice
    # or yes/no first (small models write this); "This is the answer." is not an answer
    r"(?i)^[^\w(+$-]*(?:so,?\s+)?(?P<answer>[-+$]?\d[\d.,/]*|\(?[a-e]\)|yes|no)"
    r"\s+is the (?:final |correct )?answer\W*$",
    r"^####\s*(?P<answer>.+?)\s*$",
)

_TRAILING_PUNCT = " .,;:!*\"'`$"
_LEADING_NUMBERING = re.compile(r"^\s*(?:step\s*\d+\s*[:.)-]|\d+\s*[.)]|[-*•])\s+", re.IGNORECASE)


class StepFormat(BaseModel):
    """Rules that turn Reasoner text into steps and steps into answers.

    Attributes:
        separator: Text between two steps. The Reasoner is stopped at it, so one call yields
            one step. Default: a newline (one step per line).
        answer_patterns: Regular expressions tried in order on each step; the first match's
            ``answer`` group (or group 1) is the final answer. Multi-line patterns are matched
            per line.
        strip_numbering: Remove list markers such as "1.", "Step 2:" or "-" from the start of
            a step, so the DM and the rejected-alternatives list see the content only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    separator: str = "\n"
    answer_patterns: tuple[str, ...] = Field(default=DEFAULT_ANSWER_PATTERNS, min_length=1)
    strip_numbering: bool = True

    @field_validator("separator")
    @classmethod
    def _separator_not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("separator must be a non-empty string")
        return value

    @field_validator("answer_patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, pattern in enumerate(value):
            try:
                compiled = re.compile(pattern, re.MULTILINE)
            except re.error as exc:
                raise ValueError(f"answer_patterns[{i}] is not a valid regex: {exc}") from exc
            if compiled.groups == 0:
                raise ValueError(f"answer_patterns[{i}] needs a capture group for the answer")
        return value

    @cached_property
    def _compiled(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, re.MULTILINE) for p in self.answer_patterns)

    def clean(self, step: str) -> str:
        """Normalise one step: trim whitespace and (optionally) list numbering."""
        step = step.strip()
        if self.strip_numbering:
            step = _LEADING_NUMBERING.sub("", step, count=1).strip()
        return step

    def split(self, text: str) -> list[str]:
        """Split a whole reasoning trace into cleaned, non-empty steps."""
        return [s for s in (self.clean(part) for part in text.split(self.separator)) if s]

    def first_step(self, text: str) -> str:
        """The first non-empty step of a completion (a Reasoner may run past the separator)."""
        steps = self.split(text)
        return steps[0] if steps else ""

    def extract_answer(self, step: str) -> str | None:
        """The final answer a step carries, or ``None`` if it carries none."""
        for pattern in self._compiled:
            match = pattern.search(step)
            if match is None:
                continue
            groups = match.groupdict()
            raw = groups.get("answer") if "answer" in groups else match.group(1)
            answer = (raw or "").strip().strip(_TRAILING_PUNCT).strip()
            if answer:
                return answer
        return None
