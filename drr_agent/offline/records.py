"""Records of the offline module, one JSON Lines row each: traces and labelled steps.

Every file the offline module writes is JSON Lines of one of these models, appended as rows
are produced (see `drr_agent.offline.jsonl`), so a killed job resumes from what is on disk.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from drr_agent.scorers.base import StepContext

SplitName = Literal["train", "dev", "test", "held_out"]
"""The split part a row comes from (``held_out``: the old name of ``test``)."""


class SamplingSettings(BaseModel):
    """How traces were sampled (recorded so a file can be matched to its Reasoner run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float
    max_tokens: int
    seed: int
    samples_per_item: int
    prompt_style: str
    instruction: str


class _OfSample(BaseModel):
    """The fields that place a record: which sample of which item, in which task and split.

    Traces and labelled steps both carry them (a labelled step points back at its trace), so
    they are declared once; JSON field order is this one, then the record's own fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    task: str
    split: SplitName
    item_id: str
    sample_index: int = Field(ge=0)


class TraceRecord(_OfSample):
    """One sampled reasoning trace for one item, split into steps and checked.

    ``steps`` end at the first step that carries a final answer (what follows is drift the
    graph would never reach). ``answer_marked`` says whether that answer came from an answer
    marker ("Answer: X") or, failing one, from the last step (small models often omit it).
    """

    question: str
    gold: str
    reasoner: str
    sampling: SamplingSettings
    status: Literal["ok", "failed"]
    text: str = ""
    steps: list[str] = Field(default_factory=list)
    answer: str | None = None
    answer_marked: bool = False
    correct: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    step_signals: list[dict[str, float] | None] | None = None
    """Per step, the statistics of the Reasoner's own token log-probs
    (`drr_agent.reasoners.signals.SAMPLED_FEATURES`); ``None`` when they were not asked for
    or the server returned none (a step not found in the text has ``None``)."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.item_id, self.sample_index)


class StepExample(_OfSample):
    """One labelled step: the DM's training / evaluation unit.

    The DM input is ``dm_text_pair(example.context)``.

    Attributes:
        previous: Steps before this one in the trace.
        step: The step being judged.
        label: Soft label in [0, 1]: the probability that continuing from this prefix reaches
            the gold answer (outcome labels are 0 or 1; Monte-Carlo labels are fractions).
        label_kind: ``"outcome"`` (the trace's own result), ``"mc"`` (free rollouts from
            the prefix) or ``"mc_answer"`` (the final answer asked for right after the prefix,
            as the graph asks for it).
        final: The step carries a final answer (it is judged against ``answer_threshold``).
        gold: The item's gold answer (from the trace), so metrics that need it — the
            final-answer minimal pairs of `drr_agent.offline.pairs` — can be computed from a
            labels file alone; ``None`` in files written before it was recorded.
        lookahead: The Reasoner's greedy final answer right after this step, recorded by
            answer-rollout labelling (`drr_agent.scorers.lookahead`), so training a DM that
            reads it asks the Reasoner nothing again; ``""`` when it gave none, ``None`` when
            it was not asked.
        signals: The statistics of the Reasoner's own token log-probs when it wrote the step
            (`TraceRecord.step_signals`), for a DM that reads them; ``None`` when unknown.
    """

    step_index: int = Field(ge=0)
    question: str
    previous: list[str]
    step: str
    label: float = Field(ge=0.0, le=1.0)
    label_kind: Literal["outcome", "mc", "mc_answer"]
    rollouts: int = Field(default=0, ge=0)
    final: bool = False
    gold: str | None = None
    lookahead: str | None = None
    signals: dict[str, float] | None = None

    @property
    def hard_label(self) -> int:
        return int(self.label >= 0.5)

    @property
    def context(self) -> StepContext:
        """The step as a scorer sees it: training, evaluation and the graph share one shape."""
        return StepContext(self.question, tuple(self.previous), self.step, self.signals)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.item_id, self.sample_index, self.step_index)
