"""`drr solve` on the command line."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from drr_agent.cli import app

runner = CliRunner()


def test_solve_without_a_dm_explains_what_to_do(monkeypatch):
    monkeypatch.delenv("DRR_DM", raising=False)
    result = runner.invoke(app, ["solve", "What is 1 + 1?"])
    assert result.exit_code == 2
    assert "No trained DM given" in result.output and "--dm PATH" in result.output


def test_solve_with_a_missing_dm_folder(tmp_path):
    result = runner.invoke(app, ["solve", "What is 1 + 1?", "--dm", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_solve_rejects_a_bad_reasoner_url():
    result = runner.invoke(app, ["solve", "q", "--untrained-dm", "--reasoner", "ftp://x"])
    assert result.exit_code == 2
    assert "OpenAI-compatible" in result.output


def test_solve_rejects_an_unknown_embedded_reasoner():
    result = runner.invoke(app, ["solve", "q", "--untrained-dm", "--reasoner", "embedded-gpt9"])
    assert result.exit_code == 2
    assert "unknown embedded Reasoner 'embedded-gpt9'" in " ".join(result.output.split())
    assert "embedded-qwen2.5-0.5b" in result.output


def test_deployment_names_an_embedded_reasoner_without_a_url():
    from drr_agent.deployment import GraphSettings, GraphSetupError

    env = {"DRR_ALLOW_UNTRAINED_DM": "1", "DRR_REASONER_MODEL": "embedded-qwen2.5-0.5b"}
    assert GraphSettings.from_env(env).reasoner_model == "embedded-qwen2.5-0.5b"
    with pytest.raises(GraphSetupError, match="names an embedded Reasoner"):
        GraphSettings.from_env({**env, "DRR_REASONER_MODEL": "qwen"})


@pytest.mark.embedded
def test_solve_on_the_embedded_default_as_json():
    result = runner.invoke(
        app,
        [
            "solve",
            "What is 3 + 4?",
            "--untrained-dm",
            "--accept-threshold",
            "0",
            "--answer-threshold",
            "0",
            "--max-steps",
            "3",
            "--max-reasoner-calls",
            "4",
            "--seed",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    assert payload["question"] == "What is 3 + 4?"
    # thresholds 0 accept everything: one thought per call along one path, ending in an answer
    # (the last step is forced to be the final answer at the step budget at the latest)
    thoughts = payload["thoughts"]
    assert payload["counters"]["reasoner_calls"] == len(thoughts) <= 3
    assert payload["path"] == [t["id"] for t in thoughts]
    assert [t["status"] for t in thoughts[:-1]] == ["accepted"] * (len(thoughts) - 1)
    assert thoughts[-1]["status"] == "answer" and payload["stop_reason"] == "answered"
    assert payload["answer"] and not payload["abstained"]
    assert payload["counters"]["rejections"] == payload["counters"]["backtracks"] == 0
    assert payload["counters"]["dm_items"] == len(thoughts)


@pytest.mark.embedded
def test_solve_shows_decisions_and_tree():
    result = runner.invoke(
        app,
        [
            "solve",
            "What is 2 + 5?",
            "--untrained-dm",
            "--accept-threshold",
            "0",
            "--answer-threshold",
            "0",
            "--max-steps",
            "2",
            "--max-reasoner-calls",
            "3",
            "--seed",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Thought tree" in result.output
    assert "Reasoner calls" in result.output
    # two steps at most, everything accepted: a step that continues, then the trusted answer
    # (stderr's progress bars may share a line with the first decision: match anywhere)
    routes = re.findall(r"\b(continue|backtrack|answer|stop)\s+depth \d+", result.output)
    assert routes == ["continue", "answer"], result.output
    assert "rejections 0, backtracks 0" in result.output


def test_quickstart_command_builds_the_plan_and_prints_the_table(tmp_path, monkeypatch):
    from pathlib import Path

    from drr_agent.quickstart import PLANS, QuickstartResult

    seen = {}

    def fake_run(out, plan, force=False, executor=None):
        seen.update(out=out, plan=plan, force=force, executor=executor)
        return QuickstartResult(
            out=Path(out), dm=Path(out) / "dm", eval_dir=Path(out) / "eval",
            table="| method | acc |\n|---|---|\n| drr | 0.7 |", summary={},
            example_question="What's 3 + 4?",
        )  # fmt: skip

    monkeypatch.setattr("drr_agent.quickstart.run_quickstart", fake_run)
    out = tmp_path / "qs"
    result = runner.invoke(app, ["quickstart", "--task", "chain_sum", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| drr | 0.7 |" in result.output and "done in" in result.output
    assert "drr solve 'What'\"'\"'s 3 + 4?' --dm" in " ".join(result.output.split())
    assert seen["plan"].task.name == "chain_sum"
    assert seen["plan"].task.limit == PLANS["small"].task.limit  # only the name changed
    from drr_agent.execution import LocalExecutor

    assert seen["executor"] == LocalExecutor(PLANS["small"].concurrency)  # in process by default
    result = runner.invoke(app, ["quickstart", "--size", "full", "--out", str(out)])
    assert seen["plan"] == PLANS["full"]
