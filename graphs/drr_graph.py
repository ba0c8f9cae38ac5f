"""The DRR graph for LangGraph's tooling (``langgraph dev``, ``langgraph build``, LangGraph Studio).

``langgraph.json`` names `amake_graph`, a graph factory: LangGraph's server calls it with the
run's ``RunnableConfig`` whenever it needs the graph (for each run and for schema requests).
Importing this file loads nothing heavy (not even ``drr_agent``); the first call loads the
models, later calls reuse them — `drr_agent.deployment.graph_from_env`, which also documents
the environment variables that choose the models (``DRR_DM``, ``DRR_DM_URL``,
``DRR_ALLOW_UNTRAINED_DM``, ``DRR_REASONER_URL``, ``DRR_REASONER_MODEL``, ...).

What the graph does per run is configured through its **context** (``context_schema`` is
`drr_agent.DRRConfig`): ``context={"accept_threshold": 0.6, "max_steps": 6}`` per assistant
or per run; fields left out take `DRRConfig`'s defaults (the thresholds then come from the
DM's ``drr_dm.json``). In Python, use ``make_graph({})`` or the module attribute ``graph``.
"""

import asyncio
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

__all__ = ["amake_graph", "make_graph"]


def make_graph(config: RunnableConfig) -> CompiledStateGraph:
    """The compiled DRR graph for the current environment (one per environment).

    ``config`` is the run's config (LangGraph's server passes it; the graph reads what it
    needs per run from its context, so it is not used here).
    """
    from drr_agent.deployment import graph_from_env

    return graph_from_env()


async def amake_graph(config: RunnableConfig) -> CompiledStateGraph:
    """`make_graph` for an event loop — the factory ``langgraph.json`` names.

    LangGraph's server calls graph factories on its event loop (and, under ``langgraph dev``,
    refuses blocking calls there), while the first call loads torch, the DM and the embedded
    Reasoner's server: that work runs in a thread, so the server keeps serving meanwhile.
    """
    return await asyncio.to_thread(make_graph, config)


def __getattr__(name: str) -> Any:
    """``graphs.drr_graph.graph``: the graph for the current environment, built on access."""
    if name == "graph":
        return make_graph({})
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
