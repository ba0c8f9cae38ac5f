"""Part B of `evals.benchmarks.graph_overhead`: the DM's share of wall time per question on the
real embedded models (SmolLM2 Reasoner + MiniLM DM), split into Reasoner, DM and graph+other,
beside a control pass with a constant scorer before the DM is loaded."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from drr_agent import (
    DRRConfig,
    FunctionScorer,
    HFScorer,
    StepContext,
    build_graph,
    embedded_reasoner,
)
from drr_agent.scorers import embedded_dm_base_path
from evals.benchmarks.instant_doubles import arithmetic_questions
from evals.benchmarks.timing import TimedReasoner, TimedScorer, console

DM_SHARE_TARGET_PCT = 3.0
REAL_MAX_STEPS = 4
REAL_MAX_REASONER_CALLS = 8


@dataclass
class QuestionTiming:
    question: str
    wall_s: float
    reasoner_s: float
    dm_s: float
    reasoner_calls: int
    dm_calls: int
    dm_items: int
    completion_tokens: int
    accepted_steps: int
    stop_reason: str | None
    answer: str | None
    mean_dm_score: float | None

    @property
    def other_s(self) -> float:
        return self.wall_s - self.reasoner_s - self.dm_s

    @property
    def dm_share_pct(self) -> float:
        return 100 * self.dm_s / self.wall_s

    @property
    def other_share_pct(self) -> float:
        return 100 * self.other_s / self.wall_s

    def record(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "other_s": self.other_s,
            "dm_share_pct": self.dm_share_pct,
            "other_share_pct": self.other_share_pct,
        }


async def constant_half(_: StepContext) -> float:
    return 0.5


def _aggregate(timings: Sequence[QuestionTiming]) -> dict[str, Any]:
    wall = sum(t.wall_s for t in timings)
    reasoner_s = sum(t.reasoner_s for t in timings)
    dm_s = sum(t.dm_s for t in timings)
    dm_calls = sum(t.dm_calls for t in timings)
    reasoner_calls = sum(t.reasoner_calls for t in timings)
    return {
        "wall_s": wall,
        "reasoner_s": reasoner_s,
        "dm_s": dm_s,
        "other_s": wall - reasoner_s - dm_s,
        "reasoner_share_pct": 100 * reasoner_s / wall,
        "dm_share_pct": 100 * dm_s / wall,
        "other_share_pct": 100 * (wall - reasoner_s - dm_s) / wall,
        "reasoner_calls": reasoner_calls,
        "dm_calls": dm_calls,
        "completion_tokens": sum(t.completion_tokens for t in timings),
        "reasoner_ms_per_call": 1000 * reasoner_s / reasoner_calls if reasoner_calls else None,
        "dm_ms_per_call": 1000 * dm_s / dm_calls if dm_calls else None,
    }


def _time_questions(
    reasoner: TimedReasoner, scorer: TimedScorer, warmup: str, questions: Sequence[str]
) -> list[QuestionTiming]:
    """Warm up on one question, then time each question (one ``ainvoke`` at a time)."""
    config = DRRConfig(
        accept_threshold=0.0,
        max_steps=REAL_MAX_STEPS,
        max_reasoner_calls=REAL_MAX_REASONER_CALLS,
    )
    graph = build_graph(reasoner, scorer, config)

    async def run() -> list[QuestionTiming]:
        await graph.ainvoke({"question": warmup})  # first llama.cpp / torch calls are slower
        timings = []
        for question in questions:
            reasoner.reset()
            scorer.reset()
            begin = time.perf_counter()
            state = await graph.ainvoke({"question": question})
            wall = time.perf_counter() - begin
            counters = state["counters"]
            scores = [t["score"] for t in state["thoughts"] if t["score"] is not None]
            timings.append(
                QuestionTiming(
                    question=question,
                    wall_s=wall,
                    reasoner_s=reasoner.seconds,
                    dm_s=scorer.seconds,
                    reasoner_calls=counters["reasoner_calls"],
                    dm_calls=counters["dm_calls"],
                    dm_items=counters["dm_items"],
                    completion_tokens=counters["completion_tokens"],
                    accepted_steps=len(state["path"]),
                    stop_reason=state.get("stop_reason"),
                    answer=state.get("answer"),
                    mean_dm_score=statistics.fmean(scores) if scores else None,
                )
            )
        return timings

    return asyncio.run(run())


def run_part_b(n_questions: int, seed: int) -> dict[str, Any]:
    """Time the real models; first a control pass with a constant scorer, DM not yet loaded.

    The control pass must come before the DM is loaded: once torch has run a forward pass its
    worker threads stay in the process. Comparing the two passes shows what the DM costs
    beyond the time spent inside its own calls (CPU contention with llama.cpp).
    """
    questions = arithmetic_questions(n_questions + 1, seed)
    warmup, questions = questions[0], questions[1:]

    start = time.perf_counter()
    reasoner = TimedReasoner(embedded_reasoner(seed=seed))
    reasoner_load_s = time.perf_counter() - start
    control = _time_questions(
        reasoner, TimedScorer(FunctionScorer(constant_half, name="constant-0.5")), warmup, questions
    )

    start = time.perf_counter()
    dm = HFScorer(embedded_dm_base_path(), allow_untrained_head=True, num_threads=1)
    dm_load_s = time.perf_counter() - start
    timings = _time_questions(reasoner, TimedScorer(dm), warmup, questions)

    aggregate = _aggregate(timings)
    aggregate["target_pct"] = DM_SHARE_TARGET_PCT
    aggregate["target_met"] = aggregate["dm_share_pct"] < DM_SHARE_TARGET_PCT
    baseline = _aggregate(control)
    same_work = baseline["completion_tokens"] == aggregate["completion_tokens"] and (
        baseline["reasoner_calls"] == aggregate["reasoner_calls"]
    )
    return {
        "reasoner": reasoner.name,
        "dm": str(dm.path),
        "dm_head": "untrained (allow_untrained_head=True): scores are ~0.5 and meaningless",
        "config": {
            "accept_threshold": 0.0,
            "max_steps": REAL_MAX_STEPS,
            "max_reasoner_calls": REAL_MAX_REASONER_CALLS,
        },
        "reasoner_load_s": reasoner_load_s,
        "dm_load_s": dm_load_s,
        "warmup_question": warmup,
        "questions": [t.record() for t in timings],
        "aggregate": aggregate,
        "control": {
            "what": "same questions, constant 0.5 scorer, DM not loaded (run first)",
            "questions": [t.record() for t in control],
            "aggregate": baseline,
            "same_work": same_work,
            "dm_marginal_share_pct": 100
            * (aggregate["wall_s"] - baseline["wall_s"])
            / aggregate["wall_s"],
            "reasoner_slowdown_with_dm": aggregate["reasoner_s"] / baseline["reasoner_s"],
        },
    }


def print_part_b(result: dict[str, Any]) -> None:
    table = Table(
        title=f"Part B — real embedded models ({result['reasoner']} + MiniLM DM, "
        f"ainvoke, max_steps={REAL_MAX_STEPS}, accept_threshold=0)",
        caption="steps = accepted/Reasoner calls; mean score ≈ 0.5: untrained DM head",
    )
    for name, justify in (
        ("question", "left"),
        ("steps", "right"),
        ("stop", "left"),
        ("wall s", "right"),
        ("Reasoner s", "right"),
        ("DM s", "right"),
        ("DM share", "right"),
        ("graph+other", "right"),
        ("mean score", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for q in result["questions"]:
        table.add_row(
            q["question"],
            f"{q['accepted_steps']}/{q['reasoner_calls']}",
            str(q["stop_reason"]),
            f"{q['wall_s']:.3f}",
            f"{q['reasoner_s']:.3f}",
            f"{q['dm_s']:.4f}",
            f"{q['dm_share_pct']:.2f} %",
            f"{q['other_share_pct']:.2f} %",
            "-" if q["mean_dm_score"] is None else f"{q['mean_dm_score']:.3f}",
        )
    agg = result["aggregate"]
    table.add_section()
    table.add_row(
        "[bold]all questions[/]",
        f"{sum(q['accepted_steps'] for q in result['questions'])}/{agg['reasoner_calls']}",
        "",
        f"{agg['wall_s']:.3f}",
        f"{agg['reasoner_s']:.3f}",
        f"{agg['dm_s']:.4f}",
        f"[bold]{agg['dm_share_pct']:.2f} %[/]",
        f"{agg['other_share_pct']:.2f} %",
        "",
    )
    console.print(table)

    control = result["control"]
    passes = Table(title="Part B — with and without the DM loaded (same questions, same seed)")
    for name in ("pass", "wall s", "tokens", "Reasoner ms/call", "DM ms/call", "DM share"):
        passes.add_column(name, justify="left" if name == "pass" else "right")
    for label, a in (
        ("Reasoner + constant scorer (DM not loaded)", control["aggregate"]),
        ("Reasoner + MiniLM DM", agg),
    ):
        passes.add_row(
            label,
            f"{a['wall_s']:.2f}",
            str(a["completion_tokens"]),
            f"{a['reasoner_ms_per_call']:.1f}",
            f"{a['dm_ms_per_call']:.1f}" if label.endswith("DM") else "-",
            f"{a['dm_share_pct']:.2f} %",
        )
    console.print(passes)
    verdict = "[green]met[/]" if agg["target_met"] else "[red]NOT met[/]"
    console.print(
        f"DM share (time inside DM calls) {agg['dm_share_pct']:.2f} % "
        f"(target < {DM_SHARE_TARGET_PCT:g} %): {verdict}\n"
        f"DM marginal share (wall with DM − wall without, over wall with DM) "
        f"{control['dm_marginal_share_pct']:.1f} %; Reasoner "
        f"{control['reasoner_slowdown_with_dm']:.2f}× slower with the DM loaded"
        + ("" if control["same_work"] else " [yellow](passes generated different tokens)[/]")
        + f"\nload (not counted): Reasoner {result['reasoner_load_s']:.2f} s, "
        f"DM {result['dm_load_s']:.2f} s"
    )
