"""Typed configuration of the DRR loop: thresholds, budgets and failure outcomes.

One `DRRConfig` drives `build_graph`, the CLI and (later) evaluations, so a run is fully
described by one serialisable object. It is also the graph's LangGraph ``context_schema``:
passing ``context=DRRConfig(...)`` to ``invoke`` overrides the configuration bound at build
time for that run only, without rebuilding the graph.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drr_agent.steps import StepFormat


class DRRConfig(BaseModel):
    """How the `decide` node routes and when a run stops.

    Attributes:
        accept_threshold: A thought whose DM score (probability that the step is on a path to
            the gold answer) is at least this is accepted and the Reasoner thinks on from it.
            ``None`` (default) takes the threshold stored with the DM (``drr train`` writes one),
            else 0.5.
        answer_threshold: A thought that carries a final answer ends the run only if its score is
            at least this. ``None`` (default): the DM's stored value, else ``accept_threshold``.
        candidates_per_step: Thoughts the Reasoner proposes per `reason` call (sampled
            concurrently); the DM scores them in one batch and `decide` takes the best
            (ranked as ``dm_weight`` says).
        dm_weight: β, how the candidates that pass the thresholds are ranked: by
            ``β·score + (1−β)·exp(mean token log-prob)`` (`policy.rank_score`), the blend of
            critic and Reasoner likelihood that GRACE ranks candidates by. The Reasoner's term
            is the per-token probability ``exp(mean log-prob)`` rather than the log-prob
            itself so that both terms live in [0, 1] and β weighs like against like. ``1.0``
            (default) ranks by the DM alone, exactly as before, and asks for no log-probs;
            below 1 the graph asks the Reasoner for them, and a thought without one (the
            model returned none) is ranked by its DM score alone. The thresholds still apply
            to the DM's score only: the blend chooses among passing candidates, it never lets
            one through.
        max_steps: Longest accepted path (depth) before the run stops on budget.
        max_retries_per_point: Rejections allowed at one point of the path before `decide`
            pops back to the parent thought (a backtrack).
        on_point_spent: What `decide` does when ``max_retries_per_point`` candidates at one
            point were all rejected. ``"backtrack"`` (default): pop back to the parent (or stop
            where there is none). ``"best"``: accept the best-ranked of them instead — the DM's
            judgement becomes *relative* to the siblings it saw there rather than a veto
            against one global threshold, whose level depends on the question; the greedy
            candidate (the first one proposed there) keeps its place unless another beats it
            by ``greedy_margin``.
        greedy_margin: Under ``on_point_spent="best"``, how much higher another candidate's
            rank must be than the greedy one's to be chosen over it.
        max_backtracks: Pops allowed per run before it stops on budget.
        max_reasoner_calls: `reason` calls allowed per run before it stops on budget.
        greedy_first: At a point of the path not tried before, the first candidate is the
            Reasoner's greedy step (temperature 0); sampling explores only after the DM rejects
            (and for the other candidates). A DM that accepts everything then reproduces greedy
            chain-of-thought, and every rejection can only move away from a step it judged bad.
        force_final_answer: When the budget allows one more step only (the path is one step
            short of ``max_steps``, one Reasoner call is left, or one more rejection where
            there is no backtrack left would end the run — `policy.last_step_allowed`), ask
            for the final answer (`StepPrompt`'s ``final``) instead of another step, so a run
            that used its budget still ends with an answer for the DM to judge rather than
            with none. Under ``on_budget_exhausted="answer_best"``, a point spent with no
            final answer anywhere in the tree also gets one closing call asking for it.
        on_budget_exhausted: ``"answer_best"`` answers with the best-scored final answer seen
            (abstaining if none was seen); ``"abstain"`` always abstains.
        on_reasoner_error: After the retries below fail, ``"abstain"`` ends the run with the
            error recorded as the reason; ``"raise"`` propagates it (the checkpoint lets the run
            resume later).
        on_scorer_error: Same choice for a failing DM.
        reasoner_timeout_s: Per-call timeout for the Reasoner.
        reasoner_retries: Extra attempts after a failed or timed-out Reasoner call, with
            exponential backoff and jitter.
        scorer_timeout_s / scorer_retries: The same for the DM.
        step_format: How steps are separated and a final answer is recognised. ``None``
            (default): the Reasoner's own (`Reasoner.step_format` — lines for the embedded
            SmolLM2, paragraph blocks for instruct models); evaluations set the task's answer
            rules cut the Reasoner's way (`Reasoner.format_for`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    answer_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    candidates_per_step: int = Field(default=1, ge=1, le=64)
    dm_weight: float = Field(default=1.0, ge=0.0, le=1.0)
    max_steps: int = Field(default=8, ge=1)
    max_retries_per_point: int = Field(default=3, ge=1)
    max_backtracks: int = Field(default=4, ge=0)
    on_point_spent: Literal["backtrack", "best"] = "backtrack"
    greedy_margin: float = Field(default=0.0, ge=0.0, le=1.0)
    max_reasoner_calls: int = Field(default=24, ge=1)
    greedy_first: bool = True
    force_final_answer: bool = True
    on_budget_exhausted: Literal["answer_best", "abstain"] = "answer_best"
    on_reasoner_error: Literal["abstain", "raise"] = "abstain"
    on_scorer_error: Literal["abstain", "raise"] = "abstain"
    reasoner_timeout_s: float = Field(default=120.0, gt=0)
    reasoner_retries: int = Field(default=2, ge=0)
    scorer_timeout_s: float = Field(default=60.0, gt=0)
    scorer_retries: int = Field(default=2, ge=0)
    step_format: StepFormat | None = None

    @model_validator(mode="after")
    def _budgets_are_consistent(self) -> DRRConfig:
        if self.max_reasoner_calls < self.max_steps:
            raise ValueError(
                f"max_reasoner_calls ({self.max_reasoner_calls}) is below max_steps "
                f"({self.max_steps}): the run could never reach its step budget"
            )
        return self

    @property
    def needs_logprobs(self) -> bool:
        """Whether ranking uses the Reasoner's log-probs (``dm_weight < 1``), so asks for them."""
        return self.dm_weight < 1.0

    def thresholds(self, dm_defaults: dict[str, float] | None = None) -> tuple[float, float]:
        """Resolve ``(accept, answer)``: explicit config, then the DM's stored values, then 0.5."""
        stored = dm_defaults or {}
        accept = self.accept_threshold
        if accept is None:
            accept = stored.get("accept_threshold", 0.5)
        answer = self.answer_threshold
        if answer is None:
            answer = stored.get("answer_threshold", accept)
        return float(accept), float(answer)
