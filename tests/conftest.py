"""Shared fixtures: the real embedded models (loaded once per test session), bounded waits,
retries without backoff, and graphs run both ways. The shared doubles are in doubles.py."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub here


@pytest.fixture(scope="session")
def untrained_dm():
    """The embedded MiniLM base with a random 2-label head: real model, meaningless scores."""
    from drr_agent.scorers import HFScorer, embedded_dm_base_path

    # one torch thread: the embedded llama.cpp Reasoner shares the process (HFScorer docs)
    return HFScorer(embedded_dm_base_path(), allow_untrained_head=True, num_threads=1)


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory, untrained_dm):
    """A real sequence-classifier folder (safetensors), saved from the MiniLM base."""
    path = tmp_path_factory.mktemp("dm")
    untrained_dm.model.config.id2label = {0: "bad", 1: "good"}
    untrained_dm.model.config.label2id = {"bad": 0, "good": 1}
    untrained_dm.model.save_pretrained(path, safe_serialization=True)
    untrained_dm.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_quickstart(tmp_path_factory):
    """``(folder, result, reasoner)`` of `TINY_QUICKSTART` run once: a scripted Reasoner and the
    real MiniLM DM trained on CPU, with its likelihood head — a real trained DM folder
    (``folder / "dm"``) for every test that needs one."""
    from doubles import TINY_QUICKSTART, ScriptedChatModel, arithmetic, whole_traces_slip

    from drr_agent import Reasoner
    from drr_agent.quickstart import run_quickstart

    out = tmp_path_factory.mktemp("quickstart") / "qs"
    reasoner = Reasoner(ScriptedChatModel(respond=arithmetic(whole_traces_slip)))
    result = run_quickstart(out, TINY_QUICKSTART, reasoner=reasoner, progress=False)
    return out, result, reasoner


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2 Reasoner (llama.cpp server started once, seeded sampling)."""
    from drr_agent.reasoners import embedded_reasoner

    return embedded_reasoner(seed=7, max_tokens=48)


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout_s`` (never hang)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout_s:.0f} s for {what}", pytrace=False)
        await asyncio.sleep(0.002)


@pytest.fixture
def until():
    """``await until(condition, "what we wait for", timeout_s=60)``: a bounded wait for tests
    that act in the middle of a job (kill it, stop its server)."""
    return _until


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without exponential backoff, so tests of failures stay fast (a module asks for it
    with ``pytestmark = pytest.mark.usefixtures("no_backoff")``)."""
    import drr_agent.retry

    monkeypatch.setattr(drr_agent.retry, "backoff_s", lambda attempt: 0.0)


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest):
    """``await run(graph, inputs, **kwargs)``: the graph run with ``invoke`` or ``ainvoke`` (the
    test runs once each way); ``run.mode`` says which."""

    async def _run(graph: Any, inputs: Any, **kwargs: Any) -> dict[str, Any]:
        if request.param == "sync":
            return graph.invoke(inputs, **kwargs)
        return await graph.ainvoke(inputs, **kwargs)

    _run.mode = request.param  # type: ignore[attr-defined]
    return _run
