"""Sibling candidates: the graph's own candidates at a point, labelled by the answer after them."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from drr_agent import Reasoner
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.pairs import sibling_pairs
from drr_agent.offline.records import StepExample
from drr_agent.offline.siblings import sibling_examples
from drr_agent.tasks import Task, TaskItem


class Adder(BaseChatModel):
    """First steps "a + b = v": right when greedy (temperature 0), off by one for odd seeds;
    an answer asked after a step repeats that step's result."""

    seed: int | None = 0
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "adder"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.calls += 1
        a, b = map(int, re.search(r"(\d+) \+ (\d+)", str(messages[0].content)).groups())
        prefill = str(messages[-1].content) if isinstance(messages[-1], AIMessage) else ""
        if prefill.endswith("So the result is"):
            text = " " + re.findall(r"= (-?\d+)", prefill)[-1]
        else:
            off = 0 if kw.get("temperature") == 0.0 else (kw.get("seed") or 0) % 2
            text = f"{a} + {b} = {a + b + off}"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


def _task() -> Task:
    items = tuple(
        TaskItem(id=f"q{a}", question=f"Calculate {a} + 3.", gold=str(a + 3), answer_type="number")
        for a in range(4)
    )
    return Task(name="adds", source="test", items=items, answer_type="number")


async def test_siblings_label_the_graphs_candidates_and_resume(tmp_path):
    task = _task()
    model = Adder()
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
    calls = model.calls
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
    assert model.calls == calls and len(again) == len(rows)
    more = await sibling_examples(
        task, task.items, "train", Reasoner(model), out, candidates=4, answers=1, progress=False
    )
    assert {r.item_id for r in more} == {"q0", "q1", "q2", "q3"}
    assert len(RecordFile(out, StepExample).keys()) == len(more)  # no duplicated rows
