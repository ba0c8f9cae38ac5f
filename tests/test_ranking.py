"""Ranking candidates by the DM blended with the Reasoner's log-prob (`DRRConfig.dm_weight`).

Doubles only, except one ``embedded`` test that asks the real SmolLM2 Reasoner for log-probs:
`policy.rank_score` and `decide` directly, `mean_logprob` on OpenAI-shaped replies, and the
graph on `logprob_model` — a `ScriptedChatModel` (doubles.py) whose greedy (temperature 0) and
sampled replies differ and carry token log-probs in ``response_metadata`` as ``ChatOpenAI`` does.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from doubles import Call, ScriptedChatModel, number_item, openai_logprobs, scripted_dm
from langchain_core.messages import AIMessage
from pydantic import ValidationError

from drr_agent import DRRConfig, DRRResult, FunctionScorer, Reasoner, Thought, build_graph
from drr_agent.policy import decide, rank_score
from drr_agent.reasoners.signals import mean_logprob
from drr_agent.state import new_counters
from drr_agent.tasks import load_task
from drr_agent.tracing import format_decision, format_thought_tree, thought_table

GREEDY, SAMPLED = "Answer: 11", "Answer: 12"
# the DM prefers the greedy answer; the Reasoner is far surer of the sampled one
DM = {GREEDY: 0.9, SAMPLED: 0.6}
LOGPROB = {GREEDY: math.log(0.1), SAMPLED: math.log(0.95)}


def greedy_or_sampled(call: Call) -> str:
    return GREEDY if call.temperature == 0.0 else SAMPLED


def logprob_model(logprobs: dict[str, float] | None = LOGPROB) -> ScriptedChatModel:
    """Replies ``GREEDY`` at temperature 0, else ``SAMPLED``; a call with ``logprobs=True`` gets
    two tokens of mean ``logprobs[text]`` (none with ``logprobs=None``). Every call is recorded."""
    return ScriptedChatModel(respond=greedy_or_sampled, logprobs=logprobs)


def dm() -> FunctionScorer:
    return scripted_dm(DM, default=0.0, name="table-dm")


def config(**kwargs: Any) -> DRRConfig:
    return DRRConfig(accept_threshold=0.5, answer_threshold=0.5, candidates_per_step=2, **kwargs)


# -- rank_score and decide -----------------------------------------------------------------------


def th(tid: int, text: str, score: float, logprob: float | None, dm_weight: float) -> Thought:
    return Thought(
        id=tid,
        parent=None,
        depth=1,
        text=text,
        answer=None,
        score=score,
        status="proposed",
        reason="",
        call=1,
        completion_tokens=2,
        logprob=logprob,
        rank_score=rank_score(score, logprob, dm_weight),
    )


def choose(dm_weight: float, logprobs: tuple[float | None, float | None]) -> Any:
    tree = [
        th(0, "DM likes this", 0.9, logprobs[0], dm_weight),
        th(1, "Reasoner likes this", 0.6, logprobs[1], dm_weight),
    ]
    counters = new_counters()
    counters["reasoner_calls"] = 1
    return decide(tree, [], [0, 1], counters, config(dm_weight=dm_weight), 0.5, 0.5)


def test_rank_score_blends_dm_score_and_token_probability() -> None:
    assert rank_score(0.9, math.log(0.1), 0.5) == pytest.approx(0.5)
    assert rank_score(0.6, math.log(0.95), 0.5) == pytest.approx(0.775)
    assert rank_score(0.6, math.log(0.95), 0.0) == pytest.approx(0.95)
    assert rank_score(0.3, -2.0, 1.0) == 0.3  # β=1: the DM's score itself, exactly
    assert rank_score(0.3, None, 0.5) == 0.3  # no log-prob: the DM's score alone
    assert rank_score(None, -1.0, 0.5) is None  # not scored: no rank


def test_half_weight_picks_the_candidate_the_reasoner_is_much_surer_of() -> None:
    d = choose(0.5, (math.log(0.1), math.log(0.95)))
    assert d.route == "continue" and d.path == [1]
    by_id = {t["id"]: t for t in d.changed}
    assert by_id[0]["status"] == "not_chosen"
    assert by_id[0]["reason"].endswith("; a sibling ranked higher")
    # the event carries the log-probs and the rank scores of every candidate
    assert [(c["id"], c["rank_score"]) for c in d.event["candidates"]] == [
        (0, pytest.approx(0.5)),
        (1, pytest.approx(0.775)),
    ]
    assert d.event["candidates"][1]["logprob"] == math.log(0.95)
    assert d.event["thought"]["rank_score"] == pytest.approx(0.775)
    assert "#1 0.600  lp -0.05 → rank 0.775  'Reasoner likes this'" in format_decision(d.event)


def test_full_dm_weight_ignores_the_logprob() -> None:
    d = choose(1.0, (math.log(0.1), math.log(0.95)))
    assert d.path == [0]
    assert {t["id"]: t["reason"] for t in d.changed}[1].endswith("; a sibling scored higher")


def test_a_missing_logprob_ranks_by_the_dm_score() -> None:
    d = choose(0.5, (None, None))
    assert d.path == [0]
    # only one side known: 0.9 (DM alone) beats 0.6·0.5 + 0.95·0.5 = 0.775
    assert choose(0.5, (None, math.log(0.95))).path == [0]


def test_thresholds_still_veto_on_the_dm_score() -> None:
    tree = [th(0, "sure but wrong", 0.2, 0.0, 0.0)]  # rank 1.0, DM 0.2
    counters = new_counters()
    counters["reasoner_calls"] = 1
    d = decide(tree, [], [0], counters, config(dm_weight=0.0), 0.5, 0.5)
    assert d.route == "backtrack" and d.changed[0]["status"] == "rejected"


def test_dm_weight_is_bounded_and_says_when_logprobs_are_needed() -> None:
    assert not DRRConfig().needs_logprobs and DRRConfig().dm_weight == 1.0
    assert DRRConfig(dm_weight=0.7).needs_logprobs
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError):
            DRRConfig(dm_weight=bad)


# -- log-probs from the Reasoner -----------------------------------------------------------------


def test_mean_logprob_reads_the_openai_shape_and_never_fails() -> None:
    assert (
        mean_logprob(AIMessage("x", response_metadata={"logprobs": openai_logprobs(-1.0, -3.0)}))
        == -2.0
    )
    for metadata in (
        {},
        {"logprobs": None},
        {"logprobs": {"content": []}},
        {"logprobs": {"content": None}},
        {"logprobs": {"content": [{"token": "a"}]}},
        {"logprobs": "garbage"},
    ):
        assert mean_logprob(AIMessage("x", response_metadata=metadata)) is None


@pytest.mark.parametrize("n", [1, 2])
def test_reasoner_asks_for_logprobs_only_when_told(n: int) -> None:
    model = logprob_model()
    reasoner = Reasoner(model)
    plain = reasoner.propose("q", [], n=n, greedy_first=True)
    assert [p.logprob for p in plain] == [None] * n
    assert not any("logprobs" in c.kwargs for c in model.calls)
    ranked = reasoner.propose("q", [], n=n, greedy_first=True, logprobs=True)
    assert ranked[0].logprob == pytest.approx(math.log(0.1))
    assert all(c.kwargs["logprobs"] is True for c in model.calls[n:])


# -- the graph -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_graph_ranks_candidates_by_the_blend(mode: str) -> None:
    async def run(cfg: DRRConfig, model: ScriptedChatModel) -> dict[str, Any]:
        graph = build_graph(model, dm(), cfg)
        inputs = {"question": "Tom has 5 apples and buys 6. How many?"}
        return graph.invoke(inputs) if mode == "sync" else await graph.ainvoke(inputs)

    blended = await run(config(dm_weight=0.5), logprob_model())
    assert blended["answer"] == "12"
    by_text = {t["text"]: t for t in blended["thoughts"]}
    assert by_text[SAMPLED]["logprob"] == pytest.approx(math.log(0.95))
    assert by_text[SAMPLED]["rank_score"] == pytest.approx(0.775)
    assert by_text[GREEDY]["status"] == "not_chosen"
    tree = format_thought_tree(blended)
    assert "0.600 ≥ ans 0.50  lp -0.05 → rank 0.775  answer [path]  Answer: 12" in tree
    assert [c.header for c in thought_table(blended).columns][3:6] == ["score", "lp", "rank"]
    result = DRRResult.from_state(blended)
    assert result.thoughts[blended["answer_thought"]]["rank_score"] == pytest.approx(0.775)

    dm_only_model = logprob_model()
    dm_only = await run(config(), dm_only_model)  # β=1: today's behaviour, no log-probs asked
    assert dm_only["answer"] == "11"
    assert not any("logprobs" in c.kwargs for c in dm_only_model.calls)
    assert all(t["logprob"] is None for t in dm_only["thoughts"])
    assert all(t["rank_score"] == t["score"] for t in dm_only["thoughts"])
    assert "lp " not in format_thought_tree(dm_only) and "rank" not in format_thought_tree(dm_only)

    # a model that returns no log-probs: ranked by the DM alone, nothing fails
    silent = await run(config(dm_weight=0.5), logprob_model(logprobs=None))
    assert silent["answer"] == "11"


def test_results_of_trees_without_the_new_fields_still_load() -> None:
    old = {
        "id": 0,
        "parent": None,
        "depth": 1,
        "text": GREEDY,
        "answer": "11",
        "score": 0.9,
        "status": "answer",
        "reason": "",
        "call": 1,
        "completion_tokens": 2,
    }
    state = {"question": "q", "thoughts": [old], "path": [0], "answer": "11"}
    (record,) = DRRResult.from_state(state).thoughts  # type: ignore[arg-type]
    assert record.get("logprob") is None and record.get("rank_score") is None
    assert "lp " not in format_thought_tree(state)


async def test_lp_rank_method_ranks_by_the_reasoners_logprob() -> None:
    from drr_agent.evaluation.methods import METHODS, MethodContext

    task = load_task("basic_arithmetic", limit=1, seed=0)
    item = number_item("Tom has 5 apples and buys 6. How many?")
    ctx = MethodContext(task, Reasoner(logprob_model()), config=config())
    ranked = await METHODS["lp_rank"](item, ctx)
    assert ranked.answer == "12" and ranked.dm_calls == 0  # exp(mean lp) 0.95 beats 0.1
    # stepwise: the accept-all critic ties every candidate, and the first (greedy) one wins
    assert (await METHODS["stepwise"](item, ctx)).answer == "11"


# -- the embedded Reasoner -----------------------------------------------------------------------


@pytest.mark.embedded
def test_embedded_reasoner_returns_mean_logprobs(embedded) -> None:
    proposals = embedded.propose(
        "Tom has 5 apples and buys 6. How many?", [], n=2, call_index=3, logprobs=True
    )
    assert len(proposals) == 2
    for p in proposals:
        assert p.logprob is not None and math.isfinite(p.logprob) and p.logprob < 0
