"""Per-method summary of an evaluation: accuracy with a 95% Wilson interval, cost, abstention.

Definitions, per method, over its ``n`` records (one per item):

- ``errors``: records whose method failed after its retries; ``abstained``: records where the
  method chose not to answer; ``answered = n - abstained - errors``.
- ``accuracy = correct / n``: an abstention or an error counts as not correct (nothing is
  dropped from the denominator). Its 95% interval is Wilson's score interval (below).
- ``coverage = answered / n``; ``abstention_rate = abstained / n``; ``error_rate = errors / n``
  (the three add up to 1).
- ``selective_accuracy = correct / answered``: accuracy on the items the method answered
  (``None`` when it answered none).
- Cost: means over the records without an error (a failed item's cost is unknown) of prompt,
  completion and total Reasoner tokens, Reasoner calls, DM calls, backtracks and latency.
  ``tokens_vs_cot`` divides the mean total tokens by ``cot``'s, when ``cot`` was run.
- Compute (every model, the DM's included; `drr_agent.usage`): ``mean_compute`` is the mean
  over the same records of ``2 × parameters × tokens processed`` summed over every model that
  ran (``None`` when a record lacks it: a model of unknown size, or a record from before it
  was counted), ``compute_vs_cot`` its ratio to ``cot``'s; ``usage`` the mean calls and tokens
  per item of each model (a model absent from a record counts 0 there).

Across methods (see `paired`): ``comparisons`` holds the paired difference of accuracy
(bootstrap interval, wins / losses, McNemar's exact p) of each pair of `paired.DEFAULT_PAIRS` that
ran, on the items both share, and ``critic_efficiency`` the share of the ``stepwise`` to
``oracle`` gap that ``drr`` closes, when all three ran.

Wilson score interval for ``x`` successes in ``n`` trials, with ``p = x / n`` and ``z = 1.96``
(the 97.5% normal quantile, 1.959964)::

    centre    = (p + z²/(2n)) / (1 + z²/n)
    half      = z / (1 + z²/n) * sqrt(p(1 - p)/n + z²/(4n²))
    interval  = [centre - half, centre + half]

e.g. 7/10: centre 0.6445, half 0.2477, interval [0.3968, 0.8922]. Unlike ``p ± z·sqrt(p(1-p)/n)``
it stays inside [0, 1] and is not empty at 0/n or n/n, which matters at the small ``n`` of CPU
evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from drr_agent.evaluation.paired import (
    CriticEfficiency,
    PairedComparison,
    compare_all,
    critic_efficiency,
)
from drr_agent.evaluation.records import EvalRecord
from drr_agent.offline.jsonl import write_json
from drr_agent.scorers.parts import format_parameters

Z_95 = 1.959963984540054
"""The two-sided 95% normal quantile."""

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (see the module docstring); ``(0, 1)`` if n = 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


class ModelUsageMeans(BaseModel):
    """One model's mean calls and tokens per item of a method (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calls: float
    prompt_tokens: float
    completion_tokens: float
    cached_prompt_tokens: float
    parameters: int | None


class MethodSummary(BaseModel):
    """One row of the summary table (see the module docstring for every definition)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    n: int
    correct: int
    answered: int
    abstained: int
    errors: int
    accuracy: float
    ci_low: float
    ci_high: float
    coverage: float
    abstention_rate: float
    error_rate: float
    selective_accuracy: float | None
    mean_prompt_tokens: float
    mean_completion_tokens: float
    mean_tokens: float
    tokens_vs_cot: float | None = None
    mean_reasoner_calls: float
    mean_dm_calls: float
    mean_backtracks: float
    mean_latency_s: float
    mean_compute: float | None = None
    compute_vs_cot: float | None = None
    usage: dict[str, ModelUsageMeans] = {}


class EvalSummary(BaseModel):
    """The summary of one run folder: settings, then one `MethodSummary` per method."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    task: str
    items: int
    reasoner: str
    scorer: str | None
    settings: dict[str, Any]
    config: dict[str, Any]
    methods: list[MethodSummary]
    comparisons: list[PairedComparison] = []
    critic_efficiency: CriticEfficiency | None = None
    out_dir: str = ""

    def method(self, name: str) -> MethodSummary:
        for row in self.methods:
            if row.method == name:
                return row
        raise KeyError(name)

    def to_markdown(self) -> str:
        """The summary as a Markdown table with the budgets it was run at."""
        s, c = self.settings, self.config
        lines = [
            f"# Evaluation `{self.run_id}`: {self.task}, {self.items} items",
            "",
            f"Reasoner `{self.reasoner}`; DM `{self.scorer or '-'}`. "
            f"Whole traces: k={s.get('k')}, temperature {s.get('temperature')}, "
            f"max_tokens {s.get('max_tokens')}, best-of-n aggregate {s.get('aggregate')}. "
            f"Graph: candidates/step {c.get('candidates_per_step')}, max_steps "
            f"{c.get('max_steps')}, max_reasoner_calls {c.get('max_reasoner_calls')}, "
            f"max_backtracks {c.get('max_backtracks')}, thresholds accept "
            f"{c.get('accept_threshold')} / answer {c.get('answer_threshold')} (None: the DM's "
            f"stored value, else 0.5), on budget {c.get('on_budget_exhausted')}.",
            "",
            "| method | n | accuracy [95% CI] | coverage | selective acc. | abstained | errors "
            "| prompt tok | completion tok | total tok (× CoT) | Reasoner calls | DM calls "
            "| backtracks | latency s |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.methods:
            selective = "-" if r.selective_accuracy is None else f"{r.selective_accuracy:.3f}"
            ratio = "" if r.tokens_vs_cot is None else f" ({r.tokens_vs_cot:.2f}×)"
            lines.append(
                f"| {r.method} | {r.n} | {r.accuracy:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] "
                f"| {r.coverage:.3f} | {selective} | {r.abstained} | {r.errors} "
                f"| {r.mean_prompt_tokens:.1f} | {r.mean_completion_tokens:.1f} "
                f"| {r.mean_tokens:.1f}{ratio} | {r.mean_reasoner_calls:.2f} "
                f"| {r.mean_dm_calls:.2f} | {r.mean_backtracks:.2f} | {r.mean_latency_s:.2f} |"
            )
        lines += [
            "",
            "Accuracy counts abstentions and errors as wrong; selective accuracy is over answered "
            "items; token, call and latency columns are means per item (errors excluded); "
            "tokens are Reasoner tokens, self-critique's critic calls included.",
        ]
        return "\n".join(lines + self._cost_markdown() + self._paired_markdown()) + "\n"

    def _cost_markdown(self) -> list[str]:
        """Every model's calls and tokens per item and the compute figure (empty for runs
        from before they were counted)."""
        if not any(r.usage for r in self.methods):
            return []
        lines = [
            "",
            "## Cost by model",
            "",
            "| method | model | parameters | calls | prompt tok (cached) | completion tok |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in self.methods:
            for name, u in r.usage.items():
                size = format_parameters(u.parameters)
                lines.append(
                    f"| {r.method} | {name} | {size} | {u.calls:.2f} "
                    f"| {u.prompt_tokens:.1f} ({u.cached_prompt_tokens:.1f}) "
                    f"| {u.completion_tokens:.1f} |"
                )
        lines += ["", "| method | compute per item (× CoT) |", "|---|---:|"]
        for r in self.methods:
            ratio = "" if r.compute_vs_cot is None else f" ({r.compute_vs_cot:.2f}×)"
            value = "unknown" if r.mean_compute is None else f"{r.mean_compute:.3g} FLOPs{ratio}"
            lines.append(f"| {r.method} | {value} |")
        lines += [
            "",
            "Every model that ran, per item (errors excluded): the Reasoner's calls, and the "
            "DM's own — its classifier, the LM it reads steps with, its lookahead's forced "
            "answers. Compute is 2 × parameters × tokens processed, summed over the models "
            "(prompt tokens a server's prefix cache served are not processed again).",
        ]
        return lines

    def _paired_markdown(self) -> list[str]:
        """The paired-comparison table and the critic-efficiency line (empty if neither)."""
        lines: list[str] = []
        if self.comparisons:
            lines += [
                "",
                "## Paired comparisons",
                "",
                "| method − baseline | n | diff [95% CI] | wins / losses | McNemar p |",
                "|---|---:|---|---:|---:|",
            ]
            for p in self.comparisons:
                lines.append(
                    f"| {p.method} − {p.baseline} | {p.n} "
                    f"| {p.diff:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}] "
                    f"| {p.wins} / {p.losses} | {_p_value(p.mcnemar_p)} |"
                )
        e = self.critic_efficiency
        if e is not None:
            head = f"Critic efficiency of {e.method} ({e.floor} = 0, {e.ceiling} = 1): "
            if e.efficiency is None:
                value = f"undefined ({e.note})"
            else:
                ci = "no interval" if e.ci_low is None else f"[{e.ci_low:.3f}, {e.ci_high:.3f}]"
                value = f"{e.efficiency:.3f} {ci}"
                if e.dropped:
                    value += f", {e.dropped} of {e.resamples} resamples dropped (gap <= 0)"
            lines += [
                "",
                f"{head}{value}; n {e.n}, accuracy {e.method} {e.method_accuracy:.3f}, "
                f"{e.floor} {e.floor_accuracy:.3f}, {e.ceiling} {e.ceiling_accuracy:.3f}, "
                f"gap {e.gap:.3f}.",
            ]
        if lines:
            lines += [
                "",
                "Each comparison is on the items both methods ran: diff is the method's accuracy "
                "minus the baseline's (positive: the method is better) with a paired bootstrap "
                "95% interval (an interval excluding 0 is a difference beyond resampling noise); "
                "wins / losses count the items only the method / only the baseline got right, "
                "and McNemar's exact p is the chance of a split that uneven if both were equally "
                "good. Critic efficiency is the share of the gap between greedy steps (no critic) "
                "and the gold-aware oracle critic that the method closes: 0 is no better than no "
                "critic, 1 as good as knowing the answer.",
            ]
        return lines


def _p_value(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize_method(method: str, records: Sequence[EvalRecord]) -> MethodSummary:
    """The `MethodSummary` of one method's records."""
    n = len(records)
    correct = sum(r.correct for r in records)
    errors = sum(r.error is not None for r in records)
    abstained = sum(r.abstained and r.error is None for r in records)
    answered = n - abstained - errors
    low, high = wilson_interval(correct, n)
    ok = [r for r in records if r.error is None]
    return MethodSummary(
        method=method,
        n=n,
        correct=correct,
        answered=answered,
        abstained=abstained,
        errors=errors,
        accuracy=correct / n if n else 0.0,
        ci_low=low,
        ci_high=high,
        coverage=answered / n if n else 0.0,
        abstention_rate=abstained / n if n else 0.0,
        error_rate=errors / n if n else 0.0,
        selective_accuracy=(
            sum(r.correct for r in records if not r.abstained and r.error is None) / answered
            if answered
            else None
        ),
        mean_prompt_tokens=_mean([r.tokens.prompt for r in ok]),
        mean_completion_tokens=_mean([r.tokens.completion for r in ok]),
        mean_tokens=_mean([r.tokens.total for r in ok]),
        mean_reasoner_calls=_mean([r.reasoner_calls for r in ok]),
        mean_dm_calls=_mean([r.dm_calls for r in ok]),
        mean_backtracks=_mean([r.backtracks for r in ok]),
        mean_latency_s=_mean([r.latency_s for r in ok]),
        mean_compute=(
            _mean([r.compute for r in ok])  # type: ignore[misc]
            if ok and all(r.compute is not None for r in ok)
            else None
        ),
        usage=_usage_means(ok),
    )


def _usage_means(records: Sequence[EvalRecord]) -> dict[str, ModelUsageMeans]:
    """Mean per-item usage of every model any of ``records`` ran."""
    models = sorted({name for r in records for name in r.usage})
    means = {}
    for name in models:
        rows = [r.usage.get(name) for r in records]
        means[name] = ModelUsageMeans(
            calls=_mean([u.calls if u else 0 for u in rows]),
            prompt_tokens=_mean([u.prompt_tokens if u else 0 for u in rows]),
            completion_tokens=_mean([u.completion_tokens if u else 0 for u in rows]),
            cached_prompt_tokens=_mean([u.cached_prompt_tokens if u else 0 for u in rows]),
            parameters=next((u.parameters for u in rows if u and u.parameters), None),
        )
    return means


def summarize(
    records: Sequence[EvalRecord],
    methods: Sequence[str],
    *,
    run_id: str,
    task: str,
    reasoner: str,
    scorer: str | None = None,
    settings: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> EvalSummary:
    """Summarise ``records`` per method, in the order of ``methods``, then compare them.

    The paired comparisons and the critic efficiency need every method's records together,
    which only this function has (see `drr_agent.evaluation.paired`).
    """
    rows = [summarize_method(m, [r for r in records if r.method == m]) for m in methods]
    cot = next((r for r in rows if r.method == "cot" and r.mean_tokens > 0), None)
    if cot is not None:
        rows = [
            r.model_copy(
                update={
                    "tokens_vs_cot": r.mean_tokens / cot.mean_tokens,
                    "compute_vs_cot": (
                        r.mean_compute / cot.mean_compute
                        if r.mean_compute is not None and cot.mean_compute
                        else None
                    ),
                }
            )
            for r in rows
        ]
    return EvalSummary(
        run_id=run_id,
        task=task,
        items=len({r.item_id for r in records}),
        reasoner=reasoner,
        scorer=scorer,
        settings=dict(settings or {}),
        config=dict(config or {}),
        methods=rows,
        comparisons=compare_all(records, methods),
        critic_efficiency=(
            critic_efficiency(records) if {"drr", "stepwise", "oracle"} <= set(methods) else None
        ),
    )


def write_summary(summary: EvalSummary, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.md`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    json_path, md_path = out / SUMMARY_JSON, out / SUMMARY_MD
    write_json(json_path, summary.model_dump(mode="json"))
    md_path.write_text(summary.to_markdown(), encoding="utf-8")
    return json_path, md_path
