"""Behavioural traces: the Reasoner's own reasoning on questions with gold answers.

DRR's DM is trained on what *this* Reasoner does, right and wrong, so the first offline step
samples K traces per question with the Reasoner under the same prompt the graph uses, cuts each
into steps (`StepFormat`), extracts and checks its answer with the task's checker, and appends
one `TraceRecord` per trace to a JSON Lines file as it goes. Sampling is concurrent but bounded;
a re-run skips what the file already holds; a trace whose Reasoner call fails after retries is
recorded as ``failed`` and the run goes on. A re-run samples failed traces again (unless
``retry_errors=False``): an outage of the Reasoner must not shrink the training data for good.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from drr_agent.errors import DRRError, ReasonerError
from drr_agent.execution import Executor, LocalExecutor
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import SamplingSettings, SplitName, TraceRecord
from drr_agent.reasoners.base import Reasoner
from drr_agent.reasoners.sampling import TRACE_MAX_TOKENS, TRACE_TEMPERATURE
from drr_agent.reasoners.signals import trace_step_statistics
from drr_agent.steps import StepFormat
from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.checking import is_correct, normalize_answer


class TraceFileMismatchError(DRRError, ValueError):
    """An existing trace file was produced by another task, Reasoner or sampling setting."""


class TraceSummary(BaseModel):
    """What a `sample_traces` run did (this run and the file as a whole).

    ``pass_at_k`` is the Reasoner's headroom: the share of items at least one of whose
    ``k`` (``samples_per_item``) traces reaches the gold answer. No critic that chooses among
    these samples can beat it, so read a method's accuracy against it.
    """

    path: str
    items: int
    traces_total: int
    traces_new: int
    failed: int
    correct: int
    accuracy: float
    marked: int
    k: int = 0
    pass_at_k: float = 0.0
    seconds: float
    traces_per_second: float


def sample_seed(seed: int, item_id: str, sample_index: int) -> int:
    """A per-trace seed: the same (seed, item, index) always samples the same way."""
    digest = hashlib.sha256(f"{seed}:{item_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def finish_trace(text: str, item: TaskItem, fmt: StepFormat) -> tuple[list[str], str | None, bool]:
    """Cut a completion into steps, up to the first answer; return (steps, answer, marked).

    ``fmt`` is the task's answer rules cut the way the Reasoner writes
    (`Reasoner.format_for`), so traces are cut into the steps the graph would take."""
    steps = fmt.split(text)
    for index, step in enumerate(steps):
        answer = fmt.extract_answer(step)
        if answer is not None:
            return steps[: index + 1], answer, True
    if steps:  # no marker: read the answer off the last step (numbers, letters, yes/no)
        fallback = normalize_answer(steps[-1], item.answer_type, item.choices)
        if fallback is not None and item.answer_type != "text":
            return steps, fallback, False
    return steps, None, False


def _check_compatible(existing: Sequence[TraceRecord], probe: TraceRecord, path: Path) -> None:
    for record in existing[:1]:
        for field in ("task", "reasoner", "sampling"):
            if getattr(record, field) != getattr(probe, field):
                raise TraceFileMismatchError(
                    f"{path} holds traces with {field}={getattr(record, field)!r}, this run has "
                    f"{getattr(probe, field)!r}. Use another --out file, or --force to append."
                )


@dataclass(frozen=True)
class _TraceJob:
    """Sample one trace for one ``(item, sample index)`` unit: a picklable job, so an
    `Executor` can run it in this process or on a Ray worker (`drr_agent.execution`)."""

    task: Task
    split: SplitName
    reasoner_name: str
    sampling: SamplingSettings
    retries: int
    timeout_s: float
    logprobs: bool = True

    def record(self, item: TaskItem, index: int, **fields: object) -> TraceRecord:
        return TraceRecord(
            task=self.task.name,
            split=self.split,
            item_id=item.id,
            sample_index=index,
            question=item.question,
            gold=item.gold,
            reasoner=self.reasoner_name,
            sampling=self.sampling,
            **fields,  # type: ignore[arg-type]
        )

    async def __call__(self, reasoner: Reasoner, unit: tuple[TaskItem, int]) -> TraceRecord:
        item, index = unit
        try:
            trace = await reasoner.asample_trace(
                item.question,
                instruction=self.task.instruction,
                temperature=self.sampling.temperature,
                max_tokens=self.sampling.max_tokens,
                seed=sample_seed(self.sampling.seed, item.id, index),
                retries=self.retries,
                timeout_s=self.timeout_s,
                logprobs=self.logprobs,
            )
        except ReasonerError as exc:
            return self.record(item, index, status="failed", error=str(exc))
        fmt = reasoner.format_for(self.task.step_format)
        steps, answer, marked = finish_trace(trace.text, item, fmt)
        return self.record(
            item,
            index,
            status="ok",
            text=trace.text,
            steps=steps,
            answer=answer,
            answer_marked=marked,
            correct=is_correct(answer, item.gold, item.answer_type, item.choices),
            prompt_tokens=trace.prompt_tokens,
            completion_tokens=trace.completion_tokens,
            step_signals=trace_step_statistics(trace.text, steps, trace.tokens),
        )


async def sample_traces(
    task: Task,
    items: Sequence[TaskItem],
    split: SplitName,
    reasoner: Reasoner,
    out: str | Path,
    *,
    samples_per_item: int = 8,
    temperature: float = TRACE_TEMPERATURE,
    max_tokens: int = TRACE_MAX_TOKENS,
    seed: int = 0,
    concurrency: int = 8,
    retries: int = 2,
    timeout_s: float = 120.0,
    force: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
    retry_errors: bool = True,
    logprobs: bool = True,
) -> TraceSummary:
    """Sample ``samples_per_item`` traces for each item and append them to ``out``.

    Resumes: traces already in ``out`` (same item id and sample index) are not sampled again.
    Refuses a file written for another task, Reasoner or sampling setting unless ``force``.
    ``retry_errors`` drops the ``failed`` traces of these items from ``out`` first, so they
    are sampled again (``False``: they count as done, as the run that failed left them).
    ``logprobs`` asks for the sampled tokens' log-probs and records each step's statistics
    (`TraceRecord.step_signals`: what a DM over the Reasoner's own signals trains on); turn
    it off for an API that refuses ``logprobs``.
    ``executor`` runs the samples (default: this process, ``concurrency`` at once; a
    `drr_agent.execution.RayExecutor` spreads them over a Ray cluster); either way this
    process alone appends them to ``out``.
    """
    started = time.perf_counter()
    records = RecordFile(out, TraceRecord)
    with records.exclusive():
        existing = records.read(repair=True)
        sampling = SamplingSettings(
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            samples_per_item=samples_per_item,
            prompt_style=reasoner.prompt.style,
            instruction=task.instruction,
        )

        job = _TraceJob(
            task=task,
            split=split,
            reasoner_name=reasoner.name,
            sampling=sampling,
            retries=retries,
            timeout_s=timeout_s,
            logprobs=logprobs,
        )
        if items and not force:
            _check_compatible(existing, job.record(items[0], 0, status="failed"), records.path)
        wanted = [(item, index) for item in items for index in range(samples_per_item)]
        if retry_errors:
            retried = {(item.id, index) for item, index in wanted}
            kept = [r for r in existing if r.status != "failed" or r.key not in retried]
            if len(kept) < len(existing):
                records.rewrite(kept)  # their traces are sampled again below
                existing = kept
        done = {r.key for r in existing}
        todo = [(item, index) for item, index in wanted if (item.id, index) not in done]
        stats = {"new": 0, "correct": 0, "failed": 0}

        columns = (
            TextColumn("[bold]traces[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.2f} traces/s  acc {task.fields[acc]:.2f}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, disable=not progress, transient=False) as bar:
            row = bar.add_task(f"{task.name}/{split}", total=len(todo), rate=0.0, acc=0.0)
            runner = executor or LocalExecutor(concurrency)
            async for result in runner.stream(job, todo, reasoner):
                records.append([result])
                stats["new"] += 1
                stats["failed"] += result.status == "failed"
                stats["correct"] += result.correct
                elapsed = time.perf_counter() - started
                bar.update(
                    row,
                    advance=1,
                    rate=stats["new"] / max(elapsed, 1e-9),
                    acc=stats["correct"] / stats["new"],
                )
        everything = records.read()
        ok = [r for r in everything if r.status == "ok"]
        solved: dict[str, bool] = {}
        for r in ok:
            solved[r.item_id] = solved.get(r.item_id, False) or r.correct
        seconds = time.perf_counter() - started
        return TraceSummary(
            path=str(records.path),
            items=len({r.item_id for r in everything}),
            traces_total=len(everything),
            traces_new=stats["new"],
            failed=len(everything) - len(ok),
            correct=sum(r.correct for r in ok),
            accuracy=sum(r.correct for r in ok) / len(ok) if ok else 0.0,
            marked=sum(r.answer_marked for r in ok),
            k=samples_per_item,
            pass_at_k=sum(solved.values()) / len(solved) if solved else 0.0,
            seconds=seconds,
            traces_per_second=stats["new"] / seconds if seconds else 0.0,
        )
