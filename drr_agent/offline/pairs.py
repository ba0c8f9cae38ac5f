"""Paired comparisons of steps: does the DM tell right from wrong *at the same point*?

Step AUROC pools steps over questions, so a DM that only learns which questions are hard
(long, many numbers, a tricky wording) scores well without judging a single step: measured,
a MiniLM DM with pooled AUROC 0.75 preferred "8 - 1 = 7" to "8 - 1 = 9" (same question, same
prefix) only 0.56 of the time. The graph never compares steps across questions; it compares
candidates for the *next* step of one question. The metrics here hold question and prefix
fixed, so question difficulty cancels out and 0.5 is chance:

- `sibling_pairs`: candidate steps the Reasoner actually wrote at the same prefix of the same
  question, one labelled good and one bad — the choice the graph faces.
- `minimal_pairs`: a step whose equations all check against the same step with one result
  changed by 1 or 2 ("8 - 1 = 7" / "8 - 1 = 9"), and a final answer "Answer: <gold>" against
  "Answer: <gold ± 1 or 2>" — differences only a step checker can see.
- `pair_accuracy`: how often the better side scores higher (ties count one half).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from drr_agent.offline.records import StepExample
from drr_agent.scorers.base import StepContext
from drr_agent.scorers.rules import EQUATION, check_equations

__all__ = ["DEFAULT_PAIR_LIMIT", "minimal_pairs", "pair_accuracy", "sibling_pairs"]

DEFAULT_PAIR_LIMIT = 500
"""Minimal pairs scored by default (two contexts each): enough for a ±0.05 estimate."""

_DELTAS = (-2, -1, 1, 2)
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _norm(text: str) -> str:
    return " ".join(text.split())


def _sibling_index_pairs(examples: Sequence[StepExample]) -> list[tuple[int, int]]:
    """`sibling_pairs` as ``(better, worse)`` indices into ``examples``."""
    groups: dict[tuple[str, tuple[str, ...]], dict[str, list[int]]] = {}
    for i, e in enumerate(examples):
        prefix = (_norm(e.question).casefold(), tuple(e.previous))
        groups.setdefault(prefix, {}).setdefault(_norm(e.step), []).append(i)
    pairs: list[tuple[int, int]] = []
    for by_text in groups.values():
        good: list[int] = []
        bad: list[int] = []
        for indices in by_text.values():
            labels = {examples[i].hard_label for i in indices}
            if len(labels) == 1:  # a text labelled both ways here is neither better nor worse
                (good if labels == {1} else bad).append(indices[0])
        pairs += [(g, b) for g in good for b in bad]
    return pairs


def sibling_pairs(examples: Sequence[StepExample]) -> list[tuple[StepExample, StepExample]]:
    """``(better, worse)`` candidate steps at the same prefix of the same question.

    Steps are grouped by question (whitespace- and case-normalised) and ``tuple(previous)``;
    within a group every distinct step text labelled good (hard label 1) is paired with every
    distinct one labelled bad. A text that occurs with both labels at one prefix (outcome
    labels of traces that part later) is left out; a repeated text counts once (its first
    occurrence stands for it). Order: groups, then texts, by first occurrence.
    """
    return [(examples[g], examples[b]) for g, b in _sibling_index_pairs(examples)]


def _shift(number: str, delta: int) -> str:
    """``number`` plus ``delta``, written with as many decimals as ``number`` had."""
    return str(Decimal(number) + delta)


def _wrong_equation(step: str, rng: random.Random) -> str | None:
    """``step`` with one checked equation's result moved by ±1 or ±2; ``None`` if it writes
    no equation or any of its equations is already wrong."""
    verdicts = check_equations(step)
    if not verdicts or not all(verdicts):
        return None
    # the equations check_equations judged (it skips those whose left side does not parse)
    checked = [m for m in EQUATION.finditer(step) if check_equations(m.group(0))]
    match = rng.choice(checked)
    start, end = match.span("rhs")
    wrong = step[:start] + _shift(match["rhs"], rng.choice(_DELTAS)) + step[end:]
    verdicts = check_equations(wrong)
    return wrong if len(verdicts) == len(checked) and verdicts.count(False) == 1 else None


def _tagged_minimal_pairs(
    examples: Sequence[StepExample], limit: int | None, seed: int
) -> list[tuple[StepContext, StepContext, bool]]:
    """`minimal_pairs` with a third element: whether the pair is a final-answer pair."""
    seen: set[tuple[StepContext, bool]] = set()
    tagged: list[tuple[StepContext, StepContext, bool]] = []

    def add(right: StepContext, wrong_text: str | None, is_answer: bool) -> None:
        if wrong_text is not None and (right, is_answer) not in seen:
            seen.add((right, is_answer))
            tagged.append((right, StepContext(right.question, right.steps, wrong_text), is_answer))

    for e in examples:
        previous = tuple(e.previous)
        # one generator per context: the same step gets the same wrong twin wherever it occurs
        key = f"{seed}|{e.question}|{'|'.join(previous)}|{e.step}"
        right = e.context
        if (right, False) not in seen:
            add(right, _wrong_equation(e.step, random.Random(key)), False)
        gold = (e.gold or "").strip()
        if e.final and _PLAIN_NUMBER.fullmatch(gold):
            answer = StepContext(e.question, previous, f"Answer: {gold}")
            wrong = f"Answer: {_shift(gold, random.Random(key + '|answer').choice(_DELTAS))}"
            add(answer, wrong, True)
    if limit is not None and len(tagged) > limit:
        kept = sorted(random.Random(seed).sample(range(len(tagged)), limit))
        tagged = [tagged[i] for i in kept]
    return tagged


def minimal_pairs(
    examples: Sequence[StepExample], *, limit: int | None = DEFAULT_PAIR_LIMIT, seed: int = 0
) -> list[tuple[StepContext, StepContext]]:
    """``(right, wrong)`` contexts that differ in one number, built from ``examples``.

    - For each step whose arithmetic equations (``<expression> = <number>``, as
      `check_equations` reads them) all check: the same step with the result of one of them
      (chosen by a generator seeded from ``seed`` and the context) moved by ±1 or ±2, the rest
      of the text identical. The wrong side therefore has exactly one wrong equation; results
      may turn negative ("1 - 1 = -1").
    - For each final step whose ``gold`` is a plain number: "Answer: <gold>" against
      "Answer: <gold ± 1 or 2>", at the step's question and prefix.

    Labels are not used: the right side is right by arithmetic or by the gold answer, whatever
    the trace went on to do. Pairs are deduplicated; when more than ``limit`` remain, a sample
    seeded by ``seed`` is kept (in their original order).
    """
    return [(r, w) for r, w, _ in _tagged_minimal_pairs(examples, limit, seed)]


def pair_accuracy(
    scores_better: Sequence[float] | np.ndarray, scores_worse: Sequence[float] | np.ndarray
) -> float:
    """Share of pairs in which the better side scores higher; a tie counts one half."""
    better = np.asarray(scores_better, dtype=np.float64)
    worse = np.asarray(scores_worse, dtype=np.float64)
    if better.shape != worse.shape or better.ndim != 1:
        raise ValueError(f"{better.shape} better scores for {worse.shape} worse; need one each")
    if not len(better):
        raise ValueError("pair accuracy of zero pairs is undefined")
    return float(np.mean((better > worse) + 0.5 * (better == worse)))
