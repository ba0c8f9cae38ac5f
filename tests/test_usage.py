"""Every model call counted: the per-item ledger (`drr_agent.usage`), the records and the
summary's cost by model and compute figure."""

from __future__ import annotations

import asyncio
import json

import pytest
from doubles import ai_message, number_task, seven_plus_four

from drr_agent import DRRConfig, Reasoner
from drr_agent.evaluation import MethodContext, MethodSettings, run_eval
from drr_agent.usage import booked_as, metered, parameters_of, record_usage, register_parameters

pytestmark = pytest.mark.usefixtures("no_backoff")

Q = "Calculate 7 + 4."


def test_the_ledger_books_chat_calls_by_model_and_role_and_in_process_models_by_hand():
    model = seven_plus_four()
    register_parameters("scripted-7+4", 1_000)

    def reply(call):
        return ai_message(
            "x", prompt_tokens=30, completion_tokens=5, model_name="scripted-7+4",
            token_usage=None,
        )  # fmt: skip

    model.respond = reply
    with metered() as ledger:
        model.invoke("hi")
        with booked_as("lookahead"):
            model.invoke("hi")
        record_usage("my-classifier", prompt_tokens=50, calls=1, parameters=10)
    record_usage("my-classifier", prompt_tokens=50)  # outside: booked nowhere
    assert set(ledger.models) == {"scripted-7+4", "scripted-7+4 (lookahead)", "my-classifier"}
    own = ledger.models["scripted-7+4"]
    assert (own.calls, own.prompt_tokens, own.completion_tokens) == (1, 30, 5)
    assert own.parameters == 1_000 and own.compute == 2 * 1_000 * 35
    assert ledger.models["my-classifier"].compute == 2 * 10 * 50
    assert ledger.compute == 2 * 1_000 * 35 * 2 + 2 * 10 * 50
    # a model of unknown size leaves the total unknown rather than silently smaller
    with metered() as unknown:
        record_usage("mystery", prompt_tokens=5)
    assert unknown.compute is None


def test_the_embedded_models_are_known_by_the_names_their_server_reports():
    from drr_agent.reasoners.embedded import EMBEDDED_REASONERS

    for name, spec in EMBEDDED_REASONERS.items():
        assert parameters_of(spec.served_name) == parameters_of(name) == spec.parameters
    assert parameters_of("no-such-model") is None


async def test_concurrent_items_keep_their_own_ledgers_and_the_summary_shows_compute(tmp_path):
    register_parameters("scripted-7+4", 1_000)

    def respond(call):
        return ai_message("7 + 4 = 11\nAnswer: 11", prompt_tokens=20, model_name="scripted-7+4")

    model = seven_plus_four(delay_s=0.01)
    model.respond = respond
    task = number_task("t", [(f"q{i}", Q, "11") for i in range(4)])
    ctx = MethodContext(task, Reasoner(model), None, DRRConfig(), MethodSettings(k=3))
    summary = await run_eval(
        task, task.items, ["cot", "self_consistency", "stepwise"], ctx, tmp_path, concurrency=8,
        progress=False, plots=True,
    )  # fmt: skip
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    for r in records:
        usage = r["usage"]["scripted-7+4"]
        assert usage["calls"] == r["reasoner_calls"]  # each item its own calls, no other's
        assert usage["prompt_tokens"] == r["tokens"]["prompt"]
        tokens = r["tokens"]["prompt"] + r["tokens"]["completion"]
        assert r["compute"] == pytest.approx(2 * 1_000 * tokens)
    sc = summary.method("self_consistency")
    assert sc.compute_vs_cot == pytest.approx(3.0) and sc.usage["scripted-7+4"].calls == 3
    text = (tmp_path / "summary.md").read_text()
    assert "## Cost by model" in text and "| self_consistency | scripted-7+4 |" in text
    assert (tmp_path / "accuracy_vs_tokens.png").stat().st_size > 0


async def test_ledgers_of_tasks_started_inside_stay_with_their_item():
    async def item(name: str) -> dict:
        with metered() as ledger:
            await asyncio.gather(*(asyncio.to_thread(record_usage, name, prompt_tokens=1)
                                   for _ in range(3)))  # fmt: skip
            return dict(ledger.models)

    a, b = await asyncio.gather(item("a"), item("b"))
    assert set(a) == {"a"} and a["a"].calls == 3 and set(b) == {"b"}


async def test_a_coalesced_batch_is_shared_among_its_callers_by_rows():
    from drr_agent.scorers.coalesce import Coalescer

    async def forward(rows: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        record_usage("dm", prompt_tokens=10 * len(rows), parameters=5)
        return rows

    coalesced = Coalescer(forward)

    async def caller(rows: list[int]) -> dict:
        with metered() as ledger:
            await coalesced(rows)
            return dict(ledger.models)

    first, second, third = await asyncio.gather(caller([1]), caller([2, 3, 4]), caller([5]))
    assert coalesced.calls == 1  # all three waited for the one forward: 5 rows, 50 tokens
    assert [u["dm"].prompt_tokens for u in (first, second, third)] == [10, 30, 10]
    assert [u["dm"].calls for u in (first, second, third)] == [1, 1, 1]


@pytest.mark.embedded
async def test_the_real_classifier_books_its_forward_passes(classifier_dir):
    from drr_agent import StepContext
    from drr_agent.scorers import HFScorer

    dm = HFScorer(classifier_dir, num_threads=1)
    steps = [StepContext("Calculate 8 - 1.", (), f"8 - 1 = {v}") for v in (7, 9)]
    with metered() as ledger:
        await dm.ascore(steps)
        dm.score(steps)
    usage = ledger.models[f"{dm.name} (DM classifier)"]
    assert usage.calls == 2 and usage.prompt_tokens > 2 * len(steps) * 5
    assert 22_000_000 < usage.parameters < 23_500_000 and ledger.compute > 0
