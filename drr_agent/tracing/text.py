"""The thought tree as text (`format_thought_tree`) and as a ``rich`` table (`thought_table`)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from drr_agent.tracing._view import (
    MARKS,
    STATUS_WORDS,
    as_result,
    children,
    counters_text,
    note,
    one_line,
    outcome,
    path_text,
    ranking,
    score_and_rank,
    score_vs,
    thresholds_text,
)

if TYPE_CHECKING:
    from rich.table import Table

    from drr_agent.state import DRRResult


def format_thought_tree(
    result_or_state: Any,
    *,
    accept_threshold: float | None = None,
    answer_threshold: float | None = None,
    width: int = 72,
    wrap: int | None = None,
) -> str:
    """The thought tree as indented text, one line per thought, children under their parent.

    Each line reads ``<glyph> #<id> <score vs threshold> [<ranking>] <status> <text> [<note>]``
    (the ranking, ``lp -0.42 → rank 0.775``, only where the run had log-probs) with glyphs
    ● accepted, ★ answer, ✗ rejected, ↩ abandoned by a backtrack, ○ not chosen (a sibling
    ranked higher), ? not decided yet. The footer gives the accepted path, the answer
    or abstention with the stop reason, and the counters.

    Args:
        result_or_state: ``graph.invoke``'s state, a `DRRResult` or a ``StateSnapshot``.
        accept_threshold / answer_threshold: The thresholds the run used (see module docs).
        width: Thought texts longer than this are cut with "…".
        wrap: Fit the tree into this many columns (a terminal's width; ``drr solve`` passes
            its own below 120): each thought's text and note then go on lines of their own
            under it, wrapped whole instead of cut, so an 80-column terminal shows every
            step in full (``width`` is not used).
    """
    run = as_result(result_or_state, accept_threshold, answer_threshold)
    if wrap is not None:
        return _wrapped_tree(run, wrap)
    accept, answer = run.accept_threshold, run.answer_threshold
    kids = children(run)
    path = set(run.path)
    lines = [f"Question: {one_line(run.question, 200)}", f"({thresholds_text(run)})"]

    def walk(parent: int | None, prefix: str) -> None:
        siblings = kids.get(parent, [])
        for n, t in enumerate(siblings):
            last = n == len(siblings) - 1
            branch = "└── " if last else "├── "
            status = t["status"]
            on_path = " [path]" if t["id"] in path else ""
            why = note(t)
            lines.append(
                f"{prefix}{branch}{MARKS.get(status, '?')} #{t['id']}  "
                f"{score_and_rank(t, accept, answer)}  "
                f"{STATUS_WORDS.get(status, status)}{on_path}  {one_line(t['text'], width)}"
                + (f"  [{why}]" if why else "")
            )
            walk(t["id"], prefix + ("    " if last else "│   "))

    walk(None, "")
    if not run.thoughts:
        lines.append("(no thoughts)")
    lines.append(f"Accepted path: {path_text(run)}")
    lines.append(outcome(run))
    lines.append(counters_text(run))
    return "\n".join(lines)


_MIN_TEXT_COLUMNS = 24
"""Wrapped text keeps at least this many columns, however deep the tree indents it."""


def _fill(text: str, first: str, rest: str, columns: int) -> list[str]:
    """``text`` wrapped into ``columns``: its first line after ``first``, the others after
    ``rest`` (a tree's prefixes), words kept whole unless one is longer than a line."""
    room = max(columns, max(len(first), len(rest)) + _MIN_TEXT_COLUMNS)
    return textwrap.wrap(
        text.strip() or "(empty)",
        width=room,
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,
    )


def _wrapped_tree(run: DRRResult, columns: int) -> str:
    """`format_thought_tree` in ``columns``: a line per thought (glyph, id, score, status),
    its text and note wrapped under it (see ``wrap`` there)."""
    accept, answer = run.accept_threshold, run.answer_threshold
    kids = children(run)
    path = set(run.path)
    lines = _fill(f"Question: {run.question}", "", "  ", columns)
    lines.append(f"({thresholds_text(run)})")

    def walk(parent: int | None, prefix: str) -> None:
        siblings = kids.get(parent, [])
        for n, t in enumerate(siblings):
            last = n == len(siblings) - 1
            below = prefix + ("    " if last else "│   ")
            # the text hangs under the glyph; a bar on its left leads on to the children
            body = below + ("│  " if kids.get(t["id"]) else "   ")
            status = t["status"]
            on_path = " [path]" if t["id"] in path else ""
            head = (
                f"{MARKS.get(status, '?')} #{t['id']}  {score_and_rank(t, accept, answer)}  "
                f"{STATUS_WORDS.get(status, status)}{on_path}"
            )
            lines.extend(_fill(head, prefix + ("└── " if last else "├── "), body, columns))
            lines.extend(_fill(" ".join((t["text"] or "").split()), body, body, columns))
            why = note(t)
            if why:
                lines.extend(_fill(f"[{why}]", body, body + " ", columns))
            walk(t["id"], below)

    walk(None, "")
    if not run.thoughts:
        lines.append("(no thoughts)")
    for footer in (f"Accepted path: {path_text(run)}", outcome(run), counters_text(run)):
        lines.extend(_fill(footer, "", "  ", columns))
    return "\n".join(lines)


def format_counters(result_or_state: Any) -> str:
    """A run's cost and control counters on one line: ``Reasoner calls 3 (tokens 120+45), DM
    calls 3, rejections 1, backtracks 0`` (the footer of `format_thought_tree`)."""
    return counters_text(as_result(result_or_state))


_ROW_STYLES = {
    "accepted": "green",
    "answer": "bold green",
    "rejected": "red",
    "abandoned": "yellow",
    "not_chosen": "dim",
    "proposed": "cyan",
}


def thought_table(
    result_or_state: Any,
    *,
    accept_threshold: float | None = None,
    answer_threshold: float | None = None,
) -> Table:
    """The thought tree as a ``rich`` table: one row per thought, in proposal order.

    Columns: id, parent (``-`` = the question), depth, score vs its threshold, then ``lp``
    (mean token log-prob) and ``rank`` (the blended score candidates were ranked by) when
    any thought has them, status, whether it is on the accepted path, text and the decision's
    note. The caption holds the accepted path, the answer or abstention with the stop reason
    and the thresholds (`format_counters` gives the cost). Print it with
    ``rich.print(table)`` (terminals and notebooks).
    """
    from rich.table import Table

    run = as_result(result_or_state, accept_threshold, answer_threshold)
    accept, answer = run.accept_threshold, run.answer_threshold
    table = Table(
        title=f"Thought tree — {one_line(run.question, 100)}",
        caption=f"Accepted path: {path_text(run)}. {outcome(run)}. {thresholds_text(run)}.",
        caption_justify="left",
    )
    ranked = any(ranking(t) for t in run.thoughts)
    columns = ("id", "parent", "depth", "score", *(("lp", "rank") if ranked else ()))
    for column in (*columns, "status", "path", "thought", "note"):
        table.add_column(column, overflow="fold", no_wrap=column not in ("thought", "note"))
    path = set(run.path)
    for t in run.thoughts:
        lp, rank = t.get("logprob"), t.get("rank_score")
        table.add_row(
            str(t["id"]),
            "-" if t["parent"] is None else str(t["parent"]),
            str(t["depth"]),
            score_vs(t, accept, answer),
            *(
                ("—" if lp is None else f"{lp:.2f}", "—" if rank is None else f"{rank:.3f}")
                if ranked
                else ()
            ),
            f"{MARKS.get(t['status'], '?')} {t['status']}",
            "✓" if t["id"] in path else "",
            one_line(t["text"], 200),
            note(t),
            style=_ROW_STYLES.get(t["status"]),
        )
    return table
