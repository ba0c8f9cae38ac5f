"""The whole-trace methods: ``cot``, ``self_consistency``, ``best_of_n_dm`` and ``dm_vote``, how
their samples are voted (`majority_answer`, `best_scored`, `confidence_vote`), and how they
sample (`sample_trace`, `sample_k`: the prompt and settings ``drr traces`` uses, seeded per
item and sample index, so every method that samples sees the same samples)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drr_agent.errors import ScorerError
from drr_agent.evaluation.context import MethodContext, MethodOutcome
from drr_agent.evaluation.records import TokenUsage
from drr_agent.offline.traces import finish_trace, sample_seed
from drr_agent.reasoners.signals import trace_step_statistics
from drr_agent.retry import aretry
from drr_agent.scorers.base import StepContext
from drr_agent.tasks.base import TaskItem
from drr_agent.tasks.checking import normalize_answer

__all__ = [
    "SampledTrace",
    "best_of_n_dm",
    "best_scored",
    "confidence_vote",
    "cot",
    "dm_vote",
    "majority_answer",
    "readable_answer",
    "sample_k",
    "sample_trace",
    "self_consistency",
    "total_tokens",
]


@dataclass(frozen=True)
class SampledTrace:
    """One sampled trace cut into steps, with its answer (``marked``: written as "Answer: X"),
    its tokens, its token confidences and per-step log-prob statistics when asked for, and
    whether a ``stop_when`` cut it short (``stopped``: then it has no answer)."""

    steps: list[str]
    answer: str | None
    marked: bool
    tokens: TokenUsage
    confidences: tuple[float, ...] | None = None
    signals: list[dict[str, float] | None] | None = None
    stopped: bool = False


async def sample_trace(
    item: TaskItem,
    ctx: MethodContext,
    *,
    temperature: float,
    seed: int,
    top_logprobs: int | None = None,
    logprobs: bool = False,
    stop_when: Callable[[Sequence[float]], bool] | None = None,
) -> SampledTrace:
    """One whole trace, sampled exactly as `drr traces` samples them, with bounded retries;
    ``logprobs``: with each step's statistics of the Reasoner's log-probs (a DM reads them);
    ``stop_when``: streamed, and cut once it holds for the token confidences so far
    (`Reasoner.asample_trace`)."""
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
        stop_when=stop_when,
    )
    tokens = TokenUsage(prompt=trace.prompt_tokens, completion=trace.completion_tokens)
    if trace.stopped:
        return SampledTrace([], None, False, tokens, trace.confidences, None, stopped=True)
    steps, answer, marked = finish_trace(trace.text, item, ctx.step_format)
    signals = trace_step_statistics(trace.text, steps, trace.tokens)
    return SampledTrace(steps, answer, marked, tokens, trace.confidences, signals)


async def sample_k(
    item: TaskItem,
    ctx: MethodContext,
    top_logprobs: int | None = None,
    logprobs: bool = False,
    *,
    indices: Sequence[int] | None = None,
    stop_when: Callable[[Sequence[float]], bool] | None = None,
) -> list[SampledTrace]:
    """Samples ``indices`` (default: all ``k``) of an item, at once; sample ``i`` is seeded
    ``sample_seed(seed, item, i)`` whichever method draws it, so methods share samples."""
    s = ctx.settings
    seeds = [sample_seed(s.seed, item.id, i) for i in (range(s.k) if indices is None else indices)]
    return list(
        await asyncio.gather(
            *(
                sample_trace(
                    item,
                    ctx,
                    temperature=s.temperature,
                    seed=seed,
                    top_logprobs=top_logprobs,
                    logprobs=logprobs,
                    stop_when=stop_when,
                )
                for seed in seeds
            )
        )
    )


def total_tokens(traces: list[SampledTrace]) -> TokenUsage:
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
    trace = await sample_trace(
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
    traces = await sample_k(item, ctx)
    answer, votes = majority_answer([t.answer for t in traces], item)
    return MethodOutcome(
        answer=answer,
        tokens=total_tokens(traces),
        reasoner_calls=len(traces),
        details={"answers": [t.answer for t in traces], "votes": votes},
    )


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


def readable_answer(trace: SampledTrace, item: TaskItem) -> str | None:
    return normalize_answer(trace.answer, item.answer_type, item.choices)


def _aggregate(scores: list[float], how: str) -> float:
    return min(scores) if how == "min" else sum(scores) / len(scores)


async def _dm_scored_traces(
    item: TaskItem, ctx: MethodContext, method: str
) -> tuple[list[SampledTrace], list[list[float]], list[float | None]]:
    """``k`` sampled traces, every step of them scored by the DM in one batch: the traces,
    each trace's step scores, and each trace's score (`MethodSettings.aggregate` of its steps;
    ``None`` for a trace with no step)."""
    scorer = ctx.require_scorer(method)
    traces = await sample_k(item, ctx, logprobs=scorer.reads_reasoner_logprobs)
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
    return traces, per_trace, trace_scores


def _dm_outcome(
    traces: list[SampledTrace],
    per_trace: list[list[float]],
    trace_scores: list[float | None],
    chosen: int | None,
    aggregate: str,
    **details: object,
) -> MethodOutcome:
    return MethodOutcome(
        answer=traces[chosen].answer if chosen is not None else None,
        tokens=total_tokens(traces),
        reasoner_calls=len(traces),
        dm_calls=1 if any(per_trace) else 0,
        details={
            "answers": [t.answer for t in traces],
            "step_scores": per_trace,
            "trace_scores": trace_scores,
            "aggregate": aggregate,
            "chosen": chosen,
            **details,
        },
    )


async def best_of_n_dm(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """``k`` sampled traces, the DM picks the best-scored one."""
    traces, per_trace, trace_scores = await _dm_scored_traces(item, ctx, "best_of_n_dm")
    chosen = best_scored([readable_answer(t, item) for t in traces], trace_scores)
    return _dm_outcome(traces, per_trace, trace_scores, chosen, ctx.settings.aggregate)


async def dm_vote(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """``k`` sampled traces vote, each with its DM score as its weight (`confidence_vote`,
    every trace kept): DeepConf's vote with the DM in place of the token confidence.

    Why beside `best_of_n_dm`: a DM that mostly reads how hard a question is (the light DM)
    ranks one question's samples barely better than chance, so picking the single
    best-scored sample throws away the agreement among samples that majority voting lives
    on; weighting the vote keeps the agreement and lets the DM break near-ties."""
    traces, per_trace, trace_scores = await _dm_scored_traces(item, ctx, "dm_vote")
    answers = [readable_answer(t, item) for t in traces]
    chosen, _, votes = confidence_vote(answers, trace_scores, 1.0)
    return _dm_outcome(traces, per_trace, trace_scores, chosen, ctx.settings.aggregate, votes=votes)
