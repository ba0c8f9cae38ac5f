"""Step-level evaluation of a Discriminative Model, and the choice of its thresholds.

`evaluate_scores` turns DM scores for labelled steps (`StepExample`) into a `DMReport`:
ranking quality (AUROC against hard labels, overall and per subset), calibration (expected
calibration error and Brier score against the soft labels), accuracy, and the two thresholds
the graph routes on — ``accept_threshold`` for ordinary steps and ``answer_threshold`` for
answer-carrying (final) steps — each chosen to maximise Youden's J on its own subset.
`evaluate_dm` scores the examples with any `StepScorer` first, so the numbers describe exactly
what the graph will see. ``drr train`` writes the chosen thresholds to ``drr_dm.json``, where
`HFScorer` picks them up.

AUROC pooled over questions rewards knowing which *questions* are hard as much as judging
steps, and the graph only ever compares candidates for the next step of one question. So the
report also has **pair accuracies** (`drr_agent.offline.pairs`), which hold question and prefix
fixed and where 0.5 is chance: on sibling pairs (steps the Reasoner wrote at the same prefix,
one good, one bad) and on minimal pairs (a right step against the same step with one result
off by 1 or 2, and "Answer: <gold>" against a near miss), which `evaluate_dm` builds and scores.

Only numpy is needed (no scikit-learn): AUROC is the Mann-Whitney rank formula with average
ranks for ties.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from drr_agent.offline.pairs import (
    DEFAULT_PAIR_LIMIT,
    _sibling_index_pairs,
    _tagged_minimal_pairs,
    pair_accuracy,
)
from drr_agent.offline.records import StepExample
from drr_agent.scorers.base import StepContext, StepScorer

__all__ = [
    "DEFAULT_THRESHOLD",
    "ECE_BINS",
    "DMReport",
    "auroc",
    "evaluate_dm",
    "evaluate_scores",
    "expected_calibration_error",
    "youden_threshold",
]

DEFAULT_THRESHOLD = 0.5
"""Threshold used when the data cannot choose one (a subset lacks a class)."""

ECE_BINS = 10
"""Equal-width probability bins of the expected calibration error."""


class DMReport(BaseModel):
    """Step-level quality of a DM on a set of labelled steps.

    Attributes:
        n: Number of steps.
        n_final: Steps that carry a final answer (judged against ``answer_threshold``).
        positive_rate: Share of steps whose hard label is 1 (soft label >= 0.5).
        auroc: Step-level AUROC against hard labels; ``None`` when only one class is present
            (``auroc_note`` says why).
        auroc_non_final / auroc_final: The same on non-final and on final steps.
        accuracy_at_half: Accuracy of ``score >= 0.5`` against hard labels.
        accuracy_at_threshold: Accuracy with the chosen thresholds (``accept_threshold`` on
            non-final steps, ``answer_threshold`` on final ones), as the graph applies them.
        ece: Expected calibration error over 10 equal-width bins, against the soft labels.
        brier: Mean squared error of the scores against the soft labels.
        accept_threshold / answer_threshold: Thresholds maximising Youden's J (balanced
            accuracy) on non-final / final steps; fallbacks are explained in
            ``threshold_notes``.
        accept_youden_j / answer_youden_j: The J reached there (``None`` for a fallback).
        sibling_pairs / sibling_pair_accuracy: Pairs of differently labelled candidate steps
            at the same prefix of the same question, and how often the good one scores higher
            (ties one half; ``None`` without pairs). Unlike AUROC it cannot be earned by
            knowing which questions are hard.
        minimal_pairs / minimal_pair_accuracy: Right steps paired with the same step one
            number off (a result moved by 1 or 2; "Answer: <gold>" against a near miss), and
            how often the right one scores higher: does the DM check the arithmetic at all?
            Only `evaluate_dm` fills these (it has a scorer to score the made-up steps).
        minimal_pairs_final / minimal_pair_accuracy_final: The same on the final-answer pairs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int
    n_final: int
    positive_rate: float
    auroc: float | None
    auroc_note: str | None = None
    auroc_non_final: float | None
    auroc_final: float | None
    accuracy_at_half: float
    accuracy_at_threshold: float
    ece: float
    brier: float
    accept_threshold: float
    answer_threshold: float
    accept_youden_j: float | None
    answer_youden_j: float | None
    threshold_notes: list[str] = []
    sibling_pairs: int = 0
    sibling_pair_accuracy: float | None = None
    minimal_pairs: int = 0
    minimal_pair_accuracy: float | None = None
    minimal_pairs_final: int = 0
    minimal_pair_accuracy_final: float | None = None

    @property
    def thresholds(self) -> dict[str, float]:
        """The thresholds in the form `DRRConfig` and ``drr_dm.json`` use."""
        return {
            "accept_threshold": self.accept_threshold,
            "answer_threshold": self.answer_threshold,
        }

    def to_markdown(self, title: str = "DM evaluation") -> str:
        """A short human summary: one metrics table, then threshold notes."""

        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        def pairs(value: float | None, n: int) -> str:
            return f"{fmt(value)} ({n} pairs)"

        rows = [
            ("steps", f"{self.n} ({self.n_final} final)"),
            ("positive rate", fmt(self.positive_rate)),
            ("AUROC (all steps)", fmt(self.auroc)),
            ("AUROC (non-final steps)", fmt(self.auroc_non_final)),
            ("AUROC (final steps)", fmt(self.auroc_final)),
            ("accuracy @ 0.5", fmt(self.accuracy_at_half)),
            ("accuracy @ chosen thresholds", fmt(self.accuracy_at_threshold)),
            (f"ECE ({ECE_BINS} bins)", fmt(self.ece)),
            ("Brier score", fmt(self.brier)),
            ("accept threshold", f"{self.accept_threshold:.3f} (J = {fmt(self.accept_youden_j)})"),
            ("answer threshold", f"{self.answer_threshold:.3f} (J = {fmt(self.answer_youden_j)})"),
            ("sibling-pair accuracy", pairs(self.sibling_pair_accuracy, self.sibling_pairs)),
            ("minimal-pair accuracy", pairs(self.minimal_pair_accuracy, self.minimal_pairs)),
            (
                "minimal-pair accuracy (answers)",
                pairs(self.minimal_pair_accuracy_final, self.minimal_pairs_final),
            ),
        ]
        lines = [f"### {title}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
        notes = ([self.auroc_note] if self.auroc_note else []) + self.threshold_notes
        if notes:
            lines += ["", *(f"- {note}" for note in notes)]
        return "\n".join(lines) + "\n"


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def _both_classes(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """Scores and boolean labels as arrays with the class sizes; ``None`` if a class is
    missing (a ranking metric says nothing then)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    return s, y, n_pos, n_neg


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for binary ``labels``; ``None`` if one class.

    The probability that a random positive scores above a random negative, ties counting
    one half (Mann-Whitney U over average ranks).
    """
    both = _both_classes(scores, labels)
    if both is None:
        return None
    s, y, n_pos, n_neg = both
    rank_sum = float(_average_ranks(s)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def expected_calibration_error(
    scores: Sequence[float] | np.ndarray,
    targets: Sequence[float] | np.ndarray,
    bins: int = ECE_BINS,
) -> float:
    """Weighted mean |mean score - mean target| over equal-width bins of the score.

    Bin ``b`` holds scores in ``[b/bins, (b+1)/bins)``; a score of exactly 1 goes to the last.
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    index = np.minimum((s * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() * abs(float(s[mask].mean()) - float(t[mask].mean()))
    return total / len(s)


def youden_threshold(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[float, float] | None:
    """``(threshold, J)`` maximising Youden's J = TPR - FPR for the rule ``score >= t``.

    Candidates are midpoints between consecutive distinct scores (a threshold equal to an
    observed score would flip on the slightest change). Among equal J the candidate nearest
    0.5 wins. ``None`` when a class is missing or no threshold beats chance (J <= 0).
    """
    both = _both_classes(scores, labels)
    if both is None:
        return None
    s, y, n_pos, n_neg = both
    distinct = np.unique(s)
    if len(distinct) < 2:
        return None
    candidates = (distinct[:-1] + distinct[1:]) / 2.0
    tpr = np.array([(s[y] >= t).sum() / n_pos for t in candidates])
    fpr = np.array([(s[~y] >= t).sum() / n_neg for t in candidates])
    j = tpr - fpr
    best = float(j.max())
    if best <= 1e-12:
        return None
    tied = np.flatnonzero(np.isclose(j, best, rtol=0.0, atol=1e-12))
    chosen = tied[np.argmin(np.abs(candidates[tied] - DEFAULT_THRESHOLD))]
    return float(candidates[chosen]), best


def _check_inputs(scores: Sequence[float], examples: Sequence[StepExample]) -> np.ndarray:
    if len(scores) != len(examples):
        raise ValueError(f"{len(scores)} scores for {len(examples)} examples; expected one each")
    if not examples:
        raise ValueError("cannot evaluate a DM on zero examples")
    s = np.asarray(scores, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(s) | (s < 0.0) | (s > 1.0))
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"score {i} ({examples[i].item_id} step {examples[i].step_index}) is {scores[i]!r}; "
            f"scores must be probabilities in [0, 1] ({len(bad)} out of range)"
        )
    return s


def evaluate_scores(scores: Sequence[float], examples: Sequence[StepExample]) -> DMReport:
    """The `DMReport` of precomputed DM ``scores``, one per example, in order.

    Sibling-pair accuracy comes from these scores too; the minimal-pair fields stay empty
    (their steps are made up, so only `evaluate_dm`, which has a scorer, can score them).
    """
    s = _check_inputs(scores, examples)
    soft = np.array([e.label for e in examples], dtype=np.float64)
    hard = np.array([e.hard_label for e in examples], dtype=bool)
    final = np.array([e.final for e in examples], dtype=bool)

    overall = auroc(s, hard)
    auroc_note = None
    if overall is None:
        only = "positive" if hard.all() else "negative"
        auroc_note = f"AUROC undefined: all {len(hard)} steps are {only} (hard labels)"

    notes: list[str] = []
    accept = youden_threshold(s[~final], hard[~final])
    if accept is None:
        accept_t, accept_j = DEFAULT_THRESHOLD, None
        notes.append(
            f"accept_threshold = {DEFAULT_THRESHOLD} (fallback): "
            + _why_no_threshold(hard[~final], "non-final")
        )
    else:
        accept_t, accept_j = accept
    answer = youden_threshold(s[final], hard[final])
    if answer is None:
        answer_t, answer_j = accept_t, None
        notes.append(
            "answer_threshold = accept_threshold (fallback): "
            + _why_no_threshold(hard[final], "final")
        )
    else:
        answer_t, answer_j = answer

    threshold = np.where(final, answer_t, accept_t)
    siblings = _sibling_index_pairs(examples)
    return DMReport(
        n=len(s),
        n_final=int(final.sum()),
        positive_rate=float(hard.mean()),
        auroc=overall,
        auroc_note=auroc_note,
        auroc_non_final=auroc(s[~final], hard[~final]),
        auroc_final=auroc(s[final], hard[final]),
        accuracy_at_half=float(((s >= DEFAULT_THRESHOLD) == hard).mean()),
        accuracy_at_threshold=float(((s >= threshold) == hard).mean()),
        ece=expected_calibration_error(s, soft),
        brier=float(np.mean((s - soft) ** 2)),
        accept_threshold=accept_t,
        answer_threshold=answer_t,
        accept_youden_j=accept_j,
        answer_youden_j=answer_j,
        threshold_notes=notes,
        sibling_pairs=len(siblings),
        sibling_pair_accuracy=(
            pair_accuracy(s[[g for g, _ in siblings]], s[[b for _, b in siblings]])
            if siblings
            else None
        ),
    )


def _why_no_threshold(hard: np.ndarray, subset: str) -> str:
    n = len(hard)
    if n == 0:
        return f"no {subset} steps"
    pos = int(hard.sum())
    if pos in (0, n):
        return f"the {n} {subset} steps are all {'positive' if pos else 'negative'}"
    return f"no threshold separates the {n} {subset} steps better than chance (Youden's J <= 0)"


def evaluate_dm(
    scorer: StepScorer,
    examples: Sequence[StepExample],
    *,
    batch_size: int = 256,
    progress: bool = False,
    minimal_pair_limit: int | None = DEFAULT_PAIR_LIMIT,
    seed: int = 0,
) -> DMReport:
    """Score ``examples`` with ``scorer`` (``scorer.score`` in batches), then `evaluate_scores`;
    also build the minimal pairs of ``examples`` and score them in the same batched pass.

    Args:
        scorer: Any `StepScorer` (an `HFScorer` folder, a remote DM, a rule-based checker).
        examples: Labelled steps; each is shown as ``StepContext(question, previous, step)``.
        batch_size: Contexts per ``scorer.score`` call (the scorer may batch further).
        progress: Show a progress bar (rich) while scoring.
        minimal_pair_limit: At most this many minimal pairs (two contexts each; a seeded
            sample); ``0`` skips them, ``None`` scores all. A DM that reads the Reasoner's
            own log-probs (`StepScorer.reads_reasoner_logprobs`) gets none: an edited step
            was never written by the Reasoner, so it has no log-probs to read.
        seed: Seeds the minimal pairs (which result moves, by how much, and the sample).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if minimal_pair_limit is not None and minimal_pair_limit < 0:
        raise ValueError(f"minimal_pair_limit must be >= 0 or None, got {minimal_pair_limit}")
    contexts = [e.context for e in examples]
    if scorer.reads_reasoner_logprobs:
        minimal_pair_limit = 0
    tagged = (
        _tagged_minimal_pairs(examples, minimal_pair_limit, seed) if minimal_pair_limit != 0 else []
    )
    pair_contexts = [c for right, wrong, _ in tagged for c in (right, wrong)]
    scores = _score_in_batches(scorer, contexts + pair_contexts, batch_size, progress)
    report = evaluate_scores(scores[: len(contexts)], examples)
    if not tagged:
        return report
    pair_scores = np.asarray(scores[len(contexts) :], dtype=np.float64)
    right, wrong = pair_scores[0::2], pair_scores[1::2]
    answer = np.array([is_answer for _, _, is_answer in tagged], dtype=bool)
    return report.model_copy(
        update={
            "minimal_pairs": len(tagged),
            "minimal_pair_accuracy": pair_accuracy(right, wrong),
            "minimal_pairs_final": int(answer.sum()),
            "minimal_pair_accuracy_final": (
                pair_accuracy(right[answer], wrong[answer]) if answer.any() else None
            ),
        }
    )


def _score_in_batches(
    scorer: StepScorer, contexts: list[StepContext], batch_size: int, progress: bool
) -> list[float]:
    scores: list[float] = []
    batches = range(0, len(contexts), batch_size)
    if not progress:
        for start in batches:
            scores.extend(_checked(scorer, contexts[start : start + batch_size]))
        return scores
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"scoring steps with {scorer.name}", total=len(contexts))
        for start in batches:
            chunk = contexts[start : start + batch_size]
            scores.extend(_checked(scorer, chunk))
            bar.advance(task, len(chunk))
    return scores


def _checked(scorer: StepScorer, chunk: list[StepContext]) -> list[float]:
    out = [float(x) for x in scorer.score(chunk)]
    if len(out) != len(chunk):
        raise ValueError(
            f"scorer {scorer.name!r} returned {len(out)} scores for {len(chunk)} steps"
        )
    bad = [x for x in out if not math.isfinite(x)]
    if bad:
        raise ValueError(f"scorer {scorer.name!r} returned non-finite scores: {bad[:3]}")
    return out


def calibrate_thresholds(
    scorer: StepScorer,
    examples: Sequence[StepExample],
    *,
    limit: int | None = 300,
    seed: int = 0,
    progress: bool = False,
) -> DMReport:
    """Pick ``scorer``'s accept / answer thresholds on labelled steps (Youden's J), as
    ``drr train`` does for a DM — for critics trained elsewhere or not at all (self-critique).

    Uses a seeded sample of at most ``limit`` steps (a critic that is a language model costs a
    call per step). The report's ``thresholds`` are the values to configure.
    """
    chosen = list(examples)
    if limit is not None and len(chosen) > limit:
        chosen = random.Random(seed).sample(chosen, limit)
    # no minimal pairs: they would double the calls and do not move the thresholds
    return evaluate_dm(scorer, chosen, batch_size=64, progress=progress, minimal_pair_limit=0)
