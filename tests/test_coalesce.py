"""Coalescing concurrent score calls: each caller its own results, fewer forward passes."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from drr_agent import StepContext
from drr_agent.scorers import FunctionScorer
from drr_agent.scorers.coalesce import Coalescer
from drr_agent.scorers.likelihood import (
    HEAD_INPUTS,
    LIKELIHOOD_FEATURES,
    LikelihoodHead,
    LikelihoodScorer,
)


class SlowBatch:
    """A batch function that takes a while (as a forward pass does) and records its batches."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        await asyncio.sleep(0.05)
        if self.fail_on in items:
            raise ValueError(f"cannot score {self.fail_on}")
        return [item.upper() for item in items]


async def test_calls_that_arrive_during_a_pass_share_the_next_one():
    fn = SlowBatch()
    coalesced = Coalescer(fn)
    first = asyncio.ensure_future(coalesced(["a0", "b0"]))
    await asyncio.sleep(0.01)  # the first call found the scorer idle: its pass is running
    later = [asyncio.ensure_future(coalesced([f"a{i}", f"b{i}"])) for i in range(1, 8)]
    results = [await first, *[await task for task in later]]
    assert results == [[f"A{i}", f"B{i}"] for i in range(8)]  # each caller, its own, in order
    assert fn.batches[0] == ["a0", "b0"] and len(fn.batches) == 2 and len(fn.batches[1]) == 14
    assert coalesced.calls == 2


async def test_calls_made_together_go_in_one_pass():
    fn = SlowBatch()
    coalesced = Coalescer(fn)
    results = await asyncio.gather(*(coalesced([f"x{i}"]) for i in range(5)))
    assert results == [[f"X{i}"] for i in range(5)] and len(fn.batches) == 1


async def test_a_lone_caller_runs_at_once_and_empty_calls_cost_nothing():
    fn = SlowBatch()
    coalesced = Coalescer(fn)
    assert await coalesced(["x"]) == ["X"]
    assert await coalesced(["y"]) == ["Y"]
    assert await coalesced([]) == []
    assert fn.batches == [["x"], ["y"]]


async def test_a_failed_pass_reaches_its_callers_and_no_others():
    fn = SlowBatch(fail_on="bad")
    coalesced = Coalescer(fn)
    first = asyncio.ensure_future(coalesced(["ok"]))
    await asyncio.sleep(0.01)  # the first pass is running: these two wait for the next
    waiting = [asyncio.ensure_future(coalesced(["bad"])), asyncio.ensure_future(coalesced(["x"]))]
    assert await first == ["OK"]
    for task in waiting:
        with pytest.raises(ValueError, match="cannot score bad"):
            await task
    assert await coalesced(["later"]) == ["LATER"]  # the coalescer is not stuck


async def test_a_cancelled_caller_is_left_out_and_the_rest_still_get_answers():
    fn = SlowBatch()
    coalesced = Coalescer(fn)
    first = asyncio.ensure_future(coalesced(["a"]))
    await asyncio.sleep(0.01)
    gone = asyncio.ensure_future(coalesced(["gone"]))
    kept = asyncio.ensure_future(coalesced(["kept"]))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == ["A"] and await kept == ["KEPT"]
    assert ["gone"] not in fn.batches and fn.batches[-1] == ["kept"]


async def test_a_batch_function_that_loses_rows_is_an_error():
    async def short(items: list[str]) -> list[str]:
        return items[:-1]

    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        await Coalescer(short)(["a", "b"])


def test_each_event_loop_has_its_own_queue():
    coalesced = Coalescer(SlowBatch())
    assert asyncio.run(coalesced(["a"])) == ["A"]
    assert asyncio.run(coalesced(["b"])) == ["B"]  # a new loop (sync score) works too


class CountingFeatures:
    """Likelihood statistics of zeros that count the rows of each call (no model)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def features(self, items, *, claims=True):
        self.calls.append(len(items))
        return np.zeros((len(items), len(LIKELIHOOD_FEATURES)))


async def test_likelihood_dm_scores_concurrent_graphs_in_shared_passes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, len(HEAD_INPUTS)))
    head = LikelihoodHead.fit(x, (x[:, HEAD_INPUTS.index("classifier_logit")] > 0).astype(float))

    async def classifier(context: StepContext) -> float:
        await asyncio.sleep(0.02)
        return 0.9 if context.candidate == "good" else 0.1

    features = CountingFeatures()
    dm = LikelihoodScorer(FunctionScorer(classifier), head, features)  # type: ignore[arg-type]
    scores = await asyncio.gather(
        *(dm.ascore([StepContext(f"q{i}", (), "good" if i % 2 else "bad")]) for i in range(6))
    )
    assert features.calls == [6]  # six graphs, one pass of the LM
    assert all(s[0] > 0.5 for s in scores[1::2]) and all(s[0] < 0.5 for s in scores[::2])
