"""`EvalRecord`: one evaluated (method, item) pair, one JSON Lines row.

The runner appends a record as soon as an item finishes (through
`drr_agent.offline.jsonl.RecordFile`, the same resumable store traces and labels use), so an
interrupted evaluation resumes from what is on disk: the key is ``(method, item_id)``, and a
run skips every key its records file already holds. An item whose method failed after its
retries is recorded too, with ``error`` set: it counts as answered wrongly in the summary and
is never silently dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drr_agent.usage import ModelUsage

RECORDS_FILE = "records.jsonl"
"""Name of the records file inside a run folder."""


class TokenUsage(BaseModel):
    """Reasoner tokens spent on one item (every Reasoner call, critic calls included)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: int = Field(default=0, ge=0)
    completion: int = Field(default=0, ge=0)

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt=self.prompt + other.prompt, completion=self.completion + other.completion
        )


class EvalRecord(BaseModel):
    """The outcome of one method on one item.

    Attributes:
        run_id: The evaluation run (kept across resumes; see ``run.json`` in the run folder).
        task: `Task.name`.
        method: A key of `drr_agent.evaluation.methods.METHODS`.
        item_id: `TaskItem.id`.
        question: The question asked (for reading the file by eye).
        gold: The gold answer.
        answer: The method's answer as it stated it (``None``: no answer, abstained or failed).
        correct: ``answer`` states the gold answer (the task's checker decides).
        abstained: The method chose not to answer (DRR's budget ran out without a trusted
            answer, with ``on_budget_exhausted="abstain"`` or no scored answer seen).
        tokens: Reasoner tokens spent on the item.
        reasoner_calls: Reasoner requests made (critic requests included).
        dm_calls: Batches the DM (or the critic in its place) scored.
        backtracks: Pops back to a parent thought (graph methods).
        latency_s: Wall time of the item, from when it got a concurrency slot.
        usage: Every model's calls and tokens on the item — the Reasoner's, and the DM's own
            (classifier, verifier LM, lookahead) — keyed by model (`drr_agent.usage`).
        compute: ``2 × parameters × tokens processed`` summed over ``usage`` (``None``: a
            model's size is unknown, or a record from before it was counted).
        error: Why the item failed after its retries (``None`` when it did not).
        details: Method-specific extras (votes, trace scores, the thought tree, ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    run_id: str
    task: str
    method: str
    item_id: str
    question: str
    gold: str
    answer: str | None = None
    correct: bool = False
    abstained: bool = False
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    reasoner_calls: int = Field(default=0, ge=0)
    dm_calls: int = Field(default=0, ge=0)
    backtracks: int = Field(default=0, ge=0)
    latency_s: float = Field(default=0.0, ge=0.0)
    usage: dict[str, ModelUsage] = Field(default_factory=dict)
    compute: float | None = None
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.item_id)
