"""Rule-based step critics: checkers written as code instead of trained.

A rule critic is the cheapest `StepScorer` there is and a useful baseline for a trained DM: on
arithmetic tasks a checker that recomputes every equation a step writes catches exactly the
"7 + 4 = 12" slips a small Reasoner makes. It knows nothing about steps without equations, so it
scores them neutrally and leaves the decision to the thresholds. Use it through
`arithmetic_scorer` (a `FunctionScorer`), alone or as a second opinion beside a DM.
"""

from __future__ import annotations

import ast
import itertools
import operator
import re
from collections.abc import Callable

from drr_agent.scorers.base import FunctionScorer, StepContext

__all__ = [
    "EQUATION",
    "arithmetic_check",
    "arithmetic_scorer",
    "check_equations",
    "plain_math",
]

_NUMBER = r"-?\d+(?:\.\d+)?"
_OPERATOR = r"[-+*/×x÷]"
# "3 + 4 * (2 - 1) = 7": an arithmetic expression (at least one operator), "=", a number
EQUATION = re.compile(
    rf"(?P<lhs>[(\s]*{_NUMBER}(?:[\s()]*{_OPERATOR}[\s(]*{_NUMBER}[\s)]*)+)\s*=\s*(?P<rhs>{_NUMBER})"
)
_TERM = rf"[( \t]*{_NUMBER}(?:[ \t()]*{_OPERATOR}[ \t(]*{_NUMBER}[ \t)]*)*"
# "(12 + 24) * 6 = 36 * 6 = 216": expressions or numbers joined by "=" on one line, each side
# judged against the next (an `EQUATION` alone reads "(12 + 24) * 6 = 36" and calls it wrong)
_CHAIN = re.compile(rf"{_TERM}(?:[ \t]*=[ \t]*{_TERM})+")
# a chain that starts right after an operator ("9x - 20 = 54 - 20": not "20 = 54 - 20") or
# glued to a word ("f(3) = 9", "x^2 = 4") starts inside a term it cannot read
_CUT_TERM = re.compile(r"(?:[-+*/×÷]|(?<![A-Za-z])x)[ \t]*$|[A-Za-z_^.]$")
_OPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _evaluate(node: ast.AST) -> float:
    """Evaluate numbers and + - * / only (never `eval`: the text comes from a model)."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError(f"not arithmetic: {ast.dump(node)}")


_LATEX = (
    (re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}"), r"((\1)/(\2))"),
    (re.compile(r"\\text\{[^{}]*\}|\\(?:left|right|[,;!]|quad)"), " "),
    (re.compile(r"\\(?:times|cdot)"), "*"),
    (re.compile(r"\\div"), "/"),
    (re.compile(r"\\[()\[\]]|\$"), " "),
    (re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), ""),  # 130,000 -> 130000
)


def plain_math(text: str) -> str:
    """``text`` with the LaTeX instruct models write arithmetic in made plain: ``\\times`` and
    ``\\cdot`` as ``*``, ``\\div`` as ``/``, ``\\frac{a}{b}`` as ``((a)/(b))``, ``\\text{…}``
    units, delimiters and thousands separators dropped — so "\\[ 80,000 \\times 3 = 240,000
    \\]" is checked like "80000 * 3 = 240000". Plain text passes unchanged."""
    for pattern, repl in _LATEX:
        text = pattern.sub(repl, text)
    return text


def check_equations(text: str) -> list[bool]:
    """Whether each equation ``<expression> = <expression or number>`` written in ``text`` is
    right: one verdict per ``=`` whose sides are not both bare numbers.

    A chain "(12 + 24) * 6 = 36 * 6 = 216" is judged link by link (two verdicts, both right),
    as instruct models write it. LaTeX arithmetic is read too (`plain_math`). A side that
    does not parse (unbalanced brackets, a word in between) or divides by zero leaves its
    links unjudged rather than wrong.
    """
    verdicts: list[bool] = []
    plain = plain_math(text)
    for match in _CHAIN.finditer(plain):
        chain = match.group(0)
        sides = [_side(part) for part in chain.split("=")]
        if _CUT_TERM.search(plain[: match.start() + len(chain) - len(chain.lstrip(" \t"))]):
            sides[0] = None
        for left, right in itertools.pairwise(sides):
            if left is None or right is None or not (left[2] or right[2]):
                continue
            verdicts.append(abs(left[0] - right[0]) <= _tolerance(left, right))
    return verdicts


def _side(text: str) -> tuple[float, int, bool] | None:
    """One side of an equation: its value, the decimal places it is written to (a bare
    number's; -1 for an expression) and whether it holds an operator; ``None`` if it does not
    evaluate."""
    expression = text.replace("×", "*").replace("x", "*").replace("÷", "/").strip()
    try:
        value = _evaluate(ast.parse(expression, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None
    bare = re.fullmatch(_NUMBER, expression) is not None
    places = len(expression.partition(".")[2]) if bare else -1
    return value, places, not bare


def _tolerance(left: tuple[float, int, bool], right: tuple[float, int, bool]) -> float:
    """How far two sides may differ: a bare number is right to the places it writes
    (80 / 3 = 26.67); two expressions agree to a thousandth of their size (rounded
    intermediates inside them)."""
    bare = [places for _, places, has_operator in (left, right) if not has_operator]
    if bare:
        places = max(bare)
        return (0.5 * 10**-places if places else 1e-6) + 1e-9
    return 1e-3 * max(abs(left[0]), abs(right[0]), 1.0)


def arithmetic_check(
    context: StepContext, *, right: float = 0.9, wrong: float = 0.05, unknown: float = 0.5
) -> float:
    """Score a candidate step by its equations: ``wrong`` if any is wrong, ``right`` if it
    writes at least one and all are right, ``unknown`` if it writes none."""
    verdicts = check_equations(context.candidate)
    if not verdicts:
        return unknown
    return right if all(verdicts) else wrong


def arithmetic_scorer(
    *, right: float = 0.9, wrong: float = 0.05, unknown: float = 0.5
) -> FunctionScorer:
    """`arithmetic_check` as a `StepScorer`.

    Its accept and answer thresholds lie halfway between ``wrong`` and ``unknown``: it rejects
    exactly the steps it caught computing wrongly and lets everything else through.
    """

    def check(context: StepContext) -> float:
        return arithmetic_check(context, right=right, wrong=wrong, unknown=unknown)

    threshold = (wrong + unknown) / 2
    return FunctionScorer(
        check,
        name="arithmetic-checker",
        thresholds={"accept_threshold": threshold, "answer_threshold": threshold},
    )
