"""The Reasoner's own confidence in what it wrote, from the token log-probs its server returns.

DeepConf (Fu et al. 2025, arXiv 2508.15260) filters and weights self-consistency votes by this
signal, with no training: it is the training-free anchor a trained DM has to beat, and it is
free — the log-probs come back with the sampled text. Definitions, as in the paper:

- *token confidence* ``C_i = −(1/k) Σ_j log P_i(j)`` over the ``k`` most likely tokens at
  position ``i`` (high when the model's distribution is peaked: the top token takes most of
  the mass and the other ``k − 1`` alternatives are far below it);
- *group confidence*: the mean token confidence over a sliding window of ``window`` tokens;
- a trace's confidence: its *lowest* group confidence (``lowest_group``: one stretch of
  doubt marks a trace, where a mean over the whole trace lets long easy stretches hide it),
  the mean of its lowest tenth of groups (``bottom_10``), of its last ``window`` tokens
  (``tail``: the conclusion), or of every token (``mean``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import BaseMessage

from drr_agent.reasoners.signals import logprob_content

__all__ = [
    "ConfidenceMeasure",
    "group_confidences",
    "token_confidence",
    "token_confidences",
    "trace_confidence",
]

ConfidenceMeasure = Literal["lowest_group", "bottom_10", "tail", "mean"]


def token_confidences(message: BaseMessage) -> tuple[float, ...] | None:
    """Per-token confidence of a reply whose call asked for ``top_logprobs`` (OpenAI shape:
    ``response_metadata["logprobs"]["content"][i]["top_logprobs"]``, at least two per
    token). ``None`` when the reply carries no such log-probs or they are malformed (the
    caller says what that means for its method)."""
    content = logprob_content(message)
    if not isinstance(content, list) or not content:
        return None
    values = []
    for token in content:
        value = token_confidence(token)
        if value is None:
            return None
        values.append(value)
    return tuple(values)


def token_confidence(token: Any) -> float | None:
    """``−mean`` of one token's top log-probs (an OpenAI log-prob entry); ``None`` with fewer
    than two of them: with the sampled token's alone the measure turns over (``−logprob`` is
    high when the token was *un*likely), so it is no confidence at all."""
    if not isinstance(token, dict):
        return None
    tops = token.get("top_logprobs") or []
    numbers = [t.get("logprob") for t in tops if isinstance(t, dict)]
    if len(numbers) < 2:
        return None
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in numbers):
        return None
    return -sum(numbers) / len(numbers)


def group_confidences(confidences: Sequence[float], window: int) -> list[float]:
    """Mean confidence of every run of ``window`` consecutive tokens (one group, the mean of
    all, when the trace is shorter than the window)."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    n = len(confidences)
    if n == 0:
        return []
    if n <= window:
        return [sum(confidences) / n]
    sums = [0.0]
    for value in confidences:
        sums.append(sums[-1] + value)
    return [(sums[i + window] - sums[i]) / window for i in range(n - window + 1)]


def trace_confidence(
    confidences: Sequence[float], window: int, measure: ConfidenceMeasure = "lowest_group"
) -> float | None:
    """One trace's confidence (see the module); ``None`` for a trace with no tokens."""
    if not confidences:
        return None
    if measure == "mean":
        return sum(confidences) / len(confidences)
    if measure == "tail":
        tail = confidences[-window:]
        return sum(tail) / len(tail)
    groups = group_confidences(confidences, window)
    if measure == "lowest_group":
        return min(groups)
    lowest = sorted(groups)[: max(1, math.ceil(len(groups) / 10))]
    return sum(lowest) / len(lowest)
