"""``drr solve``: the DRR graph on one question, each decision shown as it is taken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from drr_agent.cli._common import (
    EMBEDDED,
    GRAPH_DEFAULTS,
    AcceptOpt,
    AnswerOpt,
    CandidatesOpt,
    DmUrlOpt,
    DmWeightOpt,
    MaxCallsOpt,
    MaxStepsOpt,
    ModelOpt,
    OnBudget,
    OnBudgetOpt,
    ReasonerOpt,
    StyleOpt,
    VllmOpt,
    app,
    console,
    fail,
    graph_config,
    is_embedded,
    load_scorer,
    make_reasoner,
)
from drr_agent.errors import DRRError
from drr_agent.reasoners.sampling import STEP_TEMPERATURE
from drr_agent.state import DRRResult
from drr_agent.tracing import format_counters, format_decision, thought_table

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
    accept_threshold: AcceptOpt = None,
    answer_threshold: AnswerOpt = None,
    candidates: CandidatesOpt = GRAPH_DEFAULTS.candidates_per_step,
    dm_weight: DmWeightOpt = GRAPH_DEFAULTS.dm_weight,
    max_steps: MaxStepsOpt = GRAPH_DEFAULTS.max_steps,
    max_reasoner_calls: MaxCallsOpt = GRAPH_DEFAULTS.max_reasoner_calls,
    on_budget: OnBudgetOpt = OnBudget.answer_best,
    temperature: Annotated[float, typer.Option(min=0.0)] = STEP_TEMPERATURE,
    seed: Annotated[int | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Answer one question with the DRR graph, showing every decision as it is taken."""
    from drr_agent.graph import build_graph

    try:
        config = graph_config(
            accept_threshold=accept_threshold,
            answer_threshold=answer_threshold,
            candidates=candidates,
            dm_weight=dm_weight,
            max_steps=max_steps,
            max_reasoner_calls=max_reasoner_calls,
            on_budget=on_budget,
        )
        scorer = load_scorer(dm, untrained_dm, trust_remote_code, is_embedded(reasoner), dm_url)
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
    console.print(format_counters(result))
