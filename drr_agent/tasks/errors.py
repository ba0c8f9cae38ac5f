"""Errors raised while loading tasks and splits; each message names what to fix."""

from __future__ import annotations

from drr_agent.errors import DRRError

__all__ = ["SplitLeakError", "TaskDataError", "TaskSourceMissingError", "UnknownTaskError"]


class UnknownTaskError(DRRError, ValueError):
    """`load_task` got a name that is not registered (the message lists the known names)."""


class TaskDataError(DRRError, ValueError):
    """A data file or row is malformed (the message names the file, line or item and field)."""


class TaskSourceMissingError(DRRError, ImportError):
    """The package or file a task is loaded from is not installed / not found."""


class SplitLeakError(DRRError, ValueError):
    """An item id is in both the train and the held-out part of a split."""
