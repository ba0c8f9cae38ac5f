"""The training rows before any model loads: counted, checked, and split by question.

Everything here runs in milliseconds on plain `StepExample` rows, so `train_dm` can refuse
data that cannot train a DM (too few rows, one class, questions shared with dev or test, no
usable eval split) before it spends minutes loading and training a model. The unit a split
keeps whole is the *question* (task + normalised text): a generated task repeats questions
under different item ids, and an eval part sharing questions with training flatters the DM.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from drr_agent.errors import DRRError
from drr_agent.offline.records import StepExample
from drr_agent.offline.training.config import LABELS, TrainConfig
from drr_agent.tasks.questions import question_key

__all__ = [
    "TrainingDataError",
    "check_training_data",
    "class_counts",
    "count_items",
    "describe",
    "question_group",
    "split_by_question",
]

_MAX_SPLIT_TRIES = 50


class TrainingDataError(DRRError, ValueError):
    """The training data cannot train a DM (too few examples, one class, leaking items)."""


def count_items(examples: Sequence[StepExample]) -> int:
    """Distinct ``(task, item_id)`` among ``examples`` (for summaries; splits go by question)."""
    return len({(e.task, e.item_id) for e in examples})


def question_group(example: StepExample) -> tuple[str, str]:
    """What a split must keep on one side: the task and the normalised question."""
    return (example.task, question_key(example.question))


def class_counts(examples: Sequence[StepExample]) -> dict[str, int]:
    """Hard-label counts (``bad`` / ``good``): soft labels count by ``label >= 0.5``."""
    good = sum(e.hard_label for e in examples)
    return {LABELS[0]: len(examples) - good, LABELS[1]: good}


def describe(examples: Sequence[StepExample]) -> str:
    """``N examples from M items (B bad, G good)``: what error messages and logs quote."""
    counts = class_counts(examples)
    return (
        f"{len(examples)} examples from {count_items(examples)} items "
        f"({counts['bad']} bad, {counts['good']} good)"
    )


def check_training_data(
    train: Sequence[StepExample],
    held_out: Sequence[StepExample] | None,
    config: TrainConfig,
    dev: Sequence[StepExample] | None = None,
) -> None:
    """Raise `TrainingDataError` for too few rows, a missing class, or questions that
    ``train`` shares with ``held_out`` or ``dev`` (their numbers would be inflated)."""
    if len(train) < config.min_examples:
        raise TrainingDataError(
            f"too few training examples: got {describe(train)}; need at least "
            f"{config.min_examples} (TrainConfig.min_examples). Label more traces first."
        )
    counts = class_counts(train)
    if min(counts.values()) == 0:
        missing = "good (label >= 0.5)" if counts["good"] == 0 else "bad (label < 0.5)"
        raise TrainingDataError(
            f"the training data has one class only: {describe(train)}; no {missing} steps. "
            "A DM needs both right and wrong steps: sample more traces per item, use a task "
            "where the Reasoner is partly right, or use Monte-Carlo labels."
        )
    for name, other in (("held-out (test)", held_out), ("dev", dev)):
        if not other:
            continue
        shared = {question_group(e) for e in train} & {question_group(e) for e in other}
        if shared:
            example = sorted(shared)[0]
            raise TrainingDataError(
                f"{len(shared)} questions are in both the training and the {name} data (e.g. "
                f"task {example[0]!r}, question {example[1]!r}); its numbers would be "
                "inflated. Split traces by question (drr traces --dev/--test) before labelling."
            )


def split_by_question(
    examples: Sequence[StepExample], eval_fraction: float, seed: int
) -> tuple[list[StepExample], list[StepExample]]:
    """Split ``examples`` into (train, eval) by normalised question, both with both classes.

    The fallback when no dev rows are given. By question, not by item: a generated task
    repeats questions under different item ids (``basic_arithmetic`` holds 242 distinct
    questions), and an eval part that shares questions with training flatters the DM.
    ``round(eval_fraction * questions)`` questions (at least one) go to the eval side, chosen
    by a seeded shuffle; when a draw leaves a side with one class, the next seed is tried (a
    few dozen times) before giving up with `TrainingDataError`. ``eval_fraction == 0``
    returns everything as train.
    """
    if eval_fraction == 0:
        return list(examples), []
    keys = sorted({question_group(e) for e in examples})
    if len(keys) < 2:
        raise TrainingDataError(
            f"an eval split needs at least 2 questions, got {describe(examples)}; "
            "pass dev rows, or set eval_fraction=0 (and early_stopping_patience=None)"
        )
    n_eval = min(max(1, round(eval_fraction * len(keys))), len(keys) - 1)
    for attempt in range(_MAX_SPLIT_TRIES):
        shuffled = list(keys)
        random.Random(seed + attempt).shuffle(shuffled)
        eval_keys = set(shuffled[:n_eval])
        train_part = [e for e in examples if question_group(e) not in eval_keys]
        eval_part = [e for e in examples if question_group(e) in eval_keys]
        if min(class_counts(train_part).values()) and min(class_counts(eval_part).values()):
            return train_part, eval_part
    raise TrainingDataError(
        f"no split of {describe(examples)} into {len(keys) - n_eval} training and {n_eval} "
        f"eval questions gives both sides good and bad steps ({_MAX_SPLIT_TRIES} seeded draws). "
        "Pass dev rows, raise eval_fraction, or add items."
    )
