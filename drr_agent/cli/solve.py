"""``drr solve``: the DRR graph on one question, each decision shown as it is taken.

The question's answer is read by a task's rules (`AnswerRules`): ``--task NAME``'s, an
``--answer-type``'s, or by default those of the task the DM trained on (its card's
``data.train.tasks``), so the Reasoner is asked as the DM's training traces were and, on a
numeric task, a final answer that states no value — words only, or an expression such as
``2 - 7`` — is refused inside the graph and asked again (`drr_agent.steps.numeric_refusal`),
as in every evaluation.

Below `TABLE_MIN_COLUMNS` the thought tree prints as wrapped, indented text
(`format_thought_tree` with ``wrap``): a table squeezes each step into a few characters there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from drr_agent.cli._common import (
    EMBEDDED,
    GRAPH_DEFAULTS,
    AcceptOpt,
    AnswerOpt,
    CandidatesOpt,
    DmUrlOpt,
    DmWeightOpt,
    MaxBacktracksOpt,
    MaxCallsOpt,
    MaxRetriesOpt,
    MaxStepsOpt,
    ModelOpt,
    OnBudget,
    OnBudgetOpt,
    OnPointSpent,
    OnPointSpentOpt,
    ReasonerOpt,
    ReasonerTimeoutOpt,
    StyleOpt,
    VllmOpt,
    app,
    console,
    fail,
    graph_config,
    invalid_option,
    is_embedded,
    load_scorer,
    make_reasoner,
)
from drr_agent.errors import DRRError
from drr_agent.reasoners.sampling import STEP_TEMPERATURE
from drr_agent.state import DRRResult
from drr_agent.tracing import format_counters, format_decision, format_thought_tree, thought_table

if TYPE_CHECKING:
    from drr_agent.steps import StepFormat
    from drr_agent.tasks import AnswerType

_ROUTE_COLOURS = {"continue": "green", "backtrack": "yellow", "answer": "bold green", "stop": "red"}

TABLE_MIN_COLUMNS = 120
"""Narrower terminals get the tree as wrapped text: at 100 columns the table's thought column
is ~16 characters wide, at 80 six."""


class AnswerTypeChoice(StrEnum):
    number = "number"
    choice = "choice"
    boolean = "boolean"
    text = "text"


@dataclass(frozen=True)
class AnswerRules:
    """How ``drr solve`` asks for and reads the answer: a task's rules, or an answer type's.

    Attributes:
        source: Whose rules, in words ("task basic_arithmetic (the DM's training task)").
        answer_type: The task's `AnswerType`; ``number`` refuses an answer that is no number.
        step_format: Its answer patterns and ``numeric_answer`` (`Task.step_format`), cut the
            Reasoner's way by ``drr solve`` (`Reasoner.format_for`), as evaluations do.
        instruction: What the Reasoner is asked under (`Task.instruction`).
    """

    source: str
    answer_type: AnswerType
    step_format: StepFormat
    instruction: str


def _task_rules(name: str, source: str) -> AnswerRules:
    from drr_agent.tasks import load_task

    task = load_task(name, limit=1)  # its rules; the items are not needed
    return AnswerRules(source, task.answer_type, task.step_format, task.instruction)


def _type_rules(answer_type: AnswerType, source: str) -> AnswerRules:
    from drr_agent.steps import StepFormat
    from drr_agent.tasks import instruction_for

    numeric = StepFormat(numeric_answer=answer_type == "number")
    return AnswerRules(source, answer_type, numeric, instruction_for(answer_type))


def _dm_rules(dm: Path | None) -> AnswerRules | None:
    """The rules of the task(s) a DM folder's card says it trained on: one task's own, the
    answer type several share, else none (no card, no such record, a task that cannot be
    loaded by its name alone — a ``jsonl`` file's)."""
    from drr_agent.scorers import DMCard

    if dm is None:
        return None
    try:
        train = (DMCard.load(dm).data or {}).get("train") or {}
        names = sorted(train.get("tasks") or {})
        rules = [_task_rules(n, f"task {n} (the DM's training task)") for n in names]
    except (DRRError, TypeError, ValueError, OSError):
        return None
    if len(rules) == 1:
        return rules[0]
    types = {r.answer_type for r in rules}
    if len(types) == 1:
        (kind,) = types
        return _type_rules(kind, f"answer type {kind} (the DM's training tasks')")
    return None


def answer_rules(
    task: str | None, answer_type: AnswerTypeChoice | None, dm: Path | None
) -> AnswerRules | None:
    """The rules ``--task`` / ``--answer-type`` name, else those of the DM's training task
    (`_dm_rules`); ``None``: any answer is taken as written (``--answer-type text`` asks
    for that explicitly)."""
    if task is not None and answer_type is not None:
        raise typer.BadParameter("give --task or --answer-type, not both", param_hint="--task")
    if answer_type is not None:
        return _type_rules(answer_type.value, f"--answer-type {answer_type.value}")  # type: ignore[arg-type]
    if task is not None:
        return _task_rules(task, f"task {task}")
    return _dm_rules(dm)


# numbers with only operators, brackets and spaces between them: an expression, no "= value"
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
    max_backtracks: MaxBacktracksOpt = GRAPH_DEFAULTS.max_backtracks,
    max_retries_per_point: MaxRetriesOpt = GRAPH_DEFAULTS.max_retries_per_point,
    on_point_spent: OnPointSpentOpt = OnPointSpent.backtrack,
    on_budget: OnBudgetOpt = OnBudget.answer_best,
    reasoner_timeout: ReasonerTimeoutOpt = GRAPH_DEFAULTS.reasoner_timeout_s,
    task: Annotated[
        str | None,
        typer.Option(
            help="Ask and read the answer as this task does (as for drr eval): its "
            "instruction, its answer patterns, and on a numeric task a final answer that is "
            "no number (words, or an expression like '2 - 7') is refused. Default: the task "
            "the DM trained on, from its card (with several, the answer type they share).",
            show_default=False,
        ),
    ] = None,
    answer_type: Annotated[
        AnswerTypeChoice | None,
        typer.Option(
            help="Instead of --task (a DM trained on a jsonl file, or none): read answers as "
            "this type; 'number' refuses one that is no number, 'text' takes any answer "
            "as written.",
            show_default=False,
        ),
    ] = None,
    temperature: Annotated[float, typer.Option(min=0.0)] = STEP_TEMPERATURE,
    seed: Annotated[int | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Answer one question with the DRR graph, showing every decision as it is taken."""
    from drr_agent.graph import build_graph

    try:
        rules = answer_rules(task, answer_type, dm)
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
        scorer = load_scorer(dm, untrained_dm, trust_remote_code, is_embedded(reasoner), dm_url)
        chosen = make_reasoner(reasoner, model, style, vllm, temperature=temperature, seed=seed)
        if rules is not None:
            # as evaluations ask and read a task's questions (`MethodContext`)
            chosen = chosen.derive(instruction=rules.instruction)
            config = config.model_copy(update={"step_format": chosen.format_for(rules.step_format)})
            if not as_json:
                console.print(
                    f"Answers: {rules.answer_type}, by the rules of {rules.source}.",
                    style="dim",
                    markup=False,
                )
        graph = build_graph(chosen, scorer, config)
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
        raise fail(invalid_option(exc), 2) from exc

    if as_json:
        console.print_json(json.dumps(result.model_dump()))
        return
    _print_result(result)


def _print_result(result: DRRResult) -> None:
    """The tree — a table, or below `TABLE_MIN_COLUMNS` wrapped text, whose footer has the
    path, the outcome and the counters — and the outcome."""
    from rich.markup import escape
    from rich.text import Text

    if console.width < TABLE_MIN_COLUMNS:
        tree = Text(format_thought_tree(result, wrap=console.width))
        tree.highlight_regex(r"(?m)^Answer:", "bold green")
        tree.highlight_regex(r"(?m)^Abstained", "bold red")
        console.print(tree, soft_wrap=True)
        return
    console.print(thought_table(result))
    if result.abstained:
        console.print(
            f"[bold red]Abstained[/] ({result.stop_reason}): {escape(str(result.stop_detail))}"
        )
    else:
        console.print(
            f"[bold green]Answer:[/] {escape(str(result.answer))}  "
            f"({escape(str(result.stop_detail))})"
        )
    console.print(format_counters(result))
