"""Sibling candidates: the graph's own candidates at a point, labelled by the answer after them."""

from __future__ import annotations

import re

from doubles import ArithmeticRequest, SeededChatModel, arithmetic, number_task

from drr_agent import Reasoner
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.pairs import sibling_pairs
from drr_agent.offline.records import StepExample
from drr_agent.offline.siblings import sibling_examples
from drr_agent.tasks import Task


def adder_slips(request: ArithmeticRequest) -> int:
    """A first step "a + b = v" is right when greedy (temperature 0), off by one for odd
    seeds; the answer asked after it repeats its result (``answer_from="last_step"``)."""
    if request.kind != "step" or request.temperature == 0.0:
        return 0
    return (request.seed or 0) % 2


def adder() -> SeededChatModel:
    """A seeded Reasoner model (``derive`` re-seeds it per item) for "Calculate a + b."."""
    return SeededChatModel(seed=0, respond=arithmetic(adder_slips, answer_from="last_step"))


def _task() -> Task:
    return number_task("adds", ((f"q{a}", f"Calculate {a} + 3.", str(a + 3)) for a in range(4)))


async def test_siblings_label_the_graphs_candidates_and_resume(tmp_path):
    task = _task()
    model = adder()
    out = tmp_path / "siblings.jsonl"
    rows = await sibling_examples(
        task,
        task.items[:2],
        "train",
        Reasoner(model),
        out,
        candidates=4,
        answers=1,
        progress=False,
    )
    for row in rows:
        item = next(i for i in task.items if i.id == row.item_id)
        value = int(re.findall(r"-?\d+", row.step)[-1])
        assert row.label == float(value == int(item.gold)), row  # right iff its result is
        assert row.gold == item.gold and row.split == "train"
    firsts = [r for r in rows if r.step_index == 0]
    assert all(not r.final and r.previous == [] for r in firsts)
    finals = [r for r in rows if r.step_index == 1]
    assert finals and all(r.final and len(r.previous) == 1 for r in finals)
    # each question has a right (greedy) and a wrong first step: sibling pairs to learn from
    pairs = sibling_pairs(firsts)
    assert {better.item_id for better, _ in pairs} == {"q0", "q1"}
    assert all(better.label == 1.0 and worse.label == 0.0 for better, worse in pairs)
    # a rerun does nothing for the items already there, and labels only the new ones
    calls = len(model.calls)  # every derived copy records into this list
    again = await sibling_examples(
        task,
        task.items[:2],
        "train",
        Reasoner(model),
        out,
        candidates=4,
        answers=1,
        progress=False,
    )
    assert len(model.calls) == calls and len(again) == len(rows)
    more = await sibling_examples(
        task, task.items, "train", Reasoner(model), out, candidates=4, answers=1, progress=False
    )
    assert {r.item_id for r in more} == {"q0", "q1", "q2", "q3"}
    assert len(RecordFile(out, StepExample).keys()) == len(more)  # no duplicated rows


async def _reference(path):
    """The rows of an uninterrupted run on the first question (sorted, as JSON)."""
    task = _task()
    await sibling_examples(
        task, task.items[:1], "train", Reasoner(adder()), path, candidates=4, answers=1,
        progress=False,
    )  # fmt: skip
    return sorted(path.read_text().splitlines())


KILLED_MID_GROUP = """
import sys, time, asyncio
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_siblings import _task, adder
from drr_agent import Reasoner
from drr_agent.offline.records import StepExample
from drr_agent.offline.siblings import sibling_examples

dump, dumped = StepExample.model_dump_json, []
def held(self, **kwargs):  # the second row of the group: hold it, and say so
    dumped.append(1)
    if len(dumped) == 2:
        Path({ready!r}).touch()
        time.sleep(600)
    return dump(self, **kwargs)
StepExample.model_dump_json = held
task = _task()
asyncio.run(sibling_examples(
    task, task.items[:1], "train", Reasoner(adder()), {out!r}, candidates=4, answers=1,
    progress=False,
))
"""


async def test_a_kill_mid_group_leaves_no_item_short_of_candidates(tmp_path, until):
    """SIGKILL while an item's rows are being written: the resume labels it whole (issue 32,
    item 8) — not one row of it, taken for the whole item."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    reference = await _reference(tmp_path / "reference.jsonl")
    assert len(reference) >= 3
    out, ready = tmp_path / "siblings.jsonl", tmp_path / "ready"
    script = KILLED_MID_GROUP.format(
        tests=str(Path(__file__).parent), ready=str(ready), out=str(out)
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        await until(lambda: ready.exists() or proc.poll() is not None, "the group's write", 120)
        assert ready.exists(), proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    task = _task()
    await sibling_examples(
        task, task.items[:1], "train", Reasoner(adder()), out, candidates=4, answers=1,
        progress=False,
    )  # fmt: skip
    assert sorted(out.read_text().splitlines()) == reference


async def test_a_group_write_cut_short_is_labelled_again(tmp_path):
    """A kill that cuts the group's one write mid-line: that item's rows go and it is redone."""
    reference = await _reference(tmp_path / "reference.jsonl")
    out = tmp_path / "siblings.jsonl"
    whole = "\n".join(reference) + "\n"
    cut = whole.index("\n", whole.index("\n") + 1) + 7  # two rows and a few bytes of a third
    out.write_text(whole[:cut])
    task = _task()
    rows = await sibling_examples(
        task, task.items[:1], "train", Reasoner(adder()), out, candidates=4, answers=1,
        progress=False,
    )  # fmt: skip
    assert sorted(out.read_text().splitlines()) == reference and len(rows) == len(reference)
