"""The graphs behind a real LangGraph server (`langgraph dev`), driven with the SDK client.

This is how users deploy the graphs named in ``langgraph.json``: the in-memory API server
loads them by path, brings its own checkpointer, and serves threads, runs and streams. The
test starts it on loopback with the embedded Reasoner and an untrained DM (the plumbing is
real; the scores are noise, which does not matter for what is checked here).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.embedded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {
        **os.environ,
        "DRR_ALLOW_UNTRAINED_DM": "1",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # nothing leaves the machine
        "LANGSMITH_TRACING": "false",
    }
    command = [str(Path(sys.executable).parent / "langgraph"), "dev", "--no-browser"]
    command += ["--no-reload", "--host", "127.0.0.1", "--port", str(port)]
    log = (ROOT / ".pytest_cache").joinpath("langgraph-dev.log")
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"langgraph dev exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                pytest.fail(f"langgraph dev did not answer /ok in 120 s:\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


async def test_drr_graph_streams_decisions_and_keeps_its_state(server):
    from langgraph_sdk import get_client

    client = get_client(url=server)
    graphs = {a["graph_id"] for a in await client.assistants.search()}
    assert graphs == {"drr", "drr_agent_app"}
    thread = await client.threads.create()
    question = {"question": "Calculate 3 + 4."}
    decisions, finals = [], []
    async for part in client.runs.stream(
        thread["thread_id"],
        "drr",
        input=question,
        stream_mode=["custom", "values"],
        context={"max_steps": 3, "max_reasoner_calls": 6},
    ):
        if part.event == "custom" and part.data.get("type") == "drr.decision":
            decisions.append(part.data)
        elif part.event == "values":
            finals.append(part.data)
    assert decisions, "no drr.decision events streamed"
    assert {d["route"] for d in decisions} <= {"continue", "backtrack", "answer", "stop"}
    assert decisions[-1]["route"] in ("answer", "stop")
    state = await client.threads.get_state(thread["thread_id"])
    values = state["values"]
    assert values["question"] == "Calculate 3 + 4."
    assert values["thoughts"] and values["stop_reason"] == finals[-1]["stop_reason"]
    assert all(t["score"] is not None for t in values["thoughts"] if t["status"] != "proposed")
    assert state["next"] == []
    # the server's checkpointer keeps every step: the history goes back to the input
    history = await client.threads.get_history(thread["thread_id"], limit=100)
    assert len(history) >= 2 * len(decisions)


async def test_a_run_interrupted_before_scoring_resumes_on_its_thread(server):
    from langgraph_sdk import get_client

    client = get_client(url=server)
    thread = await client.threads.create()
    await client.runs.wait(
        thread["thread_id"],
        "drr",
        input={"question": "Calculate 5 + 2."},
        interrupt_before=["score"],
        context={"max_steps": 3, "max_reasoner_calls": 6},
    )
    paused = await client.threads.get_state(thread["thread_id"])
    assert paused["next"] == ["score"]
    proposed = paused["values"]["thoughts"]
    assert proposed and all(t["score"] is None for t in proposed)
    done = await client.runs.wait(
        thread["thread_id"], "drr", input=None, context={"max_steps": 3, "max_reasoner_calls": 6}
    )
    assert done["stop_reason"] is not None
    # resumed from the checkpoint, not redone: the first call's thoughts are the paused ones,
    # now scored, and there was no second first call
    first_call = [t for t in done["thoughts"] if t["call"] == 1]
    assert [t["text"] for t in first_call] == [t["text"] for t in proposed]
    assert all(t["score"] is not None for t in first_call)


async def test_agent_app_answers_and_remembers_the_conversation(server):
    from langgraph_sdk import get_client

    client = get_client(url=server)
    # the factory loaded by path builds the app from the library: DRRConfig is its context
    (assistant,) = await client.assistants.search(graph_id="drr_agent_app")
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    assert {"max_steps", "accept_threshold"} <= set(schemas["context_schema"]["properties"])
    thread = await client.threads.create()
    first = await client.runs.wait(
        thread["thread_id"],
        "drr_agent_app",
        input={"messages": [{"role": "user", "content": "What is 6 + 3?"}]},
        context={"max_steps": 3, "max_reasoner_calls": 6},
    )
    kinds = [m["type"] for m in first["messages"]]
    assert kinds[0] == "human" and "tool" in kinds and kinds[-1] == "ai"  # DRR ran as a tool
    second = await client.runs.wait(
        thread["thread_id"],
        "drr_agent_app",
        input={"messages": [{"role": "user", "content": "Hello, who are you?"}]},
        context={"max_steps": 3, "max_reasoner_calls": 6},
    )
    messages = second["messages"]
    assert len(messages) > len(first["messages"])  # the thread resumed with its history
    assert messages[: len(first["messages"])] == first["messages"]
    assert messages[-1]["type"] == "ai" and messages[-1]["content"]
