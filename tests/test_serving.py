"""`drr_agent.serving` without vLLM: the DM export's maths, and the launcher's process handling
against a stand-in server (the real vLLM runs in tests/test_vllm.py)."""

from __future__ import annotations

import os
import stat
import sys
import textwrap

import pytest

from drr_agent.serving import VLLMServer, VLLMServerError, find_vllm_python
from drr_agent.serving.vllm import GUARD_PATH

FAKE_SERVER = textwrap.dedent(
    """\
    #!{python}
    # Stands in for an interpreter with vLLM: answers the import probe, and for "-m ..." serves
    # /health on --port (ignoring SIGTERM when FAKE_STUBBORN is set, to test the kill).
    import http.server, os, signal, sys
    if sys.argv[1] == "-c":
        sys.exit(0)
    if os.environ.get("FAKE_CRASH"):
        print("RuntimeError: no model here", flush=True)
        sys.exit(3)
    if os.environ.get("FAKE_STUBBORN"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    args = sys.argv
    port = int(args[args.index("--port") + 1])
    print("args:", " ".join(args[1:]), flush=True)
    print("env:", os.environ.get("VLLM_CPU_KVCACHE_SPACE"), flush=True)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


@pytest.fixture
def fake_python(tmp_path):
    path = tmp_path / "python"
    path.write_text(FAKE_SERVER.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_find_vllm_python_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRR_VLLM_PYTHON", raising=False)
    with pytest.raises(VLLMServerError, match="does not exist"):
        find_vllm_python(str(tmp_path / "nope"))
    with pytest.raises(VLLMServerError, match=r"no vLLM found.*\.ci/setup-vllm"):
        find_vllm_python()  # this interpreter has no vllm, and there is no .venv-vllm here


def test_cpu_server_command_and_clean_stop(fake_python, tmp_path):
    server = VLLMServer(
        tmp_path / "model", "drr-dm", "pooling", python=fake_python, device="cpu",
        log=tmp_path / "dm.log", startup_timeout_s=30,
    )  # fmt: skip
    assert server.host == "127.0.0.1"  # loopback unless told otherwise
    with server:
        pid = server.process.pid
        log = server.log_path.read_text()
        assert "--runner pooling" in log and "--dtype float32 --enforce-eager" in log
        assert "--host 127.0.0.1" in log and "env: 1" in log  # VLLM_CPU_KVCACHE_SPACE
        assert "--load-format safetensors" in log  # never unpickle a model folder's weights
    assert server.process is None and not _alive(pid)


def test_the_api_key_goes_to_vllm_by_environment_not_argv(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    server = VLLMServer(
        tmp_path / "m", "drr-reasoner", "generate", python=sys.executable, device="cpu",
        api_key="s3cret",
    )  # fmt: skip
    assert "s3cret" not in " ".join(server.command())  # argv is visible to every local user
    assert server.environment()["VLLM_API_KEY"] == "s3cret"
    # and every route but /health is guarded, not only vLLM's /v1 (drr_key_guard)
    assert "--middleware drr_key_guard.KeyGuard" in " ".join(server.command())
    assert str(GUARD_PATH) in server.environment()["PYTHONPATH"].split(os.pathsep)
    keyless = VLLMServer(tmp_path / "m", "drr-dm", "pooling", python=sys.executable, device="cpu")
    assert "VLLM_API_KEY" not in keyless.environment()
    assert "--middleware" not in keyless.command()


def test_serve_beyond_loopback_needs_a_key(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from drr_agent.cli import app

    monkeypatch.delenv("DRR_SERVE_API_KEY", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--reasoner", "embedded", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "pass --api-key" in result.output


def test_a_server_that_ignores_sigterm_is_killed(fake_python, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_STUBBORN", "1")
    server = VLLMServer(
        tmp_path / "m", "x", "generate", python=fake_python, device="cpu", log=tmp_path / "l"
    )
    server.start()
    pid = server.process.pid
    server.stop(grace_s=0.5)
    assert not _alive(pid)


def test_a_server_that_dies_while_starting_reports_its_log(fake_python, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CRASH", "1")
    server = VLLMServer(
        tmp_path / "m", "x", "generate", python=fake_python, device="cpu", log=tmp_path / "l"
    )
    with pytest.raises(VLLMServerError, match=r"(?s)exited with code 3.*no model here"):
        server.start()


@pytest.mark.embedded
def test_exported_dm_gives_the_in_process_probabilities(tmp_path):
    """The one-logit copy vLLM serves: sigmoid(logit) equals HFScorer's softmax[good]."""
    import json

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from drr_agent.scorers import HFScorer, StepContext, embedded_dm_base_path
    from drr_agent.scorers.hf import fit_to_window
    from drr_agent.serving import export_dm_for_vllm

    torch.manual_seed(0)
    dm = tmp_path / "dm"  # a classifier whose *first* label is the good one
    model = AutoModelForSequenceClassification.from_pretrained(
        embedded_dm_base_path(), num_labels=2, id2label={0: "good", 1: "bad"},
        label2id={"good": 0, "bad": 1},
    )  # fmt: skip
    model.save_pretrained(dm)
    AutoTokenizer.from_pretrained(embedded_dm_base_path()).save_pretrained(dm)
    (dm / "drr_dm.json").write_text(json.dumps({"accept_threshold": 0.4, "max_length": 64}))

    out = export_dm_for_vllm(dm, tmp_path / "served")
    served = AutoModelForSequenceClassification.from_pretrained(out, use_safetensors=True)
    assert served.config.num_labels == 1 and served.config.id2label == {0: "good"}
    assert json.loads((out / "drr_dm.json").read_text())["accept_threshold"] == 0.4

    local = HFScorer(dm)
    items = [
        StepContext("What is 2 + 3?", (), "2 + 3 = 5"),
        StepContext("What is 2 + 3?", ("2 + 3 = 6",), "Answer: 6"),
    ]
    pairs = [fit_to_window(local.tokenizer, i, 64) for i in items]
    enc = local.tokenizer([p[0] for p in pairs], [p[1] for p in pairs], return_tensors="pt",
                          padding=True)  # fmt: skip
    with torch.no_grad():
        probs = torch.sigmoid(served(**enc).logits[:, 0]).tolist()
    assert probs == pytest.approx(local.score(items), abs=1e-5)
    assert export_dm_for_vllm(dm, tmp_path / "served") == out  # up to date: reused


def test_serve_says_a_hub_id_needs_a_download_before_starting_anything(monkeypatch):
    from typer.testing import CliRunner

    from drr_agent.cli import app

    result = CliRunner().invoke(app, ["serve", "--reasoner", "Qwen/Qwen2.5-0.5B-Instruct"])
    assert result.exit_code == 1
    assert "no such folder" in result.output and "--allow-download" in result.output


def test_allow_download_lifts_the_offline_switch(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    args = (tmp_path / "m", "drr-reasoner", "generate")
    assert (
        VLLMServer(*args, python=sys.executable, device="cpu").environment()["HF_HUB_OFFLINE"]
        == "1"
    )
    online = VLLMServer(*args, python=sys.executable, device="cpu", offline=False)
    assert online.environment()["HF_HUB_OFFLINE"] == "0"


def test_serve_replicas_start_one_server_per_port_and_print_every_url(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import drr_agent.serving as serving
    from drr_agent.cli import app

    started: list[tuple[str, int, str]] = []

    class Exited:  # the servers "exit" at once, so the serve loop ends by itself
        def poll(self) -> int:
            return 0

    class Recording:
        def __init__(self, model, served_name, runner, *, port, log, **kwargs):
            self.served_name, self.port, self.log = served_name, port, log
            self.url = f"http://127.0.0.1:{port}"
            self.device, self.model, self.process = "cpu", model, None

        def start(self) -> None:
            started.append((self.served_name, self.port, self.log.name))
            self.process = Exited()

        def stop(self) -> None:
            pass

        def log_tail(self) -> str:
            return ""

    monkeypatch.setattr(serving, "VLLMServer", Recording)
    model = tmp_path / "model"
    model.mkdir()
    runner = CliRunner()
    result = runner.invoke(
        app, ["serve", "--reasoner", str(model), "--replicas", "3", "--reasoner-port", "9100"]
    )
    assert result.exit_code == 0, result.output
    assert started == [("drr-reasoner", 9100 + i, f"reasoner-{i}.log") for i in range(3)]
    urls = ",".join(f"http://127.0.0.1:{9100 + i}/v1" for i in range(3))
    assert f"--reasoner {urls}" in result.output.replace("\n", "")
    overlap = runner.invoke(
        app, ["serve", "--reasoner", str(model), "--dm", str(model), "--replicas", "2"]
    )
    assert overlap.exit_code == 2 and "overlap" in overlap.output


def test_the_key_guard_closes_every_route_but_health(monkeypatch):
    """vLLM's own key check guards /v1 only; `KeyGuard` (run inside vLLM by `drr serve
    --api-key`) closes the rest: /invocations generates, /tokenize and /metrics leak."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from drr_agent.serving.guard.drr_key_guard import KeyGuard

    paths = ["/health", "/invocations", "/tokenize", "/detokenize", "/metrics", "/score"]
    routes = [Route(p, lambda r: PlainTextResponse("ok"), methods=["GET", "POST"]) for p in paths]
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="VLLM_API_KEY"):  # a guard without a key: refused
        KeyGuard(Starlette(routes=routes))
    monkeypatch.setenv("VLLM_API_KEY", "s3cret")
    client = TestClient(KeyGuard(Starlette(routes=routes)))
    assert client.get("/health").status_code == 200  # probes need no key
    for path in paths[1:]:
        assert client.post(path).status_code == 401, path
        assert client.post(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.post(path, headers={"Authorization": "Basic s3cret"}).status_code == 401
        assert client.post(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/metrics").headers["www-authenticate"] == "Bearer"
