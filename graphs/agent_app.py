"""Example agent app: a small LangGraph agent that hands hard reasoning sub-questions to DRR.

The agent is a ``StateGraph`` over chat messages (``MessagesState``). DRR is one of its tools:
`make_drr_tool` wraps the compiled DRR graph (``graph.invoke`` / ``graph.ainvoke``) as a
LangChain tool whose reply is the answer (or an honest "no trusted answer") and whose
artifact is the whole run (`drr_agent.DRRResult` as a dict: the thought tree with DM scores,
ready for `drr_agent.draw_thought_tree`). A prebuilt ``ToolNode`` executes it.

Two ways to decide when to call DRR — be clear about which one runs:

- **A tool-calling chat model** (``build_agent_app(chat_model=...)``, or the environment
  variables ``DRR_AGENT_MODEL_URL`` + ``DRR_AGENT_MODEL`` for an OpenAI-compatible server with
  tool calling, e.g. vLLM started with ``--enable-auto-tool-choice --tool-call-parser ...``):
  the classic agent loop ``agent → tools → agent``; the model chooses when to call
  ``drr_reason`` and words the final reply.
- **The embedded default** (no model configured): the embedded SmolLM2-135M cannot call tools
  reliably, so the decision is **a rule, not a model**: a ``route`` node sends a question that
  contains an explicit arithmetic expression (digits joined by ``+ - * / x × ÷ ^`` or by
  plus / minus / times / divided by) to the DRR tool, and a ``respond`` node writes the reply
  from the tool's result with a fixed template. Anything else is answered by SmolLM2 directly
  (``chat`` node). Word problems without an explicit operator therefore do not reach DRR here;
  use a tool-calling model for those.

The app's ``context_schema`` is `drr_agent.DRRConfig`: a context given to the app
(``app.invoke(..., context=DRRConfig(max_steps=4))``) reaches the DRR run inside the tool,
because a graph called inside a node inherits its caller's context. `make_app` is the graph
factory named in ``langgraph.json``; it takes the DRR graph from the sibling module
``drr_graph`` (same environment variables: ``DRR_DM``, ``DRR_ALLOW_UNTRAINED_DM``,
``DRR_REASONER_URL``, ...).
"""

import asyncio
import importlib
import importlib.util
import os
import re
import sys
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import StructuredTool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Checkpointer, Command

__all__ = [
    "DRR_TOOL_NAME",
    "amake_app",
    "build_agent_app",
    "is_arithmetic",
    "make_app",
    "make_drr_tool",
]

DRR_TOOL_NAME = "drr_reason"

_DRR_TOOL_DESCRIPTION = (
    "Solve a self-contained reasoning sub-question (arithmetic, a multi-step calculation) "
    "step by step; a trained discriminative model checks every step and the tool only "
    "returns an answer it trusts. Pass the full sub-question, with all numbers it needs. "
    "Returns the answer, or says that no trusted answer was found (then do not guess)."
)

_AGENT_SYSTEM_PROMPT = (
    "You are a helpful assistant. For arithmetic or any multi-step calculation, call the "
    f"{DRR_TOOL_NAME} tool with a self-contained sub-question and base your reply on its "
    "answer. If the tool finds no trusted answer, say so instead of guessing."
)

_CHAT_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."

_ARITHMETIC = re.compile(
    r"\d\s*(?:[-+*/x×÷^]|\bplus\b|\bminus\b|\btimes\b|\bdivided by\b|\bmultiplied by\b)\s*\d",
    re.IGNORECASE,
)


def is_arithmetic(text: str) -> bool:
    """The embedded app's routing rule: does ``text`` contain an explicit arithmetic expression?"""
    return bool(_ARITHMETIC.search(text))


# -- DRR as a tool ---------------------------------------------------------------------------


def _tool_reply(state: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The tool's content for the agent, and the whole run as its artifact."""
    from drr_agent import DRRResult

    result = DRRResult.from_state(state)  # type: ignore[arg-type]
    if result.abstained or result.answer is None:
        content = (
            f"No trusted answer (DRR abstained, {result.stop_reason}: {result.stop_detail}). "
            "Do not guess."
        )
    else:
        content = (
            f"Answer: {result.answer} (DRR: {len(result.path)} DM-checked steps, "
            f"{result.rejections} rejected, {result.backtracks} backtracks; "
            f"stop: {result.stop_reason})"
        )
    return content, result.model_dump()


def make_drr_tool(
    drr_graph: Any,
    *,
    context: Any = None,
    name: str = DRR_TOOL_NAME,
    description: str = _DRR_TOOL_DESCRIPTION,
) -> StructuredTool:
    """Wrap a compiled DRR graph as a LangChain tool (sync and async).

    Args:
        drr_graph: The compiled DRR graph (``drr_agent.build_graph(...)``).
        context: A `DRRConfig` for every call. ``None`` (default): the calling graph's context
            (when it is a `DRRConfig`), else the DRR graph's own config.
        name / description: What the agent's model sees.

    Returns:
        A tool with one argument, ``question``; ``response_format="content_and_artifact"``:
        the content is the answer (or the abstention), the artifact the run as a dict.
    """

    def drr_reason(question: str) -> tuple[str, dict[str, Any]]:
        return _tool_reply(drr_graph.invoke({"question": question}, context=context))

    async def adrr_reason(question: str) -> tuple[str, dict[str, Any]]:
        return _tool_reply(await drr_graph.ainvoke({"question": question}, context=context))

    return StructuredTool.from_function(
        func=drr_reason,
        coroutine=adrr_reason,
        name=name,
        description=description,
        response_format="content_and_artifact",
    )


# -- the agent -------------------------------------------------------------------------------


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else message.text


def _last_human(state: MessagesState) -> str:
    for message in reversed(state["messages"]):
        if isinstance(message, HumanMessage):
            return _text(message)
    raise ValueError("the agent app needs a user message: {'messages': [('user', '...')]}")


def _tool_calling_agent(model: BaseChatModel, tool: StructuredTool) -> RunnableLambda:
    bound = model.bind_tools([tool])

    def prompt(state: MessagesState) -> list[BaseMessage]:
        return [SystemMessage(_AGENT_SYSTEM_PROMPT), *state["messages"]]

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(prompt(state))]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(prompt(state))]}

    return RunnableLambda(agent, afunc=aagent, name="agent")


def _route(state: MessagesState) -> Command[Any]:
    """The embedded app's rule: explicit arithmetic goes to DRR, the rest to the chat model."""
    question = _last_human(state)
    if not is_arithmetic(question):
        return Command(goto="chat")
    call = {
        "name": DRR_TOOL_NAME,
        "args": {"question": question},
        "id": f"call_{uuid.uuid4().hex[:16]}",
        "type": "tool_call",
    }
    return Command(goto="tools", update={"messages": [AIMessage("", tool_calls=[call])]})


def _respond(state: MessagesState) -> dict[str, Any]:
    """The embedded app's reply from the DRR tool's result (a template, no model)."""
    result = next(m for m in reversed(state["messages"]) if isinstance(m, ToolMessage))
    run = result.artifact if isinstance(result.artifact, Mapping) else {}
    if run.get("answer") is None:
        reply = "I could not find an answer I trust: " + _text(result)
    else:
        steps = {t["id"]: t["text"] for t in run.get("thoughts", [])}
        shown = "\n".join(f"{n}. {steps[i]}" for n, i in enumerate(run.get("path", []), 1))
        reply = f"The answer is {run['answer']}."
        if shown:
            reply += f"\n\nEach step below was checked by the DM:\n{shown}"
    return {"messages": [AIMessage(reply)]}


def _chat_node(model: BaseChatModel) -> RunnableLambda:
    def prompt(state: MessagesState) -> list[BaseMessage]:
        return [SystemMessage(_CHAT_SYSTEM_PROMPT), *state["messages"]]

    def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(prompt(state))]}

    async def achat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(prompt(state))]}

    return RunnableLambda(chat, afunc=achat, name="chat")


def _drr_graph_module() -> ModuleType:
    """The sibling ``drr_graph`` module, whether this file was imported as a package module
    (``graphs.agent_app``) or loaded by path (LangGraph's server loads graph files by path);
    one already loaded is reused, so its models are not loaded twice."""
    if __package__:
        return importlib.import_module(f"{__package__}.drr_graph")
    sibling = Path(__file__).with_name("drr_graph.py").resolve()
    for loaded in list(sys.modules.values()):  # LangGraph's server may have loaded it already
        where = getattr(loaded, "__file__", None) or ""
        if where.endswith("drr_graph.py") and Path(where).resolve() == sibling:
            return loaded
    name = "_drr_agent_graphs_drr_graph"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("drr_graph.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def _chat_model_from_env() -> BaseChatModel | None:
    url = os.environ.get("DRR_AGENT_MODEL_URL", "").strip()
    model = os.environ.get("DRR_AGENT_MODEL", "").strip()
    if not url:
        return None
    if not model:
        raise RuntimeError(f"DRR_AGENT_MODEL_URL is set ({url}) but DRR_AGENT_MODEL is not")
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=url,
        model=model,
        api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",  # type: ignore[arg-type]
        temperature=0,
    )


def build_agent_app(
    drr_graph: Any = None,
    *,
    chat_model: BaseChatModel | None = None,
    tool_calling: bool | None = None,
    drr_context: Any = None,
    checkpointer: Checkpointer = None,
    name: str = "drr_agent_app",
) -> CompiledStateGraph:
    """Compile the agent app.

    Args:
        drr_graph: The compiled DRR graph; default: ``drr_graph.make_graph`` (environment).
        chat_model: The agent's chat model; default: ``DRR_AGENT_MODEL_URL`` +
            ``DRR_AGENT_MODEL`` (OpenAI-compatible), else the embedded SmolLM2.
        tool_calling: ``True``: the model decides when to call DRR (it must support tool
            calling); ``False``: the arithmetic rule decides and the model only answers the
            other questions. Default: ``True`` for a given or configured model, ``False`` for
            the embedded one.
        drr_context: A fixed `DRRConfig` for every DRR call (default: the app's context).
        checkpointer: For a persistent conversation (``thread_id`` in the config).

    Input ``{"messages": [("user", "...")]}``; the reply is the last message.
    """
    from drr_agent import DRRConfig

    if drr_graph is None:
        drr_graph = _drr_graph_module().make_graph({})
    if chat_model is None:
        chat_model = _chat_model_from_env()
        if tool_calling is None:
            tool_calling = chat_model is not None
        if chat_model is None:
            from drr_agent.reasoners import embedded_chat_model

            chat_model = embedded_chat_model(temperature=0.0, max_tokens=64)
    elif tool_calling is None:
        tool_calling = True
    tool = make_drr_tool(drr_graph, context=drr_context)
    builder = StateGraph(MessagesState, context_schema=DRRConfig)
    builder.add_node("tools", ToolNode([tool]))
    if tool_calling:
        builder.add_node("agent", _tool_calling_agent(chat_model, tool))
        builder.add_edge(START, "agent")
        builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
        builder.add_edge("tools", "agent")
    else:
        builder.add_node("route", _route, destinations=("tools", "chat"))
        builder.add_node("chat", _chat_node(chat_model))
        builder.add_node("respond", _respond)
        builder.add_edge(START, "route")
        builder.add_edge("tools", "respond")
        builder.add_edge("respond", END)
        builder.add_edge("chat", END)
    return builder.compile(checkpointer=checkpointer, name=name)


_apps: dict[tuple[int, str, str], CompiledStateGraph] = {}
_lock = threading.Lock()


async def amake_app(config: RunnableConfig) -> CompiledStateGraph:
    """`make_app` for an event loop — the factory ``langgraph.json`` names (the first call
    loads the models: in a thread, see `drr_graph.amake_graph`)."""
    return await asyncio.to_thread(make_app, config)


def make_app(config: RunnableConfig) -> CompiledStateGraph:
    """The agent app for the current environment (cached per environment)."""
    drr_graph = _drr_graph_module().make_graph(config)
    key = (
        id(drr_graph),  # drr_graph caches one graph per environment, so ids are stable
        os.environ.get("DRR_AGENT_MODEL_URL", "").strip(),
        os.environ.get("DRR_AGENT_MODEL", "").strip(),
    )
    with _lock:
        app = _apps.get(key)
        if app is None:
            app = build_agent_app(drr_graph)
            _apps[key] = app
    return app
