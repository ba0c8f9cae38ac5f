"""DM training and step-level evaluation: metrics by hand, data checks, a real MiniLM run."""

from __future__ import annotations

import json
import math

import pytest
from doubles import arithmetic_steps

from drr_agent.offline.dm_eval import (
    DMReport,
    auroc,
    evaluate_dm,
    evaluate_scores,
    expected_calibration_error,
    youden_threshold,
)
from drr_agent.offline.records import StepExample
from drr_agent.offline.train import (
    TrainConfig,
    TrainingDataError,
    split_by_question,
    train_dm,
)
from drr_agent.scorers import DM_METADATA_FILE, FunctionScorer, HFScorer, StepContext
from drr_agent.scorers.hf import fit_to_window


def example(label: float, final: bool = False, item: str = "i0", index: int = 0) -> StepExample:
    return StepExample(
        task="t",
        split="train",
        item_id=item,
        sample_index=0,
        step_index=index,
        question=f"q {item}?",
        previous=[],
        step=f"step {index}",
        label=label,
        label_kind="outcome" if label in (0.0, 1.0) else "mc",
        final=final,
    )


# --------------------------------------------------------------------------- metrics by hand


def test_auroc_rank_formula():
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    # pos 0.5 beats neg 0.2, ties neg 0.5 (1/2); pos 0.9 beats both: 3.5 of 4 pairs
    assert auroc([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.875)
    assert auroc([0.3, 0.7], [1, 1]) is None


def test_ece_and_brier_by_hand():
    scores = [0.1, 0.15, 0.8, 0.95]
    rows = [example(0.0), example(0.5, index=1), example(1.0, index=2), example(1.0, index=3)]
    # bins: {0.1, 0.15} -> |0.125 - 0.25| x 2, {0.8} -> 0.2, {0.95} -> 0.05; over 4 steps
    assert expected_calibration_error(scores, [r.label for r in rows]) == pytest.approx(0.125)
    report = evaluate_scores(scores, rows)
    assert report.ece == pytest.approx(0.125)
    assert report.brier == pytest.approx((0.01 + 0.1225 + 0.04 + 0.0025) / 4)
    # a score of exactly 1.0 falls in the last bin
    assert expected_calibration_error([1.0, 0.0], [1.0, 0.0]) == 0.0


def test_youden_threshold_by_hand():
    # J = 0.5 at two midpoints (0.225 and 0.6): the one nearer 0.5 wins
    assert youden_threshold([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == (pytest.approx(0.6), 0.5)
    assert youden_threshold([0.3, 0.7], [0, 1]) == (pytest.approx(0.5), 1.0)
    assert youden_threshold([0.2, 0.6], [1, 1]) is None  # one class
    assert youden_threshold([0.9, 0.1], [0, 1]) is None  # no better than chance


def test_report_thresholds_per_subset():
    rows = [example(label, index=i) for i, label in enumerate([0.0, 0.0, 1.0, 1.0])]
    rows += [example(0.0, final=True, index=4), example(1.0, final=True, index=5)]
    scores = [0.1, 0.4, 0.35, 0.8, 0.3, 0.45]
    report = evaluate_scores(scores, rows)
    assert (report.n, report.n_final, report.positive_rate) == (6, 2, 0.5)
    assert report.accept_threshold == pytest.approx(0.6)
    assert report.answer_threshold == pytest.approx(0.375)  # midpoint of 0.3 and 0.45
    assert (report.accept_youden_j, report.answer_youden_j) == (0.5, 1.0)
    assert report.auroc == pytest.approx(8 / 9)
    assert report.auroc_non_final == pytest.approx(0.75)
    assert report.auroc_final == 1.0
    # at 0.5 the good steps scored 0.35 and 0.45 are rejected
    assert report.accuracy_at_half == pytest.approx(4 / 6)
    # at 0.6 (non-final) / 0.375 (final) only 0.35 is wrong
    assert report.accuracy_at_threshold == pytest.approx(5 / 6)
    assert report.threshold_notes == []
    assert report.thresholds == pytest.approx({"accept_threshold": 0.6, "answer_threshold": 0.375})
    text = report.to_markdown()
    assert "| AUROC (all steps) | 0.889 |" in text and "accept threshold | 0.600" in text


def test_threshold_fallbacks_are_explained():
    rows = [example(0.0, index=0), example(1.0, index=1), example(1.0, final=True, index=2)]
    report = evaluate_scores([0.2, 0.7, 0.9], rows)
    assert report.accept_threshold == pytest.approx(0.45)
    assert report.answer_threshold == report.accept_threshold
    assert report.answer_youden_j is None
    assert report.auroc_final is None
    assert "final steps are all positive" in report.threshold_notes[0]

    one_class = [example(1.0, index=i) for i in range(3)]
    report = evaluate_scores([0.2, 0.5, 0.9], one_class)
    assert report.auroc is None and "all 3 steps are positive" in str(report.auroc_note)
    assert (report.accept_threshold, report.answer_threshold) == (0.5, 0.5)
    assert any("no final steps" in n for n in report.threshold_notes)
    assert "n/a" in report.to_markdown()


def test_evaluate_scores_rejects_bad_input():
    rows = [example(0.0), example(1.0, index=1)]
    with pytest.raises(ValueError, match="1 scores for 2 examples"):
        evaluate_scores([0.5], rows)
    with pytest.raises(ValueError, match=r"score 1 \(i0 step 1\) is 1.5"):
        evaluate_scores([0.5, 1.5], rows)
    with pytest.raises(ValueError, match="zero examples"):
        evaluate_scores([], [])


def test_evaluate_dm_scores_contexts_in_batches():
    seen: list[StepContext] = []

    def judge(ctx: StepContext) -> float:
        seen.append(ctx)
        return 0.9 if ctx.candidate.endswith(("1", "3")) else 0.1

    rows = [example(float(i % 2), index=i) for i in range(5)]
    rows[2] = rows[2].model_copy(update={"previous": ["a", "b"]})
    report = evaluate_dm(FunctionScorer(judge), rows, batch_size=2)
    assert report.auroc == 1.0 and report.n == 5
    assert [c.candidate for c in seen] == [f"step {i}" for i in range(5)]
    assert seen[2] == StepContext("q i0?", ("a", "b"), "step 2")


def test_weighted_soft_bce_is_soft_cross_entropy():
    import torch
    import torch.nn.functional as F

    from drr_agent.offline.training.objective import WeightedSoftBCE, class_weights

    logits = torch.tensor([[0.2, 1.0], [1.5, -0.5], [0.0, 0.0]])
    labels = torch.tensor([1.0, 0.25, 0.5])
    targets = torch.stack([1 - labels, labels], dim=1)
    soft_ce = -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    plain = WeightedSoftBCE()({"logits": logits}, labels)
    assert float(plain) == pytest.approx(float(soft_ce))
    weighted = float(WeightedSoftBCE(w_bad=2.0, w_good=0.5)({"logits": logits}, labels))
    by_hand = -(targets * torch.tensor([2.0, 0.5]) * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    assert weighted == pytest.approx(float(by_hand))
    rows = [example(1.0), example(1.0), example(1.0), example(0.0)]
    assert class_weights(rows) == pytest.approx({"bad": 2.0, "good": 4 / 6})


# --------------------------------------------------------------------------- data checks


def test_split_by_question_keeps_questions_whole():
    rows = arithmetic_steps(20, seed=3)
    # two items asking the same question (spelled differently): never on two sides
    rows += [
        e.model_copy(update={"item_id": "dup", "question": "  what IS 1 +   1 + 1? "})
        for e in rows
        if e.item_id == "train-0"
    ]
    rows += [
        e.model_copy(update={"item_id": "dup2", "question": "What is 1 + 1 + 1?"})
        for e in rows
        if e.item_id == "train-1"
    ]
    train, held = split_by_question(rows, 0.25, seed=1)
    assert len(train) + len(held) == len(rows)
    key = lambda e: " ".join(e.question.split()).casefold()  # noqa: E731
    assert not {key(e) for e in train} & {key(e) for e in held}
    assert len({key(e) for e in held}) == round(0.25 * len({key(e) for e in rows}))
    for part in (train, held):
        assert {e.hard_label for e in part} == {0, 1}
    assert split_by_question(rows, 0.25, seed=1) == (train, held)
    assert split_by_question(rows, 0.0, seed=1) == (rows, [])


def test_split_that_cannot_have_both_classes():
    rows = [example(1.0, item="a", index=i) for i in range(10)]
    rows += [example(0.0, item="b", index=i) for i in range(10)]
    with pytest.raises(TrainingDataError, match=r"no split of 20 examples from 2 items"):
        split_by_question(rows, 0.5, seed=0)


@pytest.fixture
def no_training(monkeypatch):
    """Fail loudly if a check lets train_dm go as far as loading the base model."""
    import drr_agent.offline.train as train_module

    def refuse(*_args, **_kwargs):
        raise AssertionError("train_dm reached model loading; the check must fire first")

    monkeypatch.setattr(train_module, "load_base", refuse)


def test_too_few_examples_stop_before_training(no_training, tmp_path):
    rows = arithmetic_steps(2, seed=0)  # 12 steps
    with pytest.raises(TrainingDataError, match=r"too few.*got 12 examples from 2 items.*20"):
        train_dm(rows, TrainConfig(output_dir=tmp_path / "dm"), progress=False)


def test_one_class_stops_before_training(no_training, tmp_path):
    rows = [example(1.0, item=f"i{i}", index=0) for i in range(30)]
    with pytest.raises(
        TrainingDataError, match=r"one class only: 30 examples .*\(0 bad, 30 good\)"
    ):
        train_dm(rows, TrainConfig(output_dir=tmp_path / "dm"), progress=False)


def test_shared_items_and_occupied_output_stop_before_training(no_training, tmp_path):
    rows = arithmetic_steps(10, seed=0)
    question = rows[18].question
    with pytest.raises(TrainingDataError, match=r"1 questions are in both .* held-out"):
        train_dm(rows, TrainConfig(output_dir=tmp_path / "dm"), rows[18:24], progress=False)
    # a dev row asking a training question, spelled differently, is refused the same way
    dev = [rows[18].model_copy(update={"split": "dev", "question": f"  {question.upper()} "})]
    with pytest.raises(TrainingDataError, match=r"1 questions are in both .* dev data"):
        train_dm(rows, TrainConfig(output_dir=tmp_path / "dm"), dev=dev, progress=False)
    (tmp_path / "dm").mkdir()
    (tmp_path / "dm" / "keep.txt").write_text("an earlier DM")
    with pytest.raises(FileExistsError, match=r"not empty.*overwrite_output_dir"):
        train_dm(rows, TrainConfig(output_dir=tmp_path / "dm"), progress=False)


def test_config_checks():
    with pytest.raises(ValueError, match="early_stopping_patience needs an eval split"):
        TrainConfig(eval_fraction=0.0)
    assert TrainConfig(eval_fraction=0.0, early_stopping_patience=None).eval_fraction == 0
    with pytest.raises(ValueError, match="Extra inputs"):
        TrainConfig(epoch=3)  # type: ignore[call-arg]
    assert TrainConfig(output_dir="out/my-dm").dm_name == "my-dm"


def test_fit_to_window_keeps_question_candidate_and_latest_steps():
    class WordTokenizer:
        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [t.split() for t in texts]}

    ctx = StepContext("what is one plus two", ("s1 a b c", "s2 a b c", "s3 a b c"), "cand x")
    # window 24: 24 - 4 - min(5, 8) = 15, minus "Next step: cand x" (4) = 11 -> two steps of 5
    text, pair = fit_to_window(WordTokenizer(), ctx, 24)
    assert text == "what is one plus two"
    assert pair == "s2 a b c\ns3 a b c\nNext step: cand x"
    assert fit_to_window(WordTokenizer(), ctx, 16)[1] == "Next step: cand x"


# --------------------------------------------------------------------------- the real DM


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "arith-dm"
    config = TrainConfig(
        output_dir=out,
        name="arith-dm",
        epochs=2,
        learning_rate=1e-4,
        batch_size=16,
        max_length=64,
        seed=7,
    )
    held_out = arithmetic_steps(12, seed=2, split="held_out")
    result = train_dm(arithmetic_steps(34, seed=1), config, held_out=held_out, progress=False)
    return result, held_out


@pytest.mark.embedded
def test_trained_dm_folder_is_servable(trained):
    result, _ = trained
    out = result.output_dir
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", DM_METADATA_FILE} <= names
    assert "README.md" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "bad", "1": "good"}
    assert config["architectures"] == ["BertForSequenceClassification"]

    meta = json.loads((out / DM_METADATA_FILE).read_text())
    assert meta["positive_label"] == "good" and meta["name"] == "arith-dm"
    assert meta["threshold_source"] == "eval_split"
    assert meta["data"]["train"]["examples"] == result.n_train
    assert meta["metrics"]["held_out"]["auroc"] == result.held_out_report.auroc
    card = (out / "README.md").read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    assert "## Thresholds" in card and "Held out" in card

    scorer = HFScorer(out)  # no allow_untrained_head: it is a trained classifier now
    assert scorer.name == "arith-dm"
    assert scorer.positive_index == 1
    assert scorer.max_length == 64
    assert scorer.thresholds == result.thresholds == result.eval_report.thresholds
    assert all(0.0 < t < 1.0 for t in scorer.thresholds.values())


@pytest.mark.embedded
def test_trained_dm_learns_and_reports(trained):
    result, held_out = trained
    assert result.n_train + result.n_eval == 34 * 6
    assert result.n_train_items + result.n_eval_items == 34
    assert result.n_held_out == len(held_out)
    assert sum(result.class_counts.values()) == result.n_train
    assert result.class_weights is not None
    assert result.held_out_report is not None and result.eval_report is not None
    assert result.held_out_report.auroc is not None
    assert result.held_out_report.auroc > 0.75, result.to_markdown()
    assert result.wall_time_s < 120
    # the report describes the served model: rescoring the folder gives the same numbers
    again = evaluate_dm(HFScorer(result.output_dir), held_out)
    assert again.auroc == pytest.approx(result.held_out_report.auroc)
    assert isinstance(again, DMReport) and math.isfinite(again.brier)
    assert "Held out" in result.to_markdown()


def test_calibrate_thresholds_samples_and_picks_youden_thresholds():
    from drr_agent.offline.dm_eval import calibrate_thresholds

    steps = arithmetic_steps(60, seed=3)
    labels = {(e.question, tuple(e.previous), e.step): e.hard_label for e in steps}
    # a critic that says 0.3 to good steps and 0.2 to bad ones: uncalibrated, yet separating
    scorer = FunctionScorer(lambda c: 0.3 if labels[(c.question, c.steps, c.candidate)] else 0.2)

    report = calibrate_thresholds(scorer, steps, limit=50, seed=1)
    assert report.n == 50
    assert 0.2 < report.accept_threshold <= 0.3 and 0.2 < report.answer_threshold <= 0.3
    assert report.thresholds == {
        "accept_threshold": report.accept_threshold,
        "answer_threshold": report.answer_threshold,
    }
    assert calibrate_thresholds(scorer, steps, limit=50, seed=1) == report  # seeded sample
