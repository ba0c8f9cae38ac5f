"""The feature registry: what a likelihood head can read, by name and column.

A head's input row (`head_inputs`, columns `HEAD_INPUTS`) is the verifier's statistics of a
step (`LIKELIHOOD_FEATURES`, computed by `ReasonerLikelihood.features`), the classifier's logit
(`CLASSIFIER_FEATURE`), the verifier's reading of the Reasoner's forced answer after the
step (`LOOKAHEAD_FEATURES`), the statistics of the Reasoner's own token log-probs
(`SAMPLED_FEATURES`) and the verdicts of recomputing the step's equations
(`EQUATION_FEATURES`). A head reads the columns it names (`head_columns`), so new inputs
go at the end and a stored head keeps reading the same ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drr_agent.reasoners.signals import SAMPLED_FEATURES
from drr_agent.scorers.base import StepContext
from drr_agent.scorers.rules import check_equations

__all__ = [
    "CLASSIFIER_FEATURE",
    "EQUATION_FEATURES",
    "HEAD_INPUTS",
    "IN_CONTEXT_FEATURES",
    "LIKELIHOOD_FEATURES",
    "LOOKAHEAD_FEATURES",
    "SAMPLED_FEATURES",
    "MissingSignalsError",
    "equation_rows",
    "free_rows",
    "head_columns",
    "head_inputs",
    "reads_claims",
    "reads_equations",
    "reads_lookahead",
    "reads_sampled",
    "reads_verifier",
    "sampled_rows",
]

LIKELIHOOD_FEATURES = (
    "mean_logprob",
    "min_logprob",
    "digit_mean_logprob",
    "digit_min_logprob",
    "min_gap",
    "digit_min_gap",
    "log_tokens",
    "has_digits",
    "claim_logprob",
    "claim_min_gap",
    "claim_prob",
    "is_answer",
    "answer_claim_prob",
)
"""What `ReasonerLikelihood.features` returns per step, in order. ``*_gap`` is a token's
log-prob minus the best token's at that position (0 when the step is the model's greedy
choice); ``digit_*`` restrict to tokens that contain a digit; ``log_tokens`` is
``log(1 + tokens)``; ``has_digits`` is 1 when the step has a digit token. ``claim_*`` read
the step's *last number* — the result it claims, "7" in "4 + 3 = 7." or "The answer is 7" —
after the question and the step's own words alone (not the accepted steps):
``claim_logprob`` is the sum of its tokens' log-probs (the number's log-prob), ``claim_min_gap``
their smallest gap, ``claim_prob`` the number's probability, ``exp(claim_logprob)``. They
exist because the other statistics are diluted by the words and the echo of the question
("4 + 3 ="), which any LM predicts well, and because in context a wrong answer that repeats a
wrong accepted step looks likely; the claim against the question is where a verifier that
knows the arithmetic disagrees with a wrong step. ``claim_prob`` exists because a head is
linear in its inputs: the labels are close to linear in the probability (a right claim has
one near 1, a wrong one near 0), not in the log-prob, where one very unlikely wrong number
(−20) pulls the fit and the head's probabilities bunch up (badly calibrated). A step without
digits takes the all-token values for ``digit_*`` (and ``mean_logprob`` / ``min_gap`` for
``claim_*``) and 0 for ``has_digits``; an empty step has ``claim_prob`` 0: a missing value
must not read as the most confident one (0 is the highest log-prob), or "Answer: incorrect"
outscores "Answer: 3". ``is_answer`` is 1 when the step states a final answer
(`ANSWER_FORMAT`) and ``answer_claim_prob`` is ``claim_prob`` on those steps, 0 on the rest:
beside ``claim_prob`` they let a linear head map a claim's probability to a label apart for
final answers and for steps, which need it — a right answer ends the question, a right step
only leads to a right answer about half the time this Reasoner continues from it."""

IN_CONTEXT_FEATURES = LIKELIHOOD_FEATURES[:8]
"""The statistics of the step in its context (`LikelihoodContext`): every feature but the
``claim_*`` readings and ``is_answer`` / ``answer_claim_prob``."""

CLASSIFIER_FEATURE = "classifier_logit"
"""The last input of the head: ``logit(classifier score)``."""

LOOKAHEAD_FEATURES = ("lookahead_claim_prob", "lookahead_has_answer")
"""What the Reasoner answers when asked to conclude right after the step
(`drr_agent.scorers.lookahead`), read by the verifier: ``lookahead_claim_prob`` is the
``claim_prob`` of "The answer is X" for the Reasoner's greedy answer X (0 when it gave
none), ``lookahead_has_answer`` 1 when it gave one. The labels ask exactly that question
four times at temperature 0.8; these estimate their answer with one greedy call."""

EQUATION_FEATURES = ("equations_checked", "equations_wrong")
"""What recomputing the step's own equations says (`drr_agent.scorers.rules.check_equations`):
``equations_checked`` is 1 when the step writes an equation the checker can judge,
``equations_wrong`` 1 when any of them is wrong. No model runs and no gold is read: the
checker reads the step alone. Why: the Reasoner's token confidence mostly says how hard the
question is, not which of its steps is right (on GSM8K dev, the light DM ordered a question's
good and bad steps 0.567 right), while a step that computes "4 + 20 + 7 + 8 = 48" is wrong
however sure its writer was. A step with no equation reads (0, 0), so a head that reads these
stays defined on tasks without arithmetic."""

HEAD_INPUTS = (
    *LIKELIHOOD_FEATURES,
    CLASSIFIER_FEATURE,
    *LOOKAHEAD_FEATURES,
    *SAMPLED_FEATURES,
    *EQUATION_FEATURES,
)
"""The columns of `head_inputs` rows; a `LikelihoodHead` reads the ones it names. New
inputs go at the end, so the column of every input a stored head reads never moves."""

_EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


class MissingSignalsError(ValueError):
    """A head reads `SAMPLED_FEATURES` and a step came without the Reasoner's log-probs."""


def sampled_rows(items: Sequence[StepContext]) -> np.ndarray:
    """`SAMPLED_FEATURES` of ``items``, one row each, from their `StepContext.signals`.

    Raises:
        MissingSignalsError: An item has none — its Reasoner was not asked for log-probs or
            its server returned none (the message says which step and what to do).
    """
    rows = []
    for index, item in enumerate(items):
        signals = item.signals
        missing = [n for n in SAMPLED_FEATURES if signals is None or n not in signals]
        if missing:
            raise MissingSignalsError(
                f"step {index} ({item.candidate[:60]!r}) has no Reasoner log-prob statistics "
                f"{missing}: this DM reads the Reasoner's own token log-probs, so its Reasoner "
                "must return them (OpenAI `logprobs`; llama.cpp and vLLM do) — and its "
                "training traces must have been sampled with them (`drr traces --logprobs`)"
            )
        rows.append([float(signals[n]) for n in SAMPLED_FEATURES])  # type: ignore[index]
    return np.asarray(rows, dtype=np.float64).reshape(len(items), len(SAMPLED_FEATURES))


def equation_rows(items: Sequence[StepContext]) -> np.ndarray:
    """`EQUATION_FEATURES` of ``items``, one row each, from their candidate steps' text."""
    rows = []
    for item in items:
        verdicts = check_equations(item.candidate)
        rows.append([float(bool(verdicts)), float(not all(verdicts))])
    return np.asarray(rows, dtype=np.float64).reshape(len(items), len(EQUATION_FEATURES))


def free_rows(
    items: Sequence[StepContext], names: Sequence[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The inputs no model computes, for a head that reads inputs ``names``: its
    `sampled_rows` and its `equation_rows` (``None`` for a kind it does not read), in the
    order `head_inputs` takes them. Raises `MissingSignalsError` as `sampled_rows` does."""
    sampled = sampled_rows(items) if reads_sampled(names) else None
    equations = equation_rows(items) if reads_equations(names) else None
    return sampled, equations


def head_inputs(
    features: np.ndarray | None,
    classifier_scores: Sequence[float] | None,
    lookahead: np.ndarray | None = None,
    sampled: np.ndarray | None = None,
    equations: np.ndarray | None = None,
    *,
    rows: int | None = None,
) -> np.ndarray:
    """The head's input rows (`HEAD_INPUTS`): the likelihood features beside
    ``logit(classifier score)``, the `lookahead_features`, the `sampled_rows` and the
    `equation_rows` (NaN for ``None``: a head that does not read them). ``rows``: how many,
    when no part says."""
    parts = (features, classifier_scores, lookahead, sampled, equations)
    n = next((len(p) for p in parts if p is not None), rows)
    if n is None:
        raise ValueError("head_inputs needs at least one part, or rows=")

    def nan(width: int) -> np.ndarray:
        return np.full((n, width), np.nan)

    if classifier_scores is None:
        logits = np.full(n, np.nan)
    else:
        logits = _logit(np.asarray(classifier_scores, dtype=np.float64))
    return np.column_stack(
        [
            nan(len(LIKELIHOOD_FEATURES)) if features is None else features,
            logits,
            nan(len(LOOKAHEAD_FEATURES)) if lookahead is None else lookahead,
            nan(len(SAMPLED_FEATURES)) if sampled is None else sampled,
            nan(len(EQUATION_FEATURES)) if equations is None else equations,
        ]
    )


def reads_lookahead(names: Sequence[str]) -> bool:
    """Whether inputs ``names`` include `LOOKAHEAD_FEATURES` (the DM then asks the Reasoner)."""
    return any(name in LOOKAHEAD_FEATURES for name in names)


def reads_sampled(names: Sequence[str]) -> bool:
    """Whether inputs ``names`` include `SAMPLED_FEATURES` (the graph then asks the Reasoner
    for its token log-probs)."""
    return any(name in SAMPLED_FEATURES for name in names)


def reads_equations(names: Sequence[str]) -> bool:
    """Whether inputs ``names`` include `EQUATION_FEATURES` (the step's equations are then
    recomputed; no model runs)."""
    return any(name in EQUATION_FEATURES for name in names)


def reads_verifier(names: Sequence[str]) -> bool:
    """Whether inputs ``names`` need a likelihood LM (`ReasonerLikelihood`): any of
    `LIKELIHOOD_FEATURES`, or the lookahead, which that LM reads. A head over the classifier
    and `SAMPLED_FEATURES` alone runs no language model at all."""
    return any(name in LIKELIHOOD_FEATURES for name in names) or reads_lookahead(names)


def reads_claims(names: Sequence[str]) -> bool:
    """Whether statistics ``names`` include ``claim_*``: the second reading of each step
    (`ReasonerLikelihood.features` ``claims``) is needed."""
    return any(name.startswith("claim_") for name in names)


def head_columns(x: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The columns of `head_inputs` rows ``x`` named ``names``, in that order."""
    return np.asarray(x, dtype=np.float64)[:, [HEAD_INPUTS.index(name) for name in names]]
