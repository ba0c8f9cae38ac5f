"""The offline chain on the real embedded Reasoner, at small size: traces → labels → train →
evaluate, the trained DM in the graph, and `drr traces` killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drr_agent import DRRResult, build_graph, load_dm
from drr_agent.cli import app
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import StepExample, TraceRecord
from drr_agent.scorers import DM_METADATA_FILE

pytestmark = pytest.mark.embedded
runner = CliRunner()
DRR = str(Path(sys.executable).with_name("drr"))


def _ok(result) -> None:
    assert result.exit_code == 0, result.output


def test_traces_labels_train_evaluate_and_solve(tmp_path, embedded):
    traces = tmp_path / "traces.jsonl"
    _ok(
        runner.invoke(
            app,
            [
                "traces",
                "--task",
                "basic_arithmetic",
                "--limit",
                "16",
                "--task-seed",
                "42",
                "--test",
                "0.25",
                "--dev",
                "0.25",
                "--split",
                "all",
                "--samples",
                "3",
                "--max-tokens",
                "80",
                "--out",
                str(traces),
            ],
        )
    )
    records = RecordFile(traces, TraceRecord).read()
    assert len(records) == len({r.key for r in records}) == 16 * 3  # every item is in one part
    assert {r.split for r in records} == {"train", "dev", "test"}
    assert (tmp_path / "traces.task.json").is_file() and (tmp_path / "traces.split.json").is_file()
    split = json.loads((tmp_path / "traces.split.json").read_text())
    for part in ("train", "dev", "test"):  # each record in its part, no question on two sides
        assert {r.item_id for r in records if r.split == part} <= set(split[f"{part}_ids"])
        others = {r.question for r in records if r.split != part}
        assert not {r.question for r in records if r.split == part} & others

    labels = tmp_path / "labels.jsonl"
    _ok(runner.invoke(app, ["labels", "--traces", str(traces), "--out", str(labels)]))
    examples = RecordFile(labels, StepExample).read()
    assert len(examples) == sum(len(r.steps) for r in records if r.status == "ok")

    dm = tmp_path / "dm"
    result = runner.invoke(
        app,
        [
            "train",
            "--labels",
            str(labels),
            "--out",
            str(dm),
            "--epochs",
            "1",
            "--max-length",
            "96",
            "--batch-size",
            "16",
        ],
    )
    _ok(result)
    assert "AUROC" in result.output and "sibling-pair accuracy" in result.output
    assert (dm / "model.safetensors").is_file() and (dm / DM_METADATA_FILE).is_file()
    assert not list(dm.glob("*.bin")), "weights are saved as safetensors only"
    meta = json.loads((dm / DM_METADATA_FILE).read_text())
    assert meta["threshold_source"] == "dev"  # thresholds and early stopping on dev steps
    trained = {r.question for r in records if r.split == "train"}
    assert len(meta["training_questions"]) == len({" ".join(q.split()).lower() for q in trained})

    _ok(runner.invoke(app, ["dm-eval", "--dm", str(dm), "--labels", str(labels)]))  # test steps

    # the DM is never reported on its own training questions, unless forced
    refused = runner.invoke(
        app,
        [
            "eval",
            "--traces",
            str(traces),
            "--dm",
            str(dm),
            "--methods",
            "drr",
            "--split",
            "train",
            "--limit-items",
            "1",
            "--out",
            str(tmp_path / "eval"),
            "--no-plots",
        ],
    )
    assert refused.exit_code != 0 and "trained on the questions" in refused.output

    # the whole DM `drr train` made (its default recipe: the classifier under a likelihood head
    # over the verifier LM and the lookahead), as a user embeds it; no allow_untrained
    scorer = load_dm(dm, num_threads=1)
    assert set(scorer.thresholds) == {"accept_threshold", "answer_threshold"}
    graph = build_graph(embedded, scorer)
    state = graph.invoke({"question": "Calculate 4 + 3."})
    run = DRRResult.from_state(state)
    assert run.thoughts and run.stop_reason is not None
    # the real DM's scores drive the decisions: each accepted step passed the accept
    # threshold, each rejected one missed its threshold (the answer threshold for a final)
    # unless the rule against repeating a step on the path rejected it
    accept, answer = scorer.thresholds["accept_threshold"], scorer.thresholds["answer_threshold"]
    for t in run.thoughts:
        assert t["score"] is None or 0.0 <= t["score"] <= 1.0
        if t["status"] == "accepted":
            assert t["score"] >= accept, t
        scored = t["score"] is not None and "repeats a step" not in t["reason"]
        if t["status"] == "rejected" and scored:
            assert t["score"] < (answer if t["answer"] is not None else accept), t
    read = {(t["parent"], t["text"]) for t in run.thoughts if t["score"] is not None}
    assert run.counters["dm_items"] == len(read)  # a repeat at its point is not read again
    first = next(e for e in graph.stream({"question": "Calculate 2 + 2."}, stream_mode="custom"))
    assert first["accept_threshold"] == scorer.thresholds["accept_threshold"]


def test_killed_traces_command_resumes_without_loss_or_duplicates(tmp_path):
    out = tmp_path / "traces.jsonl"
    args = [
        DRR,
        "traces",
        "--task",
        "basic_arithmetic",
        "--limit",
        "6",
        "--task-seed",
        "1",
        "--held-out",
        "0",
        "--samples",
        "3",
        "--max-tokens",
        "60",
        "--concurrency",
        "2",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(out.read_text().splitlines())
    assert 4 <= before < 18, "killed midway"

    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = RecordFile(out, TraceRecord).read()
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) == 18  # 6 items × 3 samples: none lost, none twice
    assert all(r.status == "ok" for r in records)
