"""`drr solve` on the command line."""

from __future__ import annotations

import json
import re

import pytest
from doubles import ANSWER_PREFIX, ScriptedChatModel, scripted_dm
from typer.testing import CliRunner

from drr_agent.cli import app

runner = CliRunner()

LONG_STEP = (
    "First I write down the two numbers of the question, two and seven, and then I take "
    "the second one away from the first one"
)


@pytest.fixture
def scripted_solve(monkeypatch):
    """``drr solve`` on a scripted Reasoner and DM, in an 80-column terminal: the Reasoner
    writes `LONG_STEP`, then the final answer it is given (``answer``, default the
    expression "2 - 7"); the DM accepts everything (0.9)."""
    from drr_agent import Reasoner
    from drr_agent.cli._common import console

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(console, "_width", None)  # the width comes from COLUMNS
    monkeypatch.delenv("DRR_DM", raising=False)
    answer = {"text": " 2 - 7."}

    def respond(call) -> str:
        return answer["text"] if (call.prefill or "").endswith(ANSWER_PREFIX) else LONG_STEP

    def make_reasoner(*args, **kwargs):
        return Reasoner(ScriptedChatModel(respond=respond))

    monkeypatch.setattr("drr_agent.cli.solve.make_reasoner", make_reasoner)
    monkeypatch.setattr("drr_agent.cli.solve.load_scorer", lambda *a, **k: scripted_dm())

    def solve(*options: str, final: str = " 2 - 7.") -> object:
        answer["text"] = final
        args = ["solve", "Calculate 2 - 7.", "--max-steps", "2", "--max-reasoner-calls", "3"]
        return runner.invoke(app, [*args, "--untrained-dm", *options])

    return solve


def _tree_text(output: str) -> str:
    """The output's words without the tree's drawing, whitespace collapsed."""
    return " ".join(re.sub(r"[│├└─]", " ", output).split())


def test_solve_at_80_columns_prints_whole_steps_and_refuses_an_expression(scripted_solve):
    result = scripted_solve("--answer-type", "number")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "┃" not in result.stdout  # no table: its thought column would be 6 characters
    tree = lines[lines.index("Question: Calculate 2 - 7.") :]
    assert max(map(len, tree)) <= 80, result.stdout
    # the step, whole, on lines of its own under its node: nothing cut to a few characters
    assert LONG_STEP in _tree_text("\n".join(tree))
    assert any("● #0" in line and "accepted [path]" in line for line in tree)
    # the Reasoner's final answer "2 - 7" is an expression, not a number: the graph refuses it
    # (and says why in the tree) and asks again, so it is never returned
    assert "Answers: number, by the rules of --answer-type number." in result.stdout
    assert "Answer: 2 - 7  (" not in result.stdout
    text = _tree_text(result.stdout)
    assert "the final answer '2 - 7' is an expression, not its value" in text
    assert "Abstained" in text


def test_solve_returns_a_number_and_refuses_by_the_dms_training_task(scripted_solve, tmp_path):
    result = scripted_solve("--answer-type", "number", "--json", final=" -5.")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    assert payload["answer"] == "-5" and not payload["abstained"]
    # by default the DM's card names the rules: the task it trained on (numeric here)
    dm = tmp_path / "dm"
    dm.mkdir()
    (dm / "drr_dm.json").write_text(json.dumps({"data": {"train": {"tasks": {"products": 9}}}}))
    result = scripted_solve("--dm", str(dm), "--json")
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    assert payload["answer"] is None and payload["abstained"]  # "2 - 7" refused in the graph
    refusals = [t for t in payload["thoughts"] if "is an expression" in t["reason"]]
    assert refusals, payload["thoughts"]
    # --answer-type text takes any answer as written; a card without tasks names no rules
    result = scripted_solve("--dm", str(dm), "--answer-type", "text", "--json")
    assert json.loads(result.stdout[result.stdout.index("{") :])["answer"] == "2 - 7"
    (dm / "drr_dm.json").write_text("{}")
    result = scripted_solve("--dm", str(dm), "--json")
    assert json.loads(result.stdout[result.stdout.index("{") :])["answer"] == "2 - 7"
    result = scripted_solve("--task", "products", "--answer-type", "number")
    assert result.exit_code == 2 and "not both" in result.output


def test_solve_takes_the_retries_a_point_allows(scripted_solve):
    """``--max-retries-per-point`` reaches the graph: with one retry allowed, the refused
    answer sends the run back from the accepted step (a backtrack) instead of retrying there."""

    def run(*options: str) -> dict:
        result = scripted_solve("--answer-type", "number", "--json", *options)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout[result.stdout.index("{") :])

    default, once = run(), run("--max-retries-per-point", "1")
    assert default["counters"]["backtracks"] == 0
    assert [t["status"] for t in default["thoughts"]] == ["accepted", "rejected", "rejected"]
    assert once["counters"]["backtracks"] == 1 and once["stop_reason"] == "exhausted"
    assert [t["status"] for t in once["thoughts"]] == ["abandoned", "rejected", "rejected"]
    result = scripted_solve("--max-retries-per-point", "0")
    assert result.exit_code == 2 and "max-retries-per-point" in result.output


def test_the_graph_options_build_the_config_they_name(scripted_solve):
    """`graph_config` (``drr solve`` and ``drr eval``) passes every budget on; the CLI's
    default for a spent point is the graph's."""
    from drr_agent.cli._common import GRAPH_DEFAULTS, OnBudget, OnPointSpent, graph_config

    assert OnPointSpent.backtrack.value == GRAPH_DEFAULTS.on_point_spent
    config = graph_config(
        accept_threshold=None,
        answer_threshold=None,
        candidates=1,
        dm_weight=1.0,
        max_steps=4,
        max_reasoner_calls=9,
        on_budget=OnBudget.abstain,
        max_retries_per_point=2,
        on_point_spent=OnPointSpent.best,
        reasoner_timeout_s=300.0,
    )
    assert (config.max_retries_per_point, config.on_point_spent) == (2, "best")
    assert (config.on_budget_exhausted, config.reasoner_timeout_s) == ("abstain", 300.0)
    options = ("--on-point-spent", "best", "--reasoner-timeout", "300")
    result = scripted_solve("--answer-type", "number", *options)
    assert result.exit_code == 0, result.output
    assert scripted_solve("--on-point-spent", "never").exit_code == 2
    assert scripted_solve("--reasoner-timeout", "0").exit_code == 2


def test_solve_prints_the_table_in_a_wide_terminal(scripted_solve, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    result = scripted_solve("--answer-type", "number")
    assert result.exit_code == 0, result.output
    assert "Thought tree — Calculate 2 - 7." in result.stdout and "┃ thought" in result.stdout
    assert LONG_STEP.split(",")[0] in result.stdout


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
    # the table from 120 columns, the wrapped text tree below: both end with the path
    assert "Accepted path:" in result.output
    assert "Reasoner calls" in result.output
    # two steps at most, everything accepted: a step that continues, then the trusted answer
    # (stderr's progress bars may share a line with the first decision: match anywhere)
    routes = re.findall(r"\b(continue|backtrack|answer|stop)\s+depth \d+", result.output)
    assert routes == ["continue", "answer"], result.output
    assert "rejections 0, backtracks 0" in " ".join(result.output.split())


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
    # a named plan keeps its own Reasoner and task unless told otherwise
    result = runner.invoke(app, ["quickstart", "--size", "qwen-light", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert seen["plan"] == PLANS["qwen-light"]
    assert "--reasoner embedded-qwen2.5-0.5b" in " ".join(result.output.split())
    result = runner.invoke(
        app,
        ["quickstart", "--size", "qwen-light", "--reasoner", "embedded-smollm2", "--out", str(out)],
    )
    assert seen["plan"].reasoner == "embedded-smollm2"
    assert seen["plan"].task == PLANS["qwen-light"].task
    from drr_agent.cli.quickstart import Size

    assert {size.value for size in Size} == set(PLANS)  # every named plan, and no other


def test_the_quickstart_suggests_a_test_question_its_drr_answered_right(tmp_path):
    from doubles import number_item

    from drr_agent.evaluation.records import RECORDS_FILE, EvalRecord
    from drr_agent.quickstart import EXAMPLE_QUESTION, example_question

    items = [number_item(f"Calculate {n} + 1.", str(n + 1), f"q{n}") for n in range(4)]

    def record(method: str, n: int, correct: bool, **fields) -> str:
        item = items[n]
        return EvalRecord(
            run_id="r", task="t", method=method, item_id=item.id, question=item.question,
            gold=item.gold, correct=correct, **fields,
        ).model_dump_json()  # fmt: skip

    def write(*rows: str) -> None:
        (tmp_path / RECORDS_FILE).write_text("".join(row + "\n" for row in rows))

    rows = [
        record("drr", 0, False),  # the first test question: answered wrongly
        record("drr", 1, True, details={"rejections": 2}),  # right after two rejections
        record("drr", 2, True),  # right at the first try: the one to suggest
        record("stepwise", 3, True),  # another method's
        record("drr", 3, False, error="timeout"),
    ]
    write(*rows)
    assert example_question(tmp_path, items) == "Calculate 2 + 1."
    write(*rows[:2])  # none right at the first try: the first one right
    assert example_question(tmp_path, items) == "Calculate 1 + 1."
    write(rows[0], rows[3])  # drr answered none right: a fixed simple question
    assert example_question(tmp_path, items) == EXAMPLE_QUESTION
    assert example_question(tmp_path / "missing", items) == EXAMPLE_QUESTION
    # (on a task whose answers are no numbers, the first test question)
    choices = [item.model_copy(update={"answer_type": "choice"}) for item in items]
    assert example_question(tmp_path / "missing", choices) == "Calculate 0 + 1."


def test_the_quickstart_try_it_command_runs_drr_solve_as_the_evaluation_did(scripted_solve):
    import shlex
    from pathlib import Path

    from drr_agent.cli.quickstart import try_it_command
    from drr_agent.quickstart import PLANS, QuickstartResult

    result = QuickstartResult(
        out=Path("runs/qs"), dm=Path("runs/qs/dm"), eval_dir=Path("runs/qs/eval"), table="",
        summary={}, example_question="Calculate 3 + 3.",
    )  # fmt: skip
    small = PLANS["small"]
    command = try_it_command(result, small)
    assert command == (
        "drr solve 'Calculate 3 + 3.' --dm runs/qs/dm --max-steps 2 --max-reasoner-calls 8 "
        "--max-backtracks 3"
    )
    qwen = small.model_copy(update={"reasoner": "embedded-qwen2.5-0.5b"})
    assert try_it_command(result, qwen).endswith(" --reasoner embedded-qwen2.5-0.5b")
    # drr solve takes it as it is (a scripted Reasoner and DM here)
    solved = runner.invoke(app, shlex.split(command)[1:])
    assert solved.exit_code == 0, solved.output
    assert "Accepted path:" in solved.output
