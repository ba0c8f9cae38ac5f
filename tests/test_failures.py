"""Bad input and failing dependencies, with doubles only: the run ends, fast, and says why."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from doubles import Runner, ScriptedChatModel, constant_dm

import drr_agent.retry
from drr_agent import (
    DRRConfig,
    DRRResult,
    FunctionScorer,
    InvalidQuestionError,
    ReasonerError,
    ScorerError,
    StepContext,
    StepScorer,
    build_graph,
)
from drr_agent.retry import aretry, retry
from drr_agent.retry import backoff_s as REAL_BACKOFF

QUESTION = {"question": "Tom has 5 apples and buys 6. How many?"}

# every graph test runs with ``invoke`` and ``ainvoke`` (the ``run`` fixture, conftest.py); the
# Reasoner is a `ScriptedChatModel` (doubles.py) told to fail or hang, the DM a `constant_dm`
pytestmark = pytest.mark.usefixtures("no_backoff")


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"question": ""}, "input field 'question' is empty"),
        ({"question": "   \n\t"}, "input field 'question' is empty"),
        ({"question": 42}, "input field 'question' must be a string, got int"),
        ({"question": None}, "input field 'question' must be a string, got NoneType"),
        ({"question": ["what?"]}, "input field 'question' must be a string, got list"),
        ({}, "input field 'question' must be a string, got NoneType"),
    ],
)
async def test_invalid_question(run: Runner, inputs: dict[str, Any], message: str) -> None:
    model = ScriptedChatModel()
    graph = build_graph(model, constant_dm())
    with pytest.raises(InvalidQuestionError) as info:
        await run(graph, inputs)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)
    assert len(model.calls) == 0


# -- Reasoner failures ----------------------------------------------------------------------------


async def test_reasoner_error_abstains(run: Runner) -> None:
    model = ScriptedChatModel(error=RuntimeError("boom"), fail_from=1)
    config = DRRConfig(on_reasoner_error="abstain", reasoner_retries=1)
    out = await run(build_graph(model, constant_dm(), config), QUESTION)
    assert out["abstained"] is True
    assert out["answer"] is None
    assert out["stop_reason"] == "reasoner_error"
    assert out["stop_detail"] == (
        "abstained: Reasoner 'ScriptedChatModel' failed: RuntimeError: boom (after 2 attempts)"
    )
    assert len(model.calls) == 2  # one retry
    result = DRRResult.from_state(out)  # a failed run still has a valid typed view
    assert result.thoughts == []
    assert result.counters["reasoner_calls"] == 1  # the failed call counts: it was made


async def test_reasoner_error_raises(run: Runner) -> None:
    model = ScriptedChatModel(error=RuntimeError("boom"), fail_from=1)
    config = DRRConfig(on_reasoner_error="raise", reasoner_retries=0)
    with pytest.raises(ReasonerError, match=r"failed: RuntimeError: boom \(after 1 attempt\)") as e:
        await run(build_graph(model, constant_dm(), config), QUESTION)
    assert isinstance(e.value.__cause__, RuntimeError)
    assert len(model.calls) == 1


async def test_reasoner_error_mid_run_keeps_progress(run: Runner) -> None:
    model = ScriptedChatModel(replies=["s1", "s2"], error=RuntimeError("server gone"), fail_from=3)
    config = DRRConfig(reasoner_retries=1)
    out = await run(build_graph(model, constant_dm(), config), QUESTION)
    assert out["stop_reason"] == "reasoner_error"
    assert "server gone" in out["stop_detail"]
    assert out["abstained"] is True
    assert out["path"] == [0, 1]
    assert [t["text"] for t in out["thoughts"]] == ["s1", "s2"]
    assert out["counters"]["reasoner_calls"] == 3  # 2 good calls + the failed one
    assert len(model.calls) == 4  # 2 good calls, then 2 failed attempts


async def test_reasoner_transient_failure_is_retried(run: Runner) -> None:
    model = ScriptedChatModel(replies=["Answer: 11"], fail_first=1)
    out = await run(build_graph(model, constant_dm(), DRRConfig(reasoner_retries=1)), QUESTION)
    assert out["stop_reason"] == "answered"
    assert out["answer"] == "11"
    assert len(model.calls) == 2
    assert out["counters"]["reasoner_calls"] == 1


async def test_reasoner_hang_times_out_fast(run: Runner) -> None:
    model = ScriptedChatModel(delay_s=10.0)
    config = DRRConfig(reasoner_timeout_s=0.05, reasoner_retries=1)
    graph = build_graph(model, constant_dm(), config)
    start = time.monotonic()
    try:
        out = await run(graph, QUESTION)
    finally:
        model.release()
    assert time.monotonic() - start < 1.0
    assert out["stop_reason"] == "reasoner_error"
    assert out["abstained"] is True
    assert "timed out" in out["stop_detail"]
    assert out["stop_detail"].endswith("(after 2 attempts)")
    assert len(model.calls) == 2


async def test_reasoner_hang_raises_when_configured(run: Runner) -> None:
    model = ScriptedChatModel(delay_s=10.0)
    config = DRRConfig(reasoner_timeout_s=0.05, reasoner_retries=0, on_reasoner_error="raise")
    try:
        with pytest.raises(ReasonerError, match="timed out") as info:
            await run(build_graph(model, constant_dm(), config), QUESTION)
    finally:
        model.release()
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_empty_reasoner_output_is_rejected_until_budget(run: Runner) -> None:
    model = ScriptedChatModel(replies=["", "\n\n", "   "])
    calls: list[StepContext] = []
    dm = FunctionScorer(lambda ctx: calls.append(ctx) or 0.9)
    out = await run(build_graph(model, dm), QUESTION)
    assert out["stop_reason"] == "exhausted"  # DRRConfig().max_retries_per_point == 3
    assert out["abstained"] is True
    # three tries (the third asked for the answer), then one closing call asking for it again,
    # since no final answer was seen: never more
    assert len(out["thoughts"]) == 4
    assert all(t["text"] == "" for t in out["thoughts"])
    assert {(t["status"], t["reason"]) for t in out["thoughts"]} == {("rejected", "empty step")}
    assert calls == []  # nothing to score: the DM is never called
    assert out["counters"]["dm_calls"] == 0
    assert out["counters"]["rejections"] == 4

    model = ScriptedChatModel(replies=[""])
    config = DRRConfig(max_retries_per_point=1000, max_reasoner_calls=30)
    out = await run(build_graph(model, dm, config), QUESTION)
    assert out["stop_reason"] == "max_reasoner_calls"
    assert len(model.calls) == 30


async def test_reasoner_that_never_answers_ends_by_budget(run: Runner) -> None:
    model = ScriptedChatModel(replies=[f"step {i}" for i in range(1, 100)])
    config = DRRConfig(force_final_answer=False)
    out = await run(build_graph(model, constant_dm(), config), QUESTION)
    assert out["stop_reason"] == "max_steps"  # DRRConfig().max_steps == 8
    assert out["abstained"] is True
    assert out["answer"] is None
    assert out["stop_detail"].endswith("abstained (no scored final answer seen)")
    assert len(out["path"]) == 8

    # the same Reasoner under a DM that rejects everything: the last try at the question is
    # asked as the final answer, and the budget's end answers with it (the best one seen) ...
    model = ScriptedChatModel(replies=[f"step {i}" for i in range(1, 100)])
    out = await run(build_graph(model, constant_dm(0.1)), QUESTION)
    assert out["stop_reason"] == "exhausted" and len(model.calls) == 3
    assert out["abstained"] is False and out["answer"] == "step 3"
    assert out["stop_detail"].endswith("answered with the best-scored final answer (score 0.100)")
    # ... unless told to abstain
    model = ScriptedChatModel(replies=[f"step {i}" for i in range(1, 100)])
    config = DRRConfig(on_budget_exhausted="abstain")
    out = await run(build_graph(model, constant_dm(0.1), config), QUESTION)
    assert out["stop_reason"] == "exhausted" and out["abstained"] is True


# -- DM failures ------------------------------------------------------------------------------


def _raise(ctx: StepContext) -> float:
    raise ValueError("dm down")


async def test_scorer_error_abstains(run: Runner) -> None:
    dm = FunctionScorer(_raise, name="broken-dm")
    config = DRRConfig(scorer_retries=1)
    out = await run(build_graph(ScriptedChatModel(), dm, config), QUESTION)
    assert out["stop_reason"] == "scorer_error"
    assert out["abstained"] is True
    assert out["answer"] is None
    assert out["stop_detail"] == (
        "abstained: DM 'broken-dm' failed: ValueError: dm down (after 2 attempts)"
    )
    # the unscored proposal stays in the tree
    assert [(t["text"], t["score"], t["status"]) for t in out["thoughts"]] == [
        ("5 + 6 = 11", None, "proposed")
    ]


async def test_scorer_error_raises(run: Runner) -> None:
    dm = FunctionScorer(_raise, name="broken-dm")
    config = DRRConfig(scorer_retries=0, on_scorer_error="raise")
    with pytest.raises(ScorerError, match="dm down"):
        await run(build_graph(ScriptedChatModel(), dm, config), QUESTION)


async def test_scorer_hang_times_out_fast(run: Runner) -> None:
    release = threading.Event()

    def slow_sync(ctx: StepContext) -> float:
        release.wait(10.0)
        return 0.9

    async def slow_async(ctx: StepContext) -> float:
        await asyncio.sleep(10.0)
        return 0.9

    # the sync path runs the sync DM in a worker thread; the async path awaits the async one
    dm = FunctionScorer(slow_sync if run.mode == "sync" else slow_async)  # type: ignore[attr-defined]
    config = DRRConfig(scorer_timeout_s=0.05, scorer_retries=1)
    start = time.monotonic()
    try:
        out = await run(build_graph(ScriptedChatModel(), dm, config), QUESTION)
    finally:
        release.set()
    assert time.monotonic() - start < 1.0
    assert out["stop_reason"] == "scorer_error"
    assert "timed out" in out["stop_detail"]


class ShortScorer(StepScorer):
    """A DM double that returns one score too few."""

    name = "short-dm"

    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        return [0.9] * (len(items) - 1)

    def score(self, items: Sequence[StepContext]) -> list[float]:
        return [0.9] * (len(items) - 1)


async def test_scorer_wrong_count_raises_when_configured(run: Runner) -> None:
    config = DRRConfig(on_scorer_error="raise")
    with pytest.raises(
        ScorerError, match=r"DM 'short-dm' failed: ValueError: returned 0 scores for 1 steps"
    ):
        await run(build_graph(ScriptedChatModel(), ShortScorer(), config), QUESTION)


async def test_scorer_wrong_count_abstains_when_configured(run: Runner) -> None:
    config = DRRConfig(on_scorer_error="abstain")
    out = await run(build_graph(ScriptedChatModel(), ShortScorer(), config), QUESTION)
    assert out["stop_reason"] == "scorer_error"
    assert out["abstained"] is True
    assert "returned 0 scores for 1 steps" in out["stop_detail"]


def _slow_sync_dm(ctx: StepContext) -> float:
    time.sleep(0.3)
    return 0.9


def answers() -> ScriptedChatModel:
    return ScriptedChatModel(replies=["Answer: 11"])


def test_sync_function_scorer_timeout_enforced_on_invoke() -> None:
    config = DRRConfig(scorer_timeout_s=0.05, scorer_retries=0)
    out = build_graph(answers(), FunctionScorer(_slow_sync_dm), config).invoke(QUESTION)
    assert out["stop_reason"] == "scorer_error"
    assert "timed out" in out["stop_detail"]


async def test_sync_function_scorer_timeout_enforced_on_ainvoke() -> None:
    config = DRRConfig(scorer_timeout_s=0.05, scorer_retries=0)
    graph = build_graph(answers(), FunctionScorer(_slow_sync_dm), config)
    out = await graph.ainvoke(QUESTION)
    assert out["stop_reason"] == "scorer_error"


# -- retry / aretry --------------------------------------------------------------------------------


class Counter:
    def __init__(self, fail: int, exc: Exception | None = None) -> None:
        self.calls = 0
        self.fail = fail
        self.exc = exc or ValueError("nope")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.fail:
            raise self.exc
        return "ok"

    async def acall(self) -> str:
        return self()


@pytest.mark.parametrize(
    ("retries", "suffix"), [(0, "1 attempt"), (1, "2 attempts"), (3, "4 attempts")]
)
def test_retry_gives_up_after_retries(retries: int, suffix: str) -> None:
    fn = Counter(fail=100)
    with pytest.raises(ReasonerError) as info:
        retry(fn, what="thing", retries=retries, timeout_s=1.0, error_cls=ReasonerError)
    assert str(info.value) == f"thing failed: ValueError: nope (after {suffix})"
    assert isinstance(info.value.__cause__, ValueError)
    assert fn.calls == retries + 1


@pytest.mark.parametrize(
    ("retries", "suffix"), [(0, "1 attempt"), (1, "2 attempts"), (3, "4 attempts")]
)
async def test_aretry_gives_up_after_retries(retries: int, suffix: str) -> None:
    fn = Counter(fail=100)
    with pytest.raises(ScorerError) as info:
        await aretry(fn.acall, what="dm", retries=retries, timeout_s=1.0, error_cls=ScorerError)
    assert str(info.value) == f"dm failed: ValueError: nope (after {suffix})"
    assert isinstance(info.value.__cause__, ValueError)
    assert fn.calls == retries + 1


def test_retry_returns_after_transient_failures() -> None:
    fn = Counter(fail=2)
    assert retry(fn, what="thing", retries=2, timeout_s=1.0, error_cls=ReasonerError) == "ok"
    assert fn.calls == 3


async def test_aretry_returns_after_transient_failures() -> None:
    fn = Counter(fail=2)
    assert await aretry(fn.acall, what="x", retries=2, timeout_s=1.0, error_cls=ScorerError) == "ok"
    assert fn.calls == 3


def test_retry_times_out_each_attempt() -> None:
    release = threading.Event()
    calls = 0

    def hang() -> str:
        nonlocal calls
        calls += 1
        release.wait(10.0)
        return "late"

    start = time.monotonic()
    try:
        with pytest.raises(ScorerError) as info:
            retry(hang, what="slow", retries=1, timeout_s=0.05, error_cls=ScorerError)
    finally:
        release.set()
    assert time.monotonic() - start < 1.0
    assert str(info.value) == "slow timed out (after 2 attempts)"
    assert isinstance(info.value.__cause__, TimeoutError)
    assert calls == 2


async def test_aretry_times_out_each_attempt() -> None:
    calls = 0

    async def hang() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10.0)
        return "late"

    start = time.monotonic()
    with pytest.raises(ReasonerError) as info:
        await aretry(hang, what="slow", retries=1, timeout_s=0.05, error_cls=ReasonerError)
    assert time.monotonic() - start < 1.0
    assert str(info.value) == "slow timed out (after 2 attempts)"
    assert calls == 2


def test_retry_wraps_errors_of_other_drr_classes() -> None:
    fn = Counter(fail=100, exc=ReasonerError("inner"))
    with pytest.raises(ScorerError, match="failed: ReasonerError: inner"):
        retry(fn, what="x", retries=0, timeout_s=1.0, error_cls=ScorerError)


def test_retry_backs_off_between_attempts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[int] = []

    def record(attempt: int) -> float:
        waits.append(attempt)
        return 0.0

    monkeypatch.setattr(drr_agent.retry, "backoff_s", record)
    with pytest.raises(ReasonerError):
        retry(Counter(fail=100), what="x", retries=2, timeout_s=1.0, error_cls=ReasonerError)
    assert waits == [1, 2]  # no wait after the last attempt


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempt in range(1, 10):
        nominal = min(
            drr_agent.retry.BACKOFF_MAX_S, drr_agent.retry.BACKOFF_INITIAL_S * 2 ** (attempt - 1)
        )
        assert nominal / 2 <= REAL_BACKOFF(attempt) <= nominal


# -- a real HTTP Reasoner server that dies mid-run ------------------------------------------------


class DyingChatServer:
    """An OpenAI-compatible chat server (real HTTP, real ``ChatOpenAI`` client) that answers
    ``serve`` requests, then shuts down: the Reasoner server killed mid-run."""

    def __init__(self, serve: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from http_fakes import chat_completion, send_json

        self.served = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.served += 1
                completion = chat_completion(
                    "5 + 6 = 11", "dying", id=f"c{outer.served}", prompt_tokens=9,
                    completion_tokens=5,
                )  # fmt: skip
                send_json(self, completion)
                if outer.served >= serve:
                    threading.Thread(target=outer.close, daemon=True).start()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_reasoner_server_killed_mid_run_ends_every_graph_with_the_configured_outcome():
    from drr_agent import openai_compatible_reasoner

    server = DyingChatServer(serve=3)
    reasoner = openai_compatible_reasoner(server.url, "dying", timeout_s=5)
    config = DRRConfig(
        on_reasoner_error="abstain", reasoner_retries=1, reasoner_timeout_s=5,
        max_steps=6, max_reasoner_calls=12, force_final_answer=False,
    )  # fmt: skip
    graph = build_graph(reasoner, constant_dm(), config)
    started = time.monotonic()
    states = await asyncio.wait_for(
        asyncio.gather(*(graph.ainvoke({"question": f"q{i}"}) for i in range(4))), timeout=60
    )
    assert time.monotonic() - started < 60
    results = [DRRResult.from_state(s) for s in states]
    assert server.served >= 3  # (concurrent requests may slip in while it shuts down)
    assert all(r.stop_reason == "reasoner_error" and r.abstained for r in results), results
    assert "failed" in results[0].stop_detail and "after 2 attempts" in results[0].stop_detail
    # what was served before the kill is kept
    assert sum(len(r.thoughts) for r in results) == server.served
