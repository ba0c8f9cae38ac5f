"""DRR as a tool: the compiled DRR graph, wrapped as a LangChain tool any agent can call.

`make_drr_tool(graph)` returns a ``StructuredTool`` with one argument, ``question``, that runs
the DRR graph on it (``graph.invoke`` from a sync caller, ``graph.ainvoke`` from an async one).
Give it to ``langchain.agents.create_agent``, a ``langgraph.prebuilt.ToolNode``, or call it
yourself.

**Content and artifact.** The tool answers with ``response_format="content_and_artifact"``,
because its reply has two readers:

- the **content** is what the agent's *model* reads: one short line, ``Answer: 11 (DRR: 2
  DM-checked steps, 0 rejected, 0 backtracks; stop: answered)``, or, when DRR abstained, an
  explicit "No trusted answer ... Do not guess." — so the model bases its reply on a trusted
  answer or says that there is none, instead of filling the gap itself;
- the **artifact** is the whole run (`drr_agent.DRRResult` as a dict: the thought tree with
  every DM score, the path, the counters) for the *application*: ``ToolMessage.artifact`` is
  kept in the agent's state and streamed to clients, but never sent to the model, so the
  rejected steps and scores cost no tokens and cannot mislead it. ``format_thought_tree`` and
  ``draw_thought_tree`` take it as it is.

**Context.** With ``context=None`` (the default) the DRR run takes the context of the graph
that calls the tool: a graph invoked inside a LangGraph node inherits its caller's runtime, so
an agent compiled with ``context_schema=DRRConfig`` and invoked with
``context=DRRConfig(max_steps=4)`` (or the same as a dict, as LangGraph's server sends it)
configures the DRR run inside the tool; a caller's context that is not a `DRRConfig` is
ignored and the DRR graph's own config applies. A `DRRConfig` given here is used for every
call instead.
"""

from collections.abc import Mapping
from typing import Any

from langchain_core.tools import StructuredTool

from drr_agent.config import DRRConfig
from drr_agent.state import DRRResult

__all__ = ["DRR_TOOL_DESCRIPTION", "DRR_TOOL_NAME", "drr_tool_reply", "make_drr_tool"]

DRR_TOOL_NAME = "drr_reason"

DRR_TOOL_DESCRIPTION = (
    "Solve a self-contained reasoning sub-question (arithmetic, a multi-step calculation) "
    "step by step; a trained discriminative model checks every step and the tool only "
    "returns an answer it trusts. Pass the full sub-question, with all numbers it needs. "
    "Returns the answer, or says that no trusted answer was found (then do not guess)."
)


def drr_tool_reply(state: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The tool's reply to a finished DRR run: (content for the model, the run as artifact)."""
    result = DRRResult.from_state(state)  # type: ignore[arg-type]
    if result.abstained or result.answer is None:
        content = (
            f"No trusted answer (DRR abstained, {result.stop_reason}: {result.stop_detail}). "
            "Do not guess."
        )
    else:
        content = (
            f"Answer: {result.answer} (DRR: {len(result.path)} DM-checked steps, "
            f"{result.counters['rejections']} rejected, "
            f"{result.counters['backtracks']} backtracks; "
            f"stop: {result.stop_reason})"
        )
    return content, result.model_dump()


def make_drr_tool(
    graph: Any,
    *,
    context: DRRConfig | None = None,
    name: str = DRR_TOOL_NAME,
    description: str = DRR_TOOL_DESCRIPTION,
) -> StructuredTool:
    """Wrap a compiled DRR graph as a LangChain tool (sync and async).

    Args:
        graph: The compiled DRR graph (`drr_agent.build_graph`).
        context: A `DRRConfig` for every call. ``None`` (default): the calling graph's context
            (when it is a `DRRConfig`), else the DRR graph's own config.
        name / description: What the agent's model sees.

    Returns:
        A tool with one argument, ``question``; ``response_format="content_and_artifact"``:
        the content is the answer (or the abstention), the artifact the run as a dict (see
        the module docs for why the two differ).
    """

    def drr_reason(question: str) -> tuple[str, dict[str, Any]]:
        return drr_tool_reply(graph.invoke({"question": question}, context=context))

    async def adrr_reason(question: str) -> tuple[str, dict[str, Any]]:
        return drr_tool_reply(await graph.ainvoke({"question": question}, context=context))

    return StructuredTool.from_function(
        func=drr_reason,
        coroutine=adrr_reason,
        name=name,
        description=description,
        response_format="content_and_artifact",
    )
