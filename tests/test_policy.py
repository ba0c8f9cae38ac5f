"""The routing policy: `drr_agent.policy.decide` directly, and the compiled graph with doubles.

Doubles only (doubles.py): `ScriptedChatModel` (replies from a script and records every call),
LangChain's `FakeListChatModel`, and `FunctionScorer` DMs (`scripted_dm`). Graph tests run on
both the sync (`invoke`) and the async (`ainvoke`) path (the ``run`` fixture, conftest.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from doubles import Call, Runner, ScriptedChatModel, scripted_dm
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langgraph.errors import GraphRecursionError

from drr_agent import (
    DRRConfig,
    FunctionScorer,
    Reasoner,
    StepContext,
    StepFormat,
    Thought,
    build_graph,
)
from drr_agent.policy import decide, last_step_allowed, rejected_texts, rejections_at
from drr_agent.prompts import StepPrompt
from drr_agent.state import Counters, new_counters

FMT = StepFormat()
HEADER = StepPrompt().rejected_header
QUESTION = {"question": "Tom has 5 apples and buys 6. How many?"}


def rows(out: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(id, parent, depth, text, score, status, call) of every thought."""
    return [
        (t["id"], t["parent"], t["depth"], t["text"], t["score"], t["status"], t["call"])
        for t in out["thoughts"]
    ]


# -- decide(), directly ---------------------------------------------------------------------------


def th(
    tid: int,
    parent: int | None,
    text: str,
    score: float | None,
    status: str = "proposed",
    depth: int = 1,
) -> Thought:
    return Thought(
        id=tid,
        parent=parent,
        depth=depth,
        text=text,
        answer=FMT.extract_answer(text) if text else None,
        score=score,
        status=status,  # type: ignore[typeddict-item]
        reason="",
        call=1,
        completion_tokens=0,
    )


def counters(**values: int) -> Counters:
    c = new_counters()
    c.update(values)  # type: ignore[typeddict-item]
    return c


def cfg(**kwargs: Any) -> DRRConfig:
    return DRRConfig(**kwargs)


def test_decide_continue_accepts_passing_step() -> None:
    tree = [th(0, None, "5 + 6 = 11", 0.9)]
    d = decide(tree, [], [0], counters(reasoner_calls=1), cfg(), 0.5, 0.5)
    assert d.route == "continue"
    assert not d.finished
    assert d.path == [0]
    (changed,) = d.changed
    assert changed["status"] == "accepted"
    assert changed["reason"] == "score 0.900 >= 0.500"
    assert d.counters["rejections"] == 0
    assert d.answer is None and not d.abstained and d.stop_reason is None
    assert d.event["route"] == "continue"
    assert d.event["thought"]["id"] == 0


def test_decide_score_equal_to_threshold_passes() -> None:
    d = decide([th(0, None, "x", 0.5)], [], [0], counters(reasoner_calls=1), cfg(), 0.5, 0.5)
    assert d.route == "continue"


def test_decide_rejection_retries_at_same_point() -> None:
    tree = [th(0, None, "s1", 0.9, "accepted"), th(1, 0, "bad", 0.2, depth=2)]
    d = decide(tree, [0], [1], counters(reasoner_calls=2), cfg(), 0.5, 0.5)
    assert d.route == "backtrack"
    assert d.path == [0]
    (changed,) = d.changed
    assert changed["status"] == "rejected"
    assert changed["reason"] == "score 0.200 < 0.500"
    assert d.counters["rejections"] == 1
    assert d.counters["backtracks"] == 0
    assert "popped" not in d.event


def test_a_spent_point_keeps_the_greedy_candidate_unless_another_beats_it_by_the_margin() -> None:
    best = cfg(on_point_spent="best", max_retries_per_point=2, greedy_margin=0.1)
    tree = [
        th(0, None, "s1", 0.9, "accepted"),
        th(1, 0, "greedy", 0.30, "rejected", depth=2),
        th(2, 0, "other", 0.35, depth=2),
    ]
    d = decide(tree, [0], [2], counters(reasoner_calls=3), best, 0.5, 0.5)
    assert d.route == "continue" and d.path == [0, 1]  # 0.35 < 0.30 + 0.1: greedy stays
    chosen = next(t for t in d.changed if t["id"] == 1)
    assert chosen["status"] == "accepted" and "first (greedy) candidate of 2" in chosen["reason"]
    assert next(t for t in d.changed if t["id"] == 2)["status"] == "rejected"
    tree[2] = th(2, 0, "other", 0.45, depth=2)
    d = decide(tree, [0], [2], counters(reasoner_calls=3), best, 0.5, 0.5)
    assert d.path == [0, 2] and d.counters["backtracks"] == 0  # beaten by the margin
    # before the point is spent, a rejection still retries there
    d = decide(tree[:2], [0], [1], counters(reasoner_calls=2), best, 0.5, 0.5)
    assert d.route == "backtrack" and d.path == [0]


def test_a_spent_point_with_a_final_answer_answers_and_never_forces_the_answer_early() -> None:
    best = cfg(on_point_spent="best", max_retries_per_point=2)
    tree = [th(0, None, "Answer: 11", 0.2, "rejected"), th(1, None, "Answer: 12", 0.1)]
    d = decide(tree, [], [1], counters(reasoner_calls=2), best, 0.5, 0.5)
    assert d.route == "answer" and d.answer == "11" and d.stop_reason == "answered"
    # "backtrack" at the question would stop here; "best" goes on, so no early final answer
    assert not last_step_allowed(tree[:1], [], counters(reasoner_calls=1), best)
    assert last_step_allowed(tree[:1], [], counters(reasoner_calls=1), cfg(max_retries_per_point=2))


def test_decide_pops_to_parent_after_max_retries_per_point() -> None:
    tree = [
        th(0, None, "s1", 0.9, "accepted"),
        th(1, 0, "s2", 0.9, "accepted", depth=2),
        th(2, 1, "bad A", 0.1, "rejected", depth=3),
        th(3, 1, "bad B", 0.1, depth=3),
    ]
    d = decide(
        tree,
        [0, 1],
        [3],
        counters(reasoner_calls=4, rejections=1),
        cfg(max_retries_per_point=2),
        0.5,
        0.5,
    )
    assert d.route == "backtrack"
    assert d.path == [0]
    by_id = {t["id"]: t for t in d.changed}
    assert by_id[3]["status"] == "rejected"
    assert by_id[1]["status"] == "abandoned"
    assert by_id[1]["reason"].endswith("; backtracked after 2 rejections below it")
    assert d.counters["backtracks"] == 1
    assert d.counters["rejections"] == 2
    assert d.event["popped"] == 1


def test_decide_exhausted_at_root() -> None:
    tree = [th(0, None, "bad A", 0.1, "rejected"), th(1, None, "bad B", 0.1)]
    config = cfg(max_retries_per_point=2, force_final_answer=False)
    d = decide(tree, [], [1], counters(reasoner_calls=2), config, 0.5, 0.5)
    assert d.route == "stop"
    assert d.finished
    assert d.stop_reason == "exhausted"
    assert d.abstained
    assert d.answer is None
    assert d.stop_detail == (
        "2 proposals rejected at the question and nothing to backtrack to; "
        "abstained (no scored final answer seen)"
    )
    assert d.event["stop_reason"] == "exhausted"


def test_decide_max_backtracks() -> None:
    tree = [th(0, None, "s1", 0.9, "accepted"), th(1, 0, "bad", 0.1, depth=2)]
    d = decide(
        tree,
        [0],
        [1],
        counters(reasoner_calls=5, backtracks=2),
        cfg(max_retries_per_point=1, max_backtracks=2, force_final_answer=False),
        0.5,
        0.5,
    )
    assert d.route == "stop"
    assert d.stop_reason == "max_backtracks"
    assert d.stop_detail.startswith("max_backtracks=2 reached; abstained")
    assert d.path == [0]  # nothing popped
    assert all(t["status"] != "abandoned" for t in d.changed)
    assert d.counters["backtracks"] == 2


def test_decide_gives_a_spent_point_one_closing_call_when_no_answer_was_seen() -> None:
    config = cfg(max_retries_per_point=3, candidates_per_step=3)
    # three candidates, all rejected at their first call: the question is spent at once
    tree = [th(i, None, f"bad {i}", 0.1) for i in range(3)]
    d = decide(tree, [], [0, 1, 2], counters(reasoner_calls=1), config, 0.5, 0.5)
    assert d.route == "backtrack" and not d.finished and d.event["closing"] is True
    spent = [*d.changed]
    assert last_step_allowed(spent, [], d.counters, config)  # ... and it asks for the answer
    # the closing answers rejected too: now the run stops and answers with the best of them
    tree = [*spent, *(th(3 + i, None, f"Answer: {i}", 0.2 + i / 10) for i in range(3))]
    d = decide(tree, [], [3, 4, 5], counters(reasoner_calls=2), config, 0.5, 0.5)
    assert d.route == "stop" and d.stop_reason == "exhausted" and d.answer == "2"
    # with a final answer somewhere in the tree, or when told to abstain, no closing call
    tree = [th(0, None, "Answer: 7", 0.1, "rejected"), *(th(i, None, "bad", 0.1) for i in (1, 2))]
    assert decide(tree, [], [1, 2], counters(), config, 0.5, 0.5).route == "stop"
    abstain = config.model_copy(update={"on_budget_exhausted": "abstain"})
    tree = [th(i, None, f"bad {i}", 0.1) for i in range(3)]
    assert decide(tree, [], [0, 1, 2], counters(), abstain, 0.5, 0.5).route == "stop"


def test_decide_max_steps() -> None:
    tree = [th(0, None, "s1", 0.9, "accepted"), th(1, 0, "s2", 0.9, depth=2)]
    d = decide(tree, [0], [1], counters(reasoner_calls=2), cfg(max_steps=2), 0.5, 0.5)
    assert d.route == "stop"
    assert d.stop_reason == "max_steps"
    assert d.path == [0, 1]
    assert d.changed[0]["status"] == "accepted"
    assert d.stop_detail == (
        "accepted path reached max_steps=2; abstained (no scored final answer seen)"
    )


@pytest.mark.parametrize(("text", "score"), [("s1", 0.9), ("bad", 0.1)])
def test_decide_max_reasoner_calls(text: str, score: float) -> None:
    tree = [th(0, None, text, score)]
    config = cfg(max_reasoner_calls=4, max_steps=4, max_retries_per_point=10)
    d = decide(tree, [], [0], counters(reasoner_calls=4), config, 0.5, 0.5)
    assert d.route == "stop"
    assert d.stop_reason == "max_reasoner_calls"
    assert d.stop_detail.startswith("max_reasoner_calls=4 reached; abstained")
    # one call below the budget: keeps going
    d = decide(tree, [], [0], counters(reasoner_calls=3), config, 0.5, 0.5)
    assert d.route in ("continue", "backtrack")


def test_decide_trusted_answer_ends_the_run() -> None:
    tree = [th(0, None, "s1", 0.9, "accepted"), th(1, 0, "Answer: 11", 0.85, depth=2)]
    d = decide(tree, [0], [1], counters(reasoner_calls=2), cfg(), 0.5, 0.8)
    assert d.route == "answer"
    assert d.finished
    assert d.answer == "11"
    assert d.answer_thought == 1
    assert d.path == [0, 1]
    assert not d.abstained
    assert d.stop_reason == "answered"
    assert d.changed[0]["status"] == "answer"
    assert d.stop_detail == "trusted final answer: final answer trusted: score 0.850 >= 0.800"
    assert d.event["answer"] == "11"


def test_decide_untrusted_answer_is_rejected_by_answer_threshold() -> None:
    tree = [th(0, None, "Answer: 11", 0.7)]
    d = decide(tree, [], [0], counters(reasoner_calls=1), cfg(), 0.5, 0.8)
    assert d.route == "backtrack"
    assert d.answer is None
    assert d.changed[0]["status"] == "rejected"
    assert d.changed[0]["reason"] == "final answer not trusted: score 0.700 < 0.800"
    # the same score passes as an ordinary step
    d = decide([th(0, None, "s1", 0.7)], [], [0], counters(reasoner_calls=1), cfg(), 0.5, 0.8)
    assert d.route == "continue"


def test_decide_candidates_best_chosen_others_not_chosen() -> None:
    tree = [
        th(0, None, "a", 0.6),
        th(1, None, "b", 0.9),
        th(2, None, "c", 0.7),
        th(3, None, "d", 0.1),
    ]
    d = decide(tree, [], [0, 1, 2, 3], counters(reasoner_calls=1), cfg(), 0.5, 0.5)
    assert d.route == "continue"
    assert d.path == [1]
    status = {t["id"]: t["status"] for t in d.changed}
    assert status == {0: "not_chosen", 1: "accepted", 2: "not_chosen", 3: "rejected"}
    by_id = {t["id"]: t for t in d.changed}
    assert by_id[0]["reason"] == "score 0.600 >= 0.500; a sibling scored higher"
    assert d.counters["rejections"] == 1
    assert [c["id"] for c in d.event["candidates"]] == [0, 1, 2, 3]


def test_decide_prefers_a_trusted_answer_over_a_higher_scored_step() -> None:
    tree = [th(0, None, "s1", 0.99), th(1, None, "Answer: 3", 0.6)]
    d = decide(tree, [], [0, 1], counters(reasoner_calls=1), cfg(), 0.5, 0.5)
    assert d.route == "answer"
    assert d.answer == "3"
    assert {t["id"]: t["status"] for t in d.changed} == {0: "not_chosen", 1: "answer"}


def test_decide_rejects_repeated_empty_and_unscored_steps() -> None:
    tree = [
        th(0, None, "s1", 0.9, "accepted"),
        th(1, 0, "s1", 1.0, depth=2),
        th(2, 0, "", None, depth=2),
        th(3, 0, "s2", None, depth=2),
    ]
    config = cfg(max_retries_per_point=5)
    d = decide(tree, [0], [1, 2, 3], counters(reasoner_calls=2), config, 0.5, 0.5)
    assert d.route == "backtrack"
    reasons = {t["id"]: (t["status"], t["reason"]) for t in d.changed}
    assert reasons == {
        1: ("rejected", "repeats a step already on the path"),
        2: ("rejected", "empty step"),
        3: ("rejected", "not scored"),
    }
    assert d.counters["rejections"] == 3


def test_decide_answer_best_uses_best_scored_answer_seen() -> None:
    tree = [
        th(0, None, "Answer: 5", 0.3, "rejected"),
        th(1, None, "Answer: 6", 0.45, "rejected"),
        th(2, None, "s1", 0.99, "not_chosen"),
        th(3, None, "Answer: 7", 0.2),
    ]
    config = cfg(max_retries_per_point=3)
    d = decide(tree, [], [3], counters(reasoner_calls=3), config, 0.5, 0.5)
    assert d.route == "stop"
    assert d.stop_reason == "exhausted"
    assert not d.abstained
    assert d.answer == "6"
    assert d.answer_thought == 1
    by_id = {t["id"]: t for t in d.changed}
    assert by_id[1]["status"] == "answer"
    assert by_id[1]["reason"].endswith("; best-scored final answer when the budget ran out")
    assert by_id[3]["status"] == "rejected"
    assert d.stop_detail.endswith("answered with the best-scored final answer (score 0.450)")
    assert d.path == []

    d = decide(
        tree,
        [],
        [3],
        counters(reasoner_calls=3),
        cfg(max_retries_per_point=3, on_budget_exhausted="abstain"),
        0.5,
        0.5,
    )
    assert d.abstained
    assert d.answer is None
    assert d.answer_thought is None
    assert d.stop_detail.endswith("abstained (configured to abstain)")


def test_decide_does_not_mutate_its_inputs() -> None:
    tree = [th(0, None, "s1", 0.9, "accepted"), th(1, 0, "bad", 0.1, depth=2)]
    path = [0]
    c = counters(reasoner_calls=2)
    before = copy.deepcopy((tree, path, c))
    decide(tree, path, [1], c, cfg(max_retries_per_point=1), 0.5, 0.5)
    assert (tree, path, c) == before


def test_rejections_at_and_rejected_texts() -> None:
    tree = [
        th(0, None, "dup", 0.1, "rejected"),
        th(1, None, "s1", 0.9, "abandoned"),
        th(2, None, "dup", 0.1, "rejected"),
        th(3, None, "", None, "rejected"),
        th(4, None, "ok", 0.9, "not_chosen"),
        th(5, None, "s2", 0.9, "accepted"),
        th(6, 5, "child", 0.1, "rejected", depth=2),
    ]
    assert rejections_at(tree, None) == 4
    assert rejections_at(tree, 5) == 1
    assert rejections_at(tree, 6) == 0
    assert rejected_texts(tree, None) == ["dup", "s1"]
    assert rejected_texts(tree, 5) == ["child"]


# -- through the graph ---------------------------------------------------------------------------


def bad_dm(**kwargs: Any) -> FunctionScorer:
    """Scores 0.1 for texts starting with 'bad', 0.9 otherwise."""
    return FunctionScorer(
        lambda ctx: 0.1 if ctx.candidate.startswith("bad") else 0.9, name="bad-dm", **kwargs
    )


async def test_graph_rejected_step_retries_at_same_point(run: Runner) -> None:
    model = ScriptedChatModel(
        replies=["s1", "bad A", "bad B", "Answer: 11"], prompt_tokens=10, completion_tokens=2
    )
    seen: list[StepContext] = []
    dm = FunctionScorer(lambda ctx: seen.append(ctx) or (0.1 if "bad" in ctx.candidate else 0.9))
    graph = build_graph(model, dm, DRRConfig(max_retries_per_point=3))
    out = await run(graph, QUESTION)

    assert rows(out) == [
        (0, None, 1, "s1", 0.9, "accepted", 1),
        (1, 0, 2, "bad A", 0.1, "rejected", 2),
        (2, 0, 2, "bad B", 0.1, "rejected", 3),
        (3, 0, 2, "Answer: 11", 0.9, "answer", 4),
    ]
    assert [t["reason"] for t in out["thoughts"]] == [
        "score 0.900 >= 0.500",
        "score 0.100 < 0.500",
        "score 0.100 < 0.500",
        "final answer trusted: score 0.900 >= 0.500",
    ]
    assert out["path"] == [0, 3]
    assert out["counters"] == {
        "reasoner_calls": 4,
        "model_calls": 4,
        "prompt_tokens": 40,
        "completion_tokens": 8,
        "dm_calls": 4,
        "dm_items": 4,
        "rejections": 2,
        "backtracks": 0,
    }
    assert all(t["completion_tokens"] == 2 for t in out["thoughts"])
    # the Reasoner is asked at the same point again, told what was rejected there
    assert len(model.calls) == 4
    assert [c.prefill for c in model.calls] == [None, "s1\n\n", "s1\n\n", "s1\n\n"]
    assert HEADER not in model.calls[1].human
    assert f"{HEADER}\n- bad A" in model.calls[2].human
    assert f"{HEADER}\n- bad A\n- bad B" in model.calls[3].human
    # the DM sees each candidate with the accepted steps before it
    assert [(c.steps, c.candidate) for c in seen] == [
        ((), "s1"),
        (("s1",), "bad A"),
        (("s1",), "bad B"),
        (("s1",), "Answer: 11"),
    ]
    assert all(c.question == QUESTION["question"] for c in seen)


async def test_graph_pops_to_parent_after_max_retries_per_point(run: Runner) -> None:
    model = ScriptedChatModel(replies=["s1", "s2", "bad A", "bad B", "s3", "Answer: 11"])
    graph = build_graph(model, bad_dm(), DRRConfig(max_retries_per_point=2))
    out = await run(graph, QUESTION)

    assert rows(out) == [
        (0, None, 1, "s1", 0.9, "accepted", 1),
        (1, 0, 2, "s2", 0.9, "abandoned", 2),
        (2, 1, 3, "bad A", 0.1, "rejected", 3),
        (3, 1, 3, "bad B", 0.1, "rejected", 4),
        # the next proposal extends s1, the grandparent of the rejected steps
        (4, 0, 2, "s3", 0.9, "accepted", 5),
        (5, 4, 3, "Answer: 11", 0.9, "answer", 6),
    ]
    assert out["thoughts"][1]["reason"] == (
        "score 0.900 >= 0.500; backtracked after 2 rejections below it"
    )
    assert out["path"] == [0, 4, 5]
    assert out["counters"]["backtracks"] == 1
    assert out["counters"]["rejections"] == 2
    assert out["counters"]["reasoner_calls"] == 6
    assert out["stop_reason"] == "answered"
    assert out["answer"] == "11"
    # after the pop the Reasoner continues from s1 and is told s2 was abandoned
    assert model.calls[4].prefill == "s1\n\n"
    assert f"{HEADER}\n- s2" in model.calls[4].human
    assert "bad A" not in model.calls[4].human


async def test_graph_trusted_answer_ends_the_run(run: Runner) -> None:
    model = ScriptedChatModel(replies=["5 + 6 = 11", "Answer: 11", "never asked"])
    graph = build_graph(model, scripted_dm(default=0.9))
    out = await run(graph, QUESTION)
    assert out["stop_reason"] == "answered"
    assert out["answer"] == "11"
    assert out["abstained"] is False
    assert out["answer_thought"] == 1
    assert out["thoughts"][1]["status"] == "answer"
    assert out["thoughts"][1]["answer"] == "11"
    assert out["path"] == [0, 1]
    assert out["stop_detail"] == "trusted final answer: final answer trusted: score 0.900 >= 0.500"
    assert len(model.calls) == 2


async def test_graph_untrusted_answer_is_rejected(run: Runner) -> None:
    model = ScriptedChatModel(replies=["Answer: 5", "Answer: 11"])
    dm = scripted_dm({"Answer: 5": 0.7, "Answer: 11": 0.9})
    graph = build_graph(model, dm, DRRConfig(accept_threshold=0.5, answer_threshold=0.8))
    out = await run(graph, QUESTION)
    first = out["thoughts"][0]
    assert first["answer"] == "5"
    assert first["status"] == "rejected"
    assert first["reason"] == "final answer not trusted: score 0.700 < 0.800"
    assert f"{HEADER}\n- Answer: 5" in model.calls[1].human
    assert out["answer"] == "11"
    assert out["path"] == [1]
    assert out["counters"]["rejections"] == 1


def never_answers(n: int = 50) -> ScriptedChatModel:
    return ScriptedChatModel(replies=[f"step {i}" for i in range(1, n + 1)])


async def test_graph_budget_max_steps(run: Runner) -> None:
    model = never_answers()
    graph = build_graph(model, scripted_dm(), DRRConfig(max_steps=3, force_final_answer=False))
    out = await run(graph, QUESTION)
    assert out["stop_reason"] == "max_steps"
    assert out["stop_detail"] == (
        "accepted path reached max_steps=3; abstained (no scored final answer seen)"
    )
    assert out["abstained"] is True
    assert out["answer"] is None
    assert out["path"] == [0, 1, 2]
    assert len(model.calls) == 3


async def test_graph_forces_the_final_answer_when_one_step_is_left(run: Runner) -> None:
    model = never_answers()
    graph = build_graph(model, scripted_dm(), DRRConfig(max_steps=3))
    out = await run(graph, QUESTION)
    # the third (last) step was asked as the answer: the prefill ends with the answer prefix
    last_prompt = model.calls[-1].messages[-1]
    assert isinstance(last_prompt, AIMessage)
    assert last_prompt.content == "step 1\n\nstep 2\n\nSo the result is"
    assert not model.calls[1].messages[-1].content.endswith("So the result is")
    # written in the canonical answer form the DM was trained on
    assert out["thoughts"][-1]["text"] == "Answer: step 3"
    assert out["stop_reason"] == "answered" and out["answer"] == "step 3"


def test_last_step_allowed_on_the_last_retry_with_no_way_back() -> None:
    config = DRRConfig(max_steps=4, max_retries_per_point=3, max_backtracks=1)
    at_question = [th(0, None, "x", 0.1, "rejected"), th(1, None, "y", 0.1, "rejected")]
    # a first attempt is never forced, a retry only once it is the last one
    assert not last_step_allowed([], [], counters(), config)
    assert not last_step_allowed(at_question[:1], [], counters(), config)
    assert last_step_allowed(at_question, [], counters(), config)
    # below an accepted step the run could still backtrack ... until the backtracks are spent
    below = [th(0, None, "s", 0.9, "accepted"), th(1, 0, "x", 0.1, "rejected", depth=2)]
    below.append(th(2, 0, "y", 0.1, "rejected", depth=2))
    assert not last_step_allowed(below, [0], counters(backtracks=0), config)
    assert last_step_allowed(below, [0], counters(backtracks=1), config)
    # after a backtrack to the question, its first retry stays a step
    abandoned = [th(0, None, "s", 0.9, "abandoned"), th(1, 0, "x", 0.1, "rejected", depth=2)]
    assert not last_step_allowed(abandoned, [], counters(backtracks=1), config)
    assert last_step_allowed(
        [*abandoned, th(2, None, "y", 0.1, "rejected")], [], counters(), config
    )
    # several candidates per call: the call whose rejection would end the run is the last
    assert last_step_allowed(
        at_question[:1], [], counters(), config.model_copy(update={"candidates_per_step": 2})
    )
    # the step and call budgets, as before
    assert last_step_allowed([], [0, 1, 2], counters(), config)
    assert last_step_allowed([], [], counters(reasoner_calls=23), config)


async def test_graph_asks_the_last_retry_at_the_question_for_the_answer(run: Runner) -> None:
    model = ScriptedChatModel(replies=["bad 1", "bad 2", "7"])
    out = await run(build_graph(model, bad_dm(), DRRConfig(max_retries_per_point=3)), QUESTION)
    prefills = [c.prefill or "" for c in model.calls]
    assert prefills == ["", "", "So the result is"]
    assert out["stop_reason"] == "answered" and out["answer"] == "7"


async def test_graph_forces_the_answer_on_the_last_reasoner_call_in_chat_style(run) -> None:
    model = ScriptedChatModel(replies=[f"bad {i}" for i in range(10)])
    config = DRRConfig(max_reasoner_calls=3, max_steps=3, max_retries_per_point=100)
    reasoner = Reasoner(model, StepPrompt(style="chat"))
    dm = FunctionScorer(lambda ctx: 0.1 if "bad" in ctx.candidate else 0.9)
    out = await run(build_graph(reasoner, dm, config), QUESTION)
    asked = [c.messages[-1].content for c in model.calls]
    assert all("Write only the next step" in a for a in asked[:2])
    assert "Write the final answer now" in asked[2]
    # the forced answer "bad 2" scores 0.1, below the threshold; answer_best still takes it
    last = out["thoughts"][-1]
    assert last["text"] == "Answer: bad 2" and last["score"] == 0.1
    assert out["answer"] == "bad 2" and out["answer_thought"] == last["id"]
    assert out["stop_reason"] == "max_reasoner_calls"


async def test_graph_budget_max_reasoner_calls(run: Runner) -> None:
    model = ScriptedChatModel(replies=[f"bad {i}" for i in range(10)])
    config = DRRConfig(
        max_reasoner_calls=5, max_steps=5, max_retries_per_point=100, force_final_answer=False
    )
    out = await run(build_graph(model, bad_dm(), config), QUESTION)
    assert out["stop_reason"] == "max_reasoner_calls"
    assert out["stop_detail"].startswith("max_reasoner_calls=5 reached; abstained")
    assert out["abstained"] is True
    assert len(model.calls) == 5
    assert out["counters"]["reasoner_calls"] == 5
    assert out["counters"]["rejections"] == 5
    assert {t["status"] for t in out["thoughts"]} == {"rejected"}


async def test_graph_budget_max_backtracks(run: Runner) -> None:
    model = ScriptedChatModel(replies=["s1", "bad 1", "s2", "bad 2", "never asked"])
    # without forcing, the retry at the question after the backtrack stays a step
    config = DRRConfig(max_retries_per_point=1, max_backtracks=1, force_final_answer=False)
    out = await run(build_graph(model, bad_dm(), config), QUESTION)
    assert rows(out) == [
        (0, None, 1, "s1", 0.9, "abandoned", 1),
        (1, 0, 2, "bad 1", 0.1, "rejected", 2),
        (2, None, 1, "s2", 0.9, "accepted", 3),
        (3, 2, 2, "bad 2", 0.1, "rejected", 4),
    ]
    assert out["stop_reason"] == "max_backtracks"
    assert out["stop_detail"].startswith("max_backtracks=1 reached; abstained")
    assert out["counters"]["backtracks"] == 1
    assert out["path"] == [2]
    assert len(model.calls) == 4


async def test_graph_budget_exhausted_at_root(run: Runner) -> None:
    model = ScriptedChatModel(replies=["bad A", "bad B", "never asked"])
    config = DRRConfig(max_retries_per_point=2, force_final_answer=False)
    out = await run(build_graph(model, bad_dm(), config), QUESTION)
    assert out["stop_reason"] == "exhausted"
    assert out["stop_detail"].startswith("2 proposals rejected at the question")
    assert out["abstained"] is True
    assert out["answer"] is None
    assert out["path"] == []
    assert len(model.calls) == 2


@pytest.mark.parametrize("mode", ["answer_best", "abstain"])
async def test_graph_budget_answer_best_or_abstain(run: Runner, mode: str) -> None:
    model = ScriptedChatModel(replies=["Answer: 5", "Answer: 6", "Answer: 7"])
    dm = scripted_dm({"Answer: 5": 0.3, "Answer: 6": 0.45, "Answer: 7": 0.2})
    config = DRRConfig(max_retries_per_point=3, on_budget_exhausted=mode)  # type: ignore[arg-type]
    out = await run(build_graph(model, dm, config), QUESTION)
    assert out["stop_reason"] == "exhausted"
    assert len(model.calls) == 3
    if mode == "answer_best":
        assert out["abstained"] is False
        assert out["answer"] == "6"
        assert out["answer_thought"] == 1
        assert out["thoughts"][1]["status"] == "answer"
        assert out["stop_detail"].endswith(
            "answered with the best-scored final answer (score 0.450)"
        )
    else:
        assert out["abstained"] is True
        assert out["answer"] is None
        assert out["stop_detail"].endswith("abstained (configured to abstain)")
        assert {t["status"] for t in out["thoughts"]} == {"rejected"}


async def test_graph_candidates_per_step(run: Runner) -> None:
    model = FakeListChatModel(responses=["a", "b", "c", "Answer: 1", "b", ""])
    dm = scripted_dm({"a": 0.6, "b": 0.9, "c": 0.7, "Answer: 1": 0.8})
    out = await run(build_graph(model, dm, DRRConfig(candidates_per_step=3)), QUESTION)
    assert rows(out) == [
        (0, None, 1, "a", 0.6, "not_chosen", 1),
        (1, None, 1, "b", 0.9, "accepted", 1),
        (2, None, 1, "c", 0.7, "not_chosen", 1),
        (3, 1, 2, "Answer: 1", 0.8, "answer", 2),
        (4, 1, 2, "b", 0.9, "rejected", 2),
        (5, 1, 2, "", None, "rejected", 2),
    ]
    assert out["thoughts"][4]["reason"] == "repeats a step already on the path"
    assert out["thoughts"][5]["reason"] == "empty step"
    assert out["thoughts"][0]["reason"].endswith("; a sibling scored higher")
    assert out["counters"]["reasoner_calls"] == 2
    assert out["counters"]["dm_calls"] == 2
    assert out["counters"]["dm_items"] == 5  # the empty step is never sent to the DM
    assert out["counters"]["rejections"] == 2
    assert out["path"] == [1, 3]
    assert out["answer"] == "1"


async def test_graph_scores_a_repeated_step_once_at_its_point(run: Runner) -> None:
    """A resample that repeats a step scored at the same point takes its score again, without
    a DM call (within one call too); the same text under another parent is scored anew."""
    model = FakeListChatModel(responses=["bad", "bad", "good", "bad", "bad", "Answer: 1"])
    seen: list[Any] = []
    dm = scripted_dm({"bad": 0.1, "good": 0.9, "Answer: 1": 0.9}, seen=seen)
    config = DRRConfig(candidates_per_step=2, max_retries_per_point=5)
    out = await run(build_graph(model, dm, config), QUESTION)
    assert rows(out) == [
        (0, None, 1, "bad", 0.1, "rejected", 1),
        (1, None, 1, "bad", 0.1, "rejected", 1),
        (2, None, 1, "good", 0.9, "accepted", 2),
        (3, None, 1, "bad", 0.1, "rejected", 2),
        (4, 2, 2, "bad", 0.1, "rejected", 3),
        (5, 2, 2, "Answer: 1", 0.9, "answer", 3),
    ]
    assert [ctx.candidate for ctx in seen] == ["bad", "good", "bad", "Answer: 1"]
    assert out["counters"]["dm_items"] == 4 and out["counters"]["dm_calls"] == 3
    assert out["counters"]["rejections"] == 4


async def test_graph_context_overrides_config_for_one_run(run: Runner) -> None:
    def respond(call: Call) -> str:
        return "Answer: 11" if call.prefill is not None else "s1"

    model = ScriptedChatModel(respond=respond)
    dm = scripted_dm({"s1": 0.7, "Answer: 11": 0.9})
    graph = build_graph(model, dm, DRRConfig(accept_threshold=0.5))

    out = await run(graph, QUESTION)
    assert out["stop_reason"] == "answered"
    assert out["thoughts"][0]["status"] == "accepted"

    strict = DRRConfig(accept_threshold=0.8, max_retries_per_point=1, force_final_answer=False)
    out = await run(graph, QUESTION, context=strict)
    assert out["stop_reason"] == "exhausted"
    assert out["thoughts"][0]["reason"] == "score 0.700 < 0.800"

    # a dict context is coerced to DRRConfig
    context = {"accept_threshold": 0.8, "max_retries_per_point": 1, "force_final_answer": False}
    out = await run(graph, QUESTION, context=context)
    assert out["stop_reason"] == "exhausted"

    # the override held for that run only
    out = await run(graph, QUESTION)
    assert out["stop_reason"] == "answered"
    assert out["answer"] == "11"


async def test_graph_uses_scorer_thresholds_when_config_has_none(run: Runner) -> None:
    model = ScriptedChatModel(replies=["s1", "Answer: 11"])
    dm = scripted_dm(
        {"s1": 0.7, "Answer: 11": 0.9},
        thresholds={"accept_threshold": 0.8, "answer_threshold": 0.95},
    )
    out = await run(build_graph(model, dm, DRRConfig(max_retries_per_point=1)), QUESTION)
    assert out["thoughts"][0]["reason"] == "score 0.700 < 0.800"
    assert out["stop_reason"] == "exhausted"

    # config's accept threshold wins; the answer threshold still comes from the DM
    model = ScriptedChatModel(replies=["s1", "Answer: 11"])
    config = DRRConfig(accept_threshold=0.6, max_retries_per_point=1, on_budget_exhausted="abstain")
    out = await run(build_graph(model, dm, config), QUESTION)
    assert out["thoughts"][0]["reason"].startswith("score 0.700 >= 0.600")
    assert out["thoughts"][1]["status"] == "rejected"
    assert out["thoughts"][1]["reason"] == "final answer not trusted: score 0.900 < 0.950"
    assert out["answer"] is None


def test_graph_scorer_answer_threshold_defaults_to_accept_threshold() -> None:
    model = ScriptedChatModel(replies=["Answer: 11"])
    dm = scripted_dm({"Answer: 11": 0.75}, thresholds={"accept_threshold": 0.8})
    config = DRRConfig(max_retries_per_point=1, on_budget_exhausted="abstain")
    out = build_graph(model, dm, config).invoke(QUESTION)
    assert out["thoughts"][0]["reason"] == "final answer not trusted: score 0.750 < 0.800"


def test_graph_streams_one_decision_event_per_decide() -> None:
    model = ScriptedChatModel(replies=["s1", "bad", "Answer: 11"])
    dm = bad_dm(thresholds={"accept_threshold": 0.4, "answer_threshold": 0.6})
    graph = build_graph(model, dm)
    events = list(graph.stream(QUESTION, stream_mode="custom"))
    assert [e["route"] for e in events] == ["continue", "backtrack", "answer"]
    assert all(e["type"] == "drr.decision" for e in events)
    assert all((e["accept_threshold"], e["answer_threshold"]) == (0.4, 0.6) for e in events)
    assert events[-1]["answer"] == "11"


@pytest.mark.parametrize("wrapper", ["langgraph", "public fallback"])
async def test_nodes_run_the_same_on_either_node_wrapper(wrapper, monkeypatch) -> None:
    """`graph._node` uses LangGraph's RunnableCallable, and RunnableLambda when a LangGraph
    release moves it: both run sync and async, and the run's context reaches the nodes."""
    import builtins

    if wrapper == "public fallback":
        real_import = builtins.__import__

        def no_internal(name, *args, **kwargs):
            if name == "langgraph._internal._runnable":
                raise ImportError(name)
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_internal)
    model = ScriptedChatModel(replies=["s1", "bad", "Answer: 11"])
    graph = build_graph(model, bad_dm(), DRRConfig(accept_threshold=0.99))
    kinds = {type(node.runnable).__name__ for node in graph.builder.nodes.values()}
    assert kinds == {"RunnableLambda" if wrapper == "public fallback" else "RunnableCallable"}
    context = DRRConfig(accept_threshold=0.4, answer_threshold=0.6)
    sync = graph.invoke(QUESTION, context=context)
    async_ = await build_graph(
        ScriptedChatModel(replies=["s1", "bad", "Answer: 11"]), bad_dm(), DRRConfig()
    ).ainvoke(QUESTION, context=context)
    for out in (sync, async_):  # the context's thresholds, not the graph's 0.99, were applied
        assert out["answer"] == "11" and out["accept_threshold"] == 0.4
        assert [d["route"] for d in out["decisions"]] == ["continue", "backtrack", "answer"]


async def test_graph_batch_is_not_cut_by_the_recursion_limit() -> None:
    def respond(call: Call) -> str:
        return "bad step"

    model = ScriptedChatModel(respond=respond)
    config = DRRConfig(
        max_reasoner_calls=12, max_steps=8, max_retries_per_point=100, force_final_answer=False
    )
    graph = build_graph(model, bad_dm(), config)
    inputs = [{"question": "q1"}, {"question": "q2"}]
    for out in [*graph.batch(inputs), *(await graph.abatch(inputs))]:
        assert out["stop_reason"] == "max_reasoner_calls"
        assert out["counters"]["reasoner_calls"] == 12
    # a limit the caller passes still applies (12 cycles are 36 super-steps)
    for out in graph.batch(inputs, {"recursion_limit": 10}, return_exceptions=True):
        assert isinstance(out, GraphRecursionError)
    with pytest.raises(GraphRecursionError):
        await graph.abatch(inputs, [{"recursion_limit": 10}, {}])


def test_build_graph_rejects_wrong_types() -> None:
    with pytest.raises(TypeError, match="reasoner must be a Reasoner or a chat model"):
        build_graph(object(), scripted_dm())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scorer must be a StepScorer"):
        build_graph(ScriptedChatModel(), lambda ctx: 0.5)  # type: ignore[arg-type]
