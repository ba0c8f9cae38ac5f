"""What a method is: its signature, what it may use (`MethodContext`: the task, the Reasoner,
the DM, the budgets in `MethodSettings`) and what it returns (`MethodOutcome`).

The methods themselves are in `drr_agent.evaluation.methods` (the registry and the graph
methods), `~drr_agent.evaluation.whole_traces` and `~drr_agent.evaluation.deepconf`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drr_agent.config import DRRConfig
from drr_agent.evaluation.records import TokenUsage
from drr_agent.reasoners.base import Reasoner
from drr_agent.reasoners.confidence import ConfidenceMeasure
from drr_agent.reasoners.sampling import TRACE_MAX_TOKENS, TRACE_TEMPERATURE
from drr_agent.scorers.base import StepScorer
from drr_agent.steps import StepFormat
from drr_agent.tasks.base import Task, TaskItem

__all__ = ["Method", "MethodContext", "MethodOutcome", "MethodSettings"]


class MethodSettings(BaseModel):
    """Budgets and sampling of the whole-trace methods (the graph's come from `DRRConfig`).

    Attributes:
        k: Traces sampled per item by ``self_consistency``, ``best_of_n_dm`` and ``dm_vote``.
        temperature: Sampling temperature of those ``k`` traces (``cot`` is always greedy).
        max_tokens: Longest whole trace (completion tokens) for ``cot`` and the ``k`` traces.
        seed: Base seed; trace ``i`` of item ``x`` uses ``sample_seed(seed, x, i)``, and the
            graph methods seed their Reasoner per item when the backend takes a seed.
        aggregate: How ``best_of_n_dm`` and ``dm_vote`` turn a trace's step scores into one
            (`drr_agent.evaluation.methods`).
        retries: Extra attempts after a failed or timed-out Reasoner / DM call.
        timeout_s: Per-call timeout.
        critic_thresholds: Accept / answer thresholds of the ``self_critique`` critic, picked
            on labelled training steps as the DM's are (`calibrate_thresholds`); ``None``
            leaves the graph's default (0.5), which an uncalibrated P("yes") rarely suits.
        oracle_flip: How often ``noisy_oracle`` flips the oracle's verdict (0: the oracle,
            0.5: a coin).
        deepconf_keep: Share of the readable traces ``deepconf`` keeps, the most confident
            first (DeepConf's η: 0.1 aggressive, 0.9 conservative; at least one is kept).
        deepconf_window: Tokens per sliding window of the group confidence (DeepConf uses
            2048 on traces of many thousand tokens; these traces are a few hundred).
        deepconf_measure: How a trace's token confidences become one number
            (`drr_agent.reasoners.confidence.trace_confidence`); ``deepconf``
            only: ``deepconf_online`` cuts by a window's mean, so it reads the lowest group.
        deepconf_top_logprobs: Log-probs asked per token (the ``k`` of the token confidence).
        deepconf_warmup: ``deepconf_online``'s warm-up samples, which set its threshold
            (DeepConf's N_init: 16 of 512 traces in the paper; here a share of ``k``).
        deepconf_consensus: ``deepconf_online`` samples no more after its warm-up when the
            warm-up's heaviest answer holds this share of its weighted vote (DeepConf's τ).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(default=4, ge=1)
    temperature: float = Field(default=TRACE_TEMPERATURE, ge=0.0)
    max_tokens: int = Field(default=TRACE_MAX_TOKENS, ge=1)
    seed: int = 0
    aggregate: Literal["min", "mean"] = "min"
    retries: int = Field(default=2, ge=0)
    timeout_s: float = Field(default=120.0, gt=0)
    critic_thresholds: dict[str, float] | None = None
    oracle_flip: float = Field(default=0.2, ge=0.0, le=0.5)
    deepconf_keep: float = Field(default=0.5, gt=0.0, le=1.0)
    deepconf_window: int = Field(default=32, ge=1)
    deepconf_measure: ConfidenceMeasure = "lowest_group"
    deepconf_top_logprobs: int = Field(default=5, ge=2, le=20)
    deepconf_warmup: int = Field(default=4, ge=1)
    deepconf_consensus: float = Field(default=0.95, gt=0.5, le=1.0)


@dataclass(frozen=True)
class MethodContext:
    """What every method may use: the task, the Reasoner, the DM and the budgets.

    Attributes:
        task: The task the items come from (instruction, step format, answer type).
        reasoner: The one Reasoner all methods share.
        scorer: The DM; required by the methods in `DM_METHODS`.
        config: The graph's configuration, the same for ``drr`` and ``self_critique``. Its
            ``step_format`` is replaced by `step_format`, so all methods cut steps alike.
        settings: Budgets of the whole-trace methods.
        run: Which run of the item a graph method is (``drr_vote`` runs the graph ``k``
            times): its Reasoner is seeded ``sample_seed(seed, item, run)``, as sample
            ``run`` of a whole-trace method is, so one mechanism seeds every repeat.
    """

    task: Task
    reasoner: Reasoner
    scorer: StepScorer | None = None
    config: DRRConfig = field(default_factory=DRRConfig)
    settings: MethodSettings = field(default_factory=MethodSettings)
    run: int = 0

    @property
    def step_format(self) -> StepFormat:
        """The task's answer rules cut the way the Reasoner writes (`Reasoner.format_for`)."""
        return self.reasoner.format_for(self.task.step_format)

    def require_scorer(self, method: str) -> StepScorer:
        """The DM, which ``method`` cannot run without."""
        if self.scorer is None:
            raise ValueError(f"method {method!r} needs a DM: set MethodContext.scorer")
        return self.scorer


class MethodOutcome(BaseModel):
    """What a method returns for one item (the runner adds gold, correctness and latency)."""

    model_config = ConfigDict(extra="forbid")

    answer: str | None
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    reasoner_calls: int = 0
    dm_calls: int = 0
    backtracks: int = 0
    abstained: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


Method = Callable[[TaskItem, MethodContext], Awaitable[MethodOutcome]]
