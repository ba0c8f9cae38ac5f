"""The graph state: the question, the thought tree, the accepted path and the outcome.

State values are plain JSON-like dicts (``TypedDict``), not objects, so any LangGraph
checkpointer (in-memory, SQLite, Postgres) stores and restores them without custom
serialisers, and a notebook can print them as they are. `DRRResult` is the typed, validated
view of a run in the same shape (it validates these very dicts, it does not copy them into
other classes).

The thought tree is append-only: every proposed thought keeps its id (its index), its parent
(the accepted thought it extends, ``None`` at the question), its DM score, the Reasoner's
mean token log-prob and the blended score it was ranked by, and the decision taken on it.
Nodes return only the thoughts they add or change; `merge_thoughts` folds them in.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
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
    "question_too_long",
]
"""Why a run ended: a trusted answer, a spent budget (``exhausted``: every alternative at the
question was rejected), a failed dependency, or a prompt longer than the Reasoner's context
(``question_too_long``: counted before sending, or refused by the server; never retried).
``stop_detail`` says it in words, with the limit."""


@with_config(ConfigDict(extra="forbid"))
class Thought(TypedDict):
    """One proposed thought node.

    ``score`` is the DM's (the thresholds apply to it); ``logprob`` the Reasoner's mean token
    log-prob (``None`` when not asked for or not returned); ``rank_score`` what `decide` ranks
    passing candidates by (`policy.rank_score`, ``None`` until scored); ``signals`` the
    statistics of the Reasoner's token log-probs a light DM reads
    (`drr_agent.reasoners.signals`, ``None`` when not asked for). The graph writes them; they
    are optional keys only so that trees checkpointed before they existed still load.
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
    signals: NotRequired[dict[str, float] | None]


@with_config(ConfigDict(extra="forbid"))
class Counters(TypedDict):
    """Cost and control counters of one run."""

    reasoner_calls: int
    model_calls: NotRequired[int]
    """Requests to the Reasoner's model behind ``reasoner_calls``: a block step cut short (a
    heading, an open display) is continued in further requests (`Proposal.calls`)."""
    prompt_tokens: int
    completion_tokens: int
    dm_calls: int
    dm_items: int
    """Steps the DM read. A repeat of a step scored at the same point takes that score again
    and is not read (`build_graph`'s score node)."""
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
        model_calls=0,
        prompt_tokens=0,
        completion_tokens=0,
        dm_calls=0,
        dm_items=0,
        rejections=0,
        backtracks=0,
    )


class DecisionRecord(TypedDict):
    """One decision as the state keeps it: the route taken, on which thought, at which depth.

    `decide` appends one per cycle, and ``reason``/``score`` one when they stop the run on a
    failed dependency, so a replay or a trace reads each route instead of inferring it (the
    stream's `DecisionEvent` says the same, with the candidates in full). ``thought`` is the
    chosen candidate (or the last rejected one), ``popped`` the thought a backtrack abandoned.
    """

    route: Route
    thought: int | None
    depth: int
    popped: int | None


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
    decisions: NotRequired[Annotated[list[DecisionRecord], operator.add]]
    # the thresholds `decide` applied (config, else the DM's stored ones): traces show them
    accept_threshold: NotRequired[float]
    answer_threshold: NotRequired[float]


class DRRResult(BaseModel):
    """Typed, validated view of a run: ``DRRResult.from_state(graph.invoke(...))``.

    It has the state's own shape — the same `Thought` dicts, the same nested `Counters`, the
    same `DecisionRecord` log — so there is one definition of each, and ``model_dump()`` is
    a state again. A run still in progress (an interrupted or checkpointed one) is a result
    too: ``stop_reason`` is ``None`` until it ends.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    answer: str | None = None
    abstained: bool = False
    stop_reason: StopReason | None = None
    stop_detail: str | None = None
    path: list[int] = []
    thoughts: list[Thought] = []
    counters: Counters = Field(default_factory=new_counters)
    decisions: list[DecisionRecord] = []
    accept_threshold: float | None = None
    answer_threshold: float | None = None

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> DRRResult:
        """The result of a state dict (``graph.invoke``'s output, a snapshot's ``values``).

        Keys that only steer the graph while it runs (``pending``, ``answer_thought``) and
        keys of a parent graph's state are left out.
        """
        if "question" not in state:
            raise ValueError("the state has no 'question': is it a DRR run's state?")
        fields = {k: state[k] for k in cls.model_fields if state.get(k) is not None}
        return cls.model_validate(fields)

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    @property
    def accepted_steps(self) -> list[str]:
        """Texts of the accepted path, in order.

        Ends with the answer thought when the run answered from the path; a budget stop that
        answers with the best-scored answer seen elsewhere in the tree leaves the path as is.
        """
        return [self.thoughts[i]["text"] for i in self.path]
