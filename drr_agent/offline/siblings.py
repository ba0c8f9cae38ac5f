"""Sibling candidates: the steps the graph itself would propose at a point, each labelled.

A DM that ranks candidates must learn what separates a right candidate from a wrong one *at
the same point of the same question* — not which questions are hard. Free traces give few such
pairs (their steps are sampled under the whole-trace prompt, and after the first step no two
traces share a prefix), so this module asks the Reasoner for what the graph asks it for:

1. at the question, ``candidates`` first steps through `Reasoner.apropose` with the graph's
   step prompt (the greedy one first, then samples — `greedy_first`, as the graph does);
2. after each distinct first step, ``answers`` final answers asked for with the graph's own
   forced-answer prompt (greedy first).

A first step's label is whether the greedy answer after it is right (an answer rollout, as
``drr labels --kind answer`` makes them, `mc_examples`); a final answer's label is the task's
checker. Everything is the Reasoner's own behaviour with gold answers — no humans, as DRR asks.
One item's rows are appended in one write when it finishes (`RecordFile.append`), so a
killed run resumes item by item, without losing or duplicating rows: the resume skips the
items the file holds, which it may only do because an item's rows are never on disk in part
(row by row, a kill between two rows would leave the item short of candidates for good). A
kill that cuts that one write leaves the file ending mid-line: the resume then drops the last
item's rows and labels it again. A file of other labels (`LabelSettings`) is refused unless
forced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from drr_agent.errors import DRRError, ReasonerError
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.labels import LabelSettings, claim_label_file
from drr_agent.offline.records import SplitName, StepExample
from drr_agent.offline.traces import sample_seed
from drr_agent.reasoners.base import Reasoner
from drr_agent.retry import aretry
from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.checking import is_correct

__all__ = ["sibling_examples"]


def _whole_items(records: RecordFile[StepExample]) -> list[StepExample]:
    """The rows of ``records``, every item's complete: a file ending mid-line lost part of
    its last write — one item's rows — so that item's rows go (rewritten without them) and
    the item is labelled again."""
    torn = records.ends_mid_line()
    rows = records.read(repair=True)
    if torn and rows:
        last = rows[-1].item_id
        rows = [r for r in rows if r.item_id != last]
        records.rewrite(rows)
    return rows


async def sibling_examples(
    task: Task,
    items: Sequence[TaskItem],
    split: SplitName,
    reasoner: Reasoner,
    out: str | Path,
    *,
    candidates: int = 4,
    answers: int = 2,
    seed: int = 0,
    concurrency: int = 8,
    retries: int = 2,
    timeout_s: float = 120.0,
    progress: bool = True,
    force: bool = False,
) -> list[StepExample]:
    """Label the graph's own candidates at the question and the answers after each one (see
    the module); append them to ``out`` item by item, resuming from what it holds. A file of
    labels made otherwise (`LabelSettings`: other candidates, answers, seed, Reasoner, or
    another producer's labels) is refused unless ``force``.

    Returns every row of ``out`` (earlier runs included).
    """
    if candidates < 2:
        raise ValueError(f"siblings need at least 2 candidates per point, got {candidates}")
    if answers < 1:
        raise ValueError(f"answers must be at least 1, got {answers}")
    settings = LabelSettings(
        producer="siblings",
        kind="mc_answer",
        task=task.name,
        reasoner=reasoner.name,
        seed=seed,
        candidates=candidates,
        answers=answers,
    )
    records = RecordFile(out, StepExample)
    with records.exclusive():
        existing = _whole_items(records)
        claim_label_file(records, existing, settings, force=force)
        done = {e.item_id for e in existing}
        semaphore = asyncio.Semaphore(concurrency)
        fmt = reasoner.format_for(task.step_format)

        async def ask(r: Reasoner, what: str, **kwargs: object) -> list:
            return await aretry(
                lambda: r.apropose(**kwargs),  # type: ignore[arg-type]
                what=f"Reasoner {r.name!r} ({what})",
                retries=retries,
                timeout_s=timeout_s,
                error_cls=ReasonerError,
            )

        def row(
            item: TaskItem, sample: int, step: int, previous: list[str], text: str, label: float
        ):
            return StepExample(
                task=task.name,
                split=split,
                item_id=item.id,
                sample_index=sample,
                step_index=step,
                question=item.question,
                gold=item.gold,
                previous=previous,
                step=text,
                label=label,
                label_kind="mc_answer",
                rollouts=1 if step == 0 else 0,
                final=step == 1 or fmt.extract_answer(text) is not None,
            )

        def right(answer: str | None, item: TaskItem) -> float:
            return float(is_correct(answer, item.gold, item.answer_type, item.choices))

        async def one(item: TaskItem) -> list[StepExample]:
            # seeded per item: candidates differ between items and repeat between runs
            r = reasoner.derive(seed=sample_seed(seed, item.id, 0), instruction=task.instruction)
            async with semaphore:
                firsts = await ask(
                    r,
                    "first steps",
                    question=item.question,
                    steps=[],
                    n=candidates,
                    step_format=fmt,
                    call_index=0,
                    greedy_first=True,
                )
                rows: list[StepExample] = []
                seen: set[str] = set()
                for i, first in enumerate(firsts):
                    if not first.text or first.text in seen:
                        continue
                    seen.add(first.text)
                    own = fmt.extract_answer(first.text)
                    if own is not None:  # a first step that already answers is judged as one
                        rows.append(row(item, i, 0, [], first.text, right(own, item)))
                        continue
                    finals = await ask(
                        r,
                        "answers",
                        question=item.question,
                        steps=[first.text],
                        n=answers,
                        step_format=fmt,
                        call_index=1 + i,
                        final=True,
                        greedy_first=True,
                    )
                    rows.append(row(item, i, 0, [], first.text, right(finals[0].answer, item)))
                    shown: set[str] = set()
                    for j, final in enumerate(finals):
                        if final.text and final.text not in shown:
                            shown.add(final.text)
                            label = right(final.answer, item)
                            rows.append(
                                row(item, i * answers + j, 1, [first.text], final.text, label)
                            )
            return rows

        todo = [item for item in items if item.id not in done]
        columns = (
            TextColumn("[bold]siblings[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, disable=not progress, transient=False) as bar:
            job = bar.add_task(f"{task.name}/{split}", total=len(todo))
            for future in asyncio.as_completed([one(item) for item in todo]):
                try:
                    rows = await future
                except ReasonerError as exc:  # this item is retried on the next run
                    raise DRRError(f"sibling candidates stopped: {exc}; rerun to resume") from exc
                records.append(rows)  # one write: the whole item, or none of it
                bar.advance(job)
        return records.read()
