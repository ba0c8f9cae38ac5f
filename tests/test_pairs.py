"""Pair metrics of a DM: sibling pairs, minimal pairs, pair accuracy, and their report rows."""

from __future__ import annotations

import re

import pytest

from drr_agent.offline.dm_eval import DMReport, evaluate_dm, evaluate_scores
from drr_agent.offline.labels import outcome_examples
from drr_agent.offline.pairs import minimal_pairs, pair_accuracy, sibling_pairs
from drr_agent.offline.records import SamplingSettings, StepExample, TraceRecord
from drr_agent.scorers.base import FunctionScorer, StepContext
from drr_agent.scorers.rules import arithmetic_scorer, check_equations

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def step(
    text: str,
    label: float,
    *,
    question: str = "q1",
    previous: tuple[str, ...] = (),
    final: bool = False,
    gold: str | None = None,
    sample: int = 0,
) -> StepExample:
    return StepExample(
        task="t",
        split="held_out",
        item_id=question.strip().lower(),
        sample_index=sample,
        step_index=len(previous),
        question=question,
        previous=list(previous),
        step=text,
        label=label,
        label_kind="outcome",
        final=final,
        gold=gold,
    )


# --------------------------------------------------------------------------- sibling pairs


def sibling_set() -> tuple[list[StepExample], list[float]]:
    rows = [
        (step("a", 1.0), 0.9),
        (step("b", 0.0), 0.2),
        (step("c", 0.0), 0.9),  # a tie with "a"
        (step("a", 1.0, sample=1), 0.0),  # a repeat: its first occurrence stands for it
        (step("d", 1.0), 0.5),  # labelled both ways at this prefix: left out
        (step("d", 0.0, sample=1), 0.5),
        (step("e", 1.0, previous=("a",)), 0.3),  # another prefix: both good, no pair
        (step("f", 1.0, previous=("a",)), 0.1),
        (step("g", 0.0, question=" Q1 "), 0.1),  # the same question, spaced and cased apart
        (step("h", 0.0, question="q2"), 1.0),  # another question: never paired with "a"
        (step("b", 1.0, previous=("x",)), 0.4),  # "b" at another prefix is a different step
    ]
    return [e for e, _ in rows], [s for _, s in rows]


def test_sibling_pairs_only_at_shared_prefixes_with_different_labels():
    examples, _ = sibling_set()
    pairs = sibling_pairs(examples)
    assert [(g.step, b.step) for g, b in pairs] == [("a", "b"), ("a", "c"), ("a", "g")]
    assert all(g.sample_index == 0 for g, _ in pairs)  # the first "a"
    assert sibling_pairs(examples[:1]) == []


def test_sibling_pair_accuracy_in_the_report():
    examples, scores = sibling_set()
    report = evaluate_scores(scores, examples)
    # a beats b, ties c (1/2), beats g: 2.5 of 3
    assert report.sibling_pairs == 3
    assert report.sibling_pair_accuracy == pytest.approx(2.5 / 3)
    assert report.minimal_pairs == 0 and report.minimal_pair_accuracy is None
    text = report.to_markdown()
    assert "| sibling-pair accuracy | 0.833 (3 pairs) |" in text
    assert "| minimal-pair accuracy | n/a (0 pairs) |" in text
    alone = evaluate_scores([0.5], examples[:1])
    assert (alone.sibling_pairs, alone.sibling_pair_accuracy) == (0, None)


# --------------------------------------------------------------------------- pair accuracy


def test_pair_accuracy_counts_ties_as_half():
    assert pair_accuracy([0.9, 0.5, 0.1], [0.1, 0.5, 0.9]) == pytest.approx(0.5)
    assert pair_accuracy([1.0, 1.0, 0.7, 0.2], [0.0, 1.0, 0.7, 0.1]) == pytest.approx(0.75)
    assert pair_accuracy([0.3], [0.4]) == 0.0
    with pytest.raises(ValueError, match="one each"):
        pair_accuracy([0.3, 0.2], [0.4])
    with pytest.raises(ValueError, match="zero pairs"):
        pair_accuracy([], [])


# --------------------------------------------------------------------------- minimal pairs

EQUATION_STEPS = [
    "8 - 1 = 7, so 7 apples are left.",
    "3 * 4 = 12 and 12 + 5 = 17",
    "1 - 1 = 0",
    "2.5 + 1 = 3.5",
]


def minimal_set(gold: str | None) -> list[StepExample]:
    previous = ("We start with 8 apples.",)
    rows = [step(s, 1.0, previous=previous, gold=gold) for s in EQUATION_STEPS]
    rows += [
        step(EQUATION_STEPS[0], 0.0, previous=previous, gold=gold, sample=1),  # a repeat
        step("8 - 1 = 9", 0.0, previous=previous, gold=gold),  # already wrong: no pair
        step("We start with 8 apples.", 1.0, gold=gold),  # no equation: no pair
        step("Answer: 7", 1.0, previous=previous, final=True, gold=gold),
    ]
    return rows


def _split_numbers(text: str) -> tuple[list[str], list[str]]:
    return _NUMBER.split(text), _NUMBER.findall(text)


def test_minimal_pairs_change_one_result_and_nothing_else():
    pairs = minimal_pairs(minimal_set(gold=None))
    assert [r.candidate for r, _ in pairs] == EQUATION_STEPS  # deduplicated, in order
    for right, wrong in pairs:
        assert (wrong.question, wrong.steps) == (right.question, right.steps)
        assert all(check_equations(right.candidate))
        assert check_equations(wrong.candidate).count(False) == 1
        right_text, right_numbers = _split_numbers(right.candidate)
        wrong_text, wrong_numbers = _split_numbers(wrong.candidate)
        assert wrong_text == right_text
        changed = [(a, b) for a, b in zip(right_numbers, wrong_numbers, strict=True) if a != b]
        assert len(changed) == 1
        assert abs(float(changed[0][1]) - float(changed[0][0])) in (1.0, 2.0)
    assert pairs == minimal_pairs(minimal_set(gold=None))  # deterministic
    assert [w.candidate for _, w in pairs] != [
        w.candidate for _, w in minimal_pairs(minimal_set(gold=None), seed=1)
    ]


def test_minimal_answer_pairs_need_a_numeric_gold():
    pairs = minimal_pairs(minimal_set(gold="7"))
    assert len(pairs) == 5
    right, wrong = pairs[-1]
    assert right == StepContext("q1", ("We start with 8 apples.",), "Answer: 7")
    assert wrong.steps == right.steps and wrong.candidate != "Answer: 7"
    assert wrong.candidate in {f"Answer: {n}" for n in (5, 6, 8, 9)}
    assert len(minimal_pairs(minimal_set(gold="yes"))) == 4
    negative = minimal_pairs([step("Answer: -1", 1.0, final=True, gold="-0.5")])
    assert negative[0][0].candidate == "Answer: -0.5"
    assert negative[0][1].candidate in {f"Answer: {n}" for n in ("-2.5", "-1.5", "0.5", "1.5")}


def test_minimal_pairs_limit_is_a_seeded_sample():
    everything = minimal_pairs(minimal_set(gold="7"), limit=None)
    two = minimal_pairs(minimal_set(gold="7"), limit=2)
    assert len(two) == 2 and all(p in everything for p in two)
    assert two == minimal_pairs(minimal_set(gold="7"), limit=2)


# --------------------------------------------------------------------------- evaluate_dm


def test_rule_critic_wins_every_equation_pair_and_a_constant_none():
    report = evaluate_dm(arithmetic_scorer(), minimal_set(gold=None))
    assert (report.minimal_pairs, report.minimal_pair_accuracy) == (4, 1.0)
    assert (report.minimal_pairs_final, report.minimal_pair_accuracy_final) == (0, None)

    # with a gold answer the rule critic cannot tell "Answer: 7" from "Answer: 8": ties
    report = evaluate_dm(arithmetic_scorer(), minimal_set(gold="7"))
    assert (report.minimal_pairs, report.minimal_pairs_final) == (5, 1)
    assert report.minimal_pair_accuracy == pytest.approx(4.5 / 5)
    assert report.minimal_pair_accuracy_final == 0.5
    assert "| minimal-pair accuracy (answers) | 0.500 (1 pairs) |" in report.to_markdown()

    constant = evaluate_dm(FunctionScorer(lambda c: 0.5), minimal_set(gold="7"))
    assert constant.minimal_pair_accuracy == 0.5
    assert constant.minimal_pair_accuracy_final == 0.5


def test_evaluate_dm_scores_pairs_in_the_same_batched_pass():
    seen: list[int] = []

    def record(context: StepContext) -> float:
        seen.append(1)
        return 0.5

    examples = minimal_set(gold="7")
    evaluate_dm(FunctionScorer(record), examples, minimal_pair_limit=3)
    assert len(seen) == len(examples) + 2 * 3
    seen.clear()
    report = evaluate_dm(FunctionScorer(record), examples, minimal_pair_limit=0)
    assert len(seen) == len(examples) and report.minimal_pairs == 0


# --------------------------------------------------------------------------- records


def test_gold_is_recorded_and_optional():
    trace = TraceRecord(
        task="t",
        split="train",
        item_id="i0",
        sample_index=0,
        question="What is 8 - 1?",
        gold="7",
        reasoner="r",
        sampling=SamplingSettings(
            temperature=0.7,
            max_tokens=64,
            seed=0,
            samples_per_item=1,
            prompt_style="prefill",
            instruction="",
        ),
        status="ok",
        steps=["8 - 1 = 7", "Answer: 7"],
        answer="7",
        correct=True,
    )
    assert [e.gold for e in outcome_examples([trace])] == ["7", "7"]
    old = step("a", 1.0).model_dump(exclude={"gold"})
    assert StepExample.model_validate(old).gold is None
    examples, scores = sibling_set()
    old_report = evaluate_scores(scores, examples).model_dump(
        exclude={
            "sibling_pairs",
            "sibling_pair_accuracy",
            "minimal_pairs",
            "minimal_pair_accuracy",
            "minimal_pairs_final",
            "minimal_pair_accuracy_final",
        }
    )
    assert DMReport.model_validate(old_report).sibling_pair_accuracy is None
