"""How questions are compared: a question's normalised key, and short hashes of questions.

Generated tasks repeat questions, and a split, a DM card and an evaluation must agree on when
two are the same: case and runs of whitespace are ignored (`question_key`). A DM card lists its
training questions by `question_hash`, so an evaluation can check overlap without the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["question_fingerprint", "question_hash", "question_key"]


def question_key(question: str) -> str:
    """A question as the split compares it: case-folded, whitespace runs collapsed."""
    return " ".join(question.split()).casefold()


def question_hash(question: str) -> str:
    """A short hash of one normalised question: what a DM card lists of its training
    questions (``training_questions``), so an evaluation can check overlap without the text."""
    return hashlib.sha256(question_key(question).encode()).hexdigest()[:12]


def question_fingerprint(questions: Iterable[str]) -> str:
    """A short hash of a set of questions (by `question_key`, order and repeats ignored)."""
    keys = sorted({question_key(q) for q in questions})
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
