"""`drr quickstart` end to end: a scripted Reasoner, the real MiniLM DM trained on CPU."""

from __future__ import annotations

import json

import pytest
from doubles import TINY_QUICKSTART as TINY

from drr_agent.offline.training.recipe import DM_RECIPES
from drr_agent.quickstart import (
    PLANS,
    QuickstartMismatchError,
    QuickstartPlan,
    run_quickstart,
)
from drr_agent.scorers.likelihood import EQUATION_FEATURES, LOOKAHEAD_HEAD_INPUTS

pytestmark = pytest.mark.embedded  # trains the real embedded MiniLM


def test_quickstart_runs_every_step_into_one_folder_and_resumes(tiny_quickstart):
    out, result, reasoner = tiny_quickstart
    for name in (
        "quickstart.json",
        "traces.jsonl",
        "traces.task.json",
        "traces.split.json",
        "labels.jsonl",
        "dm/model.safetensors",
        "dm/drr_dm.json",
        "eval/records.jsonl",
        "eval/summary.md",
        "eval/summary.json",
        "critic_thresholds.json",
        "siblings.jsonl",
    ):
        assert (out / name).is_file(), name
    split = json.loads((out / "traces.split.json").read_text())
    assert len(split["test_ids"]) == 6 and len(split["dev_ids"]) == 8 and split["train_ids"]
    # distinct questions: no question twice, and none on two sides
    questions = {
        json.loads(line)["item_id"]: json.loads(line)["question"]
        for line in (out / "traces.jsonl").read_text().splitlines()
    }
    assert len(set(questions.values())) == len(questions)
    traces = (out / "traces.jsonl").read_text().splitlines()
    # traces on train and dev questions only, never on test ones
    assert len(traces) == 3 * (len(split["train_ids"]) + len(split["dev_ids"]))
    assert not set(questions) & set(split["test_ids"])
    # answer labels: every step of a trace is right ("a + b = v"), and so is the answer the
    # Reasoner gives after it, whatever the trace's own final answer was
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert {row["label_kind"] for row in labels} == {"mc_answer"}
    assert all(row["label"] == 1.0 for row in labels if not row["final"])
    assert {row["label"] for row in labels if row["final"]} == {0.0, 1.0}
    # and they record that answer, the greedy one, for the DM's lookahead: always right here
    assert all(row["lookahead"] == row["gold"] for row in labels)
    labels_text = (out / "labels.jsonl").read_text()
    records = [json.loads(line) for line in (out / "eval/records.jsonl").read_text().splitlines()]
    assert {(r["method"], r["item_id"]) for r in records} == {
        (m, i) for m in TINY.methods for i in split["test_ids"]
    }
    # the DM stopped early and chose its thresholds on dev steps, and knows its questions
    meta = json.loads((out / "dm/drr_dm.json").read_text())
    assert meta["threshold_source"] == "dev"
    assert meta["data"]["eval"]["items"] == 8
    # its card says how its labels were made: the plan's 4 answers a step, a final step's own
    assert {"0", str(TINY.label_rollouts)} <= set(meta["data"]["train"]["rollouts"])
    assert "rollouts per step: 0 (" in (out / "dm/README.md").read_text()
    # the model card says the folder is more than its classifier, and lists what a step runs
    model_card = (out / "dm/README.md").read_text()
    assert "## What scoring a step runs" in model_card and "load_dm(path)" in model_card
    assert "| verifier | embedded-smollm2 | 134.5 M |" in model_card
    assert meta["metrics"]["eval"]["minimal_pairs"] == 4  # the plan's sample of them
    # the default DM carries the likelihood head, with its own dev thresholds; by default it
    # reads the classifier, the in-context statistics, the claim and the lookahead, which
    # the card says how to ask again (the task's instruction)
    head = meta["likelihood_head"]
    assert head["model"] == "embedded-smollm2"
    assert head["features"] == list(LOOKAHEAD_HEAD_INPUTS)
    assert head["lookahead"]["instruction"] == TINY.task.load().instruction
    # with a hidden layer of the plan's 8 tanh units
    assert len(head["hidden_weights"]) == len(head["weights"]) == TINY.dm.likelihood_hidden == 8
    assert {len(row) for row in head["hidden_weights"]} == {len(LOOKAHEAD_HEAD_INPUTS)}
    # read after two worked examples: right steps of two training questions
    shown = [q for q in {row["question"] for row in labels} if f"{q}\n" in head["preamble"]]
    assert head["context"] == "question" and len(shown) == 2
    train_questions = {questions[i] for i in split["train_ids"]}
    assert set(shown) <= train_questions
    assert head["accept_threshold"] is not None
    assert len(meta["training_questions"]) == len(split["train_ids"])
    # the scripted Reasoner's graph steps and forced answers are always right: the graph
    # without a critic and with the gold-aware one answer everything
    accuracy = {row["method"]: row["accuracy"] for row in result.summary["methods"]}
    assert accuracy["stepwise"] == 1.0 and accuracy["oracle"] == 1.0
    pairs = {(c["method"], c["baseline"]) for c in result.summary["comparisons"]}
    assert {("drr", "stepwise"), ("drr", "cot"), ("oracle", "stepwise")} <= pairs
    critic = json.loads((out / "critic_thresholds.json").read_text())
    run = json.loads((out / "eval/run.json").read_text())
    assert run["settings"]["critic_thresholds"] == critic  # the baseline used them
    assert "| cot |" in result.table and "| drr |" in result.table
    rows: dict[str, str] = {}  # the first table's row per method (the cost tables follow)
    for line in result.table.splitlines():
        if "|" in line:
            rows.setdefault(line.split("|")[1].strip(), line)
    assert "1.000" in rows["stepwise"] and "1.000" in rows["oracle"]  # the table shows the values
    assert "Paired comparisons" in result.table
    assert [row["method"] for row in result.summary["methods"]] == list(TINY.methods)
    # every model a drr item ran is booked: the Reasoner, the DM's classifier, its verifier
    # LM and the lookahead's forced answers (the same Reasoner, asked for the DM)
    drr_usage = [r["usage"] for r in records if r["method"] == "drr"]
    booked = {name.rsplit(" (", 1)[-1] for usage in drr_usage for name in usage}
    assert {"DM classifier)", "DM verifier)", "lookahead)"} <= booked, drr_usage[0]
    assert "## Cost by model" in (out / "eval/summary.md").read_text()

    # a rerun resumes: nothing sampled, trained or evaluated twice — but a record that
    # failed (a call timed out) is evaluated again, not kept as a wrong answer
    dm_time = (out / "dm/model.safetensors").stat().st_mtime_ns
    lines = (out / "eval/records.jsonl").read_text().splitlines()
    failed = json.loads(lines[0]) | {"error": "ReasonerError: timed out", "answer": None}
    (out / "eval/records.jsonl").write_text("\n".join([json.dumps(failed), *lines[1:]]) + "\n")
    again = run_quickstart(out, TINY, reasoner=reasoner, progress=False)
    assert (out / "traces.jsonl").read_text().splitlines() == traces
    assert (out / "labels.jsonl").read_text() == labels_text
    redone = [json.loads(line) for line in (out / "eval/records.jsonl").read_text().splitlines()]
    assert len(redone) == len(records) and not any(r["error"] for r in redone)
    assert (out / "dm/model.safetensors").stat().st_mtime_ns == dm_time

    def scores(summary: dict) -> list[tuple]:
        return [(m["method"], m["n"], m["accuracy"], m["errors"]) for m in summary["methods"]]

    assert scores(again.summary) == scores(result.summary)  # the redone record's latency differs

    # another plan in the same folder is refused before any work
    with pytest.raises(QuickstartMismatchError, match="another plan"):
        run_quickstart(out, TINY.model_copy(update={"samples": 5}), reasoner=reasoner)
    # forced on, a plan of another DM recipe is still refused while the old DM is there:
    # the finished DM would be reused and evaluated as this plan's
    other_dm = TINY.model_copy(update={"dm": TINY.dm.model_copy(update={"epochs": 2.0})})
    with pytest.raises(QuickstartMismatchError, match="DM of the recorded plan's recipe"):
        run_quickstart(out, other_dm, reasoner=reasoner, force=True)


def test_plans_are_valid_and_sized_as_the_cli_says():
    small = PLANS["small"]
    assert small.task.distinct and small.test == 120 and small.dev == 40
    assert len(small.task.load().items) == 242  # every distinct question of the task
    assert small.samples == 4 and "oracle" in small.methods and "stepwise" in small.methods
    assert len(small.methods) == 5 and "self_critique" in PLANS["full"].methods
    assert PLANS["full"].samples == 8 and len(PLANS["full"].methods) == 7


def test_the_light_plan_runs_no_second_language_model_and_has_its_questions():
    from drr_agent.scorers.likelihood import reads_sampled, reads_verifier

    light = PLANS["qwen-light"]
    assert light.reasoner == "embedded-qwen2.5-0.5b" and light.labels == "outcome"
    assert reads_sampled(light.dm.likelihood_features)
    assert not reads_verifier(light.dm.likelihood_features) and not light.reads_lookahead
    items = light.task.load().items
    assert len(items) >= light.test + light.dev + (light.train or 0)
    assert light.test >= 120  # what the targets are read on
    # chosen on dev (GSM8K and chain_sum): a point this weak a DM spends accepts its best
    assert light.graph.on_point_spent == PLANS["gsm8k"].graph.on_point_spent == "best"


def test_the_gsm8k_plan_evaluates_the_gsm8k_runs_test_questions_at_their_budgets():
    """``--size gsm8k`` reports on the 300 test questions (and budgets) of the committed GSM8K
    ``cot`` / ``stepwise`` run, so its rows line up item by item with that run's."""
    from pathlib import Path

    from drr_agent.evaluation.records import EvalRecord
    from drr_agent.tasks import split_task

    plan = PLANS["gsm8k"]
    folder = Path(__file__).parents[1] / "evals/results/gsm8k-qwen-2b29116"
    earlier = json.loads((folder / "run.json").read_text())
    lines = (folder / "records.jsonl").read_text().splitlines()
    records = [EvalRecord.model_validate_json(line) for line in lines]
    split = split_task(plan.task.load(), plan.test, plan.seed, dev=plan.dev)
    assert set(split.test_ids) == {r.item_id for r in records} and len(split.test_ids) == 300
    for field in ("max_steps", "max_reasoner_calls"):
        assert getattr(plan.graph, field) == earlier["config"][field]
    assert plan.max_tokens == earlier["settings"]["max_tokens"]
    settings = plan.method_settings()
    assert (settings.temperature, settings.deepconf_keep, settings.timeout_s) == (0.4, 1.0, 300)
    assert plan.dm == DM_RECIPES["light"] and plan.train == 60
    # a plan without a vote temperature samples its votes at its traces' temperature
    assert PLANS["small"].method_settings().temperature == PLANS["small"].temperature


def test_the_plans_dm_is_a_named_recipe_and_drr_train_makes_the_same(tmp_path):
    """One DM recipe for the quickstart and ``drr train``: the CLI's default gives the same
    `TrainConfig` as the default plan's DM, option for option."""
    from drr_agent.cli.dm import RecipeChoice
    from drr_agent.offline.train import DEFAULT_RECIPE, DM_RECIPES, TrainConfig

    assert {c.value for c in RecipeChoice} == set(DM_RECIPES)
    assert PLANS["small"].dm == DM_RECIPES[DEFAULT_RECIPE] == DM_RECIPES["verifier"]
    assert PLANS["qwen-light"].dm == DM_RECIPES["light-equations"]
    assert PLANS["qwen-light"].dm.likelihood_features[-2:] == EQUATION_FEATURES
    plan_config = PLANS["small"].train_config(tmp_path / "dm")
    assert plan_config.recipe == DM_RECIPES["verifier"]
    cli_config = TrainConfig.from_recipe(DM_RECIPES[DEFAULT_RECIPE], output_dir=tmp_path / "dm")
    assert cli_config.recipe == plan_config.recipe


def test_a_plan_recorded_with_flat_dm_fields_still_loads(tmp_path):
    """A ``quickstart.json`` from before `DMRecipe` (its fields at the top level) resumes."""
    flat = PLANS["qwen-light"].model_dump(mode="json")
    flat |= flat.pop("dm")
    path = tmp_path / "quickstart.json"
    path.write_text(json.dumps(flat))
    assert QuickstartPlan.load(path) == PLANS["qwen-light"]


def test_the_dm_lm_row_is_run_only_for_a_dm_that_reads_another_model():
    assert PLANS["small"].dm_lm_reasoner == "embedded-qwen2.5-0.5b"  # the verifier LM
    assert TINY.dm_lm_reasoner is None  # its DM reads the Reasoner's own SmolLM2
    assert PLANS["qwen-light"].dm_lm_reasoner is None  # its DM reads no model at all


def test_the_dm_lm_answers_the_test_questions_alone(tmp_path):
    """The row a reader asks for, on the real embedded Qwen: the DM's own LM as the
    Reasoner, with no critic, on the same questions and budgets."""
    from drr_agent.evaluation.records import RECORDS_FILE
    from drr_agent.quickstart import DM_LM_METHODS, evaluate_dm_lm
    from drr_agent.tasks import load_task

    task = load_task("basic_arithmetic", limit=2, seed=42)
    plan = PLANS["small"].model_copy(update={"concurrency": 2})
    table = evaluate_dm_lm(plan, "embedded-qwen2.5-0.5b", task, tmp_path, progress=False)
    assert "The DM's own LM (embedded-qwen2.5-0.5b) as the Reasoner" in table
    assert all(f"`{m}`" in table or m in table for m in DM_LM_METHODS)
    assert len((tmp_path / RECORDS_FILE).read_text().splitlines()) == 2 * len(DM_LM_METHODS)
