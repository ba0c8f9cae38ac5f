"""``drr quickstart``: the whole DRR recipe on the embedded default, in one run folder."""

from __future__ import annotations

import shlex
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

from drr_agent.cli._common import (
    ExecutorChoice,
    ExecutorOpt,
    RayAddressOpt,
    WorkersOpt,
    app,
    console,
    executor_option,
    fail,
)
from drr_agent.errors import DRRError


class Size(StrEnum):
    small = "small"
    full = "full"


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Run folder (resumed if it exists).")] = Path(
        "runs/quickstart"
    ),
    size: Annotated[
        Size,
        typer.Option(
            help="small: the task's distinct questions split 120 test / 40 dev / the rest "
            "train, 4 traces per train and dev question, five methods; full: 8 traces, "
            "3 epochs, self_critique and best_of_n_dm too."
        ),
    ] = Size.small,
    task: Annotated[
        str,
        typer.Option(
            help="Task (as for drr traces); the embedded Reasoner partly solves the default "
            "and products (chain_sum is beyond it: any-of-8 headroom 0.42)."
        ),
    ] = "basic_arithmetic",
    reasoner: Annotated[
        str,
        typer.Option(
            help="Embedded Reasoner: embedded-smollm2 (SmolLM2-135M, the recipe's own) or "
            "embedded-qwen2.5-0.5b (Qwen2.5-Coder-0.5B-Instruct)."
        ),
    ] = "embedded-smollm2",
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

    try:
        embedded_spec(reasoner)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--reasoner") from exc
    started = time.perf_counter()
    try:
        plan = PLANS[size.value]
        plan = plan.model_copy(
            update={"task": plan.task.model_copy(update={"name": task}), "reasoner": reasoner}
        )
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
        f"(summary.md, plots). Try it: drr solve {shlex.quote(result.example_question)} "
        f"--dm {result.dm}"
    )
