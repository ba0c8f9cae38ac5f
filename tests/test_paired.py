"""Paired comparisons and critic efficiency (`drr_agent.evaluation.paired`), and their place in
the summary."""

from __future__ import annotations

import pytest

from drr_agent.evaluation.paired import (
    DEFAULT_PAIRS,
    compare,
    compare_all,
    critic_efficiency,
    mcnemar_exact,
    paired_bootstrap,
)
from drr_agent.evaluation.records import EvalRecord
from drr_agent.evaluation.summary import EvalSummary, summarize


def _rec(method: str, i: int, correct: bool, error: str | None = None) -> EvalRecord:
    return EvalRecord(
        run_id="r",
        task="t",
        method=method,
        item_id=f"i{i}",
        question="q",
        gold="1",
        answer="1" if correct else "2",
        correct=correct,
        error=error,
    )


def _method(method: str, right: int, n: int = 10) -> list[EvalRecord]:
    """``n`` records of ``method``, right on items ``i0 .. i{right-1}``."""
    return [_rec(method, i, i < right) for i in range(n)]


# -- McNemar ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 5, 0.0625),  # 2 * 1 / 32
        (5, 0, 0.0625),
        (1, 4, 0.375),  # 2 * (1 + 5) / 32
        (2, 10, 2 * (1 + 12 + 66) / 4096),
        (2, 0, 0.5),
        (3, 3, 1.0),  # 2 * 42 / 64 > 1: capped
        (0, 0, 1.0),
    ],
)
def test_mcnemar_exact_on_hand_cases(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


# -- paired bootstrap ------------------------------------------------------------------------
def test_paired_bootstrap_of_identical_vectors_is_exactly_zero():
    a = [True, False, True, True, False, False, True]
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_when_a_dominates_b():
    a = [True] * 8 + [False] * 2
    b = [True] * 2 + [False] * 8  # a is right wherever b is, and on 6 more items
    diff, low, high = paired_bootstrap(a, b, resamples=2000, seed=1)
    assert diff == pytest.approx(0.6)
    assert 0.0 < low < diff < high <= 1.0
    assert paired_bootstrap(a, b, resamples=2000, seed=1) == (diff, low, high)  # seeded
    assert paired_bootstrap([True] * 4, [False] * 4) == (1.0, 1.0, 1.0)


def test_paired_bootstrap_rejects_unpaired_input():
    with pytest.raises(ValueError):
        paired_bootstrap([True], [True, False])
    with pytest.raises(ValueError):
        paired_bootstrap([], [])


# -- compare ---------------------------------------------------------------------------------
def test_compare_pairs_by_item_and_counts_errors_as_wrong():
    drr = [
        _rec("drr", 0, True),  # not run by stepwise
        _rec("drr", 1, False),  # not run by stepwise
        _rec("drr", 2, True),  # win
        _rec("drr", 3, True),  # both right
        _rec("drr", 4, True, error="ReasonerError: down"),  # error: wrong, so a loss
        _rec("drr", 5, True),  # win
    ]
    stepwise = [
        _rec("stepwise", 5, False),  # out of order on purpose: pairing is by item id
        _rec("stepwise", 2, False),
        _rec("stepwise", 3, True),
        _rec("stepwise", 4, True),
        _rec("stepwise", 6, True),  # not run by drr
        _rec("stepwise", 7, True),
    ]
    row = compare([*drr, *stepwise], "drr", "stepwise", resamples=500)
    assert row is not None
    assert (row.n, row.wins, row.losses) == (4, 2, 1)
    assert (row.method_accuracy, row.baseline_accuracy) == (0.75, 0.5)
    assert row.diff == 0.25
    assert row.mcnemar_p == 1.0  # 2 * (1 + 3) / 8, capped
    assert row.ci_low <= row.diff <= row.ci_high
    assert compare([*drr, *stepwise], "drr", "cot") is None  # cot absent
    disjoint = [_rec("cot", 9, True)]
    assert compare([*drr, *disjoint], "drr", "cot") is None  # no shared item


def test_compare_all_keeps_only_pairs_that_ran():
    records = [*_method("drr", 5), *_method("cot", 3), *_method("lp_rank", 4)]
    rows = compare_all(records, ["cot", "drr", "lp_rank", "stepwise"], resamples=100)
    # stepwise is listed but has no records: its pairs are left out
    assert [(r.method, r.baseline) for r in rows] == [("drr", "cot"), ("drr", "lp_rank")]
    assert ("drr", "stepwise") in DEFAULT_PAIRS and ("stepwise", "cot") in DEFAULT_PAIRS


# -- critic efficiency -----------------------------------------------------------------------
def test_critic_efficiency_on_a_hand_built_set():
    records = [*_method("stepwise", 2), *_method("oracle", 6), *_method("drr", 4)]
    eff = critic_efficiency(records, resamples=2000)
    assert eff is not None
    assert eff.efficiency == 0.5  # (0.4 - 0.2) / (0.6 - 0.2)
    assert (eff.n, eff.method_accuracy, eff.floor_accuracy, eff.ceiling_accuracy) == (
        10,
        0.4,
        0.2,
        0.6,
    )
    assert eff.gap == pytest.approx(0.4)
    assert eff.ci_low is not None and eff.ci_high is not None
    assert eff.ci_low <= 0.5 <= eff.ci_high
    assert eff.resamples == 2000 and eff.note is None


def test_critic_efficiency_drops_resamples_without_a_gap():
    # the ceiling beats the floor on i0 only: a resample without i0 has gap 0 and is dropped,
    # about (2/3)^3 = 30% of them
    records = [*_method("stepwise", 0, 3), *_method("oracle", 1, 3), *_method("drr", 1, 3)]
    eff = critic_efficiency(records, resamples=4000)
    assert eff is not None and eff.efficiency == 1.0
    assert (eff.ci_low, eff.ci_high) == (1.0, 1.0)
    assert 0.25 * 4000 < eff.dropped < 0.35 * 4000


def test_critic_efficiency_is_none_without_a_gap_or_a_method():
    records = [*_method("stepwise", 3), *_method("oracle", 3), *_method("drr", 5)]
    eff = critic_efficiency(records)
    assert eff is not None
    assert eff.efficiency is None and eff.ci_low is None and eff.ci_high is None
    assert eff.gap == 0.0 and "oracle does not beat stepwise" in (eff.note or "")
    assert critic_efficiency([*_method("stepwise", 3), *_method("drr", 5)]) is None


# -- in the summary --------------------------------------------------------------------------
def test_summary_reports_paired_comparisons_and_critic_efficiency():
    records = [
        *_method("cot", 1),
        *_method("stepwise", 2),
        *_method("drr", 4),
        *_method("oracle", 6),
    ]
    methods = ["cot", "stepwise", "drr", "oracle"]
    summary = summarize(records, methods, run_id="r", task="t", reasoner="m")
    assert [(c.method, c.baseline) for c in summary.comparisons] == [
        ("drr", "stepwise"),
        ("drr", "cot"),
        ("oracle", "stepwise"),
        ("stepwise", "cot"),
    ]
    assert summary.critic_efficiency is not None and summary.critic_efficiency.efficiency == 0.5
    table = summary.to_markdown()
    assert "## Paired comparisons" in table
    assert "| method − baseline | n | diff [95% CI] | wins / losses | McNemar p |" in table
    drr = summary.comparisons[0]
    assert (
        f"| drr − stepwise | 10 | +0.200 [{drr.ci_low:+.3f}, {drr.ci_high:+.3f}] | 2 / 0 | 0.500 |"
        in table
    )
    assert "| drr − cot | 10 | +0.300 [" in table and "| 3 / 0 | 0.250 |" in table
    assert "Critic efficiency of drr (stepwise = 0, oracle = 1): 0.500 [" in table
    assert "n 10, accuracy drr 0.400, stepwise 0.200, oracle 0.600, gap 0.400." in table
    # the new fields round-trip, and a summary.json written before them still validates
    dumped = summary.model_dump(mode="json")
    assert EvalSummary.model_validate(dumped) == summary
    old = {k: v for k, v in dumped.items() if k not in ("comparisons", "critic_efficiency")}
    restored = EvalSummary.model_validate(old)
    assert restored.comparisons == [] and restored.critic_efficiency is None
    assert "Paired comparisons" not in restored.to_markdown()


def test_seeds_summary_mean_and_sd_by_hand():
    from drr_agent.evaluation.records import EvalRecord
    from drr_agent.evaluation.seeds import summarize_seeds
    from drr_agent.evaluation.summary import summarize

    def run(right_drr: int, right_stepwise: int) -> object:
        records = [
            EvalRecord(
                run_id="r",
                task="t",
                method=m,
                item_id=f"i{i}",
                question="q",
                gold="1",
                correct=i < right,
            )
            for m, right in (("drr", right_drr), ("stepwise", right_stepwise))
            for i in range(10)
        ]
        return summarize(records, ["drr", "stepwise"], run_id="r", task="t", reasoner="x")

    spread = summarize_seeds({0: run(6, 5), 1: run(8, 5), 2: run(7, 5)})
    drr = next(s for s in spread.methods if s.name == "drr")
    assert drr.values == [0.6, 0.8, 0.7] and abs(drr.mean - 0.7) < 1e-12
    assert abs(drr.sd - 0.1) < 1e-12  # sample sd of 0.6, 0.8, 0.7
    diff = next(s for s in spread.differences if s.name == "drr − stepwise")
    assert [round(v, 6) for v in diff.values] == [0.1, 0.3, 0.2]
    assert "| drr | 0.700 ± 0.100 |" in spread.to_markdown()
    single = summarize_seeds({3: run(6, 5)})
    assert single.methods[0].sd is None
