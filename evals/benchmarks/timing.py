"""Timing for the benchmarks: wrappers that clock a scorer or a Reasoner, summary statistics
of timing samples, a description of the machine and package versions a record was made on,
and the console the benchmark tables print to.

Used by `evals.benchmarks.graph_overhead` and `evals.benchmarks.dm_cost`.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from drr_agent import Proposal, Reasoner, StepContext, StepScorer

# a wide table when piped to a file or log; the terminal's own width otherwise
console = Console(width=None if sys.stdout.isatty() else 120)


# -- statistics ---------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p90": percentile(values, 90),
        "min": min(values),
        "max": max(values),
    }


# -- timing wrappers ----------------------------------------------------------------------------
class TimedScorer(StepScorer):
    """Delegates to a scorer and accumulates the wall time spent in it, the calls and the
    contexts scored (also used by `evals.benchmarks.dm_cost`)."""

    def __init__(self, inner: StepScorer) -> None:
        self.inner = inner
        self.name = inner.name
        self.reset()

    @property
    def thresholds(self) -> dict[str, float]:
        return self.inner.thresholds

    def reset(self) -> None:
        self.seconds, self.calls, self.items = 0.0, 0, 0

    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        start = time.perf_counter()
        try:
            return await self.inner.ascore(items)
        finally:
            self._count(start, items)

    def score(self, items: Sequence[StepContext]) -> list[float]:
        start = time.perf_counter()
        try:
            return self.inner.score(items)
        finally:
            self._count(start, items)

    def _count(self, start: float, items: Sequence[StepContext]) -> None:
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.items += len(items)


class TimedReasoner(Reasoner):
    """Delegates to a Reasoner and accumulates the wall time spent in it."""

    def __init__(self, inner: Reasoner) -> None:
        super().__init__(inner.model, inner.prompt, name=inner.name)
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    async def apropose(
        self,
        question: str,
        steps: Sequence[str],
        rejected: Sequence[str] = (),
        **kwargs: Any,
    ) -> list[Proposal]:
        start = time.perf_counter()
        try:
            return await self.inner.apropose(question, steps, rejected, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def propose(
        self,
        question: str,
        steps: Sequence[str],
        rejected: Sequence[str] = (),
        **kwargs: Any,
    ) -> list[Proposal]:
        start = time.perf_counter()
        try:
            return self.inner.propose(question, steps, rejected, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


# -- environment --------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    versions = {}
    for dist in (
        "drr-agent",
        "langgraph",
        "langgraph-checkpoint",
        "langchain-core",
        "langchain-openai",
        "torch",
        "transformers",
        "xllamacpp",
    ):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }
