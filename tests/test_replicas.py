"""Replicated endpoints: least-outstanding routing, ejection, failover — over real sockets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from http_fakes import FakeChat, FakeVLLM, expected_score, step_context

from drr_agent import DRRConfig, ScorerError, build_graph
from drr_agent.reasoners import openai_compatible_reasoner
from drr_agent.replicas import LoopLocalTransport, ReplicaPool, split_urls
from drr_agent.scorers import FunctionScorer, RemoteScorer

pytestmark = pytest.mark.usefixtures("no_backoff")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_split_urls_names_what_is_wrong():
    assert split_urls(" http://a:1/v1/, http://b:2/v1 ") == ["http://a:1/v1", "http://b:2/v1"]
    with pytest.raises(ValueError, match="no server URL"):
        split_urls(" , ")
    with pytest.raises(ValueError, match="'a:1' is not an http"):
        split_urls("http://b:2,a:1")


def test_pool_routes_to_fewest_in_flight_and_ejects_a_failing_replica():
    clock = Clock()
    pool = ReplicaPool(["http://a:1/v1", "http://b:2/v1", "http://c:3/v1"], clock=clock)
    a, b, c = pool.replicas
    assert [pool.acquire() for _ in range(3)] == [a, b, c]  # one each
    pool.release(b)
    assert pool.acquire() is b  # b has nothing in flight now
    pool.release(a, "ConnectError")  # a fails: out for eject_s
    pool.release(c)
    assert pool.acquire() is c  # c: 0 in flight; a is out
    assert pool.acquire() is b or pool.acquire() is b
    clock.now += pool.eject_s + 0.1
    assert pool.acquire() in (a,)  # back, and the least loaded
    pool.release(a, "HTTP 503")
    assert pool.replicas[0].down_until == pytest.approx(clock.now + 2 * pool.eject_s)  # doubled
    # every replica out: the one whose time ends first is still tried
    pool.release(b, "x")
    pool.release(c, "x")
    assert pool.acquire() in (b, c)
    assert pool.acquire(tried=[a, b, c]) is None
    message = str(pool.all_failed())
    assert all(u in message for u in ("http://a:1/v1", "http://b:2/v1", "http://c:3/v1"))


def test_pool_retargets_origin_and_path_prefix():
    pool = ReplicaPool(["http://a:1/v1", "https://b:2/api/v1"])
    url = httpx.URL("http://a:1/v1/chat/completions?x=1")
    assert str(pool.target(url, pool.replicas[1])) == "https://b:2/api/v1/chat/completions?x=1"
    assert pool.target(url, pool.replicas[0]) == url


async def test_remote_scorer_spreads_over_replicas_and_survives_one_dying():
    servers = [FakeVLLM(delay_s=0.05), FakeVLLM(delay_s=0.05)]
    try:
        scorer = RemoteScorer([s.url for s in servers], max_wait_ms=0, max_batch=1, retries=2)
        ctxs = [step_context(i) for i in range(16)]
        scores = await asyncio.gather(*(scorer.ascore([c]) for c in ctxs))
        assert [s[0] for s in scores] == pytest.approx([expected_score(c) for c in ctxs])
        assert all(len(s.batches) >= 4 for s in servers), [s.batches for s in servers]
        servers[0].close()  # one replica goes away: every request still gets its score
        before = len(servers[1].batches)
        scores = await asyncio.gather(*(scorer.ascore([c]) for c in ctxs))
        assert [s[0] for s in scores] == pytest.approx([expected_score(c) for c in ctxs])
        assert len(servers[1].batches) == before + 16
        assert scorer.score([ctxs[0]]) == pytest.approx([expected_score(ctxs[0])])  # sync path too
        snapshot = scorer.pool.snapshot()
        assert snapshot[0]["ejected"] and not snapshot[1]["ejected"]
        servers[1].close()  # all down: a clear error naming every replica
        with pytest.raises(ScorerError, match="all 2 replicas failed") as info:
            await scorer.ascore([ctxs[0]])
        assert servers[0].url in str(info.value) and servers[1].url in str(info.value)
        await scorer.aclose()
    finally:
        for s in servers:
            s.close()


async def test_a_5xx_replica_is_skipped_at_once():
    bad, good = FakeVLLM(fail_first=100), FakeVLLM()
    try:
        scorer = RemoteScorer([bad.url, good.url], max_wait_ms=0, retries=0)
        for i in range(4):  # no retry budget: the failover itself must find the good one
            assert await scorer.ascore([step_context(i)]) == pytest.approx(
                [expected_score(step_context(i))]
            )
        assert len(good.batches) == 4
        await scorer.aclose()
    finally:
        bad.close()
        good.close()


async def test_reasoner_replicas_run_graphs_through_a_replica_dying():
    chats = [FakeChat("a", delay_s=0.02), FakeChat("b", delay_s=0.02)]
    try:
        reasoner = openai_compatible_reasoner(
            ",".join(c.url for c in chats), "fake", style="chat", temperature=0.0
        )
        graph = build_graph(
            reasoner,
            FunctionScorer(lambda ctx: 0.9),
            DRRConfig(max_steps=4, reasoner_retries=2, accept_threshold=0.5),
        )
        question = {"question": "What is 3 + 4?"}
        results = await graph.abatch([question] * 8)
        assert [r["answer"] for r in results] == ["7"] * 8
        assert chats[0].calls >= 4 and chats[1].calls >= 4
        chats[0].close()
        results = await graph.abatch([question] * 8)
        assert [r["answer"] for r in results] == ["7"] * 8
        assert graph.invoke(question)["answer"] == "7"  # the sync client as well
        chats[1].close()
        result = await graph.ainvoke(question)
        assert result["abstained"] and "all 2 replicas failed" in result["stop_detail"]
        assert chats[0].url in result["stop_detail"] and chats[1].url in result["stop_detail"]
    finally:
        for c in chats:
            c.close()


_SERVE = """
import sys, time
from drr_agent.models import embedded_gguf_path
from drr_agent.reasoners.embedded import start_llama_server
print(start_llama_server(embedded_gguf_path(), parallel=4), flush=True)
time.sleep(3600)
"""


@pytest.mark.embedded
async def test_two_embedded_llama_servers_one_killed_mid_batch():
    """The real thing: two SmolLM2 llama.cpp servers, one SIGKILLed while graphs run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", _SERVE], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    try:
        urls = [p.stdout.readline().strip() + "/v1" for p in procs]  # type: ignore[union-attr]
        assert all(u.startswith("http://127.0.0.1:") for u in urls), urls
        reasoner = openai_compatible_reasoner(
            urls, "smollm2", style="prefill", temperature=0.7, seed=1, max_tokens=24
        )
        config = DRRConfig(max_steps=3, reasoner_retries=2, max_reasoner_calls=6)
        graph = build_graph(reasoner, FunctionScorer(lambda ctx: 0.9), config)
        questions = [{"question": f"Calculate {i} + {i + 1}."} for i in range(12)]
        run = asyncio.ensure_future(graph.abatch(questions))
        await asyncio.sleep(1.0)
        procs[0].kill()  # mid-batch
        results = await asyncio.wait_for(run, 300)
        assert all(not r["abstained"] for r in results), [r["stop_detail"] for r in results]
        assert all(r["answer"] for r in results)
        assert reasoner.model.http_async_client._transport.pool.snapshot()[0]["ejected"]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_each_event_loop_gets_its_own_connection_pool():
    made: list[httpx.AsyncBaseTransport] = []

    def factory() -> httpx.AsyncBaseTransport:
        made.append(httpx.MockTransport(lambda request: httpx.Response(200, text="ok")))
        return made[-1]

    transport = LoopLocalTransport(factory)

    async def twice() -> tuple[httpx.AsyncBaseTransport, httpx.AsyncBaseTransport]:
        client = httpx.AsyncClient(transport=transport)  # a client that outlives its loop
        assert (await client.get("http://127.0.0.1:9/")).text == "ok"
        return transport.current(), transport.current()

    first = asyncio.run(twice())
    second = asyncio.run(twice())
    assert first[0] is first[1] and second[0] is second[1]  # one pool within a loop
    assert first[0] is not second[0] and len(made) == 2  # a new loop never reuses the old one


@pytest.mark.embedded
def test_the_embedded_reasoner_runs_in_one_asyncio_run_after_another():
    # a shared client would reuse the first loop's keep-alive connection: "Event loop is closed"
    from drr_agent.reasoners import embedded_reasoner

    reasoner = embedded_reasoner(max_tokens=6, seed=1)
    for _ in range(3):
        (step,) = asyncio.run(reasoner.apropose("Calculate 2 + 3.", [], greedy_first=True))
        assert step.text.strip()
