"""The graph state: the question, the thought tree, the accepted path and the outcome.

State values are plain JSON-like dicts (``TypedDict``), not objects, so any LangGraph
checkpointer (in-memory, SQLite, Postgres) stores and restores them without custom
serialisers, and a notebook can print them as they are. `DRRResult` is the typed, validated
view of a finished run for users who prefer objects.

The thought tree is append-only: every proposed thought keeps its id (its index), its parent
(the accepted thought it extends, ``None`` at the question), its DM score, the Reasoner's
mean token log-prob and the blended score it was ranked by, and the decision taken on it.
Nodes return only the thoughts they add or change; `merge_thoughts` folds them in.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict  # pydantic (LangGraph's JSON schemas) needs it on 3.11

ThoughtStatus = Literal["proposed", "accepted", "rejected", "answer", "not_chosen", "abandoned"]
"""What happened to a thought.

``proposed``: waiting for the DM / `decide`. ``accepted``: on the path, the Reasoner thought on
from it. ``rejected``: scored below threshold (or empty), the Reasoner is told about it.
``answer``: carries the final answer the run returned. ``not_chosen``: passed, but a sibling in
the same batch scored higher. ``abandoned``: was accepted, then popped by a backtrack.
"""

Route = Literal["continue", "backtrack", "answer", "stop"]

StopReason = Literal[
    "answered",
    "max_steps",
    "max_reasoner_calls",
    "max_backtracks",
    "exhausted",
    "reasoner_error",
    "scorer_error",
]
"""Why a run ended: a trusted answer, a spent budget (``exhausted``: every alternative at the
question was rejected), or a failed dependency. ``stop_detail`` says it in words."""


class Thought(TypedDict):
    """One proposed thought node.

    ``score`` is the DM's (the thresholds apply to it); ``logprob`` the Reasoner's mean token
    log-prob (``None`` when not asked for or not returned); ``rank_score`` what `decide` ranks
    passing candidates by (`policy.rank_score`, ``None`` until scored). The graph writes both;
    they are optional keys only so that trees checkpointed before they existed still load.
    """

    id: int
    parent: int | None
    depth: int
    text: str
    answer: str | None
    score: float | None
    status: ThoughtStatus
    reason: str
    call: int
    completion_tokens: int
    logprob: NotRequired[float | None]
    rank_score: NotRequired[float | None]


class Counters(TypedDict):
    """Cost and control counters of one run."""

    reasoner_calls: int
    prompt_tokens: int
    completion_tokens: int
    dm_calls: int
    dm_items: int
    rejections: int
    backtracks: int


def merge_thoughts(current: list[Thought] | None, update: list[Thought] | None) -> list[Thought]:
    """Reducer: thoughts in ``update`` replace the same id, or extend the tree."""
    tree = list(current or [])
    for thought in update or []:
        index = thought["id"]
        if index < len(tree):
            tree[index] = thought
        elif index == len(tree):
            tree.append(thought)
        else:
            raise ValueError(f"thought id {index} skips ids (tree has {len(tree)} thoughts)")
    return tree


def new_counters() -> Counters:
    return Counters(
        reasoner_calls=0,
        prompt_tokens=0,
        completion_tokens=0,
        dm_calls=0,
        dm_items=0,
        rejections=0,
        backtracks=0,
    )


class DecisionEvent(TypedDict):
    """One custom stream event per decision (``graph.stream(..., stream_mode="custom")``).

    ``thought`` is the chosen candidate (or the last rejected one), ``candidates`` every
    candidate of this cycle with its score, log-prob, rank score and status, ``depth`` the
    accepted path's length before the decision. Terminal events add ``answer``/``abstained``/
    ``stop_reason``; a backtrack that pops adds ``popped`` (the abandoned thought's id); a
    failed dependency adds ``error``.
    """

    type: Literal["drr.decision"]
    route: Route
    thought: Thought | None
    score: float | None
    candidates: list[dict[str, Any]]
    depth: int
    accept_threshold: NotRequired[float]
    answer_threshold: NotRequired[float]
    answer: NotRequired[str | None]
    abstained: NotRequired[bool]
    stop_reason: NotRequired[StopReason]
    popped: NotRequired[int]
    error: NotRequired[str]


class DRRInput(TypedDict):
    """What a caller passes: ``{"question": "..."}``."""

    question: str


class DRRState(TypedDict):
    """Full state of a DRR run (also the output schema)."""

    question: str
    thoughts: NotRequired[Annotated[list[Thought], merge_thoughts]]
    path: NotRequired[list[int]]
    pending: NotRequired[list[int]]
    counters: NotRequired[Counters]
    answer: NotRequired[str | None]
    answer_thought: NotRequired[int | None]
    abstained: NotRequired[bool]
    stop_reason: NotRequired[StopReason | None]
    stop_detail: NotRequired[str | None]
    # the thresholds `decide` applied (config, else the DM's stored ones): traces show them
    accept_threshold: NotRequired[float]
    answer_threshold: NotRequired[float]


class ThoughtRecord(BaseModel):
    """Validated copy of a `Thought`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int
    parent: int | None
    depth: int
    text: str
    answer: str | None
    score: float | None
    status: ThoughtStatus
    reason: str
    call: int
    completion_tokens: int
    logprob: float | None = None
    rank_score: float | None = None


class DRRResult(BaseModel):
    """Typed view of a finished run: ``DRRResult.from_state(graph.invoke(...))``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    answer: str | None
    abstained: bool
    stop_reason: StopReason | None
    stop_detail: str | None
    path: list[int]
    thoughts: list[ThoughtRecord]
    reasoner_calls: int
    prompt_tokens: int
    completion_tokens: int
    dm_calls: int
    dm_items: int
    rejections: int
    backtracks: int
    accept_threshold: float | None = None
    answer_threshold: float | None = None

    @classmethod
    def from_state(cls, state: DRRState) -> DRRResult:
        counters = state.get("counters") or new_counters()
        return cls(
            question=state["question"],
            answer=state.get("answer"),
            abstained=bool(state.get("abstained", False)),
            stop_reason=state.get("stop_reason"),
            stop_detail=state.get("stop_detail"),
            path=list(state.get("path", [])),
            thoughts=[ThoughtRecord(**t) for t in state.get("thoughts", [])],
            accept_threshold=state.get("accept_threshold"),
            answer_threshold=state.get("answer_threshold"),
            **counters,
        )

    @property
    def accepted_steps(self) -> list[str]:
        """Texts of the accepted path, in order.

        Ends with the answer thought when the run answered from the path; a budget stop that
        answers with the best-scored answer seen elsewhere in the tree leaves the path as is.
        """
        by_id = {t.id: t for t in self.thoughts}
        return [by_id[i].text for i in self.path]
