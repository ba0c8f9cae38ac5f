"""Issue 32 ("Hardening II"), items 5–10 and 13: caches two processes can share, record files
that survive a missing newline and a power cut, label files that refuse what does not belong,
failed traces retried, and IPv6 hosts in URLs. Each test failed before its fix."""

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
