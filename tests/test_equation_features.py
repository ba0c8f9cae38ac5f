"""A head that reads the step's own equations, recomputed (`EQUATION_FEATURES`).

Why a test of its own: these inputs are the light DM's only view of what a step *says* — the
Reasoner's token confidence reads how hard a question is, not which of its steps is right.
Doubles for the Reasoner's signals (synthetic log-prob statistics); the equation check and the
trainer are the real ones.
"""

from __future__ import annotations

import numpy as np
from doubles import labelled_step

from drr_agent.offline.records import StepExample
from drr_agent.offline.train import TrainConfig, train_dm
from drr_agent.offline.training.recipe import DM_RECIPES
from drr_agent.reasoners.signals import SampledToken, step_statistics
from drr_agent.scorers import load_dm
from drr_agent.scorers.base import StepContext
from drr_agent.scorers.likelihood import (
    EQUATION_FEATURES,
    HEAD_INPUTS,
    SAMPLED_AND_EQUATION_HEAD_INPUTS,
    LikelihoodScorer,
    equation_rows,
    head_inputs,
)
from drr_agent.scorers.parts import dm_parts


def _signals(claim: float) -> dict[str, float]:
    stats = step_statistics((SampledToken("4", -0.1, -0.1), SampledToken("2", claim, -0.05)))
    assert stats is not None
    return stats


def test_equation_rows_say_whether_a_step_computes_and_whether_it_computes_wrongly() -> None:
    steps = ["12 + 30 = 42", "12 + 30 = 43, so 43 - 1 = 42", "Let me add them.", "Answer: 42"]
    rows = equation_rows([StepContext("q", (), s) for s in steps])
    assert rows.tolist() == [[1, 0], [1, 1], [0, 0], [0, 0]]
    # the last columns of a head's input row, after every older input: stored heads keep theirs
    assert HEAD_INPUTS[-len(EQUATION_FEATURES) :] == EQUATION_FEATURES
    full = head_inputs(None, None, None, None, rows)
    assert np.isnan(full[:, : -len(EQUATION_FEATURES)]).all()
    assert full[:, -len(EQUATION_FEATURES) :].tolist() == rows.tolist()


def _example(question: str, step: str, label: float, split: str, claim: float) -> StepExample:
    return labelled_step(question, step, label, split=split, signals=_signals(claim))


def test_a_light_head_learns_that_a_wrong_equation_is_wrong_however_sure_its_writer(
    tmp_path,
) -> None:
    """Labels follow the arithmetic, not the confidence: the trained head scores a wrong sum
    written with certainty below a right one written with doubt, and runs no model."""
    rng = np.random.default_rng(0)
    examples = []
    for i in range(80):
        a, b = int(rng.integers(10, 99)), int(rng.integers(10, 99))
        wrong = bool(i % 2)
        step = f"{a} + {b} = {a + b + (int(rng.integers(1, 9)) if wrong else 0)}"
        split = "train" if i < 60 else "dev"
        examples.append(_example(f"q{i}", step, 0.0 if wrong else 1.0, split, rng.uniform(-3, 0)))
    config = TrainConfig.from_recipe(
        DM_RECIPES["light"],
        output_dir=tmp_path / "dm",
        likelihood_features=SAMPLED_AND_EQUATION_HEAD_INPUTS,
    )
    train = [e for e in examples if e.split == "train"]
    dev = [e for e in examples if e.split == "dev"]
    result = train_dm(train, config, dev=dev, progress=False)
    assert result.eval_report is not None and result.eval_report.auroc > 0.95
    dm = load_dm(tmp_path / "dm")
    assert isinstance(dm, LikelihoodScorer) and dm.head.reads_equations and dm.likelihood is None
    sure_wrong = StepContext("q", (), "17 + 25 = 43", _signals(-0.01))
    unsure_right = StepContext("q", (), "17 + 25 = 42", _signals(-2.5))
    right, wrong = dm.score([unsure_right, sure_wrong])
    assert right > dm.thresholds["accept_threshold"] > wrong
    parts = dm_parts(tmp_path / "dm")
    assert [p.role for p in parts] == ["reasoner log-probs", "equation check", "head"]
    assert sum(p.parameters or 0 for p in parts) == len(SAMPLED_AND_EQUATION_HEAD_INPUTS) + 1
