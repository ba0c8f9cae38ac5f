"""The DM's lookahead: the Reasoner's greedy forced answer after a step, read by the verifier.

Doubles for the logic (a scripted chat model, fixed verifier statistics); the real embedded
SmolLM2 for what the card rebuilds.
"""

from __future__ import annotations

import numpy as np
import pytest
from doubles import ANSWER_PREFIX, ScriptedChatModel

from drr_agent import DMLoadError, StepContext, StepPrompt
from drr_agent.reasoners.base import Reasoner
from drr_agent.scorers import FunctionScorer
from drr_agent.scorers.likelihood import (
    HEAD_INPUTS,
    LIKELIHOOD_FEATURES,
    LOOKAHEAD_HEAD_INPUTS,
    LikelihoodHead,
    LikelihoodScorer,
    ReasonerLikelihood,
    head_inputs,
    lookahead_features,
)
from drr_agent.scorers.lookahead import AnswerLookahead, LookaheadSpec

CLAIM = LIKELIHOOD_FEATURES.index("claim_prob")


class ClaimTable(ReasonerLikelihood):
    """Verifier statistics from a table of claim probabilities by candidate text; counts reads."""

    def __init__(self, claims: dict[str, float]) -> None:
        self.claims = claims
        self.model_name = "table"
        self.dtype = "float32"
        self.read: list[str] = []

    def features(self, items, *, claims=True):
        self.read += [i.candidate for i in items]
        out = np.zeros((len(items), len(LIKELIHOOD_FEATURES)))
        out[:, CLAIM] = [self.claims.get(i.candidate, 0.5) for i in items]
        return out


def _reasoner(answer: dict[str, str]) -> tuple[Reasoner, ScriptedChatModel]:
    """A Reasoner whose forced answer after a prefill is looked up by the prefill's last step."""

    def respond(call):
        last = (call.prefill or "").removesuffix(ANSWER_PREFIX).strip().split("\n")[-1]
        return answer.get(last, " no idea")

    model = ScriptedChatModel(respond=respond)
    return Reasoner(model, StepPrompt()), model


async def test_one_greedy_call_per_prefix_and_answers_remembered():
    reasoner, model = _reasoner({"2 + 3 = 5": " 5.", "2 + 3 = 6": " 6."})
    lookahead = AnswerLookahead(reasoner, max_tokens=7)
    items = [
        StepContext("Calculate 2 + 3.", (), "2 + 3 = 5"),
        StepContext("Calculate 2 + 3.", (), "2 + 3 = 6"),
        StepContext("Calculate 2 + 3.", (), "2 + 3 = 5"),  # the same prefix again
        StepContext("Calculate 2 + 3.", (), "Let me think."),
    ]
    assert await lookahead.aanswers(items) == ["5", "6", "5", "no idea"]
    assert len(model.calls) == 3
    for call in model.calls:
        assert call.kwargs["temperature"] == 0.0 and call.kwargs["max_tokens"] == 7
        assert call.stop == ["\n"] and call.prefill.endswith(ANSWER_PREFIX)
    assert lookahead.answers(items[:2]) == ["5", "6"] and len(model.calls) == 3  # remembered

    recorded = StepContext("Calculate 1 + 1.", ("1 + 1 = 2",), "So 2.")
    lookahead.remember([recorded], [None])
    assert lookahead.answers([recorded]) == [None] and len(model.calls) == 3

    small = AnswerLookahead(reasoner, remember_at_most=2)
    assert small.answers(items) == ["5", "6", "5", "no idea"]  # 3 asked, 2 kept
    assert small.answers(items[:1]) == ["5"] and len(model.calls) == 7  # the oldest went


def test_a_chat_style_reasoner_cannot_look_ahead():
    reasoner = Reasoner(ScriptedChatModel(), StepPrompt(style="chat"))
    with pytest.raises(ValueError, match="'prefill' prompt style"):
        AnswerLookahead(reasoner)


def test_each_question_and_answer_is_read_once():
    verifier = ClaimTable({"The answer is 5": 0.9, "The answer is 6": 0.1})
    items = [StepContext("Calculate 2 + 3.", (), f"step {i}") for i in range(4)]
    rows = lookahead_features(verifier, items, ["5", "6", "5", None])
    assert rows.tolist() == [[0.9, 1.0], [0.1, 1.0], [0.9, 1.0], [0.0, 0.0]]
    assert sorted(verifier.read) == ["The answer is 5", "The answer is 6"]
    assert lookahead_features(verifier, items[:1], [""]).tolist() == [[0.0, 0.0]]


def _lookahead_head() -> LikelihoodHead:
    """A head on `LOOKAHEAD_HEAD_INPUTS` whose labels follow the lookahead's claim alone."""
    rng = np.random.default_rng(0)
    n = 300
    features = rng.normal(size=(n, len(LIKELIHOOD_FEATURES)))
    look = np.column_stack([rng.uniform(size=n), np.ones(n)])
    y = (look[:, 0] > 0.5).astype(float)
    x = head_inputs(features, rng.uniform(0.2, 0.8, size=n), look)
    assert x.shape[1] == len(HEAD_INPUTS)
    return LikelihoodHead.fit(x, y, features=LOOKAHEAD_HEAD_INPUTS, lookahead=LookaheadSpec())


async def test_the_scorer_asks_the_reasoner_and_judges_its_answer():
    head = _lookahead_head()
    assert head.reads_lookahead and head.lookahead == LookaheadSpec()
    reasoner, model = _reasoner({"2 + 3 = 5": " 5.", "2 + 3 = 6": " 6."})
    verifier = ClaimTable({"The answer is 5": 0.95, "The answer is 6": 0.05})
    scorer = LikelihoodScorer(
        FunctionScorer(lambda c: 0.5, name="clf"), head, verifier, AnswerLookahead(reasoner)
    )
    items = [StepContext("Calculate 2 + 3.", (), s) for s in ("2 + 3 = 5", "2 + 3 = 6")]
    right, wrong = scorer.score(items)
    assert right > 0.8 and wrong < 0.2
    assert await scorer.ascore(items) == pytest.approx([right, wrong])
    assert len(model.calls) == 2  # the async path reused the sync path's answers


def test_a_lookahead_head_without_a_reasoner_is_refused():
    head = _lookahead_head().model_copy(update={"lookahead": None})
    with pytest.raises(DMLoadError, match="names no lookahead Reasoner"):
        LikelihoodScorer(FunctionScorer(lambda c: 0.5), head, ClaimTable({}))
    # a head that does not read it never builds one
    plain = LikelihoodHead.fit(
        head_inputs(np.random.default_rng(1).normal(size=(50, 13)), [0.5] * 50),
        [0.0, 1.0] * 25,
    )
    assert LikelihoodScorer(FunctionScorer(lambda c: 0.5), plain, ClaimTable({})).lookahead is None


def test_a_card_keeps_the_lookahead_spec():
    head = _lookahead_head().model_copy(
        update={"lookahead": LookaheadSpec(instruction="Answer briefly.", max_tokens=8)}
    )
    again = LikelihoodHead.model_validate_json(head.model_dump_json())
    assert again.lookahead == LookaheadSpec(instruction="Answer briefly.", max_tokens=8)


@pytest.mark.embedded
def test_real_reasoner_concludes_from_a_right_and_a_wrong_step():
    """The card's spec rebuilds the embedded SmolLM2; asked to conclude after a step, its
    greedy answer follows the step (the reason the lookahead predicts the labels)."""
    lookahead = LookaheadSpec().build()
    question = "Calculate 7 + 5."
    right, wrong = lookahead.answers(
        [StepContext(question, (), "7 + 5 = 12"), StepContext(question, (), "7 + 5 = 15")]
    )
    assert right == "12" and wrong == "15"
