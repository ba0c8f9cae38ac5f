"""The evaluation harness: summary maths, each method on doubles, resume, CLI, and one real run."""

from __future__ import annotations

import ast
import asyncio
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from doubles import number_item, seven_plus_four
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from typer.testing import CliRunner

import drr_agent
from drr_agent import DRRConfig, FunctionScorer, Reasoner, StepContext, StepPrompt
from drr_agent.cli import app
from drr_agent.evaluation import (
    METHODS,
    EvalRecord,
    EvalRunMismatchError,
    MethodContext,
    MethodSettings,
    TokenUsage,
    run_eval,
    summarize,
    wilson_interval,
)
from drr_agent.evaluation.methods import DM_METHODS, majority_answer
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.traces import sample_seed
from drr_agent.scorers import SelfCritiqueScorer
from drr_agent.scorers.self_critique import probability_from_reply
from drr_agent.tasks import load_task, split_task
from drr_agent.tasks.spec import TaskSpec

Q = "Calculate 7 + 4."

# the Reasoner is `seven_plus_four` (doubles.py): its script for Q backtracks under a DM
pytestmark = pytest.mark.usefixtures("no_backoff")


@pytest.fixture(scope="module")
def task():
    return load_task("basic_arithmetic", limit=8, seed=3)


def _ctx(task, model: BaseChatModel, scorer=None, **settings: Any) -> MethodContext:
    config = DRRConfig(max_steps=3, max_reasoner_calls=8, max_retries_per_point=3)
    return MethodContext(task, Reasoner(model), scorer, config, MethodSettings(**settings))


def _arith_dm(context: StepContext) -> float:
    return 0.1 if "12" in context.candidate else 0.9


# -- summary maths ---------------------------------------------------------------------------
def test_wilson_interval_against_hand_computed_values():
    # 7/10: p = 0.7, z² = 3.8415; centre = (0.7 + 0.19207) / 1.38415 = 0.64449,
    # half = 1.95996 / 1.38415 * sqrt(0.021 + 0.0096036) = 0.24772
    low, high = wilson_interval(7, 10)
    assert low == pytest.approx(0.3968, abs=1e-4) and high == pytest.approx(0.8922, abs=1e-4)
    # x = 0: the interval is [0, z²/(n + z²)]; x = n mirrors it
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def _record(method: str, i: int, **fields: Any) -> EvalRecord:
    return EvalRecord(
        run_id="r", task="t", method=method, item_id=f"i{i}", question="q", gold="1", **fields
    )


def test_summary_counts_abstentions_and_errors_as_wrong():
    # 10 items: 6 right, 2 wrong, 1 abstained, 1 error
    records = [
        *[_record("drr", i, answer="1", correct=True) for i in range(6)],
        *[_record("drr", i, answer="2") for i in range(6, 8)],
        _record("drr", 8, abstained=True),
        _record("drr", 9, error="ReasonerError: down"),
    ]
    records = [
        r.model_copy(update={"tokens": TokenUsage(prompt=90, completion=10), "reasoner_calls": 3})
        if r.error is None
        else r
        for r in records
    ]
    cot = [
        _record("cot", i, answer="1", correct=i < 5, tokens=TokenUsage(prompt=40, completion=10))
        for i in range(10)
    ]
    summary = summarize([*records, *cot], ["cot", "drr"], run_id="r", task="t", reasoner="m")
    row = summary.method("drr")
    assert (row.n, row.correct, row.answered, row.abstained, row.errors) == (10, 6, 8, 1, 1)
    assert row.accuracy == 0.6 and (row.ci_low, row.ci_high) == pytest.approx(
        wilson_interval(6, 10)
    )
    assert row.coverage == 0.8 and row.abstention_rate == 0.1 and row.error_rate == 0.1
    assert row.selective_accuracy == 0.75  # 6 right of 8 answered
    # cost over the 9 records without an error
    assert row.mean_tokens == 100.0 and row.mean_reasoner_calls == 3.0
    assert row.tokens_vs_cot == 2.0  # 100 / 50
    assert summary.method("cot").accuracy == 0.5 and summary.method("cot").selective_accuracy == 0.5
    assert summary.items == 10
    table = summary.to_markdown()
    assert "| drr | 10 | 0.600 [0.313, 0.832] | 0.800 | 0.750 | 1 | 1 |" in table
    assert "100.0 (2.00×)" in table


# -- methods ---------------------------------------------------------------------------------
def test_majority_vote_normalises_and_breaks_ties_by_first_seen():
    item = number_item(Q)
    assert majority_answer(["12", "11", "11.0"], item) == ("11", {"12": 1, "11": 2})
    assert majority_answer(["11", "12", "11.0", "12"], item) == ("11", {"11": 2, "12": 2})
    assert majority_answer(["12", "11", "11.0", "12"], item)[0] == "12"
    assert majority_answer([None, "no number"], item) == (None, {})


async def test_self_consistency_votes_over_seeded_samples(task):
    item = number_item(Q)
    answers = ["12", "11", "11.0", "$12"]
    traces = {sample_seed(0, item.id, i): f"step\nAnswer: {a}" for i, a in enumerate(answers)}
    model = seven_plus_four(traces=traces)
    out = await METHODS["self_consistency"](item, _ctx(task, model, k=4))
    assert out.answer == "12" and out.details["votes"] == {"12": 2, "11": 2}  # tie: first seen
    assert out.reasoner_calls == 4 and out.tokens.prompt == 80
    assert sorted(c.seed for c in model.calls) == sorted(traces)
    assert {c.temperature for c in model.calls} == {0.8}


async def test_cot_is_one_greedy_trace_cut_at_the_answer(task):
    model = seven_plus_four()
    out = await METHODS["cot"](number_item(Q), _ctx(task, model, max_tokens=77))
    assert out.answer == "11" and out.reasoner_calls == 1 and out.dm_calls == 0
    assert out.details["steps"] == ["7 + 4 = 11", "Answer: 11"]  # the drift is cut
    assert model.calls[0].temperature == 0.0 and model.calls[0].kwargs["max_tokens"] == 77


def _four_samples(item) -> dict[int, str]:
    """Four samples by seed: two wrong 12s, one right 11, and a right trace whose answer
    cannot be read (it cannot win, however it is scored)."""
    texts = [
        "7 + 4 = 11\nAnswer: X",
        "7 + 4 = 12\nAnswer: 12",
        "7 + 4 = 11\nAnswer: 11",
        "7 + 4 = 12\nAnswer: 12",
    ]
    return {sample_seed(0, item.id, i): t for i, t in enumerate(texts)}


async def test_best_of_n_picks_the_highest_scored_trace_even_against_the_majority(task):
    item = number_item(Q)
    model = seven_plus_four(traces=_four_samples(item))
    ctx = _ctx(task, model, FunctionScorer(_arith_dm), k=4)
    out = await METHODS["best_of_n_dm"](item, ctx)
    assert out.answer == "11" and out.details["chosen"] == 2 and out.dm_calls == 1
    assert out.details["trace_scores"] == [0.9, 0.1, 0.9, 0.1]
    sc = await METHODS["self_consistency"](item, ctx)
    assert sc.answer == "12"  # the same samples, voted: the DM made the difference


async def test_dm_vote_weights_the_samples_votes_by_their_dm_scores(task):
    """Two 12s outweigh one 11 under a vote; under the DM's weights one well-scored 11
    outweighs two poorly scored 12s, and a sample whose answer cannot be read never votes."""
    item = number_item(Q)
    model = seven_plus_four(traces=_four_samples(item))
    ctx = _ctx(task, model, FunctionScorer(_arith_dm), k=4)
    out = await METHODS["dm_vote"](item, ctx)
    assert out.answer == "11" and out.details["votes"] == pytest.approx({"12": 0.2, "11": 0.9})
    assert out.dm_calls == 1 and out.reasoner_calls == 4
    assert "dm_vote" in DM_METHODS
    # with the DM's doubt spread evenly, the agreement among samples decides, as in a vote
    flat = _ctx(task, model, FunctionScorer(lambda c: 0.5), k=4)
    assert (await METHODS["dm_vote"](item, flat)).answer == "12"


@pytest.mark.parametrize(("aggregate", "chosen"), [("min", 1), ("mean", 0)])
async def test_best_of_n_aggregates_step_scores_by_min_or_mean(task, aggregate, chosen):
    item = number_item(Q)
    texts = ["good\nAnswer: 12", "fair\nAnswer: 11"]
    scores = {"good": 1.0, "Answer: 12": 0.3, "fair": 0.5, "Answer: 11": 0.5}
    model = seven_plus_four(traces={sample_seed(0, item.id, i): t for i, t in enumerate(texts)})
    ctx = _ctx(task, model, FunctionScorer(lambda c: scores[c.candidate]), k=2, aggregate=aggregate)
    out = await METHODS["best_of_n_dm"](item, ctx)
    assert out.details["chosen"] == chosen  # min: 0.3 vs 0.5; mean: 0.65 vs 0.5


def _logprobs(*alternatives: tuple[str, float]) -> dict[str, Any]:
    top = [{"token": t, "logprob": lp} for t, lp in alternatives]
    return {
        "content": [{"token": top[0]["token"], "logprob": top[0]["logprob"], "top_logprobs": top}]
    }


def test_self_critique_reads_logprobs_else_the_text():
    def reply(text: str, **meta: Any) -> AIMessage:
        return AIMessage(text, response_metadata=meta)

    # P(yes) / (P(yes) + P(no)) over the first token's alternatives: 1 / (1 + e^-1)
    lp = _logprobs(("Yes", -0.5), (" no", -1.5), ("The", -2.0))
    assert probability_from_reply(reply("Yes", logprobs=lp)) == pytest.approx(0.7311, abs=1e-4)
    assert probability_from_reply(reply("No", logprobs=_logprobs(("No", -0.1)))) == 0.0
    # only the chosen token, no alternatives: exp(logprob) for yes
    only = {"content": [{"token": "yes", "logprob": math.log(0.8), "top_logprobs": []}]}
    assert probability_from_reply(reply("yes", logprobs=only)) == pytest.approx(0.8)
    # no (usable) logprobs: the text decides
    assert probability_from_reply(reply("Yes, it is.")) == 1.0
    assert probability_from_reply(reply("no.")) == 0.0
    assert probability_from_reply(reply("Hmm, let me think")) == 0.5
    assert probability_from_reply(reply("Yes", logprobs={"content": []})) == 1.0


async def test_self_critique_scorer_batches_and_counts_its_tokens():
    model = seven_plus_four()
    critic = SelfCritiqueScorer(model)
    items = [StepContext(Q, (), "7 + 4 = 11"), StepContext(Q, ("7 + 4 = 11",), "Answer: 12")]
    assert await critic.ascore(items) == [1.0, 0.0]
    assert critic.score(items) == [1.0, 0.0]  # the sync path
    assert critic.usage == {"calls": 4, "prompt_tokens": 120, "completion_tokens": 4}
    assert {c.kwargs["logprobs"] for c in model.calls} == {True} and model.calls[0].temperature == 0


async def test_drr_backtracks_and_records_where(task):
    ctx = _ctx(task, seven_plus_four(), FunctionScorer(_arith_dm))
    out = await METHODS["drr"](number_item(Q), ctx)
    # 7+4=11 accepted; "Answer: 12" rejected 3 times at depth 2 -> pop the depth-1 thought;
    # "4 + 7 = 11" accepted (a retry at the question, not yet its last: still a step);
    # "Answer: 11" trusted; the DM read "Answer: 12" once (its repeats at that point reuse it)
    assert out.answer == "11" and not out.abstained
    assert out.backtracks == 1 and out.reasoner_calls == 6 and out.dm_calls == 4
    assert out.details["backtrack_depths"] == [1]
    assert out.details["rejection_depths"] == [2, 2, 2]
    assert out.details["stop_reason"] == "answered" and len(out.details["thoughts"]) == 6


async def test_self_critique_runs_the_same_graph_and_charges_the_critic(task):
    ctx = _ctx(task, seven_plus_four())
    drr_out = await METHODS["drr"](number_item(Q), replace(ctx, scorer=FunctionScorer(_arith_dm)))
    out = await METHODS["self_critique"](number_item(Q), ctx)
    assert out.answer == "11" and out.backtracks == 1
    assert out.details["backtrack_depths"] == drr_out.details["backtrack_depths"]
    # the critic is asked once per distinct step at its point, as the DM is
    assert out.details["critic"] == {"calls": 4, "prompt_tokens": 120, "completion_tokens": 4}
    assert out.reasoner_calls == 6 + 4 and out.dm_calls == 4
    assert out.tokens.prompt == drr_out.tokens.prompt + 120


async def test_stepwise_is_the_graph_without_a_critic(task):
    ctx = _ctx(task, seven_plus_four(), FunctionScorer(_arith_dm))
    out = await METHODS["stepwise"](number_item(Q), ctx)
    # "7 + 4 = 11" accepted, then "Answer: 12" — the answer the DM rejected in drr — is taken
    assert out.answer == "12" and out.backtracks == 0 and out.reasoner_calls == 2
    assert out.dm_calls == 0 and out.details["stop_reason"] == "answered"


async def test_a_graph_vote_runs_k_differently_seeded_graphs_and_takes_their_majority(task):
    from drr_agent.evaluation.methods import graph_vote

    seen: list[tuple[int, bool]] = []
    answers = {0: "12", 1: "11", 2: "11.0"}  # "11" and "11.0" vote together and beat run 0

    async def graph(item, ctx: MethodContext):
        from drr_agent.evaluation.context import MethodOutcome

        seen.append((ctx.run, ctx.settings.seed, ctx.config.greedy_first))
        run = ctx.run
        return MethodOutcome(
            answer=answers[run],
            tokens=TokenUsage(prompt=10, completion=run + 1),
            reasoner_calls=2,
            dm_calls=run,
            details={"stop_reason": "answered", "path": [run]},
        )

    ctx = _ctx(task, seven_plus_four(), k=3, seed=5)
    out = await graph_vote(graph)(number_item(Q), ctx)
    # run 0 is the plain method (greedy first); the others are runs 1.. of the same seed, sampled
    assert sorted(seen) == [(0, 5, True), (1, 5, False), (2, 5, False)]
    assert out.answer == "11" and out.details["votes"] == {"12": 1, "11": 2}
    assert out.tokens == TokenUsage(prompt=30, completion=6) and out.reasoner_calls == 6
    assert out.dm_calls == 3 and not out.abstained
    assert [r["path"] for r in out.details["runs"]] == [[0], [1], [2]]
    answers.update({1: "12", 2: "13"})  # a three-way split: the tie goes to the first run
    assert (await graph_vote(graph)(number_item(Q), ctx)).answer == "12"
    assert graph_vote(graph).__name__ == "graph_vote"
    # run i's Reasoner is seeded as whole-trace sample i is
    from langchain_openai import ChatOpenAI

    from drr_agent.evaluation.methods import _graph_reasoner

    chat = ChatOpenAI(model="m", base_url="http://127.0.0.1:9/v1", api_key="k", seed=0)
    seeded = MethodContext(task, Reasoner(chat), settings=MethodSettings(seed=5))
    item = number_item(Q)
    seeds = [_graph_reasoner(item, replace(seeded, run=run)).model.seed for run in range(3)]
    assert seeds == [sample_seed(5, item.id, run) for run in range(3)]


# -- the runner ------------------------------------------------------------------------------
def _comparable(path) -> list[tuple]:
    rows = RecordFile(path, EvalRecord).read()
    return sorted((r.method, r.item_id, r.answer, r.correct, r.tokens.total) for r in rows)


async def test_interrupted_run_resumes_without_duplicates(tmp_path, task, until):
    methods = ["cot", "self_consistency"]

    def ctx() -> MethodContext:
        return _ctx(task, seven_plus_four(delay_s=0.01), k=2)

    reference = await run_eval(
        task, task.items, methods, ctx(), tmp_path / "ref", concurrency=2, progress=False
    )
    out = tmp_path / "run"
    records = out / "records.jsonl"
    job = asyncio.create_task(
        run_eval(task, task.items, methods, ctx(), out, concurrency=2, progress=False)
    )
    await until(
        lambda: records.exists() and len(records.read_text().splitlines()) >= 5,
        "5 eval records before the kill",
    )
    job.cancel()  # the kill
    with pytest.raises(asyncio.CancelledError):
        await job
    with records.open("a") as fh:  # and a line cut short by it
        fh.write('{"schema_version": 1, "run_id": "x", "task": "basic_ar')
    partial = len(records.read_text().splitlines()) - 1
    assert 5 <= partial < 16
    run_id = json.loads((out / "run.json").read_text())["run_id"]

    resumed_ctx = ctx()
    summary = await run_eval(
        task, task.items, methods, resumed_ctx, out, concurrency=2, progress=False
    )
    rows = RecordFile(records, EvalRecord).read()
    assert len(rows) == len({r.key for r in rows}) == 16  # every (method, item) once
    assert _comparable(records) == _comparable(tmp_path / "ref" / "records.jsonl")
    redone = len(resumed_ctx.reasoner.model.calls)
    assert redone < 8 + 2 * 8  # only the missing pairs were run again
    assert {r.run_id for r in rows} == {run_id} == {summary.run_id}
    assert summary.model_dump(exclude={"run_id", "out_dir", "methods"}) == reference.model_dump(
        exclude={"run_id", "out_dir", "methods"}
    )
    for name in methods:
        a, b = summary.method(name), reference.method(name)
        assert (a.n, a.correct, a.mean_tokens) == (b.n, b.correct, b.mean_tokens)
    assert (out / "summary.json").is_file() and (out / "summary.md").is_file()


async def test_failures_are_recorded_and_counted(tmp_path, task):
    down = task.items[0].question
    ctx = _ctx(task, seven_plus_four(fail_on=(down,)), k=2, retries=1)
    summary = await run_eval(
        task, task.items[:3], ["cot", "self_consistency"], ctx, tmp_path, progress=False,
        plots=False,
    )  # fmt: skip
    rows = RecordFile(tmp_path / "records.jsonl", EvalRecord).read()
    failed = [r for r in rows if r.error]
    down_ids = {i.id for i in task.items[:3] if i.question == down}  # questions repeat
    assert {(r.method, r.item_id) for r in failed} == {
        (m, i) for m in ("cot", "self_consistency") for i in down_ids
    }
    assert "reasoner down" in failed[0].error and "after 2 attempts" in failed[0].error
    assert summary.method("cot").errors == len(down_ids) and summary.method("cot").n == 3
    assert summary.method("cot").correct == 3 - len(down_ids)
    # the Reasoner is back: --retry-errors runs the failed items again, and nothing else
    model = seven_plus_four()
    ctx = _ctx(task, model, k=2, retries=1)
    summary = await run_eval(
        task, task.items[:3], ["cot", "self_consistency"], ctx, tmp_path, progress=False,
        plots=False, retry_errors=True,
    )  # fmt: skip
    rows = RecordFile(tmp_path / "records.jsonl", EvalRecord).read()
    assert len(rows) == len({r.key for r in rows}) == 6 and not [r for r in rows if r.error]
    assert len(model.calls) == 3 * len(down_ids)  # 1 cot + 2 samples per failed item
    assert summary.method("cot").correct == 3


async def test_a_run_folder_of_another_setup_is_refused(tmp_path, task):
    items = task.items[:2]
    await run_eval(task, items, ["cot"], _ctx(task, seven_plus_four()), tmp_path, progress=False)
    other = _ctx(task, seven_plus_four(), max_tokens=99)
    with pytest.raises(EvalRunMismatchError, match="settings"):
        await run_eval(task, items, ["cot"], other, tmp_path, progress=False)
    with pytest.raises(ValueError, match="need a DM"):
        await run_eval(task, items, ["drr"], _ctx(task, seven_plus_four()), tmp_path)
    with pytest.raises(ValueError, match="unknown method"):
        await run_eval(task, items, ["cott"], _ctx(task, seven_plus_four()), tmp_path)


class _VersionedDM(FunctionScorer):
    """A DM with a fingerprint, as a trained folder has (weights + card)."""

    def __init__(self, version: str) -> None:
        super().__init__(_arith_dm, name="dm")  # the same name in both versions
        self.version = version

    @property
    def fingerprint(self) -> str:
        return self.version


async def test_a_dm_retrained_in_place_does_not_resume_into_old_records(tmp_path, task):
    items = task.items[:2]
    old = _ctx(task, seven_plus_four(), _VersionedDM("aaaa"))
    await run_eval(task, items, ["drr"], old, tmp_path, progress=False, plots=False)
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert manifest["scorer_fingerprint"] == "aaaa" and manifest["reasoner_fingerprint"]
    new = _ctx(task, seven_plus_four(), _VersionedDM("bbbb"))
    with pytest.raises(EvalRunMismatchError, match=r"scorer with another fingerprint \(aaaa"):
        await run_eval(task, items, ["drr"], new, tmp_path, progress=False, plots=False)
    reprompted = MethodContext(
        task, Reasoner(seven_plus_four(), StepPrompt(instruction="Think.")), _VersionedDM("aaaa"),
        old.config, old.settings,
    )  # fmt: skip
    with pytest.raises(EvalRunMismatchError, match="reasoner with another fingerprint"):
        await run_eval(task, items, ["drr"], reprompted, tmp_path, progress=False, plots=False)
    # a folder from before fingerprints were recorded still resumes
    manifest.pop("scorer_fingerprint"), manifest.pop("reasoner_fingerprint")
    (tmp_path / "run.json").write_text(json.dumps(manifest))
    await run_eval(task, items, ["drr"], new, tmp_path, progress=False, plots=False)


# -- CLI -------------------------------------------------------------------------------------
runner = CliRunner()


def test_the_library_never_imports_the_recipes_folder_and_plots_lazily():
    """``evals/`` holds recipes and benchmarks, not library code: no module of drr_agent
    imports it; the harness (`drr_agent.evaluation`) and matplotlib load only when used."""
    for path in Path(drr_agent.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] == "evals"], path
        for node in tree.body:  # module level only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if path.name != "plots.py":  # the plots module itself is imported on use
                assert not [n for n in names if n.split(".")[0] == "matplotlib"], path
                assert "drr_agent.evaluation.plots" not in names, path
            if path.parent.name != "evaluation":
                assert not [n for n in names if n.startswith("drr_agent.evaluation")], path


def test_cli_rejects_unknown_methods_and_a_missing_dm(tmp_path, monkeypatch):
    monkeypatch.delenv("DRR_DM", raising=False)
    base = ["eval", "--task", "basic_arithmetic", "--limit", "8", "--out", str(tmp_path)]
    result = runner.invoke(app, [*base, "--methods", "cot,magic"])
    assert result.exit_code == 2 and "unknown method(s) ['magic']" in result.output
    monkeypatch.setattr(
        "drr_agent.cli.evaluate.make_reasoner", lambda *a, **k: Reasoner(seven_plus_four())
    )
    result = runner.invoke(app, [*base, "--methods", "cot,drr"])
    assert result.exit_code == 2 and "No trained DM given" in result.output


def test_cli_evaluates_the_held_out_items_of_a_trace_file(tmp_path, monkeypatch):
    spec = TaskSpec(name="basic_arithmetic", limit=12, seed=5)
    loaded = spec.load()
    split = split_task(loaded, 4, 1)
    spec.save(tmp_path / "traces.task.json")
    split.save(tmp_path / "traces.split.json")
    monkeypatch.setattr(
        "drr_agent.cli.evaluate.make_reasoner", lambda *a, **k: Reasoner(seven_plus_four())
    )
    out = tmp_path / "run"
    args = ["eval", "--traces", str(tmp_path / "traces.jsonl"), "--out", str(out)]
    methods = ["--methods", "cot,self_consistency", "--k", "2", "--reasoner-timeout", "300"]
    result = runner.invoke(app, [*args, *methods])
    assert result.exit_code == 0, result.output
    assert "Evaluation" in result.output and "self_consistency" in result.output
    # one call timeout for the whole traces and the graph's steps alike
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["settings"]["timeout_s"] == manifest["config"]["reasoner_timeout_s"] == 300
    rows = RecordFile(out / "records.jsonl", EvalRecord).read()
    assert {r.item_id for r in rows} == set(split.held_out_ids)
    assert len(rows) == 2 * len(split.held_out_ids)
    assert all(r.correct for r in rows)  # the double answers a + b right
    assert (out / "accuracy_vs_tokens.png").stat().st_size > 0


# -- the real embedded models ----------------------------------------------------------------
@pytest.mark.embedded
async def test_all_methods_end_to_end_on_the_embedded_models(tmp_path, embedded, untrained_dm):
    task = load_task("basic_arithmetic", limit=3, seed=11)
    # tiny budgets: 24-token traces, 16-token steps, at most 3 graph cycles per item
    short_steps = Reasoner(embedded.model.model_copy(update={"max_tokens": 16}), embedded.prompt)
    ctx = MethodContext(
        task,
        short_steps,
        untrained_dm,
        DRRConfig(max_steps=3, max_reasoner_calls=3, max_retries_per_point=2),
        MethodSettings(k=2, max_tokens=24),
    )
    methods = list(METHODS)
    summary = await run_eval(
        task, task.items, methods, ctx, tmp_path, concurrency=4, progress=False
    )
    rows = RecordFile(tmp_path / "records.jsonl", EvalRecord).read()
    assert sorted(r.key for r in rows) == sorted((m, i.id) for m in methods for i in task.items)
    assert not [r.error for r in rows if r.error]
    for r in rows:
        assert r.tokens.prompt > 0 and r.tokens.completion > 0 and r.reasoner_calls >= 1
        graph_with_a_critic = ("drr", "self_critique", "drr_vote")
        assert r.abstained == (r.method in graph_with_a_critic and r.answer is None)
    crit = [r for r in rows if r.method == "self_critique"]
    assert all(r.details["critic"]["calls"] >= 1 for r in crit)
    assert all(r.dm_calls >= 1 for r in rows if r.method in DM_METHODS)
    for r in rows:  # k = 2 graph runs each, every call of both counted
        if r.method in ("drr_vote", "stepwise_vote"):
            assert len(r.details["answers"]) == 2 and r.reasoner_calls >= 2
    assert [m.method for m in summary.methods] == methods
    assert all(m.n == 3 for m in summary.methods)
    for name in ("summary.json", "summary.md", "accuracy_vs_tokens.png", "backtracks.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text())["task"] == "basic_arithmetic"
