"""Instant test doubles for timing the DRR graph alone: a chat model and scorers that answer at
once, and seeded arithmetic questions to ask them (see `evals.benchmarks.graph_overhead`)."""

from __future__ import annotations

import itertools
import random
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from drr_agent import FunctionScorer, StepContext

ACCEPT_SCORE = 0.9


class InstantChatModel(BaseChatModel):
    """Returns one reasoning step at once; every step is new and carries no final answer.

    The texts are unique (a counter) so the policy never rejects a step as a repeat of one
    already on the path.
    """

    _counter: itertools.count[int] = PrivateAttr(default_factory=itertools.count)

    @property
    def _llm_type(self) -> str:
        return "instant-fake"

    def _result(self) -> ChatResult:
        k = next(self._counter)
        message = AIMessage(f"Intermediate result {k}: carry the partial sum forward.")
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result()


def constant_accept(_: StepContext) -> float:
    return ACCEPT_SCORE


async def aconstant_accept(_: StepContext) -> float:
    return ACCEPT_SCORE


def instant_scorers() -> tuple[FunctionScorer, FunctionScorer]:
    """``(for invoke, for ainvoke)``: both answer at once on their own path.

    `FunctionScorer.ascore` runs a *sync* function in a worker thread (a real checker may be
    slow), and `FunctionScorer.score` runs an *async* one on a fresh event loop; either hop
    would be a cost of the double, not of the graph, so each mode gets the native kind.
    """
    return (
        FunctionScorer(constant_accept, name="constant-0.9"),
        FunctionScorer(aconstant_accept, name="constant-0.9"),
    )


def arithmetic_questions(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    questions = []
    for _ in range(n):
        a, b = rng.randint(2, 49), rng.randint(2, 49)
        op = rng.choice(["+", "-", "*"])
        questions.append(f"What is {a} {op} {b}?")
    return questions
