"""DeepConf (Fu et al. 2025, arXiv 2508.15260): the training-free anchor a DM must beat.

The Reasoner's own token confidence (`drr_agent.reasoners.confidence`) filters and weights a
self-consistency vote — no training, the same free signal a light DM reads.

- ``deepconf``: the offline vote over the same ``k`` samples as ``self_consistency``.
- ``deepconf_online``: the online form, which spends fewer tokens (see `deepconf_online`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from drr_agent.evaluation.context import MethodContext, MethodOutcome
from drr_agent.evaluation.records import TokenUsage
from drr_agent.evaluation.whole_traces import (
    SampledTrace,
    confidence_vote,
    readable_answer,
    sample_k,
    total_tokens,
)
from drr_agent.reasoners.confidence import trace_confidence
from drr_agent.tasks.base import TaskItem
from drr_agent.usage import current_ledger, parameters_of, record_usage

__all__ = [
    "cut_length",
    "deepconf",
    "deepconf_online",
    "online_threshold",
    "warmup_agrees",
    "window_below",
]


async def deepconf(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """``k`` sampled traces; the most confident vote, weighted by confidence (see the module)."""
    s = ctx.settings
    traces = await sample_k(item, ctx, top_logprobs=s.deepconf_top_logprobs)
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
        [readable_answer(t, item) for t in traces], confidence, s.deepconf_keep
    )
    return MethodOutcome(
        answer=traces[chosen].answer if chosen is not None else None,
        tokens=total_tokens(traces),
        reasoner_calls=len(traces),
        details=_sample_details(traces, confidence) | {"kept": kept, "votes": votes},
    )


def _sample_details(traces: list[SampledTrace], confidence: list[float | None]) -> dict:
    return {
        "answers": [t.answer for t in traces],
        "confidences": confidence,
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
    }


async def deepconf_online(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """DeepConf's online form (the paper's Algorithm 2, at this project's scale).

    1. *Warm-up*: the first ``deepconf_warmup`` of the ``k`` samples (the same seeds as
       ``deepconf`` and ``self_consistency``), whole. Their lowest-group confidences set the
       threshold: the confidence the most confident ``deepconf_keep`` share of them reach
       (keep 0.1: DeepConf-low, 0.9: DeepConf-high).
    2. *Consensus*: if the warm-up traces at or above it agree — the heaviest answer holds at
       least ``deepconf_consensus`` of their confidence-weighted vote — no more is sampled.
    3. *The rest*, streamed at once, each cut as soon as the mean confidence of its last
       ``deepconf_window`` tokens falls below the threshold (`Reasoner.asample_trace`'s
       ``stop_when``): a cut trace does not vote, and what it would have written after the
       cut is never generated.
    4. *Vote*: the warm-up traces at or above the threshold and the uncut rest, each weighted
       by its lowest-group confidence (`confidence_vote` with every voter kept).

    Tokens count what was generated: a cut trace's tokens up to its cut, with the prompt
    tokens of the warm-up's (same prompt; the server reports none for a stream it did not
    finish) — booked in the usage ledger too, under the Reasoner's model.
    """
    s = ctx.settings
    warmup_n = min(s.deepconf_warmup, s.k)
    warmup = await sample_k(
        item, ctx, top_logprobs=s.deepconf_top_logprobs, indices=range(warmup_n)
    )
    if all(t.confidences is None for t in warmup):
        raise ValueError(
            f"deepconf_online needs token log-probs (top_logprobs={s.deepconf_top_logprobs}); "
            f"Reasoner {ctx.reasoner.name!r} returned none"
        )
    confidence = [_lowest_group(t, s.deepconf_window) for t in warmup]
    threshold = online_threshold(confidence, s.deepconf_keep)
    voters = [c if c is not None and c >= threshold else None for c in confidence]
    agreed = warmup_agrees([readable_answer(t, item) for t in warmup], voters, s.deepconf_consensus)
    rest: list[SampledTrace] = []
    if not agreed and warmup_n < s.k:
        window = s.deepconf_window

        def below(confidences: Sequence[float]) -> bool:
            return window_below(confidences, threshold, window)

        rest = await sample_k(
            item,
            ctx,
            top_logprobs=s.deepconf_top_logprobs,
            indices=range(warmup_n, s.k),
            stop_when=below,
        )
        prompt = warmup[0].tokens.prompt
        rest = [_with_prompt(t, prompt) if t.stopped else t for t in rest]
        _book_cut([t for t in rest if t.stopped])
    traces = warmup + rest
    rest_confidence = [None if t.stopped else _lowest_group(t, s.deepconf_window) for t in rest]
    all_voters = voters + rest_confidence
    chosen, kept, votes = confidence_vote(
        [readable_answer(t, item) for t in traces], all_voters, 1.0
    )
    return MethodOutcome(
        answer=traces[chosen].answer if chosen is not None else None,
        tokens=total_tokens(traces),
        reasoner_calls=len(traces),
        details=_sample_details(traces, confidence + rest_confidence)
        | {
            "threshold": threshold,
            "consensus": agreed,
            "cut": [warmup_n + i for i, t in enumerate(rest) if t.stopped],
            "kept": kept,
            "votes": votes,
        },
    )


def online_threshold(confidences: Sequence[float | None], keep: float) -> float:
    """The warm-up's threshold: the confidence its most confident ``keep`` share reach."""
    ranked = sorted((c for c in confidences if c is not None), reverse=True)
    return ranked[max(1, math.ceil(len(ranked) * keep)) - 1]


def warmup_agrees(
    answers: Sequence[str | None], voters: Sequence[float | None], consensus: float
) -> bool:
    """Whether the heaviest answer holds ``consensus`` of the voters' weighted vote."""
    _, _, votes = confidence_vote(answers, voters, 1.0)
    return bool(votes) and max(votes.values()) >= consensus * sum(votes.values())


def window_below(confidences: Sequence[float], threshold: float, window: int) -> bool:
    """The stop rule: the last ``window`` tokens' mean confidence is below ``threshold``."""
    return len(confidences) >= window and sum(confidences[-window:]) < threshold * window


def cut_length(confidences: Sequence[float], threshold: float, window: int) -> int | None:
    """How many tokens a stream with these confidences runs before `window_below` cuts it
    (``None``: never; what the online method would have generated, read offline)."""
    for end in range(window, len(confidences) + 1):
        if window_below(confidences[:end], threshold, window):
            return end
    return None


def _lowest_group(trace: SampledTrace, window: int) -> float | None:
    return trace_confidence(trace.confidences, window) if trace.confidences else None


def _with_prompt(trace: SampledTrace, prompt_tokens: int) -> SampledTrace:
    return replace(
        trace, tokens=TokenUsage(prompt=prompt_tokens, completion=trace.tokens.completion)
    )


def _book_cut(cut: list[SampledTrace]) -> None:
    """Book cut streams in the usage ledger (the server finished none of them, so LangChain's
    callbacks saw no usage) under the model the warm-up's calls were booked as."""
    ledger = current_ledger()
    model = ledger.sole_model() if ledger is not None else None
    if model is None or not cut:
        return
    record_usage(
        model,
        prompt_tokens=sum(t.tokens.prompt for t in cut),
        completion_tokens=sum(t.tokens.completion for t in cut),
        calls=len(cut),
        parameters=parameters_of(model),
    )
