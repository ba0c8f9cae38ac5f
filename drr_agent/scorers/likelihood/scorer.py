"""`LikelihoodScorer`: the DM the graph sees when its card carries a likelihood head —
classifier score + likelihood statistics (+ the lookahead, + the Reasoner's own log-probs) →
head."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from drr_agent.errors import DMLoadError
from drr_agent.scorers.base import StepContext, StepScorer
from drr_agent.scorers.coalesce import Coalescer
from drr_agent.scorers.likelihood.extractor import ReasonerLikelihood, lookahead_features
from drr_agent.scorers.likelihood.features import LOOKAHEAD_FEATURES, free_rows, head_inputs
from drr_agent.scorers.likelihood.head import LikelihoodHead
from drr_agent.scorers.lookahead import AnswerLookahead

__all__ = ["LikelihoodScorer"]


class LikelihoodScorer(StepScorer):
    """The classifier's score, the Reasoner-likelihood statistics and (when the head reads
    them) the verifier's reading of the Reasoner's forced answer, combined by a
    `LikelihoodHead` — the DM ``drr train --likelihood`` writes.

    Args:
        classifier: The trained sequence classifier (`HFScorer`, or `RemoteScorer` serving it);
            ``None`` for a head that does not read it (the light DM: a head over the
            Reasoner's own log-probs runs no model), which then takes ``name``,
            ``trained_questions`` and ``fingerprint`` from its card (`load_dm`).
        head: The fitted head (from the DM card).
        likelihood: The feature extractor; default: one for ``head.model`` when the head reads
            any of its statistics (`LikelihoodHead.reads_verifier`), else none: a head over
            the classifier and the Reasoner's own log-probs (`SAMPLED_FEATURES`, taken from
            `StepContext.signals`) runs no language model.
        lookahead: The Reasoner's forced answers, for a head that reads `LOOKAHEAD_FEATURES`;
            default: the one the card's `LookaheadSpec` names.

    Raises:
        DMLoadError: The head reads the lookahead and neither ``lookahead`` nor the card
            says which Reasoner gives it, or it reads the classifier and none is given.
    """

    def __init__(
        self,
        classifier: StepScorer | None,
        head: LikelihoodHead,
        likelihood: ReasonerLikelihood | None = None,
        lookahead: AnswerLookahead | None = None,
        *,
        name: str | None = None,
        trained_questions: frozenset[str] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        if classifier is None and head.reads_classifier:
            raise DMLoadError(
                "the DM's head reads the classifier's logit, and no classifier was given"
            )
        self.classifier = classifier
        self.head = head
        if likelihood is None and head.reads_verifier:
            likelihood = ReasonerLikelihood.of(head)
        self.likelihood = likelihood if head.reads_verifier else None
        if lookahead is None and head.reads_lookahead:
            if head.lookahead is None:
                raise DMLoadError(
                    f"the DM's head reads {list(LOOKAHEAD_FEATURES)} but its card names no "
                    "lookahead Reasoner: pass lookahead=AnswerLookahead(<your Reasoner>)"
                )
            lookahead = head.lookahead.build()
        self.lookahead = lookahead if head.reads_lookahead else None
        self.name = name or (classifier.name if classifier is not None else "dm")
        self._trained_questions = trained_questions
        self._fingerprint = fingerprint
        # concurrent graphs share the LM's forward passes (`Coalescer`): its cost is per pass
        self._coalesced = Coalescer(self._ascore_now)

    @property
    def thresholds(self) -> dict[str, float]:
        return self.head.thresholds

    @property
    def reads_reasoner_logprobs(self) -> bool:
        return self.head.reads_sampled

    @property
    def trained_questions(self) -> frozenset[str] | None:
        if self.classifier is None:
            return self._trained_questions
        return self.classifier.trained_questions

    @property
    def fingerprint(self) -> str | None:
        # the card (with the head) is hashed into the classifier's fingerprint already; the
        # verifier's number format is chosen per machine, not in the card, and moves its
        # features by rounding, so a run resumed in another format is refused. float32 adds
        # nothing: fingerprints from before bfloat16 (all float32) still match.
        base = self._fingerprint if self.classifier is None else self.classifier.fingerprint
        if base is None or self.likelihood is None or self.likelihood.dtype == "float32":
            return base
        return f"{base}-{self.likelihood.dtype}"

    def inputs(self, items: Sequence[StepContext]) -> np.ndarray:
        """The head's input rows (`head_inputs`) for ``items``: what it reads, NaN elsewhere."""
        base = None
        if self.classifier is not None and self.head.reads_classifier:
            base = self.classifier.score(items)
        look = x = None
        if self.likelihood is not None:
            x = self.likelihood.features(items, claims=self.head.reads_claims)
            if self.lookahead is not None:
                look = lookahead_features(self.likelihood, items, self.lookahead.answers(items))
        free = free_rows(items, self.head.features)
        return head_inputs(x, base, look, *free, rows=len(items))

    def score(self, items: Sequence[StepContext]) -> list[float]:
        return self.head.probabilities(self.inputs(items)).tolist()

    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        return await self._coalesced(items)

    async def _ascore_now(self, items: Sequence[StepContext]) -> list[float]:
        async def classifier() -> list[float] | None:
            if self.classifier is None or not self.head.reads_classifier:
                return None
            return await self.classifier.ascore(items)

        async def lookahead() -> np.ndarray | None:
            if self.lookahead is None or self.likelihood is None:
                return None
            answers = await self.lookahead.aanswers(items)
            return await asyncio.to_thread(lookahead_features, self.likelihood, items, answers)

        async def features() -> np.ndarray | None:
            if self.likelihood is None:
                return None
            return await asyncio.to_thread(
                self.likelihood.features, items, claims=self.head.reads_claims
            )

        # before any model runs: a missing signal fails fast
        free = free_rows(items, self.head.features)
        x, base, look = await asyncio.gather(features(), classifier(), lookahead())
        rows = head_inputs(x, base, look, *free, rows=len(items))
        return self.head.probabilities(rows).tolist()
