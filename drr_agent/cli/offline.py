"""``drr traces``, ``drr labels``, ``drr train``, ``drr dm-eval``: DRR's offline steps.

Each command reads and writes JSON Lines files validated by `drr_agent.offline.records`, is
resumable, and prints a summary; the files it writes sit next to each other so a later step
finds the task spec and split of an earlier one without repeating options (their names:
`drr_agent.offline.run_folder`).
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drr_agent.cli._common import (
    EMBEDDED,
    ExecutorChoice,
    ExecutorOpt,
    ModelOpt,
    RayAddressOpt,
    ReasonerOpt,
    StyleOpt,
    VllmOpt,
    WorkersOpt,
    app,
    console,
    executor_option,
    fail,
    input_file,
    load_task_options,
    make_reasoner,
    output_file,
    split_options,
    task_spec,
)
from drr_agent.errors import DRRError
from drr_agent.offline.run_folder import split_path, task_spec_path
from drr_agent.reasoners.sampling import (
    ROLLOUT_MAX_TOKENS,
    STEP_MAX_TOKENS,
    STEP_TEMPERATURE,
    TRACE_MAX_TOKENS,
    TRACE_TEMPERATURE,
)


class SplitChoice(StrEnum):
    """Which parts of a split a command works on (``held_out`` = ``test``; ``both`` = all)."""

    train = "train"
    dev = "dev"
    test = "test"
    train_dev = "train+dev"
    all = "all"
    held_out = "held_out"
    both = "both"

    @property
    def parts(self) -> tuple[str, ...]:
        """The canonical parts this choice names."""
        return {
            "train+dev": ("train", "dev"),
            "all": ("train", "dev", "test"),
            "both": ("train", "dev", "test"),
            "held_out": ("test",),
        }.get(self.value, (self.value,))

    def holds(self, part: str) -> bool:
        """Whether a row of ``part`` (``held_out`` read as ``test``) is chosen."""
        from drr_agent.tasks.splits import resolve_part

        return resolve_part(part) in self.parts


def _summary_table(title: str, rows: dict[str, object]) -> Table:
    table = Table(title=title, show_header=False)
    for key, value in rows.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        table.add_row(key, shown)
    return table


@app.command()
def traces(
    task: Annotated[str, typer.Option(help="Task name (see drr_agent.tasks.task_names()).")],
    out: Annotated[Path, typer.Option(help="Trace file (JSON Lines); resumed if it exists.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Items to load.")] = None,
    task_seed: Annotated[int, typer.Option(help="Generator seed (reasoning-gym tasks).")] = 0,
    path: Annotated[Path | None, typer.Option(help="Local data file for the task.")] = None,
    param: Annotated[list[str], typer.Option(help="Task parameter KEY=VALUE (repeatable).")] = [],  # noqa: B006
    distinct: Annotated[
        bool, typer.Option(help="Keep each question once (generated tasks repeat them).")
    ] = False,
    test: Annotated[
        float,
        typer.Option(
            "--test",
            "--held-out",
            min=0.0,
            help="Test items, reported only: fraction (<1) or count (>=1).",
        ),
    ] = 0.25,
    dev: Annotated[
        float,
        typer.Option(min=0.0, help="Dev items, to choose settings on: fraction (<1) or count."),
    ] = 0.0,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/dev/test split.")] = 0,
    split: Annotated[
        SplitChoice, typer.Option(help="Which items to trace (train+dev: what a DM needs).")
    ] = SplitChoice.train,
    limit_items: Annotated[
        int | None,
        typer.Option(min=1, help="Trace only the first N items of each split part."),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Traces per item (K).")] = 8,
    temperature: Annotated[float, typer.Option(min=0.0)] = TRACE_TEMPERATURE,
    max_tokens: Annotated[int, typer.Option(min=1)] = TRACE_MAX_TOKENS,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    concurrency: Annotated[int, typer.Option(min=1)] = 8,
    reasoner: ReasonerOpt = EMBEDDED,
    model: ModelOpt = None,
    style: StyleOpt = None,
    vllm: VllmOpt = False,
    force: Annotated[bool, typer.Option(help="Append to a file from another run setting.")] = False,
    executor: ExecutorOpt = ExecutorChoice.local,
    ray_address: RayAddressOpt = "auto",
    workers: WorkersOpt = None,
    retry_errors: Annotated[
        bool,
        typer.Option(
            "--retry-errors/--keep-errors",
            help="Sample again the traces that failed in an earlier run (a Reasoner outage; "
            "on by default); --keep-errors counts them as done.",
        ),
    ] = True,
    logprobs: Annotated[
        bool,
        typer.Option(
            help="Record each step's statistics of the Reasoner's own token log-probs (what "
            "a light DM reads); --no-logprobs for an API that refuses `logprobs`.",
        ),
    ] = True,
) -> None:
    """Sample K reasoning traces per item, split into steps and checked, appended as they come."""
    from drr_agent.offline.traces import sample_traces
    from drr_agent.tasks.spec import TaskSpec
    from drr_agent.tasks.splits import TaskSplit

    output_file(out)
    try:
        spec = task_spec(task, limit, task_seed, path, param, distinct)
        loaded = load_task_options(spec)
        spec_file, split_file = task_spec_path(out), split_path(out)
        if spec_file.exists() and TaskSpec.read(spec_file) != spec and not force:
            raise DRRError(
                f"{spec_file} records another task spec ({TaskSpec.read(spec_file)}); use another "
                "--out, or --force"
            )
        the_split = split_options(loaded, test, split_seed, dev)
        if split_file.exists() and not force:
            recorded = TaskSplit.load(split_file)
            if recorded.fingerprint != the_split.fingerprint:
                raise DRRError(f"{split_file} records another split; use another --out, or --force")
        spec.save(spec_file)
        the_split.save(split_file)
        the_reasoner = make_reasoner(
            reasoner, model, style, vllm, temperature=temperature, max_tokens=max_tokens
        )
        for part in split.parts:
            items = the_split.items(loaded, part)[:limit_items]
            summary = asyncio.run(
                sample_traces(
                    loaded,
                    items,
                    part,
                    the_reasoner,
                    out,  # type: ignore[arg-type]
                    samples_per_item=samples,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    seed=seed,
                    concurrency=concurrency,
                    force=force,
                    executor=executor_option(executor, concurrency, ray_address, workers),
                    retry_errors=retry_errors,
                    logprobs=logprobs,
                )
            )
            force = True  # the second part appends to the file the first one wrote
    except DRRError as exc:
        raise fail(str(exc)) from exc
    console.print(_summary_table(f"traces: {out}", summary.model_dump()))


class LabelKind(StrEnum):
    outcome = "outcome"
    mc = "mc"
    answer = "answer"


class McMode(StrEnum):
    soft = "soft"
    hard = "hard"


@app.command()
def labels(
    traces_file: Annotated[Path, typer.Option("--traces", help="Trace file from drr traces.")],
    out: Annotated[Path, typer.Option(help="Labelled steps (JSON Lines); resumed if it exists.")],
    kind: Annotated[
        LabelKind,
        typer.Option(
            help="outcome; mc: Monte-Carlo rollouts of whole traces; answer: rollouts that ask "
            "for the final answer right after the step, as the graph does (cheap)."
        ),
    ] = LabelKind.outcome,
    split: Annotated[SplitChoice, typer.Option(help="Which traces to label.")] = SplitChoice.all,
    rollouts: Annotated[int, typer.Option(min=1, help="MC continuations per step.")] = 4,
    mode: Annotated[McMode, typer.Option(help="MC label: fraction (soft) or any (hard).")] = (
        McMode.soft
    ),
    temperature: Annotated[float, typer.Option(min=0.0)] = TRACE_TEMPERATURE,
    max_tokens: Annotated[int, typer.Option(min=1)] = ROLLOUT_MAX_TOKENS,
    seed: Annotated[int, typer.Option()] = 0,
    concurrency: Annotated[int, typer.Option(min=1)] = 8,
    reasoner: ReasonerOpt = EMBEDDED,
    model: ModelOpt = None,
    style: StyleOpt = None,
    vllm: VllmOpt = False,
    executor: ExecutorOpt = ExecutorChoice.local,
    ray_address: RayAddressOpt = "auto",
    workers: WorkersOpt = None,
    lookahead: Annotated[
        bool,
        typer.Option(
            help="Also record the Reasoner's greedy final answer after each step (what a DM "
            "whose head reads the lookahead asks at inference; a few tokens a step)."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Append to a file of labels made with other settings.")
    ] = False,
) -> None:
    """Label every step of every trace from the Reasoner's own behaviour (no humans)."""
    from drr_agent.offline.jsonl import RecordFile
    from drr_agent.offline.labels import mc_examples, summarize_labels, write_outcome_labels
    from drr_agent.offline.records import TraceRecord
    from drr_agent.tasks.spec import TaskSpec

    input_file(traces_file, "--traces")
    output_file(out)
    try:
        records = [r for r in RecordFile(traces_file, TraceRecord).read() if split.holds(r.split)]
        if not records:
            raise DRRError(f"{traces_file}: no traces (split {split.value!r})")
        failed = sum(r.status == "failed" for r in records)
        if failed:
            console.print(
                f"[yellow]{failed} failed traces in {traces_file} have no steps to label[/]: "
                "rerun drr traces (it samples them again), then drr labels"
            )
        if kind == LabelKind.outcome:
            examples = write_outcome_labels(records, out, force=force)
        else:
            task = TaskSpec.read(task_spec_path(traces_file)).load()
            the_reasoner = make_reasoner(
                reasoner, model, style, vllm, temperature=temperature, max_tokens=max_tokens
            )
            examples = asyncio.run(
                mc_examples(
                    records,
                    task,
                    the_reasoner,
                    out,
                    rollouts=rollouts,
                    mode=mode.value,
                    continuation="answer" if kind == LabelKind.answer else "trace",
                    temperature=temperature,
                    max_tokens=max_tokens,
                    seed=seed,
                    concurrency=concurrency,
                    executor=executor_option(executor, concurrency, ray_address, workers),
                    lookahead=lookahead,
                    force=force,
                )
            )
    except DRRError as exc:
        raise fail(str(exc)) from exc
    console.print(_summary_table(f"labels: {out}", summarize_labels(examples).model_dump()))


@app.command()
def siblings(
    traces_file: Annotated[
        Path, typer.Option("--traces", help="Trace file of drr traces: its task spec and split.")
    ],
    out: Annotated[Path, typer.Option(help="Labelled candidates (JSON Lines); resumed.")],
    split: Annotated[
        SplitChoice, typer.Option(help="Which questions (never test: it is reported only).")
    ] = SplitChoice.train_dev,
    candidates: Annotated[int, typer.Option(min=2, help="First-step candidates per question.")] = 4,
    answers: Annotated[int, typer.Option(min=1, help="Final answers asked after each.")] = 2,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling of the others.")] = (
        STEP_TEMPERATURE
    ),
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest step.")] = STEP_MAX_TOKENS,
    seed: Annotated[int, typer.Option()] = 0,
    concurrency: Annotated[int, typer.Option(min=1)] = 8,
    reasoner: ReasonerOpt = EMBEDDED,
    model: ModelOpt = None,
    style: StyleOpt = None,
    vllm: VllmOpt = False,
    force: Annotated[
        bool, typer.Option(help="Append to a file of labels made with other settings.")
    ] = False,
) -> None:
    """Label the candidates the graph itself proposes at each question (greedy + samples) and
    the answers after each, by the Reasoner's answer and the gold: sibling pairs for the DM."""
    from drr_agent.offline.labels import summarize_labels
    from drr_agent.offline.siblings import sibling_examples
    from drr_agent.tasks.spec import TaskSpec
    from drr_agent.tasks.splits import TaskSplit

    input_file(traces_file, "--traces")
    output_file(out)
    try:
        if "test" in split.parts:
            raise DRRError("sibling labels are training data: use --split train, dev or train+dev")
        task = TaskSpec.read(task_spec_path(traces_file)).load()
        the_split = TaskSplit.load(split_path(traces_file))
        the_reasoner = make_reasoner(
            reasoner, model, style, vllm, temperature=temperature, max_tokens=max_tokens
        )
        for part in split.parts:
            examples = asyncio.run(
                sibling_examples(
                    task,
                    the_split.items(task, part),
                    part,  # type: ignore[arg-type]
                    the_reasoner,
                    out,
                    candidates=candidates,
                    answers=answers,
                    seed=seed,
                    concurrency=concurrency,
                    force=force,
                )
            )
    except DRRError as exc:
        raise fail(str(exc)) from exc
    console.print(_summary_table(f"siblings: {out}", summarize_labels(examples).model_dump()))
