"""Example agent app: a small LangGraph agent that hands hard reasoning sub-questions to DRR.

DRR is the agent's tool: `drr_agent.make_drr_tool` wraps the compiled DRR graph as a LangChain
tool whose reply is the answer (or an honest "no trusted answer") and whose artifact is the
whole run (`drr_agent.DRRResult` as a dict: the thought tree with DM scores, ready for
`drr_agent.draw_thought_tree`). This file only wires library pieces together.

Two ways to decide when to call DRR — be clear about which one runs:

- **A tool-calling chat model** (``build_agent_app(chat_model=...)``, or the environment
  variables ``DRR_AGENT_MODEL_URL`` + ``DRR_AGENT_MODEL`` for an OpenAI-compatible server with
  tool calling, e.g. vLLM started with ``--enable-auto-tool-choice --tool-call-parser ...``;
  its key from ``DRR_AGENT_MODEL_API_KEY``, and ``OPENAI_API_KEY`` is sent to api.openai.com
  only — the rule the Reasoner's key follows):
  LangChain's agent, ``langchain.agents.create_agent`` (the loop ``model → tools → model``);
  the model chooses when to call ``drr_reason`` and words the final reply.
- **The embedded default** (no model configured): the embedded SmolLM2-135M cannot call tools
  reliably, so the decision is **a rule, not a model**: a ``route`` node sends a question that
  contains an explicit arithmetic expression (digits joined by ``+ - * / x × ÷ ^`` or by
  plus / minus / times / divided by) to the DRR tool, and a ``respond`` node writes the reply
  from the tool's result with a fixed template. Anything else is answered by SmolLM2 directly
  (``chat`` node). Word problems without an explicit operator therefore do not reach DRR here;
  use a tool-calling model for those. The rule (`is_arithmetic`) lives here, with the app: it
  is this app's stand-in for a model that cannot call tools, not a property of the tool.

The app's ``context_schema`` is `drr_agent.DRRConfig`: a context given to the app
(``app.invoke(..., context=DRRConfig(max_steps=4))``) reaches the DRR run inside the tool,
because a graph called inside a node inherits its caller's context. `amake_app` is the graph
factory named in ``langgraph.json``; its DRR graph is `drr_agent.deployment.graph_from_env`
(the one ``graphs/drr_graph.py`` serves; same environment variables: ``DRR_DM``,
``DRR_ALLOW_UNTRAINED_DM``, ``DRR_REASONER_URL``, ...).
"""

import asyncio
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Checkpointer, Command

__all__ = ["amake_app", "build_agent_app", "is_arithmetic", "make_app"]

_AGENT_SYSTEM_PROMPT = (
    "You are a helpful assistant. For arithmetic or any multi-step calculation, call the "
    "{tool} tool with a self-contained sub-question and base your reply on its "
    "answer. If the tool finds no trusted answer, say so instead of guessing."
)

AGENT_MODEL_API_KEY_ENV = "DRR_AGENT_MODEL_API_KEY"
"""The key sent to ``DRR_AGENT_MODEL_URL`` (``$OPENAI_API_KEY`` only when that is
api.openai.com: `drr_agent.reasoners.openai_compatible.reasoner_api_key`)."""

_CHAT_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."

_ARITHMETIC = re.compile(
    r"\d\s*(?:[-+*/x×÷^]|\bplus\b|\bminus\b|\btimes\b|\bdivided by\b|\bmultiplied by\b)\s*\d",
    re.IGNORECASE,
)


def is_arithmetic(text: str) -> bool:
    """The embedded app's routing rule: does ``text`` contain an explicit arithmetic expression?"""
    return bool(_ARITHMETIC.search(text))


# -- the embedded default: a rule decides, a template replies ---------------------------------


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else message.text


def _last_human(state: MessagesState) -> str:
    for message in reversed(state["messages"]):
        if isinstance(message, HumanMessage):
            return _text(message)
    raise ValueError("the agent app needs a user message: {'messages': [('user', '...')]}")


def _router(tool_name: str) -> Callable[[MessagesState], Command[Any]]:
    def route(state: MessagesState) -> Command[Any]:
        """The rule: explicit arithmetic goes to DRR, the rest to the chat model."""
        question = _last_human(state)
        if not is_arithmetic(question):
            return Command(goto="chat")
        call = {
            "name": tool_name,
            "args": {"question": question},
            "id": f"call_{uuid.uuid4().hex[:16]}",
            "type": "tool_call",
        }
        return Command(goto="tools", update={"messages": [AIMessage("", tool_calls=[call])]})

    return route


def _respond(state: MessagesState) -> dict[str, Any]:
    """The reply from the DRR tool's result (a template, no model)."""
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


def _rule_app(
    model: BaseChatModel,
    tool: BaseTool,
    context_schema: type,
    checkpointer: Checkpointer,
    name: str,
) -> CompiledStateGraph:
    """``route → tools → respond`` for explicit arithmetic, ``route → chat`` for the rest."""
    builder = StateGraph(MessagesState, context_schema=context_schema)
    builder.add_node("route", _router(tool.name), destinations=("tools", "chat"))
    builder.add_node("tools", ToolNode([tool]))
    builder.add_node("chat", _chat_node(model))
    builder.add_node("respond", _respond)
    builder.add_edge(START, "route")
    builder.add_edge("tools", "respond")
    builder.add_edge("respond", END)
    builder.add_edge("chat", END)
    return builder.compile(checkpointer=checkpointer, name=name)


# -- the app ----------------------------------------------------------------------------------


def _chat_model_from_env() -> BaseChatModel | None:
    url = os.environ.get("DRR_AGENT_MODEL_URL", "").strip()
    model = os.environ.get("DRR_AGENT_MODEL", "").strip()
    if not url:
        return None
    if not model:
        raise RuntimeError(f"DRR_AGENT_MODEL_URL is set ({url}) but DRR_AGENT_MODEL is not")
    from langchain_openai import ChatOpenAI

    from drr_agent.reasoners.openai_compatible import reasoner_api_key

    # the Reasoner's rule: this endpoint's own key, $OPENAI_API_KEY for api.openai.com only
    key = reasoner_api_key(url, env=AGENT_MODEL_API_KEY_ENV)
    return ChatOpenAI(
        base_url=url,
        model=model,
        api_key=key or "not-needed",  # type: ignore[arg-type]
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
        drr_graph: The compiled DRR graph; default: `drr_agent.deployment.graph_from_env`.
        chat_model: The agent's chat model; default: ``DRR_AGENT_MODEL_URL`` +
            ``DRR_AGENT_MODEL`` (OpenAI-compatible), else the embedded SmolLM2.
        tool_calling: ``True``: the model decides when to call DRR (it must support tool
            calling; LangChain's ``create_agent``); ``False``: the arithmetic rule decides and
            the model only answers the other questions. Default: ``True`` for a given or
            configured model, ``False`` for the embedded one.
        drr_context: A fixed `DRRConfig` for every DRR call (default: the app's context).
        checkpointer: For a persistent conversation (``thread_id`` in the config).

    Input ``{"messages": [("user", "...")]}``; the reply is the last message.
    """
    from drr_agent import DRRConfig, make_drr_tool  # importing this file stays cheap

    if drr_graph is None:
        from drr_agent.deployment import graph_from_env

        drr_graph = graph_from_env()
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
    if not tool_calling:
        return _rule_app(chat_model, tool, DRRConfig, checkpointer, name)
    from langchain.agents import create_agent

    return create_agent(
        chat_model,
        [tool],
        system_prompt=_AGENT_SYSTEM_PROMPT.format(tool=tool.name),
        context_schema=DRRConfig,
        checkpointer=checkpointer,
        name=name,
    )


_apps: dict[tuple[int, str, str], CompiledStateGraph] = {}
_lock = threading.Lock()


async def amake_app(config: RunnableConfig) -> CompiledStateGraph:
    """`make_app` for an event loop — the factory ``langgraph.json`` names (the first call
    loads the models: in a thread, see ``graphs/drr_graph.py:amake_graph``)."""
    return await asyncio.to_thread(make_app, config)


def make_app(config: RunnableConfig) -> CompiledStateGraph:
    """The agent app for the current environment (cached per environment)."""
    from drr_agent.deployment import graph_from_env

    drr_graph = graph_from_env()  # the same graph `graphs/drr_graph.py` serves
    key = (
        id(drr_graph),  # graph_from_env keeps one graph per environment, so ids are stable
        os.environ.get("DRR_AGENT_MODEL_URL", "").strip(),
        os.environ.get("DRR_AGENT_MODEL", "").strip(),
    )
    with _lock:
        app = _apps.get(key)
        if app is None:
            app = build_agent_app(drr_graph)
            _apps[key] = app
    return app
