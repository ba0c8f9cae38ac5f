"""The evaluation protocol: train / dev / test by question, the refusal to report a DM on its
training questions, and the gold-aware oracle critic (the ceiling of any DM in the graph)."""

from __future__ import annotations

import json

import pytest
from doubles import number_item, number_task, seven_plus_four

from drr_agent import DRRConfig, FunctionScorer, Reasoner, StepContext
from drr_agent.evaluation import METHODS, MethodContext, MethodSettings, run_eval
from drr_agent.evaluation.methods import oracle_critic
from drr_agent.evaluation.runner import TrainedOnEvalItemsError
from drr_agent.tasks import Task, TaskSplit, question_hash, split_task
from drr_agent.tasks.errors import TaskDataError
from drr_agent.tasks.splits import question_fingerprint, split_fingerprint

pytestmark = pytest.mark.usefixtures("no_backoff")


def _task(questions: list[str], gold: str = "11") -> Task:
    return number_task("t", ((f"i{n:03d}", q, gold) for n, q in enumerate(questions)))


# -- splits ----------------------------------------------------------------------------------
def test_three_parts_are_disjoint_by_question_with_case_and_space_variants():
    base = [f"What is {a} + {b}?" for a in range(6) for b in range(5)]  # 30 questions
    variants = [q.upper() for q in base[:10]] + [f"  {q.replace(' ', '   ')} " for q in base[:10]]
    task = _task(base + variants)  # 50 items, 30 distinct questions
    split = split_task(task, 10, seed=3, dev=8)
    by_id = {item.id: " ".join(item.question.split()).casefold() for item in task.items}
    parts = {p: {by_id[i] for i in split.ids(p)} for p in ("train", "dev", "test")}
    assert not parts["train"] & parts["dev"]
    assert not parts["train"] & parts["test"]
    assert not parts["dev"] & parts["test"]
    assert len(split.test_ids) <= 10 and len(split.dev_ids) <= 8
    assert sum(split.counts().values()) == 50
    assert split_task(task, 10, seed=3, dev=8) == split  # deterministic
    assert split.ids("held_out") == split.test_ids  # the old name of the test part
    with pytest.raises(ValueError, match="exceed"):
        split_task(task, 30, seed=0, dev=30)

    distinct = task.distinct()
    assert len(distinct.items) == 30 and distinct.params["distinct"] is True
    split = split_task(distinct, 10, seed=3, dev=8)
    assert split.counts() == {"train": 12, "dev": 8, "test": 10}


def test_a_two_part_split_file_still_loads(tmp_path):
    legacy = {
        "task": "t",
        "seed": 0,
        "group_by": "question",
        "train_ids": ["a", "b"],
        "held_out_ids": ["c"],
        "fingerprint": split_fingerprint(["a", "b"], ["c"]),
    }
    path = tmp_path / "old.split.json"
    path.write_text(json.dumps(legacy))
    split = TaskSplit.load(path)
    assert split.test_ids == ("c",) and split.dev_ids == () and split.held_out_ids == ("c",)
    assert split.part_of("c") == "test" and split.part_of("z") is None
    legacy["dev_ids"] = ["a"]  # edited by hand: in two parts and a stale fingerprint
    path.write_text(json.dumps(legacy))
    with pytest.raises(TaskDataError, match="both the train and the dev part"):
        TaskSplit.load(path)


def test_question_hashes_ignore_case_and_spacing():
    assert question_hash("What is 7 + 4?") == question_hash("  what IS 7  +  4? ")
    assert question_hash("What is 7 + 4?") != question_hash("What is 7 + 5?")
    assert question_fingerprint(["b", "A"]) == question_fingerprint(["a", "B", "b"])


# -- the refusal -----------------------------------------------------------------------------
class _TrainedDM(FunctionScorer):
    """A DM double whose card lists the questions it was trained on."""

    def __init__(self, questions: list[str]) -> None:
        super().__init__(lambda c: 0.9, name="trained-dm")
        self._trained = frozenset(question_hash(q) for q in questions)

    @property
    def trained_questions(self) -> frozenset[str]:
        return self._trained


async def test_eval_refuses_a_dm_on_its_training_questions(tmp_path):
    task = _task(["Calculate 7 + 4.", "Calculate 2 + 9."])
    ctx = MethodContext(
        task,
        Reasoner(seven_plus_four()),
        _TrainedDM(["calculate 7 +  4."]),  # the first item's question, spelled otherwise
        DRRConfig(max_steps=2, max_reasoner_calls=4),
        MethodSettings(),
    )
    with pytest.raises(TrainedOnEvalItemsError, match=r"1 of the 2 items .*'i000'.*--force"):
        await run_eval(task, task.items, ["drr"], ctx, tmp_path / "a", progress=False)
    assert not (tmp_path / "a" / "records.jsonl").exists()  # refused before any item ran
    # methods without the DM are not refused, and the override reports it anyway
    await run_eval(task, task.items, ["cot"], ctx, tmp_path / "b", progress=False, plots=False)
    summary = await run_eval(
        task,
        task.items,
        ["drr"],
        ctx,
        tmp_path / "c",
        progress=False,
        plots=False,
        allow_trained_questions=True,
    )
    assert summary.method("drr").n == 2


# -- the oracle ------------------------------------------------------------------------------
def test_oracle_critic_scores_by_gold_and_equations():
    item = number_item("Calculate 7 + 4.", "11", id="q")
    task = _task(["Calculate 7 + 4."])
    critic = oracle_critic(item, task)
    contexts = [
        StepContext(item.question, (), "Answer: 11"),
        StepContext(item.question, (), "Answer: 12"),
        StepContext(item.question, (), "7 + 4 = 11"),
        StepContext(item.question, (), "7 + 4 = 12"),
        StepContext(item.question, (), "First add the numbers."),
        StepContext(item.question, ("7 + 4 = 11",), "The answer is 11."),
    ]
    assert critic.score(contexts) == [1.0, 0.0, 1.0, 0.0, 0.5, 1.0]
    accept, answer = DRRConfig().thresholds(critic.thresholds)
    assert 0.0 < accept < 0.5 <= answer <= 1.0  # neutral steps pass, wrong ones never do


def test_noisy_oracle_flips_right_and_wrong_verdicts_at_its_rate_and_repeats_itself():
    from drr_agent.evaluation.methods import noisy_oracle_critic

    item = number_item("Calculate 7 + 4.", "11", id="q")
    task = _task(["Calculate 7 + 4."])
    texts = [f"Answer: {n}" for n in range(400)] + ["First add the numbers."]
    contexts = [StepContext(item.question, (), t) for t in texts]
    truth = oracle_critic(item, task).score(contexts)
    assert noisy_oracle_critic(item, task, 0.0, seed=0).score(contexts) == truth
    for flip in (0.1, 0.3):
        noisy = noisy_oracle_critic(item, task, flip, seed=1)
        scores = noisy.score(contexts)
        assert scores == noisy.score(contexts)  # the same verdict for the same text
        assert scores[-1] == 0.5  # a neutral step stays neutral
        flipped = sum(s != t for s, t in zip(scores[:-1], truth[:-1], strict=True)) / 400
        assert abs(flipped - flip) < 0.06, flipped  # 400 draws: sd about 0.02
        assert noisy.thresholds == oracle_critic(item, task).thresholds
    other_seed = noisy_oracle_critic(item, task, 0.3, seed=2).score(contexts)
    assert other_seed != noisy_oracle_critic(item, task, 0.3, seed=1).score(contexts)


async def test_noisy_oracle_runs_the_oracle_graph_with_its_settings():
    task = _task(["Calculate 7 + 4."])
    item = task.items[0]

    def _ctx(task, flip: float = 0.0) -> MethodContext:
        return MethodContext(
            task,
            Reasoner(seven_plus_four()),
            None,
            DRRConfig(max_steps=3, max_reasoner_calls=8, max_retries_per_point=3),
            MethodSettings(oracle_flip=flip),
        )

    async def run(flip: float):
        return await METHODS["noisy_oracle"](item, _ctx(task, flip))

    exact = await run(0.0)
    assert exact.answer == "11" and exact.dm_calls == 0  # the oracle's run, as above
    assert (
        exact.details["thoughts"] == (await METHODS["oracle"](item, _ctx(task))).details["thoughts"]
    )


async def test_oracle_finds_the_right_answer_stepwise_misses():
    task = _task(["Calculate 7 + 4."])
    ctx = MethodContext(
        task,
        Reasoner(seven_plus_four()),
        None,
        DRRConfig(max_steps=3, max_reasoner_calls=8, max_retries_per_point=3),
        MethodSettings(),
    )
    item = task.items[0]
    # seven_plus_four: "7 + 4 = 11" then "Answer: 12"; once "7 + 4 = 11" is rejected at the
    # question, "4 + 7 = 11" then "Answer: 11"
    stepwise = await METHODS["stepwise"](item, ctx)
    oracle = await METHODS["oracle"](item, ctx)
    assert stepwise.answer == "12"
    assert oracle.answer == "11" and oracle.backtracks == 1 and oracle.dm_calls == 0
    texts = [t["text"] for t in oracle.details["thoughts"] if t["status"] == "rejected"]
    assert "Answer: 12" in texts


def test_traces_on_an_empty_part_reports_an_empty_file(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from drr_agent.cli import app

    monkeypatch.setattr(
        "drr_agent.cli.offline.make_reasoner", lambda *a, **k: Reasoner(seven_plus_four())
    )
    out = tmp_path / "traces.jsonl"
    args = ["traces", "--task", "basic_arithmetic", "--limit", "6", "--test", "2"]
    result = CliRunner().invoke(app, [*args, "--split", "dev", "--samples", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output  # no dev part asked for: nothing to sample
    assert "traces_total" in result.output and not out.exists()
