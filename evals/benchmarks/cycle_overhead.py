"""Part A of `evals.benchmarks.graph_overhead`: the graph's own overhead per reason → score →
decide cycle, measured with instant doubles (sync and async, with and without a checkpointer),
the doubles' own cost subtracted; and an optional cProfile of those runs."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from rich.table import Table

from drr_agent import DRRConfig, Reasoner, StepContext, StepFormat, StepScorer, build_graph
from evals.benchmarks.instant_doubles import (
    InstantChatModel,
    arithmetic_questions,
    instant_scorers,
)
from evals.benchmarks.timing import console, summary

OVERHEAD_TARGET_MS = 2.0
WARMUP_RUNS = 3


@dataclass
class ModeResult:
    """Per-cycle timings (ms) of one graph mode, over the timed repetitions."""

    mode: str
    graph_ms_per_cycle: list[float]
    doubles_ms_per_cycle: list[float]
    overhead_ms_per_cycle: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        doubles = statistics.median(self.doubles_ms_per_cycle)
        self.overhead_ms_per_cycle = [g - doubles for g in self.graph_ms_per_cycle]

    @property
    def target_met(self) -> bool:
        return statistics.median(self.overhead_ms_per_cycle) < OVERHEAD_TARGET_MS

    def record(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "graph_ms_per_cycle": summary(self.graph_ms_per_cycle),
            "doubles_ms_per_cycle": summary(self.doubles_ms_per_cycle),
            "overhead_ms_per_cycle": summary(self.overhead_ms_per_cycle),
            "target_ms": OVERHEAD_TARGET_MS,
            "target_met": self.target_met,
            "samples": {
                "graph_ms_per_cycle": self.graph_ms_per_cycle,
                "doubles_ms_per_cycle": self.doubles_ms_per_cycle,
            },
        }


def _check_run(state: dict[str, Any], cycles: int) -> None:
    counters = state["counters"]
    if (
        state.get("stop_reason") != "max_steps"
        or len(state["path"]) != cycles
        or counters["reasoner_calls"] != cycles
        or counters["dm_calls"] != cycles
    ):
        raise RuntimeError(
            f"a benchmark run did not do exactly {cycles} accepted cycles: "
            f"stop_reason={state.get('stop_reason')!r}, path={len(state['path'])}, "
            f"counters={counters}"
        )


def _doubles_sync(reasoner: Reasoner, scorer: StepScorer, question: str, cycles: int) -> None:
    fmt = StepFormat()
    steps: list[str] = []
    for _ in range(cycles):
        (proposal,) = reasoner.propose(question, steps, [], n=1, step_format=fmt)
        scorer.score([StepContext(question, tuple(steps), proposal.text)])
        steps.append(proposal.text)


async def _doubles_async(
    reasoner: Reasoner, scorer: StepScorer, question: str, cycles: int
) -> None:
    fmt = StepFormat()
    steps: list[str] = []
    for _ in range(cycles):
        (proposal,) = await reasoner.apropose(question, steps, [], n=1, step_format=fmt)
        await scorer.ascore([StepContext(question, tuple(steps), proposal.text)])
        steps.append(proposal.text)


def _time_sync(fn: Callable[[int], None], runs: int, warmup: int, cycles: int) -> list[float]:
    for i in range(warmup):
        fn(-1 - i)
    gc.collect()
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - start) * 1000 / cycles)
    return samples


async def _time_async(
    fn: Callable[[int], Awaitable[None]], runs: int, warmup: int, cycles: int
) -> list[float]:
    for i in range(warmup):
        await fn(-1 - i)
    gc.collect()
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        await fn(i)
        samples.append((time.perf_counter() - start) * 1000 / cycles)
    return samples


def run_part_a(cycles: int, repeats: int, seed: int) -> list[ModeResult]:
    question = arithmetic_questions(1, seed)[0]
    reasoner = Reasoner(InstantChatModel(), name="instant-fake")
    sync_scorer, async_scorer = instant_scorers()
    config = DRRConfig(
        accept_threshold=0.5, max_steps=cycles, max_reasoner_calls=cycles, force_final_answer=False
    )  # exactly `cycles` accepted steps, no forced final answer
    plain = build_graph(reasoner, sync_scorer, config)
    saved = build_graph(reasoner, sync_scorer, config, checkpointer=InMemorySaver())
    aplain = build_graph(reasoner, async_scorer, config)
    asaved = build_graph(reasoner, async_scorer, config, checkpointer=InMemorySaver())

    def thread(tag: str, i: int) -> dict[str, Any]:
        return {"configurable": {"thread_id": f"bench-{tag}-{i}"}}

    def sync_plain(_: int) -> None:
        _check_run(plain.invoke({"question": question}), cycles)

    def sync_saved(i: int) -> None:
        _check_run(saved.invoke({"question": question}, thread("sync", i)), cycles)

    async def async_plain(_: int) -> None:
        _check_run(await aplain.ainvoke({"question": question}), cycles)

    async def async_saved(i: int) -> None:
        _check_run(await asaved.ainvoke({"question": question}, thread("async", i)), cycles)

    def doubles_sync(_: int) -> None:
        _doubles_sync(reasoner, sync_scorer, question, cycles)

    async def doubles_async(_: int) -> None:
        await _doubles_async(reasoner, async_scorer, question, cycles)

    def timed(fn: Callable[[int], None]) -> list[float]:
        return _time_sync(fn, repeats, WARMUP_RUNS, cycles)

    async def atimed(fn: Callable[[int], Awaitable[None]]) -> list[float]:
        return await _time_async(fn, repeats, WARMUP_RUNS, cycles)

    d_sync = timed(doubles_sync)
    sync_results = (
        ModeResult("invoke", timed(sync_plain), d_sync),
        ModeResult("invoke + saver", timed(sync_saved), d_sync),
    )

    async def run_async() -> tuple[ModeResult, ModeResult]:
        d_async = await atimed(doubles_async)
        return (
            ModeResult("ainvoke", await atimed(async_plain), d_async),
            ModeResult("ainvoke + saver", await atimed(async_saved), d_async),
        )

    async_results = asyncio.run(run_async())
    results = [sync_results[0], async_results[0], sync_results[1], async_results[1]]
    return results


def profile_part_a(cycles: int, repeats: int, seed: int, out_dir: Path) -> dict[str, str]:
    """cProfile ``repeats`` sync and async runs (no checkpointer); print the top functions."""
    question = arithmetic_questions(1, seed)[0]
    config = DRRConfig(
        accept_threshold=0.5, max_steps=cycles, max_reasoner_calls=cycles, force_final_answer=False
    )  # exactly `cycles` accepted steps, no forced final answer
    reasoner = Reasoner(InstantChatModel(), name="instant-fake")
    sync_scorer, async_scorer = instant_scorers()
    graph = build_graph(reasoner, sync_scorer, config)
    agraph = build_graph(reasoner, async_scorer, config)
    graph.invoke({"question": question})

    async def many() -> None:
        for _ in range(repeats):
            await agraph.ainvoke({"question": question})

    targets: dict[str, Callable[[], object]] = {
        "sync": lambda: [graph.invoke({"question": question}) for _ in range(repeats)],
        "async": lambda: asyncio.run(many()),
    }
    paths: dict[str, str] = {}
    for label, target in targets.items():
        profiler = cProfile.Profile()
        profiler.runcall(target)
        path = out_dir / f"graph_overhead.{label}.prof"
        profiler.dump_stats(path)
        paths[label] = str(path)
        console.rule(f"cProfile, {label}: {repeats} runs x {cycles} cycles (top by own time)")
        stats = pstats.Stats(profiler, stream=None)
        stats.sort_stats("tottime").print_stats(15)
    return paths


def print_part_a(results: list[ModeResult], cycles: int, repeats: int) -> None:
    table = Table(
        title=f"Part A — graph overhead, ms per reason→score→decide cycle "
        f"({cycles} cycles/run, {repeats} runs after {WARMUP_RUNS} warm-up)",
        caption="overhead = graph − median(doubles alone); saver = InMemorySaver, "
        "one thread_id per run",
    )
    table.add_column("mode")
    for name in ("graph p50", "graph p90", "doubles p50", "overhead p50", "overhead p90"):
        table.add_column(name, justify="right")
    table.add_column(f"< {OVERHEAD_TARGET_MS:g} ms", justify="center")
    for r in results:
        g, d, o = (
            summary(r.graph_ms_per_cycle),
            summary(r.doubles_ms_per_cycle),
            summary(r.overhead_ms_per_cycle),
        )
        table.add_row(
            r.mode,
            f"{g['median']:.3f}",
            f"{g['p90']:.3f}",
            f"{d['median']:.3f}",
            f"{o['median']:.3f}",
            f"{o['p90']:.3f}",
            "[green]met[/]" if r.target_met else "[red]no[/]",
        )
    console.print(table)
