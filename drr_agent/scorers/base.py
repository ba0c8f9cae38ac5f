"""The scorer interface: what the `score` node needs from a Discriminative Model.

A `StepScorer` maps a batch of `StepContext` (question, accepted steps, candidate step) to
probabilities that each candidate lies on a path to the right answer. The in-process Hugging
Face DM, a remote DM behind vLLM's pair-scoring ``/score`` (`RemoteScorer`), the Reasoner
judging itself (the self-critique baseline) and plain functions (heuristic checkers, test
doubles) all implement it, so the graph does not know which one it has.

`dm_text_pair` is the one definition of how a context is shown to a sequence-classification
DM; training and serving use it too, so the DM sees at run time exactly what it was trained on.
"""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StepContext:
    """A candidate step in its context.

    ``signals`` are what the Reasoner's own sampling said about the candidate — the statistics
    of its token log-probs (`drr_agent.reasoners.signals.SAMPLED_FEATURES`), free with each
    step when the graph asks for them (`StepScorer.reads_reasoner_logprobs`); ``None`` when
    unknown. A DM that reads them takes them from here rather than running a model."""

    question: str
    steps: tuple[str, ...]
    candidate: str
    # not compared: a context is the step in its place; a dict would also make it unhashable
    signals: Mapping[str, float] | None = field(default=None, compare=False)


STEP_JOINER = "\n"
CANDIDATE_MARK = "Next step: "


def set_thresholds(accept: float | None, answer: float | None) -> dict[str, float]:
    """``{"accept_threshold": …, "answer_threshold": …}`` with only the values that are set:
    the shape of `StepScorer.thresholds`, where a missing key means "the graph's default"."""
    pairs = (("accept_threshold", accept), ("answer_threshold", answer))
    return {k: v for k, v in pairs if v is not None}


def dm_text_pair(context: StepContext, steps: Sequence[str] | None = None) -> tuple[str, str]:
    """``(text, text_pair)`` for a cross-encoder DM: the question, then steps and candidate.

    ``steps`` overrides ``context.steps`` (a scorer passes the latest steps that fit).
    """
    shown = context.steps if steps is None else steps
    pair = STEP_JOINER.join([*shown, CANDIDATE_MARK + context.candidate])
    return context.question, pair


class StepScorer(ABC):
    """Scores candidate steps; higher means more likely on a path to the right answer.

    Subclasses implement `ascore` (and `score` when they have a better sync path than the
    default, which runs `ascore` on a private loop). ``thresholds`` carries the accept/answer
    thresholds chosen for this DM on held-out traces, if known; `DRRConfig` uses them when
    it sets none itself.
    """

    name: str = "scorer"
    recipe: Callable[[], StepScorer] | None = None

    def with_recipe(self, recipe: Callable[[], StepScorer]) -> StepScorer:
        """Record how to build this DM again (`load_dm` does), so it pickles as that recipe
        and a Ray worker loads its own copy instead of receiving weights, pools and locks."""
        self.recipe = recipe
        return self

    def __reduce_ex__(self, protocol: Any) -> Any:
        if self.recipe is not None:
            return (_build, (self.recipe,))
        return super().__reduce_ex__(protocol)  # e.g. a FunctionScorer of a module function

    def __deepcopy__(self, memo: dict[int, Any]) -> StepScorer:
        return self  # a handle on a model, as shared as the model itself

    @property
    def thresholds(self) -> dict[str, float]:
        return {}

    @property
    def reads_reasoner_logprobs(self) -> bool:
        """Whether this DM reads `StepContext.signals`: the graph then asks the Reasoner for
        its token log-probs with every step (a few bytes more per reply, no more compute)."""
        return False

    @property
    def trained_questions(self) -> frozenset[str] | None:
        """Hashes (`drr_agent.tasks.splits.question_hash`) of the questions this DM was
        trained on, when its card records them; ``None`` when unknown (a rule critic, a DM
        trained elsewhere). Evaluations use it to refuse reporting a DM on its own training
        questions."""
        return None

    @property
    def fingerprint(self) -> str | None:
        """A short hash of what this DM *is* (its weights and card), when it can tell; ``None``
        otherwise. A resumed evaluation compares it, so a DM retrained in place under the same
        name never resumes into the old DM's records."""
        return None

    @abstractmethod
    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        """Probabilities in [0, 1], one per item, in order. Must not block the event loop."""

    def score(self, items: Sequence[StepContext]) -> list[float]:
        """Sync scoring (used by ``graph.invoke``)."""
        return asyncio.run(self.ascore(items))


def _build(recipe: Callable[[], StepScorer]) -> StepScorer:
    return recipe()


class FunctionScorer(StepScorer):
    """A scorer from a plain function of one `StepContext` (sync or async).

    Useful for rule-based checkers (e.g. "does this arithmetic step compute correctly?") and
    as a scripted DM in tests.
    """

    def __init__(
        self,
        fn: Callable[[StepContext], float] | Callable[[StepContext], Awaitable[float]],
        name: str | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> None:
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self.name = name or getattr(fn, "__name__", "function")
        self._thresholds = dict(thresholds or {})

    @property
    def thresholds(self) -> dict[str, float]:
        return self._thresholds

    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        if self._is_async:
            return [float(await self._fn(item)) for item in items]  # type: ignore[misc]
        # a sync function may be slow (a real checker): keep the event loop free
        return await asyncio.to_thread(self.score, items)

    def score(self, items: Sequence[StepContext]) -> list[float]:
        if self._is_async:
            return super().score(items)
        results: list[Any] = [self._fn(item) for item in items]
        return [float(r) for r in results]
