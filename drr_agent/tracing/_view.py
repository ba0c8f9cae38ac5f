"""What every tracing view shares: the run as a `DRRResult`, and the words for its parts.

Tracing takes a run in the forms a user holds — ``graph.invoke``'s state, a `DRRResult`, or a
LangGraph ``StateSnapshot`` — and reads all of them as one `DRRResult` (`as_result`), so each
view is written once, against the typed result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drr_agent.state import DRRResult, Thought

MARKS = {
    "accepted": "●",
    "answer": "★",
    "rejected": "✗",
    "abandoned": "↩",
    "not_chosen": "○",
    "proposed": "?",
}
"""One glyph per thought status in the text tree."""

STATUS_WORDS = {
    "accepted": "accepted",
    "answer": "answer",
    "rejected": "rejected",
    "abandoned": "abandoned (backtracked)",
    "not_chosen": "not chosen",
    "proposed": "proposed (not decided yet)",
}

_SCORE_REASONS = ("score ", "final answer trusted", "final answer not trusted")


def as_result(
    run: Any, accept_threshold: float | None = None, answer_threshold: float | None = None
) -> DRRResult:
    """``run`` as a `DRRResult`, its thresholds overridden by the ones given.

    A run's own thresholds are those `decide` applied (stored in the state). When only the
    accept threshold is known, final answers are compared with it too, as
    `DRRConfig.thresholds` does.
    """
    if not isinstance(run, Mapping | DRRResult) and hasattr(run, "next") and hasattr(run, "values"):
        run = run.values  # a LangGraph StateSnapshot
    if isinstance(run, Mapping):
        run = DRRResult.from_state(run)
    elif not isinstance(run, DRRResult):
        raise TypeError(
            "expected a DRR state dict (graph.invoke's result), a DRRResult or a StateSnapshot, "
            f"got {type(run).__name__}"
        )
    accept = accept_threshold if accept_threshold is not None else run.accept_threshold
    answer = answer_threshold if answer_threshold is not None else run.answer_threshold
    if answer is None:
        answer = accept
    if (accept, answer) == (run.accept_threshold, run.answer_threshold):
        return run
    return run.model_copy(update={"accept_threshold": accept, "answer_threshold": answer})


def children(run: DRRResult) -> dict[int | None, list[Thought]]:
    """Thoughts by parent (``None`` = the question), in proposal order."""
    kids: dict[int | None, list[Thought]] = {}
    for t in run.thoughts:
        kids.setdefault(t["parent"], []).append(t)
    return kids


def one_line(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    if not flat:
        return "(empty)"
    return flat if len(flat) <= width else flat[: max(1, width - 1)] + "…"


def score_vs(thought: Mapping[str, Any], accept: float | None, answer: float | None) -> str:
    """``0.900 ≥ acc 0.50``; the score alone when the threshold is unknown; ``—`` if unscored.

    A thought carrying a final answer is compared with the answer threshold.
    """
    score = thought.get("score")
    if score is None:
        return "—"
    kind, threshold = ("ans", answer) if thought.get("answer") is not None else ("acc", accept)
    if threshold is None:
        return f"{score:.3f}"
    sign = "≥" if score >= threshold else "<"
    return f"{score:.3f} {sign} {kind} {threshold:.2f}"


def ranking(thought: Mapping[str, Any]) -> str:
    """``lp -0.42 → rank 0.775``: the Reasoner's mean token log-prob and the blended rank
    score (`policy.rank_score`), where the run had them; '' when ranking was by the DM alone
    (no log-prob, and a rank that is the score itself says nothing new)."""
    logprob, rank = thought.get("logprob"), thought.get("rank_score")
    parts = [] if logprob is None else [f"lp {logprob:.2f}"]
    if rank is not None and rank != thought.get("score"):
        parts.append(f"rank {rank:.3f}")
    return " → ".join(parts)


def score_and_rank(thought: Mapping[str, Any], accept: float | None, answer: float | None) -> str:
    """`score_vs`, followed by `ranking` when there is one."""
    rank = ranking(thought)
    return score_vs(thought, accept, answer) + (f"  {rank}" if rank else "")


def note(thought: Mapping[str, Any]) -> str:
    """The parts of the decision's reason that the score comparison does not already say."""
    parts = [p.strip() for p in str(thought.get("reason") or "").split(";")]
    return "; ".join(p for p in parts if p and not p.startswith(_SCORE_REASONS))


def outcome(run: DRRResult) -> str:
    if not run.finished:
        pending = sum(1 for t in run.thoughts if t["status"] == "proposed")
        return f"Run in progress ({len(run.thoughts)} thoughts, {pending} awaiting a decision)"
    if run.abstained or run.answer is None:
        return f"Abstained ({run.stop_reason}): {run.stop_detail}"
    return f"Answer: {run.answer} ({run.stop_reason}: {run.stop_detail})"


def path_text(run: DRRResult) -> str:
    return " → ".join(f"#{i}" for i in run.path) if run.path else "(empty)"


def thresholds_text(run: DRRResult) -> str:
    if run.accept_threshold is None:
        return "thresholds unknown (pass accept_threshold= / answer_threshold=)"
    return f"thresholds: accept {run.accept_threshold:.2f}, answer {run.answer_threshold:.2f}"


def counters_text(run: DRRResult) -> str:
    """``Reasoner calls 3 (tokens 120+45), DM calls 3, rejections 1, backtracks 0``."""
    c = run.counters
    return (
        f"Reasoner calls {c['reasoner_calls']} (tokens {c['prompt_tokens']}+"
        f"{c['completion_tokens']}), DM calls {c['dm_calls']}, "
        f"rejections {c['rejections']}, backtracks {c['backtracks']}"
    )
