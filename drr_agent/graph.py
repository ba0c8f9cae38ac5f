"""`build_graph`: the DRR state machine ``reason → score → decide`` as a LangGraph graph.

- ``reason`` asks the `Reasoner` for the next step(s) from the tip of the accepted path,
  listing the alternatives already rejected there.
- ``score`` has the DM (`StepScorer`) judge every new candidate in context, in one batch, and
  ranks each by the DM's score blended with the Reasoner's log-prob (`DRRConfig.dm_weight`).
- ``decide`` applies `drr_agent.policy.decide` and routes with ``Command``: back to
  ``reason`` (continue / backtrack) or to the end (answer / stop), emitting one custom stream
  event per decision (``stream_mode="custom"``).

Every node has a sync and an async implementation, so ``invoke``, ``ainvoke``, ``abatch`` and
``stream`` all work, and the compiled graph can be added as a node of a parent graph whose
state has a ``question`` key. Pass a checkpointer to make runs resumable: re-invoking with
``None`` and the same ``thread_id`` continues an interrupted run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import get_runtime
from langgraph.types import Checkpointer, Command

from drr_agent.config import ContextCaps, DRRConfig
from drr_agent.errors import InvalidQuestionError, QuestionTooLongError, ReasonerError, ScorerError
from drr_agent.policy import decide, last_step_allowed, rank_score, rejected_texts
from drr_agent.reasoners.base import Proposal, Reasoner
from drr_agent.reasoners.limits import aretry_reasoner, retry_reasoner
from drr_agent.retry import aretry, retry
from drr_agent.scorers.base import StepContext, StepScorer
from drr_agent.state import (
    Counters,
    DecisionEvent,
    DecisionRecord,
    DRRInput,
    DRRState,
    StopReason,
    Thought,
    new_counters,
)
from drr_agent.steps import StepFormat

_RECURSION_LIMIT = 10_000


def _question(state: DRRState) -> str:
    question = state.get("question")
    if not isinstance(question, str):
        raise InvalidQuestionError(
            f"input field 'question' must be a string, got {type(question).__name__}"
        )
    if not question.strip():
        raise InvalidQuestionError("input field 'question' is empty")
    return question


def _accepted_steps(state: DRRState) -> list[str]:
    tree = state.get("thoughts", [])
    return [tree[i]["text"] for i in state.get("path", [])]


def _record(event: DecisionEvent) -> DecisionRecord:
    """What the state keeps of a decision event: its route, thought, depth and pop."""
    thought = event.get("thought")
    return DecisionRecord(
        route=event["route"],
        thought=None if thought is None else thought["id"],
        depth=event["depth"],
        popped=event.get("popped"),
    )


class _DRRNodes:
    """The three nodes, bound to one Reasoner, one scorer and a default config.

    The run's context (``invoke(..., context=DRRConfig(...))``, read with LangGraph's
    ``get_runtime``) overrides the default for one run, within ``caps`` when they are given.
    """

    def __init__(
        self,
        reasoner: Reasoner,
        scorer: StepScorer,
        config: DRRConfig,
        caps: ContextCaps | None = None,
    ) -> None:
        self.reasoner = reasoner
        self.scorer = scorer
        self.config = config
        self.caps = caps
        self._capped: dict[DRRConfig, DRRConfig] = {}  # contexts seen, as checked

    def _config(self) -> DRRConfig:
        context = get_runtime(DRRConfig).context
        if not isinstance(context, DRRConfig):
            return self.config
        if self.caps is None:
            return context
        checked = self._capped.get(context)
        if checked is None:  # every node reads it: check (and compile patterns) once
            checked = self.caps.check(context)
            if len(self._capped) >= 256:
                self._capped.clear()
            self._capped[context] = checked
        return checked

    def _step_format(self, config: DRRConfig) -> StepFormat:
        return config.step_format or self.reasoner.step_format

    # -- reason ---------------------------------------------------------------------------
    def _reason_request(
        self, state: DRRState, config: DRRConfig
    ) -> tuple[str, list[str], list[str], dict[str, Any]]:
        path = state.get("path", [])
        tip = path[-1] if path else None
        tree = state.get("thoughts", [])
        counters = state.get("counters") or new_counters()
        # the last step the budget allows must answer, or the run would end without one
        final = config.force_final_answer and last_step_allowed(tree, path, counters, config)
        rejected = rejected_texts(tree, tip)
        kwargs = {
            "n": config.candidates_per_step,
            "step_format": self._step_format(config),
            "call_index": counters["reasoner_calls"],
            "final": final,
            "greedy_first": config.greedy_first and not rejected,
            "logprobs": config.needs_logprobs or self.scorer.reads_reasoner_logprobs,
        }
        return _question(state), _accepted_steps(state), rejected, kwargs

    def _reason_update(
        self, state: DRRState, config: DRRConfig, proposals: list[Proposal]
    ) -> Command[Any]:
        tree = state.get("thoughts", [])
        path = state.get("path", [])
        counters = Counters(**(state.get("counters") or new_counters()))
        counters["reasoner_calls"] += 1
        fmt = self._step_format(config)
        new: list[Thought] = []
        for offset, proposal in enumerate(proposals):
            counters["prompt_tokens"] += proposal.prompt_tokens
            counters["completion_tokens"] += proposal.completion_tokens
            counters["model_calls"] = counters.get("model_calls", 0) + proposal.calls
            new.append(
                Thought(
                    id=len(tree) + offset,
                    parent=path[-1] if path else None,
                    depth=len(path) + 1,
                    text=proposal.text,
                    answer=proposal.answer
                    or (fmt.extract_answer(proposal.text) if proposal.text else None),
                    score=None,
                    status="proposed",
                    reason=proposal.note or "",
                    call=counters["reasoner_calls"],
                    completion_tokens=proposal.completion_tokens,
                    logprob=proposal.logprob,
                    signals=proposal.signals,
                    rank_score=None,
                )
            )
        update: dict[str, Any] = {
            "thoughts": new,
            "pending": [t["id"] for t in new],
            "counters": counters,
            "path": list(path),
        }
        return Command(goto="score", update=update)

    def _failed(self, kind: StopReason, exc: Exception, state: DRRState) -> Command[Any]:
        counters = Counters(**(state.get("counters") or new_counters()))
        if kind == "reasoner_error":
            counters["reasoner_calls"] += 1  # the failed call was made (and paid for)
        event = DecisionEvent(
            type="drr.decision",
            route="stop",
            thought=None,
            score=None,
            candidates=[],
            depth=len(state.get("path", [])),
            abstained=True,
            stop_reason=kind,
            error=str(exc),
        )
        get_stream_writer()(event)
        return Command(
            goto=END,
            update={
                "abstained": True,
                "answer": None,
                "stop_reason": kind,
                "stop_detail": f"abstained: {exc}",
                "counters": counters,
                "path": state.get("path", []),
                "decisions": [_record(event)],
            },
        )

    def _reasoner_failed(
        self, exc: ReasonerError, state: DRRState, config: DRRConfig
    ) -> Command[Any]:
        """A prompt longer than the Reasoner's context stops as ``question_too_long`` (it was
        not retried: `drr_agent.reasoners.limits`); any other failure as ``reasoner_error``."""
        if config.on_reasoner_error == "raise":
            raise exc
        if isinstance(exc, QuestionTooLongError):
            return self._failed("question_too_long", exc, state)
        return self._failed("reasoner_error", exc, state)

    def reason(self, state: DRRState) -> Command[Any]:
        config = self._config()
        question, steps, rejected, kwargs = self._reason_request(state, config)
        try:
            proposals = retry_reasoner(
                lambda: self.reasoner.propose(question, steps, rejected, **kwargs),
                what=f"Reasoner {self.reasoner.name!r}",
                retries=config.reasoner_retries,
                timeout_s=config.reasoner_timeout_s,
            )
        except ReasonerError as exc:
            return self._reasoner_failed(exc, state, config)
        return self._reason_update(state, config, proposals)

    async def areason(self, state: DRRState) -> Command[Any]:
        config = self._config()
        question, steps, rejected, kwargs = self._reason_request(state, config)
        try:
            proposals = await aretry_reasoner(
                lambda: self.reasoner.apropose(question, steps, rejected, **kwargs),
                what=f"Reasoner {self.reasoner.name!r}",
                retries=config.reasoner_retries,
                timeout_s=config.reasoner_timeout_s,
            )
        except ReasonerError as exc:
            return self._reasoner_failed(exc, state, config)
        return self._reason_update(state, config, proposals)

    # -- score ----------------------------------------------------------------------------
    def _score_request(
        self, state: DRRState
    ) -> tuple[list[int], list[StepContext], dict[int, int]]:
        """The pending thoughts the DM must score, their contexts, and their twins: a
        candidate whose text was scored at its point before (the same parent) takes that
        thought's score, without a DM call. Why: a small Reasoner resampled after a rejection
        often writes the very step it was refused (a quarter of the oracle's proposals on
        ``chain_sum``), and a deterministic critic owes it the same verdict; a DM that reads
        an LM or asks the Reasoner for a lookahead would pay for each repeat. Repeats within
        one call are scored once too."""
        tree = state.get("thoughts", [])
        steps = tuple(_accepted_steps(state))
        pending = [i for i in state.get("pending", []) if tree[i]["text"]]
        seen = {(t["parent"], t["text"]): t["id"] for t in tree if t["score"] is not None}
        ids: list[int] = []
        twins: dict[int, int] = {}  # pending id -> the id whose score it takes
        for i in pending:
            first = seen.setdefault((tree[i]["parent"], tree[i]["text"]), i)
            if first == i:
                ids.append(i)
            else:
                twins[i] = first
        items = [
            StepContext(state["question"], steps, tree[i]["text"], tree[i].get("signals"))
            for i in ids
        ]
        return ids, items, twins

    def _checked(self, scores: list[float], items: list[StepContext]) -> list[float]:
        """A DM that answers with the wrong number of scores has failed (and is retried)."""
        if len(scores) != len(items):
            raise ValueError(f"returned {len(scores)} scores for {len(items)} steps")
        return scores

    def _score_update(
        self,
        state: DRRState,
        config: DRRConfig,
        ids: list[int],
        scores: list[float],
        twins: dict[int, int],
    ) -> Command[Any]:
        tree = state.get("thoughts", [])
        counters = Counters(**(state.get("counters") or new_counters()))
        if ids:
            counters["dm_calls"] += 1
            counters["dm_items"] += len(ids)
        known = {tid: float(score) for tid, score in zip(ids, scores, strict=True)}
        for tid, first in twins.items():
            known[tid] = known[first] if first in known else float(tree[first]["score"])
        scored = []
        for tid, score in known.items():
            thought = Thought(**tree[tid])
            thought["score"] = score
            thought["rank_score"] = rank_score(score, thought.get("logprob"), config.dm_weight)
            scored.append(thought)
        return Command(goto="decide", update={"thoughts": scored, "counters": counters})

    def score(self, state: DRRState) -> Command[Any]:
        config = self._config()
        ids, items, twins = self._score_request(state)
        try:
            scores = retry(
                lambda: self._checked(self.scorer.score(items), items) if items else [],
                what=f"DM {self.scorer.name!r}",
                retries=config.scorer_retries,
                timeout_s=config.scorer_timeout_s,
                error_cls=ScorerError,
            )
        except ScorerError as exc:
            if config.on_scorer_error == "raise":
                raise
            return self._failed("scorer_error", exc, state)
        return self._score_update(state, config, ids, scores, twins)

    async def ascore(self, state: DRRState) -> Command[Any]:
        config = self._config()
        ids, items, twins = self._score_request(state)

        async def call() -> list[float]:
            return self._checked(await self.scorer.ascore(items), items) if items else []

        try:
            scores = await aretry(
                call,
                what=f"DM {self.scorer.name!r}",
                retries=config.scorer_retries,
                timeout_s=config.scorer_timeout_s,
                error_cls=ScorerError,
            )
        except ScorerError as exc:
            if config.on_scorer_error == "raise":
                raise
            return self._failed("scorer_error", exc, state)
        return self._score_update(state, config, ids, scores, twins)

    # -- decide ---------------------------------------------------------------------------
    def decide(self, state: DRRState) -> Command[Any]:
        config = self._config()
        accept, answer = config.thresholds(self.scorer.thresholds)
        decision = decide(
            state.get("thoughts", []),
            state.get("path", []),
            state.get("pending", []),
            state.get("counters") or new_counters(),
            config,
            accept,
            answer,
        )
        decision.event.update(accept_threshold=accept, answer_threshold=answer)
        get_stream_writer()(decision.event)
        update: dict[str, Any] = {
            "thoughts": decision.changed,
            "path": decision.path,
            "pending": [],
            "counters": decision.counters,
            "accept_threshold": accept,
            "answer_threshold": answer,
            "decisions": [_record(decision.event)],
        }
        if decision.finished:
            update.update(
                answer=decision.answer,
                answer_thought=decision.answer_thought,
                abstained=decision.abstained,
                stop_reason=decision.stop_reason,
                stop_detail=decision.stop_detail,
            )
            return Command(goto=END, update=update)
        return Command(goto="reason", update=update)


def build_graph(
    reasoner: Reasoner | BaseChatModel,
    scorer: StepScorer,
    config: DRRConfig | None = None,
    *,
    checkpointer: Checkpointer = None,
    name: str = "drr",
    caps: ContextCaps | None = None,
) -> CompiledStateGraph[DRRState, DRRConfig, DRRInput, DRRState]:
    """Compile the DRR graph.

    Args:
        reasoner: A `Reasoner`, or any LangChain chat model (wrapped with the default prompt).
        scorer: The DM, or any `StepScorer`.
        config: Thresholds, budgets and failure outcomes; ``invoke(..., context=DRRConfig(...))``
            overrides it for one run.
        checkpointer: Any LangGraph checkpointer (``InMemorySaver``, ``SqliteSaver``, ...);
            runs then need ``config={"configurable": {"thread_id": ...}}``. When the graph is a
            subgraph, leave it ``None``: the parent's checkpointer is used.
        name: Graph name (shown in traces and as a subgraph).
        caps: Bounds on what a run's context may ask for (`ContextCaps`), for a graph whose
            callers are not trusted (a LangGraph server's clients; `drr_agent.deployment`
            sets them): a context beyond them fails the run with a `ContextCapError`, and
            its own answer patterns are searched within a time limit. ``None``: no bounds.

    Returns:
        A compiled graph: input ``{"question": str}``; output the full `DRRState`, with
        ``answer``, ``abstained``, ``stop_reason`` and the thought tree under ``thoughts``.
    """
    if isinstance(reasoner, BaseChatModel):
        reasoner = Reasoner(reasoner)
    if not isinstance(reasoner, Reasoner):
        raise TypeError(
            f"reasoner must be a Reasoner or a chat model, got {type(reasoner).__name__}"
        )
    if not isinstance(scorer, StepScorer):
        raise TypeError(f"scorer must be a StepScorer, got {type(scorer).__name__}")
    nodes = _DRRNodes(reasoner, scorer, config or DRRConfig(), caps)
    builder = StateGraph(DRRState, context_schema=DRRConfig, input_schema=DRRInput)
    builder.add_node(
        "reason", _node(nodes.reason, nodes.areason, "reason"), destinations=("score", END)
    )
    builder.add_node(
        "score", _node(nodes.score, nodes.ascore, "score"), destinations=("decide", END)
    )
    # decide does no I/O: its sync function serves ainvoke too
    builder.add_node("decide", _node(nodes.decide, None, "decide"), destinations=("reason", END))
    builder.add_edge(START, "reason")
    return _batches_keep_the_recursion_limit(builder.compile(checkpointer=checkpointer, name=name))


def _node(func: Callable[..., Any], afunc: Callable[..., Any] | None, name: str) -> Runnable:
    """A node with a sync and an async implementation, so invoke and ainvoke both run natively.

    LangGraph's own node wrapper (``RunnableCallable``, what ``add_node`` makes of a plain
    function and what ``langgraph.prebuilt.ToolNode`` uses for its sync/async twins) is the
    cheap way: measured side by side (``python -m evals.benchmarks.graph_overhead
    --skip-real``), the public ``RunnableLambda(func, afunc)`` costs 0.5–0.9 ms more per
    reason→score→decide cycle, because it opens a callback run for every node call. The
    wrapper lives in ``langgraph._internal``, so when a LangGraph release moves it, the nodes
    fall back to ``RunnableLambda`` — same behaviour, since they read the run's context
    with the public ``get_runtime`` rather than through LangGraph's argument injection
    (tests/test_policy.py runs the graph both ways).
    """
    try:
        from langgraph._internal._runnable import RunnableCallable
    except ImportError:  # pragma: no cover - depends on the installed LangGraph
        return RunnableLambda(func, afunc, name=name)
    return RunnableCallable(func, afunc, name=name)


class DRRGraph(CompiledStateGraph[DRRState, DRRConfig, DRRInput, DRRState]):
    """The compiled DRR graph; `batch`/`abatch` keep LangGraph's own recursion limit.

    See `_batches_keep_the_recursion_limit` for why; a batch call that passes its own
    ``recursion_limit`` keeps it.
    """

    def batch(self, inputs: Any, config: Any = None, **kwargs: Any) -> Any:
        return super().batch(inputs, _with_recursion_limit(config, len(inputs)), **kwargs)

    async def abatch(self, inputs: Any, config: Any = None, **kwargs: Any) -> Any:
        return await super().abatch(inputs, _with_recursion_limit(config, len(inputs)), **kwargs)


def _batches_keep_the_recursion_limit(graph: CompiledStateGraph) -> DRRGraph:
    """The compiled graph, as a `DRRGraph`: batched runs get the limit ``invoke`` gets.

    ``invoke``/``stream`` fill a missing ``recursion_limit`` with LangGraph's default (10007
    super-steps; ``langgraph._internal._config.DEFAULT_RECURSION_LIMIT``). ``batch``/``abatch``
    are inherited from LangChain's ``Runnable``, whose ``get_config_list`` fills in
    ``langchain_core.runnables.config.DEFAULT_RECURSION_LIMIT`` (25 — about eight
    reason→score→decide cycles) first, and a limit bound with ``graph.with_config`` does not
    win over it (Pregel's ``merge_configs`` only defers to a bound limit when the incoming one
    is LangGraph's own default; see ``langgraph/pregel/main.py`` and
    https://docs.langchain.com/oss/python/langgraph/errors/GRAPH_RECURSION_LIMIT). The
    budgets in `DRRConfig` are what bound a DRR run, so batches get LangGraph's bound too.

    `DRRGraph` adds no state of its own (only the two overrides), so re-classing the compiled
    object is exact; tests/test_policy.py checks that batches run past 25 steps and that an
    explicit limit still applies.
    """
    graph.__class__ = DRRGraph
    return graph  # type: ignore[return-value]


def _with_recursion_limit(config: Any, n: int) -> list[dict[str, Any]]:
    configs = config if isinstance(config, list) else [config] * n
    return [{"recursion_limit": _RECURSION_LIMIT, **(c or {})} for c in configs]
