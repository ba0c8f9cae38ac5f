"""`DMCard`: the one schema of a DM folder's ``drr_dm.json``.

The card is the contract between training (which writes it), the in-process scorer, the served
scorer and the vLLM export (which read or copy it), and the evaluation harness (which refuses a
DM on its own training questions). One typed model, read and written here only, so a field
means the same thing everywhere and a broken card is an error naming the file and the field —
not a ``KeyError`` three layers down.

Every field is optional: a Hugging Face classifier folder with no card at all, or a hand-written
card holding only thresholds, is a valid DM. Unknown keys are kept (a newer drr-agent may add
some) and written back unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from drr_agent.errors import DMLoadError, describe_validation_error
from drr_agent.scorers.base import set_thresholds
from drr_agent.scorers.likelihood import LikelihoodHead

__all__ = ["CARD_FORMAT_VERSION", "DM_METADATA_FILE", "DMCard"]

DM_METADATA_FILE = "drr_dm.json"
"""Written by ``drr train`` next to the weights: thresholds, label names, window, provenance."""

CARD_FORMAT_VERSION = 1
"""The newest card format this drr-agent honours. A card of a newer format may carry a field
that changes what the DM is (unknown keys are kept, not read), so it is refused, not
half-read."""


class DMCard(BaseModel):
    """What ``drr_dm.json`` records about a DM.

    Attributes:
        name: Shown by the graph and in reports (default: the folder's name).
        positive_label: The label meaning "good step" (``good`` for DMs `drr train` writes).
        accept_threshold / answer_threshold: The classifier's thresholds, chosen on
            ``threshold_source`` (``dev``, or ``eval_split``: held-out training questions).
        max_length: The token window the DM was trained with.
        input_format: How a context becomes the DM's text pair (for readers of the card).
        base_model: What was fine-tuned.
        training / class_weights / data / metrics: The training settings, loss weights, data
            summary and dev / test reports (`DMReport` as JSON).
        training_questions: 12-hex hashes of the normalised training questions
            (`drr_agent.tasks.splits.question_hash`).
        likelihood_head: A `LikelihoodHead` over the classifier and the Reasoner's token
            statistics; when present, *it* is the DM (`load_dm` wraps the classifier) and
            ``metrics`` are its reports, ``classifier_metrics`` the classifier's alone.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    format_version: int = 1
    name: str | None = None
    positive_label: str | None = None
    accept_threshold: float | None = None
    answer_threshold: float | None = None
    threshold_source: str | None = None
    max_length: int | None = None
    input_format: str | None = None
    base_model: str | None = None
    created: str | None = None
    drr_agent_version: str | None = None
    training: dict[str, Any] | None = None
    class_weights: dict[str, float] | None = None
    data: dict[str, Any] | None = None
    metrics: dict[str, Any] = {}
    classifier_metrics: dict[str, Any] | None = None
    training_questions: list[str] | None = None
    likelihood_head: LikelihoodHead | None = None

    @field_validator("format_version")
    @classmethod
    def _readable(cls, version: int) -> int:
        if version > CARD_FORMAT_VERSION:
            raise ValueError(
                f"card format {version} was written by a newer drr-agent; this one "
                f"(format {CARD_FORMAT_VERSION}) cannot honour it — upgrade drr-agent"
            )
        return version

    @classmethod
    def load(cls, folder: str | Path) -> DMCard:
        """The card of a DM folder (an empty card when it has none).

        Raises:
            DMLoadError: The file is not JSON, not an object, or a field has the wrong type
                (the message names the file and the field).
        """
        path = Path(folder).expanduser() / DM_METADATA_FILE
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DMLoadError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise DMLoadError(f"{path}: expected a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise DMLoadError(f"{path}: {describe_validation_error(exc)}") from exc

    def save(self, folder: str | Path) -> Path:
        """Write the card into ``folder`` atomically (temp file + rename); return its path."""
        path = Path(folder) / DM_METADATA_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        tmp.replace(path)
        return path

    @property
    def thresholds(self) -> dict[str, float]:
        """The classifier's recorded thresholds (only those that are set)."""
        return set_thresholds(self.accept_threshold, self.answer_threshold)

    @property
    def head_alone(self) -> bool:
        """Whether the card is the whole DM: a likelihood head that reads no classifier (the
        light DM), so the folder needs no weights and nothing of it is served."""
        head = self.likelihood_head
        return head is not None and not head.reads_classifier

    @property
    def trained_questions(self) -> frozenset[str] | None:
        """The training-question hashes (``None``: not recorded)."""
        return None if self.training_questions is None else frozenset(self.training_questions)
