"""`SelfCritiqueScorer`: the Reasoner judges its own steps (the self-critique baseline).

DRR's baseline family replaces the trained DM with the Reasoner itself. This scorer asks a chat
model, for every `StepContext`, "Is this step correct? Answer yes or no." and turns the reply
into a probability, so the *same* graph (``build_graph(reasoner, SelfCritiqueScorer(model))``)
runs the baseline with the same loop and budgets as DRR:

- when the reply carries token log-probabilities (``ChatOpenAI`` asks for them with
  ``logprobs=True``; llama.cpp and vLLM return the top alternatives of each token), the score is
  ``P(yes) / (P(yes) + P(no))`` over the first generated token's top alternatives ("Yes", " yes",
  "YES" all count as yes);
- otherwise the text decides: 1.0 for yes, 0.0 for no, 0.5 when the reply is neither.

All items of a batch are asked concurrently (bounded by ``max_concurrency``) with ``ainvoke``, so
the event loop is never blocked; the sync `score` uses the model's ``batch``. The critic's calls
are Reasoner calls too: `usage` counts them and their tokens, so evaluations charge the baseline
for the compute it spends judging.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from drr_agent.scorers.base import StepContext, StepScorer
from drr_agent.tasks.checking import normalize_answer
from drr_agent.usage import booked_as

if TYPE_CHECKING:
    from drr_agent.reasoners.base import Reasoner

CRITIC_QUESTION = "Is this step correct? Answer yes or no."

UNCLEAR_SCORE = 0.5
"""Score of a reply that is neither yes nor no (and carries no usable log-probabilities)."""


def critique_messages(item: StepContext) -> list[BaseMessage]:
    """The critic's prompt for one candidate step: question, steps so far, the step, the ask."""
    if item.steps:
        previous = "\n".join(f"{i}. {s}" for i, s in enumerate(item.steps, 1))
    else:
        previous = "(none)"
    text = (
        f"Question: {item.question.strip()}\n\n"
        f"Steps so far:\n{previous}\n\n"
        f"Next step: {item.candidate.strip()}\n\n"
        f"{CRITIC_QUESTION}"
    )
    return [HumanMessage(text)]


def _yes_no(token: str) -> str | None:
    word = token.strip().strip(".,:;!?'\"*").casefold()
    return word if word in ("yes", "no") else None


def probability_from_logprobs(logprobs: Any) -> float | None:
    """``P(yes) / (P(yes) + P(no))`` from OpenAI-style ``logprobs``, or ``None`` if unusable.

    Reads the first generated token that is not whitespace: its ``top_logprobs`` alternatives
    when present, else the token itself (a yes with log-probability ``l`` is ``exp(l)``, a no is
    ``1 - exp(l)``).
    """
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    first = next((t for t in content if str(t.get("token", "")).strip()), None)
    if first is None:
        return None
    mass = {"yes": 0.0, "no": 0.0}
    for alt in first.get("top_logprobs") or []:
        word = _yes_no(str(alt.get("token", "")))
        if word is not None and alt.get("logprob") is not None:
            mass[word] += math.exp(float(alt["logprob"]))
    if mass["yes"] + mass["no"] > 0.0:
        return mass["yes"] / (mass["yes"] + mass["no"])
    word = _yes_no(str(first.get("token", "")))
    if word is None or first.get("logprob") is None:
        return None
    p = math.exp(float(first["logprob"]))
    return p if word == "yes" else 1.0 - p


def probability_from_reply(message: BaseMessage) -> float:
    """The critic's reply as a probability that the step is correct (see the module docstring)."""
    from_logprobs = probability_from_logprobs(
        (getattr(message, "response_metadata", None) or {}).get("logprobs")
    )
    if from_logprobs is not None:
        return from_logprobs
    text = message.content if isinstance(message.content, str) else message.text
    verdict = normalize_answer(text, "boolean")
    if verdict == "yes":
        return 1.0
    if verdict == "no":
        return 0.0
    return UNCLEAR_SCORE


class SelfCritiqueScorer(StepScorer):
    """A `StepScorer` that asks a chat model (usually the Reasoner's own) to judge each step.

    Args:
        model: Any LangChain chat model; for the self-critique baseline, the Reasoner's model.
        logprobs: Ask for token log-probabilities (``logprobs=True, top_logprobs=N``, the
            OpenAI-compatible call options). Set ``False`` for models that reject them; the
            text of the reply is used then.
        top_logprobs: Alternatives per token to ask for.
        temperature: Call option for the critic (greedy by default); ``None`` keeps the model's.
        max_tokens: Call option bounding the reply; ``None`` keeps the model's.
        max_concurrency: Critic requests in flight at once per batch.
        name: Recorded as the scorer's name.
        thresholds: Accept / answer thresholds for this critic. A model's P("yes") is not
            calibrated to 0.5 (SmolLM2-135M says "yes" with 0.4–0.5 to nearly every step), so
            a fair baseline picks them on labelled training steps, as ``drr train`` does for
            the DM (`drr_agent.offline.dm_eval.calibrate_thresholds`).

    Attributes:
        usage: ``{"calls", "prompt_tokens", "completion_tokens"}`` spent by this scorer so far.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        logprobs: bool = True,
        top_logprobs: int = 10,
        temperature: float | None = 0.0,
        max_tokens: int | None = 4,
        max_concurrency: int = 8,
        name: str | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> None:
        if not isinstance(model, BaseChatModel):
            raise TypeError(
                f"SelfCritiqueScorer needs a LangChain chat model, got {type(model).__name__}"
            )
        self.model = model
        self.max_concurrency = max_concurrency
        self.name = name or f"self-critique:{type(model).__name__}"
        self._kwargs: dict[str, Any] = {}
        if logprobs:
            self._kwargs.update(logprobs=True, top_logprobs=top_logprobs)
        if temperature is not None:
            self._kwargs["temperature"] = temperature
        if max_tokens is not None:
            self._kwargs["max_tokens"] = max_tokens
        self.usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._usage_lock = threading.Lock()
        self._thresholds = dict(thresholds or {})

    @classmethod
    def of(cls, reasoner: Reasoner, **options: Any) -> SelfCritiqueScorer:
        """The Reasoner as its own critic: its chat model, named ``self-critique:<reasoner>``
        (``options`` as for the constructor). The one place the baseline is built, so the
        evaluation, the quickstart and ``drr eval`` calibrate and run the same critic."""
        options.setdefault("name", f"self-critique:{reasoner.name}")
        return cls(reasoner.model, **options)

    @property
    def thresholds(self) -> dict[str, float]:
        return self._thresholds

    def _count(self, message: BaseMessage) -> None:
        usage = getattr(message, "usage_metadata", None) or {}
        with self._usage_lock:
            self.usage["calls"] += 1
            self.usage["prompt_tokens"] += int(usage.get("input_tokens", 0))
            self.usage["completion_tokens"] += int(usage.get("output_tokens", 0))

    def _score_reply(self, message: BaseMessage) -> float:
        self._count(message)
        return probability_from_reply(message)

    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        semaphore = asyncio.Semaphore(self.max_concurrency)

        async def one(item: StepContext) -> float:
            async with semaphore:
                reply = await self.model.ainvoke(critique_messages(item), **self._kwargs)
            return self._score_reply(reply)

        with booked_as("critic"):  # the Reasoner's model judging: kept apart in the ledger
            return list(await asyncio.gather(*(one(item) for item in items)))

    def score(self, items: Sequence[StepContext]) -> list[float]:
        with booked_as("critic"):
            replies = self.model.batch(
                [critique_messages(item) for item in items],
                config={"max_concurrency": self.max_concurrency},
                **self._kwargs,
            )
        return [self._score_reply(reply) for reply in replies]
