"""Integration: the DRR graph on the real embedded Reasoner and a real MiniLM DM (CPU)."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from drr_agent import DRRConfig, DRRResult, Reasoner, ReasonerError, build_graph

pytestmark = pytest.mark.embedded

# The untrained head scores everything close to 0.5: accepting at 0 exercises full runs.
SHORT = DRRConfig(accept_threshold=0.0, answer_threshold=0.0, max_steps=3, max_reasoner_calls=6)


def _check_tree(state) -> DRRResult:
    result = DRRResult.from_state(state)
    assert result.counters["reasoner_calls"] >= 1
    assert result.thoughts, "every run proposes at least one thought"
    assert [t["id"] for t in result.thoughts] == list(range(len(result.thoughts)))
    for t in result.thoughts:
        assert t["status"] != "proposed", "every proposed thought gets a decision"
        if t["text"]:
            assert t["score"] is not None and 0.0 <= t["score"] <= 1.0
        assert t["parent"] is None or t["parent"] < t["id"]
    assert result.abstained == (result.answer is None)
    assert result.stop_reason is not None and result.stop_detail
    assert result.counters["completion_tokens"] > 0 and result.counters["prompt_tokens"] > 0
    return result


async def test_end_to_end_async(embedded, untrained_dm):
    graph = build_graph(embedded, untrained_dm, SHORT)
    state = await graph.ainvoke({"question": "What is 7 + 4?"})
    result = _check_tree(state)
    # each text is read once at its point (a repeat takes the score it had there)
    assert result.counters["dm_items"] == len(
        {(t["parent"], t["text"]) for t in result.thoughts if t["text"]}
    )


def test_end_to_end_sync_streams_one_event_per_decision(embedded, untrained_dm):
    graph = build_graph(embedded, untrained_dm, SHORT)
    events, final = [], None
    for mode, chunk in graph.stream(
        {"question": "What is 9 - 3?"}, stream_mode=["custom", "values"]
    ):
        if mode == "custom":
            events.append(chunk)
        else:
            final = chunk
    result = _check_tree(final)
    assert len(events) == result.counters["reasoner_calls"]  # one decide per reason→score cycle
    assert all(e["type"] == "drr.decision" for e in events)
    assert events[-1]["route"] in ("answer", "stop")
    assert {"thought", "score", "route", "accept_threshold"} <= set(events[0])


async def test_abatch_several_questions(embedded, untrained_dm):
    graph = build_graph(embedded, untrained_dm, SHORT)
    questions = ["What is 2 + 3?", "What is 8 - 5?", "What is 4 + 4?"]
    states = await graph.abatch([{"question": q} for q in questions])
    assert [s["question"] for s in states] == questions
    for state in states:
        _check_tree(state)


async def test_runs_inside_a_parent_graph(embedded, untrained_dm):
    class Parent(TypedDict, total=False):
        question: str
        answer: str | None
        abstained: bool
        log: Annotated[list[str], operator.add]

    drr = build_graph(embedded, untrained_dm, SHORT, name="drr")
    parent = StateGraph(Parent)
    parent.add_node("ask", lambda s: {"question": s["question"].strip(), "log": ["ask"]})
    parent.add_node("drr", drr)
    parent.add_node("report", lambda s: {"log": [f"answered={not s['abstained']}"]})
    parent.add_edge(START, "ask")
    parent.add_edge("ask", "drr")
    parent.add_edge("drr", "report")
    parent.add_edge("report", END)
    app = parent.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "parent-1"}}
    out = await app.ainvoke({"question": "  What is 5 + 1?  "}, config)
    assert out["log"][0] == "ask" and out["log"][-1].startswith("answered=")
    assert "abstained" in out
    # the subgraph's decisions stream through the parent
    events = [
        chunk
        async for _, chunk in app.astream(
            {"question": "What is 3 + 3?"},
            {"configurable": {"thread_id": "parent-2"}},
            stream_mode="custom",
            subgraphs=True,
        )
    ]
    assert events and all(e["type"] == "drr.decision" for e in events)


class _DiesOnCall(Reasoner):
    """The real Reasoner, but the process 'dies' on a given call (as if killed)."""

    def __init__(self, inner: Reasoner, die_on: int) -> None:
        super().__init__(inner.model, inner.prompt, inner.name)
        self.calls, self.die_on = 0, die_on

    async def apropose(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.die_on:
            raise ConnectionError("simulated crash")
        return await super().apropose(*args, **kwargs)

    def propose(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.die_on:
            raise ConnectionError("simulated crash")
        return super().propose(*args, **kwargs)


def _resume_config() -> DRRConfig:
    # no answer can end the run early (the untrained head scores ~0.5 < 1.0), so call 3 happens
    return SHORT.model_copy(
        update={
            "max_steps": 4,
            "answer_threshold": 1.0,
            "force_final_answer": False,
            "on_reasoner_error": "raise",
            "reasoner_retries": 0,
        }
    )


def test_resumes_from_sqlite_checkpoint(tmp_path, embedded, untrained_dm):
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = tmp_path / "drr.sqlite"
    thread = {"configurable": {"thread_id": "q1"}}
    with SqliteSaver.from_conn_string(str(db)) as saver:
        dying = build_graph(
            _DiesOnCall(embedded, die_on=3), untrained_dm, _resume_config(), checkpointer=saver
        )
        with pytest.raises(ReasonerError, match="simulated crash"):
            dying.invoke({"question": "What is 6 + 2?"}, thread)
        before = dying.get_state(thread).values
        assert before["counters"]["reasoner_calls"] == 2
    # a new process: same database, a healthy Reasoner
    with SqliteSaver.from_conn_string(str(db)) as saver:
        graph = build_graph(embedded, untrained_dm, _resume_config(), checkpointer=saver)
        state = graph.invoke(None, thread)
    result = _check_tree(state)
    kept = [(t["id"], t["text"], t["score"], t["call"]) for t in before["thoughts"]]
    resumed = result.thoughts[: len(kept)]
    assert [(t["id"], t["text"], t["score"], t["call"]) for t in resumed] == kept
    assert result.counters["reasoner_calls"] == len({t["call"] for t in result.thoughts})
    assert result.counters["reasoner_calls"] >= 3


async def test_resumes_from_async_sqlite_checkpoint(tmp_path, embedded, untrained_dm):
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    db = tmp_path / "drr-async.sqlite"
    thread = {"configurable": {"thread_id": "q2"}}
    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        dying = build_graph(
            _DiesOnCall(embedded, die_on=2), untrained_dm, _resume_config(), checkpointer=saver
        )
        with pytest.raises(ReasonerError):
            await dying.ainvoke({"question": "What is 4 + 5?"}, thread)
    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        graph = build_graph(embedded, untrained_dm, _resume_config(), checkpointer=saver)
        state = await graph.ainvoke(None, thread)
        history = [s async for s in graph.aget_state_history(thread)]
    result = _check_tree(state)
    assert result.thoughts[0]["call"] == 1 and result.counters["reasoner_calls"] >= 2
    assert len(history) > 3  # every super-step is replayable from the checkpoint


async def test_first_candidate_is_greedy_and_a_rejection_changes_the_next(embedded):
    """On the real model: the first candidate at a new point is the greedy step, and after
    the critic rejects it the prompt (which lists it) and sampling give a different step."""
    from drr_agent import FunctionScorer

    seen: set[str] = set()

    def reject_each_first_step_once(context) -> float:
        if context.steps:
            return 1.0
        fresh = context.candidate not in seen
        seen.add(context.candidate)
        return 0.0 if fresh else 1.0

    config = DRRConfig(
        accept_threshold=0.5, answer_threshold=0.5, max_steps=2, max_reasoner_calls=6,
        max_retries_per_point=3, greedy_first=True,
    )  # fmt: skip
    question = "Calculate 8 - 1."
    greedy = (await embedded.apropose(question, [], greedy_first=True))[0].text
    scorer = FunctionScorer(reject_each_first_step_once)
    result = DRRResult.from_state(
        await build_graph(embedded, scorer, config).ainvoke({"question": question})
    )
    roots = [t for t in result.thoughts if t["parent"] is None]
    assert roots[0]["text"] == greedy and roots[0]["status"] == "rejected", roots
    assert len(roots) >= 2 and roots[1]["text"] != roots[0]["text"], roots
