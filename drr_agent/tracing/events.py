"""Decision events (``graph.stream(..., stream_mode="custom")``), one line each, live or after.

`format_decision` writes one event, `decision_log` a numbered list of them, and
`stream_decisions` / `astream_decisions` run a graph printing each decision as it is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from drr_agent.state import DecisionEvent
from drr_agent.tracing._view import one_line, score_and_rank

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig


def format_decision(event: Mapping[str, Any]) -> str:
    """One decision event (``stream_mode="custom"``) as one line.

    ``continue  depth 0  #0 0.900 ≥ acc 0.50  'Add 5 and 6.'`` — then, where they apply,
    the thought a backtrack popped, the answer or abstention and the stop reason, the error.
    """
    route = str(event.get("route", "?"))
    thought = event.get("thought") or {}
    accept = event.get("accept_threshold")
    answer = event.get("answer_threshold", accept)
    line = f"{route:>9}  depth {event.get('depth', 0)}"
    if thought:
        line += f"  #{thought.get('id')} {score_and_rank(thought, accept, answer)}  "
        line += repr(one_line(thought.get("text"), 60))
    shown = {thought.get("id"), event.get("popped")}  # a popped thought is no candidate
    others = [c for c in event.get("candidates") or [] if c.get("id") not in shown]
    if others:
        line += f"  (+{len(others)} other candidate{'s' if len(others) > 1 else ''})"
    if event.get("popped") is not None:
        line += f"  ↩ popped #{event['popped']}"
    if route in ("answer", "stop"):
        if event.get("abstained"):
            line += f"  → abstained ({event.get('stop_reason', route)})"
        elif event.get("answer") is not None:
            line += f"  → answer {event['answer']!r}"
            if event.get("stop_reason"):
                line += f" ({event['stop_reason']})"
    if event.get("error"):
        line += f"  error: {event['error']}"
    return line


def decision_log(events: Iterable[Mapping[str, Any] | DecisionEvent]) -> str:
    """Decision events as a numbered log, one line each (non-DRR events are skipped)."""
    lines = [
        f"{n:>3}. {format_decision(e)}"
        for n, e in enumerate(
            (e for e in events if isinstance(e, Mapping) and e.get("type") == "drr.decision"),
            start=1,
        )
    ]
    return "\n".join(lines)


class _DecisionPrinter:
    """Numbers and prints decision events; keeps the outer graph's last state."""

    def __init__(self, out: Callable[[str], Any], subgraphs: bool) -> None:
        self.out, self.subgraphs = out, subgraphs
        self.count = 0
        self.final: dict[str, Any] = {}

    def __call__(self, chunk: Any) -> None:
        if self.subgraphs:
            namespace, mode, data = chunk
            if mode == "values" and namespace:
                return  # only the outer graph's state is the result
        else:
            mode, data = chunk
        if mode == "custom" and isinstance(data, Mapping) and data.get("type") == "drr.decision":
            self.count += 1
            self.out(f"{self.count:>3}. {format_decision(data)}")
        elif mode == "values":
            self.final = data


def stream_decisions(
    graph: Any,
    inputs: Any,
    config: RunnableConfig | None = None,
    *,
    context: Any = None,
    out: Callable[[str], Any] = print,
    subgraphs: bool = False,
) -> dict[str, Any]:
    """Run ``graph`` and print each decision as it is taken; return the final state.

    Streams ``stream_mode=["custom", "values"]``; every DRR decision event goes to ``out``
    (default ``print``) through `format_decision`, numbered. With ``subgraphs=True`` the
    decisions of a DRR graph nested in a parent graph (as a node, or called by a tool inside
    a node) are shown too.
    """
    printer = _DecisionPrinter(out, subgraphs)
    for chunk in graph.stream(
        inputs, config, context=context, stream_mode=["custom", "values"], subgraphs=subgraphs
    ):
        printer(chunk)
    return printer.final


async def astream_decisions(
    graph: Any,
    inputs: Any,
    config: RunnableConfig | None = None,
    *,
    context: Any = None,
    out: Callable[[str], Any] = print,
    subgraphs: bool = False,
) -> dict[str, Any]:
    """Async `stream_decisions`."""
    printer = _DecisionPrinter(out, subgraphs)
    async for chunk in graph.astream(
        inputs, config, context=context, stream_mode=["custom", "values"], subgraphs=subgraphs
    ):
        printer(chunk)
    return printer.final
