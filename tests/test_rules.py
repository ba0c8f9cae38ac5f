"""Rule critics: the arithmetic checker judges equations, never evaluates arbitrary code."""

from __future__ import annotations

import pytest

from drr_agent import DRRConfig, DRRResult, build_graph
from drr_agent.scorers import StepContext, arithmetic_check, arithmetic_scorer, check_equations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7 + 4 = 11", [True]),
        ("7 + 4 = 12", [False]),
        ("First 3 * (2 + 1) = 9, then 9 - 2 = 7.", [True, True]),
        ("9 - 2 = 8 but 1 + 1 = 2", [False, True]),
        ("-3 + 5 = 2", [True]),
        ("6 x 3 = 18 and 8 ÷ 2 = 4", [True, True]),
        ("7.5 / 2.5 = 3", [True]),
        ("Answer: 11", []),
        ("x = 4", []),  # no arithmetic on the left
        ("12 / 0 = 3", []),  # not judged
        ("__import__('os') + 1 = 2", []),  # only numbers reach the evaluator
        # a chain is judged link by link, as instruct models write it
        ("(12 + 24) * 6 = 36 * 6 = 216", [True, True]),
        ("(12 + 24) * 6 = 36 * 6 = 226", [True, False]),
        ("\\((12 + 24) \\times 6 = 36 \\times 6 = 216\\)", [True, True]),
        ("80 / 3 = 26.67", [True]),  # right to the places it writes
        ("80 / 3 * 3 = 26.6667 * 3 = 80.0001", [True, True]),
        ("4 + 20 + 7 + 8 = 48", [False]),
        ("\\[ 50,000 \\times 20 = 100,000 \\]", [False]),
        ("The total is 7 = 7.", []),  # no arithmetic on either side
        ("9x - 20 = 9 * 6 - 20 = 34", [True]),  # "20 = 9 * 6 - 20" is a cut term, unjudged
        ("pink = 4B + 22\n= 4 * 12 + 22 = 70", [True]),  # a chain stays on its line
    ],
)
def test_check_equations(text, expected):
    assert check_equations(text) == expected


def test_arithmetic_check_scores():
    ctx = lambda c: StepContext("What is 7 + 4?", (), c)  # noqa: E731
    assert arithmetic_check(ctx("7 + 4 = 11")) == 0.9
    assert arithmetic_check(ctx("7 + 4 = 11, so 11 - 1 = 9")) == 0.05
    assert arithmetic_check(ctx("Let me add the numbers.")) == 0.5
    assert arithmetic_check(ctx("7 + 4 = 12"), wrong=0.0) == 0.0


def test_arithmetic_scorer_rejects_wrong_steps_in_the_graph():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from drr_agent import Reasoner

    model = FakeListChatModel(responses=["7 + 4 = 12", "7 + 4 = 11", "Answer: 11"])
    scorer = arithmetic_scorer()
    assert scorer.thresholds == {"accept_threshold": 0.275, "answer_threshold": 0.275}
    graph = build_graph(Reasoner(model), scorer, DRRConfig(max_steps=4))
    result = DRRResult.from_state(graph.invoke({"question": "What is 7 + 4?"}))
    assert result.answer == "11"
    assert [(t["text"], t["status"]) for t in result.thoughts] == [
        ("7 + 4 = 12", "rejected"),
        ("7 + 4 = 11", "accepted"),
        ("Answer: 11", "answer"),
    ]
