"""The routing policy of the `decide` node, as a pure function.

Given the thought tree with the latest candidates scored, `decide` returns the route —
**continue** (accept the best-ranked passing candidate, see `rank_score`, think on),
**backtrack** (reject the candidates and retry at this point; after ``max_retries_per_point``
rejections there, pop back to the parent),
**answer** (a candidate carries a final answer the DM trusts) or **stop** (a budget is spent:
answer with the best-scored final answer seen, or abstain). Keeping it free of I/O makes every
rule unit-testable and lets the sync and async graph paths share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from drr_agent.config import DRRConfig
from drr_agent.state import Counters, DecisionEvent, Route, StopReason, Thought

_OPEN_REJECTION = ("rejected", "abandoned")


@dataclass
class Decision:
    """Outcome of one `decide` step: the route and the state changes it implies."""

    route: Route
    changed: list[Thought]
    path: list[int]
    counters: Counters
    answer: str | None = None
    answer_thought: int | None = None
    abstained: bool = False
    stop_reason: StopReason | None = None
    stop_detail: str | None = None
    event: DecisionEvent = field(default_factory=lambda: DecisionEvent())  # type: ignore[typeddict-item]

    @property
    def finished(self) -> bool:
        return self.route in ("answer", "stop")


def rank_score(score: float | None, logprob: float | None, dm_weight: float) -> float | None:
    """The score a passing candidate is ranked by: ``β·score + (1−β)·exp(logprob)``.

    ``β`` is ``DRRConfig.dm_weight``; ``exp`` of the mean token log-prob is the Reasoner's
    per-token probability, in [0, 1] like the DM's score. ``β = 1`` or no log-prob gives the
    DM's score itself (not a float recomputation of it), so ``dm_weight=1`` ranks exactly as
    the DM alone does; an unscored thought has no rank.
    """
    if score is None or logprob is None or dm_weight >= 1.0:
        return score
    return dm_weight * score + (1.0 - dm_weight) * math.exp(logprob)


def _rank(thought: Thought) -> float:
    """What `decide` ranks by: the thought's ``rank_score``, else (older trees) its score."""
    rank = thought.get("rank_score")
    return rank if rank is not None else thought["score"] or 0.0


def rejections_at(tree: list[Thought], tip: int | None) -> int:
    """Rejected or abandoned thoughts proposed at point ``tip`` (None = the question)."""
    return sum(1 for t in tree if t["parent"] == tip and t["status"] in _OPEN_REJECTION)


def rejected_texts(tree: list[Thought], tip: int | None) -> list[str]:
    """Distinct texts rejected at point ``tip``, oldest first (for the Reasoner's prompt)."""
    seen: dict[str, None] = {}
    for t in tree:
        if t["parent"] == tip and t["status"] in _OPEN_REJECTION and t["text"]:
            seen.setdefault(t["text"], None)
    return list(seen)


def _no_way_back(tip: int | None, counters: Counters, config: DRRConfig) -> bool:
    """Whether running out of retries at ``tip`` ends the run instead of popping back."""
    return tip is None or counters["backtracks"] >= config.max_backtracks


def last_step_allowed(
    tree: list[Thought], path: list[int], counters: Counters, config: DRRConfig
) -> bool:
    """Whether the budget allows one more step only: the next `reason` call is the run's last
    chance to propose, so (with ``force_final_answer``) it should ask for the final answer.

    That is so when the step would reach ``max_steps``, when one Reasoner call is left, or on
    the last retry at a point with no way back: at the question (nothing to backtrack to) or
    once ``max_backtracks`` is spent, ``max_retries_per_point`` rejections at the tip stop the
    run. Without that last rule, a run whose first steps the critic keeps rejecting ends with
    no final answer at all, and ``on_budget_exhausted="answer_best"`` has nothing to answer
    with. That rule needs a step the critic rejected at the point itself: a first attempt
    (the Reasoner's own next step, its greedy one under ``greedy_first``) and the first retry
    after a backtrack stay steps, for a critic that accepts them to build on. A point spent
    with no final answer anywhere in the tree gets one closing call that asks for it
    (`_closing_call_due`): with ``candidates_per_step >= max_retries_per_point`` the first call
    can spend a point.
    """
    if len(path) + 1 >= config.max_steps:
        return True
    if counters["reasoner_calls"] + 1 >= config.max_reasoner_calls:
        return True
    if config.on_point_spent == "best":
        return False  # a spent point accepts its best candidate: the run goes on from there
    tip = path[-1] if path else None
    if not _no_way_back(tip, counters, config):
        return False  # a rejection here still has a way back
    rejected = rejections_at(tree, tip)
    if rejected >= config.max_retries_per_point:
        return True  # the closing call of a spent point (`_closing_call_due`)
    rejected_here = any(t["parent"] == tip and t["status"] == "rejected" for t in tree)
    return rejected_here and rejected + config.candidates_per_step >= config.max_retries_per_point


def _closing_call_due(tree: list[Thought], count: int, config: DRRConfig) -> bool:
    """Whether a spent point with no way back gets one closing call that asks for the answer.

    Only when the run would otherwise end with nothing to answer (``answer_best`` finds no
    final answer anywhere in the tree) and none was made at this point yet — with several
    candidates per call a point can be spent by its very first call, before
    `last_step_allowed`'s last-retry rule could ask for the answer.
    """
    if not config.force_final_answer or config.on_budget_exhausted != "answer_best":
        return False
    if any(t["answer"] is not None for t in tree):
        return False
    return count < config.max_retries_per_point + config.candidates_per_step


def _verdict(
    thought: Thought, path_texts: set[str], accept: float, answer: float
) -> tuple[bool, str]:
    """Whether a candidate passes, and why (the reason is recorded on the thought)."""
    score = thought["score"]
    if not thought["text"]:
        return False, f"empty step: {thought['reason']}" if thought["reason"] else "empty step"
    if thought["text"] in path_texts:
        return False, "repeats a step already on the path"
    if score is None:
        return False, "not scored"
    if thought["answer"] is not None:
        if score >= answer:
            return True, f"final answer trusted: score {score:.3f} >= {answer:.3f}"
        return False, f"final answer not trusted: score {score:.3f} < {answer:.3f}"
    if score >= accept:
        return True, f"score {score:.3f} >= {accept:.3f}"
    return False, f"score {score:.3f} < {accept:.3f}"


def _best_at_spent_point(
    tree: list[Thought],
    changed: dict[int, Thought],
    path: list[int],
    path_texts: set[str],
    config: DRRConfig,
) -> Thought | None:
    """Under ``on_point_spent="best"``: once ``max_retries_per_point`` candidates at the tip
    were rejected, the best-ranked of them (the greedy one, proposed first, unless another
    beats it by ``greedy_margin``), re-marked as passing; ``None`` before that, or when none
    is usable (empty, unscored, a repeat of the path)."""
    tip = path[-1] if path else None
    merged = [changed.get(t["id"], t) for t in tree]
    here = [t for t in merged if t["parent"] == tip and t["status"] in _OPEN_REJECTION]
    if len(here) < config.max_retries_per_point:
        return None
    usable = [
        t
        for t in here
        if t["status"] == "rejected"
        and t["text"]
        and t["score"] is not None
        and t["text"] not in path_texts
    ]
    if not usable:
        return None
    greedy = min(usable, key=lambda t: t["id"])
    best = max(usable, key=_rank)
    if best is not greedy and _rank(best) < _rank(greedy) + config.greedy_margin:
        best = greedy
    which = "the first (greedy) candidate" if best is greedy else "the best-ranked candidate"
    chosen = Thought(**best)
    chosen["status"] = "proposed"
    chosen["reason"] += f"; chosen at a spent point: {which} of {len(here)} (on_point_spent='best')"
    return chosen


def decide(
    tree: list[Thought],
    path: list[int],
    pending: list[int],
    counters: Counters,
    config: DRRConfig,
    accept: float,
    answer: float,
) -> Decision:
    """Route after the candidates in ``pending`` have been scored."""
    counters = Counters(**counters)
    path = list(path)
    path_texts = {tree[i]["text"] for i in path}
    changed: dict[int, Thought] = {}
    passed: list[Thought] = []
    for tid in pending:
        ok, why = _verdict(tree[tid], path_texts, accept, answer)
        thought = Thought(**tree[tid])
        thought["reason"] = why
        thought["status"] = "proposed" if ok else "rejected"
        changed[tid] = thought
        if ok:
            passed.append(thought)
        else:
            counters["rejections"] += 1

    answers = [t for t in passed if t["answer"] is not None]
    chosen = max(answers or passed, key=_rank, default=None)
    if chosen is None and config.on_point_spent == "best":
        chosen = _best_at_spent_point(tree, changed, path, path_texts, config)
        if chosen is not None:
            changed[chosen["id"]] = chosen
    blended = any(t.get("rank_score") not in (None, t["score"]) for t in passed)
    for t in passed:
        if t is not chosen:
            t["status"] = "not_chosen"
            t["reason"] += "; a sibling ranked higher" if blended else "; a sibling scored higher"

    depth = len(path)

    def event(route: Route, **extra: Any) -> DecisionEvent:
        shown = chosen or (changed[pending[-1]] if pending else None)
        return DecisionEvent(
            type="drr.decision",
            route=route,
            thought=Thought(**shown) if shown else None,
            score=shown["score"] if shown else None,
            candidates=[
                {
                    "id": t["id"],
                    "text": t["text"],
                    "score": t["score"],
                    "logprob": t.get("logprob"),
                    "rank_score": t.get("rank_score"),
                    "status": t["status"],
                }
                for t in changed.values()
            ],
            depth=depth,
            **extra,
        )

    if chosen is not None and chosen["answer"] is not None:
        chosen["status"] = "answer"
        path.append(chosen["id"])
        return Decision(
            route="answer",
            changed=list(changed.values()),
            path=path,
            counters=counters,
            answer=chosen["answer"],
            answer_thought=chosen["id"],
            stop_reason="answered",
            stop_detail=f"trusted final answer: {chosen['reason']}",
            event=event("answer", answer=chosen["answer"]),
        )

    route: Route
    extra: dict[str, Any] = {}
    budget: tuple[StopReason, str] | None = None
    if chosen is not None:
        chosen["status"] = "accepted"
        path.append(chosen["id"])
        route = "continue"
        if len(path) >= config.max_steps:
            budget = ("max_steps", f"accepted path reached max_steps={config.max_steps}")
    else:
        route = "backtrack"
        tip = path[-1] if path else None
        merged = [changed.get(t["id"], t) for t in tree]
        count = rejections_at(merged, tip)
        if count >= config.max_retries_per_point:
            if _no_way_back(tip, counters, config) and _closing_call_due(merged, count, config):
                extra = {"closing": True}  # retry here once more, asking for the answer
            elif tip is None:
                budget = (
                    "exhausted",
                    f"{count} proposals rejected at the question and nothing to backtrack to",
                )
            elif counters["backtracks"] >= config.max_backtracks:
                budget = ("max_backtracks", f"max_backtracks={config.max_backtracks} reached")
            else:
                popped = Thought(**tree[tip])
                popped["status"] = "abandoned"
                popped["reason"] += f"; backtracked after {count} rejections below it"
                changed[tip] = popped
                path.pop()
                counters["backtracks"] += 1
                extra = {"popped": tip}
    if budget is None and counters["reasoner_calls"] >= config.max_reasoner_calls:
        budget = ("max_reasoner_calls", f"max_reasoner_calls={config.max_reasoner_calls} reached")

    if budget is None:
        return Decision(
            route=route,
            changed=list(changed.values()),
            path=path,
            counters=counters,
            event=event(route, **extra),
        )
    return _stop(tree, changed, path, counters, config, *budget, event=event)


def _stop(
    tree: list[Thought],
    changed: dict[int, Thought],
    path: list[int],
    counters: Counters,
    config: DRRConfig,
    reason: StopReason,
    detail: str,
    *,
    event: Any,
) -> Decision:
    """A budget is spent: answer with the best-scored final answer seen, or abstain."""
    merged = [changed.get(t["id"], t) for t in tree]
    best = None
    if config.on_budget_exhausted == "answer_best":
        with_answer = [t for t in merged if t["answer"] is not None and t["score"] is not None]
        best = max(with_answer, key=lambda t: t["score"] or 0.0, default=None)
    if best is None:
        why = (
            "no scored final answer seen"
            if config.on_budget_exhausted == "answer_best"
            else ("configured to abstain")
        )
        return Decision(
            route="stop",
            changed=list(changed.values()),
            path=path,
            counters=counters,
            abstained=True,
            stop_reason=reason,
            stop_detail=f"{detail}; abstained ({why})",
            event=event("stop", abstained=True, stop_reason=reason),
        )
    best = Thought(**best)
    best["status"] = "answer"
    best["reason"] += "; best-scored final answer when the budget ran out"
    changed[best["id"]] = best
    return Decision(
        route="stop",
        changed=list(changed.values()),
        path=path,
        counters=counters,
        answer=best["answer"],
        answer_thought=best["id"],
        stop_reason=reason,
        stop_detail=(
            f"{detail}; answered with the best-scored final answer (score {best['score']:.3f})"
        ),
        event=event("stop", answer=best["answer"], abstained=False, stop_reason=reason),
    )
