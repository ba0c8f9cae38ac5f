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
    invalid_option,
    load_task_options,
    make_reasoner,
    output_file,
    output_folder,
    split_options,
    task_spec,
)
from drr_agent.errors import DRRError
from drr_agent.offline.run_folder import split_path, task_spec_path
from drr_agent.offline.training.recipe import DEFAULT_RECIPE, DM_RECIPES
from drr_agent.prompts import DEFAULT_INSTRUCTION
from drr_agent.reasoners.sampling import (
    ROLLOUT_MAX_TOKENS,
    STEP_MAX_TOKENS,
    STEP_TEMPERATURE,
    TRACE_MAX_TOKENS,
    TRACE_TEMPERATURE,
)
from drr_agent.scorers.likelihood import HEAD_INPUTS


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


def _read_examples(path: Path):
    from drr_agent.offline.jsonl import RecordFile
    from drr_agent.offline.records import StepExample

    examples = RecordFile(path, StepExample).read()
    if not examples:
        raise DRRError(f"{path}: no labelled steps")
    return examples


class ContextChoice(StrEnum):
    reasoner = "reasoner"
    plain = "plain"
    question = "question"


class TuneChoice(StrEnum):
    """Which weights ``drr train`` changes (`TrainConfig.tune`)."""

    full = "full"
    lora = "lora"
    head = "head"


class RecipeChoice(StrEnum):
    """The named DM recipes ``drr train --recipe`` takes (`DM_RECIPES`, the same names)."""

    verifier = "verifier"
    light = "light"
    classifier = "classifier"


_DEFAULT_RECIPE = RecipeChoice(DEFAULT_RECIPE)
_RECIPE_HELP = " (default: the recipe's)"


@app.command()
def train(
    labels_files: Annotated[
        list[Path],
        typer.Option(
            "--labels", help="Labelled steps (drr labels, drr siblings); repeat to combine files."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output folder for the DM (Hugging Face format).")],
    recipe: Annotated[
        RecipeChoice,
        typer.Option(
            help="The DM to make: 'verifier' (the quickstart's: MiniLM under a head over the "
            "verifier LM's reading and the Reasoner's forced answer), 'light' (a logistic head "
            "over the Reasoner's own sampled log-probs, no model), 'classifier' (MiniLM "
            "alone). The options below override single fields of it.",
        ),
    ] = _DEFAULT_RECIPE,
    base: Annotated[
        str | None,
        typer.Option(
            help="Base model folder or Hub id (default: embedded MiniLM); 'embedded-smollm2': "
            "the embedded Reasoner's own SmolLM2-135M backbone."
        ),
    ] = None,
    tune: Annotated[
        TuneChoice | None,
        typer.Option(
            help="Train all weights, LoRA adapters (merged on export) or only the "
            "classification head on a frozen backbone; lora/head want a larger learning rate"
            + _RECIPE_HELP
            + "."
        ),
    ] = None,
    epochs: Annotated[float | None, typer.Option(min=0.01, help=_RECIPE_HELP)] = None,
    learning_rate: Annotated[float | None, typer.Option(min=0.0, help=_RECIPE_HELP)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help=_RECIPE_HELP)] = None,
    max_length: Annotated[
        int | None, typer.Option(min=16, help="DM token window" + _RECIPE_HELP + ".")
    ] = None,
    eval_fraction: Annotated[float, typer.Option(min=0.0, max=0.99)] = 0.2,
    class_weighting: Annotated[bool, typer.Option(help="Weight classes by balance.")] = True,
    patience: Annotated[int | None, typer.Option(help="Early-stopping patience (epochs).")] = 2,
    seed: Annotated[int, typer.Option()] = 42,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    trust_remote_code: Annotated[bool, typer.Option()] = False,
    pair_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Weight of the pairwise loss on sibling pairs (0: pointwise only)"
            + _RECIPE_HELP
            + ".",
        ),
    ] = None,
    likelihood: Annotated[
        bool | None,
        typer.Option(
            help="Also fit a head over the classifier and the Reasoner's token log-probs of "
            "each step (the DM then knows what its Reasoner's LM knows)" + _RECIPE_HELP + ".",
        ),
    ] = None,
    likelihood_model: Annotated[
        str | None,
        typer.Option(
            help="Causal LM of those log-probs: 'embedded-smollm2' (the Reasoner's backbone), "
            "'embedded-qwen2.5-0.5b' (a larger verifier LM) or a local HF folder"
            + _RECIPE_HELP
            + "."
        ),
    ] = None,
    likelihood_context: Annotated[
        ContextChoice | None,
        typer.Option(
            help="What each step is read after: the Reasoner's prompt, the plain question "
            "and steps (shorter: for a verifier LM), or the question alone (the verifier "
            "judges each step against the problem)" + _RECIPE_HELP + ".",
        ),
    ] = None,
    likelihood_rows: Annotated[
        int | None,
        typer.Option(
            min=20,
            help="Fit the head on a seeded sample of this many training rows (default: all); "
            "a verifier LM's features cost ~0.5-0.6 s a row on 2 cores.",
        ),
    ] = None,
    likelihood_features: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated inputs the head reads"
            + _RECIPE_HELP
            + "; any of "
            + ",".join(HEAD_INPUTS)
            + ".",
        ),
    ] = None,
    likelihood_examples: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Worked examples (right steps of distinct training questions) the "
            "likelihood LM reads before every row, in the plain or question context"
            + _RECIPE_HELP
            + ".",
        ),
    ] = None,
    likelihood_hidden: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Tanh units of a hidden layer in the head (0: logistic regression)"
            + _RECIPE_HELP
            + ".",
        ),
    ] = None,
    lookahead_instruction: Annotated[
        str,
        typer.Option(
            help="The task instruction under which a head that reads lookahead_* features "
            "asks the embedded Reasoner for its forced answer (the labels' task's).",
        ),
    ] = DEFAULT_INSTRUCTION,
    minimal_pairs: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="At most this many minimal pairs in the dev and test reports (0: none); "
            "each is two more scored rows" + _RECIPE_HELP + ".",
        ),
    ] = None,
) -> None:
    """Fine-tune the DM on train-split steps; stop early and pick thresholds on dev-split steps
    (else on held-out training questions); report test-split steps, if any; save it. The DM
    is a named recipe (--recipe, the quickstart's by default); each option given overrides
    one field of it."""
    from rich.markdown import Markdown

    from drr_agent.offline.distributed import Processes
    from drr_agent.offline.train import TrainConfig, train_dm
    from drr_agent.scorers.lookahead import LookaheadSpec

    for path in labels_files:
        input_file(path, "--labels")
    output_folder(out)
    given = {
        "base_model": base,
        "tune": tune.value if tune is not None else None,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_length": max_length,
        "pair_weight": pair_weight,
        "likelihood": likelihood,
        "likelihood_model": likelihood_model,
        "likelihood_context": likelihood_context.value if likelihood_context else None,
        "likelihood_rows": likelihood_rows,
        "likelihood_features": (
            tuple(likelihood_features.replace(" ", "").split(","))
            if likelihood_features is not None
            else None
        ),
        "likelihood_examples": likelihood_examples,
        "likelihood_hidden": likelihood_hidden,
        "minimal_pairs": minimal_pairs,
    }
    try:
        examples = [e for path in labels_files for e in _read_examples(path)]
        config = TrainConfig.from_recipe(
            DM_RECIPES[recipe.value],
            **{name: value for name, value in given.items() if value is not None},
            output_dir=out,
            overwrite_output_dir=overwrite,
            eval_fraction=eval_fraction,
            class_weighting=class_weighting,
            early_stopping_patience=patience if eval_fraction > 0 else None,
            seed=seed,
            trust_remote_code=trust_remote_code,
            likelihood_lookahead=LookaheadSpec(instruction=lookahead_instruction),
        )
        result = train_dm(
            [e for e in examples if e.split == "train"],
            config,
            held_out=[e for e in examples if SplitChoice.test.holds(e.split)] or None,
            dev=[e for e in examples if e.split == "dev"] or None,
        )
    except DRRError as exc:
        raise fail(str(exc)) from exc
    except FileExistsError as exc:  # a DM already in --out (check_output_dir, before training)
        raise fail(f"--out: {exc}", 2) from exc
    except ValueError as exc:
        raise fail(invalid_option(exc), 2) from exc
    if Processes.from_env().is_main:  # under torchrun, one report, not one per process
        console.print(Markdown(result.to_markdown()))


@app.command("dm-eval")
def dm_eval(
    dm: Annotated[Path, typer.Option(help="DM folder.")],
    labels_file: Annotated[Path, typer.Option("--labels", help="Labelled steps (drr labels).")],
    split: Annotated[SplitChoice, typer.Option(help="Which labelled steps to score.")] = (
        SplitChoice.test
    ),
) -> None:
    """Step-level AUROC, pair accuracies, accuracy, calibration and thresholds of a DM on
    labelled steps (pair accuracies compare steps at the same question and prefix; 0.5 is
    chance)."""
    from rich.markdown import Markdown

    from drr_agent.offline.dm_eval import evaluate_dm
    from drr_agent.scorers import load_dm

    input_file(labels_file, "--labels")
    try:
        examples = _read_examples(labels_file)
        examples = [e for e in examples if split.holds(e.split)]
        if not examples:
            raise DRRError(f"{labels_file}: no labelled steps in split {split.value!r}")
        report = evaluate_dm(load_dm(dm), examples, progress=True)
    except DRRError as exc:
        raise fail(str(exc)) from exc
    console.print(Markdown(report.to_markdown(title=f"DM {dm} on {split.value} steps")))
