"""``drr solve``: the DRR graph on one question, each decision shown as it is taken."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from drr_agent.cli._common import (
    EMBEDDED,
    DmUrlOpt,
    DmWeightOpt,
    ModelOpt,
    ReasonerOpt,
    StyleOpt,
    VllmOpt,
    app,
    console,
    fail,
    load_scorer,
    make_reasoner,
)
from drr_agent.config import DRRConfig
from drr_agent.errors import DRRError
from drr_agent.reasoners.sampling import STEP_TEMPERATURE
from drr_agent.state import DRRResult
from drr_agent.tracing import format_decision, thought_table


class OnBudget(StrEnum):
    answer_best = "answer_best"
    abstain = "abstain"


_ROUTE_COLOURS = {"continue": "green", "backtrack": "yellow", "answer": "bold green", "stop": "red"}


def _print_event(event: dict[str, Any]) -> None:
    """One decision as `drr_agent.tracing.format_decision` writes it, coloured by route."""
    from rich.text import Text

    colour = _ROUTE_COLOURS.get(str(event.get("route")), "white")
    console.print(Text(format_decision(event), style=colour))


@app.command()
def solve(
    question: Annotated[str, typer.Argument(help="The question to reason about.")],
    reasoner: ReasonerOpt = EMBEDDED,
    model: ModelOpt = None,
    style: StyleOpt = None,
    vllm: VllmOpt = False,
    dm: Annotated[
        Path | None,
        typer.Option(help="Trained DM folder (Hugging Face format).", envvar="DRR_DM"),
    ] = None,
    dm_url: DmUrlOpt = None,
    untrained_dm: Annotated[
        bool, typer.Option(help="Use the embedded MiniLM base with a random head (smoke test).")
    ] = False,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow custom model code in the DM folder.")
    ] = False,
    accept_threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    answer_threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    candidates: Annotated[int, typer.Option(min=1, help="Candidates per step.")] = (
        DRRConfig.model_fields["candidates_per_step"].default
    ),
    dm_weight: DmWeightOpt = DRRConfig.model_fields["dm_weight"].default,
    max_steps: Annotated[int, typer.Option(min=1)] = DRRConfig.model_fields["max_steps"].default,
    max_reasoner_calls: Annotated[int, typer.Option(min=1)] = (
        DRRConfig.model_fields["max_reasoner_calls"].default
    ),
    on_budget: Annotated[OnBudget, typer.Option()] = OnBudget.answer_best,
    temperature: Annotated[float, typer.Option(min=0.0)] = STEP_TEMPERATURE,
    seed: Annotated[int | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Answer one question with the DRR graph, showing every decision as it is taken."""
    from drr_agent.graph import build_graph

    try:
        config = DRRConfig(
            accept_threshold=accept_threshold,
            answer_threshold=answer_threshold,
            candidates_per_step=candidates,
            dm_weight=dm_weight,
            max_steps=max_steps,
            max_reasoner_calls=max_reasoner_calls,
            on_budget_exhausted=on_budget.value,
        )
        scorer = load_scorer(dm, untrained_dm, trust_remote_code, reasoner == EMBEDDED, dm_url)
        graph = build_graph(
            make_reasoner(reasoner, model, style, vllm, temperature=temperature, seed=seed),
            scorer,
            config,
        )
        final: dict[str, Any] = {}
        for mode, chunk in graph.stream({"question": question}, stream_mode=["custom", "values"]):
            if mode == "custom" and not as_json:
                _print_event(chunk)
            elif mode == "values":
                final = chunk
        result = DRRResult.from_state(final)  # type: ignore[arg-type]
    except DRRError as exc:
        raise fail(str(exc)) from exc
    except ValueError as exc:  # pydantic validation of the options
        raise fail(f"invalid option: {exc}", 2) from exc

    if as_json:
        console.print_json(json.dumps(result.model_dump()))
        return
    console.print(thought_table(result))
    if result.abstained:
        console.print(f"[bold red]Abstained[/] ({result.stop_reason}): {result.stop_detail}")
    else:
        console.print(f"[bold green]Answer:[/] {result.answer}  ({result.stop_detail})")
