"""Replay a checkpointed run: `replay` / `areplay` walk its LangGraph state history.

One `ReplayStep` per super-step: which node ran, the route its decision took (read from the
`DecisionRecord` the node appended to the state, not inferred), the thoughts it added or
changed, and the state and checkpoint config after it (to inspect, or to fork the run from).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from drr_agent.state import Counters, Route, Thought
from drr_agent.tracing._view import one_line

if TYPE_CHECKING:
    from langgraph.types import StateSnapshot


@dataclass(frozen=True)
class ReplayStep:
    """One super-step of a checkpointed run: the node that ran and what it changed.

    Attributes:
        index: Position in the replay (0 = the input).
        step: LangGraph's step number (``-1`` for the input).
        node: The node that ran (``__start__`` for the input, else ``reason``, ``score``,
            ``decide``, or a parent graph's node; ``a+b`` when several ran in parallel).
        route: For ``decide``: ``continue`` / ``backtrack`` / ``answer`` / ``stop``, as its
            `DecisionRecord` in the state says; ``stop`` also for a ``reason``/``score`` that
            abstained on a failed dependency; ``None`` for a step that decided nothing.
        added / changed: Thoughts this step appended to the tree / rewrote (scored, decided).
        popped: The thought a backtrack abandoned, if any.
        path / counters: The accepted path and the counters after the step.
        next: Nodes scheduled after this step (empty once the run ended).
        answer / abstained / stop_reason / stop_detail: The outcome, once the run ended.
        update: The node's raw state update, when the checkpointer kept it (a dict by node
            name when several nodes ran).
        values: The full state after the step (feed it to the drawing functions).
        config: The checkpoint config after the step: ``graph.get_state(step.config)``, or
            ``graph.invoke(None, step.config)`` to fork the run from here.
        error: The error of a step that failed (the last step of a crashed run).
    """

    index: int
    step: int
    node: str
    route: Route | None
    added: list[Thought]
    changed: list[Thought]
    popped: int | None
    path: list[int]
    counters: Counters | dict[str, int]
    next: tuple[str, ...]
    answer: str | None
    abstained: bool
    stop_reason: str | None
    stop_detail: str | None
    update: Any
    values: dict[str, Any]
    config: dict[str, Any]
    error: str | None = None

    @property
    def summary(self) -> str:
        """One line: ``[3] decide → backtrack: rejected #2 (0.200); popped #0; path []``."""
        head = f"[{self.index}] {self.node}"
        if self.route:
            head += f" → {self.route}"
        parts = []
        if self.added:
            parts.append(
                "proposed "
                + ", ".join(f"#{t['id']} {one_line(t['text'], 40)!r}" for t in self.added)
            )
        for t in self.changed:
            if t["id"] == self.popped:
                continue
            score = "" if t.get("score") is None else f" ({t['score']:.3f})"
            parts.append(
                f"{t['status'] if t['status'] != 'proposed' else 'scored'} #{t['id']}{score}"
            )
        if self.popped is not None:
            parts.append(f"popped #{self.popped}")
        if self.error:
            parts.append(f"error: {self.error}")
        if self.stop_reason and (self.route in ("answer", "stop")):
            outcome = "abstained" if self.abstained else f"answer {self.answer!r}"
            parts.append(f"{outcome} ({self.stop_reason})")
        parts.append(f"path {self.path}")
        return head + ": " + "; ".join(parts)


def _thread_and_start(thread_config: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The config to list the thread's history with, and the checkpoint to replay up to."""
    configurable = dict(thread_config.get("configurable") or {})
    if "thread_id" not in configurable:
        raise ValueError(
            "replay needs the run's thread: {'configurable': {'thread_id': ...}} "
            "(the graph must have been compiled with a checkpointer)"
        )
    start = configurable.pop("checkpoint_id", None)
    return {**thread_config, "configurable": configurable}, start


def _checkpoint_id(config: Mapping[str, Any] | None) -> str | None:
    if not config:
        return None
    return (config.get("configurable") or {}).get("checkpoint_id")


def _lineage(history: Sequence[StateSnapshot], start: str | None) -> list[StateSnapshot]:
    """The snapshots leading to ``start`` (default: the latest), oldest first.

    Following parent links rather than time order keeps a forked thread's other branches out.
    """
    if not history:
        return []
    by_id = {_checkpoint_id(s.config): s for s in history}
    current = by_id.get(start) if start else history[0]
    if current is None:
        raise ValueError(f"checkpoint {start!r} is not in this thread's history")
    chain = []
    while current is not None:
        chain.append(current)
        current = by_id.get(_checkpoint_id(current.parent_config))
    return chain[::-1]


def _replay_step(index: int, before: StateSnapshot, after: StateSnapshot | None) -> ReplayStep:
    tasks = list(before.tasks)
    if len(tasks) == 1:
        node, update = tasks[0].name, tasks[0].result
    else:  # a parent graph may run several nodes in one super-step
        node = "+".join(t.name for t in tasks) or "+".join(before.next) or "?"
        update = {t.name: t.result for t in tasks}
    errors = [str(t.error) for t in tasks if t.error is not None]
    error = "; ".join(errors) or None
    old = before.values or {}
    new = (after.values if after is not None else old) or {}
    old_tree = {t["id"]: t for t in old.get("thoughts") or []}
    added, changed = [], []
    for t in new.get("thoughts") or []:
        if t["id"] not in old_tree:
            added.append(t)
        elif old_tree[t["id"]] != t:
            changed.append(t)
    decided = (new.get("decisions") or [])[len(old.get("decisions") or []) :]
    record = decided[-1] if decided and after is not None else None
    return ReplayStep(
        index=index,
        step=int((before.metadata or {}).get("step", -1)),
        node=node,
        route=None if record is None else record["route"],
        added=added,
        changed=changed,
        popped=None if record is None else record["popped"],
        path=list(new.get("path") or []),
        counters=dict(new.get("counters") or {}),
        next=tuple(after.next) if after is not None else tuple(before.next),
        answer=new.get("answer"),
        abstained=bool(new.get("abstained", False)),
        stop_reason=new.get("stop_reason"),
        stop_detail=new.get("stop_detail"),
        update=update,
        values=dict(new),
        config=dict(after.config if after is not None else before.config),
        error=error,
    )


def _steps(chain: Sequence[StateSnapshot]) -> list[ReplayStep]:
    steps = [_replay_step(i, before, after) for i, (before, after) in enumerate(pairwise(chain))]
    if chain and chain[-1].next and any(t.error for t in chain[-1].tasks):
        steps.append(_replay_step(len(steps), chain[-1], None))  # the step that crashed
    return steps


def replay(graph: Any, thread_config: Mapping[str, Any]) -> list[ReplayStep]:
    """Replay a checkpointed run, one `ReplayStep` per super-step, oldest first.

    Walks ``graph.get_state_history(thread_config)`` along parent links from the thread's
    latest checkpoint (or from ``thread_config["configurable"]["checkpoint_id"]``, if given)
    back to the input. The ``decide`` steps' routes are the routes of the run's decision
    events, in order. A run that crashed ends with the failed step (``error`` set, nothing
    changed); resume it with ``graph.invoke(None, thread_config)``.

    Args:
        graph: The compiled graph, with the checkpointer the run used.
        thread_config: ``{"configurable": {"thread_id": ...}}`` of the run.
    """
    config, start = _thread_and_start(thread_config)
    history = list(graph.get_state_history(config))
    return _steps(_lineage(history, start))


async def areplay(graph: Any, thread_config: Mapping[str, Any]) -> list[ReplayStep]:
    """Async `replay` (for async checkpointers such as ``AsyncSqliteSaver``)."""
    config, start = _thread_and_start(thread_config)
    history = [s async for s in graph.aget_state_history(config)]
    return _steps(_lineage(history, start))
