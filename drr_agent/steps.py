"""Step segmentation and final-answer extraction.

The Reasoner writes free text; DRR needs it as a sequence of *steps* (one thought node each)
and needs to know when a step carries a final answer. Both rules live here, in one
configurable `StepFormat`, so the graph, trace sampling and evaluations cut text the same way.

Two ways of writing steps are common, and each Reasoner keeps its own (`Reasoner.step_format`):

- **lines** (`StepFormat()`): one step per line, what a small model asked to "write one
  reasoning step per line" does (the embedded SmolLM2-135M).
- **blocks** (`BLOCK_STEPS`): a step is a paragraph, as instruct models write — a numbered item
  with its explanation and its display maths, a "Step 2:" section. Pieces that cannot stand
  alone are joined to what follows: a heading or a lead-in ending with a colon, a display
  (``\\[ … \\]``, ``$$ … $$``, ``\\begin … \\end``) or code fence left open, a piece shorter
  than ``min_step_chars``. Cut by lines instead, a LaTeX display is two "steps" (``\\[``,
  then the formula) and a heading is one, and the step budget runs out mid-solution.

The task decides what an answer is: its patterns (``#### 42``, ``\\boxed{42}``, "The answer
is B") and, for numeric tasks, that an answer states a value (``numeric_answer``,
`numeric_refusal`), so "the same as the first train" and "2 - 7" are refused rather than taken
for answers (the checker would read the last number of the expression, 7).
"""

from __future__ import annotations

import logging
import re
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

_log = logging.getLogger(__name__)

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
_DIGIT = re.compile(r"\d")
_NUMBER = r"\(*[-−+]?\$?\d[\d.,]*%?\)*"
_OPERATOR = r"\s*(?:[-−+*/×÷^·]|\\times|\\cdot|\\div)\s*"
_EXPRESSION = re.compile(rf"{_NUMBER}(?:{_OPERATOR}{_NUMBER})+")
_FRACTION = re.compile(r"[-−]?\d+/\d+")


def numeric_refusal(answer: str) -> str | None:
    """Why ``answer`` is no answer to a numeric question (``None``: it is one).

    It must hold a number, and not be an arithmetic expression left unevaluated: ``2 - 7``
    and ``(3 + 4) \\times 2`` are refused, while ``-5``, ``2 - 7 = -5``, ``$1,000``, ``1/3``
    and ``12 apples`` stand — the answer checker takes an answer's *last* number, so an
    expression would be graded as its last operand.
    """
    if not _DIGIT.search(answer):
        return f"the final answer {answer!r} holds no number"
    text = answer.strip()
    if _EXPRESSION.fullmatch(text) and not _FRACTION.fullmatch(text):
        return f"the final answer {answer!r} is an expression, not its value"
    return None


_HEADING = re.compile(r"^(?:#{1,6}\s.*|\*\*[^*]+\*\*:?|__[^_]+__:?|.*:)$")
_OPENERS_CLOSERS = ((r"\[", r"\]"), (r"\begin{", r"\end{"))
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
            a step, so the DM and the rejected-alternatives list see the content only. Off
            for block steps: a numbered item keeps its number, so the Reasoner, reading its
            accepted steps back, numbers the next one.
        join_fragments: Join a piece that cannot stand alone to what follows (a heading, a
            lead-in ending with a colon, an open display or code fence, a piece shorter than
            ``min_step_chars``; see the module). The Reasoner, stopped at the separator inside
            such a piece, is asked to continue it (`Reasoner.apropose`), so one step is one
            whole thought.
        min_step_chars: With ``join_fragments``, a piece shorter than this (that carries no
            final answer) is joined to the next.
        numeric_answer: A final answer must state a value (`numeric_refusal`): a marker
            followed by words only ("The answer is the same as before") or by an expression
            ("2 - 7") is no answer. Tasks with numeric gold set it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    separator: str = "\n"
    answer_patterns: tuple[str, ...] = Field(default=DEFAULT_ANSWER_PATTERNS, min_length=1)
    strip_numbering: bool = True
    join_fragments: bool = False
    min_step_chars: int = Field(default=0, ge=0)
    numeric_answer: bool = False

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

    def is_fragment(self, piece: str) -> bool:
        """Whether ``piece`` (text up to a separator) cannot stand as a step on its own and
        joins what follows: only with ``join_fragments`` (see the module)."""
        if not self.join_fragments:
            return False
        text = piece.strip()
        if not text:
            return False
        if _open_block(text):
            return True
        if self.extract_answer(text) is not None:
            return False
        last = text.rsplit("\n", 1)[-1].strip()
        return len(text) < self.min_step_chars or bool(_HEADING.match(last))

    def split(self, text: str) -> list[str]:
        """Split a whole reasoning trace into cleaned, non-empty steps."""
        pieces: list[str] = []
        current = ""
        for part in text.split(self.separator):
            current = current + self.separator + part if current else part
            if not self.is_fragment(current):
                pieces.append(current)
                current = ""
        if current:
            pieces.append(current)
        return [s for s in (self.clean(piece) for piece in pieces) if s]

    def first_step(self, text: str) -> str:
        """The first non-empty step of a completion (a Reasoner may run past the separator)."""
        steps = self.split(text)
        return steps[0] if steps else ""

    def extract_answer(self, step: str) -> str | None:
        """The final answer a step carries, or ``None`` if it carries none."""
        for pattern in self._compiled:
            match = self._search(pattern, step)
            if match is None:
                continue
            groups = match.groupdict()
            raw = groups.get("answer") if "answer" in groups else match.group(1)
            answer = (raw or "").strip().strip(_TRAILING_PUNCT).strip()
            if answer and (not self.numeric_answer or numeric_refusal(answer) is None):
                return answer
        return None

    def _search(self, pattern: Any, step: str) -> Any:
        return pattern.search(step)

    def segmented_as(self, other: StepFormat) -> StepFormat:
        """These answer rules with ``other``'s segmentation (separator, numbering, joins):
        a task's answer format, cut the way a Reasoner writes."""
        fields = ("separator", "strip_numbering", "join_fragments", "min_step_chars")
        return self.model_copy(update={f: getattr(other, f) for f in fields})


class GuardedStepFormat(StepFormat):
    """A `StepFormat` whose answer patterns came from an untrusted caller (a LangGraph server's
    client, through the run's context; `drr_agent.config.ContextCaps`).

    A regular expression can take exponential time on a crafted text (``(a+)+$`` on
    ``"aaaa…!"``), and the patterns run on the server's event loop. Here they are compiled by
    the `regex` package and every search is limited to ``timeout_s`` seconds; a search that
    runs out counts as no match (logged), so a hostile pattern costs at most that per step.
    """

    _timeout_s: float = PrivateAttr(default=0.05)

    @classmethod
    def guarding(cls, fmt: StepFormat, timeout_s: float) -> GuardedStepFormat:
        """``fmt``'s rules, its patterns searched within ``timeout_s`` seconds each."""
        guarded = cls(**{name: getattr(fmt, name) for name in StepFormat.model_fields})
        guarded._timeout_s = timeout_s
        guarded._compiled  # noqa: B018 - compile now: a pattern `regex` refuses fails here
        return guarded

    @cached_property
    def _compiled(self) -> tuple[Any, ...]:
        import regex

        compiled = []
        for i, pattern in enumerate(self.answer_patterns):
            try:
                compiled.append(regex.compile(pattern, regex.MULTILINE | regex.VERSION0))
            except regex.error as exc:
                raise ValueError(f"answer_patterns[{i}] is not a valid regex: {exc}") from exc
        return tuple(compiled)

    def _search(self, pattern: Any, step: str) -> Any:
        try:
            return pattern.search(step, timeout=self._timeout_s)
        except TimeoutError:
            _log.warning(
                "answer pattern %r ran past %.3g s on a %d-character step: taken as no match",
                pattern.pattern,
                self._timeout_s,
                len(step),
            )
            return None


def _open_block(text: str) -> bool:
    """A display, environment or code fence opened in ``text`` and not closed."""
    if text.count("```") % 2 or text.count("$$") % 2:
        return True
    return any(text.count(opener) > text.count(closer) for opener, closer in _OPENERS_CLOSERS)


BLOCK_STEPS = StepFormat(
    separator="\n\n", strip_numbering=False, join_fragments=True, min_step_chars=24
)
"""Paragraph steps, the way instruct models write (the embedded Qwen2.5-Coder-0.5B-Instruct,
and the default for a Reasoner served over an OpenAI-compatible API). ``min_step_chars``
joins a stray lead-in ("Let's start:") to its step; measured on dev (see
``docs/benchmarks.md``)."""
