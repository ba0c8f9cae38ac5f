"""Typed configuration of the DRR loop: thresholds, budgets and failure outcomes.

One `DRRConfig` drives `build_graph`, the CLI and (later) evaluations, so a run is fully
described by one serialisable object. It is also the graph's LangGraph ``context_schema``:
passing ``context=DRRConfig(...)`` to ``invoke`` overrides the configuration bound at build
time for that run only, without rebuilding the graph. Where the caller of a run is not
trusted (a LangGraph server's clients), `ContextCaps` bounds what a context may ask for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drr_agent.errors import ContextCapError
from drr_agent.steps import DEFAULT_ANSWER_PATTERNS, GuardedStepFormat, StepFormat


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


_TRUSTED_PATTERNS = frozenset({DEFAULT_ANSWER_PATTERNS})


class ContextCaps(BaseModel):
    """What a run's context may ask for where the caller is not trusted: a LangGraph server's
    clients choose the run's `DRRConfig` (its context), so a deployment bounds every budget,
    retry count and timeout, and searches caller-supplied answer patterns within a time limit.

    `drr_agent.deployment` reads each cap from ``DRR_<FIELD>_CAP`` (e.g.
    ``DRR_MAX_REASONER_CALLS_CAP=100``; `from_env`) and `build_graph` (``caps=``) checks the
    context of every run against them: a context over a cap is refused with a
    `ContextCapError` naming the field, its value, the cap and the variable (a refusal, not a
    silent clamp: the caller learns its run is not the one it asked for). The graph's own
    configuration (``build_graph(config=...)``) is the deployer's and is not capped.

    Answer patterns (``step_format.answer_patterns``) other than the defaults are at most
    ``answer_patterns`` patterns of at most ``pattern_chars`` characters, compiled by the
    `regex` package and each search limited to ``pattern_timeout_s`` seconds
    (`drr_agent.steps.GuardedStepFormat`): ``(a+)+$`` on ``"aaaa…!"`` costs that, not hours.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int = Field(default=64, ge=1)
    max_retries_per_point: int = Field(default=16, ge=1)
    max_backtracks: int = Field(default=64, ge=0)
    max_reasoner_calls: int = Field(default=256, ge=1)
    candidates_per_step: int = Field(default=16, ge=1)
    reasoner_timeout_s: float = Field(default=600.0, gt=0)
    reasoner_retries: int = Field(default=5, ge=0)
    scorer_timeout_s: float = Field(default=300.0, gt=0)
    scorer_retries: int = Field(default=5, ge=0)
    answer_patterns: int = Field(default=16, ge=1)
    pattern_chars: int = Field(default=500, ge=1)
    pattern_timeout_s: float = Field(default=0.05, gt=0)

    @staticmethod
    def variable(field: str) -> str:
        """The environment variable of a cap: ``DRR_<FIELD>_CAP``."""
        return f"DRR_{field.upper()}_CAP"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContextCaps:
        """The caps the environment sets (``DRR_<FIELD>_CAP``), the defaults elsewhere.

        Raises:
            ValueError: A variable is not a valid value for its cap (the message names it).
        """
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for field in cls.model_fields:
            value = env.get(cls.variable(field), "").strip()
            if value:
                values[field] = value
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValidationError as exc:
            wrong = ", ".join(
                f"{cls.variable(str(e['loc'][0]))}={values.get(str(e['loc'][0]))!r}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(f"invalid context cap: {wrong}") from exc

    def check(self, config: DRRConfig) -> DRRConfig:
        """``config`` if it is within the caps (caller-supplied answer patterns guarded: see
        the class), else `ContextCapError`."""
        for field in _CAPPED:
            value, cap = getattr(config, field), getattr(self, field)
            if value > cap:
                raise ContextCapError(
                    f"context field {field}={value} exceeds this deployment's cap of {cap} "
                    f"(set by {self.variable(field)}); ask for at most {cap}"
                )
        fmt = config.step_format
        if fmt is None or isinstance(fmt, GuardedStepFormat):
            return config
        if fmt.answer_patterns in _TRUSTED_PATTERNS:
            return config
        patterns = fmt.answer_patterns
        if len(patterns) > self.answer_patterns:
            raise ContextCapError(
                f"context field step_format.answer_patterns has {len(patterns)} patterns; this "
                f"deployment allows {self.answer_patterns} ({self.variable('answer_patterns')})"
            )
        for i, pattern in enumerate(patterns):
            if len(pattern) > self.pattern_chars:
                raise ContextCapError(
                    f"context field step_format.answer_patterns[{i}] is {len(pattern)} "
                    f"characters; this deployment allows {self.pattern_chars} "
                    f"({self.variable('pattern_chars')})"
                )
        try:
            guarded = GuardedStepFormat.guarding(fmt, self.pattern_timeout_s)
        except ValueError as exc:
            raise ContextCapError(f"context field step_format: {exc}") from exc
        return config.model_copy(update={"step_format": guarded})


_CAPPED = (
    "max_steps",
    "max_retries_per_point",
    "max_backtracks",
    "max_reasoner_calls",
    "candidates_per_step",
    "reasoner_timeout_s",
    "reasoner_retries",
    "scorer_timeout_s",
    "scorer_retries",
)
"""The `DRRConfig` fields a `ContextCaps` bounds (its fields of the same names)."""
