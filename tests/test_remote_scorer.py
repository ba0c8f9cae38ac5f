"""RemoteScorer against a real local HTTP server that speaks vLLM's /score (no vLLM needed)."""

from __future__ import annotations

import asyncio
import time

import pytest
from http_fakes import FakeVLLM, expected_score, step_context

from drr_agent import DRRConfig, DRRResult, ScorerError, build_graph
from drr_agent.scorers import RemoteScorer, StepContext

pytestmark = pytest.mark.usefixtures("no_backoff")


@pytest.fixture
def fake():
    server = FakeVLLM()
    yield server
    server.close()


async def test_concurrent_requests_share_one_call(fake):
    scorer = RemoteScorer(fake.url, max_wait_ms=20)
    items = [[step_context(i), step_context(i + 100)] for i in range(20)]
    results = await asyncio.gather(*(scorer.ascore(batch) for batch in items))
    assert results == [[expected_score(a), expected_score(b)] for a, b in items]
    assert fake.batches == [40] and scorer.http_calls == 1
    await scorer.aclose()


async def test_bursts_larger_than_max_batch_are_split_in_order(fake):
    scorer = RemoteScorer(fake.url, max_batch=16, max_wait_ms=20)
    many = [step_context(i) for i in range(50)]
    singles = await asyncio.gather(*(scorer.ascore([c]) for c in many))
    assert [s[0] for s in singles] == [expected_score(c) for c in many]
    assert sorted(fake.batches) == [2, 16, 16, 16]
    big = await scorer.ascore(many)  # one request bigger than a batch is still answered
    assert big == [expected_score(c) for c in many]
    await scorer.aclose()


def test_sync_scoring_and_event_loops_come_and_go(fake):
    scorer = RemoteScorer(fake.url, max_batch=8)
    items = [step_context(i) for i in range(10)]
    assert scorer.score(items) == [expected_score(c) for c in items]
    assert fake.batches == [8, 2]
    # one scorer used from two event loops in turn (as two asyncio.run calls)
    for _ in range(2):
        assert asyncio.run(scorer.ascore(items[:3])) == [expected_score(c) for c in items[:3]]


async def test_server_errors_are_retried_then_reported(fake):
    fake.fail_first = 2
    scorer = RemoteScorer(fake.url, retries=2)
    assert await scorer.ascore([step_context(1)]) == [expected_score(step_context(1))]
    fake.fail_first = 5
    with pytest.raises(ScorerError, match=r"DM server http://127\.0\.0\.1:\d+.*500.*3 attempts"):
        await scorer.ascore([step_context(1)])
    await scorer.aclose()


async def test_a_refused_request_is_not_retried(fake):
    fake.fail_first, fake.fail_status = 5, 400
    scorer = RemoteScorer(fake.url, retries=3)
    with pytest.raises(ScorerError, match=r"400 .*bad input \(after 1 attempt\)"):
        await scorer.ascore([step_context(1)])
    with pytest.raises(ScorerError, match=r"400 .*bad input \(after 1 attempt\)"):
        scorer.score([step_context(1)])
    assert fake.fail_first == 3 and scorer.http_calls == 2
    fake.fail_first, fake.fail_status = 1, 429  # "too many requests" is worth another try
    assert await scorer.ascore([step_context(1)]) == [expected_score(step_context(1))]
    await scorer.aclose()


async def test_a_server_that_is_down_fails_fast_and_clearly():
    scorer = RemoteScorer("http://127.0.0.1:9/", retries=1, timeout_s=2)  # nothing listens
    started = time.perf_counter()
    with pytest.raises(ScorerError, match=r"DM server http://127\.0\.0\.1:9 .*ConnectError"):
        await scorer.ascore([step_context(1)])
    assert time.perf_counter() - started < 10
    with pytest.raises(ScorerError, match="2 attempts"):
        scorer.score([step_context(1)])


async def test_killing_the_server_mid_run_ends_graphs_with_the_configured_fallback(until):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from drr_agent import Reasoner

    server = FakeVLLM(delay_s=0.05)
    scorer = RemoteScorer(server.url, retries=1, timeout_s=2, thresholds={"accept_threshold": 0})

    def reasoner():
        return Reasoner(FakeListChatModel(responses=[f"step {i}" for i in range(100)]))

    config = DRRConfig(max_steps=50, max_reasoner_calls=50, force_final_answer=False)
    runs = [
        build_graph(reasoner(), scorer, config).ainvoke({"question": f"q{i}"}) for i in range(4)
    ]
    tasks = [asyncio.ensure_future(r) for r in runs]
    await until(lambda: bool(server.batches), "a first batch at the DM server")
    server.close()  # the DM server dies while four graphs are mid-run
    finished = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)  # nothing hangs
    for state in finished:
        result = DRRResult.from_state(state)
        assert result.abstained and result.stop_reason == "scorer_error"
        assert "DM server" in result.stop_detail
    # and with on_scorer_error="raise" the caller gets the error itself
    graph = build_graph(reasoner(), scorer, config.model_copy(update={"on_scorer_error": "raise"}))
    with pytest.raises(ScorerError, match="DM server"):
        await graph.ainvoke({"question": "q"})


async def test_the_key_is_sent_only_when_given(fake, monkeypatch):
    monkeypatch.delenv("DRR_DM_API_KEY", raising=False)
    item = [StepContext("q", (), "a")]
    RemoteScorer(fake.url).score(item)
    RemoteScorer(fake.url, api_key="k1").score(item)
    monkeypatch.setenv("DRR_DM_API_KEY", "k2")
    await RemoteScorer(fake.url).ascore(item)
    assert fake.authorization == [None, "Bearer k1", "Bearer k2"]
