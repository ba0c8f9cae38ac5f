"""``drr eval``: compare DRR with its baselines on a task's test items (async, resumable).

The harness is `drr_agent.evaluation`; it is imported when the command runs, so
``import drr_agent`` never pulls it (or matplotlib) in.

Items come either from task options (the same as ``drr traces``: the split is recomputed from
``--test`` / ``--dev`` / ``--split-seed``) or from ``--traces FILE``, whose ``*.task.json`` and
``*.split.json`` name the exact task and split the DM was trained on. ``--split test`` (the
default) reports; ``--split dev`` is for choosing settings. A DM is never reported on
questions its card says it was trained on (``--force`` overrides).
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from drr_agent.cli._common import (
    EMBEDDED,
    GRAPH_DEFAULTS,
    AcceptOpt,
    AnswerOpt,
    CandidatesOpt,
    DmUrlOpt,
    DmWeightOpt,
    ExecutorChoice,
    ExecutorOpt,
    MaxBacktracksOpt,
    MaxCallsOpt,
    MaxRetriesOpt,
    MaxStepsOpt,
    ModelOpt,
    OnBudget,
    OnBudgetOpt,
    OnPointSpent,
    OnPointSpentOpt,
    RayAddressOpt,
    ReasonerOpt,
    ReasonerTimeoutOpt,
    StyleOpt,
    VllmOpt,
    WorkersOpt,
    app,
    console,
    executor_option,
    fail,
    graph_config,
    input_file,
    invalid_option,
    is_embedded,
    load_scorer,
    load_task_options,
    make_reasoner,
    output_folder,
    split_options,
    task_spec,
)
from drr_agent.cli.offline import SplitChoice
from drr_agent.errors import DRRError
from drr_agent.offline.run_folder import split_path, task_spec_path
from drr_agent.reasoners.sampling import (
    STEP_MAX_TOKENS,
    STEP_TEMPERATURE,
    TRACE_MAX_TOKENS,
    TRACE_TEMPERATURE,
)

DEFAULT_METHODS = "cot,self_consistency,stepwise,self_critique,drr,oracle"


class Aggregate(StrEnum):
    min = "min"
    mean = "mean"


def _items(task, limit, task_seed, path, param, distinct, test, dev, split_seed, split, traces):
    """``(task, items)`` from the task options or from a trace file's spec and split."""
    from drr_agent.tasks.spec import TaskSpec
    from drr_agent.tasks.splits import TaskSplit

    if traces is not None:
        if task is not None:
            raise typer.BadParameter("give --task or --traces, not both", param_hint="--task")
        loaded = TaskSpec.read(task_spec_path(traces)).load()
        split_file = split_path(traces)
        if not split_file.is_file():
            raise DRRError(f"{split_file}: no split (written by `drr traces` beside its output)")
        the_split = TaskSplit.load(split_file)
    else:
        if task is None:
            raise typer.BadParameter("give --task NAME or --traces FILE", param_hint="--task")
        loaded = load_task_options(task_spec(task, limit, task_seed, path, param, distinct))
        the_split = split_options(loaded, test, split_seed, dev)
    if len(split.parts) > 1:
        return loaded, [i for p in split.parts for i in the_split.items(loaded, p)]
    part = the_split.subtask(loaded, split.parts[0])
    return part, list(part.items)


@app.command("eval")
def eval_command(
    out: Annotated[Path, typer.Option(help="Run folder (records, summary, plots); resumed.")],
    task: Annotated[str | None, typer.Option(help="Task name (as for drr traces).")] = None,
    traces: Annotated[
        Path | None,
        typer.Option(help="Trace file of drr traces: reuse its task spec and split."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Items to load (task options).")] = None,
    task_seed: Annotated[int, typer.Option(help="Generator seed (reasoning-gym tasks).")] = 0,
    path: Annotated[Path | None, typer.Option(help="Local data file for the task.")] = None,
    param: Annotated[list[str], typer.Option(help="Task parameter KEY=VALUE (repeatable).")] = [],  # noqa: B006
    distinct: Annotated[
        bool, typer.Option(help="Keep each question once (generated tasks repeat them).")
    ] = False,
    test: Annotated[
        float,
        typer.Option(
            "--test", "--held-out", min=0.0, help="Test items: fraction (<1) or count (>=1)."
        ),
    ] = 0.25,
    dev: Annotated[
        float, typer.Option(min=0.0, help="Dev items: fraction (<1) or count (>=1).")
    ] = 0.0,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/dev/test split.")] = 0,
    split: Annotated[
        SplitChoice,
        typer.Option(help="Which items to evaluate: test to report, dev to choose settings."),
    ] = SplitChoice.test,
    limit_items: Annotated[
        int | None, typer.Option(min=1, help="Evaluate only the first N of those items.")
    ] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated methods.")] = DEFAULT_METHODS,
    dm: Annotated[
        Path | None,
        typer.Option(help="Trained DM folder (drr, best_of_n_dm, dm_vote).", envvar="DRR_DM"),
    ] = None,
    dm_url: DmUrlOpt = None,
    untrained_dm: Annotated[
        bool, typer.Option(help="Embedded MiniLM with a random head (smoke test only).")
    ] = False,
    trust_remote_code: Annotated[bool, typer.Option()] = False,
    critic_labels: Annotated[
        Path | None,
        typer.Option(
            help="Labelled steps (drr labels) to pick self_critique's thresholds on (dev "
            "split, else train; 300 sampled), as drr train does for the DM; default: 0.5."
        ),
    ] = None,
    k: Annotated[
        int,
        typer.Option(
            min=1, help="Samples of self_consistency / deepconf / best_of_n_dm / dm_vote."
        ),
    ] = 4,
    temperature: Annotated[float, typer.Option(min=0.0, help="Temperature of the k samples.")] = (
        TRACE_TEMPERATURE
    ),
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest whole trace (tokens).")] = (
        TRACE_MAX_TOKENS
    ),
    aggregate: Annotated[
        Aggregate, typer.Option(help="best_of_n_dm, dm_vote: step scores -> trace.")
    ] = (Aggregate.min),
    deepconf_keep: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="deepconf: share of the readable traces that vote, the most confident first "
            "(choose it on --split dev; default: MethodSettings', 0.5).",
        ),
    ] = None,
    deepconf_window: Annotated[
        int | None,
        typer.Option(min=1, help="deepconf: tokens per confidence window (default 32)."),
    ] = None,
    deepconf_warmup: Annotated[
        int | None,
        typer.Option(
            min=1, help="deepconf_online: warm-up samples that set its threshold (default 4)."
        ),
    ] = None,
    step_temperature: Annotated[float, typer.Option(min=0.0, help="Graph step sampling.")] = (
        STEP_TEMPERATURE
    ),
    step_max_tokens: Annotated[int, typer.Option(min=1, help="Longest graph step.")] = (
        STEP_MAX_TOKENS
    ),
    accept_threshold: AcceptOpt = None,
    answer_threshold: AnswerOpt = None,
    candidates: CandidatesOpt = GRAPH_DEFAULTS.candidates_per_step,
    dm_weight: DmWeightOpt = GRAPH_DEFAULTS.dm_weight,
    max_steps: MaxStepsOpt = GRAPH_DEFAULTS.max_steps,
    max_reasoner_calls: MaxCallsOpt = GRAPH_DEFAULTS.max_reasoner_calls,
    max_backtracks: MaxBacktracksOpt = GRAPH_DEFAULTS.max_backtracks,
    max_retries_per_point: MaxRetriesOpt = GRAPH_DEFAULTS.max_retries_per_point,
    on_point_spent: OnPointSpentOpt = OnPointSpent.backtrack,
    on_budget: OnBudgetOpt = OnBudget.answer_best,
    reasoner_timeout: ReasonerTimeoutOpt = GRAPH_DEFAULTS.reasoner_timeout_s,
    concurrency: Annotated[
        int, typer.Option(min=1, help="(method, item) jobs at once (per actor on Ray).")
    ] = 4,
    executor: ExecutorOpt = ExecutorChoice.local,
    ray_address: RayAddressOpt = "auto",
    workers: WorkersOpt = None,
    seed: Annotated[int, typer.Option(help="Sampling seed (and the untrained head's).")] = 0,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated seeds: one run per seed in OUT/seed-<s>/, and mean ± sd over "
            "seeds in OUT/seeds.md (overrides --seed)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Append to a run folder of another setup; report a DM on its training questions."
        ),
    ] = False,
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="Run items that failed before again.")
    ] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")] = False,
    reasoner: ReasonerOpt = EMBEDDED,
    model: ModelOpt = None,
    style: StyleOpt = None,
    vllm: VllmOpt = False,
) -> None:
    """Evaluate methods (cot, self_consistency, deepconf, deepconf_online, stepwise,
    self_critique, drr, oracle, lp_rank, best_of_n_dm, dm_vote) on test items: one record per
    item, a summary with 95% intervals, paired differences, critic efficiency and cost, plots."""
    from rich.markdown import Markdown

    from drr_agent.evaluation.methods import DM_METHODS, MethodContext, MethodSettings
    from drr_agent.evaluation.runner import check_methods, run_eval

    wanted = [m.strip() for m in methods.split(",") if m.strip()]
    output_folder(out)
    if traces is not None:  # its task spec and split are read, beside it
        input_file(traces, "--traces", must_exist=False)
    if critic_labels is not None:
        input_file(critic_labels, "--critic-labels")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()] if seeds else []
    except ValueError as exc:
        raise fail(f"--seeds {seeds!r}: expected comma-separated integers", 2) from exc
    try:
        check_methods(wanted)  # names first: a typo fails before any model loads
        config = graph_config(
            accept_threshold=accept_threshold,
            answer_threshold=answer_threshold,
            candidates=candidates,
            dm_weight=dm_weight,
            max_steps=max_steps,
            max_reasoner_calls=max_reasoner_calls,
            max_backtracks=max_backtracks,
            max_retries_per_point=max_retries_per_point,
            on_point_spent=on_point_spent,
            on_budget=on_budget,
            reasoner_timeout_s=reasoner_timeout,
        )
        settings = MethodSettings(
            k=k,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            aggregate=aggregate,
            timeout_s=reasoner_timeout,  # the whole traces' calls, as the graph's steps
            **{
                name: value
                for name, value in (
                    ("deepconf_keep", deepconf_keep),
                    ("deepconf_window", deepconf_window),
                    ("deepconf_warmup", deepconf_warmup),
                )
                if value is not None
            },
        )
        the_task, items = _items(
            task, limit, task_seed, path, param, distinct, test, dev, split_seed, split, traces
        )
        if limit_items is not None:
            items = items[:limit_items]
        if not items:
            raise DRRError(f"no items to evaluate (task {the_task.name!r}, split {split.value!r})")
        the_reasoner = make_reasoner(
            reasoner, model, style, vllm, temperature=step_temperature, max_tokens=step_max_tokens
        )
        scorer = None
        if any(m in DM_METHODS for m in wanted):
            if dm is None and untrained_dm:  # --seed fixes the random head too: runs repeat
                import torch

                torch.manual_seed(seed)
            scorer = load_scorer(dm, untrained_dm, trust_remote_code, is_embedded(reasoner), dm_url)
        if critic_labels is not None and "self_critique" in wanted:
            from drr_agent.offline.dm_eval import calibrate_thresholds
            from drr_agent.offline.jsonl import RecordFile
            from drr_agent.offline.records import StepExample
            from drr_agent.scorers import SelfCritiqueScorer

            rows = RecordFile(critic_labels, StepExample).read()
            # dev steps choose settings; a labels file without them falls back to training steps
            steps = [e for e in rows if e.split == "dev"] or [e for e in rows if e.split == "train"]
            if not steps:
                raise DRRError(f"{critic_labels}: no labelled dev or training steps")
            report = calibrate_thresholds(
                SelfCritiqueScorer.of(the_reasoner), steps, seed=seed, progress=True
            )
            settings = settings.model_copy(update={"critic_thresholds": report.thresholds})
        per_seed = {}
        for one_seed in seed_list or [seed]:
            ctx = MethodContext(
                the_task,
                the_reasoner,
                scorer,
                config,
                settings.model_copy(update={"seed": one_seed}),
            )
            per_seed[one_seed] = summary = asyncio.run(
                run_eval(
                    the_task,
                    items,
                    wanted,
                    ctx,
                    out / f"seed-{one_seed}" if seed_list else out,
                    concurrency=concurrency,
                    executor=executor_option(executor, concurrency, ray_address, workers),
                    force=force,
                    plots=not no_plots,
                    retry_errors=retry_errors,
                    allow_trained_questions=force,
                )
            )
    except DRRError as exc:
        raise fail(str(exc)) from exc
    except ValueError as exc:  # unknown methods, pydantic validation of the options
        raise fail(invalid_option(exc), 2) from exc
    table = summary.to_markdown()
    if seed_list:
        from drr_agent.evaluation.seeds import summarize_seeds, write_seeds

        spread = summarize_seeds(per_seed)
        write_seeds(spread, out)
        table = spread.to_markdown()
    if console.is_terminal:
        console.print(Markdown(table))
    else:  # a log or a pipe: the Markdown text itself, never cut to 80 columns
        console.print(table, markup=False, highlight=False, soft_wrap=True)
    console.print(f"records, summary and plots in {out}/")
    if untrained_dm and scorer is not None:
        console.print(
            "[yellow]note:[/] the DM is the untrained embedded MiniLM (random head): drr, "
            "best_of_n_dm and dm_vote scores are noise here."
        )
