"""`run_eval`: run methods over a task's items, concurrently, resumably, with progress.

A run lives in one folder::

    run.json              what was run: task, Reasoner, DM, budgets (checked on resume)
    records.jsonl         one EvalRecord per (method, item), appended as each finishes
    summary.json / .md    per-method accuracy (95% CI), cost, abstention (evaluation.summary)
    accuracy_vs_tokens.png, backtracks.png   (drr_agent.evaluation.plots)

Every (method, item) pair is one job; an `Executor` runs them (by default this process, at
most ``concurrency`` at once; or a Ray cluster) and this process appends each record as it
arrives, item by item so that an interrupted run leaves every method on the same
first items. A re-run in the same folder skips the pairs ``records.jsonl`` already holds (no
duplicates, a line cut short by a kill is repaired) and refuses a folder written with another
task, Reasoner, DM or budget unless ``force``. A DM whose card lists its training questions
(`StepScorer.trained_questions`) is never reported on one of them: the run stops with
`TrainedOnEvalItemsError` before any item runs, unless ``allow_trained_questions``. A method
that fails after its own retries is recorded with ``error`` and counted; the run goes on
(``retry_errors`` runs such items again).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from drr_agent.config import DRRConfig
from drr_agent.errors import DRRError, describe_validation_error
from drr_agent.evaluation.methods import DM_METHODS, METHODS, MethodContext, MethodSettings
from drr_agent.evaluation.records import RECORDS_FILE, EvalRecord
from drr_agent.evaluation.summary import EvalSummary, summarize, write_summary
from drr_agent.execution import Executor, LocalExecutor
from drr_agent.offline.jsonl import RecordFile, write_json
from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.checking import is_correct
from drr_agent.tasks.splits import question_hash
from drr_agent.usage import metered

RUN_FILE = "run.json"


class EvalRunMismatchError(DRRError, ValueError):
    """A run folder holds records of another task, Reasoner, DM or budget."""


class TrainedOnEvalItemsError(DRRError, ValueError):
    """Some items to evaluate a DM on are questions the DM was trained on."""


def check_not_trained_on(items: Sequence[TaskItem], ctx: MethodContext) -> None:
    """Raise `TrainedOnEvalItemsError` if the DM's card lists any item's question."""
    trained = ctx.scorer.trained_questions if ctx.scorer is not None else None
    if not trained:
        return
    seen = [item for item in items if question_hash(item.question) in trained]
    if seen:
        shown = ", ".join(repr(item.id) for item in seen[:3])
        raise TrainedOnEvalItemsError(
            f"DM {ctx.scorer.name!r} was trained on the questions of {len(seen)} of the "
            f"{len(items)} items to evaluate (e.g. {shown}): its numbers there would not be "
            "held-out numbers. Evaluate on the split's test part (drr eval --split test), or "
            "--force (allow_trained_questions=True) to report them anyway."
        )


class RunManifest(BaseModel):
    """``run.json``: what a run folder was evaluated with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    created: str
    task: str
    task_params: dict[str, Any]
    reasoner: str
    scorer: str | None
    settings: dict[str, Any]
    config: dict[str, Any]
    reasoner_fingerprint: str | None = None
    scorer_fingerprint: str | None = None

    def setup(self) -> dict[str, Any]:
        """The fields a resumed run must share (everything but the id and creation time).

        ``settings`` and ``config`` are read through their models, so a setting added to
        `MethodSettings` or `DRRConfig` since the run began takes its default there — the
        value the run had in effect — instead of making every older run folder a mismatch.
        """
        setup = self.model_dump(exclude={"run_id", "created"}, mode="json")
        for key, model in (("settings", MethodSettings), ("config", DRRConfig)):
            # a field this version no longer has: compared as written, so it differs
            with suppress(ValidationError):
                setup[key] = model.model_validate(setup[key]).model_dump(mode="json")
        return setup


def _new_run_id(task: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{task.replace(':', '-')}-{stamp}-{secrets.token_hex(2)}"


def _manifest(task: Task, ctx: MethodContext, out: Path, run_id: str | None, force: bool):
    wanted = RunManifest(
        run_id=run_id or _new_run_id(task.name),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        task=task.name,
        task_params=task.params,
        reasoner=ctx.reasoner.name,
        scorer=ctx.scorer.name if ctx.scorer is not None else None,
        settings=ctx.settings.model_dump(mode="json"),
        config=ctx.config.model_dump(mode="json"),
        reasoner_fingerprint=ctx.reasoner.fingerprint,
        scorer_fingerprint=ctx.scorer.fingerprint if ctx.scorer is not None else None,
    )
    path = out / RUN_FILE
    if not path.exists():
        write_json(path, wanted.model_dump(mode="json"))
        return wanted
    try:
        existing = RunManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise EvalRunMismatchError(
            f"{path}: not a valid run manifest: {describe_validation_error(exc)}"
        ) from exc
    if not force:
        old, new = existing.setup(), wanted.setup()
        for field, value in new.items():
            if field.endswith("_fingerprint") and old[field] is None:
                continue  # a folder written before fingerprints were recorded
            if old[field] != value:
                what = (
                    f"{field.removesuffix('_fingerprint')} with another fingerprint "
                    f"({old[field]} then, {value} now: retrained or changed in place)"
                    if field.endswith("_fingerprint")
                    else f"{field}={old[field]!r}; this run has {value!r}"
                )
                raise EvalRunMismatchError(
                    f"{out} was evaluated with {what}. Use another output folder, or "
                    "force=True (--force) to append."
                )
    resumed = wanted.model_copy(update={"run_id": existing.run_id, "created": existing.created})
    write_json(path, resumed.model_dump(mode="json"))
    return resumed


def _drop_errors(records: RecordFile[EvalRecord]) -> None:
    """Rewrite the records file without its failed items (atomically: `RecordFile.rewrite`)."""
    existing = records.read(repair=True)
    if any(r.error for r in existing):
        records.rewrite(r for r in existing if r.error is None)


def check_methods(methods: Sequence[str], *, has_scorer: bool = True) -> None:
    """Raise ``ValueError`` for an unknown or repeated method, or a DM method without a DM."""
    if not methods:
        raise ValueError(f"no methods given; known methods: {', '.join(METHODS)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known methods: {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"a method is listed twice: {list(methods)}")
    needing = [m for m in methods if m in DM_METHODS]
    if needing and not has_scorer:
        raise ValueError(f"method(s) {needing} need a DM (MethodContext.scorer / --dm)")


@dataclass(frozen=True)
class _EvalJob:
    """Run one method on one item: a picklable job, so an `Executor` can run it here or on a
    Ray worker (`drr_agent.execution`); failures become records, never lost units."""

    run_id: str
    task_name: str

    async def __call__(self, ctx: MethodContext, unit: tuple[str, TaskItem]) -> EvalRecord:
        method, item = unit
        which = {
            "run_id": self.run_id,
            "task": self.task_name,
            "method": method,
            "item_id": item.id,
            "question": item.question,
            "gold": item.gold,
        }
        started = time.perf_counter()
        with metered() as ledger:  # every model call of this item, the DM's included
            try:
                outcome = await METHODS[method](item, ctx)
            except Exception as exc:  # recorded and counted, never dropped
                return EvalRecord(
                    **which,
                    latency_s=time.perf_counter() - started,
                    usage=dict(ledger.models),
                    error=f"{type(exc).__name__}: {exc}",
                )
        return EvalRecord(
            **which,
            answer=outcome.answer,
            correct=is_correct(outcome.answer, item.gold, item.answer_type, item.choices),
            abstained=outcome.abstained,
            tokens=outcome.tokens,
            reasoner_calls=outcome.reasoner_calls,
            dm_calls=outcome.dm_calls,
            backtracks=outcome.backtracks,
            latency_s=time.perf_counter() - started,
            usage=dict(ledger.models),
            compute=ledger.compute,
            details=outcome.details,
        )


async def run_eval(
    task: Task,
    items: Sequence[TaskItem],
    methods: Sequence[str],
    ctx: MethodContext,
    out_dir: str | Path,
    concurrency: int = 4,
    progress: bool = True,
    *,
    run_id: str | None = None,
    force: bool = False,
    plots: bool = True,
    retry_errors: bool = False,
    allow_trained_questions: bool = False,
    executor: Executor | None = None,
) -> EvalSummary:
    """Evaluate ``methods`` on ``items`` into ``out_dir`` and summarise (see the module).

    Args:
        task: The task the items belong to (``ctx.task`` should be the same task).
        items: The items to evaluate (normally the held-out part of a split).
        methods: Keys of `evaluation.methods.METHODS`, in the order the summary lists them.
        ctx: Reasoner, DM and budgets shared by all methods.
        out_dir: The run folder (created; resumed if it holds records).
        concurrency: (method, item) jobs in flight at once.
        progress: Show a rich progress bar per method.
        run_id: Id of a new run (default: task name, UTC time and a random suffix); a resumed
            run keeps the id in its ``run.json``.
        force: Append to a folder evaluated with another setup.
        plots: Also write the PNG plots.
        retry_errors: Drop the records of failed items from ``records.jsonl`` first, so they
            are run again (e.g. after a Reasoner server was down).
        allow_trained_questions: Evaluate a DM method on items whose questions the DM was
            trained on (refused by default: `check_not_trained_on`).
        executor: Runs the (method, item) jobs (default: this process, ``concurrency`` at
            once; a `drr_agent.execution.RayExecutor` spreads them over a Ray cluster, where
            each worker rebuilds ``ctx``'s Reasoner and DM); this process alone writes them.

    Returns:
        The summary of ``methods`` × ``items`` (records from earlier, resumed runs included),
        also written as ``summary.json`` and ``summary.md``.
    """
    check_methods(methods, has_scorer=ctx.scorer is not None)
    if any(m in DM_METHODS for m in methods) and not allow_trained_questions:
        check_not_trained_on(items, ctx)
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(task, ctx, out, run_id, force)
    records = RecordFile(out / RECORDS_FILE, EvalRecord)
    with records.exclusive():
        if retry_errors:
            _drop_errors(records)
        done = records.keys(repair=True)
        todo = [(m, item) for item in items for m in methods if (m, item.id) not in done]
        job = _EvalJob(run_id=manifest.run_id, task_name=task.name)

        columns = (
            TextColumn("[bold]eval[/] {task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[acc]:.2f}  errors {task.fields[errors]}"),
            TimeElapsedColumn(),
        )
        stats = {m: {"n": 0, "correct": 0, "errors": 0} for m in methods}
        with Progress(*columns, disable=not progress, transient=False) as bar:
            bars = {
                m: bar.add_task(
                    m,
                    total=len(items),
                    completed=sum((m, item.id) in done for item in items),
                    acc=0.0,
                    errors=0,
                )
                for m in methods
            }
            runner = executor or LocalExecutor(concurrency)
            async for record in runner.stream(job, todo, ctx):
                records.append([record])
                s = stats[record.method]
                s["n"] += 1
                s["correct"] += record.correct
                s["errors"] += record.error is not None
                bar.update(
                    bars[record.method], advance=1, acc=s["correct"] / s["n"], errors=s["errors"]
                )
        wanted = {(m, item.id) for m in methods for item in items}
        everything = [r for r in records.read() if r.key in wanted]
        summary = summarize(
            everything,
            methods,
            run_id=manifest.run_id,
            task=task.name,
            reasoner=manifest.reasoner,
            scorer=manifest.scorer,
            settings=manifest.settings,
            config=manifest.config,
        )
        summary.out_dir = str(out)
        write_summary(summary, out)
        if plots:
            from drr_agent.evaluation.plots import write_plots

            write_plots(summary, everything, out)
        return summary
