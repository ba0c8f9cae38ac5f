"""What the Reasoner's own sampling says about a step, for free: statistics of its token log-probs.

Why: a critic that reads a second language model pays for a forward pass over every candidate
— the verifier DM's Qwen2.5-0.5B costs four times the SmolLM2 Reasoner it judges. The
Reasoner's server already computed a distribution at every token it wrote; asking it to
return the sampled token's log-prob and the best alternative's (OpenAI's ``logprobs`` with
``top_logprobs=1``, `LOGPROB_REQUEST`) costs a few bytes of response and no compute. These
are the statistics a light DM's head reads (`SAMPLED_FEATURES`): how sure the Reasoner was
of the step as a whole, of its digits, and of the number it *claims* — the last number of
the step, "161" in "94 + 67 = 161" — and how far any token strays below the token the model
itself would have picked (a sampled slip: the log-prob *gap*).

The same function reads a graph's candidate step (`Reasoner.apropose` with ``logprobs``) and a
step cut out of a whole sampled trace (``drr traces``), so the DM trains on what it is shown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage

__all__ = [
    "LOGPROB_FLOOR",
    "LOGPROB_REQUEST",
    "SAMPLED_FEATURES",
    "SampledToken",
    "logprob_content",
    "mean_logprob",
    "reply_tokens",
    "span_statistics",
    "step_statistics",
    "token_logprobs",
    "trace_step_statistics",
]

LOGPROB_REQUEST: dict[str, Any] = {"logprobs": True, "top_logprobs": 1}
"""Call arguments that ask for token log-probs. ``top_logprobs=1`` because the llama.cpp server
otherwise sends 20 alternatives per token (10× the response; measured on the embedded model),
and ``0`` there switches log-probs off altogether; the best alternative is all the gap needs."""

SAMPLED_FEATURES = (
    "sampled_mean_logprob",
    "sampled_min_logprob",
    "sampled_digit_min_logprob",
    "sampled_min_gap",
    "sampled_digit_min_gap",
    "sampled_claim_logprob",
    "sampled_claim_min_gap",
    "sampled_log_tokens",
)
"""What `step_statistics` returns, in order: the mean and the lowest log-prob of the step's
tokens; the lowest over tokens holding a digit; the lowest *gap* (a token's log-prob minus the
best alternative's at that position: 0 where the model wrote its own first choice) over all
tokens and over digit tokens; the log-prob (sum) and lowest gap of the step's last number (its
claim); ``log(1 + tokens)``. A step without digits takes the all-token values for the
``digit_*`` and ``claim_*`` statistics — a missing value must not read as the most confident
one."""

LOGPROB_FLOOR = -100.0
"""Where a log-prob of ``-inf`` is read (a token the server's own sampler allowed but the
model gave no mass): far below any sampled token, finite so the statistics stay numbers."""

_DIGIT = re.compile(r"\d")
_NUMBER_PIECE = re.compile(r"^[\s\d.,]*$")


@dataclass(frozen=True, slots=True)
class SampledToken:
    """One token the Reasoner wrote: its text, its log-prob and the best alternative's."""

    text: str
    logprob: float
    best: float

    @property
    def gap(self) -> float:
        return min(0.0, self.logprob - self.best)


def reply_tokens(message: BaseMessage) -> tuple[SampledToken, ...] | None:
    """The tokens of a reply with their log-probs (OpenAI shape:
    ``response_metadata["logprobs"]["content"]``), else ``None``: when the reply carries none
    (the model was not asked, or cannot) or they are malformed. A token without alternatives
    counts as the model's first choice (gap 0); a log-prob of ``-inf`` (a token the server's
    sampler alone allowed) reads as `LOGPROB_FLOOR`. A reply that wrote nothing has no tokens
    (``()``), whether or not the server sent an empty list: a block step continued after an
    empty call keeps the tokens of the calls that wrote it."""
    content = logprob_content(message)
    if content == [] or (content is None and not _text(message)):
        return ()  # a llama.cpp continuation echoes its prefill as text, with no tokens
    if not isinstance(content, list):
        return None
    tokens = []
    for entry in content:
        token = _token(entry)
        if token is None:
            return None
        tokens.append(token)
    return tuple(tokens)


def logprob_content(message: BaseMessage) -> Any:
    """The per-token log-prob entries of a reply as OpenAI shapes them
    (``response_metadata["logprobs"]["content"]``, which ``ChatOpenAI`` fills), unchecked;
    ``None`` when the reply has no ``logprobs`` object."""
    logprobs = (getattr(message, "response_metadata", None) or {}).get("logprobs")
    return logprobs.get("content") if isinstance(logprobs, dict) else None


def _text(message: BaseMessage) -> str:
    content = getattr(message, "content", "")
    return content if isinstance(content, str) else str(content or "")


def _logprob(value: Any) -> float | None:
    """A finite log-prob, ``-inf`` floored at `LOGPROB_FLOOR`; ``None`` for anything else."""
    if not isinstance(value, int | float) or math.isnan(value) or value > 0:
        return None
    return max(float(value), LOGPROB_FLOOR)


def _token(entry: Any) -> SampledToken | None:
    if not isinstance(entry, dict):
        return None
    value = _logprob(entry.get("logprob"))
    if value is None:
        return None
    tops = [
        _logprob(t.get("logprob")) for t in entry.get("top_logprobs") or [] if isinstance(t, dict)
    ]
    best = max([value, *(v for v in tops if v is not None)])
    return SampledToken(str(entry.get("token", "")), value, best)


def step_statistics(tokens: Sequence[SampledToken]) -> dict[str, float] | None:
    """`SAMPLED_FEATURES` of a step's tokens, by name; ``None`` for no tokens."""
    if not tokens:
        return None
    logprobs = [t.logprob for t in tokens]
    gaps = [t.gap for t in tokens]
    digits = [t for t in tokens if _DIGIT.search(t.text)]
    claim = _claim(tokens)
    digit_lp = [t.logprob for t in digits] or logprobs
    digit_gap = [t.gap for t in digits] or gaps
    return {
        "sampled_mean_logprob": sum(logprobs) / len(logprobs),
        "sampled_min_logprob": min(logprobs),
        "sampled_digit_min_logprob": min(digit_lp),
        "sampled_min_gap": min(gaps),
        "sampled_digit_min_gap": min(digit_gap),
        "sampled_claim_logprob": sum(t.logprob for t in claim) if claim else min(logprobs),
        "sampled_claim_min_gap": min(t.gap for t in claim) if claim else min(gaps),
        "sampled_log_tokens": math.log1p(len(tokens)),
    }


def _claim(tokens: Sequence[SampledToken]) -> list[SampledToken]:
    """The tokens of the step's last number: the last run of tokens made of digits (and the
    separators inside a number), which holds at least one digit."""
    end = max((i for i, t in enumerate(tokens) if _DIGIT.search(t.text)), default=None)
    if end is None:
        return []
    start = end
    while start > 0 and _NUMBER_PIECE.match(tokens[start - 1].text) and tokens[start - 1].text:
        if not tokens[start - 1].text.strip():  # a space ends the number ("67 = 161")
            break
        start -= 1
    return list(tokens[start : end + 1])


def span_statistics(
    tokens: Sequence[SampledToken], start: int, end: int, offset: int = 0
) -> dict[str, float] | None:
    """`step_statistics` of the tokens overlapping characters ``[start, end)`` of the text the
    tokens spell (from character ``offset`` of it on)."""
    chosen, position = [], offset
    for token in tokens:
        token_end = position + len(token.text)
        if token_end > start and position < end:
            chosen.append(token)
        position = token_end
    return step_statistics(chosen)


def trace_step_statistics(
    text: str, steps: Sequence[str], tokens: Sequence[SampledToken] | None
) -> list[dict[str, float] | None] | None:
    """`step_statistics` of each of ``steps`` cut out of a whole trace ``text`` whose reply
    carried ``tokens``, each step found in the text after the previous one. ``None`` without
    tokens, or when the tokens do not spell the text's end (a server that re-spaces tokens);
    a step not found verbatim gets ``None``."""
    if not tokens:
        return None
    spelled = "".join(t.text for t in tokens)
    if not text.endswith(spelled):
        return None
    offset = len(text) - len(spelled)
    found: list[dict[str, float] | None] = []
    cursor = 0
    for step in steps:
        at = text.find(step, cursor)
        if at < 0 or not step:
            found.append(None)
            continue
        cursor = at + len(step)
        found.append(span_statistics(tokens, at, cursor, offset))
    return found


def token_logprobs(message: BaseMessage) -> tuple[float, ...] | None:
    """The log-probs of the tokens of a reply (OpenAI shape, see `Reasoner`), else ``None``.

    ``None`` when the reply carries none (the model was not asked, or cannot) or they are
    malformed (`reply_tokens`): ranking then falls back to the DM's score instead of failing
    the run.
    """
    tokens = reply_tokens(message)
    return tuple(t.logprob for t in tokens) if tokens else None


def mean_logprob(message: BaseMessage) -> float | None:
    """Mean log-prob of the tokens of a reply (see `token_logprobs`), else ``None``."""
    numbers = token_logprobs(message)
    return sum(numbers) / len(numbers) if numbers else None
