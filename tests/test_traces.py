"""`sample_traces`, resume after a kill, and annotation-free labels (seeded doubles + real task)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from doubles import TRACE, ArithmeticRequest, ScriptedChatModel, arithmetic

from drr_agent import Reasoner, StepPrompt
from drr_agent.offline.jsonl import RecordFile, RecordFileError, RecordFileLockedError
from drr_agent.offline.labels import mc_examples, outcome_examples, summarize_labels
from drr_agent.offline.records import TraceRecord
from drr_agent.offline.traces import TraceFileMismatchError, finish_trace, sample_traces
from drr_agent.tasks import load_task

pytestmark = pytest.mark.usefixtures("no_backoff")

ANSWER_PREFIX = StepPrompt().answer_prefix


def slips(request: ArithmeticRequest) -> int:
    """A whole trace is right half the time (else off by -2, 1 or 3); a rollout after a prefix
    answers what the prefix's last step computed, one too high 30% of the time."""
    if request.kind == "trace":
        return 0 if request.rng.random() < 0.5 else request.rng.choice([-2, 1, 3])
    return 0 if request.rng.random() < 0.7 else 1


def seeded_arithmetic(**fields: Any) -> ScriptedChatModel:
    """Answers "Calculate a ± b." step by step; the seed decides whether it slips (`slips`).

    Deterministic per (prompt, seed), like a seeded sampler; continues a prefilled assistant
    message (for Monte-Carlo rollouts) by answering what the last step computed. Whole traces
    drift on after their answer. Replies report 20 prompt tokens, one per word.
    """
    trace = "Let me compute.\n" + TRACE + "\nextra drift"
    respond = arithmetic(slips, trace=trace, answer_from="last_step")
    return ScriptedChatModel(respond=respond, prompt_tokens=20, **fields)


@pytest.fixture(scope="module")
def task():
    return load_task("basic_arithmetic", limit=6, seed=3)


def _sorted(path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(rows, key=lambda r: (r["item_id"], r["sample_index"]))


async def test_traces_are_split_checked_and_recorded(tmp_path, task):
    out = tmp_path / "traces.jsonl"
    summary = await sample_traces(
        task,
        task.items,
        "train",
        Reasoner(seeded_arithmetic()),
        out,
        samples_per_item=4,
        seed=1,
        progress=False,
    )
    records = RecordFile(out, TraceRecord).read()
    assert len(records) == summary.traces_total == summary.traces_new == 24
    assert len({r.key for r in records}) == 24
    for r in records:
        assert r.status == "ok" and r.task == "basic_arithmetic" and r.split == "train"
        assert r.steps[-1].startswith("Answer:"), "steps end at the first answer (drift cut)"
        assert r.answer_marked and r.sampling.samples_per_item == 4 and r.sampling.seed == 1
        assert r.correct == (r.answer == r.gold)
    assert summary.correct == sum(r.correct for r in records)
    assert 0 < summary.accuracy < 1


async def test_killed_run_resumes_to_the_same_records(tmp_path, task, until):
    reference = tmp_path / "reference.jsonl"
    await sample_traces(
        task,
        task.items,
        "train",
        Reasoner(seeded_arithmetic()),
        reference,
        samples_per_item=3,
        seed=5,
        concurrency=2,
        progress=False,
    )

    out = tmp_path / "killed.jsonl"
    job = asyncio.create_task(
        sample_traces(
            task,
            task.items,
            "train",
            Reasoner(seeded_arithmetic()),
            out,
            samples_per_item=3,
            seed=5,
            concurrency=2,
            progress=False,
        )
    )
    await until(
        lambda: out.exists() and len(out.read_text().splitlines()) >= 5,
        "5 trace records before the kill",
    )
    job.cancel()  # the kill
    with pytest.raises(asyncio.CancelledError):
        await job
    with out.open("a") as fh:  # and a line cut short by the kill
        fh.write('{"schema_version": 1, "task": "basic_ar')
    partial = len(out.read_text().splitlines())
    assert 5 <= partial < 18

    model = seeded_arithmetic()
    summary = await sample_traces(
        task,
        task.items,
        "train",
        Reasoner(model),
        out,
        samples_per_item=3,
        seed=5,
        concurrency=2,
        progress=False,
    )
    assert summary.traces_new == len(model.calls) == 18 - (partial - 1)
    assert _sorted(out) == _sorted(reference)  # nothing lost, nothing duplicated


async def test_failures_are_recorded_and_counted(tmp_path, task):
    down = task.items[0].question
    model = seeded_arithmetic(fail_on=(down,))
    summary = await sample_traces(
        task,
        task.items,
        "train",
        Reasoner(model),
        tmp_path / "t.jsonl",
        samples_per_item=2,
        retries=1,
        progress=False,
    )
    assert summary.failed == 2 and summary.traces_total == 12
    failed = [
        r for r in RecordFile(tmp_path / "t.jsonl", TraceRecord).read() if r.status == "failed"
    ]
    assert {r.item_id for r in failed} == {task.items[0].id}
    assert "reasoner down" in failed[0].error and "after 2 attempts" in failed[0].error


async def test_a_file_from_another_reasoner_is_refused_unless_forced(tmp_path, task):
    out = tmp_path / "t.jsonl"
    items = task.items[:2]
    await sample_traces(
        task,
        items,
        "train",
        Reasoner(seeded_arithmetic(), name="A"),
        out,
        samples_per_item=1,
        progress=False,
    )
    with pytest.raises(TraceFileMismatchError, match="reasoner='A'"):
        await sample_traces(
            task,
            items,
            "train",
            Reasoner(seeded_arithmetic(), name="B"),
            out,
            samples_per_item=1,
            progress=False,
        )
    summary = await sample_traces(
        task,
        items,
        "train",
        Reasoner(seeded_arithmetic(), name="B"),
        out,
        samples_per_item=2,
        progress=False,
        force=True,
    )
    assert summary.traces_new == 2  # index 1 of each item; index 0 is already there


def test_malformed_line_names_file_line_and_field(tmp_path):
    out = tmp_path / "t.jsonl"
    good = TraceRecord.model_validate(
        json.loads(
            '{"task":"t","split":"train","item_id":"a","sample_index":0,"question":"q","gold":"1",'
            '"reasoner":"r","sampling":{"temperature":0.8,"max_tokens":9,"seed":0,'
            '"samples_per_item":1,"prompt_style":"prefill","instruction":"i"},"status":"ok"}'
        )
    )
    RecordFile(out, TraceRecord).append([good])
    bad = good.model_dump()
    bad["sample_index"] = -1
    with out.open("a") as fh:
        fh.write(json.dumps(bad) + "\n")
        fh.write(good.model_dump_json() + "\n")
    with pytest.raises(
        RecordFileError, match=r"t\.jsonl:2: invalid TraceRecord: field 'sample_index'"
    ):
        RecordFile(out, TraceRecord).read()
    out.write_text(good.model_dump_json() + "\n{not json\n")
    with pytest.raises(RecordFileError, match=r":2: invalid TraceRecord: not valid JSON"):
        RecordFile(out, TraceRecord).read()


def test_answer_fallback_without_a_marker(task):
    item = task.items[0]
    steps, answer, marked = finish_trace("First I add.\nThe result is 12", item, task.step_format)
    assert steps == ["First I add.", "The result is 12"] and answer == "12" and not marked
    assert finish_trace("", item, task.step_format) == ([], None, False)


async def test_outcome_and_monte_carlo_labels(tmp_path, task):
    traces_path = tmp_path / "traces.jsonl"
    await sample_traces(
        task,
        task.items,
        "train",
        Reasoner(seeded_arithmetic()),
        traces_path,
        samples_per_item=3,
        seed=2,
        progress=False,
    )
    traces = RecordFile(traces_path, TraceRecord).read()

    outcome = outcome_examples(traces)
    assert len(outcome) == sum(len(t.steps) for t in traces)
    for e in outcome:
        trace = next(t for t in traces if t.key == (e.item_id, e.sample_index))
        assert e.label == float(trace.correct) and e.previous == trace.steps[: e.step_index]
        assert e.final == (e.step_index == len(trace.steps) - 1)
    summary = summarize_labels(outcome)
    assert summary.examples == len(outcome) and 0 < summary.positive_rate < 1

    model = seeded_arithmetic()
    out = tmp_path / "mc.jsonl"
    mc = await mc_examples(traces, task, Reasoner(model), out, rollouts=4, progress=False)
    assert {e.key for e in mc} == {e.key for e in outcome}
    prefixes = {(e.item_id, (*e.previous, e.step)) for e in mc if not e.final}
    assert len(model.calls) == 4 * len(prefixes), "identical prefixes are rolled out once"
    for e in mc:
        if e.final:
            assert e.label in (0.0, 1.0) and e.rollouts == 0
        else:
            assert e.label * 4 == int(e.label * 4) and e.rollouts == 4
    # a wrong computed step leads rollouts to wrong answers: MC separates what outcome can't
    wrong = [
        e
        for e in mc
        if "=" in e.step
        and not e.final
        and e.step.split("=")[-1].strip() != next(t.gold for t in traces if t.item_id == e.item_id)
    ]
    assert wrong and all(e.label == 0.0 for e in wrong)

    again = await mc_examples(
        traces, task, Reasoner(seeded_arithmetic()), out, rollouts=4, progress=False
    )
    assert sorted(e.key for e in again) == sorted(e.key for e in mc)  # resumed: nothing redone

    # answer rollouts: the graph's forced-answer prompt after each prefix, one line each
    model = seeded_arithmetic()
    answer = await mc_examples(
        traces,
        task,
        Reasoner(model),
        tmp_path / "answer.jsonl",
        rollouts=2,
        continuation="answer",
        progress=False,
    )
    assert {e.key for e in answer} == {e.key for e in outcome}
    assert {e.label_kind for e in answer} == {"mc_answer"}
    asked = [
        c for c in model.calls if (c.prefill or "").endswith(ANSWER_PREFIX) and c.stop == ["\n"]
    ]
    assert len(model.calls) == len(asked) == 2 * len(prefixes)
    by_key = {e.key: e for e in answer}
    assert all(by_key[e.key].label == 0.0 for e in wrong)
    assert {e.label for e in answer if not e.final} <= {0.0, 0.5, 1.0}
    assert all(e.lookahead is None for e in answer)  # not asked for

    # with the lookahead: one greedy answer more per distinct prefix, final steps included
    model = seeded_arithmetic()
    looked = await mc_examples(
        traces,
        task,
        Reasoner(model),
        tmp_path / "lookahead.jsonl",
        rollouts=2,
        continuation="answer",
        progress=False,
        lookahead=True,
    )
    every = {(e.item_id, (*e.previous, e.step)) for e in looked}
    greedy = [c for c in model.calls if c.kwargs.get("temperature") == 0.0]
    assert len(greedy) == len(every) and len(model.calls) == len(greedy) + 2 * len(prefixes)
    assert all(c.stop == ["\n"] and (c.prefill or "").endswith(ANSWER_PREFIX) for c in greedy)
    assert all(e.lookahead and e.lookahead.lstrip("-").isdigit() for e in looked)
    gold = {t.item_id: t.gold for t in traces}
    assert any(e.lookahead == gold[e.item_id] for e in looked)
    assert [e.label for e in looked] == [by_key[e.key].label for e in looked]


async def test_a_second_writer_of_the_same_file_fails_clearly(tmp_path, task, until):
    out = tmp_path / "t.jsonl"

    def job():
        return sample_traces(
            task, task.items, "train", Reasoner(seeded_arithmetic()), out, samples_per_item=3,
            seed=5, concurrency=1, progress=False,
        )  # fmt: skip

    first = asyncio.create_task(job())
    await until(lambda: out.exists() and out.read_text().count("\n") >= 1, "a first trace")
    with pytest.raises(
        RecordFileLockedError, match=rf"t\.jsonl is being written by pid {os.getpid()}"
    ):
        await job()
    await first  # the first writer is untouched and finishes
    assert len(RecordFile(out, TraceRecord).read()) == len(task.items) * 3
    await job()  # and the file is free again


def test_a_killed_writer_leaves_no_lock(tmp_path):
    out = tmp_path / "t.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from drr_agent.offline.jsonl import RecordFile
            from drr_agent.offline.records import TraceRecord
            with RecordFile({str(out)!r}, TraceRecord).exclusive():
                print("locked", flush=True)
                time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(RecordFileLockedError, match=f"pid {holder.pid}"),
            RecordFile(out, TraceRecord).exclusive(),
        ):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with RecordFile(out, TraceRecord).exclusive():  # the kernel dropped the lock
            pass
    finally:
        holder.kill()


async def test_failed_traces_are_sampled_again_on_resume(tmp_path, task):
    """A Reasoner outage must not shrink the training data for good (issue 32, item 6)."""
    out = tmp_path / "t.jsonl"
    down = task.items[0].question

    def run(model, **kwargs):
        return sample_traces(
            task, task.items, "train", Reasoner(model), out, samples_per_item=2, retries=1,
            progress=False, **kwargs,
        )  # fmt: skip

    first = await run(seeded_arithmetic(fail_on=(down,)))
    assert first.failed == 2
    kept = await run(seeded_arithmetic(), retry_errors=False)  # the old behaviour, on request
    assert kept.traces_new == 0 and kept.failed == 2
    model = seeded_arithmetic()
    again = await run(model)  # the Reasoner is back: the failed traces, and nothing else
    assert again.traces_new == len(model.calls) == 2
    records = RecordFile(out, TraceRecord).read()
    assert again.failed == 0 and all(r.status == "ok" for r in records)
    assert sorted(r.key for r in records) == sorted(
        (item.id, i) for item in task.items for i in range(2)
    )
