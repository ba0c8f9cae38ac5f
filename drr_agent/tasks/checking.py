"""One answer checker for every task: what "correct" means in traces, labels and evaluations.

`normalize_answer` turns a free-text answer (as `StepFormat.extract_answer` returns it, or a
whole last step when the Reasoner wrote no answer marker) into the canonical form of its
`AnswerType`; `is_correct` compares a prediction with a gold answer in that form. Loaders use
`normalize_answer` on gold answers too, so gold and predictions go through the same rules.

Canonical forms:

- ``number``: the value as text: ``"18"``, ``"-5"``, ``"3.5"``, ``"0.5"``; a fraction whose
  decimal does not terminate stays a fraction (``"1/3"``). Thousands separators, currency
  signs, units and a trailing full stop are ignored ("$1,000." is ``"1000"``). When the text
  holds several numbers the **last** one is taken: the Reasoner states a result after the
  numbers it came from ("7 + 4 = 11", "x = 7", "so 3 boxes hold 12"), and an answer marker's
  text or a last step ends with the conclusion far more often than it starts with it.
- ``choice``: an upper-case letter (``"B"``) from "B", "(B)", "B)", "b. text", "The answer is
  B", or, when the option texts are given, the option text itself ("bank").
- ``boolean``: ``"yes"`` or ``"no"`` (from "Yes", "no.", "True", "false", "Yes, because ...").
- ``text``: case-folded, punctuation removed, whitespace collapsed.

Text that cannot be read as its type normalises to ``None``, which is never correct.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import get_args

from drr_agent.tasks.base import AnswerType

__all__ = ["is_correct", "normalize_answer", "parse_numbers"]

_ANSWER_TYPES = frozenset(get_args(AnswerType))
_LETTERS = string.ascii_uppercase

# A number: optional sign (only when the minus is not a binary operator, i.e. not right after a
# digit, letter or closing bracket: "2-7" is 2 and 7, "= -5" is -5), then 1,000-style groups or
# plain digits with an optional decimal part, then an optional "/denominator".
_NUMBER = re.compile(
    r"(?:(?<![\w)\]])(?P<sign>[-−]))?"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)?"
    r"(?P<dec>\.\d+)?"
    r"(?:\s*/\s*(?P<den>\d+)(?![\d.]))?"
)
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_EDGE_JUNK = " \t\r\n.,;:!?*_`'\"$"

_YES_FIRST = frozenset({"yes", "true", "correct"})
_NO_FIRST = frozenset({"no", "false", "incorrect"})
_NEGATIONS = frozenset({"not", "isn", "aren", "wasn", "weren", "doesn", "don", "didn", "never"})
_YES_ANYWHERE = frozenset({"yes", "true"})
_NO_ANYWHERE = frozenset({"no", "false"})


def _check_type(answer_type: str) -> None:
    if answer_type not in _ANSWER_TYPES:
        raise ValueError(
            f"unknown answer_type {answer_type!r}; expected one of {sorted(_ANSWER_TYPES)}"
        )


def parse_numbers(text: str) -> list[Fraction]:
    """Every number in ``text``, in order, as exact fractions ("3.50" -> 7/2, "1/2" -> 1/2).

    Handles signs, "1,000" thousands groups, decimals (".5" too), simple fractions "3/4" and
    LaTeX ``\\frac{3}{4}``. A fraction with denominator 0 is read as its numerator alone.
    """
    text = _LATEX_FRAC.sub(r"\1/\2", text)
    values: list[Fraction] = []
    for match in _NUMBER.finditer(text):
        int_part, dec_part = match.group("int"), match.group("dec")
        if int_part is None and dec_part is None:
            continue
        # ".5" is a number, but not the ".5" of "a.5"
        start = match.start()
        if int_part is None and not match.group("sign") and start and text[start - 1].isalnum():
            continue
        value = Fraction(Decimal((int_part or "0").replace(",", "") + (dec_part or "")))
        den = match.group("den")
        if den is not None and int(den) != 0:
            value /= int(den)
        if match.group("sign"):
            value = -value
        values.append(value)
    return values


def _format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den == 1:  # terminating decimal: write it out exactly, without trailing zeros
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return format(exact.normalize(), "f")
    return f"{value.numerator}/{value.denominator}"


def _normalize_number(text: str) -> str | None:
    numbers = parse_numbers(text)
    return _format_number(numbers[-1]) if numbers else None


def _normalize_text(text: str) -> str | None:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    text = " ".join(text.split())
    return text or None


def _normalize_boolean(text: str) -> str | None:
    words = re.findall(r"[a-z]+", unicodedata.normalize("NFKC", text).casefold())
    if not words:
        return None
    if words[0] in _YES_FIRST:
        return "yes"
    if words[0] in _NO_FIRST:
        return "no"
    # "The answer is yes": accept a yes/no word anywhere, but only when it is unambiguous
    if any(w in _NEGATIONS for w in words):
        return None  # "not true", "it is not the case that yes..."
    said_yes = any(w in _YES_ANYWHERE for w in words)
    said_no = any(w in _NO_ANYWHERE for w in words)
    if said_yes != said_no:
        return "yes" if said_yes else "no"
    return None


def _choice_letters(text: str, choices: Sequence[str] | None) -> tuple[str, ...]:
    """The letters ``text`` may mean: one, none, or several when it is an option text that
    the item lists more than once (24 CommonsenseQA items repeat an option verbatim)."""
    valid = _LETTERS[: len(choices)] if choices else _LETTERS
    s = unicodedata.normalize("NFKC", text).strip().strip(_EDGE_JUNK).strip()
    if not s:
        return ()

    def letter(raw: str) -> tuple[str, ...]:
        up = raw.upper()
        return (up,) if up in valid else ()

    options = [_normalize_text(option) for option in choices or ()]
    # 1. the letter alone: "B", "(B)", "[b]", "B)", "B."
    m = re.fullmatch(r"[(\[]?\s*([A-Za-z])\s*[)\]]?", s)
    if m:
        return letter(m.group(1))
    # 2. the option text itself: "bank"
    wanted = _normalize_text(s)
    exact = tuple(_LETTERS[i] for i, norm in enumerate(options) if norm and norm == wanted)
    if exact:
        return exact
    # 3. a letter marker followed by text: "b. bank", "B) bank", "(B) bank", "B: bank"
    m = re.match(r"\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]|([A-Za-z])[).:](?=\s)", s)
    if m:
        return letter(next(g for g in m.groups() if g))
    # 4. "The answer is B", "option (c)", "choice: D", "Answer: b."
    for m in re.finditer(
        r"(?i)\b(?:answer|option|choice)s?\b[^\w(\[]{0,12}(?:(?:is|would be)\b[^\w(\[]{0,6})?"
        r"(?:(?:option|choice)\s+)?(?:[(\[]\s*([A-Za-z])\s*[)\]]|([A-Za-z])\b)",
        s,
    ):
        bracketed, bare = m.group(1), m.group(2)
        if bracketed:
            return letter(bracketed)
        # a bare lower-case letter must end the phrase, so "the answer is a bank" is no "A"
        rest = s[m.end() :]
        if bare.isupper() or re.match(r"\s*(?:$|[.,;:!)])", rest):
            return letter(bare)
    # 5. one option text mentioned: "so they would go to the grocery store" (an option that
    #    is part of another mentioned one, "store", does not count)
    haystack = f" {wanted or ''} "
    found = {norm for norm in options if norm and f" {norm} " in haystack}
    found = {a for a in found if not any(a != b and f" {a} " in f" {b} " for b in found)}
    if len(found) == 1:
        (norm,) = found
        return tuple(_LETTERS[i] for i, option in enumerate(options) if option == norm)
    return ()


def normalize_answer(
    text: str | None, answer_type: AnswerType, choices: Sequence[str] | None = None
) -> str | None:
    """The canonical form of ``text`` for ``answer_type``, or ``None`` if it cannot be read.

    Args:
        text: A free-text answer ("$1,000.", "(B)", "Yes.", a whole last step...).
        answer_type: ``"number"``, ``"choice"``, ``"boolean"`` or ``"text"``.
        choices: Option texts of a multiple-choice item, in letter order. With them, the
            option text itself is accepted and letters past the last option are rejected.

    Raises:
        ValueError: ``answer_type`` is not an `AnswerType`.
    """
    _check_type(answer_type)
    if text is None:
        return None
    text = str(text)
    if not text.strip():
        return None
    if answer_type == "number":
        return _normalize_number(text)
    if answer_type == "choice":
        letters = _choice_letters(text, choices)
        return letters[0] if len(letters) == 1 else None
    if answer_type == "boolean":
        return _normalize_boolean(text)
    return _normalize_text(text)


def is_correct(
    predicted: str | None,
    gold: str,
    answer_type: AnswerType,
    choices: Sequence[str] | None = None,
) -> bool:
    """Whether ``predicted`` states the ``gold`` answer (see the module docstring for the rules).

    Numbers are compared as numbers (exactly, or within a relative 1e-6 for rounded
    decimals); everything else by canonical form. An unreadable prediction is not correct.

    Raises:
        ValueError: ``gold`` itself cannot be read as ``answer_type`` (a data error: the task
            loaders never produce such golds) or ``answer_type`` is unknown.
    """
    gold_norm = normalize_answer(gold, answer_type, choices)
    if gold_norm is None:
        raise ValueError(f"gold answer {gold!r} is not a valid {answer_type!r} answer")
    if answer_type == "choice":
        # an option text listed under several letters is right if any of them is the gold
        return predicted is not None and gold_norm in _choice_letters(str(predicted), choices)
    pred_norm = normalize_answer(predicted, answer_type, choices)
    if pred_norm is None:
        return False
    if answer_type == "number":
        pred_value, gold_value = Fraction(pred_norm), Fraction(gold_norm)
        return pred_value == gold_value or math.isclose(
            float(pred_value), float(gold_value), rel_tol=1e-6, abs_tol=0.0
        )
    return pred_norm == gold_norm
