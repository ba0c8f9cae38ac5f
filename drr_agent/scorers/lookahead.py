"""What the Reasoner answers when it is asked to conclude right after a candidate step.

Why: the DM's labels (``drr labels --kind answer``) say whether the Reasoner, asked for its
final answer right after a step, gets it right. For a final step that is the step's own
claim, which the verifier judges well (test AUROC 0.94); for an intermediate step it is what
the Reasoner *makes of* the step — a right step it fails to conclude from, a filler line
after which it answers correctly — and no statistic of the step's own text predicted it
(test AUROC 0.77). The direct estimate is to ask: one greedy forced answer per candidate,
the same prompt the labels sample four answers from, then let the verifier judge that
answer against the question (``lookahead_claim_prob``). Measured on the quickstart's 122
train + dev questions (5-fold cross-validation by question, verifier features without the
classifier): step AUROC 0.847 → 0.946, intermediate steps 0.774 → 0.924, sibling pairs
0.877 → 0.950.

The cost is one short Reasoner call per scored candidate (a few tokens after a prompt the
Reasoner has just read, which llama.cpp and vLLM keep in their prefix caches), and the DM
now needs the Reasoner: `AnswerLookahead` holds it. The DM card records how to rebuild it
(`LookaheadSpec`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from drr_agent.prompts import DEFAULT_INSTRUCTION
from drr_agent.reasoners.base import Reasoner
from drr_agent.scorers.base import StepContext
from drr_agent.usage import booked_as

__all__ = ["LOOKAHEAD_MAX_TOKENS", "AnswerLookahead", "LookaheadSpec", "lookahead_answer"]

LOOKAHEAD_MAX_TOKENS = 16
"""Tokens of a forced answer: the quickstart Reasoner's answers are a number and a full stop
(99% of 1484 dev and train answers were under 24 characters)."""

LookaheadKey = tuple[str, tuple[str, ...]]


class Recorded(Protocol):
    """A labelled step as `AnswerLookahead.remember_recorded` reads it (`StepExample`)."""

    @property
    def context(self) -> StepContext: ...

    @property
    def lookahead(self) -> str | None: ...


class LookaheadSpec(BaseModel):
    """How a DM's lookahead Reasoner is rebuilt when the DM is loaded (in the DM card).

    ``reasoner`` ``"embedded"`` is the embedded SmolLM2 (the only one a card can name; any
    other Reasoner is passed to `drr_agent.scorers.load_dm` as ``lookahead``).
    ``instruction`` is the task instruction of the training labels' prompt: the forced answer
    must be asked for as the labels asked for it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reasoner: Literal["embedded"] = "embedded"
    instruction: str = DEFAULT_INSTRUCTION
    max_tokens: int = Field(default=LOOKAHEAD_MAX_TOKENS, ge=1)

    def build(self) -> AnswerLookahead:
        from drr_agent.reasoners import embedded_reasoner

        reasoner = embedded_reasoner(temperature=0.0, max_tokens=self.max_tokens, seed=0)
        return AnswerLookahead(
            reasoner.derive(instruction=self.instruction), max_tokens=self.max_tokens
        )


async def lookahead_answer(
    reasoner: Reasoner,
    question: str,
    steps: Sequence[str],
    *,
    max_tokens: int = LOOKAHEAD_MAX_TOKENS,
    retries: int = 2,
    timeout_s: float = 120.0,
) -> str | None:
    """The Reasoner's greedy final answer right after ``steps`` (``None``: it gave none) —
    the prompt of answer-rollout labels at temperature 0, so the labeller records it beside
    its samples (`StepExample.lookahead`) at the cost of a few decoded tokens."""
    text = await reasoner.acontinue(
        question,
        steps,
        final=True,
        temperature=0.0,
        max_tokens=max_tokens,
        seed=0,
        stop=["\n"],
        retries=retries,
        timeout_s=timeout_s,
    )
    return reasoner.read_final_answer(text)[0]


class AnswerLookahead:
    """Forced greedy answers of a Reasoner after candidate steps, one call per distinct
    prefix, remembered (the graph scores a candidate, then may score it again as an answer;
    a training run reads the answers its labels recorded: `remember`).

    Args:
        reasoner: A ``prefill``-style Reasoner under the task instruction the labels used.
        max_tokens: Tokens of each answer.
        concurrency: Calls in flight at once.
        remember_at_most: Answers kept (the oldest go first): a long-running app scores
            ever new prefixes.
    """

    def __init__(
        self,
        reasoner: Reasoner,
        *,
        max_tokens: int = LOOKAHEAD_MAX_TOKENS,
        concurrency: int = 8,
        remember_at_most: int = 100_000,
    ) -> None:
        if reasoner.prompt.style != "prefill":
            raise ValueError(
                f"a lookahead continues the Reasoner after a step and needs the 'prefill' "
                f"prompt style; {reasoner.name!r} uses {reasoner.prompt.style!r}"
            )
        self.reasoner = reasoner
        self.max_tokens = max_tokens
        self._limit = concurrency
        self._keep = remember_at_most
        self._answers: dict[LookaheadKey, str | None] = {}

    @staticmethod
    def key(item: StepContext) -> LookaheadKey:
        return (item.question, (*item.steps, item.candidate))

    def remember(self, items: Sequence[StepContext], answers: Sequence[str | None]) -> None:
        """Take ``answers`` as the forced answers after ``items`` (recorded by the labeller)."""
        for item, answer in zip(items, answers, strict=True):
            self._store(self.key(item), answer)

    def remember_recorded(self, examples: Iterable[Recorded]) -> None:
        """Take the forced answers labelled steps recorded (`StepExample.lookahead`: ``""``
        when the Reasoner gave none, ``None`` when it was not asked, which is skipped)."""
        recorded = [e for e in examples if e.lookahead is not None]
        self.remember([e.context for e in recorded], [e.lookahead or None for e in recorded])

    def _store(self, key: LookaheadKey, answer: str | None) -> None:
        self._answers[key] = answer
        while len(self._answers) > self._keep:
            del self._answers[next(iter(self._answers))]

    async def aanswers(self, items: Sequence[StepContext]) -> list[str | None]:
        """The forced answer after each candidate, in order."""
        todo = list(dict.fromkeys(k for k in map(self.key, items) if k not in self._answers))
        limit = asyncio.Semaphore(self._limit)

        async def one(key: LookaheadKey) -> str | None:
            async with limit:
                return await lookahead_answer(
                    self.reasoner, key[0], key[1], max_tokens=self.max_tokens
                )

        with booked_as("lookahead"):  # the Reasoner's model, asked for the DM: kept apart
            answers = await asyncio.gather(*(one(k) for k in todo))
        asked = dict(zip(todo, answers, strict=True))
        for key, answer in asked.items():
            self._store(key, answer)
        return [asked.get(k, self._answers.get(k)) for k in map(self.key, items)]

    def answers(self, items: Sequence[StepContext]) -> list[str | None]:
        """`aanswers` from sync code: on a private event loop, in a thread of its own when
        this thread already runs one (a notebook, an async app calling ``graph.invoke``)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.aanswers(items))
        with ThreadPoolExecutor(1) as pool:  # in this context: the usage ledger follows
            return pool.submit(copy_context().run, asyncio.run, self.aanswers(items)).result()
