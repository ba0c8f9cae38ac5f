"""DeepConf, the training-free anchor: the Reasoner's token confidence filters and weights the
self-consistency vote (`drr_agent.reasoners.confidence`, the ``deepconf`` method)."""

from __future__ import annotations

import json

import pytest
from doubles import ai_message, number_item, number_task, seven_plus_four
from langchain_core.messages import AIMessage

from drr_agent import DRRConfig, Reasoner
from drr_agent.evaluation import MethodContext, MethodSettings, run_eval
from drr_agent.evaluation.methods import METHODS
from drr_agent.offline.traces import sample_seed
from drr_agent.reasoners.confidence import group_confidences, token_confidences, trace_confidence
from drr_agent.usage import metered

pytestmark = pytest.mark.usefixtures("no_backoff")

Q = "Calculate 7 + 4."


def _logprobs(*tops: list[float]) -> dict:
    """``response_metadata["logprobs"]`` with the given top log-probs per token."""
    return {
        "content": [
            {"token": f"t{i}", "logprob": t[0], "top_logprobs": [{"logprob": v} for v in t]}
            for i, t in enumerate(tops)
        ]
    }


def _reply(text: str, confident: bool, tokens: int = 6) -> AIMessage:
    """A trace whose tokens are all peaked (top token ~1, the rest far below) or all flat."""
    top = [-0.01, -9.0, -10.0] if confident else [-1.0, -1.2, -1.3]
    return ai_message(text, prompt_tokens=20, logprobs=_logprobs(*[top] * tokens))


def test_token_confidence_is_the_negative_mean_of_the_top_log_probs():
    message = ai_message("x", logprobs=_logprobs([-0.1, -2.0, -3.0], [-1.0, -1.0, -1.0]))
    assert token_confidences(message) == pytest.approx((5.1 / 3, 1.0))
    # the sampled token's log-prob alone is no confidence (it turns the measure over)
    only_own = {"content": [{"token": "a", "logprob": -0.1, "top_logprobs": []}]}
    assert token_confidences(ai_message("x", logprobs=only_own)) is None
    assert token_confidences(ai_message("x")) is None  # not asked for, or not returned
    broken = _logprobs([-0.1, float("nan")])
    assert token_confidences(ai_message("x", logprobs=broken)) is None


def test_trace_confidence_measures():
    values = [5.0, 5.0, 1.0, 5.0, 5.0, 5.0]
    assert group_confidences(values, 2) == [5.0, 3.0, 3.0, 5.0, 5.0]
    assert group_confidences(values, 10) == [26 / 6]  # shorter than a window: one group
    assert trace_confidence(values, 2, "lowest_group") == 3.0  # one doubtful stretch marks it
    assert trace_confidence(values, 2, "bottom_10") == 3.0  # the lowest tenth (one group)
    assert trace_confidence(values, 2, "tail") == 5.0
    assert trace_confidence(values, 2, "mean") == pytest.approx(26 / 6)
    assert trace_confidence([], 2) is None
    with pytest.raises(ValueError, match="window"):
        group_confidences(values, 0)


def _ctx(model, **settings) -> MethodContext:
    task = number_task("t", [("q0", Q, "11")])
    return MethodContext(task, Reasoner(model), None, DRRConfig(), MethodSettings(**settings))


async def test_deepconf_keeps_the_confident_traces_where_the_majority_is_wrong():
    item = number_item(Q)
    replies = [("12", False), ("11", True), ("12", False), ("11", True), ("12", False)]
    traces = {
        sample_seed(0, item.id, i): _reply(f"7 + 4 = {a}\nAnswer: {a}", sure)
        for i, (a, sure) in enumerate(replies)
    }
    model = seven_plus_four(traces=traces)
    ctx = _ctx(model, k=5, deepconf_keep=0.4, deepconf_window=4)
    sc = await METHODS["self_consistency"](item, ctx)
    assert sc.answer == "12"  # three unsure samples outvote two sure ones
    out = await METHODS["deepconf"](item, ctx)
    assert out.answer == "11" and out.details["kept"] == [1, 3]
    assert set(out.details["votes"]) == {"11"} and out.reasoner_calls == 5
    assert out.tokens.prompt == 100
    # the same samples as self_consistency (same seeds), with 5 log-probs asked per token
    deep_calls = model.calls[5:]
    assert sorted(c.seed for c in deep_calls) == sorted(c.seed for c in model.calls[:5])
    assert {c.kwargs.get("top_logprobs") for c in deep_calls} == {5}
    assert all(c.kwargs.get("logprobs") is True for c in deep_calls)
    # keeping every trace, the vote is weighted by confidence: two sure beat three unsure
    everything = await METHODS["deepconf"](item, _ctx(model, k=5, deepconf_keep=1.0))
    assert everything.answer == "11" and everything.details["kept"] == [0, 1, 2, 3, 4]


def _flat(text: str, tokens: int = 6) -> AIMessage:
    """A trace less confident than `_reply`'s unsure ones (every token's top-3 all alike)."""
    return ai_message(text, prompt_tokens=20, logprobs=_logprobs(*[[-1.1] * 3] * tokens))


async def test_deepconf_online_cuts_the_unsure_traces_and_never_generates_their_rest():
    item = number_item(Q)
    replies = [
        _reply("7 + 4 = 11\nAnswer: 11", True),  # warm-up: sure, right
        _reply("7 + 4 = 12\nAnswer: 12", False),  # warm-up: unsure (sets the threshold)
        _flat("7 + 4 = 12\nAnswer: 12"),  # below it: cut after one window
        _reply("7 + 4 = 11\nAnswer: 11", True),
        _flat("7 + 4 = 12\nAnswer: 12"),
        _reply("7 + 4 = 12\nAnswer: 12", False),  # at the threshold: votes
    ]
    traces = {sample_seed(0, item.id, i): reply for i, reply in enumerate(replies)}
    model = seven_plus_four(traces=traces)
    ctx = _ctx(model, k=6, deepconf_warmup=2, deepconf_keep=1.0, deepconf_window=4)
    with metered() as ledger:
        out = await METHODS["deepconf_online"](item, ctx)
    assert out.answer == "11" and out.details["cut"] == [2, 4]
    assert out.details["threshold"] == pytest.approx(3.5 / 3)  # the unsure warm-up trace's
    assert not out.details["consensus"] and out.reasoner_calls == 6
    # a cut trace stops after its first window: 4 of its 6 tokens (a whole one reports 7,
    # one per word), with the prompt tokens of the others (the server reported none)
    assert out.tokens.completion == 4 * 7 + 2 * 4 and out.tokens.prompt == 6 * 20
    # the warm-up is asked whole; the rest is streamed, the cut ones only up to the cut
    assert model.streamed == 6 + 4 + 6 + 4
    # the same seeds as deepconf and self_consistency; the ledger books the cut ones too
    assert [c.seed for c in model.calls] == [sample_seed(0, item.id, i) for i in range(6)]
    (usage,) = ledger.models.values()
    assert usage.calls == 6 and usage.completion_tokens == out.tokens.completion
    assert usage.prompt_tokens == out.tokens.prompt
    # the dev sweep's replay of the online method on deepconf's records of the same samples
    # (how its settings are chosen without sampling again) gives the same answer and tokens
    from drr_agent.evaluation.records import EvalRecord
    from evals.benchmarks.deepconf_sweep import _online

    offline = await METHODS["deepconf"](item, ctx)
    record = EvalRecord(
        run_id="r", task="t", method="deepconf", item_id=item.id, question=Q, gold="11",
        details=offline.details,
    )  # fmt: skip
    assert _online(record, "number", 2, 1.0, 4, 0.95) == (out.answer, out.tokens.total)


async def test_deepconf_online_stops_after_a_warm_up_that_agrees():
    item = number_item(Q)
    sure = {sample_seed(0, item.id, i): _reply("7 + 4 = 11\nAnswer: 11", True) for i in range(8)}
    model = seven_plus_four(traces=sure)
    out = await METHODS["deepconf_online"](item, _ctx(model, k=8, deepconf_warmup=3))
    assert out.answer == "11" and out.details["consensus"] and out.reasoner_calls == 3
    assert len(model.calls) == 3 and model.streamed == 0  # nothing more was even asked


async def test_deepconf_without_log_probs_is_an_error_not_a_silent_majority(tmp_path):
    task = number_task("t", [("q0", Q, "11")])
    ctx = MethodContext(task, Reasoner(seven_plus_four()), None, DRRConfig(), MethodSettings())
    summary = await run_eval(
        task, task.items, ["deepconf"], ctx, tmp_path, progress=False, plots=False
    )
    record = json.loads((tmp_path / "records.jsonl").read_text())
    assert "deepconf needs token log-probs" in record["error"]
    assert summary.methods[0].errors == 1


async def test_a_run_folder_from_before_a_new_setting_resumes(tmp_path):
    task = number_task("t", [("q0", Q, "11"), ("q1", Q, "11")])
    ctx = MethodContext(task, Reasoner(seven_plus_four()), None, DRRConfig(), MethodSettings())
    await run_eval(task, task.items[:1], ["cot"], ctx, tmp_path, progress=False, plots=False)
    run = json.loads((tmp_path / "run.json").read_text())
    for name in (
        "deepconf_keep",
        "deepconf_window",
        "deepconf_measure",
        "deepconf_top_logprobs",
        "deepconf_warmup",
        "deepconf_consensus",
    ):
        del run["settings"][name]  # as a run folder written before deepconf existed
    (tmp_path / "run.json").write_text(json.dumps(run))
    await run_eval(task, task.items, ["cot"], ctx, tmp_path, progress=False)  # no mismatch
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 2
    changed = MethodContext(task, ctx.reasoner, None, DRRConfig(), MethodSettings(k=7))
    with pytest.raises(ValueError, match="settings="):
        await run_eval(task, task.items, ["cot"], changed, tmp_path, progress=False, plots=False)


@pytest.mark.embedded
async def test_deepconf_on_the_embedded_reasoner_reads_the_same_samples_with_confidences(
    embedded,
):
    from drr_agent.tasks import load_task

    task = load_task("basic_arithmetic", limit=4, seed=3)
    item = task.items[0]
    ctx = MethodContext(task, embedded, None, DRRConfig(), MethodSettings(k=3, max_tokens=48))
    with metered() as ledger:
        sc = await METHODS["self_consistency"](item, ctx)
    out = await METHODS["deepconf"](item, ctx)
    # the real server names its model, so the ledger knows its size: compute is counted
    (name, usage), *_ = ledger.models.items()
    assert usage.calls == 3 and usage.parameters == 134_515_008, name
    assert usage.prompt_tokens + usage.completion_tokens == sc.tokens.total
    processed = sc.tokens.total - usage.cached_prompt_tokens  # the prefix cache's are not
    assert ledger.compute == 2 * 134_515_008 * processed
    # llama.cpp returns the top log-probs: every trace has a confidence (a positive number)
    assert all(c is not None and c > 0 for c in out.details["confidences"])
    # and asking for them leaves the seeded samples as they were
    assert out.details["answers"] == sc.details["answers"]
    assert out.tokens == sc.tokens and out.reasoner_calls == 3


async def test_the_dev_sweep_reads_headroom_majority_and_every_setting_offline(tmp_path):
    from drr_agent.evaluation.records import EvalRecord
    from drr_agent.offline.jsonl import RecordFile
    from evals.benchmarks.deepconf_sweep import sweep

    item = number_item(Q)
    replies = [("12", False), ("11", True), ("12", False), ("11", True)]
    traces = {
        sample_seed(0, item.id, i): _reply(f"7 + 4 = {a}\nAnswer: {a}", sure)
        for i, (a, sure) in enumerate(replies)
    }
    task = number_task("t", [(item.id, Q, "11")])
    ctx = MethodContext(
        task, Reasoner(seven_plus_four(traces=traces)), None, DRRConfig(), MethodSettings(k=4)
    )
    await run_eval(task, task.items, ["deepconf"], ctx, tmp_path, progress=False, plots=False)
    result = sweep(RecordFile(tmp_path / "records.jsonl", EvalRecord).read(), "number")
    assert result["items"] == 1 and result["k"] == 4
    assert result["pass_at"] == {1: 0.0, 2: 1.0, 4: 1.0} and result["mean_at_1"] == 0.5
    assert result["majority_at"] == {1: 0.0, 2: 0.0, 4: 0.0}  # ties go to the first, "12"
    assert result["deepconf"][0]["accuracy"] == 1.0  # the confident samples say 11
    assert len(result["deepconf"]) == 5 * 5 * 4
    # every method at every k from the same samples: a DM that prefers "= 11" picks it from
    # two samples on; DeepConf under one setting; compute shared by the samples' tokens
    from drr_agent.scorers.base import FunctionScorer

    dm = FunctionScorer(lambda c: 0.9 if "11" in c.candidate else 0.1)
    records = RecordFile(tmp_path / "records.jsonl", EvalRecord).read()
    every = sweep(records, "number", dm, (1.0, 32, "lowest_group"))
    assert every["accuracy_at"]["best_of_n_dm@1"] == 0.0
    assert every["accuracy_at"]["best_of_n_dm@2"] == 1.0
    assert every["accuracy_at"]["deepconf@4"] == 1.0 and every["setting"][0] == 1.0
    assert every["per_item"][item.id]["majority@4"] is False
    compute = records[0].compute
    if compute is not None:  # the double's model has no registered size
        assert every["compute_at"][4] == pytest.approx(compute)


@pytest.mark.embedded
async def test_the_embedded_server_streams_confidences_and_a_stop_rule_cuts_the_stream(embedded):
    """The online form on the real llama.cpp server: a streamed reply carries the same
    per-token confidences as a whole one, and the stop rule ends it where it holds."""
    from drr_agent.tasks import load_task

    task = load_task("basic_arithmetic", limit=4, seed=3)
    args = {"instruction": task.instruction, "temperature": 0.0, "max_tokens": 32, "seed": 1}
    whole = await embedded.asample_trace(task.items[0].question, **args, top_logprobs=5)
    cut = await embedded.asample_trace(
        task.items[0].question, **args, top_logprobs=5, stop_when=lambda c: len(c) >= 5
    )
    assert cut.stopped and not whole.stopped and cut.completion_tokens == 5
    assert cut.prompt_tokens == 0  # the server reports usage only for a finished stream
    assert whole.text.startswith(cut.text) and cut.text  # greedy: the same first tokens
    assert cut.confidences == pytest.approx(whole.confidences[:5], abs=1e-3)
