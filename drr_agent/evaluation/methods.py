"""The methods an evaluation compares: one small async function each, registered in `METHODS`.

Every method has the signature ``async def method(item, ctx) -> MethodOutcome`` and runs on the
same Reasoner (``ctx.reasoner``), under the same task instruction and answer checker:

- ``cot``: one greedy (temperature 0) chain of thought, the whole trace in one call, with the
  prompt trace sampling uses (`Reasoner.asample_trace`, cut by `finish_trace`).
- ``self_consistency``: ``k`` sampled traces (seeded per item and index, as traces are), the
  majority of their answers after normalisation by the task checker ("11" and "11.0" vote
  together); a tie goes to the answer seen first (lowest sample index).
- ``deepconf``: DeepConf's offline vote (Fu et al. 2025), the training-free anchor a DM must
  beat: the same ``k`` samples as ``self_consistency`` (same seeds), each with the
  Reasoner's own token confidence (`drr_agent.reasoners.confidence`: top-k log-probs, the
  lowest mean over a sliding window by default); the most confident ``deepconf_keep`` of
  the readable traces vote, each with its confidence as its weight. It needs a backend that
  returns ``top_logprobs`` (llama.cpp, vLLM, OpenAI); one that does not is an error, never
  a silent ``self_consistency``. Only the offline form: DeepConf's online early stop (cut
  a trace when its window's confidence drops below a warm-up threshold) needs streamed
  log-probs and is not built.
- ``drr``: the DRR graph (`build_graph`) with the DM (``ctx.scorer``).
- ``self_critique``: the same graph and budgets with the Reasoner as its own critic
  (`SelfCritiqueScorer` on the Reasoner's model) instead of the DM; the critic's calls and
  tokens are charged to the Reasoner.
- ``stepwise``: the same graph and budgets with a critic that accepts every step — greedy
  steps, the last one asked as the answer. What ``drr`` and ``self_critique`` add (or cost)
  over it is their critic's doing, not the step-at-a-time format's.
- ``oracle``: the same graph and budgets with an evaluation-only critic that reads the gold
  answer (`oracle_critic`): a final answer scores 1 if the task's checker accepts it, else 0;
  another step scores 0 if it writes an arithmetic equation that is wrong, 1 if all its
  equations are right, 0.5 (neutral) if it writes none. It knows what a DM can only
  estimate, so it is the ceiling a DM's ``drr`` result is read against in this graph and
  these budgets (critic
  efficiency = (drr − stepwise) / (oracle − stepwise), `evaluation.paired`). Never a method to
  deploy: it needs the answer.
- ``noisy_oracle``: the ``oracle`` with each right/wrong verdict flipped with probability
  ``MethodSettings.oracle_flip`` (the same verdict every time one item meets the same text,
  as a deterministic DM gives; neutral steps stay neutral). Between ``stepwise`` (a critic
  that knows nothing) and ``oracle`` (one that errs never), it says what a critic whose veto
  is wrong that often is worth in this graph — the accuracy a DM has to reach, read off the
  same graph and budgets (`evals/benchmarks/critic_quality.py` draws the curve).
- ``lp_rank``: ``stepwise`` with ``dm_weight=0``: with ``candidates_per_step > 1`` the
  candidates are ranked by the Reasoner's own per-token probability, no DM. What ``drr``
  adds over it is what the DM knows that the Reasoner's likelihood does not.
- ``best_of_n_dm``: ``k`` sampled traces (the same seeds as ``self_consistency``, so both see
  the same samples on a seeded backend); the DM scores every step of every trace and the
  answer of the trace with the highest *minimum* step score wins among the traces whose
  answer the checker can read (ties: lowest index). Min,
  not mean: the graph accepts a path only when every step passes the threshold, so the
  minimum is the same criterion without the routing (what this method isolates), and a mean
  lets several easy steps hide the one wrong step that sinks an arithmetic trace (the
  small Reasoner's drift after a right first step). ``MethodSettings.aggregate="mean"``
  switches it.

Add a method by writing such a function and adding it to `METHODS` (and to `DM_METHODS` if it
needs ``ctx.scorer``). A method raises on failure after its own bounded retries; the runner
records the error.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drr_agent.config import DRRConfig
from drr_agent.errors import ReasonerError, ScorerError
from drr_agent.evaluation.records import TokenUsage
from drr_agent.graph import build_graph
from drr_agent.offline.traces import finish_trace, sample_seed
from drr_agent.reasoners.base import Reasoner
from drr_agent.reasoners.confidence import ConfidenceMeasure, trace_confidence
from drr_agent.reasoners.sampling import TRACE_MAX_TOKENS, TRACE_TEMPERATURE
from drr_agent.reasoners.signals import trace_step_statistics
from drr_agent.retry import aretry
from drr_agent.scorers.base import FunctionScorer, StepContext, StepScorer
from drr_agent.scorers.rules import check_equations
from drr_agent.scorers.self_critique import SelfCritiqueScorer
from drr_agent.state import DRRResult
from drr_agent.steps import StepFormat
from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.checking import is_correct, normalize_answer


class MethodSettings(BaseModel):
    """Budgets and sampling of the whole-trace methods (the graph's come from `DRRConfig`).

    Attributes:
        k: Traces sampled per item by ``self_consistency`` and ``best_of_n_dm``.
        temperature: Sampling temperature of those ``k`` traces (``cot`` is always greedy).
        max_tokens: Longest whole trace (completion tokens) for ``cot`` and the ``k`` traces.
        seed: Base seed; trace ``i`` of item ``x`` uses ``sample_seed(seed, x, i)``, and the
            graph methods seed their Reasoner per item when the backend takes a seed.
        aggregate: How ``best_of_n_dm`` turns a trace's step scores into one (see the module).
        retries: Extra attempts after a failed or timed-out Reasoner / DM call.
        timeout_s: Per-call timeout.
        critic_thresholds: Accept / answer thresholds of the ``self_critique`` critic, picked
            on labelled training steps as the DM's are (`calibrate_thresholds`); ``None``
            leaves the graph's default (0.5), which an uncalibrated P("yes") rarely suits.
        oracle_flip: How often ``noisy_oracle`` flips the oracle's verdict (0: the oracle,
            0.5: a coin).
        deepconf_keep: Share of the readable traces ``deepconf`` keeps, the most confident
            first (DeepConf's η: 0.1 aggressive, 0.9 conservative; at least one is kept).
        deepconf_window: Tokens per sliding window of the group confidence (DeepConf uses
            2048 on traces of many thousand tokens; these traces are a few hundred).
        deepconf_measure: How a trace's token confidences become one number
            (`drr_agent.reasoners.confidence.trace_confidence`).
        deepconf_top_logprobs: Log-probs asked per token (the ``k`` of the token confidence).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(default=4, ge=1)
    temperature: float = Field(default=TRACE_TEMPERATURE, ge=0.0)
    max_tokens: int = Field(default=TRACE_MAX_TOKENS, ge=1)
    seed: int = 0
    aggregate: Literal["min", "mean"] = "min"
    retries: int = Field(default=2, ge=0)
    timeout_s: float = Field(default=120.0, gt=0)
    critic_thresholds: dict[str, float] | None = None
    oracle_flip: float = Field(default=0.2, ge=0.0, le=0.5)
    deepconf_keep: float = Field(default=0.5, gt=0.0, le=1.0)
    deepconf_window: int = Field(default=32, ge=1)
    deepconf_measure: ConfidenceMeasure = "lowest_group"
    deepconf_top_logprobs: int = Field(default=5, ge=2, le=20)


@dataclass(frozen=True)
class MethodContext:
    """What every method may use: the task, the Reasoner, the DM and the budgets.

    Attributes:
        task: The task the items come from (instruction, step format, answer type).
        reasoner: The one Reasoner all methods share.
        scorer: The DM; required by the methods in `DM_METHODS`.
        config: The graph's configuration, the same for ``drr`` and ``self_critique``. Its
            ``step_format`` is replaced by `step_format`, so all methods cut steps alike.
        settings: Budgets of the whole-trace methods.
    """

    task: Task
    reasoner: Reasoner
    scorer: StepScorer | None = None
    config: DRRConfig = field(default_factory=DRRConfig)
    settings: MethodSettings = field(default_factory=MethodSettings)

    @property
    def step_format(self) -> StepFormat:
        """The task's answer rules cut the way the Reasoner writes (`Reasoner.format_for`)."""
        return self.reasoner.format_for(self.task.step_format)


class MethodOutcome(BaseModel):
    """What a method returns for one item (the runner adds gold, correctness and latency)."""

    model_config = ConfigDict(extra="forbid")

    answer: str | None
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    reasoner_calls: int = 0
    dm_calls: int = 0
    backtracks: int = 0
    abstained: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


Method = Callable[[TaskItem, MethodContext], Awaitable[MethodOutcome]]


# -- whole traces ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Trace:
    steps: list[str]
    answer: str | None
    marked: bool
    tokens: TokenUsage
    confidences: tuple[float, ...] | None = None
    signals: list[dict[str, float] | None] | None = None


async def _trace(
    item: TaskItem,
    ctx: MethodContext,
    *,
    temperature: float,
    seed: int,
    top_logprobs: int | None = None,
    logprobs: bool = False,
) -> _Trace:
    """One whole trace, sampled exactly as `drr traces` samples them, with bounded retries;
    ``logprobs``: with each step's statistics of the Reasoner's log-probs (a DM reads them)."""
    trace = await ctx.reasoner.asample_trace(
        item.question,
        instruction=ctx.task.instruction,
        temperature=temperature,
        max_tokens=ctx.settings.max_tokens,
        seed=seed,
        retries=ctx.settings.retries,
        timeout_s=ctx.settings.timeout_s,
        top_logprobs=top_logprobs,
        logprobs=logprobs,
    )
    steps, answer, marked = finish_trace(trace.text, item, ctx.step_format)
    tokens = TokenUsage(prompt=trace.prompt_tokens, completion=trace.completion_tokens)
    signals = trace_step_statistics(trace.text, steps, trace.tokens)
    return _Trace(steps, answer, marked, tokens, trace.confidences, signals)


async def _sample_k(
    item: TaskItem, ctx: MethodContext, top_logprobs: int | None = None, logprobs: bool = False
) -> list[_Trace]:
    s = ctx.settings
    seeds = [sample_seed(s.seed, item.id, i) for i in range(s.k)]
    return list(
        await asyncio.gather(
            *(
                _trace(
                    item,
                    ctx,
                    temperature=s.temperature,
                    seed=seed,
                    top_logprobs=top_logprobs,
                    logprobs=logprobs,
                )
                for seed in seeds
            )
        )
    )


def _total(traces: list[_Trace]) -> TokenUsage:
    return sum((t.tokens for t in traces), TokenUsage())


def majority_answer(answers: list[str | None], item: TaskItem) -> tuple[str | None, dict[str, int]]:
    """The most frequent normalised answer (ties: first seen) and the vote counts.

    Answers the checker cannot read (``None`` after normalisation) do not vote.
    """
    votes: dict[str, int] = {}  # insertion order = first seen
    for answer in answers:
        norm = normalize_answer(answer, item.answer_type, item.choices)
        if norm is not None:
            votes[norm] = votes.get(norm, 0) + 1
    if not votes:
        return None, votes
    best = max(votes.values())
    return next(a for a, count in votes.items() if count == best), votes


async def cot(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """One greedy chain of thought."""
    trace = await _trace(
        item, ctx, temperature=0.0, seed=sample_seed(ctx.settings.seed, item.id, 0)
    )
    return MethodOutcome(
        answer=trace.answer,
        tokens=trace.tokens,
        reasoner_calls=1,
        details={"steps": trace.steps, "answer_marked": trace.marked},
    )


async def self_consistency(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """``k`` sampled traces, majority answer."""
    traces = await _sample_k(item, ctx)
    answer, votes = majority_answer([t.answer for t in traces], item)
    return MethodOutcome(
        answer=answer,
        tokens=_total(traces),
        reasoner_calls=len(traces),
        details={"answers": [t.answer for t in traces], "votes": votes},
    )


async def deepconf(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """``k`` sampled traces; the most confident vote, weighted by confidence (see the module)."""
    s = ctx.settings
    traces = await _sample_k(item, ctx, top_logprobs=s.deepconf_top_logprobs)
    if all(t.confidences is None for t in traces):
        raise ValueError(
            f"deepconf needs token log-probs (top_logprobs={s.deepconf_top_logprobs}); "
            f"Reasoner {ctx.reasoner.name!r} returned none"
        )
    confidence = [
        trace_confidence(t.confidences, s.deepconf_window, s.deepconf_measure)
        if t.confidences
        else None
        for t in traces
    ]
    chosen, kept, votes = confidence_vote(
        [_norm(t, item) for t in traces], confidence, s.deepconf_keep
    )
    return MethodOutcome(
        answer=traces[chosen].answer if chosen is not None else None,
        tokens=_total(traces),
        reasoner_calls=len(traces),
        details={
            "answers": [t.answer for t in traces],
            "confidences": confidence,
            "kept": kept,
            "votes": votes,
            # every token's confidence (2 decimals): settings are chosen on dev from these,
            # offline, without sampling again (`evals/benchmarks/deepconf_sweep.py`)
            "token_confidences": [
                [round(c, 2) for c in t.confidences] if t.confidences else None for t in traces
            ],
            # each sample's steps and their log-prob statistics: a DM that reads them ranks
            # the same samples offline (best-of-k at every k, no sampling again)
            "steps": [t.steps for t in traces],
            "step_signals": [t.signals for t in traces],
            "sample_tokens": [[t.tokens.prompt, t.tokens.completion] for t in traces],
        },
    )


def confidence_vote(
    answers: Sequence[str | None], confidences: Sequence[float | None], keep: float
) -> tuple[int | None, list[int], dict[str, float]]:
    """DeepConf's vote: among the traces with a readable (normalised) answer and a
    confidence, the most confident ``keep`` share (at least one; ties to the lower index)
    vote with their confidence as the weight; the heaviest answer wins, a tie going to the
    answer seen first. Returns (the winning trace's index or ``None``, the kept indices,
    the votes)."""
    readable = {
        i: c
        for i, (a, c) in enumerate(zip(answers, confidences, strict=True))
        if a is not None and c is not None
    }
    count = max(1, math.ceil(len(readable) * keep)) if readable else 0
    kept = sorted(sorted(readable, key=lambda i: (-readable[i], i))[:count])
    votes: dict[str, float] = {}  # insertion order = lowest sample index first
    for i in kept:
        votes[answers[i]] = votes.get(answers[i], 0.0) + readable[i]  # type: ignore[index]
    best = max(votes.values(), default=None)
    chosen = next((i for i in kept if votes[answers[i]] == best), None)  # type: ignore[index]
    return chosen, kept, votes


def best_scored(answers: Sequence[str | None], trace_scores: Sequence[float | None]) -> int | None:
    """The index of the best-scored trace among those with a readable (normalised) answer
    and a score (a trace whose answer the checker cannot read cannot win; ties go to the
    lower index), or ``None``."""
    candidates = [
        i
        for i, (a, score) in enumerate(zip(answers, trace_scores, strict=True))
        if a is not None and score is not None
    ]
    return max(candidates, key=lambda i: (trace_scores[i], -i), default=None)


def _norm(trace: _Trace, item: TaskItem) -> str | None:
    return normalize_answer(trace.answer, item.answer_type, item.choices)


def _aggregate(scores: list[float], how: str) -> float:
    return min(scores) if how == "min" else sum(scores) / len(scores)


async def best_of_n_dm(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """``k`` sampled traces, the DM picks the best-scored one."""
    scorer = _require_scorer(ctx, "best_of_n_dm")
    traces = await _sample_k(item, ctx, logprobs=scorer.reads_reasoner_logprobs)
    contexts: list[StepContext] = []
    owner: list[int] = []
    for index, trace in enumerate(traces):
        for j, step in enumerate(trace.steps):
            signals = trace.signals[j] if trace.signals else None
            contexts.append(StepContext(item.question, tuple(trace.steps[:j]), step, signals))
            owner.append(index)

    async def score_all() -> list[float]:
        scores = await scorer.ascore(contexts)
        if len(scores) != len(contexts):  # a wrong count is a failed call (and is retried)
            raise ValueError(f"returned {len(scores)} scores for {len(contexts)} steps")
        return scores

    scores: list[float] = []
    if contexts:
        scores = await aretry(
            score_all,
            what=f"DM {scorer.name!r}",
            retries=ctx.config.scorer_retries,
            timeout_s=ctx.config.scorer_timeout_s,
            error_cls=ScorerError,
        )
    per_trace: list[list[float]] = [[] for _ in traces]
    for index, score in zip(owner, scores, strict=True):
        per_trace[index].append(float(score))
    trace_scores = [_aggregate(s, ctx.settings.aggregate) if s else None for s in per_trace]
    chosen = best_scored([_norm(t, item) for t in traces], trace_scores)
    return MethodOutcome(
        answer=traces[chosen].answer if chosen is not None else None,
        tokens=_total(traces),
        reasoner_calls=len(traces),
        dm_calls=1 if contexts else 0,
        details={
            "answers": [t.answer for t in traces],
            "step_scores": per_trace,
            "trace_scores": trace_scores,
            "aggregate": ctx.settings.aggregate,
            "chosen": chosen,
        },
    )


# -- the graph -------------------------------------------------------------------------------
def _require_scorer(ctx: MethodContext, method: str) -> StepScorer:
    if ctx.scorer is None:
        raise ValueError(f"method {method!r} needs a DM: set MethodContext.scorer")
    return ctx.scorer


def _graph_reasoner(item: TaskItem, ctx: MethodContext) -> Reasoner:
    """The Reasoner under the task's instruction, seeded per item.

    A backend with a ``seed`` field (``ChatOpenAI``) gets ``sample_seed(seed, item, 0)`` so runs
    repeat; the `Reasoner` derives the seed of each call and candidate from it.
    """
    seed = sample_seed(ctx.settings.seed, item.id, 0)
    return ctx.reasoner.derive(seed=seed, instruction=ctx.task.instruction)


def _tree_details(result: DRRResult) -> dict[str, Any]:
    """What the report needs from the thought tree: where the run backtracked and rejected."""
    return {
        "stop_reason": result.stop_reason,
        "stop_detail": result.stop_detail,
        "rejections": result.counters["rejections"],
        # requests behind reasoner_calls: a block step cut short is continued (Proposal.calls)
        "model_calls": result.counters.get("model_calls", result.counters["reasoner_calls"]),
        "backtrack_depths": [t["depth"] for t in result.thoughts if t["status"] == "abandoned"],
        "rejection_depths": [t["depth"] for t in result.thoughts if t["status"] == "rejected"],
        "path": result.path,
        "thoughts": result.thoughts,
    }


async def _run_graph(item: TaskItem, ctx: MethodContext, scorer: StepScorer) -> DRRResult:
    config = ctx.config.model_copy(update={"step_format": ctx.step_format})
    graph = build_graph(_graph_reasoner(item, ctx), scorer, config)
    result = DRRResult.from_state(await graph.ainvoke({"question": item.question}))
    if result.stop_reason == "reasoner_error":  # a failed dependency is an error, not a choice
        raise ReasonerError(result.stop_detail or "Reasoner failed")
    if result.stop_reason == "scorer_error":
        raise ScorerError(result.stop_detail or "scorer failed")
    return result


def _graph_outcome(result: DRRResult, extra: TokenUsage, extra_calls: int) -> MethodOutcome:
    counters = result.counters
    tokens = TokenUsage(prompt=counters["prompt_tokens"], completion=counters["completion_tokens"])
    return MethodOutcome(
        answer=result.answer,
        abstained=result.abstained,
        tokens=tokens + extra,
        reasoner_calls=counters["reasoner_calls"] + extra_calls,
        dm_calls=counters["dm_calls"],
        backtracks=counters["backtracks"],
        details=_tree_details(result),
    )


async def drr(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The DRR graph with the DM."""
    result = await _run_graph(item, ctx, _require_scorer(ctx, "drr"))
    return _graph_outcome(result, TokenUsage(), 0)


async def self_critique(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The DRR graph with the Reasoner as its own critic; the critic's cost is the Reasoner's."""
    critic = SelfCritiqueScorer.of(ctx.reasoner, thresholds=ctx.settings.critic_thresholds)
    result = await _run_graph(item, ctx, critic)
    used = TokenUsage(
        prompt=critic.usage["prompt_tokens"], completion=critic.usage["completion_tokens"]
    )
    outcome = _graph_outcome(result, used, critic.usage["calls"])
    outcome.details["critic"] = dict(critic.usage)
    return outcome


async def _graph_with_rule_critic(
    item: TaskItem, ctx: MethodContext, critic: StepScorer, **thresholds: float | None
) -> MethodOutcome:
    """The graph and budgets of ``drr`` with a critic that is not a DM and costs nothing
    (accept-all, the oracle): ``thresholds`` override the config's, no DM calls are counted."""
    config = ctx.config.model_copy(update=thresholds)
    result = await _run_graph(item, replace(ctx, config=config), critic)
    outcome = _graph_outcome(result, TokenUsage(), 0)
    outcome.dm_calls = 0
    return outcome


async def stepwise(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The graph without a critic (every step accepted): the ablation of ``drr``'s DM."""
    accept_all = FunctionScorer(lambda _: 1.0, name="accept-all")
    return await _graph_with_rule_critic(
        item, ctx, accept_all, accept_threshold=0.0, answer_threshold=0.0
    )


async def lp_rank(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """``stepwise`` with the candidates ranked by the Reasoner's own mean token log-prob.

    ``dm_weight=0`` (`DRRConfig`): the accept-all critic passes every candidate and the
    per-token probability alone picks among them. What ``drr`` gains over this is what the
    DM adds over the Reasoner ranking its own candidates (with ``candidates_per_step`` > 1;
    with one candidate per call it is ``stepwise``).
    """
    config = ctx.config.model_copy(update={"dm_weight": 0.0})
    return await stepwise(item, replace(ctx, config=config))


ORACLE_THRESHOLDS = {"accept_threshold": 0.25, "answer_threshold": 0.5}
"""The oracle passes right and neutral steps and right answers; it rejects wrong ones."""


def oracle_verdict(item: TaskItem, task: Task, candidate: str) -> float:
    """1 right, 0 wrong, 0.5 neutral: the gold-aware verdict (see ``oracle`` in the module)."""
    answer = task.step_format.extract_answer(candidate)
    if answer is not None:
        return float(is_correct(answer, item.gold, item.answer_type, item.choices))
    verdicts = check_equations(candidate)
    if not verdicts:
        return 0.5
    return 1.0 if all(verdicts) else 0.0


def oracle_critic(item: TaskItem, task: Task) -> FunctionScorer:
    """A critic that knows ``item``'s gold answer (see ``oracle`` in the module docstring)."""
    return FunctionScorer(
        lambda context: oracle_verdict(item, task, context.candidate),
        name="oracle",
        thresholds=ORACLE_THRESHOLDS,
    )


def noisy_oracle_critic(item: TaskItem, task: Task, flip: float, seed: int) -> FunctionScorer:
    """`oracle_critic` whose right/wrong verdicts are flipped with probability ``flip``.

    Whether a verdict flips is a hash of (seed, item, candidate text), not a draw per call:
    the critic is as consistent as a deterministic DM, and a rerun repeats it.
    """

    def judge(context: StepContext) -> float:
        verdict = oracle_verdict(item, task, context.candidate)
        if verdict == 0.5:
            return verdict
        digest = hashlib.sha256(f"{seed}|{item.id}|{context.candidate}".encode()).digest()
        flipped = int.from_bytes(digest[:8], "big") / 2**64 < flip
        return 1.0 - verdict if flipped else verdict

    return FunctionScorer(judge, name=f"noisy-oracle:{flip:g}", thresholds=ORACLE_THRESHOLDS)


async def noisy_oracle(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The ``oracle`` graph with a critic wrong ``ctx.settings.oracle_flip`` of the time."""
    critic = noisy_oracle_critic(item, ctx.task, ctx.settings.oracle_flip, ctx.settings.seed)
    return await _graph_with_rule_critic(
        item, ctx, critic, accept_threshold=None, answer_threshold=None
    )


async def oracle(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The graph with the gold-aware critic: the ceiling of any DM in this graph (its own
    thresholds, `ORACLE_THRESHOLDS`, replace any the config sets for the DM)."""
    critic = oracle_critic(item, ctx.task)
    return await _graph_with_rule_critic(
        item, ctx, critic, accept_threshold=None, answer_threshold=None
    )


METHODS: dict[str, Method] = {
    "cot": cot,
    "stepwise": stepwise,
    "lp_rank": lp_rank,
    "self_consistency": self_consistency,
    "deepconf": deepconf,
    "self_critique": self_critique,
    "drr": drr,
    "best_of_n_dm": best_of_n_dm,
    "oracle": oracle,
    "noisy_oracle": noisy_oracle,
}
"""Method name -> method. The runner and ``drr eval --methods`` dispatch on these names."""

DM_METHODS = frozenset({"drr", "best_of_n_dm"})
"""The methods that need ``MethodContext.scorer`` (the DM)."""
