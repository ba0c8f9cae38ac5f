"""``drr quickstart``: the whole DRR recipe on the embedded default, in one run folder."""

from __future__ import annotations

import shlex
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markdown import Markdown

from drr_agent.cli._common import (
    GRAPH_DEFAULTS,
    ExecutorChoice,
    ExecutorOpt,
    RayAddressOpt,
    WorkersOpt,
    app,
    console,
    executor_option,
    fail,
    output_folder,
)
from drr_agent.errors import DRRError

if TYPE_CHECKING:
    from drr_agent.quickstart import QuickstartPlan, QuickstartResult

# the graph settings `drr solve` takes, by option
_SOLVE_OPTIONS = {
    "--candidates": "candidates_per_step",
    "--dm-weight": "dm_weight",
    "--max-steps": "max_steps",
    "--max-reasoner-calls": "max_reasoner_calls",
    "--max-backtracks": "max_backtracks",
    "--max-retries-per-point": "max_retries_per_point",
    "--on-point-spent": "on_point_spent",
    "--on-budget": "on_budget_exhausted",
    "--reasoner-timeout": "reasoner_timeout_s",
    "--accept-threshold": "accept_threshold",
    "--answer-threshold": "answer_threshold",
}


def try_it_command(result: QuickstartResult, plan: QuickstartPlan) -> str:
    """The ``drr solve`` command the quickstart ends with: a test question its ``drr``
    answered right (`drr_agent.quickstart.example_question`), the run's DM, and the graph
    budgets, Reasoner and step temperature the evaluation ran ``drr`` with, where they differ
    from ``drr solve``'s defaults (the small plan asks for the answer at the second step:
    SmolLM2 drifts after its first)."""
    from drr_agent.reasoners.embedded import DEFAULT_EMBEDDED
    from drr_agent.reasoners.sampling import STEP_TEMPERATURE

    words = ["drr", "solve", result.example_question, "--dm", str(result.dm)]
    for option, field in _SOLVE_OPTIONS.items():
        value = getattr(plan.graph, field)
        if value is not None and value != getattr(GRAPH_DEFAULTS, field):
            words += [option, str(value)]
    if plan.reasoner != DEFAULT_EMBEDDED:
        words += ["--reasoner", plan.reasoner]
    if plan.step_temperature != STEP_TEMPERATURE:
        words += ["--temperature", str(plan.step_temperature)]
    return shlex.join(words)


class Size(StrEnum):
    small = "small"
    full = "full"
    qwen_light = "qwen-light"
    gsm8k = "gsm8k"


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Run folder (resumed if it exists).")] = Path(
        "runs/quickstart"
    ),
    size: Annotated[
        Size,
        typer.Option(
            help="The plan. small: the task's distinct questions split 120 test / 40 dev / the "
            "rest train, 4 traces per train and dev question, five methods; full: 8 traces, "
            "3 epochs, self_critique and best_of_n_dm too; qwen-light: the embedded Qwen on "
            "4-term two-digit chain sums, steered by the light DM (a head over the Qwen's own "
            "token log-probs and the step's equations, recomputed; no model of its own); "
            "gsm8k: a light DM over the log-probs alone on 300 GSM8K test questions, with "
            "4-sample self-consistency and DeepConf (~6-8 h on 2 cores, resumable)."
        ),
    ] = Size.small,
    task: Annotated[
        str | None,
        typer.Option(
            help="Task (as for drr traces) instead of the plan's, with the plan's other task "
            "settings; SmolLM2 partly solves basic_arithmetic and products (chain_sum is "
            "beyond it: any-of-8 headroom 0.42). Default: the plan's."
        ),
    ] = None,
    reasoner: Annotated[
        str | None,
        typer.Option(
            help="Embedded Reasoner instead of the plan's: embedded-smollm2 (SmolLM2-135M) "
            "or embedded-qwen2.5-0.5b (Qwen2.5-Coder-0.5B-Instruct). Default: the plan's."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Continue a folder made with another plan.")] = False,
    executor: ExecutorOpt = ExecutorChoice.local,
    ray_address: RayAddressOpt = "auto",
    workers: WorkersOpt = None,
) -> None:
    """Distill traces, label them, train the DM (thresholds on dev), and compare DRR with
    chain-of-thought, self-consistency, self-critique, the graph without a critic and the
    oracle critic on test questions — on the embedded SmolLM2 Reasoner and MiniLM DM (CPU)."""
    from drr_agent.quickstart import PLANS, run_quickstart
    from drr_agent.reasoners.embedded import embedded_spec

    if reasoner is not None:
        try:
            embedded_spec(reasoner)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--reasoner") from exc
    output_folder(out)
    started = time.perf_counter()
    try:
        plan = PLANS[size.value]
        update: dict[str, object] = {}
        if task is not None:
            update["task"] = plan.task.model_copy(update={"name": task})
        if reasoner is not None:
            update["reasoner"] = reasoner
        plan = plan.model_copy(update=update)
        where = executor_option(executor, plan.concurrency, ray_address, workers)
        result = run_quickstart(out, plan, force=force, executor=where)
    except DRRError as exc:
        raise fail(str(exc)) from exc
    if console.is_terminal:
        console.print(Markdown(result.table))
    else:  # a log or a pipe: the Markdown text itself
        console.print(result.table, markup=False, highlight=False, soft_wrap=True)
    minutes = (time.perf_counter() - started) / 60
    console.print(
        f"done in {minutes:.1f} min. DM: {result.dm}/  evaluation: {result.eval_dir}/ "
        f"(summary.md, plots). Try it: {try_it_command(result, plan)}"
    )
