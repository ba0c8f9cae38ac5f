"""Step labels without humans, from the Reasoner's own behaviour.

Every step prefix of every trace becomes a `StepExample` whose label estimates "continuing
from here reaches the gold answer":

- **outcome** labels give each step its trace's result (1 if the trace's answer is right).
  Free, but noisy: a right step in a trace that later goes wrong is labelled 0.
- **Monte-Carlo** labels sample ``rollouts`` continuations of the Reasoner from the prefix
  (the same prefill prompt the graph uses) and take the fraction that reach the gold answer
  (``soft``), or 1 if any does (``hard``, Math-Shepherd's "hard estimation"). A step that
  carries a final answer is labelled by its own correctness. Identical prefixes (common: many
  samples share a first step) are rolled out once.
- **answer** rollouts (``continuation="answer"``, kind ``mc_answer``) are Monte-Carlo rollouts
  that ask for the final answer right after the prefix, exactly as the graph does when it
  forces one (the prefill ends with ``StepPrompt.answer_prefix``; one line). A step is then
  worth what the Reasoner makes of it when asked to conclude — the value the graph acts on —
  and a right step is no longer labelled by the drift that follows it in a free rollout, the
  small Reasoner's commonest failure. Each rollout costs a few tokens instead of a trace.

Every writer of a label file holds its lock (`RecordFile.exclusive`) and records the settings
that made it beside it (`LabelSettings`, ``X.settings.json``); a later run with other
settings — another kind, Reasoner or rollout count — is refused (`LabelFileMismatchError`)
unless forced, instead of appending nothing or mixing two kinds of label in one file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from drr_agent.errors import DRRError, describe_validation_error
from drr_agent.execution import Executor, LocalExecutor
from drr_agent.offline.jsonl import RecordFile, write_json
from drr_agent.offline.records import StepExample, TraceRecord
from drr_agent.offline.run_folder import label_settings_path
from drr_agent.offline.traces import finish_trace, sample_seed
from drr_agent.reasoners.base import Reasoner
from drr_agent.reasoners.sampling import ROLLOUT_MAX_TOKENS, TRACE_TEMPERATURE
from drr_agent.scorers.lookahead import lookahead_answer
from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.checking import is_correct


class LabelFileMismatchError(DRRError, ValueError):
    """An existing label file was made by another kind of labelling or with other settings."""


LabelKind = Literal["outcome", "mc", "mc_answer"]


class LabelSettings(BaseModel):
    """What made a label file, recorded beside it (``X.settings.json``, `label_settings_path`)
    and checked by every later run that would append to it (`claim_label_file`). A field a
    producer does not use stays ``None``.

    Attributes:
        producer: ``labels`` (`outcome_examples`, `mc_examples`) or ``siblings``
            (`drr_agent.offline.siblings`).
        kind: The rows' ``label_kind``.
        task: The task the labelled traces or questions come from.
        reasoner: The Reasoner that rolled out or proposed (``None`` for outcome labels).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    producer: Literal["labels", "siblings"]
    kind: LabelKind
    task: str
    reasoner: str | None = None
    rollouts: int | None = None
    mode: Literal["soft", "hard"] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    lookahead: bool | None = None
    candidates: int | None = None
    answers: int | None = None


def claim_label_file(
    records: RecordFile[StepExample],
    existing: Sequence[StepExample],
    settings: LabelSettings,
    *,
    force: bool = False,
) -> None:
    """Check that labels made with ``settings`` belong in ``records`` (whose rows are
    ``existing``), then record ``settings`` beside it. Call it holding the file's lock.

    The recorded settings must equal ``settings``; a file from before settings were recorded
    is judged by its rows (their kind, task and rollout count). A file without rows takes any
    settings (a run that failed before its first row decided nothing); ``force`` appends
    anyway and records the new settings.

    Raises:
        LabelFileMismatchError: The file holds labels made otherwise.
    """
    path = label_settings_path(records.path)
    if existing and not force:
        recorded = _recorded_settings(path)
        if recorded is not None:
            _refuse_other(recorded.model_dump(), settings, records.path, f" ({path.name})")
        else:  # written before settings were recorded: its rows tell
            _refuse_other(_settings_of_rows(existing, settings), settings, records.path, "")
    write_json(path, settings.model_dump(mode="json"))


def _recorded_settings(path: Path) -> LabelSettings | None:
    if not path.exists():
        return None
    try:
        return LabelSettings.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise LabelFileMismatchError(
            f"{path}: not label settings ({describe_validation_error(exc)}); remove it, or --force"
        ) from exc


def _settings_of_rows(rows: Sequence[StepExample], settings: LabelSettings) -> dict[str, Any]:
    """What a label file's rows tell of the settings that made them: their kind, task and
    (where ``settings`` has one) rollout count."""
    told: dict[str, Any] = {
        "kind": "+".join(sorted({r.label_kind for r in rows})),
        "task": "+".join(sorted({r.task for r in rows})),
    }
    rolled = sorted({r.rollouts for r in rows if r.rollouts})
    if settings.rollouts is not None and rolled:
        told["rollouts"] = rolled[0] if len(rolled) == 1 else rolled
    return told


def _refuse_other(old: dict[str, Any], new: LabelSettings, path: Path, where: str) -> None:
    """Raise `LabelFileMismatchError` naming the first setting in which ``old`` (what made
    the file at ``path``) differs from ``new``."""
    for name, before in old.items():
        if before != getattr(new, name):
            raise LabelFileMismatchError(
                f"{path} holds labels made with {name}={before!r}{where}, this run has "
                f"{getattr(new, name)!r}. Use another --out file, or --force to append."
            )


def write_outcome_labels(
    traces: Sequence[TraceRecord],
    out: str | Path,
    *,
    force: bool = False,
    replace: bool = False,
) -> list[StepExample]:
    """Outcome labels of ``traces`` (`outcome_examples`) into ``out``, under its lock:
    appended where missing, resuming (a file of other labels is refused unless ``force``), or
    with ``replace`` written anew. Returns every row of ``out``."""
    examples = outcome_examples(traces)
    task = "+".join(sorted({t.task for t in traces}))
    settings = LabelSettings(producer="labels", kind="outcome", task=task)
    records = RecordFile(out, StepExample)
    with records.exclusive():
        if replace:
            records.rewrite(examples)
            claim_label_file(records, examples, settings, force=True)
        else:
            existing = records.read(repair=True)
            claim_label_file(records, existing, settings, force=force)
            done = {e.key for e in existing}
            records.append(e for e in examples if e.key not in done)
        return records.read()


class LabelSummary(BaseModel):
    """Size and class balance of a labelled set, and the step-level headroom.

    ``first_step_pass_at_k``: the share of questions among whose sampled first steps (one per
    trace, ``k`` per question) at least one is labelled good — whether a good candidate is
    there for a critic to pick at the first point of the path.
    """

    examples: int
    positives: int
    negatives: int
    positive_rate: float
    final_steps: int
    items: int
    by_split: dict[str, int]
    kind: str
    first_step_pass_at_k: float | None = None


def summarize_labels(examples: Sequence[StepExample]) -> LabelSummary:
    positives = sum(e.hard_label for e in examples)
    by_split: dict[str, int] = {}
    for e in examples:
        by_split[e.split] = by_split.get(e.split, 0) + 1
    kinds = sorted({e.label_kind for e in examples})
    return LabelSummary(
        examples=len(examples),
        positives=positives,
        negatives=len(examples) - positives,
        positive_rate=positives / len(examples) if examples else 0.0,
        final_steps=sum(e.final for e in examples),
        items=len({e.item_id for e in examples}),
        by_split=by_split,
        kind="+".join(kinds) or "none",
        first_step_pass_at_k=_first_step_pass_at_k(examples),
    )


def _first_step_pass_at_k(examples: Sequence[StepExample]) -> float | None:
    good: dict[str, bool] = {}
    for e in examples:
        if e.step_index == 0:
            good[e.item_id] = good.get(e.item_id, False) or bool(e.hard_label)
    return sum(good.values()) / len(good) if good else None


def _usable(traces: Iterable[TraceRecord]) -> list[TraceRecord]:
    return [t for t in traces if t.status == "ok" and t.steps]


def _example(trace: TraceRecord, index: int, label: float, kind: str, rollouts: int) -> StepExample:
    return StepExample(
        task=trace.task,
        split=trace.split,
        item_id=trace.item_id,
        sample_index=trace.sample_index,
        step_index=index,
        question=trace.question,
        previous=trace.steps[:index],
        step=trace.steps[index],
        label=label,
        label_kind=kind,  # type: ignore[arg-type]
        rollouts=rollouts,
        final=index == len(trace.steps) - 1 and trace.answer is not None,
        gold=trace.gold,
        signals=trace.step_signals[index] if trace.step_signals else None,
    )


def outcome_examples(traces: Iterable[TraceRecord]) -> list[StepExample]:
    """Label every step with its trace's outcome."""
    return [
        _example(t, i, float(t.correct), "outcome", 0)
        for t in _usable(traces)
        for i in range(len(t.steps))
    ]


@dataclass(frozen=True)
class _LabelJob:
    """Label one ``(trace, step index)`` unit by answer rollouts: a picklable job, so an
    `Executor` can run it here or on a Ray worker. Steps of different traces that share a
    prefix share one value: ``cache`` holds one task per (kind, item, prefix) in this
    process. With ``lookahead`` each step also records the Reasoner's greedy answer after it
    (`StepExample.lookahead`)."""

    task: Task
    items: dict[str, TaskItem]
    kind: Literal["mc", "mc_answer"]
    rollouts: int
    mode: Literal["soft", "hard"]
    temperature: float
    max_tokens: int
    seed: int
    retries: int
    timeout_s: float
    lookahead: bool = False
    cache: dict[tuple[str, str, tuple[str, ...]], asyncio.Task[Any]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "cache": {}}  # tasks of this process's loop stay here

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    async def _value(self, rollout: Reasoner, item: TaskItem, prefix: tuple[str, ...]) -> float:
        final = self.kind == "mc_answer"
        fmt = rollout.format_for(self.task.step_format)
        wins = 0
        for r in range(self.rollouts):
            text = await rollout.acontinue(
                item.question,
                prefix,
                final=final,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                seed=sample_seed(self.seed, f"{item.id}|{'|'.join(prefix)}", r),
                # the answer is one line, as the graph's step is
                stop=[fmt.separator] if final else None,
                retries=self.retries,
                timeout_s=self.timeout_s,
            )
            if final:
                answer, _ = rollout.read_final_answer(text, fmt)
            else:
                _, answer, _ = finish_trace(text, item, fmt)
            wins += is_correct(answer, item.gold, item.answer_type, item.choices)
        if self.mode == "hard":
            return float(wins > 0)
        return wins / self.rollouts

    async def __call__(self, rollout: Reasoner, unit: tuple[TraceRecord, int]) -> StepExample:
        trace, index = unit
        example = _example(trace, index, 0.0, self.kind, self.rollouts)
        item = self.items[trace.item_id]
        prefix = tuple(trace.steps[: index + 1])
        # the greedy answer first: the sampled ones then reuse its prompt in the server's cache
        look = None
        if self.lookahead:
            look = await self._cached("lookahead", rollout, item, prefix, self._lookahead)
        if example.final:  # the answer is there: its correctness is the label
            label, rollouts = float(trace.correct), 0
        else:
            label = await self._cached("value", rollout, item, prefix, self._value)
            rollouts = self.rollouts
        return example.model_copy(update={"label": label, "rollouts": rollouts, "lookahead": look})

    async def _cached(
        self, kind: str, rollout: Reasoner, item: TaskItem, prefix: tuple[str, ...], fn: Any
    ) -> Any:
        """``fn``'s result for this prefix, computed once per process (shared prefixes)."""
        key = (kind, item.id, prefix)
        if key not in self.cache:
            self.cache[key] = asyncio.ensure_future(fn(rollout, item, prefix))
        return await self.cache[key]

    async def _lookahead(self, rollout: Reasoner, item: TaskItem, prefix: tuple[str, ...]) -> str:
        answer = await lookahead_answer(
            rollout, item.question, prefix, retries=self.retries, timeout_s=self.timeout_s
        )
        return answer or ""


async def mc_examples(
    traces: Sequence[TraceRecord],
    task: Task,
    reasoner: Reasoner,
    out: str | Path,
    *,
    rollouts: int = 4,
    mode: Literal["soft", "hard"] = "soft",
    continuation: Literal["trace", "answer"] = "trace",
    temperature: float = TRACE_TEMPERATURE,
    max_tokens: int = ROLLOUT_MAX_TOKENS,
    seed: int = 0,
    concurrency: int = 8,
    retries: int = 2,
    timeout_s: float = 120.0,
    progress: bool = True,
    executor: Executor | None = None,
    lookahead: bool = False,
    force: bool = False,
) -> list[StepExample]:
    """Monte-Carlo labels, appended to ``out`` per step; resumes from what ``out`` holds.

    ``continuation="trace"`` rolls out whole traces (``max_tokens`` each); ``"answer"`` asks
    for the final answer after the prefix (one line, at most ``max_tokens``) — see the module.
    ``executor`` runs the steps (default: this process, ``concurrency`` at once; a Ray
    cluster with `drr_agent.execution.RayExecutor`, where each worker keeps its own cache
    of prefix values); this process alone appends them to ``out``. ``lookahead`` records,
    for every step, the Reasoner's greedy final answer right after it
    (`drr_agent.scorers.lookahead`): what a DM whose head reads
    the lookahead will ask at inference, asked here where the prompt is already in the
    server's cache. A file of labels made otherwise (another kind, Reasoner, rollout count,
    ...: `LabelSettings`) is refused unless ``force``.
    """
    if reasoner.prompt.style != "prefill":
        raise DRRError(
            "Monte-Carlo labels continue the Reasoner from a step prefix and need the 'prefill' "
            f"prompt style; {reasoner.name!r} uses {reasoner.prompt.style!r}"
        )
    items: dict[str, TaskItem] = {item.id: item for item in task.items}
    usable = _usable(traces)
    missing = sorted({t.item_id for t in usable} - items.keys())
    if missing:
        raise DRRError(
            f"{len(missing)} traced items are not in task {task.name!r} (e.g. {missing[0]!r}): "
            "label with the task and parameters the traces were sampled with"
        )
    kind: Literal["mc", "mc_answer"] = "mc_answer" if continuation == "answer" else "mc"
    settings = LabelSettings(
        producer="labels",
        kind=kind,
        task=task.name,
        reasoner=reasoner.name,
        rollouts=rollouts,
        mode=mode,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        lookahead=lookahead,
    )
    records = RecordFile(out, StepExample)
    with records.exclusive():
        existing = records.read(repair=True)
        claim_label_file(records, existing, settings, force=force)
        done = {e.key for e in existing}
        rollout = reasoner.derive(instruction=task.instruction)
        job = _LabelJob(
            task=task,
            items=items,
            kind=kind,
            rollouts=rollouts,
            mode=mode,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            retries=retries,
            timeout_s=timeout_s,
            lookahead=lookahead,
        )
        todo = [
            (t, i)
            for t in usable
            for i in range(len(t.steps))
            if (t.item_id, t.sample_index, i) not in done
        ]
        started = time.perf_counter()
        columns = (
            TextColumn("[bold]MC labels[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.2f} steps/s"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, disable=not progress) as bar:
            row = bar.add_task("label", total=len(todo), rate=0.0)
            runner = executor or LocalExecutor(concurrency)
            async for example in runner.stream(job, todo, rollout):
                records.append([example])
                elapsed = time.perf_counter() - started
                bar.update(row, advance=1, rate=bar.tasks[0].completed / max(elapsed, 1e-9))
        return records.read()
